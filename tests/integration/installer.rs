//! The installer scripts (`pkg/`), run as root on the simulated Mac (`crate::sim`) with a stub OpenClaw:
//! accounts, folders, credentials, daemons, idempotence, collisions, uninstall, hostile strings, shells.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use confine::installer::{self, ScriptFile};
use confine::layout::EmbeddedSecret;

use crate::sim::*;

#[test]
fn fresh_install_creates_accounts_folders_credentials_and_daemons() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    let out = mac
        .install(&plan)
        .unwrap_or_else(|e| panic!("install failed:\n{e}"));
    assert!(out.contains("confine: installed halfday-agents 1.0.0"), "{out}");

    assert_eq!(mac.ds("Users", "hexagent", "UniqueID").as_deref(), Some("1051"));
    assert_eq!(
        mac.ds("Users", "hexagent", "PrimaryGroupID").as_deref(),
        Some("1051")
    );
    assert_eq!(mac.ds("Users", "hexagent", "Password").as_deref(), Some("*"));
    assert_eq!(mac.ds("Users", "hexagent", "IsHidden").as_deref(), Some("1"));
    assert_eq!(
        mac.ds("Users", "hexagent", "UserShell").as_deref(),
        Some("/usr/bin/false")
    );
    assert_eq!(
        mac.ds("Users", "hexagent", "RealName").as_deref(),
        Some("Hex Agent")
    );
    assert_eq!(mac.ds("Users", "hexagent", "AuthenticationAuthority"), None);
    assert_eq!(
        mac.ds("Groups", "hexagent", "PrimaryGroupID").as_deref(),
        Some("1051")
    );
    assert_eq!(
        mac.ds("Groups", "shared_agents", "PrimaryGroupID").as_deref(),
        Some("1050")
    );
    assert_eq!(
        mac.ds("Groups", "shared_agents", "GroupMembership").as_deref(),
        Some("hexagent\nalice\n")
    );
    assert_eq!(
        mac.ds("Groups", "admin", "GroupMembership").as_deref(),
        Some("root\nalice\n")
    );
    assert_eq!(
        mac.ds("Groups", "staff", "GroupMembership").as_deref(),
        Some("root\n")
    );

    let agent = &plan.agents[0];
    let support = &plan.support_dir;
    for (path, expected) in [
        ("/Users/hexagent", (0o700, 1051, 1051)),
        ("/Users/hexagent/.openclaw", (0o700, 1051, 1051)),
        ("/Users/hexagent/.openclaw/secrets", (0o700, 1051, 1051)),
        (
            "/Library/Application Support/confine/halfday-agents/agents/hexagent/gateway-token",
            (0o400, 1051, 1051),
        ),
        (
            "/Users/hexagent/.openclaw/secrets/github_pat",
            (0o600, 1051, 1051),
        ),
        ("/Users/hexagent/.ssh", (0o700, 1051, 1051)),
        ("/Users/hexagent/.ssh/config", (0o600, 1051, 1051)),
        ("/Users/hexagent/.ssh/deploy_halfday", (0o600, 1051, 1051)),
        ("/Users/hexagent/.ssh/deploy_halfday.pub", (0o644, 1051, 1051)),
        ("/Users/Shared/hexagent-workspace", (0o770, 1051, 1050)),
        ("/Library/Logs/confine/hexagent", (0o755, 0, 0)),
        (
            "/Library/Logs/confine/hexagent/gateway.out.log",
            (0o640, 1051, 80),
        ),
        ("/Library/Logs/confine/hexagent/openclaw", (0o750, 1051, 80)),
        (agent.config_dir.as_str(), (0o755, 0, 0)),
        (agent.config_path.as_str(), (0o640, 0, 1051)),
        (agent.openclaw.prefix.as_str(), (0o755, 0, 0)),
        (agent.openclaw.entry.as_str(), (0o644, 0, 0)),
        (agent.launchd.plist_path.as_str(), (0o644, 0, 0)),
        (&format!("{support}/public-keys.txt"), (0o644, 0, 0)),
        (&format!("{support}/status.json"), (0o644, 0, 0)),
        (&format!("{support}/uninstall"), (0o755, 0, 0)),
        ("/Users/alice", (0o700, 501, 20)),
    ] {
        assert_eq!(mode_owner(&mac, path), expected, "{path}");
    }
    assert!(!mac.on_mac(&format!("{support}/.previous")).exists());
    assert!(!mac.on_mac(&format!("{support}/.work")).exists());

    let token = fs::read_to_string(mac.on_mac(&agent.token_path)).expect("token");
    assert_eq!(token.trim_end().len(), 64, "32 random bytes, hex");
    let ssh_config = fs::read_to_string(mac.on_mac("/Users/hexagent/.ssh/config")).expect("config");
    assert!(ssh_config.contains(
        "Host github.com\n  HostName github.com\n  User git\n  IdentityFile \"/Users/hexagent/.ssh/deploy_halfday\"\n  IdentitiesOnly yes\n"
    ), "{ssh_config}");
    let keys = fs::read_to_string(mac.on_mac(&format!("{support}/public-keys.txt"))).expect("keys");
    assert!(keys.starts_with("hexagent deploy_halfday ssh-ed25519 "), "{keys}");
    assert!(keys.trim_end().ends_with(" hexagent-deploy-halfday"), "{keys}");

    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(mac.on_mac(&format!("{support}/status.json"))).unwrap())
            .expect("status.json is JSON");
    assert_eq!(status["result"], "ok");
    assert_eq!(status["checks"].as_array().expect("checks").len(), 23);
    assert_eq!(status["agents"][0]["openclaw"], "2026.9.6");
    assert_eq!(status["agents"][0]["node"], "24.22.3");
    assert_eq!(
        status["audit_findings"][0]["check"],
        "fs.config.perms_group_readable"
    );
    assert!(
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{status}"
    );

    insta::assert_snapshot!("fresh_install_commands", mac.commands());
}

/// A rerun changes nothing on the Mac. It does stop and start every daemon: root quiesces each agent
/// (boots its daemon out, ends its processes) before it touches anything of it (issue 16).
#[test]
fn second_install_changes_nothing() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let before = mac.snapshot(true);
    mac.clear_commands();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("second install:\n{e}"));
    assert_eq!(changed(&before, &mac.snapshot(true)), Vec::<String>::new());
    let log = mac.commands();
    for change in ["dscl . -create", "dscl . -delete", "dseditgroup", "npm"] {
        assert!(!log.contains(change), "a rerun ran `{change}`:\n{log}");
    }
    let hex = "system/com.halfday.agents.hexagent.gateway";
    let quiesced = format!("launchctl bootout {hex}\n");
    let bootstrap =
        "launchctl bootstrap system /Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist\n";
    assert!(log.contains(&quiesced) && log.contains(bootstrap), "{log}");
    assert!(log.find(&quiesced) < log.find(bootstrap), "{log}");
}

/// Every agent is quiesced before root touches anything of it, then reloaded; only the changed agent's
/// files change. This replaced "only the daemon whose plist changed reloads": issue 16 wins over sparing
/// an unchanged daemon a restart, because root must never work in the trees of a running agent.
#[test]
fn upgrade_quiesces_every_agent_before_touching_it() {
    let mac = Mac::new(apple_sh());
    mac.install(&two_agents(18789))
        .unwrap_or_else(|e| panic!("v1:\n{e}"));
    let before = mac.snapshot(true);
    mac.clear_commands();
    let v2 = two_agents(18800);
    mac.install(&v2).unwrap_or_else(|e| panic!("v2:\n{e}"));
    let support = &v2.support_dir;
    assert_eq!(
        changed(&before, &mac.snapshot(true)),
        vec![
            format!("{support}/agents/hexagent/openclaw.json"),
            format!("{support}/fleet-data.sh"),
            "/Library/LaunchDaemons/com.example.duo.hexagent.gateway.plist".to_owned(),
            "state/launchd/com.example.duo.hexagent.gateway/fields".to_owned(),
            "state/launchd/com.example.duo.hexagent.gateway/port".to_owned(),
        ]
    );
    let log = mac.commands();
    for agent in ["hexagent", "docbot"] {
        let label = format!("system/com.example.duo.{agent}.gateway");
        // bootout is asynchronous: the script waits until launchd has let go, then ends what is left.
        let quiesce = format!(
            "launchctl bootout {label}\nlaunchctl print {label}\nsleep 1\nlaunchctl print {label}\n\
             pgrep -U "
        );
        let stopped = log
            .find(&quiesce)
            .unwrap_or_else(|| panic!("{agent} not quiesced:\n{log}"));
        let touched = log
            .find(&format!("sudo -n -u {agent} "))
            .unwrap_or_else(|| panic!("{agent}'s trees untouched:\n{log}"));
        assert!(
            stopped < touched,
            "root worked as {agent} before quiescing it:\n{log}"
        );
        assert!(
            log.contains(&format!(
                "launchctl bootstrap system /Library/LaunchDaemons/com.example.duo.{agent}.gateway.plist\n"
            )),
            "{log}"
        );
    }
}

#[test]
fn uid_collision_fails_in_preinstall_and_changes_nothing() {
    let mac = Mac::new(apple_sh());
    mac.write_ds("Users", "bob", "UniqueID", "1051");
    mac.write_ds("Users", "bob", "RecordName", "bob");
    let before = mac.snapshot(true);
    let err = mac.install(&example()).expect_err("a taken UID must fail");
    assert!(
        err.contains("confine: ERROR: ID 1051 of user 'hexagent' already belongs to user 'bob'"),
        "{err}"
    );
    assert!(!err.contains("preflight passed"), "{err}");
    assert_eq!(changed(&before, &mac.snapshot(true)), Vec::<String>::new());
}

#[test]
fn gid_and_name_collisions_fail_naming_both() {
    let mac = Mac::new(apple_sh());
    mac.write_ds("Groups", "devs", "PrimaryGroupID", "1050");
    let err = mac.install(&example()).expect_err("a taken GID must fail");
    assert!(
        err.contains("ID 1050 of group 'shared_agents' already belongs to group 'devs'"),
        "{err}"
    );

    let mac = Mac::new(apple_sh());
    mac.write_ds("Users", "hexagent", "UniqueID", "777");
    let err = mac
        .install(&example())
        .expect_err("a name with another UID must fail");
    assert!(
        err.contains("user 'hexagent' already exists with ID 777, but the spec gives it ID 1051"),
        "{err}"
    );
}

#[test]
fn uninstall_returns_the_mac_to_its_starting_state() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    let start = mac.snapshot(true);
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    assert_ne!(changed(&start, &mac.snapshot(true)), Vec::<String>::new());
    let out = mac.uninstall(&plan);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(changed(&start, &mac.snapshot(true)), Vec::<String>::new());
}

#[test]
fn self_check_fails_when_the_gateway_listens_beyond_loopback() {
    let mac = Mac::new(apple_sh());
    mac.write_state("listen-address", "*");
    let plan = example();
    let err = mac
        .install(&plan)
        .expect_err("a gateway on every interface must fail");
    assert!(
        err.contains("confine: ERROR: self-check failed: hexagent/listens-on-loopback-only"),
        "{err}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(mac.on_mac(&format!("{}/status.json", plan.support_dir))).unwrap())
            .unwrap();
    assert_eq!(status["result"], "failed");
}

#[test]
fn self_check_fails_when_the_agent_can_sudo() {
    let mac = Mac::new(apple_sh());
    mac.write_state("sudoers-nopasswd", "hexagent\n");
    let plan = example();
    let err = mac.install(&plan).expect_err("an agent with sudo must fail");
    assert!(err.contains("self-check failed: hexagent/cannot-sudo ("), "{err}");
    // Fail closed: the agent of a fresh install whose checks failed does not stay running.
    assert!(
        !loaded(&mac, &plan.agents[0].launchd.label),
        "the gateway still runs:\n{err}"
    );
}

/// Whether the fake launchd holds the job (a job being booted out is on its way out).
fn loaded(mac: &Mac, label: &str) -> bool {
    let job = mac.state.join("launchd").join(label);
    job.is_dir() && !job.join("stopping").exists()
}

/// A daemon switched off in Login Items is refused by Background Task Management with EIO, which
/// `launchctl enable` does not clear: the install retries, then fails saying where to allow it.
#[test]
fn a_daemon_switched_off_in_login_items_fails_naming_login_items() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    mac.write_state(&format!("btm-disallowed/{}", plan.agents[0].launchd.label), "");
    let err = mac.install(&plan).expect_err("a refused daemon must fail");
    assert!(
        err.contains("Login Items") && err.contains("com.apple.servicemanagement"),
        "{err}"
    );
    assert!(!loaded(&mac, &plan.agents[0].launchd.label), "{err}");
}

#[test]
fn hostile_strings_are_stored_verbatim_and_never_run() {
    let canary = format!("/tmp/confine-pwned-{}", std::process::id());
    let evil = format!("x' \"y\" $(touch {canary}) `touch {canary}`; touch {canary} \\ * -n");
    let evil_multiline = format!("{evil}\nsecond line $(touch {canary})\n");
    let q = |s: &str| serde_json::to_string(s).expect("a JSON string is a YAML string");
    let yaml = format!(
        r#"
version: 1
fleet: {{ name: evil, organization: {org}, identifier: com.example.evil, release: 1.0.0 }}
groups:
  - {{ name: shared_agents, gid: 1050, full_name: {gname}, include_local_admins: true }}
agents:
  - name: hexagent
    full_name: {aname}
    uid: 1051
    groups: [shared_agents]
    home: /private/var/confine/evil/hexagent
    workspace: {{ path: {ws} }}
    openclaw: {{ version: 2026.9.6 }}
    tools: {{ exec: {{ allowlist: [{allow}] }} }}
    credentials:
      ssh_keys: [{{ name: deploy, host: github.com, comment: {comment} }}]
"#,
        org = q(&evil),
        gname = q(&evil_multiline),
        aname = q(&evil_multiline),
        ws = q(&format!("/Users/Shared/w `touch {canary}`")),
        allow = q(&format!("/usr/bin/$(touch {canary})")),
        comment = q(&evil),
    );
    let plan = plan_from(&yaml);
    let mac = Mac::new(apple_sh());
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("install failed:\n{e}"));

    assert_eq!(
        mac.ds("Users", "hexagent", "RealName"),
        Some(evil_multiline.clone())
    );
    assert_eq!(
        mac.ds("Groups", "shared_agents", "RealName"),
        Some(evil_multiline)
    );
    // A home cannot hold hostile text (the spec allows `/Users/<agent>` or the dedicated root below), so
    // this one checks the dedicated root: the folders above the home are root's, not the agent's.
    assert_eq!(
        mac.ds("Users", "hexagent", "NFSHomeDirectory"),
        Some("/private/var/confine/evil/hexagent".to_owned())
    );
    for parent in ["/private/var/confine", "/private/var/confine/evil"] {
        let (mode, uid, _) = mode_owner(&mac, parent);
        assert_eq!(
            (uid, mode & 0o022),
            (0, 0),
            "{parent} is root's and not writable by others"
        );
    }
    assert_eq!(mode_owner(&mac, &plan.agents[0].home), (0o700, 1051, 1051));
    assert_eq!(
        mode_owner(&mac, &plan.agents[0].workspace.path),
        (0o770, 1051, 1050)
    );
    let pubkey = fs::read_to_string(mac.on_mac(&format!("{}/.ssh/deploy.pub", plan.agents[0].home)))
        .expect("public key");
    assert!(pubkey.trim_end().ends_with(&format!(" {evil}")), "{pubkey}");
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(mac.on_mac(&format!("{}/status.json", plan.support_dir))).unwrap())
            .expect("status.json stays JSON");
    assert_eq!(status["organization"], evil.as_str());
    let approvals = fs::read_to_string(mac.on_mac(&format!("{}/approvals.json", plan.agents[0].state_dir)))
        .expect("the allowlist went to OpenClaw");
    let approvals: serde_json::Value = serde_json::from_str(&approvals).expect("approvals are JSON");
    assert_eq!(
        approvals["agents"]["*"]["allowlist"][0]["pattern"],
        format!("/usr/bin/$(touch {canary})")
    );

    let out = mac.uninstall(&plan);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!Path::new(&canary).exists(), "a spec value was executed");
}

#[test]
fn dash_and_bash_posix_run_the_same_install_as_apples_sh() {
    let plan = example();
    let apple = Mac::new(apple_sh());
    apple
        .install(&plan)
        .unwrap_or_else(|e| panic!("Apple's sh:\n{e}"));
    let strip = |m: BTreeMap<String, String>, mac: &Mac| -> BTreeMap<String, String> {
        let root = mac.target.to_str().unwrap().to_owned();
        m.into_iter().map(|(k, v)| (k, v.replace(&root, ""))).collect()
    };
    let expected = strip(apple.snapshot(false), &apple);
    for shell in [DASH, BASH_POSIX] {
        let other = Mac::new(shell);
        other.install(&plan).unwrap_or_else(|e| panic!("{shell:?}:\n{e}"));
        assert_eq!(apple.commands(), other.commands(), "{shell:?}");
        let got = strip(other.snapshot(false), &other);
        assert_eq!(changed(&expected, &got), Vec::<String>::new(), "{shell:?}");
    }
}

#[test]
fn scripts_parse_and_pass_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = example();
    let mut files = installer::scripts(&plan).expect("scripts");
    files.extend(
        installer::uninstall_scripts(&plan)
            .expect("uninstall")
            .into_iter()
            .filter(|f| f.name == "postinstall")
            .map(|f| ScriptFile {
                name: "uninstall".into(),
                ..f
            }),
    );
    for f in &files {
        fs::write(dir.path().join(&f.name), &f.contents).expect("write");
    }
    for f in &files {
        for shell in [apple_sh(), DASH, BASH_POSIX] {
            let out = Command::new(shell[0])
                .args(&shell[1..])
                .arg("-n")
                .arg(&f.name)
                .current_dir(dir.path())
                .output()
                .expect("shell");
            assert!(
                out.status.success(),
                "{shell:?} -n {}: {}",
                f.name,
                output_text(&out)
            );
        }
    }
    let shellcheck = Command::new("shellcheck")
        .args(["-s", "sh", "-x"])
        .args(files.iter().map(|f| f.name.as_str()))
        .current_dir(dir.path())
        .output();
    let out =
        shellcheck.unwrap_or_else(|e| panic!("shellcheck is missing ({e}): apt-get install shellcheck"));
    assert!(out.status.success(), "shellcheck:\n{}", output_text(&out));
}

#[test]
fn embedded_secret_replaces_the_placeholder_and_leaves_no_copy() {
    let mac = Mac::new(apple_sh());
    let mut fleet = example();
    let agent = &fleet.plan.agents[0];
    let secret = &agent.secrets[0];
    let secret_path = secret.path.clone();
    fleet.secrets.push(EmbeddedSecret {
        agent: agent.name.clone(),
        name: secret.name.clone(),
        path: secret.path.clone(),
        value: b"github_pat_'$(touch /tmp/pwned)'\n".to_vec(),
    });
    mac.install(&fleet).unwrap_or_else(|e| panic!("install:\n{e}"));
    let installed = fs::read(mac.on_mac(&secret_path)).expect("secret installed");
    assert_eq!(installed, b"github_pat_'$(touch /tmp/pwned)'\n");
    assert_eq!(
        mode_owner(&mac, &secret_path),
        (0o600, agent.uid, agent.primary_gid)
    );
    let staged = &fleet.plan.embedded_secrets_dir;
    let leftovers: Vec<_> = fs::read_dir(mac.on_mac(staged))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "the root-only copy is removed after install: {leftovers:?}"
    );
}

#[test]
fn failed_upgrades_keep_the_running_version() {
    let mac = Mac::new(apple_sh());
    let old = plan_from(&confine::spec::EXAMPLE.replace("version: 2026.9.6", "version: 2026.9.5"));
    let new = example();
    mac.install(&old).unwrap_or_else(|e| panic!("2026.9.5:\n{e}"));
    let prefix = mac.on_mac(&new.agents[0].openclaw.prefix);
    let current = || fs::read_link(prefix.join("current")).expect("current");
    assert_eq!(current(), Path::new("versions/2026.9.5"));

    // Before anything changes: a node outside OpenClaw's engines, and a package lifecycle that fails.
    for (breakage, cause) in [
        (
            "node-version",
            "node 20.20.2 at /usr/local/bin/node is too old or too new for openclaw@2026.9.6, which needs \
             node >=24.16.0 <25 || >=26.1.0 (agent hexagent); install a supported Node.js; nothing was changed",
        ),
        (
            "lifecycle-fails",
            "OpenClaw 2026.9.6 could not complete its package lifecycle (agent hexagent); nothing was changed",
        ),
    ] {
        mac.write_state(breakage, "v20.20.2\n");
        let before = mac.snapshot(true);
        let err = mac.install(&new).expect_err(breakage);
        assert!(err.contains(&format!("confine: ERROR: {cause}")), "{err}");
        assert_eq!(changed(&before, &mac.snapshot(true)), Vec::<String>::new());
        fs::remove_file(mac.state.join(breakage)).expect("repair");
    }

    // After the switch: a failed self-check switches back and keeps the old version.
    mac.write_state("listen-address", "*");
    mac.clear_commands();
    let err = mac
        .install(&new)
        .expect_err("a gateway on every interface fails the self-check");
    assert!(
        err.contains("self-check failed: hexagent/listens-on-loopback-only"),
        "{err}"
    );
    assert!(
        err.contains("switching hexagent back to OpenClaw 2026.9.5"),
        "{err}"
    );
    assert_eq!(current(), Path::new("versions/2026.9.5"));
    assert!(prefix.join("versions/2026.9.6").is_dir(), "kept for the next try");
    assert!(
        mac.commands()
            .ends_with("launchctl kickstart -k system/com.halfday.agents.hexagent.gateway\n"),
        "{}",
        mac.commands()
    );

    fs::remove_file(mac.state.join("listen-address")).expect("repair");
    mac.install(&new).unwrap_or_else(|e| panic!("2026.9.6:\n{e}"));
    assert_eq!(current(), Path::new("versions/2026.9.6"));
    assert!(
        !prefix.join("versions/2026.9.5").exists(),
        "the old version is removed"
    );
}

#[test]
fn uninstall_on_a_mac_without_the_fleet_changes_nothing() {
    let mac = Mac::new(apple_sh());
    let start = mac.snapshot(true);
    let out = mac.uninstall(&example());
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(changed(&start, &mac.snapshot(true)), Vec::<String>::new());
}

/// `installer -target "/Volumes/Macintosh HD"` names the boot volume by a link to "/": the scripts resolve
/// it (`pwd -P`) and install as onto "/", rather than refusing the volume as not the running system.
#[test]
fn a_target_named_through_a_link_is_the_volume_it_names() {
    let mac = Mac::new(apple_sh());
    let link = mac.state.with_file_name("Macintosh HD");
    std::os::unix::fs::symlink(&mac.target, &link).expect("link");
    let plan = example();
    let scripts = installer::scripts(&plan).expect("scripts");
    let out = mac.run_targeting(&scripts, "preinstall", link.to_str().expect("utf-8"));
    assert!(out.status.success(), "{}", output_text(&out));
    let staged = mac
        .on_mac(&plan.agents[0].openclaw.prefix)
        .join("versions/2026.9.6");
    assert!(
        staged.is_dir(),
        "the version is staged on the volume the link names"
    );
}
