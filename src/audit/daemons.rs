//! The audit trail's two root LaunchDaemons (see [`super`]): eslogger, whose stdout is the FIFO, and the
//! collector that reads it. Both run as root (no `UserName`), restart when they exit, and create files
//! owner-only (`Umask` 077). Keys are written sorted, so the same plan always gives the same bytes.

use anyhow::Result;
use plist::{Dictionary, Value};

use super::AuditPlan;

/// `/usr/bin/eslogger <events…>`: the job's own program, so TCC sees eslogger as the responsible process.
pub fn eslogger_plist(audit: &AuditPlan) -> Result<Vec<u8>> {
    let mut args = vec![ESLOGGER.to_owned()];
    args.extend(audit.events.iter().cloned());
    let mut d = common(&audit.eslogger_label, args);
    // launchd opens the FIFO for writing in the job's process: it waits there until the collector reads.
    d.insert("StandardOutPath".into(), audit.fifo.clone().into());
    d.insert(
        "StandardErrorPath".into(),
        format!("{}/eslogger.err.log", audit.dir).into(),
    );
    crate::launchd::to_xml(d)
}

/// `/bin/sh <support>/audit-collector`: reads the FIFO, filters, appends and rotates.
pub fn collector_plist(audit: &AuditPlan) -> Result<Vec<u8>> {
    let args = vec!["/bin/sh".to_owned(), audit.collector_script.clone()];
    let mut d = common(&audit.collector_label, args);
    d.insert("StandardOutPath".into(), "/dev/null".into());
    d.insert(
        "StandardErrorPath".into(),
        format!("{}/collector.err.log", audit.dir).into(),
    );
    crate::launchd::to_xml(d)
}

/// Where macOS has eslogger (13 and later).
pub const ESLOGGER: &str = "/usr/bin/eslogger";

fn common(label: &str, args: Vec<String>) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Label".into(), label.into());
    d.insert(
        "ProgramArguments".into(),
        Value::Array(args.into_iter().map(Value::from).collect()),
    );
    d.insert("RunAtLoad".into(), true.into());
    d.insert("KeepAlive".into(), true.into());
    // 077 as launchd wants it, in decimal: the trail is root's alone.
    d.insert("Umask".into(), Value::Integer(63.into()));
    d.insert("StandardInPath".into(), "/dev/null".into());
    d
}
