//! An agent's `audit` block: root records what the agent's UID does, through `eslogger` (Endpoint
//! Security), into a root-only log the agent can neither read nor erase. See [`crate::audit`] for the
//! collector and the timeline.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Located;
use super::Problem;
use super::model::unlocated;
use crate::diagnostics::did_you_mean;

/// The eslogger events an agent's trail may hold (`eslogger --list-events` names more; these are the ones
/// that describe what a process of the agent did). Endpoint Security has no event for an IP connection,
/// so network activity is not among them.
pub const AUDIT_EVENTS: &[&str] = &[
    "exec",
    "fork",
    "exit",
    "signal",
    "setuid",
    "setgid",
    "uipc_connect",
    "uipc_bind",
    "create",
    "unlink",
    "rename",
];

/// The audit trail of one agent. Needs the PPPC profile (it grants `/usr/bin/eslogger` Full Disk Access),
/// delivered by a user-approved MDM.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Collect the trail. Off unless written.
    #[serde(default)]
    pub enabled: bool,
    /// eslogger events to keep for this agent; `exec` is required. Default: `[exec, fork, exit]`.
    #[serde(default = "default_events")]
    #[schemars(with = "Vec<String>")]
    pub events: Vec<Located<String>>,
    /// Size in MiB at which the agent's log file is rotated, 1 to 1024.
    #[serde(default = "default_file_mb")]
    #[schemars(with = "u32")]
    pub file_mb: Located<u32>,
    /// Rotated files kept, 1 to 100. The trail never takes more than `file_mb × (keep + 1)` MiB.
    #[serde(default = "default_keep")]
    #[schemars(with = "u32")]
    pub keep: Located<u32>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            enabled: false,
            events: default_events(),
            file_mb: default_file_mb(),
            keep: default_keep(),
        }
    }
}

impl Audit {
    pub(super) fn validate(&self, minimum_macos: &Located<String>, problems: &mut Vec<Problem>) {
        let major = minimum_macos
            .value
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if self.enabled && major.is_some_and(|m| m < 13) {
            problems.push(Problem::at(
                &minimum_macos.referenced,
                format!(
                    "an agent's audit trail needs eslogger, macOS 13 or later, but the fleet's minimum is {}",
                    minimum_macos.value
                ),
                "raise `minimum_macos` to 13.0 or later, or turn the audit off",
            ));
        }
        let mut seen = Vec::new();
        for event in &self.events {
            let name = event.value.as_str();
            if !AUDIT_EVENTS.contains(&name) {
                let help = match did_you_mean(name, AUDIT_EVENTS.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("use some of: {}", AUDIT_EVENTS.join(", ")),
                };
                problems.push(Problem::at(
                    &event.referenced,
                    format!("`{}` is not an audit event", super::validate::escape(name)),
                    help,
                ));
            } else if seen.contains(&name) {
                problems.push(Problem::at(
                    &event.referenced,
                    format!("audit event `{name}` is listed twice"),
                    "list each event once",
                ));
            }
            seen.push(name);
        }
        if self.enabled && !seen.contains(&"exec") {
            let at = self
                .events
                .first()
                .map_or(self.file_mb.referenced, |e| e.referenced);
            problems.push(Problem::at(
                &at,
                "the audit events leave out `exec`",
                "add `exec`: the trail is first of all every program the agent runs",
            ));
        }
        if !(1..=1024).contains(&self.file_mb.value) {
            problems.push(Problem::at(
                &self.file_mb.referenced,
                format!("an audit file of {} MiB is out of range", self.file_mb.value),
                "use 1 to 1024 MiB",
            ));
        }
        if !(1..=100).contains(&self.keep.value) {
            problems.push(Problem::at(
                &self.keep.referenced,
                format!("keeping {} rotated audit files is out of range", self.keep.value),
                "keep 1 to 100 files",
            ));
        }
    }
}

fn default_events() -> Vec<Located<String>> {
    ["exec", "fork", "exit"]
        .into_iter()
        .map(|e| unlocated(e.to_owned()))
        .collect()
}
fn default_file_mb() -> Located<u32> {
    unlocated(10)
}
fn default_keep() -> Located<u32> {
    unlocated(5)
}
