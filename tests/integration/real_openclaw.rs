//! The real OpenClaw and a real node, end to end on the simulated Mac: the package's own scripts install
//! the pinned OpenClaw with the real npm (offline, from the cache `.ci/install-e2e-tools` fills), and the
//! simulated launchctl really starts the daemon as the agent. Every assertion is answered by OpenClaw
//! itself, the kernel or curl. These runs are slow (npm, the gateway's first start): there are two, and
//! each shares one installed Mac between its assertions.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::sim::*;

/// A port nobody listens on now: other tests run at the same time on this machine.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("address").port()
}

/// The example fleet, with OpenClaw `version` and the gateway on `port`.
fn fleet(version: &str, port: u16) -> Fleet {
    let yaml = confine::spec::EXAMPLE
        .replace("version: 2026.9.6", &format!("version: {version}"))
        .replace("port: 18789", &format!("port: {port}"));
    assert!(
        yaml.contains(&format!("port: {port}")),
        "the example names its port"
    );
    plan_from(&yaml)
}

impl Mac {
    /// Runs a shell command on the Mac (in its mount namespace, with the simulated tools on PATH).
    fn shell_on_mac(&self, script: &str) -> Output {
        let mut command = self.in_mount_namespace();
        command
            .args(["sh", "-c", script])
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.sim.join("bin").display()),
            )
            .env("SIM_LIB", self.sim.join("simlib.sh"))
            .env("SIM_STATE", &self.state);
        command.output().expect("unshare")
    }

    /// Runs the agent's OpenClaw CLI as the agent, with the daemon's environment.
    fn openclaw_as_agent(&self, fleet: &Fleet, args: &str) -> Output {
        let agent = &fleet.agents[0];
        self.shell_on_mac(&format!(
            "sudo -n -u {name} env -i HOME={home} PATH=/usr/local/bin:/usr/bin:/bin \
             OPENCLAW_CONFIG_PATH='{config}' OPENCLAW_STATE_DIR={state} OPENCLAW_CONFIG_READONLY=1 \
             /usr/local/bin/node '{prefix}/current/lib/node_modules/openclaw/openclaw.mjs' {args}",
            name = agent.name,
            home = agent.home,
            config = agent.config_path,
            state = agent.state_dir,
            prefix = agent.openclaw.prefix,
        ))
    }

    /// The daemon's process ID, as the simulated launchctl recorded it.
    fn daemon_pid(&self, fleet: &Fleet) -> u32 {
        let label = &fleet.agents[0].launchd.label;
        let pid = fs::read_to_string(self.state.join("launchd").join(label).join("pid"))
            .unwrap_or_else(|e| panic!("{label} was never started: {e}"));
        pid.trim().parse().expect("pid")
    }

    /// The daemon's log files, for failure messages.
    fn daemon_logs(&self, fleet: &Fleet) -> String {
        let dir = self.on_mac(&fleet.agents[0].log_dir);
        ["gateway.out.log", "gateway.err.log"]
            .iter()
            .map(|name| {
                let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "--- {name} (last lines)\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Installs, or panics with the scripts' output and the daemon's logs.
    fn install_ok(&self, fleet: &Fleet, what: &str) -> String {
        self.install(fleet)
            .unwrap_or_else(|e| panic!("{what} failed:\n{e}\n{}", self.daemon_logs(fleet)))
    }

    fn status(&self, fleet: &Fleet) -> serde_json::Value {
        let path = self.on_mac(&format!("{}/status.json", fleet.support_dir));
        serde_json::from_slice(&fs::read(path).expect("status.json")).expect("status.json is JSON")
    }
}

/// POSTs the session_status tool to the gateway, with a bearer token (from a header file, never an
/// argument) or without: (HTTP status, body).
fn invoke(port: u16, token: Option<&str>) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-m", "60", "-o"])
        .arg(dir.path().join("body"))
        .args([
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", r#"{"tool":"session_status","args":{}}"#]);
    if let Some(token) = token {
        let header = dir.path().join("header");
        fs::write(&header, format!("Authorization: Bearer {token}\n")).expect("header");
        curl.arg("-H").arg(format!("@{}", header.display()));
    }
    let out = curl
        .arg(format!("http://127.0.0.1:{port}/tools/invoke"))
        .output()
        .expect("curl is installed");
    let body = fs::read_to_string(dir.path().join("body")).unwrap_or_default();
    (String::from_utf8_lossy(&out.stdout).into_owned(), body)
}

/// The local addresses of every TCP listener on `port`, from the kernel (ss).
fn listeners(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss is installed (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
}

/// Whether a process runs (a zombie, which nobody reaped yet in this container, does not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A field of /proc/<pid>/status, e.g. "Uid".
fn proc_status(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

#[test]
fn fresh_install_runs_the_real_agent_locked_down() {
    let tools = e2e_tools();
    let mac = Mac::real(&tools);
    let port = free_port();
    let fleet = fleet(&tools.openclaw, port);
    let agent = &fleet.agents[0];
    let out = mac.install_ok(&fleet, "the install");
    assert!(out.contains("every check passed"), "{out}");
    // The real npm and node ran as root beside Installer's environment: the console user's hostile
    // ~/.npmrc, NODE_OPTIONS, npm_config_*, BASH_ENV and ENV (`Mac::run`) took no effect.
    assert_eq!(mac.console_session_ran(), None);

    // The self-check passed, and recorded versions and OpenClaw's own audit.
    let status = mac.status(&fleet);
    assert_eq!(status["result"], "ok", "{status}");
    let checks: Vec<&str> = status["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check"].as_str().expect("name"))
        .collect();
    for check in [
        "gateway-answers-health",
        "exec-allowlist-set",
        "gateway-refuses-no-token",
        "gateway-accepts-token",
        "security-audit-no-critical",
        "listens-on-loopback-only",
    ] {
        assert!(checks.contains(&check), "{check} is not checked: {status}");
    }
    assert_eq!(status["agents"][0]["openclaw"], tools.openclaw.as_str());
    assert_eq!(status["agents"][0]["node"], tools.node.as_str());
    let findings = status["audit_findings"].as_array().expect("audit findings");
    assert!(findings.iter().all(|f| f["severity"] != "critical"), "{status}");
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "fs.config.perms_group_readable"),
        "the audit's findings are recorded: {status}"
    );

    // The gateway listens on loopback only, and wants the token from the file.
    let mut addresses = listeners(port);
    addresses.sort();
    assert_eq!(addresses, [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
    let token = fs::read_to_string(mac.on_mac(&agent.token_path)).expect("token");
    assert_eq!(invoke(port, None).0, "401");
    assert_eq!(invoke(port, Some("0123456789abcdef")).0, "401");
    let (code, body) = invoke(port, Some(token.trim()));
    assert_eq!(code, "200", "{body}");
    assert!(body.contains(&format!("OpenClaw {}", tools.openclaw)), "{body}");

    // launchctl started the plist's program as the agent, with its umask, directory and logs.
    let pid = mac.daemon_pid(&fleet);
    let ids = format!("{0}\t{0}\t{0}\t{0}", agent.uid);
    assert_eq!(proc_status(pid, "Uid"), ids);
    assert_eq!(
        proc_status(pid, "Gid"),
        ids.replace(&agent.uid.to_string(), &agent.primary_gid.to_string())
    );
    assert_eq!(proc_status(pid, "Umask"), "0007");
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    assert!(
        cwd.ends_with("Users/Shared/hexagent-workspace"),
        "{}",
        cwd.display()
    );
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.split('\0').any(|v| v == "OPENCLAW_CONFIG_READONLY=1"),
        "{environ}"
    );
    assert!(
        !environ.contains(token.trim()),
        "the token is never in the environment"
    );
    let log = mac.on_mac(&format!("{}/gateway.out.log", agent.log_dir));
    assert_eq!(fs::metadata(&log).expect("stdout log").uid(), agent.uid);

    // OpenClaw accepts its config, and holds the allowlist the spec gave it.
    let validate = mac.openclaw_as_agent(&fleet, "config validate");
    assert!(validate.status.success(), "{}", output_text(&validate));
    assert!(
        output_text(&validate).contains("Config valid"),
        "{}",
        output_text(&validate)
    );
    let approvals = mac.openclaw_as_agent(&fleet, "approvals get --json");
    assert!(approvals.status.success(), "{}", output_text(&approvals));
    let approvals: serde_json::Value = serde_json::from_slice(&approvals.stdout).expect("approvals JSON");
    let patterns: Vec<&str> = approvals["file"]["agents"]["*"]["allowlist"]
        .as_array()
        .expect("allowlist")
        .iter()
        .map(|e| e["pattern"].as_str().expect("pattern"))
        .collect();
    assert_eq!(patterns, agent.tools.exec_allowlist);

    // The installed code is root's: the lifecycle is complete, and the agent cannot change it.
    let package = mac.on_mac(&format!(
        "{}/versions/{}/lib/node_modules/openclaw",
        agent.openclaw.prefix, tools.openclaw
    ));
    assert!(!package.join(".openclaw-lifecycle-pending").exists());
    assert_eq!(fs::metadata(&package).expect("package").uid(), 0);

    // Rotation (issue 15): the real gateway restarts with the new token and refuses the old one.
    let rotate = mac.shell_on_mac(&format!(
        "CONFINE_SIM_BIN='{}' sh '{}/rotate' gateway-token {}",
        mac.sim.join("bin").display(),
        fleet.support_dir,
        agent.name
    ));
    assert!(
        rotate.status.success(),
        "{}\n{}",
        output_text(&rotate),
        mac.daemon_logs(&fleet)
    );
    let rotated = fs::read_to_string(mac.on_mac(&agent.token_path)).expect("token");
    assert_ne!(rotated, token);
    assert_eq!(
        invoke(port, Some(token.trim())).0,
        "401",
        "the old token is refused"
    );
    let (code, body) = invoke(port, Some(rotated.trim()));
    assert_eq!(code, "200", "{body}");
    let pid = mac.daemon_pid(&fleet);

    // Uninstall stops the daemon.
    let out = mac.uninstall(&fleet);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!alive(pid), "the daemon still runs");
}

#[test]
fn upgrades_switch_versions_only_when_the_new_one_works() {
    let tools = e2e_tools();
    let old_node = Path::new("/usr/bin/node");
    let old_node_version = Command::new(old_node)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        old_node_version.starts_with("v20.") || old_node_version.starts_with("v22."),
        "the failing-upgrade case needs an old node at /usr/bin/node (found '{old_node_version}'): \
         apt-get install nodejs"
    );
    let mac = Mac::real(&tools);
    let port = free_port();
    let old = fleet(&tools.openclaw_previous, port);
    let new = fleet(&tools.openclaw, port);
    let agent = &new.agents[0];
    mac.install_ok(&old, &format!("installing {}", tools.openclaw_previous));
    let token = fs::read_to_string(mac.on_mac(&agent.token_path)).expect("token");
    let old_pid = mac.daemon_pid(&old);

    // An upgrade on a Mac whose node is too old fails before anything changes, naming the cause.
    mac.replace_node(old_node);
    // What the running agent writes itself (its state, logs, locks) is not the installer's doing.
    let installers_part = |snapshot: std::collections::BTreeMap<String, String>| {
        let own = [
            format!("{}/", agent.home),
            format!("{}/", agent.log_dir),
            "/private/tmp/".to_owned(),
        ];
        snapshot
            .into_iter()
            .filter(|(path, _)| !own.iter().any(|o| path.starts_with(o.as_str())))
            .collect()
    };
    let before = installers_part(mac.snapshot(true));
    let err = mac
        .install(&new)
        .expect_err("node 20 cannot run the new OpenClaw");
    let have = old_node_version.trim_start_matches('v');
    assert!(
        err.contains(&format!("node {have} at /usr/local/bin/node is too old or too new for openclaw@{}, which needs node >=24.16.0 <25 || >=26.1.0", tools.openclaw)),
        "{err}"
    );
    assert_eq!(
        changed(&before, &installers_part(mac.snapshot(true))),
        Vec::<String>::new()
    );
    assert_eq!(mac.daemon_pid(&old), old_pid);
    let (code, body) = invoke(port, Some(token.trim()));
    assert_eq!(code, "200", "{body}");
    assert!(
        body.contains(&format!("OpenClaw {}", tools.openclaw_previous)),
        "{body}"
    );

    // With a supported node the upgrade goes through, ends on the new version, and drops the old one.
    mac.replace_node(&tools.dir.join("node/bin/node"));
    mac.install_ok(&new, &format!("upgrading to {}", tools.openclaw));
    let status = mac.status(&new);
    assert_eq!(status["result"], "ok", "{status}");
    assert_eq!(status["agents"][0]["openclaw"], tools.openclaw.as_str());
    let (code, body) = invoke(port, Some(token.trim()));
    assert_eq!(code, "200", "{body}");
    assert!(body.contains(&format!("OpenClaw {}", tools.openclaw)), "{body}");
    let prefix = mac.on_mac(&agent.openclaw.prefix);
    assert_eq!(
        fs::read_link(prefix.join("current")).expect("current"),
        Path::new("versions").join(&tools.openclaw)
    );
    let versions: Vec<String> = fs::read_dir(prefix.join("versions"))
        .expect("versions")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(versions, std::slice::from_ref(&tools.openclaw));
    assert!(!alive(old_pid), "the old daemon still runs");
}
