//! confine builds, from one YAML fleet spec, everything a Mac admin needs to run an always-on AI agent
//! under its own locked-down macOS account: configuration profiles, LaunchDaemon plists, and a signed
//! installer package whose scripts create the account, its groups, directories and credentials.
//!
//! Data flows one way: [`spec`] (parse and validate) → [`plan`] (resolve every name, path and
//! identifier) → artifacts ([`launchd`], [`openclaw`], [`pkg`], [`sign`]) → the output folder. The library
//! API carries no stability promise; it exists for the `confine` binary and its tests.

pub mod audit;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod diagnostics;
pub mod egress;
pub mod escape;
pub mod export;
pub mod installer;
pub mod interrupt;
pub mod launchd;
pub mod layout;
pub mod limits;
pub mod mdm;
pub mod npm;
pub mod openclaw;
pub mod output;
pub mod pkg;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod progress;
pub mod sign;
pub mod spec;
pub mod verify;
