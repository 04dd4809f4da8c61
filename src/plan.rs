//! The plan: a validated spec with every default applied and every derived name, path and identifier
//! resolved, in plain values. Artifact writers read only the plan, so each path on the Mac is decided in
//! exactly one place: here.

use std::collections::BTreeMap;

mod audit;
mod egress;

pub use audit::{AuditPlan, AuditedAgent, COLLECTOR_FILE};
pub use egress::{
    ADDRESS_TTL_SECONDS, DNS_TABLE, EgressPlan, EgressRulePlan, FleetEgressPlan, REFRESH_SECONDS,
};

use crate::spec::{
    self, ExecMode, InstallMethod, ProcessType, RotationInterval, RotationSchedule, SessionsVisibility, Spec,
    ToolProfile,
};

/// Where confine keeps its own files on the Mac (the installer's data file, uninstaller, agent configs,
/// OpenClaw installs, the install status). Root-owned, so agents cannot change what runs them. Defined with
/// the other allowed roots in the spec's path rules.
pub use crate::spec::SUPPORT_ROOT;
/// Where each agent's daemon logs go, one folder per agent.
pub const LOG_ROOT: &str = "/Library/Logs/confine";
/// OpenClaw's own log folder inside an agent's log folder: the agent's, because OpenClaw rotates its log
/// itself. The agent's log folder is root's: newsyslog (root) rotates the daemon's stdout and stderr there.
pub const OPENCLAW_LOG_DIR: &str = "openclaw";
/// Where root keeps each fleet's audit trail (`agents[].audit`), one root-only folder per fleet.
pub const AUDIT_ROOT: &str = "/private/var/log/confine";

/// Everything needed to write the fleet's artifacts.
#[derive(Debug, Clone)]
pub struct Plan {
    pub fleet: FleetPlan,
    /// Receipt identifier of the install package (`pkgutil --pkgs`): the fleet identifier itself.
    pub pkg_identifier: String,
    /// Identifier of the payload-free uninstall package.
    pub uninstall_pkg_identifier: String,
    /// `/Library/Application Support/confine/<fleet name>`.
    pub support_dir: String,
    /// Root-only folder under the support folder where secrets embedded with `--embed-secrets` wait until
    /// the postinstall moves them into each agent's secrets folder.
    pub embedded_secrets_dir: String,
    /// Personal groups first (one per agent), then the spec's groups.
    pub groups: Vec<GroupPlan>,
    pub agents: Vec<AgentPlan>,
    pub lock_human_homes: bool,
    /// Root's audit trail, when at least one agent has `audit.enabled`.
    pub audit: Option<AuditPlan>,
    /// `/private/etc/newsyslog.d/confine-<fleet>.conf`: rotates the gateways' stdout and stderr.
    pub newsyslog_path: String,
    /// The pf anchor and its watchdog: installed when an agent has `egress`, removed otherwise.
    pub egress: FleetEgressPlan,
}

#[derive(Debug, Clone)]
pub struct FleetPlan {
    pub name: String,
    pub organization: String,
    pub identifier: String,
    pub release: String,
    pub minimum_macos: String,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub name: String,
    pub gid: u32,
    pub full_name: String,
    /// Agent accounts in the group (besides an agent whose personal group it is).
    pub members: Vec<String>,
    pub include_local_admins: bool,
    /// The personal primary group of this agent, if it is one.
    pub personal_of: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AgentPlan {
    pub name: String,
    pub full_name: String,
    pub uid: u32,
    pub primary_group: String,
    pub primary_gid: u32,
    /// Extra groups, by name.
    pub groups: Vec<String>,
    pub home: String,
    pub shell: String,
    pub workspace: WorkspacePlan,
    pub openclaw: OpenClawPlan,
    pub gateway_port: u32,
    pub tools: ToolsPlan,
    pub launchd: LaunchdPlan,
    /// Root-owned folder holding the agent's config (and, for npm installs, its OpenClaw prefix).
    pub config_dir: String,
    /// OpenClaw's config file; root-owned, readable by the agent's group only.
    pub config_path: String,
    /// OpenClaw's state folder (`OPENCLAW_STATE_DIR`), owned by the agent, 0700.
    pub state_dir: String,
    /// Owner-only folder of the agent's secrets.
    pub secrets_dir: String,
    /// The gateway token file, generated on the Mac, read through a file SecretRef.
    pub token_path: String,
    pub token_bytes: u32,
    pub log_dir: String,
    pub ssh_keys: Vec<SshKeyPlan>,
    pub secrets: Vec<SecretPlan>,
    /// Outbound allowlist enforced by pf; None: unfiltered.
    pub egress: Option<EgressPlan>,
    /// The root LaunchDaemons that may rotate this agent's credentials, each kind once, enabled or not
    /// (the postinstall removes a disabled one a previous release installed).
    pub rotation: Vec<RotationDaemonPlan>,
}

/// A root LaunchDaemon that runs `<support folder>/rotate <command> <agent>`.
#[derive(Debug, Clone)]
pub struct RotationDaemonPlan {
    /// `<fleet identifier>.<agent>.rotate-<command>`.
    pub label: String,
    /// `/Library/LaunchDaemons/<label>.plist`.
    pub plist_path: String,
    /// `rotate`'s subcommand: `gateway-token`, `ssh-stage` or `ssh-confirm`.
    pub command: &'static str,
    /// Absolute path of the rotation script on the Mac.
    pub script: String,
    pub enabled: bool,
    /// When launchd starts it (`StartCalendarInterval`).
    pub calendar: Option<CalendarPlan>,
    /// A root-owned folder whose change starts it (`WatchPaths`), checked hourly too.
    pub watch: Option<String>,
    /// Root's log of every rotation of the fleet.
    pub log_path: String,
}

/// One `StartCalendarInterval` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarPlan {
    pub hour: u32,
    pub minute: u32,
    /// 0 is Sunday.
    pub weekday: Option<u32>,
    pub day: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct WorkspacePlan {
    pub path: String,
    pub group: String,
    pub mode: u32,
}

#[derive(Debug, Clone)]
pub struct OpenClawPlan {
    pub version: String,
    pub node: String,
    pub install: InstallMethod,
    /// Root-owned folder of OpenClaw's code. For npm installs each version is an npm prefix of its own,
    /// `<prefix>/versions/<version>`, and `<prefix>/current` links to the one the daemon runs; a
    /// preinstalled OpenClaw is at `<prefix>/lib/node_modules/openclaw`; a bundle is at [`bundle_root`],
    /// holding `node_modules/openclaw`.
    pub prefix: String,
    /// The gateway's entry point, run by node (through `current` for npm installs, so the daemon's plist
    /// stays the same across upgrades).
    pub entry: String,
    pub allow_lifecycle_scripts: bool,
}

#[derive(Debug, Clone)]
pub struct ToolsPlan {
    pub profile: ToolProfile,
    pub deny: Vec<String>,
    pub fs_workspace_only: bool,
    pub exec_mode: ExecMode,
    pub exec_allowlist: Vec<String>,
    pub elevated: bool,
    pub sessions_visibility: SessionsVisibility,
    pub agent_to_agent: bool,
    pub browser: bool,
}

#[derive(Debug, Clone)]
pub struct LaunchdPlan {
    pub label: String,
    /// `/Library/LaunchDaemons/<label>.plist`.
    pub plist_path: String,
    pub keep_alive: bool,
    pub throttle_interval: u32,
    pub exit_timeout: u32,
    pub umask: u32,
    pub process_type: ProcessType,
    /// The daemon's whole environment: confine's variables plus the spec's extras. Never a secret.
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SshKeyPlan {
    pub name: String,
    /// `~/.ssh/<name>` on the Mac.
    pub path: String,
    pub host: String,
    pub hostname: String,
    pub user: String,
    pub comment: String,
}

#[derive(Debug, Clone)]
pub struct SecretPlan {
    pub name: String,
    pub path: String,
    /// Build-machine variable whose value is embedded (only with `--embed-secrets`).
    pub embed_from_env: Option<String>,
}

impl Plan {
    /// Resolves a validated spec.
    pub fn new(spec: &Spec) -> Plan {
        let f = &spec.fleet;
        let fleet = FleetPlan {
            name: f.name.value.clone(),
            organization: f.organization.value.clone(),
            identifier: f.identifier.value.clone(),
            release: f.release.value.clone(),
            minimum_macos: f.minimum_macos.value.clone(),
        };
        let support_dir = format!("{SUPPORT_ROOT}/{}", fleet.name);
        let agents: Vec<AgentPlan> = spec.agents.iter().map(|a| agent_plan(&fleet, a)).collect();
        let mut groups: Vec<GroupPlan> = agents
            .iter()
            .map(|a| GroupPlan {
                name: a.primary_group.clone(),
                gid: a.primary_gid,
                full_name: a.full_name.clone(),
                members: Vec::new(),
                include_local_admins: false,
                personal_of: Some(a.name.clone()),
            })
            .collect();
        groups.extend(spec.groups.iter().map(|g| group_plan(g, &agents)));
        let egress_on = agents.iter().any(|a| a.egress.is_some());
        let egress = egress::fleet_egress(&fleet, &support_dir, LOG_ROOT, egress_on);
        Plan {
            audit: AuditPlan::new(spec, &fleet, &support_dir),
            newsyslog_path: format!("/private/etc/newsyslog.d/confine-{}.conf", fleet.name),
            egress,
            pkg_identifier: fleet.identifier.clone(),
            uninstall_pkg_identifier: format!("{}.uninstall", fleet.identifier),
            embedded_secrets_dir: format!("{support_dir}/embedded-secrets"),
            support_dir,
            groups,
            agents,
            lock_human_homes: spec.hardening.lock_human_homes,
            fleet,
        }
    }
}

/// A group's members are those it lists plus every agent that lists it, in spec order, without repeats.
fn group_plan(g: &spec::Group, agents: &[AgentPlan]) -> GroupPlan {
    let mut members: Vec<String> = g.members.iter().map(|m| m.value.clone()).collect();
    for agent in agents {
        if agent.groups.contains(&g.name.value) && !members.contains(&agent.name) {
            members.push(agent.name.clone());
        }
    }
    GroupPlan {
        name: g.name.value.clone(),
        gid: g.gid.value,
        full_name: g
            .full_name
            .as_ref()
            .map_or_else(|| g.name.value.clone(), |n| n.value.clone()),
        members,
        include_local_admins: g.include_local_admins,
        personal_of: None,
    }
}

fn agent_plan(fleet: &FleetPlan, a: &spec::Agent) -> AgentPlan {
    let name = a.name.value.clone();
    let (primary_group, primary_gid) = match &a.primary_group {
        Some(g) => (g.name.value.clone(), g.gid.value),
        None => (name.clone(), a.uid.value),
    };
    let groups: Vec<String> = a.groups.iter().map(|g| g.value.clone()).collect();
    let home = value_or(&a.home, || spec::default_home(&name));
    let config_dir = spec::config_dir(&fleet.name, &name);
    let state_dir = format!("{home}/.openclaw");
    let secrets_dir = format!("{state_dir}/secrets");
    let workspace = WorkspacePlan {
        path: value_or(&a.workspace.path, || spec::default_workspace(&name)),
        group: value_or(&a.workspace.group, || {
            groups.first().cloned().unwrap_or_else(|| primary_group.clone())
        }),
        mode: a
            .workspace
            .mode
            .as_ref()
            .and_then(|m| spec::parse_octal(&m.value))
            .unwrap_or(0o770),
    };
    let openclaw = openclaw_plan(&a.openclaw, &config_dir, &fleet.name);
    let label = value_or(&a.launchd.label, || spec::default_label(&fleet.identifier, &name));
    let log_dir = format!("{LOG_ROOT}/{name}");
    let config_path = format!("{config_dir}/openclaw.json");
    let environment = daemon_environment(a, &home, &openclaw, &config_path, &state_dir);
    let launchd = LaunchdPlan {
        plist_path: format!("/Library/LaunchDaemons/{label}.plist"),
        label,
        keep_alive: a.launchd.keep_alive,
        throttle_interval: a.launchd.throttle_interval.value,
        exit_timeout: a.launchd.exit_timeout.value,
        umask: spec::parse_octal(&a.launchd.umask.value).unwrap_or(0o007),
        process_type: a.launchd.process_type,
        environment,
    };
    let ssh_keys = a
        .credentials
        .ssh_keys
        .iter()
        .map(|k| ssh_key_plan(&name, &home, k))
        .collect();
    let rotation = rotation_plan(fleet, &name, &a.credentials.rotation);
    let secrets = a
        .credentials
        .secrets
        .iter()
        .map(|s| SecretPlan {
            name: s.name.value.clone(),
            path: format!("{secrets_dir}/{}", s.name.value),
            embed_from_env: s.embed_from_env.as_ref().map(|e| e.value.clone()),
        })
        .collect();
    AgentPlan {
        full_name: a.full_name.value.clone(),
        uid: a.uid.value,
        primary_group,
        primary_gid,
        groups,
        shell: a.shell.value.clone(),
        workspace,
        openclaw,
        gateway_port: a.gateway.port.value,
        tools: ToolsPlan {
            profile: a.tools.profile,
            deny: a.tools.deny.iter().map(|d| d.value.clone()).collect(),
            fs_workspace_only: a.tools.fs_workspace_only,
            exec_mode: a.tools.exec.mode,
            exec_allowlist: a.tools.exec.allowlist.iter().map(|e| e.value.clone()).collect(),
            elevated: a.tools.elevated,
            sessions_visibility: a.tools.sessions_visibility,
            agent_to_agent: a.tools.agent_to_agent,
            browser: a.tools.browser,
        },
        launchd,
        token_path: format!("{config_dir}/{}", spec::GATEWAY_TOKEN_FILE),
        token_bytes: a.credentials.gateway_token_bytes.value,
        config_dir,
        config_path,
        state_dir,
        secrets_dir,
        log_dir,
        ssh_keys,
        secrets,
        egress: a.egress.as_ref().map(|e| egress::agent_egress(a.uid.value, e)),
        rotation,
        home,
        name,
    }
}

/// Where the admin's tooling marks a pending deploy key as registered with the forge (see `pkg/rotate`).
pub fn registered_keys_dir(fleet: &str, agent: &str) -> String {
    format!("{SUPPORT_ROOT}/{fleet}/registered-keys/{agent}")
}

fn rotation_plan(fleet: &FleetPlan, agent: &str, r: &spec::Rotation) -> Vec<RotationDaemonPlan> {
    let daemon = |command: &'static str, schedule: Option<&RotationSchedule>, watch: Option<String>| {
        let label = format!("{}.{agent}.rotate-{command}", fleet.identifier);
        RotationDaemonPlan {
            plist_path: format!("/Library/LaunchDaemons/{label}.plist"),
            label,
            command,
            script: format!("{SUPPORT_ROOT}/{}/rotate", fleet.name),
            enabled: schedule.is_some(),
            calendar: schedule.map(calendar),
            watch,
            log_path: format!("{LOG_ROOT}/{}-rotation.log", fleet.name),
        }
    };
    let ssh = r.ssh_keys.as_ref();
    vec![
        daemon("gateway-token", r.gateway_token.as_ref(), None),
        daemon("ssh-stage", ssh, None),
        RotationDaemonPlan {
            calendar: None,
            ..daemon("ssh-confirm", ssh, Some(registered_keys_dir(&fleet.name, agent)))
        },
    ]
}

fn calendar(schedule: &RotationSchedule) -> CalendarPlan {
    let (hour, minute) = spec::time_of_day(&schedule.at.value).unwrap_or((3, 0));
    let (weekday, day) = match schedule.every.value {
        RotationInterval::Daily => (None, None),
        RotationInterval::Weekly => (Some(0), None),
        RotationInterval::Monthly => (None, Some(1)),
    };
    CalendarPlan {
        hour,
        minute,
        weekday,
        day,
    }
}

fn openclaw_plan(oc: &spec::OpenClaw, config_dir: &str, fleet: &str) -> OpenClawPlan {
    let version = oc.version.value.clone();
    let (prefix, entry) = match oc.install {
        InstallMethod::Bundle => {
            let root = bundle_root(fleet, &version);
            let entry = format!("{root}/node_modules/openclaw/dist/index.js");
            (root, entry)
        }
        InstallMethod::Npm | InstallMethod::Preinstalled => {
            let prefix = value_or(&oc.prefix, || spec::default_prefix(config_dir));
            let package_root = match oc.install {
                InstallMethod::Npm => format!("{prefix}/current"),
                _ => prefix.clone(),
            };
            let entry = format!("{package_root}/lib/node_modules/openclaw/dist/index.js");
            (prefix, entry)
        }
    };
    OpenClawPlan {
        version,
        node: oc.node.value.clone(),
        install: oc.install,
        entry,
        prefix,
        allow_lifecycle_scripts: oc.allow_lifecycle_scripts,
    }
}

/// Where the package puts a bundled OpenClaw: one root-owned folder per version, shared by the fleet's
/// agents that pin it. It holds `node_modules/openclaw` and its dependencies, as npm lays them out.
pub fn bundle_root(fleet: &str, version: &str) -> String {
    format!("{SUPPORT_ROOT}/{fleet}/openclaw/{version}")
}

/// The daemon's environment. `OPENCLAW_CONFIG_READONLY=1` is OpenClaw's switch for externally managed
/// config: config writers (setup, doctor repairs, plugin installs, `openclaw update`) refuse. It replaces
/// `OPENCLAW_NIX_MODE=1`, which implies the same but also turns on Nix-specific install and service
/// behaviour that does not describe this install. `OPENCLAW_SERVICE_REPAIR_POLICY=external`
/// stops `openclaw doctor` from "repairing" our daemon into its own LaunchAgent. The token is deliberately absent: it is read from a 0600 file through the config.
fn daemon_environment(
    a: &spec::Agent,
    home: &str,
    openclaw: &OpenClawPlan,
    config_path: &str,
    state_dir: &str,
) -> BTreeMap<String, String> {
    let node_dir = openclaw
        .node
        .rsplit_once('/')
        .map_or("/usr/local/bin", |(dir, _)| dir);
    let path = if ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].contains(&node_dir) {
        "/usr/bin:/bin:/usr/sbin:/sbin".to_owned()
    } else {
        format!("{node_dir}:/usr/bin:/bin:/usr/sbin:/sbin")
    };
    let mut env: BTreeMap<String, String> = a
        .launchd
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let fixed = [
        ("HOME", home),
        ("PATH", path.as_str()),
        ("OPENCLAW_CONFIG_PATH", config_path),
        ("OPENCLAW_STATE_DIR", state_dir),
        ("OPENCLAW_CONFIG_READONLY", "1"),
        ("OPENCLAW_NO_AUTO_UPDATE", "1"),
        ("OPENCLAW_SERVICE_REPAIR_POLICY", "external"),
    ];
    env.extend(fixed.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

fn ssh_key_plan(agent: &str, home: &str, k: &spec::SshKey) -> SshKeyPlan {
    SshKeyPlan {
        name: k.name.value.clone(),
        path: format!("{home}/.ssh/{}", k.name.value),
        host: k.host.value.clone(),
        hostname: value_or(&k.hostname, || k.host.value.clone()),
        user: k.user.value.clone(),
        comment: value_or(&k.comment, || format!("{agent}-{}", k.name.value)),
    }
}

fn value_or(value: &Option<spec::Located<String>>, default: impl FnOnce() -> String) -> String {
    value.as_ref().map_or_else(default, |v| v.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Plan {
        let loaded = crate::spec::load(None).expect("the example fleet is valid");
        Plan::new(&loaded.spec)
    }

    #[test]
    fn example_resolves_blog_paths() {
        let plan = example();
        let agent = &plan.agents[0];
        assert_eq!(agent.home, "/Users/hexagent");
        assert_eq!(agent.launchd.label, "com.halfday.agents.hexagent.gateway");
        assert_eq!(
            agent.launchd.plist_path,
            "/Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist"
        );
        assert_eq!(
            agent.token_path,
            "/Library/Application Support/confine/halfday-agents/agents/hexagent/gateway-token",
            "in root's folder of the agent"
        );
        assert_eq!(agent.primary_gid, 1051);
        assert_ne!(agent.primary_gid, 20, "never staff");
    }

    #[test]
    fn groups_collect_members_from_agents() {
        let plan = example();
        let shared = plan
            .groups
            .iter()
            .find(|g| g.name == "shared_agents")
            .expect("shared group");
        assert_eq!(shared.members, vec!["hexagent".to_owned()]);
        assert!(shared.include_local_admins);
        assert_eq!(plan.groups[0].personal_of.as_deref(), Some("hexagent"));
    }

    #[test]
    fn daemon_environment_has_no_secret() {
        let plan = example();
        let env = &plan.agents[0].launchd.environment;
        assert!(env.keys().all(|k| !k.contains("TOKEN")));
        assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
    }
}
