//! The agent's OpenClaw config (`openclaw.json`), rendered from `templates/openclaw.json`.
//!
//! Keys follow OpenClaw's configuration reference for the pinned version: the gateway binds loopback
//! with token auth, and the token is a file SecretRef (never inline), so the config holds no secret. The
//! file is installed root-owned and group-readable by the agent: with `OPENCLAW_CONFIG_READONLY=1`
//! OpenClaw treats it as immutable, and the agent cannot loosen its own policy. The tool policy is
//! OpenClaw's hardened baseline, from the spec's `tools` keys. The exec allowlist is not a config key: it
//! lives in the approvals document in OpenClaw's state, which the installer replaces with
//! `openclaw approvals set`. `openclaw config validate` (run by the installer, and by the end-to-end
//! tests with the real OpenClaw) rejects unknown keys, so it checks this file against the pinned version.
//!
//! Logging: OpenClaw writes its JSONL log to `logging.file` in the agent's log folder and rotates it
//! itself at `logging.maxFileBytes` (10 MiB here, five archives: 60 MiB at most), and its console, which
//! launchd sends to `gateway.out.log`, gets warnings only (`logging.consoleLevel`). launchd holds that
//! file open and cannot rotate it; keeping it small is what makes the newsyslog entry a mere backstop.

use anyhow::{Context, Result};
use askama::Template;

use crate::plan::AgentPlan;
use crate::spec::{ExecMode, SessionsVisibility, ToolProfile};

#[derive(Template)]
#[template(path = "openclaw.json")]
struct ConfigTemplate<'a> {
    agent: &'a AgentPlan,
    profile: &'static str,
    exec_mode: &'static str,
    sessions_visibility: &'static str,
    log_file: String,
}

/// The rendered config of one agent.
pub fn config(agent: &AgentPlan) -> Result<Vec<u8>> {
    let template = ConfigTemplate {
        agent,
        profile: profile(agent.tools.profile),
        exec_mode: exec_mode(agent.tools.exec_mode),
        sessions_visibility: sessions_visibility(agent.tools.sessions_visibility),
        log_file: format!("{}/{}/openclaw.log", agent.log_dir, crate::plan::OPENCLAW_LOG_DIR),
    };
    let mut text = template.render().context("rendering the OpenClaw config")?;
    text.push('\n');
    Ok(text.into_bytes())
}

fn profile(profile: ToolProfile) -> &'static str {
    match profile {
        ToolProfile::Minimal => "minimal",
        ToolProfile::Coding => "coding",
        ToolProfile::Messaging => "messaging",
        ToolProfile::Full => "full",
    }
}

fn sessions_visibility(visibility: SessionsVisibility) -> &'static str {
    match visibility {
        SessionsVisibility::Own => "self",
        SessionsVisibility::Tree => "tree",
        SessionsVisibility::Agent => "agent",
        SessionsVisibility::All => "all",
    }
}

fn exec_mode(mode: ExecMode) -> &'static str {
    match mode {
        ExecMode::Deny => "deny",
        ExecMode::Allowlist => "allowlist",
        ExecMode::Ask => "ask",
        ExecMode::Full => "full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    #[test]
    fn config_is_json_with_a_file_secret_ref() {
        let loaded = crate::spec::load(None).expect("example is valid");
        let plan = Plan::new(&loaded.spec);
        let bytes = config(&plan.agents[0]).expect("config");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["gateway"]["bind"], "loopback");
        assert_eq!(v["gateway"]["auth"]["token"]["source"], "file");
        assert_eq!(
            v["secrets"]["providers"]["gateway-token"]["path"],
            "/Library/Application Support/confine/halfday-agents/agents/hexagent/gateway-token"
        );
        assert_eq!(v["tools"]["exec"]["mode"], "allowlist");
        assert_eq!(v["tools"]["profile"], "coding");
        assert_eq!(v["tools"]["deny"], serde_json::json!(["group:automation"]));
        assert_eq!(v["tools"]["sessions"]["visibility"], "agent");
        assert_eq!(v["tools"]["agentToAgent"]["enabled"], false);
        assert_eq!(v["browser"]["enabled"], false);
    }
}
