//! Strict checks after parsing: every value that reaches a shell script, a path on the Mac or an Apple
//! identifier is held to a narrow, documented shape, and every reference (group names, ids) resolves.

use std::collections::{BTreeMap, BTreeSet};

use super::error::Problem;
use super::model::{Agent, InstallMethod, Located, Spec};
use crate::diagnostics::did_you_mean;

/// The lowest UID/GID a spec may use. Apple's own service accounts live below 500 and interactive users
/// start at 501, so 1000 and up neither collides with the system nor with the first human accounts.
pub(crate) const MIN_ID: u32 = 1000;
/// The highest UID/GID a spec may use; the 6xxxx range holds `nobody`-style and directory-service ids.
pub(crate) const MAX_ID: u32 = 60000;

/// Environment variables the daemon plist sets itself.
const RESERVED_ENVIRONMENT: &[&str] = &["HOME", "PATH", "USER", "LOGNAME", "SHELL", "TMPDIR"];

/// Runs every check and returns all problems found, in file order.
pub(crate) fn validate(spec: &Spec) -> Vec<Problem> {
    let mut c = Checker::default();
    c.fleet(spec);
    c.groups(spec);
    for agent in &spec.agents {
        c.agent(spec, agent);
    }
    c.unique_across_agents(spec);
    c.package(spec);
    c.signing(spec);
    if let Some(mdm) = &spec.mdm {
        mdm.validate(&mut c.problems);
    }
    if let Some(exports) = &spec.exports {
        exports.validate(&mut c.problems);
    }
    spec.hardening.profiles.validate(&mut c.problems);
    super::rules::check(spec, &mut c.problems);
    c.problems.sort_by_key(|p| (p.line, p.column));
    c.problems
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail<T>(&mut self, value: &Located<T>, message: impl Into<String>, help: impl Into<String>) {
        self.problems.push(Problem::at(&value.referenced, message, help));
    }

    fn fleet(&mut self, spec: &Spec) {
        if spec.version.value != 1 {
            self.fail(
                &spec.version,
                format!("unsupported spec version {}", spec.version.value),
                "this confine reads `version: 1`",
            );
        }
        if spec.agents.is_empty() {
            self.problems.push(Problem {
                line: 1,
                column: 1,
                message: "the spec has no agents".to_owned(),
                help: "add at least one entry under `agents:`".to_owned(),
            });
        }
        let f = &spec.fleet;
        self.slug(&f.name, "fleet name");
        self.free_text(&f.organization, "organization", false);
        self.reverse_dns(&f.identifier, "fleet identifier");
        self.version(
            &f.release,
            "release",
            "a release is 1 to 4 dot-separated numbers, e.g. `1.0.0`",
        );
        self.minimum_macos(&f.minimum_macos);
    }

    fn groups(&mut self, spec: &Spec) {
        let agents: BTreeSet<&str> = spec.agents.iter().map(|a| a.name.value.as_str()).collect();
        for group in &spec.groups {
            self.account_name(&group.name, "group name");
            self.id(&group.gid, "GID");
            if let Some(full_name) = &group.full_name {
                self.free_text(full_name, "group full name", true);
            }
            for member in &group.members {
                if !agents.contains(member.value.as_str()) {
                    let help = match did_you_mean(&member.value, agents.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`? Members are agent names"),
                        None => "members are agent names; use `include_local_admins: true` to add the Mac's admins".to_owned(),
                    };
                    self.fail(
                        member,
                        format!("group member `{}` is not an agent of this spec", member.value),
                        help,
                    );
                }
            }
        }
    }

    fn agent(&mut self, spec: &Spec, agent: &Agent) {
        self.account_name(&agent.name, "agent name");
        self.free_text(&agent.full_name, "full name", true);
        self.id(&agent.uid, "UID");
        if let Some(primary) = &agent.primary_group {
            self.account_name(&primary.name, "primary group name");
            self.id(&primary.gid, "primary GID");
        }
        let defined: BTreeSet<&str> = spec.groups.iter().map(|g| g.name.value.as_str()).collect();
        for group in &agent.groups {
            if !defined.contains(group.value.as_str()) {
                let help = match did_you_mean(&group.value, defined.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "define it under the top-level `groups:`".to_owned(),
                };
                self.fail(group, format!("group `{}` is not defined", group.value), help);
            }
        }
        if let Some(home) = &agent.home {
            self.path(home, "home");
        }
        self.path(&agent.shell, "shell");
        self.workspace(agent, &defined);
        self.openclaw(agent);
        self.gateway_and_tools(agent);
        self.launchd(agent);
        self.credentials(agent);
        agent
            .audit
            .validate(&spec.fleet.minimum_macos, &mut self.problems);
    }

    fn workspace(&mut self, agent: &Agent, defined: &BTreeSet<&str>) {
        let ws = &agent.workspace;
        if let Some(path) = &ws.path {
            self.path(path, "workspace path");
        }
        if let Some(group) = &ws.group {
            let personal = agent
                .primary_group
                .as_ref()
                .map_or(agent.name.value.as_str(), |g| g.name.value.as_str());
            if group.value != personal && !defined.contains(group.value.as_str()) {
                let candidates = defined.iter().copied().chain([personal]);
                let help = match did_you_mean(&group.value, candidates) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "use the agent's own group or one under `groups:`".to_owned(),
                };
                self.fail(
                    group,
                    format!("workspace group `{}` is not defined", group.value),
                    help,
                );
            }
        }
        if let Some(mode) = &ws.mode {
            match parse_octal(&mode.value) {
                Some(m) if m & 0o007 != 0 => self.fail(
                    mode,
                    format!("workspace mode {} gives access to every local user", mode.value),
                    "clear the last digit, e.g. `0770`",
                ),
                Some(m) if m & 0o700 != 0o700 => self.fail(
                    mode,
                    format!(
                        "workspace mode {} locks the agent out of its own workspace",
                        mode.value
                    ),
                    "the owner needs rwx: `07x0`",
                ),
                Some(_) => {}
                None => self.fail(
                    mode,
                    format!("`{}` is not an octal mode", mode.value),
                    "write it as a quoted string such as `\"0770\"`",
                ),
            }
        }
    }

    fn openclaw(&mut self, agent: &Agent) {
        let oc = &agent.openclaw;
        let v = &oc.version.value;
        let (core, prerelease) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v.as_str(), None),
        };
        let ok = core.split('.').count() == 3
            && is_version(core, 3)
            && prerelease.is_none_or(|pre| {
                !pre.is_empty()
                    && pre
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            });
        if !ok {
            self.fail(
                &oc.version,
                format!("`{v}` is not a pinned npm version"),
                "pin an exact version such as `2026.9.6` (never `latest` or a range)",
            );
        }
        self.path(&oc.node, "node path");
        if let Some(prefix) = &oc.prefix {
            self.path(prefix, "OpenClaw prefix");
            if oc.install == InstallMethod::Bundle {
                self.fail(
                    prefix,
                    "a bundled OpenClaw has no prefix".to_owned(),
                    "remove `prefix`: the package puts the bundle in confine's own versioned folder",
                );
            }
        }
    }

    fn gateway_and_tools(&mut self, agent: &Agent) {
        let port = &agent.gateway.port;
        if !(1024..=65535).contains(&port.value) {
            self.fail(
                port,
                format!("port {} is out of range", port.value),
                "use a port from 1024 to 65535",
            );
        }
        for entry in &agent.tools.exec.allowlist {
            let v = &entry.value;
            if !v.starts_with('/') || v.split('/').any(|s| s == "..") || has_control(v, false) {
                self.fail(
                    entry,
                    format!("exec allowlist entry `{}` is not an absolute path", escape(v)),
                    "list absolute paths or globs such as `/usr/bin/git`",
                );
            }
        }
    }

    fn launchd(&mut self, agent: &Agent) {
        let l = &agent.launchd;
        if let Some(label) = &l.label {
            self.reverse_dns(label, "launchd label");
        }
        if !(1..=3600).contains(&l.throttle_interval.value) {
            self.fail(
                &l.throttle_interval,
                format!("throttle interval {} is out of range", l.throttle_interval.value),
                "use 1 to 3600 seconds",
            );
        }
        if l.exit_timeout.value > 3600 {
            self.fail(
                &l.exit_timeout,
                format!("exit timeout {} is out of range", l.exit_timeout.value),
                "use 0 to 3600 seconds",
            );
        }
        match parse_octal(&l.umask.value) {
            Some(m) if m & 0o700 != 0 => self.fail(
                &l.umask,
                format!(
                    "umask {} takes the agent's own permissions on its files",
                    l.umask.value
                ),
                "leave the owner digit 0, e.g. `\"0007\"` or `\"0077\"`",
            ),
            Some(m) if m & 0o007 != 0o007 => self.fail(
                &l.umask,
                format!(
                    "umask {} lets every local user read the agent's files",
                    l.umask.value
                ),
                "end it in 7, e.g. `\"0007\"` or `\"0077\"`",
            ),
            Some(_) => {}
            None => self.fail(
                &l.umask,
                format!("`{}` is not an octal umask", l.umask.value),
                "write it as a quoted string such as `\"0007\"`",
            ),
        }
        for (name, value) in &l.environment {
            self.environment(name, value);
        }
    }

    fn environment(&mut self, name: &str, value: &Located<String>) {
        let upper = name.to_ascii_uppercase();
        if !is_env_name(name) {
            self.fail(
                value,
                format!("`{}` is not an environment variable name", escape(name)),
                "use upper-case letters, digits and `_`",
            );
        } else if RESERVED_ENVIRONMENT.contains(&name) || name.starts_with("OPENCLAW_") {
            self.fail(
                value,
                format!("`{name}` is set by confine"),
                "remove it; the daemon's HOME, PATH and OPENCLAW_* come from the spec",
            );
        } else if ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE"]
            .iter()
            .any(|s| upper.contains(s))
        {
            self.fail(
                value,
                format!("`{name}` looks like a secret"),
                "launchd shows a daemon's environment to every local user; use `credentials.secrets` instead",
            );
        }
        if has_control(&value.value, false) {
            self.fail(
                value,
                format!("the value of `{name}` has control characters"),
                "use a single-line value",
            );
        }
    }

    fn credentials(&mut self, agent: &Agent) {
        let c = &agent.credentials;
        if !(24..=128).contains(&c.gateway_token_bytes.value) {
            self.fail(
                &c.gateway_token_bytes,
                format!(
                    "a {}-byte gateway token is out of range",
                    c.gateway_token_bytes.value
                ),
                "use 24 to 128 random bytes",
            );
        }
        let mut names = BTreeSet::new();
        for key in &c.ssh_keys {
            self.file_name(&key.name, "SSH key name");
            if !names.insert(key.name.value.as_str()) {
                self.fail(
                    &key.name,
                    format!("SSH key `{}` is listed twice", key.name.value),
                    "give each key its own name",
                );
            }
            self.host(&key.host, "SSH host alias");
            if let Some(hostname) = &key.hostname {
                self.host(hostname, "SSH host name");
            }
            if !is_account_name(&key.user.value) {
                self.fail(
                    &key.user,
                    format!("`{}` is not an SSH user name", escape(&key.user.value)),
                    "use letters, digits, `_`, `-` and `.`, e.g. `git`",
                );
            }
            if let Some(comment) = &key.comment {
                self.free_text(comment, "SSH key comment", false);
            }
        }
        let mut secrets = BTreeSet::new();
        for secret in &c.secrets {
            self.file_name(&secret.name, "secret name");
            if !secrets.insert(secret.name.value.as_str()) {
                self.fail(
                    &secret.name,
                    format!("secret `{}` is listed twice", secret.name.value),
                    "give each secret its own name",
                );
            }
            if let Some(env) = &secret.embed_from_env {
                self.env_name(env);
            }
        }
        for schedule in [&c.rotation.gateway_token, &c.rotation.ssh_keys]
            .into_iter()
            .flatten()
        {
            if time_of_day(&schedule.at.value).is_none() {
                self.fail(
                    &schedule.at,
                    format!("`{}` is not a time of day", escape(&schedule.at.value)),
                    "write it as \"HH:MM\", 24-hour, e.g. \"03:15\"",
                );
            }
        }
        if let Some(schedule) = &c.rotation.ssh_keys
            && c.ssh_keys.is_empty()
        {
            self.fail(
                &schedule.every,
                "`rotation.ssh_keys` is set, but the agent has no `ssh_keys`",
                "remove `rotation.ssh_keys`, or add a deploy key under `credentials.ssh_keys`",
            );
        }
    }

    fn unique_across_agents(&mut self, spec: &Spec) {
        let mut users = BTreeMap::new();
        let mut uids = BTreeMap::new();
        let mut gids: BTreeMap<u32, &str> = BTreeMap::new();
        let mut group_names = BTreeSet::new();
        let mut ports = BTreeMap::new();
        for group in &spec.groups {
            if gids.insert(group.gid.value, group.name.value.as_str()).is_some() {
                self.fail(
                    &group.gid,
                    format!("GID {} is used twice", group.gid.value),
                    "give every group its own GID",
                );
            }
            if !group_names.insert(group.name.value.clone()) {
                self.fail(
                    &group.name,
                    format!("group `{}` is defined twice", group.name.value),
                    "merge the two entries",
                );
            }
        }
        for agent in &spec.agents {
            let line = agent.name.referenced.line();
            if let Some(first) = users.insert(agent.name.value.as_str(), line) {
                self.fail(
                    &agent.name,
                    format!("agent `{}` is defined twice", agent.name.value),
                    format!("the first is on line {first}; give every agent its own name"),
                );
            }
            if let Some(other) = uids.insert(agent.uid.value, agent.name.value.as_str()) {
                self.fail(
                    &agent.uid,
                    format!(
                        "duplicate UID {}: agent `{other}` already uses it",
                        agent.uid.value
                    ),
                    "give every agent its own UID",
                );
            }
            let (pname, pgid) = match &agent.primary_group {
                Some(g) => (g.name.value.clone(), &g.gid),
                None => (agent.name.value.clone(), &agent.uid),
            };
            if let Some(other) = gids.insert(pgid.value, agent.name.value.as_str()) {
                self.fail(
                    pgid,
                    format!(
                        "GID {} of `{}`'s personal group is already used by `{other}`",
                        pgid.value, agent.name.value
                    ),
                    "set `primary_group.gid` to an unused GID",
                );
            }
            if !group_names.insert(pname.clone()) {
                let at = agent.primary_group.as_ref().map_or(&agent.name, |g| &g.name);
                self.fail(
                    at,
                    format!("personal group `{pname}` clashes with another group"),
                    "set `primary_group.name` to an unused name",
                );
            }
            if let Some(other) = ports.insert(agent.gateway.port.value, agent.name.value.as_str()) {
                self.fail(
                    &agent.gateway.port,
                    format!(
                        "port {} is already used by agent `{other}`",
                        agent.gateway.port.value
                    ),
                    "give every agent its own gateway port",
                );
            }
        }
    }

    fn package(&mut self, spec: &Spec) {
        for extra in &spec.package.extra_payload {
            if extra.source.value.is_empty() || has_control(&extra.source.value, false) {
                self.fail(
                    &extra.source,
                    format!("`{}` is not a usable source path", escape(&extra.source.value)),
                    "give a path relative to the spec file",
                );
            }
            self.path(&extra.destination, "extra payload destination");
        }
    }

    fn signing(&mut self, spec: &Spec) {
        let s = &spec.signing;
        for env in [&s.identity_env, &s.profile_identity_env, &s.pkg_identity_env]
            .into_iter()
            .flatten()
        {
            self.env_name(env);
        }
    }

    // Shapes.

    fn slug(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        let ok = (1..=63).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.fail(
                value,
                format!("{what} `{}` is not a short name", escape(v)),
                "use 1 to 63 lower-case letters, digits and `-`, starting with a letter",
            );
        }
    }

    fn account_name(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        if !is_account_name(v) {
            self.fail(value, format!("{what} `{}` is not a portable account name", escape(v)), "use 1 to 31 characters: a lower-case letter or `_`, then lower-case letters, digits, `_` or `-`");
        } else if super::rules::names::is_system_name(v) {
            self.fail(
                value,
                format!("{what} `{v}` is a macOS system name"),
                "pick a name of your own, e.g. `hexagent`",
            );
        }
    }

    fn id(&mut self, value: &Located<u32>, what: &str) {
        if !(MIN_ID..=MAX_ID).contains(&value.value) {
            self.fail(value, format!("{what} {} is outside the safe range", value.value), format!("use {MIN_ID} to {MAX_ID}: lower ids collide with macOS service accounts and the first human users"));
        }
    }

    fn free_text(&mut self, value: &Located<String>, what: &str, newlines_ok: bool) {
        let v = &value.value;
        if v.trim().is_empty() {
            self.fail(
                value,
                format!("{what} is empty"),
                "write a name people will recognise",
            );
        } else if v.chars().count() > 256 {
            self.fail(
                value,
                format!("{what} is longer than 256 characters"),
                "shorten it",
            );
        } else if has_control(v, newlines_ok) {
            self.fail(
                value,
                format!("{what} `{}` has control characters", escape(v)),
                "remove them",
            );
        }
    }

    fn reverse_dns(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        let labels: Vec<&str> = v.split('.').collect();
        let ok = v.len() <= 155
            && labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            self.fail(
                value,
                format!("{what} `{}` is not a reverse-DNS identifier", escape(v)),
                "use dot-separated labels of letters, digits and `-`, e.g. `com.example.agents`",
            );
        }
    }

    fn version(&mut self, value: &Located<String>, what: &str, help: &str) {
        if !is_version(&value.value, 4) {
            self.fail(
                value,
                format!("{what} `{}` is not a version", escape(&value.value)),
                help,
            );
        }
    }

    fn minimum_macos(&mut self, value: &Located<String>) {
        self.version(value, "minimum macOS", "write a macOS version such as `14.0`");
        let major = value.value.split('.').next().and_then(|m| m.parse::<u32>().ok());
        if matches!(major, Some(m) if m < 13) {
            self.fail(
                value,
                format!("minimum macOS {} is too old", value.value),
                "confine needs macOS 13.0 or later: Managed Login Items pin the agent daemon only from 13.0",
            );
        }
    }

    fn path(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        let segments: Vec<&str> = v.split('/').skip(1).collect();
        let ok = v.starts_with('/')
            && v.len() > 1
            && v.len() <= 1024
            && !has_control(v, false)
            && segments.iter().all(|s| !s.is_empty() && *s != "." && *s != "..");
        if !ok {
            self.fail(
                value,
                format!("{what} `{}` is not an absolute, normalized path", escape(v)),
                "start with `/`, and use no `..`, `.`, empty segments or trailing `/`",
            );
        }
    }

    fn file_name(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        let ok = (1..=64).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            self.fail(
                value,
                format!("{what} `{}` is not a plain file name", escape(v)),
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
            );
        }
    }

    fn host(&mut self, value: &Located<String>, what: &str) {
        let v = &value.value;
        let ok = (1..=253).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        if !ok {
            self.fail(
                value,
                format!("{what} `{}` is not a host name", escape(v)),
                "use letters, digits, `.` and `-`, e.g. `github.com`",
            );
        }
    }

    fn env_name(&mut self, value: &Located<String>) {
        if !is_env_name(&value.value) {
            self.fail(
                value,
                format!("`{}` is not an environment variable name", escape(&value.value)),
                "use upper-case letters, digits and `_`, e.g. `FLEET_P12`",
            );
        }
    }
}

fn is_account_name(v: &str) -> bool {
    (1..=31).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(super) fn is_env_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// 1 to `max_parts` dot-separated decimal numbers without leading zeros.
fn is_version(v: &str, max_parts: usize) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() <= max_parts
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 9
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// `0770`, `770` → 0o770. At most four octal digits.
/// `"HH:MM"`, 24-hour, as (hour, minute).
pub(crate) fn time_of_day(v: &str) -> Option<(u32, u32)> {
    let (h, m) = v.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hour, minute) = (h.parse().ok()?, m.parse().ok()?);
    (hour < 24 && minute < 60).then_some((hour, minute))
}

pub(crate) fn parse_octal(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 4 || !v.chars().all(|c| ('0'..='7').contains(&c)) {
        return None;
    }
    u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o777)
}

fn has_control(v: &str, newlines_ok: bool) -> bool {
    v.chars()
        .any(|c| c.is_control() && !(newlines_ok && (c == '\n' || c == '\t')))
}

/// Shows a hostile value in a message without letting it break the terminal line.
pub(super) fn escape(v: &str) -> String {
    let shown: String = v.chars().take(80).collect();
    let shown = shown.escape_debug().to_string();
    if v.chars().count() > 80 {
        format!("{shown}…")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes() {
        assert_eq!(parse_octal("0770"), Some(0o770));
        assert_eq!(parse_octal("007"), Some(0o7));
        assert_eq!(parse_octal("0778"), None);
        assert_eq!(parse_octal("7777"), None);
        assert_eq!(parse_octal(""), None);
    }

    #[test]
    fn versions() {
        assert!(is_version("1.0.0", 4));
        assert!(is_version("14", 4));
        assert!(!is_version("1.0.0.0.0", 4));
        assert!(!is_version("01.0", 4));
        assert!(!is_version("1..0", 4));
        assert!(!is_version("latest", 4));
    }

    #[test]
    fn account_names() {
        assert!(is_account_name("hexagent"));
        assert!(is_account_name("_agent-2"));
        assert!(!is_account_name("Hex"));
        assert!(!is_account_name("a;rm -rf /"));
        assert!(!is_account_name("a$(id)"));
        assert!(!is_account_name(""));
    }
}
