//! The audit trail an agent cannot erase (`agents[].audit`): what root collects on the Mac, and `confine
//! audit`, which reads it back as a timeline.
//!
//! On the Mac two root LaunchDaemons per fleet do the collecting ([`daemons`]):
//! - `<identifier>.audit.eslogger` runs Apple's `/usr/bin/eslogger` (macOS 13+, Endpoint Security) for the
//!   union of the agents' events. It is the job's own program, not a child of a shell: TCC checks the
//!   *responsible* process for Full Disk Access, which for a launchd job is its program, so the PPPC
//!   profile grants FDA to eslogger alone (see `crate::profile`). Its stdout (`StandardOutPath`) is a
//!   FIFO in the root-only audit folder.
//! - `<identifier>.audit.collector` (`pkg/audit-collector`, POSIX sh and awk, no TCC rights) reads the
//!   FIFO, keeps the events whose process runs as an audited agent (its real or effective UID: eslogger
//!   has no UID filter of its own), and appends each, unchanged (unknown fields included), to
//!   `<agent>.jsonl` in that folder, 0600 root.
//!
//! eslogger's JSON is "NOT API in any sense" (eslogger(1)): the collector looks at only four things in a
//! line (the event's name, the process's audit token, `global_seq_num`, its size), and the timeline reader
//! ([`timeline`]) treats every field as optional. Endpoint Security has no event for an IP connection,
//! so the trail holds no network activity.
//!
//! Bounds: each agent's file is rotated by the collector itself at `file_mb` (it owns its descriptor, so
//! unlike a launchd log it can reopen), keeping `keep` files: a flooding agent pushes out only its own
//! oldest events, and every rotation leaves a record. Events Endpoint Security dropped (gaps in
//! `global_seq_num`) and lines over [`MAX_EVENT_BYTES`] are replaced by counted records, never silently.

pub mod daemons;
pub mod newsyslog;
pub mod timeline;

// Resolved with the rest of the plan (src/plan/audit.rs); named here too, where the trail is described.
pub use crate::plan::{AuditPlan, AuditedAgent, COLLECTOR_FILE};

/// The longest event line the collector keeps (eslogger writes an `exec` with its whole argument list,
/// at most `ARG_MAX`, 1 MiB, on macOS); a longer one becomes an `oversized` record.
pub const MAX_EVENT_BYTES: u64 = 2 * 1024 * 1024;

/// The collector, static POSIX sh (it reads the fleet's data file beside it).
pub const COLLECTOR: &str = include_str!("../../pkg/audit-collector");
