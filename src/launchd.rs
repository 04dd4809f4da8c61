//! LaunchDaemon property lists: the job that runs an agent's OpenClaw gateway as the agent, at boot,
//! without a login.
//!
//! The keys are documented in `launchd.plist(5)`. The plist carries no secret: launchd shows a daemon's
//! environment to every local user (`launchctl print system/<label>`), so the gateway reads its token from
//! a 0600 file instead. Keys are written sorted, so the same plan always gives the same bytes.

use anyhow::{Context, Result};
use plist::{Dictionary, Value};

use crate::plan::{AgentPlan, FleetEgressPlan, REFRESH_SECONDS, RotationDaemonPlan};
use crate::spec::ProcessType;

/// The daemon plist of one agent, as XML.
pub fn daemon_plist(agent: &AgentPlan) -> Result<Vec<u8>> {
    let l = &agent.launchd;
    let mut d = Dictionary::new();
    d.insert("Label".into(), l.label.clone().into());
    d.insert("UserName".into(), agent.name.clone().into());
    d.insert("GroupName".into(), agent.primary_group.clone().into());
    // initgroups(3) gives the daemon the agent's supplementary groups (the shared workspace group).
    d.insert("InitGroups".into(), true.into());
    // Property lists have no octal: launchd wants the umask as a decimal integer (0007 → 7). OpenClaw's
    // own job uses 077; confine's default 007 differs on purpose: the workspace is shared with a group
    // of humans, who must be able to read and edit what the agent writes there (never the world).
    d.insert("Umask".into(), Value::Integer(l.umask.into()));
    d.insert("WorkingDirectory".into(), agent.workspace.path.clone().into());
    d.insert("ProgramArguments".into(), program_arguments(agent));
    let env: Dictionary = l
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    d.insert("EnvironmentVariables".into(), env.into());
    d.insert("RunAtLoad".into(), true.into());
    d.insert("KeepAlive".into(), l.keep_alive.into());
    d.insert(
        "ThrottleInterval".into(),
        Value::Integer(l.throttle_interval.into()),
    );
    // OpenClaw's own job gives the gateway 20 s to drain at stop, as the spec's default does.
    d.insert("ExitTimeOut".into(), Value::Integer(l.exit_timeout.into()));
    // OpenClaw's own LaunchAgent is Interactive, for a user's session; a daemon with no user attached
    // defaults to Standard, which is not throttled like Background.
    d.insert("ProcessType".into(), process_type(l.process_type).into());
    // As in OpenClaw's own job: the gateway never reads a terminal.
    d.insert("StandardInPath".into(), "/dev/null".into());
    d.insert(
        "StandardOutPath".into(),
        format!("{}/gateway.out.log", agent.log_dir).into(),
    );
    d.insert(
        "StandardErrorPath".into(),
        format!("{}/gateway.err.log", agent.log_dir).into(),
    );
    to_xml(d)
}

/// A LaunchDaemon plist as XML, keys sorted, ending in a newline.
pub fn to_xml(mut d: Dictionary) -> Result<Vec<u8>> {
    d.sort_keys();
    let mut out = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut out)
        .context("writing a LaunchDaemon plist")?;
    out.push(b'\n');
    Ok(out)
}

/// The egress watchdog's plist (see [`crate::egress`]): a root job, no UserName, that runs at load, every
/// few minutes, and when the network changes (configd rewrites resolv.conf on every DNS change). Its
/// files are root-only (Umask 077), its output goes to a root-owned log.
pub fn egress_plist(egress: &FleetEgressPlan) -> Result<Vec<u8>> {
    let mut d = Dictionary::new();
    d.insert("Label".into(), egress.label.clone().into());
    let args = ["/bin/sh".to_owned(), egress.daemon.clone()];
    d.insert(
        "ProgramArguments".into(),
        Value::Array(args.into_iter().map(Value::from).collect()),
    );
    d.insert("RunAtLoad".into(), true.into());
    d.insert("StartInterval".into(), Value::Integer(REFRESH_SECONDS.into()));
    d.insert(
        "WatchPaths".into(),
        Value::Array(vec!["/private/var/run/resolv.conf".into()]),
    );
    d.insert("Umask".into(), Value::Integer(0o077.into()));
    d.insert("StandardInPath".into(), "/dev/null".into());
    d.insert("StandardOutPath".into(), egress.log_path.clone().into());
    d.insert("StandardErrorPath".into(), egress.log_path.clone().into());
    to_xml(d)
}

/// A rotation daemon's plist: root runs `/bin/sh <support folder>/rotate <command> <agent>` on its
/// schedule (`StartCalendarInterval`, which launchd runs at the next wake if the Mac slept through it) or
/// when the watched folder changes (`WatchPaths`, with an hourly `StartInterval` in case an event is
/// missed). No `UserName`: it runs as root, and hands every write in the agent's trees to the agent.
pub fn rotation_plist(agent: &AgentPlan, daemon: &RotationDaemonPlan) -> Result<Vec<u8>> {
    let mut d = Dictionary::new();
    d.insert("Label".into(), daemon.label.clone().into());
    let args = ["/bin/sh", &daemon.script, daemon.command, &agent.name];
    d.insert(
        "ProgramArguments".into(),
        Value::Array(args.into_iter().map(Value::from).collect()),
    );
    if let Some(c) = &daemon.calendar {
        let mut when = Dictionary::new();
        when.insert("Hour".into(), Value::Integer(c.hour.into()));
        when.insert("Minute".into(), Value::Integer(c.minute.into()));
        if let Some(weekday) = c.weekday {
            when.insert("Weekday".into(), Value::Integer(weekday.into()));
        }
        if let Some(day) = c.day {
            when.insert("Day".into(), Value::Integer(day.into()));
        }
        d.insert("StartCalendarInterval".into(), when.into());
    }
    if let Some(watch) = &daemon.watch {
        d.insert("WatchPaths".into(), Value::Array(vec![watch.clone().into()]));
        d.insert("StartInterval".into(), Value::Integer(3600.into()));
    }
    d.insert("RunAtLoad".into(), false.into());
    d.insert("ProcessType".into(), "Background".into());
    d.insert("StandardInPath".into(), "/dev/null".into());
    d.insert("StandardOutPath".into(), daemon.log_path.clone().into());
    d.insert("StandardErrorPath".into(), daemon.log_path.clone().into());
    to_xml(d)
}

/// `node <openclaw>/dist/index.js gateway --port N`, as OpenClaw's own service definition runs it.
fn program_arguments(agent: &AgentPlan) -> Value {
    let args = [
        agent.openclaw.node.clone(),
        agent.openclaw.entry.clone(),
        "gateway".to_owned(),
        "--port".to_owned(),
        agent.gateway_port.to_string(),
    ];
    Value::Array(args.into_iter().map(Value::from).collect())
}

fn process_type(t: ProcessType) -> &'static str {
    match t {
        ProcessType::Background => "Background",
        ProcessType::Standard => "Standard",
        ProcessType::Adaptive => "Adaptive",
        ProcessType::Interactive => "Interactive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    fn example_plist() -> Dictionary {
        let loaded = crate::spec::load(None).expect("example is valid");
        let plan = Plan::new(&loaded.spec);
        let bytes = daemon_plist(&plan.agents[0]).expect("plist");
        plist::from_bytes::<Value>(&bytes)
            .expect("parses")
            .into_dictionary()
            .expect("dict")
    }

    #[test]
    fn runs_as_the_agent_with_its_own_group() {
        let d = example_plist();
        assert_eq!(d["UserName"].as_string(), Some("hexagent"));
        assert_eq!(d["GroupName"].as_string(), Some("hexagent"));
        assert_eq!(d["Umask"].as_signed_integer(), Some(7));
        assert_eq!(
            d["Label"].as_string(),
            Some("com.halfday.agents.hexagent.gateway")
        );
    }

    #[test]
    fn the_egress_watchdog_is_a_root_job_on_a_schedule_and_network_change() {
        let loaded = crate::spec::load(None).expect("example is valid");
        let plan = Plan::new(&loaded.spec);
        let bytes = egress_plist(&plan.egress).expect("plist");
        let d = plist::from_bytes::<Value>(&bytes)
            .expect("parses")
            .into_dictionary()
            .expect("dict");
        assert!(!d.contains_key("UserName"), "runs as root");
        assert_eq!(d["Label"].as_string(), Some("com.halfday.agents.egress"));
        assert_eq!(d["StartInterval"].as_signed_integer(), Some(300));
        assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
        let watched = d["WatchPaths"].as_array().expect("WatchPaths");
        assert_eq!(watched[0].as_string(), Some("/private/var/run/resolv.conf"));
        let args = d["ProgramArguments"].as_array().expect("args");
        assert_eq!(
            args[1].as_string(),
            Some("/Library/Application Support/confine/halfday-agents/egress-watchdog")
        );
    }

    #[test]
    fn environment_holds_no_token() {
        let d = example_plist();
        let env = d["EnvironmentVariables"].as_dictionary().expect("env");
        assert!(env.keys().all(|k| !k.contains("TOKEN")), "{env:?}");
        assert_eq!(env["OPENCLAW_CONFIG_READONLY"].as_string(), Some("1"));
    }
}
