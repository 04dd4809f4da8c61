//! The resolved egress filter: pf anchor and table names, the watchdog daemon's paths, and the probes the
//! self-check makes. Decided here once; `crate::egress` renders them and `pkg/egress.sh` uses them.

use std::net::IpAddr;

use super::FleetPlan;
use crate::spec::egress::{Destination, Egress, EgressProtocol, destination};

/// Seconds between two runs of the watchdog (it also runs at load and on every network change).
pub const REFRESH_SECONDS: u32 = 300;
/// How long a host name's last good addresses are kept when it no longer resolves: after this, its
/// table is emptied (fail closed) until it resolves again.
pub const ADDRESS_TTL_SECONDS: u32 = 3600;
/// The anchor table of the Mac's current DNS resolvers, filled by the watchdog from `scutil --dns`.
pub const DNS_TABLE: &str = "confine_dns";
/// Addresses the self-check tries to reach as the agent, expecting pf to refuse: well-known public
/// resolvers' HTTPS ports, the first one the allowlist does not name.
const DENIED_PROBES: &[&str] = &["1.1.1.1", "9.9.9.9", "8.8.8.8", "208.67.222.222"];

/// The fleet's egress machinery. Its names are fixed by the fleet, so a release without `egress` can
/// remove what an earlier one installed.
#[derive(Debug, Clone)]
pub struct FleetEgressPlan {
    /// At least one agent has `egress`.
    pub enabled: bool,
    /// The pf anchor, under Apple's `com.apple/*` wildcard that `/etc/pf.conf` already evaluates, so that
    /// file is never edited. `000.` sorts it before Apple's own sub-anchors (wildcard anchors run in name
    /// order): its `quick` rules decide first.
    pub anchor: String,
    /// The anchor's rules on the Mac, root-owned.
    pub anchor_file: String,
    /// The watchdog's launchd label and plist.
    pub label: String,
    pub plist_path: String,
    /// The watchdog's script, root-owned, beside the installer's shared functions.
    pub daemon: String,
    /// Root-only runtime state: the pf reference token, each host table's last good addresses.
    pub state_dir: String,
    /// Where launchd writes the watchdog's output.
    pub log_path: String,
}

/// One agent's allowlist, as pf tables and rules.
#[derive(Debug, Clone)]
pub struct EgressPlan {
    pub rules: Vec<EgressRulePlan>,
    /// `host port` the self-check connects to as the agent and expects to succeed: the first TCP entry
    /// that names one host or address, on 443 if listed. None when the allowlist has no such entry.
    pub allowed_probe: Option<(String, u32)>,
    /// The address the self-check connects to (TCP 443) as the agent and expects pf to refuse.
    pub denied_probe: String,
}

#[derive(Debug, Clone)]
pub struct EgressRulePlan {
    /// The pf table of this entry's addresses, in the fleet's anchor: `confine_<uid>_<n>`.
    pub table: String,
    pub destination: Destination,
    pub protocol: EgressProtocol,
    pub ports: Vec<u32>,
}

pub(super) fn fleet_egress(
    fleet: &FleetPlan,
    support_dir: &str,
    log_root: &str,
    enabled: bool,
) -> FleetEgressPlan {
    let label = format!("{}.egress", fleet.identifier);
    FleetEgressPlan {
        enabled,
        anchor: format!("com.apple/000.confine.{}", fleet.name),
        anchor_file: format!("{support_dir}/egress-anchor.conf"),
        plist_path: format!("/Library/LaunchDaemons/{label}.plist"),
        label,
        daemon: format!("{support_dir}/egress-watchdog"),
        state_dir: format!("{support_dir}/egress-state"),
        log_path: format!("{log_root}/{}-egress.log", fleet.name),
    }
}

pub(super) fn agent_egress(uid: u32, egress: &Egress) -> EgressPlan {
    let rules: Vec<EgressRulePlan> = egress
        .allow
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            Some(EgressRulePlan {
                table: format!("confine_{uid}_{}", i + 1),
                destination: destination(&rule.to.value).ok()?,
                protocol: rule.protocol,
                ports: rule.ports.iter().map(|p| p.value).collect(),
            })
        })
        .collect();
    let allowed_probe = rules.iter().find_map(|r| {
        let host = match &r.destination {
            _ if r.protocol != EgressProtocol::Tcp => return None,
            Destination::Host(h) => h.clone(),
            Destination::Network(n) if !n.contains('/') => n.clone(),
            Destination::Network(_) => return None,
        };
        // HTTPS if listed: the port most likely to be open beyond the Mac too.
        let port = if r.ports.contains(&443) { 443 } else { r.ports[0] };
        Some((host, port))
    });
    let denied_probe = DENIED_PROBES
        .iter()
        .find(|probe| !rules.iter().any(|r| covers(&r.destination, probe)))
        .unwrap_or(&DENIED_PROBES[0]);
    EgressPlan {
        rules,
        allowed_probe,
        denied_probe: (*denied_probe).to_owned(),
    }
}

/// Whether a literal destination includes `address` (host names are only known on the Mac).
fn covers(destination: &Destination, address: &str) -> bool {
    let Destination::Network(network) = destination else {
        return false;
    };
    let (Ok(IpAddr::V4(a)), Some((net, bits))) = (
        address.parse::<IpAddr>(),
        network.split_once('/').or(Some((network.as_str(), "32"))),
    ) else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}
