//! Per-agent egress filtering with pf, the packet filter macOS ships (pf.conf(5), pfctl(8)).
//!
//! One anchor per fleet, rendered from `templates/pf-anchor.conf`, loaded under Apple's `com.apple/*`
//! wildcard, which the stock `/etc/pf.conf` evaluates: that file is never edited. For each agent's UID the
//! anchor passes loopback, DNS to the Mac's resolvers and the spec's allowlist, and blocks every other TCP
//! and UDP packet `quick` with `return`. pf's `user` match only sees TCP and UDP sockets, so ICMP is not
//! filtered; DNS queries made through mDNSResponder run as `_mdnsresponder`, not as the agent, so they are
//! not filtered per agent either (both are stated in the README).
//!
//! Host names cannot be pf rules: they become tables that a root LaunchDaemon, the watchdog
//! (`pkg/egress-watchdog`, functions in `pkg/egress.sh`), fills from the system resolver. The same
//! daemon re-enables pf with its own reference token and reloads the anchor when something flushed it.

use anyhow::{Context, Result};
use askama::Template;

use crate::plan::{DNS_TABLE, Plan, REFRESH_SECONDS};
use crate::spec::egress::Destination;

#[derive(Template)]
#[template(path = "pf-anchor.conf", escape = "none")]
struct Anchor<'a> {
    fleet: &'a str,
    label: &'a str,
    anchor: &'a str,
    dns_table: &'static str,
    refresh_seconds: u32,
    agents: Vec<AgentRules<'a>>,
}

struct AgentRules<'a> {
    name: &'a str,
    uid: u32,
    rules: Vec<Rule>,
}

struct Rule {
    table: String,
    network: Option<String>,
    host: Option<String>,
    protocol: &'static str,
    /// `443`, or `{ 22 443 }`.
    ports: String,
}

/// The fleet's pf anchor, or None when no agent has `egress`.
pub fn anchor(plan: &Plan) -> Result<Option<Vec<u8>>> {
    let egress = &plan.egress;
    if !egress.enabled {
        return Ok(None);
    }
    let agents = plan
        .agents
        .iter()
        .filter_map(|a| {
            let e = a.egress.as_ref()?;
            Some(AgentRules {
                name: &a.name,
                uid: a.uid,
                rules: e.rules.iter().map(rule).collect(),
            })
        })
        .collect();
    let text = Anchor {
        fleet: &plan.fleet.name,
        label: &egress.label,
        anchor: &egress.anchor,
        dns_table: DNS_TABLE,
        refresh_seconds: REFRESH_SECONDS,
        agents,
    }
    .render()
    .context("rendering the pf anchor")?;
    Ok(Some(format!("{text}\n").into_bytes()))
}

fn rule(r: &crate::plan::EgressRulePlan) -> Rule {
    let (network, host) = match &r.destination {
        Destination::Network(n) => (Some(n.clone()), None),
        Destination::Host(h) => (None, Some(h.clone())),
    };
    let ports = match r.ports.as_slice() {
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(u32::to_string).collect();
            format!("{{ {} }}", list.join(" "))
        }
    };
    Rule {
        table: r.table.clone(),
        network,
        host,
        protocol: r.protocol.as_str(),
        ports,
    }
}

/// The watchdog's files in the payload: its plist, the anchor and the script (root-owned, 0644/0755).
pub fn payload_files(plan: &Plan) -> Result<Vec<(String, Vec<u8>, u32)>> {
    let egress = &plan.egress;
    let Some(anchor) = anchor(plan)? else {
        return Ok(Vec::new());
    };
    Ok(vec![
        (
            egress.plist_path.clone(),
            crate::launchd::egress_plist(egress)?,
            0o644,
        ),
        (egress.anchor_file.clone(), anchor, 0o644),
        (egress.daemon.clone(), WATCHDOG.as_bytes().to_vec(), 0o755),
    ])
}

/// The watchdog launchd runs; its functions are in `pkg/egress.sh` (shipped beside it).
pub const WATCHDOG: &str = include_str!("../pkg/egress-watchdog");
