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

use crate::plan::{AUDIT_ROOT, FleetPlan};
use crate::spec::Spec;
use crate::spec::audit::AUDIT_EVENTS;

/// The longest event line the collector keeps (eslogger writes an `exec` with its whole argument list,
/// at most `ARG_MAX`, 1 MiB, on macOS); a longer one becomes an `oversized` record.
pub const MAX_EVENT_BYTES: u64 = 2 * 1024 * 1024;

/// The fleet's audit collection, resolved.
#[derive(Debug, Clone)]
pub struct AuditPlan {
    /// `/private/var/log/confine/<fleet>`: root:wheel 0700, files 0600.
    pub dir: String,
    /// The FIFO eslogger's stdout is, inside `dir`.
    pub fifo: String,
    pub eslogger_label: String,
    pub eslogger_plist: String,
    pub collector_label: String,
    pub collector_plist: String,
    /// The collector script, in the fleet's root-owned support folder.
    pub collector_script: String,
    /// The events eslogger subscribes to: every audited agent's, in [`AUDIT_EVENTS`] order.
    pub events: Vec<String>,
    pub agents: Vec<AuditedAgent>,
}

/// One agent whose UID is audited.
#[derive(Debug, Clone)]
pub struct AuditedAgent {
    pub name: String,
    pub uid: u32,
    pub events: Vec<String>,
    /// `<dir>/<agent>.jsonl`; rotated copies are `.1` (newest) to `.<keep>`.
    pub log: String,
    pub file_bytes: u64,
    pub keep: u32,
}

impl AuditPlan {
    /// `None` when no agent has `audit.enabled`.
    pub fn new(spec: &Spec, fleet: &FleetPlan, support_dir: &str) -> Option<AuditPlan> {
        let dir = format!("{AUDIT_ROOT}/{}", fleet.name);
        let agents: Vec<AuditedAgent> = spec
            .agents
            .iter()
            .filter(|a| a.audit.enabled)
            .map(|a| AuditedAgent {
                name: a.name.value.clone(),
                uid: a.uid.value,
                events: a.audit.events.iter().map(|e| e.value.clone()).collect(),
                log: format!("{dir}/{}.jsonl", a.name.value),
                file_bytes: u64::from(a.audit.file_mb.value) * 1024 * 1024,
                keep: a.audit.keep.value,
            })
            .collect();
        if agents.is_empty() {
            return None;
        }
        let events = AUDIT_EVENTS
            .iter()
            .filter(|e| agents.iter().any(|a| a.events.iter().any(|x| x == *e)))
            .map(|e| (*e).to_owned())
            .collect();
        let label = |role: &str| format!("{}.audit.{role}", fleet.identifier);
        let plist = |role: &str| format!("/Library/LaunchDaemons/{}.plist", label(role));
        Some(AuditPlan {
            fifo: format!("{dir}/eslogger.fifo"),
            dir,
            eslogger_label: label("eslogger"),
            eslogger_plist: plist("eslogger"),
            collector_label: label("collector"),
            collector_plist: plist("collector"),
            collector_script: format!("{support_dir}/{COLLECTOR_FILE}"),
            events,
            agents,
        })
    }
}

/// File name of the collector script in the support folder.
pub const COLLECTOR_FILE: &str = "audit-collector";

/// The collector, static POSIX sh (it reads the fleet's data file beside it).
pub const COLLECTOR: &str = include_str!("../../pkg/audit-collector");
