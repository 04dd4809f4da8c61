//! The installer package's scripts: what runs as root on the Mac to create the agents' accounts, groups,
//! directories and credentials, load their daemons and check the result.
//!
//! Data flow: the scripts themselves (`pkg/preinstall`, `pkg/postinstall`, `pkg/uninstall`, the
//! functions they share, `pkg/lib.sh`, and the egress functions, `pkg/egress.sh`) are static POSIX `sh`,
//! embedded here with `include_str!`. The
//! only thing generated per fleet is one data file, `fleet-data.sh`, rendered by askama from
//! `templates/fleet-data.sh`. It only assigns variables, and the scripts source it from their own folder.
//!
//! Quoting rule: askama passes every value interpolated into a `.sh` template through [`ShellQuote`]
//! (declared for the `sh` extension in `askama.toml`), which single-quotes it. Inside single quotes the
//! shell expands nothing, so a full name such as `$(touch /tmp/x)` stays text. The only unquoted
//! interpolations are loop counters that form variable names (`AGENT_{{ i|safe }}_NAME`). The scripts
//! read list elements with `eval "x=\${AGENT_${i}_NAME}"`, where `i` is their own counter: a spec value
//! is never evaluated. No other shell is generated anywhere.

use std::fmt::Write;

use anyhow::{Context, Result};
use askama::Template;

use crate::npm::Vendored;
use crate::plan::{ADDRESS_TTL_SECONDS, AgentPlan, DNS_TABLE, EgressPlan, LOG_ROOT, OPENCLAW_LOG_DIR, Plan};
use crate::spec::InstallMethod;
use crate::spec::egress::Destination;

/// askama's escaper for `.sh` templates: the value in single quotes, each `'` written as `'\''` (close
/// the quotes, an escaped quote, reopen). The empty string becomes `''`.
#[derive(Debug, Clone, Copy)]
pub struct ShellQuote;

impl askama::filters::Escaper for ShellQuote {
    fn write_escaped_str<W: Write>(&self, mut dest: W, string: &str) -> std::fmt::Result {
        dest.write_char('\'')?;
        for (i, part) in string.split('\'').enumerate() {
            if i > 0 {
                dest.write_str("'\\''")?;
            }
            dest.write_str(part)?;
        }
        dest.write_char('\'')
    }
}

/// A file in a package's `Scripts` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFile {
    pub name: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// A file the payload installs on the Mac, owned root:wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportFile {
    /// Absolute path on the Mac.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// File name of the generated data file, beside the scripts and in the support folder.
pub const DATA_FILE: &str = "fleet-data.sh";
/// File name of the shared functions, beside the scripts and in the support folder.
pub const LIB_FILE: &str = "lib.sh";
/// File name of the uninstaller in the support folder.
pub const UNINSTALL_FILE: &str = "uninstall";
/// File name of the functions over root's credential record, beside the scripts and in the support folder.
pub const CREDENTIALS_FILE: &str = "credentials.sh";
/// File name of the credential rotation script in the support folder, run by the rotation daemons.
pub const ROTATE_FILE: &str = "rotate";

pub(crate) const LIB: &str = include_str!("../pkg/lib.sh");
const PREINSTALL: &str = include_str!("../pkg/preinstall");
const POSTINSTALL: &str = include_str!("../pkg/postinstall");
const UNINSTALL: &str = include_str!("../pkg/uninstall");
const CREDENTIALS: &str = include_str!("../pkg/credentials.sh");
const ROTATE: &str = include_str!("../pkg/rotate");
/// The audit trail's install and removal steps, sourced by postinstall and uninstall.
const AUDIT: &str = include_str!("../pkg/audit.sh");
/// File name of the audit steps, beside the scripts and in the support folder.
pub const AUDIT_FILE: &str = "audit.sh";
/// File name of the egress functions (sourced by postinstall, uninstall and the egress watchdog).
pub const EGRESS_FILE: &str = "egress.sh";
const EGRESS: &str = include_str!("../pkg/egress.sh");

#[derive(Template)]
#[template(path = "fleet-data.sh")]
struct FleetData<'a> {
    plan: &'a Plan,
    log_root: &'static str,
    openclaw_log_dir: &'static str,
    max_event_bytes: u64,
    dns_table: &'static str,
    address_ttl: u32,
}

impl FleetData<'_> {
    /// `chmod` wants the mode in octal.
    fn octal(&self, mode: &u32) -> String {
        format!("{mode:04o}")
    }

    /// `(host name, table)` of each allowlist entry the watchdog resolves.
    fn egress_hosts(&self, egress: &EgressPlan) -> Vec<(String, String)> {
        egress
            .rules
            .iter()
            .filter_map(|r| match &r.destination {
                Destination::Host(h) => Some((h.clone(), r.table.clone())),
                Destination::Network(_) => None,
            })
            .collect()
    }

    fn registered_keys(&self, agent: &AgentPlan) -> String {
        crate::plan::registered_keys_dir(&self.plan.fleet.name, &agent.name)
    }

    fn install_method(&self, agent: &AgentPlan) -> &'static str {
        match agent.openclaw.install {
            InstallMethod::Npm => "npm",
            InstallMethod::Preinstalled => "preinstalled",
            InstallMethod::Bundle => "bundle",
        }
    }
}

#[derive(Template)]
#[template(path = "rotate-secret.sh")]
struct RotateSecret<'a> {
    fleet: &'a str,
    agent: &'a str,
    secret: &'a str,
    rotate: String,
}

/// An MDM script that replaces one secret on a Mac, for the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretScript {
    /// `mdm/rotate-secret-<agent>-<secret>.sh`, relative to the output folder.
    pub path: String,
    /// `<fleet identifier>.<agent>.rotate-secret-<secret>`.
    pub identifier: String,
    pub contents: Vec<u8>,
}

/// One MDM script per agent secret: it pipes the new value (Jamf parameter 4, or standard input) into
/// `rotate secret` on the Mac (see `pkg/rotate`).
pub fn secret_scripts(plan: &Plan) -> Result<Vec<SecretScript>> {
    let mut scripts = Vec::new();
    for agent in &plan.agents {
        for secret in &agent.secrets {
            let text = RotateSecret {
                fleet: &plan.fleet.name,
                agent: &agent.name,
                secret: &secret.name,
                rotate: format!("{}/{ROTATE_FILE}", plan.support_dir),
            }
            .render()
            .context("rendering a secret rotation script")?;
            scripts.push(SecretScript {
                path: format!("mdm/rotate-secret-{}-{}.sh", agent.name, secret.name),
                identifier: format!(
                    "{}.{}.rotate-secret-{}",
                    plan.fleet.identifier, agent.name, secret.name
                ),
                contents: (text + "\n").into_bytes(),
            });
        }
    }
    Ok(scripts)
}

/// The data file the scripts source: the plan as shell variable assignments.
pub fn data_file(plan: &Plan) -> Result<Vec<u8>> {
    let data = FleetData {
        plan,
        log_root: LOG_ROOT,
        openclaw_log_dir: OPENCLAW_LOG_DIR,
        max_event_bytes: crate::audit::MAX_EVENT_BYTES,
        dns_table: DNS_TABLE,
        address_ttl: ADDRESS_TTL_SECONDS,
    };
    let mut text = data.render().context("rendering the installer data file")?;
    text.push('\n');
    Ok(text.into_bytes())
}

/// Everything in the install package's `Scripts`: `preinstall`, `postinstall`, `lib.sh`, `credentials.sh`,
/// `audit.sh`, `egress.sh` and the data file.
pub fn scripts(plan: &Plan) -> Result<Vec<ScriptFile>> {
    Ok(vec![
        script("preinstall", PREINSTALL.as_bytes().to_vec(), 0o755),
        script("postinstall", POSTINSTALL.as_bytes().to_vec(), 0o755),
        script(LIB_FILE, LIB.as_bytes().to_vec(), 0o644),
        script(CREDENTIALS_FILE, CREDENTIALS.as_bytes().to_vec(), 0o644),
        script(AUDIT_FILE, AUDIT.as_bytes().to_vec(), 0o644),
        script(EGRESS_FILE, EGRESS.as_bytes().to_vec(), 0o644),
        script(DATA_FILE, data_file(plan)?, 0o644),
    ])
}

/// What the payload adds under `plan.support_dir`, so the Mac can be uninstalled later without the
/// package, credentials rotated and the egress watchdog find its functions: the uninstaller, the rotation
/// script, the functions they use and the
/// data file.
pub fn support_files(plan: &Plan) -> Result<Vec<SupportFile>> {
    let at = |name: &str| format!("{}/{name}", plan.support_dir);
    let mut files = vec![
        SupportFile {
            path: at(UNINSTALL_FILE),
            contents: UNINSTALL.as_bytes().to_vec(),
            mode: 0o755,
        },
        SupportFile {
            path: at(ROTATE_FILE),
            contents: ROTATE.as_bytes().to_vec(),
            mode: 0o755,
        },
        SupportFile {
            path: at(LIB_FILE),
            contents: LIB.as_bytes().to_vec(),
            mode: 0o644,
        },
        SupportFile {
            path: at(EGRESS_FILE),
            contents: EGRESS.as_bytes().to_vec(),
            mode: 0o644,
        },
        SupportFile {
            path: at(CREDENTIALS_FILE),
            contents: CREDENTIALS.as_bytes().to_vec(),
            mode: 0o644,
        },
        SupportFile {
            path: at(DATA_FILE),
            contents: data_file(plan)?,
            mode: 0o644,
        },
        SupportFile {
            path: at(AUDIT_FILE),
            contents: AUDIT.as_bytes().to_vec(),
            mode: 0o644,
        },
    ];
    if plan.audit.is_some() {
        files.push(SupportFile {
            path: at(crate::audit::COLLECTOR_FILE),
            contents: crate::audit::COLLECTOR.as_bytes().to_vec(),
            mode: 0o755,
        });
    }
    Ok(files)
}

/// For each bundled OpenClaw version, `openclaw-<version>.json` beside the scripts: the name, version and
/// `engines` of its `package.json`, one key per line as npm writes them. The preinstall checks the Mac's
/// node against it before Installer lays down the payload that holds the package itself.
pub fn bundle_scripts(vendored: &Vendored) -> Result<Vec<ScriptFile>> {
    vendored
        .trees
        .iter()
        .map(|(version, tree)| {
            let path = "node_modules/openclaw/package.json";
            let text = tree.read_file(path)?;
            let manifest: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("openclaw@{version}'s {path} is not JSON"))?;
            let node = manifest["engines"]["node"].as_str().with_context(|| {
                format!("openclaw@{version} names no engines.node: the Mac's node could not be checked")
            })?;
            let excerpt = serde_json::json!({
                "name": manifest["name"],
                "version": manifest["version"],
                "engines": { "node": node },
            });
            let mut contents = serde_json::to_string_pretty(&excerpt)?;
            contents.push('\n');
            Ok(script(
                &format!("openclaw-{version}.json"),
                contents.into_bytes(),
                0o644,
            ))
        })
        .collect()
}

/// The `Scripts` of the payload-free uninstall package: its `postinstall` is the uninstaller.
pub fn uninstall_scripts(plan: &Plan) -> Result<Vec<ScriptFile>> {
    Ok(vec![
        script("postinstall", UNINSTALL.as_bytes().to_vec(), 0o755),
        script(LIB_FILE, LIB.as_bytes().to_vec(), 0o644),
        script(CREDENTIALS_FILE, CREDENTIALS.as_bytes().to_vec(), 0o644),
        script(AUDIT_FILE, AUDIT.as_bytes().to_vec(), 0o644),
        script(EGRESS_FILE, EGRESS.as_bytes().to_vec(), 0o644),
        script(DATA_FILE, data_file(plan)?, 0o644),
    ])
}

fn script(name: &str, contents: Vec<u8>, mode: u32) -> ScriptFile {
    ScriptFile {
        name: name.to_owned(),
        contents,
        mode,
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[derive(Template)]
    #[template(source = "V={{ value }}\n", ext = "sh")]
    struct One<'a> {
        value: &'a str,
    }

    const HOSTILE: &[&str] = &[
        "",
        "plain",
        "it's",
        "''",
        "'",
        "a'b'c",
        "$(touch /tmp/confine-pwned-unit)",
        "`touch /tmp/confine-pwned-unit`",
        "${HOME}$HOME",
        "line one\nline two\n",
        "\n",
        "a; rm -rf /; b",
        "back\\slash\\",
        "\\'",
        "*",
        "/*",
        "-n",
        "--",
        " lead and trail ",
        "tab\there",
        "\"double\"",
        "!bang #hash &amp |pipe <in >out",
        "ünïcødé ✓",
    ];

    /// Renders `V=<value>`, sources it in `shell` and returns the bytes `$V` holds.
    fn round_trip(shell: &[&str], value: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("data.sh");
        let text = One { value }.render().expect("renders");
        std::fs::write(&file, text).expect("write");
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .arg("-c")
            .arg(r#"set -eu; . "$1"; printf '%s' "$V""#)
            .arg("sh")
            .arg(&file)
            .output()
            .expect("runs the shell");
        assert!(out.status.success(), "{shell:?} {value:?}: {out:?}");
        out.stdout
    }

    #[test]
    fn quoting_survives_sourcing_byte_for_byte() {
        for shell in [&["dash"][..], &["bash", "--posix"][..]] {
            for value in HOSTILE {
                assert_eq!(round_trip(shell, value), value.as_bytes(), "{shell:?} {value:?}");
            }
        }
        assert!(!std::path::Path::new("/tmp/confine-pwned-unit").exists());
    }

    #[test]
    fn quoting_is_single_quotes_only() {
        let text = One { value: "it's" }.render().expect("renders");
        assert_eq!(text, "V='it'\\''s'\n");
        let text = One { value: "" }.render().expect("renders");
        assert_eq!(text, "V=''\n");
    }

    #[test]
    fn data_file_only_assigns_quoted_values() {
        let loaded = crate::spec::load(None).expect("example is valid");
        let plan = Plan::new(&loaded.spec);
        let text = String::from_utf8(data_file(&plan).expect("renders")).expect("utf-8");
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (name, value) = line.split_once('=').expect("an assignment");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{line}"
            );
            assert!(value.starts_with('\'') && value.ends_with('\''), "{line}");
        }
        assert!(text.contains("AGENT_1_NAME='hexagent'\n"));
        assert!(text.contains("AGENT_1_WORKSPACE_MODE='0770'\n"));
        assert!(text.contains("GROUP_2_MEMBER_1='hexagent'\n"));
    }
}
