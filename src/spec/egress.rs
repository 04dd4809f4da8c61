//! `agents[].egress`: where an agent may connect. Off unless written; when written, pf blocks every other
//! TCP and UDP connection the agent's UID opens (see [`crate::egress`] for the anchor and its daemon).

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::Located;

/// Outbound network access of the agent, enforced by pf for its UID. Loopback and DNS to the Mac's own
/// resolvers are always allowed; so is everything listed here; every other TCP and UDP connection is
/// refused. ICMP cannot be filtered per user (pf matches users on TCP and UDP sockets only).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    /// Destinations the agent may reach. Empty: loopback and DNS only.
    #[serde(default)]
    pub allow: Vec<EgressRule>,
}

/// One allowed destination.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// A host name (resolved on the Mac by a root daemon, refreshed every few minutes and on network
    /// change), an IPv4 or IPv6 address, or a CIDR block such as `140.82.112.0/20`.
    #[schemars(with = "String")]
    pub to: Located<String>,
    /// Destination ports, 1 to 65535.
    #[schemars(with = "Vec<u32>")]
    pub ports: Vec<Located<u32>>,
    #[serde(default)]
    pub protocol: EgressProtocol,
}

/// The transport an allowed destination is reached over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EgressProtocol {
    #[default]
    Tcp,
    Udp,
}

impl EgressProtocol {
    /// The name pf.conf uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressProtocol::Tcp => "tcp",
            EgressProtocol::Udp => "udp",
        }
    }
}

/// What an allowlist entry's `to` is, once checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    /// An address or CIDR block, written as pf reads it.
    Network(String),
    /// A DNS name, resolved on the Mac.
    Host(String),
}

/// Reads `to`: an IP address, a CIDR block with no host bits set, or a DNS host name. The error says why not.
pub fn destination(to: &str) -> Result<Destination, String> {
    use std::net::IpAddr;
    if let Some((address, prefix)) = to.split_once('/') {
        let ip: IpAddr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u32 = match prefix.parse() {
            Ok(bits) if bits <= max && !prefix.starts_with('+') => bits,
            _ => return Err(format!("`/{prefix}` is not a prefix length from 0 to {max}")),
        };
        if bits == 0 {
            return Err("a /0 block allows every address".to_owned());
        }
        let host_bits = match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)) & (u128::from(u32::MAX) >> bits),
            IpAddr::V6(v6) => u128::from(v6) & (u128::MAX >> bits),
        };
        if host_bits != 0 {
            return Err(format!("`{to}` has host bits set past /{bits}"));
        }
        return Ok(Destination::Network(format!("{ip}/{bits}")));
    }
    if let Ok(ip) = to.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(format!("`{to}` is the unspecified address"));
        }
        return Ok(Destination::Network(ip.to_string()));
    }
    let labels_ok = to.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let last_numeric = to
        .rsplit('.')
        .next()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
    if to.len() > 253 || !labels_ok || last_numeric {
        return Err(format!(
            "`{to}` is not a host name, an IP address or a CIDR block"
        ));
    }
    Ok(Destination::Host(to.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let net = |s: &str| Ok(Destination::Network(s.to_owned()));
        assert_eq!(destination("140.82.112.0/20"), net("140.82.112.0/20"));
        assert_eq!(destination("10.0.0.1"), net("10.0.0.1"));
        assert_eq!(destination("2001:db8::/32"), net("2001:db8::/32"));
        assert_eq!(destination("2001:DB8::1"), net("2001:db8::1"));
        assert_eq!(
            destination("API.GitHub.com"),
            Ok(Destination::Host("api.github.com".into()))
        );
        for bad in [
            "10.0.0.1/8",
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "1.2.3",
            "0.0.0.0",
            "a..b",
            "-a.com",
            "a_b.com",
            "a.com;",
            "",
            "x/8",
            "a.com/8",
            "256.1.1.1",
        ] {
            assert!(destination(bad).is_err(), "{bad}");
        }
    }
}
