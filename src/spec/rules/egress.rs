//! `agents[].egress`: each allowed destination is an address, a CIDR block or a host name, reached on
//! listed ports. The list is bounded: each entry becomes a pf table and rule on every Mac, and each host
//! name a lookup by a root daemon every few minutes.

use std::collections::BTreeSet;

use super::super::egress::destination;
use super::super::error::Problem;
use super::super::model::Spec;
use super::super::validate::escape;

/// Allowlist entries per agent. pf takes far more; a list this long is a sign the agent needs a proxy.
pub const MAX_RULES: usize = 64;

pub(super) fn check(spec: &Spec, problems: &mut Vec<Problem>) {
    for agent in &spec.agents {
        let Some(egress) = &agent.egress else {
            continue;
        };
        let mut seen = BTreeSet::new();
        for (i, rule) in egress.allow.iter().enumerate() {
            if i == MAX_RULES {
                problems.push(Problem::at(
                    &rule.to.referenced,
                    format!(
                        "agent `{}` has more than {MAX_RULES} egress entries",
                        agent.name.value
                    ),
                    "merge addresses into CIDR blocks, or send the agent through a proxy",
                ));
            }
            match destination(&rule.to.value) {
                Err(why) => problems.push(Problem::at(
                    &rule.to.referenced,
                    format!("egress destination `{}` is not usable: {}", escape(&rule.to.value), escape(&why)),
                    "write a host name (`api.github.com`), an address (`192.0.2.10`) or a CIDR block (`140.82.112.0/20`)",
                )),
                Ok(to) => {
                    if !seen.insert((to, rule.protocol)) {
                        problems.push(Problem::at(
                            &rule.to.referenced,
                            format!("egress destination `{}` is listed twice for {}", rule.to.value, rule.protocol.as_str()),
                            "list each destination once, with all its ports",
                        ));
                    }
                }
            }
            if rule.ports.is_empty() {
                problems.push(Problem::at(
                    &rule.to.referenced,
                    format!("egress destination `{}` has no ports", escape(&rule.to.value)),
                    "list the ports the agent may reach there, e.g. `ports: [443]`",
                ));
            }
            let mut ports = BTreeSet::new();
            for port in &rule.ports {
                if !(1..=65535).contains(&port.value) {
                    problems.push(Problem::at(
                        &port.referenced,
                        format!("port {} is out of range", port.value),
                        "use 1 to 65535",
                    ));
                } else if !ports.insert(port.value) {
                    problems.push(Problem::at(
                        &port.referenced,
                        format!("port {} is listed twice", port.value),
                        "list each port once",
                    ));
                }
            }
        }
    }
}
