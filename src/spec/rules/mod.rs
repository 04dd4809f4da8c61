//! Safety rules: what a spec may ask of root on a Mac.
//!
//! [`super::validate`] holds each value to its shape; these rules look at what the values mean on the Mac
//! and to each other, because the installer runs as root and does what the spec says. Each rule family has
//! its own file: [`names`] (macOS's own accounts and groups), [`paths`] (where homes, workspaces, OpenClaw
//! and extra payload may go), [`text`] (invisible and deceptive characters), [`types`] (loose YAML typing
//! and tags) and [`sources`] (files read from the build machine). Identifiers (launchd labels, credential
//! file names) are checked here.

mod egress;
pub mod names;
pub mod paths;
pub mod sources;
mod text;
mod types;

use std::collections::BTreeMap;

use super::error::Problem;
use super::model::{Agent, Located, Spec};
use super::validate::escape;
use paths::{AgentPaths, apfs_key, within};

/// The gateway token's file name in an agent's secrets folder; a secret may not take it.
pub const GATEWAY_TOKEN_FILE: &str = "gateway-token";

/// Files confine writes in `~/.ssh` besides the keys, and what OpenSSH reads there: an SSH key may not
/// take their names, nor end in `.pub` (each key's public half is `<name>.pub`).
const SSH_RESERVED: &[&str] = &[
    "config",
    "known_hosts",
    "known_hosts.old",
    "known_hosts2",
    "authorized_keys",
    "authorized_keys2",
    "environment",
    "rc",
];

/// Label and identifier prefixes that belong to others: Apple's own jobs, and OpenClaw's, which it would
/// try to manage.
const FOREIGN_PREFIXES: &[(&str, &str)] = &[("com.apple.", "Apple"), ("ai.openclaw.", "OpenClaw")];

/// Checks on the text itself, before it is read as a spec: deceptive characters and loose typing.
pub fn check_text(text: &str, problems: &mut Vec<Problem>) {
    self::text::check(text, problems);
    types::check(text, problems);
}

/// Every rule that needs only the parsed spec.
pub fn check(spec: &Spec, problems: &mut Vec<Problem>) {
    let paths: Vec<AgentPaths> = spec
        .agents
        .iter()
        .map(|a| AgentPaths::new(&spec.fleet, a))
        .collect();
    let mut r = Rules { problems };
    r.identifier(spec);
    for agent in &paths {
        r.agent_paths(spec, agent, &paths);
        r.credentials(agent.agent);
    }
    r.labels(spec);
    r.destinations(spec, &paths);
    egress::check(spec, r.problems);
}

struct Rules<'p> {
    problems: &'p mut Vec<Problem>,
}

impl Rules<'_> {
    fn fail(&mut self, at: &Located<String>, message: String, help: &str) {
        self.problems.push(Problem::at(&at.referenced, message, help));
    }

    fn identifier(&mut self, spec: &Spec) {
        let id = &spec.fleet.identifier;
        if let Some((_, owner)) = foreign_prefix(&id.value) {
            self.fail(
                id,
                format!("fleet identifier `{}` is in {owner}'s namespace", id.value),
                "use your own reverse-DNS prefix, e.g. `com.example.agents`",
            );
        }
    }

    fn agent_paths(&mut self, spec: &Spec, me: &AgentPaths, all: &[AgentPaths]) {
        let fleet = &spec.fleet.name.value;
        let name = &me.agent.name.value;
        if let Some(home) = me.home_at
            && let Some(why) = paths::home_problem(&home.value, name, fleet)
        {
            self.fail(
                home,
                format!("home `{}` is not allowed: {why}", home.value),
                "leave `home` out for the default",
            );
        }
        if let Some(why) = paths::workspace_problem(&me.workspace, &me.home, fleet) {
            let at = me.at(me.workspace_at);
            self.fail(at, format!("workspace `{}` is not allowed: {why}", me.workspace), "the agent owns its workspace; put it where nothing else lives, e.g. `/Users/Shared/<agent>-workspace`");
        }
        if let Some(why) = paths::prefix_problem(&me.prefix) {
            let at = me.at(me.prefix_at);
            self.fail(
                at,
                format!("OpenClaw prefix `{}` is not allowed: {why}", me.prefix),
                "leave `prefix` out for the default",
            );
        }
        // An agent listed twice is reported as such; its copies' paths are the same by definition.
        let others = all.iter().filter(|o| o.agent.name.value != me.agent.name.value);
        for other in others {
            let clashes = [
                (
                    "home",
                    &me.home,
                    me.home_at,
                    "home",
                    &other.home,
                    "give every agent its own home",
                ),
                (
                    "workspace",
                    &me.workspace,
                    me.workspace_at,
                    "home",
                    &other.home,
                    "a workspace never shares a folder with another agent's home",
                ),
                (
                    "workspace",
                    &me.workspace,
                    me.workspace_at,
                    "workspace",
                    &other.workspace,
                    "give every agent its own workspace; share it through a group instead",
                ),
            ];
            for (what, mine, written, their_what, theirs, help) in clashes {
                if paths::overlap(mine, theirs) {
                    let other_name = &other.agent.name.value;
                    self.fail(
                        me.at(written),
                        format!("{what} `{mine}` overlaps agent `{other_name}`'s {their_what} `{theirs}`"),
                        help,
                    );
                }
            }
        }
        let oc = &me.agent.openclaw;
        for (value, what) in [(&oc.node, "node"), (&me.agent.shell, "shell")] {
            if let Some(owner) = all
                .iter()
                .find(|o| within(&value.value, &o.home) || within(&value.value, &o.workspace))
            {
                self.fail(
                    value,
                    format!(
                        "{what} `{}` is inside a folder agent `{}` can write",
                        value.value, owner.agent.name.value
                    ),
                    "root runs it during install: use a root-owned path such as `/usr/local/bin/node`",
                );
            }
        }
        let written = [
            me.home_at,
            me.workspace_at,
            me.prefix_at,
            Some(&oc.node),
            Some(&me.agent.shell),
        ];
        for value in written
            .into_iter()
            .flatten()
            .chain(&me.agent.tools.exec.allowlist)
        {
            self.mixed_script(value);
        }
    }

    fn mixed_script(&mut self, value: &Located<String>) {
        if let Some(segment) = paths::mixed_script_segment(&value.value) {
            self.fail(
                value,
                format!(
                    "`{}` mixes look-alike scripts (Latin, Greek, Cyrillic) in `{}`",
                    escape(&value.value),
                    escape(segment)
                ),
                "retype the path: one of its letters only looks like the one you mean",
            );
        }
    }

    fn credentials(&mut self, agent: &Agent) {
        let mut keys: BTreeMap<String, &Located<String>> = BTreeMap::new();
        for key in &agent.credentials.ssh_keys {
            let name = &key.name;
            let lower = name.value.to_lowercase();
            if SSH_RESERVED.contains(&lower.as_str()) || lower.ends_with(".pub") {
                self.fail(name, format!("SSH key name `{}` is taken by a file in `~/.ssh`", name.value), "`config`, `known_hosts`, `authorized_keys` and `*.pub` are reserved: pick another name, e.g. `deploy_github`");
            }
            if let Some(first) = keys.insert(lower, name)
                && first.value != name.value
            {
                self.fail(
                    name,
                    format!(
                        "SSH key `{}` differs from `{}` only in case",
                        name.value, first.value
                    ),
                    "APFS treats them as one file: give each key its own name",
                );
            }
        }
        let mut secrets: BTreeMap<String, &Located<String>> = BTreeMap::new();
        for secret in &agent.credentials.secrets {
            let name = &secret.name;
            let lower = name.value.to_lowercase();
            if lower == GATEWAY_TOKEN_FILE {
                self.fail(
                    name,
                    format!("secret name `{}` is the gateway token's file", name.value),
                    "pick another name: confine generates the gateway token",
                );
            }
            if let Some(first) = secrets.insert(lower, name)
                && first.value != name.value
            {
                self.fail(
                    name,
                    format!(
                        "secret `{}` differs from `{}` only in case",
                        name.value, first.value
                    ),
                    "APFS treats them as one file: give each secret its own name",
                );
            }
        }
    }

    fn labels(&mut self, spec: &Spec) {
        let mut seen: BTreeMap<String, (String, &Located<String>)> = BTreeMap::new();
        for agent in &spec.agents {
            let (label, at) = label(spec, agent);
            if let Some(explicit) = &agent.launchd.label
                && let Some((prefix, owner)) = foreign_prefix(&explicit.value)
            {
                self.fail(
                    explicit,
                    format!("label `{}` is in {owner}'s `{prefix}*` namespace", explicit.value),
                    "use your own prefix, e.g. the default `<fleet.identifier>.<agent>.gateway`",
                );
            }
            if let Some((other, _)) = seen.insert(label.to_lowercase(), (agent.name.value.clone(), at))
                && other != agent.name.value
            {
                self.fail(at, format!("launchd label `{label}` is also agent `{other}`'s label (labels are compared ignoring case)"), "give every agent its own label: their plists would be one file on the Mac");
            }
        }
    }

    fn destinations(&mut self, spec: &Spec, agents: &[AgentPaths]) {
        let labels: Vec<String> = spec.agents.iter().map(|a| label(spec, a).0).collect();
        let support = format!("{}/{}", paths::SUPPORT_ROOT, spec.fleet.name.value);
        let mut seen: BTreeMap<String, &Located<String>> = BTreeMap::new();
        for extra in &spec.package.extra_payload {
            let dest = &extra.destination;
            let d = &dest.value;
            if let Some(why) = paths::destination_problem(d) {
                self.fail(
                    dest,
                    format!("extra payload destination `{d}`: {why}"),
                    "install into a folder of its own, e.g. `/usr/local/libexec/<tool>`",
                );
            }
            // Overlap, not only inside: a folder above a home would carry its payload's subfolders into it.
            let writable = agents.iter().find_map(|a| {
                [&a.home, &a.workspace]
                    .into_iter()
                    .find(|folder| paths::overlap(d, folder))
                    .map(|folder| (folder, &a.agent.name.value))
            });
            if let Some((folder, agent)) = writable {
                self.fail(
                    dest,
                    format!("extra payload destination `{d}` overlaps `{folder}`, a folder agent `{agent}` can write"),
                    "the package writes as root: never into (or above) an agent's home or workspace",
                );
            }
            if within(d, &support) && !agents.iter().any(|a| within(d, &a.prefix)) {
                self.fail(
                    dest,
                    format!("extra payload destination `{d}` is inside confine's own folder `{support}`"),
                    "only an agent's OpenClaw prefix may be filled by extra payload there",
                );
            }
            if let Some(label) = labels
                .iter()
                .find(|l| within(d, &format!("/Library/LaunchDaemons/{l}.plist")))
            {
                self.fail(
                    dest,
                    format!("extra payload destination `{d}` is the plist of the daemon `{label}`"),
                    "confine writes each agent's daemon plist; install elsewhere",
                );
            }
            if let Some(first) = seen.insert(apfs_key(d), dest) {
                self.fail(
                    dest,
                    format!(
                        "extra payload destination `{d}` is also `{}`'s destination",
                        first.value
                    ),
                    "APFS treats them as one path: install each entry to its own destination",
                );
            }
            self.mixed_script(dest);
            self.mixed_script(&extra.source);
        }
    }
}

/// An agent's launchd label, explicit or the default, and where to report a problem with it.
fn label<'s>(spec: &Spec, agent: &'s Agent) -> (String, &'s Located<String>) {
    match &agent.launchd.label {
        Some(label) => (label.value.clone(), label),
        None => (
            paths::default_label(&spec.fleet.identifier.value, &agent.name.value),
            &agent.name,
        ),
    }
}

fn foreign_prefix(identifier: &str) -> Option<(&'static str, &'static str)> {
    let lower = identifier.to_lowercase();
    FOREIGN_PREFIXES
        .iter()
        .find(|(prefix, _)| lower.starts_with(prefix) || lower == prefix.trim_end_matches('.'))
        .copied()
}
