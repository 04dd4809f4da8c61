//! The `hardening.profiles` block: which configuration profiles the fleet emits and what they hold.
//!
//! Every block has a secure default and `enabled: false` turns it off. Settings use Apple's key names where
//! they pass straight into a payload (`restrictions.settings`, `raw`). The checks here are the ones that need
//! only the spec; [`crate::profile`] then builds every profile and holds it to the payload catalog, so a value
//! Apple would reject is reported at the spec line that wrote it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use super::{Located, Problem};

/// Team ID of the Node.js Foundation's Developer ID certificate, which signs the nodejs.org `node` binary.
pub const NODEJS_TEAM_ID: &str = "HX7739G8FX";

/// Configuration profiles for the agent host: one profile per concern, each block can be turned off.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// `per_concern` (default) writes one profile per block, so each can be scoped and replaced on its own;
    /// `single` puts every payload into one profile.
    #[serde(default)]
    pub grouping: Grouping,
    /// Sets `PayloadRemovalDisallowed`. macOS 10.15 and later only honours it for manually installed
    /// profiles; MDM-installed profiles can never be removed by a user.
    #[serde(default = "yes")]
    pub removal_disallowed: bool,
    /// Text the user must accept before installing a profile by hand (`ConsentText`, `default` language).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub consent_text: Option<Located<String>>,
    #[serde(default)]
    pub managed_login_items: ManagedLoginItems,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub login_window: LoginWindow,
    #[serde(default)]
    pub pppc: Pppc,
    #[serde(default)]
    pub restrictions: Restrictions,
    #[serde(default)]
    pub gatekeeper: Gatekeeper,
    /// The fleet's own CA certificate, trusted system-wide (`com.apple.security.root`). Off unless given.
    #[serde(default)]
    pub certificate: Option<Certificate>,
    /// Any other payload, written as a map of Apple keys. Checked against confine's catalog when it knows the
    /// PayloadType; otherwise built with a warning.
    #[serde(default)]
    pub raw: Vec<RawPayload>,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            grouping: Grouping::default(),
            removal_disallowed: true,
            consent_text: None,
            managed_login_items: ManagedLoginItems::default(),
            firewall: Firewall::default(),
            login_window: LoginWindow::default(),
            pppc: Pppc::default(),
            restrictions: Restrictions::default(),
            gatekeeper: Gatekeeper::default(),
            certificate: None,
            raw: Vec::new(),
        }
    }
}

/// How payloads are grouped into profiles.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// One profile per block: `<fleet.identifier>.profile.<block>`.
    #[default]
    PerConcern,
    /// One profile, `<fleet.identifier>.profile.hardening`, holding every payload.
    Single,
}

/// Managed Login Items (`com.apple.servicemanagement`, macOS 13+, user-approved MDM): one `Label` rule per
/// agent daemon, so the daemon is enabled and a user cannot turn it off in System Settings › Login Items.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedLoginItems {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Also require the daemon's program to be signed by this Team ID (`TeamIdentifier` on each rule).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub team_identifier: Option<Located<String>>,
}

impl Default for ManagedLoginItems {
    fn default() -> Self {
        ManagedLoginItems {
            enabled: true,
            team_identifier: None,
        }
    }
}

/// The Application Firewall (`com.apple.security.firewall`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Don't answer probes such as ping (`EnableStealthMode`).
    #[serde(default = "yes")]
    pub stealth_mode: bool,
    /// Block every incoming connection, including Screen Sharing and Remote Login (`BlockAllIncoming`). The
    /// agent's gateway listens on loopback only, so it is unaffected.
    #[serde(default)]
    pub block_all_incoming: bool,
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            enabled: true,
            stealth_mode: true,
            block_all_incoming: false,
        }
    }
}

/// The login window: agent accounts hidden, guest account off (`com.apple.loginwindow`, `com.apple.MCX`, and
/// `com.apple.ManagedClient.preferences` for `HiddenUsersList`, which Apple's loginwindow payload lacks).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginWindow {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// List every agent account in the login window's `HiddenUsersList`.
    #[serde(default = "yes")]
    pub hide_agents: bool,
    /// Turn the guest account off (`DisableGuestAccount`, `EnableGuestAccount: false`).
    #[serde(default = "yes")]
    pub disable_guest_account: bool,
    /// Ignore the `>console` user name, which opens a text console (`DisableConsoleAccess`).
    #[serde(default = "yes")]
    pub disable_console_access: bool,
    /// Show name and password fields instead of a list of users (`SHOWFULLNAME`).
    #[serde(default)]
    pub show_name_and_password: bool,
}

impl Default for LoginWindow {
    fn default() -> Self {
        LoginWindow {
            enabled: true,
            hide_agents: true,
            disable_guest_account: true,
            disable_console_access: true,
            show_name_and_password: false,
        }
    }
}

/// Privacy Preferences Policy Control (`com.apple.TCC.configuration-profile-policy`, user-approved MDM):
/// denies each agent's `node` binary access to protected data and to controlling the Mac. The binary is named
/// by path plus code requirement, so a different binary at that path gets no rule from this profile.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pppc {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// TCC services to deny, by Apple's name (`SystemPolicyAllFiles` is Full Disk Access). Default: every
    /// service that applies to a command-line program and exists on the fleet's minimum macOS.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub deny: Option<Vec<Located<String>>>,
    /// Team ID in the default code requirement.
    #[serde(default = "nodejs_team")]
    #[schemars(with = "String")]
    pub team_identifier: Located<String>,
    /// The node binary's code requirement (`codesign --display -r - /usr/local/bin/node`). Default: the
    /// Developer ID requirement of the nodejs.org build, for `team_identifier`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub code_requirement: Option<Located<String>>,
    /// Accept a requirement that is only a `cdhash` (ad-hoc signed node, e.g. Homebrew's). Off: a cdhash
    /// changes with every node update, after which the rules silently stop matching.
    #[serde(default)]
    pub allow_adhoc_node: bool,
}

impl Default for Pppc {
    fn default() -> Self {
        Pppc {
            enabled: true,
            deny: None,
            team_identifier: nodejs_team(),
            code_requirement: None,
            allow_adhoc_node: false,
        }
    }
}

/// Restrictions (`com.apple.applicationaccess`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restrictions {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Apple restriction keys and values, merged over confine's defaults (no profile or certificate
    /// installation from the UI, no new local users, no changes to sharing, remote management and startup
    /// disk; keys newer than the fleet's minimum macOS are left out of the defaults).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub settings: BTreeMap<String, Located<RawValue>>,
}

/// Gatekeeper (`com.apple.systempolicy.control`, `com.apple.systempolicy.managed`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gatekeeper {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Allow identified developers besides the App Store (`AllowIdentifiedDevelopers`).
    #[serde(default = "yes")]
    pub allow_identified_developers: bool,
    /// Remove the Finder's "Open" override of Gatekeeper (`DisableOverride`).
    #[serde(default = "yes")]
    pub disable_override: bool,
    /// `EnableXProtectMalwareUpload` (macOS 15+): `false` stops prompts to send blocked malware to Apple.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub enable_xprotect_malware_upload: Option<Located<bool>>,
}

impl Default for Gatekeeper {
    fn default() -> Self {
        Gatekeeper {
            enabled: true,
            allow_identified_developers: true,
            disable_override: true,
            enable_xprotect_malware_upload: None,
        }
    }
}

/// A certificate file deployed as a trusted root.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// PEM or DER certificate file, relative to the spec file.
    #[schemars(with = "String")]
    pub path: Located<String>,
}

/// One payload written by hand.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPayload {
    /// Short name: lower-case letters, digits and `-`. Names the profile (`<fleet.identifier>.profile.<name>`)
    /// and the payload inside it.
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// Apple's `PayloadType`, e.g. `com.apple.screensaver`.
    #[schemars(with = "String")]
    pub payload_type: Located<String>,
    /// The payload's keys. YAML booleans become `<true/>`/`<false/>`, integers `<integer>`, numbers with a
    /// point `<real>`, strings `<string>`, lists `<array>`, maps `<dict>`; `{$data: <base64>}` gives
    /// `<data>` and `{$date: 2026-01-31T00:00:00Z}` gives `<date>`.
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub settings: BTreeMap<String, Located<RawValue>>,
}

/// A plist value written in YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Boolean(bool),
    Integer(i64),
    Real(f64),
    String(String),
    /// `{$data: <base64>}`, decoded.
    Data(Vec<u8>),
    /// `{$date: <RFC 3339 UTC>}`.
    Date(String),
    Array(Vec<Located<RawValue>>),
    Dictionary(BTreeMap<String, Located<RawValue>>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawValueVisitor)
    }
}

struct RawValueVisitor;

impl<'de> Visitor<'de> for RawValueVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean, number, string, list or map")
    }

    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Boolean(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        i64::try_from(v)
            .map(RawValue::Integer)
            .map_err(|_| E::custom(format!("{v} does not fit a plist integer")))
    }

    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Real(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::String(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located<RawValue>>()? {
            items.push(item);
        }
        Ok(RawValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut dict = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Located<RawValue>>()?;
            dict.insert(key, value);
        }
        special_value(dict)
    }
}

/// `{$data: …}` and `{$date: …}` stand for plist types YAML has no literal for.
fn special_value<E: de::Error>(dict: BTreeMap<String, Located<RawValue>>) -> Result<RawValue, E> {
    let mut entries = dict.iter();
    let (Some((key, value)), None) = (entries.next(), entries.next()) else {
        return Ok(RawValue::Dictionary(dict));
    };
    match (key.as_str(), &value.value) {
        ("$data", RawValue::String(text)) => {
            let compact: String = text.split_whitespace().collect();
            openssl::base64::decode_block(&compact)
                .map(RawValue::Data)
                .map_err(|_| E::custom("`$data` is not valid base64"))
        }
        ("$date", RawValue::String(text)) => match plist::Date::from_xml_format(text) {
            Ok(_) => Ok(RawValue::Date(text.clone())),
            Err(_) => Err(E::custom(format!(
                "`$date` `{text}` is not a date like 2026-01-31T00:00:00Z"
            ))),
        },
        ("$data" | "$date", _) => Err(E::custom(format!("`{key}` takes a string"))),
        _ => Ok(RawValue::Dictionary(dict)),
    }
}

fn yes() -> bool {
    true
}

fn nodejs_team() -> Located<String> {
    Located::new(
        NODEJS_TEAM_ID.to_owned(),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Block names that are also profile names; a raw payload may not take one.
pub const CONCERNS: &[&str] = &[
    "managed-login-items",
    "firewall",
    "login-window",
    "pppc",
    "restrictions",
    "gatekeeper",
    "certificate",
    "hardening",
];

impl Default for Restrictions {
    fn default() -> Self {
        Restrictions {
            enabled: true,
            settings: BTreeMap::new(),
        }
    }
}

impl Profiles {
    /// Checks the profile blocks against the rest of the spec, then (when the spec is otherwise clean) builds
    /// every profile and checks it against the payload catalog.
    pub(crate) fn validate(&self, problems: &mut Vec<super::Problem>) {
        if let Some(text) = &self.consent_text
            && (text.value.trim().is_empty() || text.value.chars().count() > 4096)
        {
            problems.push(Problem::at(
                &text.referenced,
                "consent text is empty or longer than 4096 characters",
                "write the agreement users must accept, or remove `consent_text`",
            ));
        }
        if let Some(team) = &self.managed_login_items.team_identifier {
            team_identifier(team, problems);
        }
        self.pppc.validate(problems);
        if let Some(cert) = &self.certificate
            && (cert.path.value.trim().is_empty() || cert.path.value.contains('\0'))
        {
            problems.push(Problem::at(
                &cert.path.referenced,
                "the certificate path is empty",
                "give a PEM or DER file relative to the spec file",
            ));
        }
        raw_payloads(&self.raw, problems);
    }
}

impl Pppc {
    fn validate(&self, problems: &mut Vec<Problem>) {
        team_identifier(&self.team_identifier, problems);
        let Some(requirement) = &self.code_requirement else {
            return;
        };
        if requirement.value.trim().is_empty() || requirement.value.contains(['\n', '\0']) {
            problems.push(Problem::at(
                &requirement.referenced,
                "the code requirement is empty or spans lines",
                "paste the one-line output of `codesign --display -r - <node>` after `designated =>`",
            ));
        } else if is_cdhash_only(&requirement.value) && !self.allow_adhoc_node {
            problems.push(Problem::at(
                &requirement.referenced,
                "this code requirement names only a cdhash: the node binary is ad-hoc signed (e.g. Homebrew's), and its cdhash changes with every update, after which the PPPC rules stop matching without a word",
                "install the Developer ID signed node from nodejs.org (Team HX7739G8FX) and drop `code_requirement`, or set `allow_adhoc_node: true` and rebuild the profile after every node update",
            ));
        }
    }
}

/// A requirement that pins no signer: only `cdhash` clauses, no anchor, certificate or identifier.
pub fn is_cdhash_only(requirement: &str) -> bool {
    requirement.contains("cdhash")
        && !["anchor", "certificate", "identifier", "info["]
            .iter()
            .any(|k| requirement.contains(k))
}

fn team_identifier(team: &Located<String>, problems: &mut Vec<Problem>) {
    let ok = team.value.len() == 10
        && team
            .value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !ok {
        problems.push(Problem::at(
            &team.referenced,
            format!("`{}` is not an Apple Team ID", team.value.escape_debug()),
            "a Team ID is 10 upper-case letters and digits, e.g. HX7739G8FX",
        ));
    }
}

/// Common payload keys confine writes itself.
const RESERVED_KEYS: &[&str] = &[
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadType",
    "PayloadVersion",
    "PayloadDisplayName",
    "PayloadDescription",
    "PayloadOrganization",
];

fn raw_payloads(raw: &[RawPayload], problems: &mut Vec<Problem>) {
    let mut names = BTreeSet::new();
    for payload in raw {
        let name = &payload.name;
        let slug = !name.value.is_empty()
            && name.value.len() <= 63
            && name.value.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !slug {
            problems.push(Problem::at(
                &name.referenced,
                format!(
                    "raw payload name `{}` is not a short name",
                    name.value.escape_debug()
                ),
                "use lower-case letters, digits and `-`, starting with a letter",
            ));
        } else if CONCERNS.contains(&name.value.as_str()) || !names.insert(name.value.as_str()) {
            problems.push(Problem::at(
                &name.referenced,
                format!("raw payload name `{}` is already taken", name.value),
                format!(
                    "pick a name other than {} and the other raw payloads",
                    CONCERNS.join(", ")
                ),
            ));
        }
        for (key, value) in &payload.settings {
            if RESERVED_KEYS.contains(&key.as_str()) {
                problems.push(Problem::at(
                    &value.referenced,
                    format!("`{key}` is set by confine"),
                    "remove it: confine derives identifiers, UUIDs, type, version and names from the spec",
                ));
            }
        }
        let t = &payload.payload_type.value;
        let ok = t.split('.').count() >= 2
            && t.split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || "-_()".contains(c)));
        if !ok {
            problems.push(Problem::at(
                &payload.payload_type.referenced,
                format!("`{}` is not a PayloadType", t.escape_debug()),
                "use Apple's reverse-DNS payload type, e.g. `com.apple.screensaver`",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdhash_only_requirements() {
        assert!(is_cdhash_only(
            r#"cdhash H"8a2c0e3b4e7d0c9f1b2a3c4d5e6f708192a3b4c5""#
        ));
        assert!(!is_cdhash_only(
            r#"identifier "node" and anchor apple generic and certificate leaf[subject.OU] = HX7739G8FX"#
        ));
    }
}
