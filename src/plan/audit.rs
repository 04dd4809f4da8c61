//! The fleet's audit collection, resolved: folder, FIFO, daemon labels and plists, and per agent its
//! events and log. Decided here once; `crate::audit` describes the trail and renders its daemons.

use super::{AUDIT_ROOT, FleetPlan};
use crate::spec::Spec;
use crate::spec::audit::AUDIT_EVENTS;

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
