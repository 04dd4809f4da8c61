//! The optional `mdm` block: where `confine push` delivers a build. It names tenants, the groups or
//! blueprints to scope to, and the environment variables that hold credentials; never a credential.

use schemars::JsonSchema;
use serde::Deserialize;

use super::validate::{escape, is_env_name};
use super::{Located, Problem};

/// The MDM tenants `confine push` delivers to.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mdm {
    pub jamf: Option<Jamf>,
    pub kandji: Option<Kandji>,
}

/// A Jamf Pro tenant, reached with an API client (OAuth client credentials).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Jamf {
    /// Base URL, e.g. `https://example.jamfcloud.com`. `https://` only (`http://` for loopback tests).
    #[schemars(with = "String")]
    pub url: Located<String>,
    /// Environment variable holding the API client id.
    #[serde(default = "default_jamf_client_id_env")]
    #[schemars(with = "String")]
    pub client_id_env: Located<String>,
    /// Environment variable holding the API client secret.
    #[serde(default = "default_jamf_client_secret_env")]
    #[schemars(with = "String")]
    pub client_secret_env: Located<String>,
    /// Existing category for the package, profiles and policy.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub category: Option<Located<String>>,
    /// Existing computer groups the package policy and the profiles are scoped to.
    #[schemars(with = "Vec<String>")]
    pub computer_groups: Vec<Located<String>>,
    /// Which Macs get a profile again when confine changes it (Jamf's "redeploy on update"): `all`, the
    /// default, so Macs that already have it get the change; `newly-assigned` only for Macs added to
    /// the scope later.
    #[serde(default)]
    pub redeploy_profiles: Redeploy,
}

/// Jamf Pro's `redeploy_on_update` for a changed profile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Redeploy {
    /// Every Mac in scope receives the changed profile.
    #[default]
    All,
    /// Only Macs newly added to the scope receive it; the others keep the old version.
    NewlyAssigned,
}

impl Redeploy {
    /// The value Jamf Pro's Classic API uses.
    pub fn jamf_value(self) -> &'static str {
        match self {
            Redeploy::All => "All",
            Redeploy::NewlyAssigned => "Newly Assigned",
        }
    }
}

/// How Kandji keeps the agent's package installed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// Kandji runs an audit script on every check-in (installed receipt at least this release) and
    /// installs the package when it fails: a new release reaches Macs that have an older one.
    #[default]
    AuditAndEnforce,
    /// Kandji installs the package once per Mac and never again: a new release reaches only Macs that
    /// never had the agent.
    InstallOnce,
}

/// A Kandji (Iru) tenant, reached with an API token.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kandji {
    /// API base URL, e.g. `https://example.api.kandji.io`, `https://example.api.eu.kandji.io` (EU) or
    /// `https://example.api.iru.com`.
    #[schemars(with = "String")]
    pub url: Located<String>,
    /// Environment variable holding the API token.
    #[serde(default = "default_kandji_token_env")]
    #[schemars(with = "String")]
    pub token_env: Located<String>,
    /// Existing blueprints the library items are assigned to.
    #[schemars(with = "Vec<String>")]
    pub blueprints: Vec<Located<String>>,
    /// How the package stays installed: `audit-and-enforce` (default; new releases reach every Mac) or
    /// `install-once`.
    #[serde(default)]
    pub enforcement: Enforcement,
}

impl Mdm {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if let Some(jamf) = &self.jamf {
            url(&jamf.url, problems);
            for env in [&jamf.client_id_env, &jamf.client_secret_env] {
                env_name(env, problems);
            }
            if let Some(category) = &jamf.category {
                name(category, "category", problems);
            }
            names(&jamf.computer_groups, "computer group", problems);
        }
        if let Some(kandji) = &self.kandji {
            url(&kandji.url, problems);
            env_name(&kandji.token_env, problems);
            names(&kandji.blueprints, "blueprint", problems);
        }
    }
}

/// `https://host[:port][/path]`, or `http://` to a loopback address (test doubles). No credentials, query
/// or fragment: the URL is printed in messages.
fn url(value: &Located<String>, problems: &mut Vec<Problem>) {
    let v = value.value.as_str();
    let (scheme, rest) = v.split_once("://").unwrap_or(("", v));
    let host_port = rest.split('/').next().unwrap_or_default();
    let host =
        match host_port.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || host_port.starts_with('[') => {
                if port.parse::<u16>().is_ok() { h } else { host_port }
            }
            _ => host_port,
        };
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    let help = "use `https://` and the tenant's host name, e.g. `https://example.jamfcloud.com`; `http://` is allowed only for 127.0.0.1";
    let shaped = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        && !rest.contains(['?', '#', '@', ' ']);
    if !shaped {
        problems.push(Problem::at(
            &value.referenced,
            format!("`{}` is not a plain URL", escape(v)),
            help,
        ));
    } else if !(scheme == "https" || (scheme == "http" && loopback)) {
        problems.push(Problem::at(
            &value.referenced,
            format!(
                "`{}` is not https: credentials would cross the network in the clear",
                escape(v)
            ),
            help,
        ));
    }
}

fn env_name(value: &Located<String>, problems: &mut Vec<Problem>) {
    if !is_env_name(&value.value) {
        problems.push(Problem::at(
            &value.referenced,
            format!("`{}` is not an environment variable name", escape(&value.value)),
            "name the variable that holds the credential (upper-case letters, digits and `_`), never the credential itself",
        ));
    }
}

fn names(values: &[Located<String>], what: &str, problems: &mut Vec<Problem>) {
    for value in values {
        name(value, what, problems);
    }
}

fn name(value: &Located<String>, what: &str, problems: &mut Vec<Problem>) {
    let v = &value.value;
    if v.trim().is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) {
        problems.push(Problem::at(
            &value.referenced,
            format!("{what} `{}` is not a usable name", escape(v)),
            format!("write the {what}'s name exactly as the MDM shows it"),
        ));
    }
}

fn default_jamf_client_id_env() -> Located<String> {
    super::model::unlocated("JAMF_CLIENT_ID".to_owned())
}
fn default_jamf_client_secret_env() -> Located<String> {
    super::model::unlocated("JAMF_CLIENT_SECRET".to_owned())
}
fn default_kandji_token_env() -> Located<String> {
    super::model::unlocated("KANDJI_API_TOKEN".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(v: &str) -> usize {
        let mut p = Vec::new();
        url(&super::super::model::unlocated(v.to_owned()), &mut p);
        p.len()
    }

    #[test]
    fn urls() {
        assert_eq!(problems("https://example.jamfcloud.com"), 0);
        assert_eq!(problems("https://example.api.kandji.io/"), 0);
        assert_eq!(problems("http://127.0.0.1:8080"), 0);
        assert_eq!(problems("http://localhost:1"), 0);
        assert_eq!(problems("http://example.jamfcloud.com"), 1);
        assert_eq!(problems("http://127.0.0.1.evil.com"), 1);
        assert_eq!(problems("ftp://127.0.0.1"), 1);
        assert_eq!(problems("https://user:pw@example.com"), 1);
        assert_eq!(problems("example.com"), 1);
    }
}
