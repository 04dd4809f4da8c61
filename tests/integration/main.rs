//! confine's one integration test binary. Each module tests one area, through the binary or the library.

// Helpers shared by the modules: running the binary, temp folders, example-spec variants.
mod util;

// The command line: build, validate, init, schema, exit codes, atomic output, determinism.
mod cli;
// Bad specs: each one exits 1 with file:line:column, writes nothing, and never panics.
mod bad_specs;
// Diagnostics: the ten common mistakes as rustc-style snapshots, did-you-mean, colour rules.
mod diagnostics;
// The contract of every subcommand: the exit-status table, `-`, unset variables, man pages, manifest version.
mod contract;
// The admin's first use: spec discovery, --out safety, stdin, many files, completions, man page.
mod usage;
// The JSON contract: one snapshot per command, success and failure.
mod json_contract;
// build --bundle: a deterministic zip checked with unzip and Python's zipfile.
mod bundle;
// The README's quick start, run verbatim as extracted from the README.
mod readme;
// Signing: identities, profile CMS and xar TOC signatures, checked with the openssl CLI.
mod sign;
// Configuration profiles: Apple-schema oracle, independent parsers, snapshots, catalog errors.
mod profile;
// Flat packages: writer output checked by independent readers, inspect and verify.
mod pkg;
// The simulated Mac (tests/macos-sim) the installer tests run the package scripts on.
mod sim;
// Real macOS output (../shared/macos-captures) through the installer scripts' own parsers, under Apple's sh.
mod captures;
// The installer scripts run as root against a simulated macOS, with a stub OpenClaw.
mod installer;
// The pilot-Mac probe: read-only, a verdict per fact the installer relies on, on the simulated Mac.
mod probe;
// The audit trail: eslogger fixture → FIFO → real collector, root-only, flood-bounded; `confine audit`.
mod audit;
// A compromised agent plants links, FIFOs, sockets, hard links and forged lines, and races, before reinstall,
// upgrade, a release that drops it and uninstall: nothing outside its trees changes, a dropped agent is gone.
mod hostile_agent;
// Credential rotation: gateway token with probe and rollback, staged deploy keys, PATs, a racing agent.
mod rotation;
// Hostile packages and profiles under `prlimit --as=1G`: bounded readers exit 1, never abort.
mod hostile_files;
// Egress filtering: the pf anchor (snapshot, pf.conf grammar), its root watchdog, and the agent against it.
mod egress;
// The real OpenClaw and node end to end: install, upgrade, failing upgrades, on the simulated Mac.
mod real_openclaw;
// openclaw.install: bundle with the real OpenClaw: lock, offline builds, exact bytes, Mach-O, tampering.
mod vendored;
// openclaw.install: bundle on the simulated Mac: a host bundle's real gateway with no npm, BOM, uninstall.
mod vendored_mac;
// Signed builds end to end: dev identities, openssl and apple-xar checks, verify, no key leaks.
mod signed_build;
// RFC 3161 timestamps from a local `openssl ts` authority: tokens openssl accepts, bad answers refused.
mod timestamp;
// confine push: stateful Jamf Pro and Kandji doubles that check every call against the vendors' API descriptions.
mod push;
// confine export: Munki/Workspace ONE, Fleet GitOps and Apple MDM files read back by independent readers
// and checked against the package built; the inventory scripts on the simulated Mac.
mod export;
