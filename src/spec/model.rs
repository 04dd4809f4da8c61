//! The fleet spec as written in YAML, version 1.
//!
//! Every struct denies unknown fields so a typo fails loudly. Values that later checks must point back at
//! (names, ids, paths, identifiers) are `Spanned`, which keeps the line and column they came from. Defaults
//! are the secure choice, so a short spec works; values whose default depends on another value (an agent's
//! home, its launchd label) stay `Option` here and are resolved by [`crate::plan`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A value that remembers where in the spec it was written.
pub type Located<T> = Spanned<T>;

/// The whole fleet spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "confine fleet spec",
    description = "One YAML file that describes every agent account, its daemon, credentials and the hardening profiles of a fleet of Macs."
)]
pub struct Spec {
    /// Format version of this file. Always 1.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub version: Located<u32>,
    pub fleet: Fleet,
    /// Groups the package creates (besides each agent's personal group).
    #[serde(default)]
    pub groups: Vec<Group>,
    /// The agent accounts to create on every Mac. At least one.
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub hardening: Hardening,
    #[serde(default)]
    pub package: Package,
    #[serde(default)]
    pub signing: Signing,
    /// Where `confine push` delivers the build (Jamf Pro, Kandji). Optional.
    #[serde(default)]
    pub mdm: Option<super::mdm::Mdm>,
    /// What `confine export` writes for Munki, Workspace ONE, Fleet and Apple MDM servers. Optional.
    #[serde(default)]
    pub exports: Option<super::exports::Exports>,
}

/// Who the fleet belongs to and how its artifacts are named.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Short name: lower-case letters, digits and dashes. Names the output files.
    #[schemars(with = "String", regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub name: Located<String>,
    /// Organization shown in profiles and the installer.
    #[schemars(with = "String")]
    pub organization: Located<String>,
    /// Reverse-DNS prefix for every identifier (package, profiles, launchd labels), e.g. `com.example.agents`.
    #[schemars(with = "String")]
    pub identifier: Located<String>,
    /// Release version of the artifacts, e.g. `1.0.0`. Raise it for every change you ship.
    #[schemars(with = "String")]
    pub release: Located<String>,
    /// Oldest macOS the fleet runs, e.g. `14.0`. Managed Login Items need 13.0 or later.
    #[serde(default = "default_minimum_macos")]
    #[schemars(with = "String")]
    pub minimum_macos: Located<String>,
}

/// A group created with an explicit GID.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group short name (POSIX portable: lower-case letter, then letters, digits, `_`, `-`).
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// Explicit GID, from the schema's minimum to its maximum: below collides with Apple's own groups and the
    /// first human accounts, above with directory-service ids.
    #[schemars(with = "u32", range(min = super::validate::MIN_ID, max = super::validate::MAX_ID))]
    pub gid: Located<u32>,
    /// Human-readable name (RealName).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub full_name: Option<Located<String>>,
    /// Agent accounts that belong to this group.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub members: Vec<Located<String>>,
    /// Also add every local admin account present at install time (the blog's `$(whoami)`).
    #[serde(default)]
    pub include_local_admins: bool,
}

/// One agent: its account, its OpenClaw install, gateway, tool policy, daemon and credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Account short name (POSIX portable, at most 31 characters).
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// Full name (RealName) of the account.
    #[schemars(with = "String")]
    pub full_name: Located<String>,
    /// Explicit UID, from the schema's minimum to its maximum (the account is hidden, IsHidden): below
    /// collides with Apple's service accounts and the first human accounts, above with directory-service ids.
    #[schemars(with = "u32", range(min = super::validate::MIN_ID, max = super::validate::MAX_ID))]
    pub uid: Located<u32>,
    /// The agent's personal primary group. Defaults to a group named like the agent with GID = UID.
    #[serde(default)]
    pub primary_group: Option<PrimaryGroup>,
    /// Extra groups (defined under `groups`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Located<String>>,
    /// Home directory: `/Users/<name>` (the default) or `/private/var/confine/<fleet>/<name>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub home: Option<Located<String>>,
    /// Login shell. `/usr/bin/false` keeps anyone from logging in as the agent.
    #[serde(default = "default_shell")]
    #[schemars(with = "String")]
    pub shell: Located<String>,
    #[serde(default)]
    pub workspace: Workspace,
    pub openclaw: OpenClaw,
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default)]
    pub tools: Tools,
    #[serde(default)]
    pub launchd: Launchd,
    #[serde(default)]
    pub credentials: Credentials,
    /// A root-kept trail of every program the agent runs (eslogger), which the agent cannot erase.
    #[serde(default)]
    pub audit: super::audit::Audit,
    /// Outbound network allowlist, enforced by pf for the agent's UID. Off unless written.
    #[serde(default)]
    pub egress: Option<super::egress::Egress>,
}

/// The agent's personal group. Never `staff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrimaryGroup {
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// Its GID, in the same range as every UID and GID of the spec.
    #[schemars(with = "u32", range(min = super::validate::MIN_ID, max = super::validate::MAX_ID))]
    pub gid: Located<u32>,
}

/// The directory the agent works in, shared with a group.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Defaults to `/Users/Shared/<agent>-workspace`. Must be below `/Users/Shared/`, the agent's home or
    /// `/private/var/confine/<fleet>/`, apart from every other agent's home and workspace.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Located<String>>,
    /// Group that shares it. Defaults to the agent's first extra group, else its personal group.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub group: Option<Located<String>>,
    /// Octal mode as a string, e.g. `"0770"`. Never world-accessible.
    #[serde(default)]
    #[schemars(with = "Option<String>", regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<Located<String>>,
}

/// How OpenClaw gets onto the Mac.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenClaw {
    /// Pinned npm version, e.g. `2026.9.6`. Never `latest`.
    #[schemars(with = "String")]
    pub version: Located<String>,
    /// Absolute path of the node binary. The official nodejs.org installer puts a Developer ID signed
    /// node at `/usr/local/bin/node`, which PPPC rules can pin by Team ID.
    #[serde(default = "default_node")]
    #[schemars(with = "String")]
    pub node: Located<String>,
    #[serde(default)]
    pub install: InstallMethod,
    /// Root-owned npm prefix the agent cannot write, below `/Library/Application Support/confine/`. Defaults
    /// to `/Library/Application Support/confine/<fleet>/agents/<agent>/openclaw`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub prefix: Option<Located<String>>,
    /// Let npm run the packages' lifecycle scripts (as root) during install. Off: review first.
    #[serde(default)]
    pub allow_lifecycle_scripts: bool,
}

/// Who installs OpenClaw's code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallMethod {
    /// The postinstall runs `npm install --prefix <prefix> openclaw@<version>`: each Mac resolves and
    /// downloads from the npm registry at install time.
    #[default]
    Npm,
    /// Recommended for fleets: the package carries OpenClaw, laid out at build time from the tarballs
    /// that `confine lock` pinned by sha512 in the lockfile beside the spec (`fleet.lock`). The Mac needs
    /// no registry, and every Mac runs the bytes CI checked. Installed root-owned under
    /// `/Library/Application Support/confine/<fleet>/openclaw/<version>`; the postinstall completes
    /// OpenClaw's package lifecycle there, with the Mac's node.
    Bundle,
    /// OpenClaw is already at `<prefix>` (installed by another package or shipped as extra payload).
    Preinstalled,
}

/// The OpenClaw gateway the daemon runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// TCP port on 127.0.0.1, 1024 to 65535.
    #[serde(default = "default_port")]
    #[schemars(with = "u16")]
    pub port: Located<u32>,
    #[serde(default)]
    pub bind: Bind,
    #[serde(default)]
    pub auth: Auth,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            port: unlocated(default_port_value()),
            bind: Bind::Loopback,
            auth: Auth::Token,
        }
    }
}

/// Where the gateway listens. Only loopback: the agent is reached through SSH or a local client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bind {
    #[default]
    Loopback,
}

/// How clients authenticate to the gateway. Only a bearer token, generated on each Mac.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    #[default]
    Token,
}

/// What the agent's tools may touch: OpenClaw's hardened baseline (its docs, "Hardened baselines" and
/// "Tool policy"), with the safe choice as every default.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tools {
    /// OpenClaw's base tool set (`tools.profile`), before `deny`.
    #[serde(default)]
    pub profile: ToolProfile,
    /// Tools or tool groups never offered (`tools.deny`), e.g. `group:automation` (cron, the gateway's
    /// own update and config tools, plugin management). The default denies the control plane.
    #[serde(default = "default_tools_deny")]
    #[schemars(with = "Vec<String>")]
    pub deny: Vec<Located<String>>,
    /// Restrict file tools to the workspace.
    #[serde(default = "yes")]
    pub fs_workspace_only: bool,
    #[serde(default)]
    pub exec: Exec,
    /// OpenClaw's elevated mode bypasses its sandbox. Off.
    #[serde(default)]
    pub elevated: bool,
    /// Which sessions the session tools may see (`tools.sessions.visibility`).
    #[serde(default)]
    pub sessions_visibility: SessionsVisibility,
    /// Let this agent reach other agents' sessions (`tools.agentToAgent.enabled`). Off.
    #[serde(default)]
    pub agent_to_agent: bool,
    /// OpenClaw's browser control (`browser.enabled`): drives a real browser as the agent. Off.
    #[serde(default)]
    pub browser: bool,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            profile: ToolProfile::default(),
            deny: default_tools_deny(),
            fs_workspace_only: true,
            exec: Exec::default(),
            elevated: false,
            sessions_visibility: SessionsVisibility::default(),
            agent_to_agent: false,
            browser: false,
        }
    }
}

/// OpenClaw's `tools.profile`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolProfile {
    /// Session status only.
    Minimal,
    /// Files, exec, web, sessions and memory: what a coding agent needs.
    #[default]
    Coding,
    /// Messaging and session tools, no files or exec.
    Messaging,
    /// Every tool, plugin tools included.
    Full,
}

/// OpenClaw's `tools.sessions.visibility`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionsVisibility {
    /// The current session only.
    #[serde(rename = "self")]
    Own,
    /// The current session and the sessions it spawned.
    Tree,
    /// Every session of this agent.
    #[default]
    Agent,
    /// Every session, other agents' too (still gated by `agent_to_agent`).
    All,
}

/// The shell-command policy.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    #[serde(default)]
    pub mode: ExecMode,
    /// Absolute paths (or path globs) of the commands the agent may run in `allowlist` mode.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowlist: Vec<Located<String>>,
}

/// OpenClaw's `tools.exec.mode`, which stands for the older `security` and `ask` pair:
/// `deny` (security deny), `allowlist` (security allowlist, ask off), `ask` (allowlist, ask on miss),
/// `full` (security full, ask off).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    Deny,
    #[default]
    Allowlist,
    Ask,
    Full,
}

/// The LaunchDaemon that runs the gateway as the agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Launchd {
    /// Defaults to `<fleet.identifier>.<agent>.gateway`. Not OpenClaw's own `ai.openclaw.gateway`, which
    /// OpenClaw would try to manage.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub label: Option<Located<String>>,
    #[serde(default = "yes")]
    pub keep_alive: bool,
    /// Minimum seconds between restarts.
    #[serde(default = "default_throttle")]
    #[schemars(with = "u32")]
    pub throttle_interval: Located<u32>,
    /// Seconds between SIGTERM and SIGKILL at stop. 20, as in OpenClaw's own job.
    #[serde(default = "default_exit_timeout")]
    #[schemars(with = "u32")]
    pub exit_timeout: Located<u32>,
    /// Octal umask as a string. `"0007"` keeps files group-shared and never world-readable.
    #[serde(default = "default_umask")]
    #[schemars(with = "String", regex(pattern = r"^0?[0-7]{3}$"))]
    pub umask: Located<String>,
    #[serde(default)]
    pub process_type: ProcessType,
    /// Extra environment variables. Never a secret: launchd shows them to every local user.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub environment: BTreeMap<String, Located<String>>,
}

impl Default for Launchd {
    fn default() -> Self {
        Launchd {
            label: None,
            keep_alive: true,
            throttle_interval: default_throttle(),
            exit_timeout: default_exit_timeout(),
            umask: default_umask(),
            process_type: ProcessType::default(),
            environment: BTreeMap::new(),
        }
    }
}

/// launchd's `ProcessType`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ProcessType {
    Background,
    #[default]
    Standard,
    Adaptive,
    Interactive,
}

/// Credentials the agent gets. Secret values are generated on the Mac or delivered later, never built in.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Random bytes in the gateway token (hex-encoded on the Mac by `openssl rand`). At least 24.
    #[serde(default = "default_token_bytes")]
    #[schemars(with = "u32")]
    pub gateway_token_bytes: Located<u32>,
    /// SSH deploy keys, generated on the Mac with `ssh-keygen -t ed25519`.
    #[serde(default)]
    pub ssh_keys: Vec<SshKey>,
    /// Other secrets (a GitHub PAT, an API key): the package creates an empty 0600 file for an MDM script
    /// to fill later.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// When root LaunchDaemons replace credentials on each Mac. Off unless set. Secrets are replaced by
    /// the MDM script `confine build` writes (`rotate-secrets.sh`), on the MDM's own schedule.
    #[serde(default)]
    pub rotation: Rotation,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            gateway_token_bytes: default_token_bytes(),
            ssh_keys: Vec::new(),
            secrets: Vec::new(),
            rotation: Rotation::default(),
        }
    }
}

/// A rotation schedule per kind of credential.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// A new gateway token; the gateway restarts with it and must accept it, or the old one is put back.
    #[serde(default)]
    pub gateway_token: Option<RotationSchedule>,
    /// A new deploy key per key, listed as pending in `public-keys.txt`. The switch waits until the
    /// admin's tooling marks it registered with the forge (`registered-keys/<agent>/<key>.pub`).
    #[serde(default)]
    pub ssh_keys: Option<RotationSchedule>,
}

/// When a rotation runs: launchd's `StartCalendarInterval`, which also runs a job missed while the Mac
/// slept, at the next wake.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationSchedule {
    #[schemars(with = "RotationInterval")]
    pub every: Located<RotationInterval>,
    /// Local time of day, `"HH:MM"` (24-hour).
    #[serde(default = "default_rotation_time")]
    #[schemars(with = "String", regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: Located<String>,
}

/// How often a rotation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotationInterval {
    /// Every day.
    Daily,
    /// On Sundays.
    Weekly,
    /// On the 1st of the month.
    Monthly,
}

/// One SSH deploy key and its `~/.ssh/config` host entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKey {
    /// Key file name under `~/.ssh`.
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// The `Host` alias in `~/.ssh/config`.
    #[schemars(with = "String")]
    pub host: Located<String>,
    /// The real host name. Defaults to `host`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hostname: Option<Located<String>>,
    #[serde(default = "default_ssh_user")]
    #[schemars(with = "String")]
    pub user: Located<String>,
    /// Key comment. Defaults to `<agent>-<name>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub comment: Option<Located<String>>,
}

/// A secret delivered after install.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// File name under `~/.openclaw/secrets`.
    #[schemars(with = "String")]
    pub name: Located<String>,
    /// Embed the value of this build-machine environment variable into the package. Needs
    /// `confine build --embed-secrets`; anyone holding the package can read the value.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub embed_from_env: Option<Located<String>>,
}

/// Host hardening beyond the agent's own account.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hardening {
    /// `chmod 700` every human home directory (750 is not enough while homes are group `staff`).
    #[serde(default = "yes")]
    pub lock_human_homes: bool,
    #[serde(default)]
    pub profiles: super::profiles::Profiles,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            lock_human_homes: true,
            profiles: super::profiles::Profiles::default(),
        }
    }
}

/// What goes into the package besides the generated files.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Also write the bare component package (for `installer -pkg` and agent-based MDMs).
    #[serde(default)]
    pub component: bool,
    /// Files or directories copied into the payload, modes preserved.
    #[serde(default)]
    pub extra_payload: Vec<ExtraPayload>,
}

/// One file or directory from the build machine installed on every Mac.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraPayload {
    /// Path on the build machine, relative to the spec file.
    #[schemars(with = "String")]
    pub source: Located<String>,
    /// Absolute destination on the Mac.
    #[schemars(with = "String")]
    pub destination: Located<String>,
    /// The entry holds a secret (a private key, a credential file). It is packed only by `confine build
    /// --embed-secrets`, like embedded secrets, and its files must be owner-only on the build machine.
    /// Without it, a source that looks like a private key is refused.
    #[serde(default)]
    pub secret: bool,
}

/// Where signing identities come from. The spec only names environment variables; it never holds keys.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// Environment variable holding the path of a PKCS#12 identity that signs both profiles and packages.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub identity_env: Option<Located<String>>,
    /// Environment variable holding the path of the PKCS#12 identity for profiles only.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub profile_identity_env: Option<Located<String>>,
    /// Environment variable holding the path of the PKCS#12 identity for packages only (Developer ID
    /// Installer).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pkg_identity_env: Option<Located<String>>,
}

pub(super) fn unlocated<T>(value: T) -> Located<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn yes() -> bool {
    true
}
fn default_minimum_macos() -> Located<String> {
    unlocated("14.0".to_owned())
}
fn default_shell() -> Located<String> {
    unlocated("/usr/bin/false".to_owned())
}
fn default_node() -> Located<String> {
    unlocated("/usr/local/bin/node".to_owned())
}
fn default_port_value() -> u32 {
    18789
}
fn default_port() -> Located<u32> {
    unlocated(default_port_value())
}
fn default_throttle() -> Located<u32> {
    unlocated(10)
}
fn default_exit_timeout() -> Located<u32> {
    unlocated(20)
}
fn default_umask() -> Located<String> {
    unlocated("0007".to_owned())
}
fn default_token_bytes() -> Located<u32> {
    unlocated(32)
}
fn default_tools_deny() -> Vec<Located<String>> {
    vec![unlocated("group:automation".to_owned())]
}
fn default_rotation_time() -> Located<String> {
    unlocated("03:00".to_owned())
}
fn default_ssh_user() -> Located<String> {
    unlocated("git".to_owned())
}
