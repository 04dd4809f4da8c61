//! A compromised agent against the installer (issue 16): before a reinstall, the agent (its real UID,
//! through setpriv) plants symlinks, FIFOs, folders where files belong and forged public-key lines in its
//! own trees; hard links to root's and a human's files are made as root, because Linux's
//! protected_hardlinks blocks them while macOS does not. Every file outside the agent's trees must come
//! out unchanged in content, owner and mode, and the next install must still succeed. Reinstall,
//! upgrade, a release that drops an agent, and uninstall are each attacked, also by a racer that keeps
//! swapping the agent's folders for links during the run; every script runs under `timeout`, so a hang
//! (a FIFO read, a wait that never ends) fails the test instead of stalling the suite.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sim::*;

const HOME: &str = "/Users/hexagent";
/// The trees that are the agent's own: whatever it plants there is its business (the racer leaves
/// `hexagent-workspace.real` beside its workspace).
const AGENT_TREES: &[&str] = &[
    HOME,
    "/Users/Shared/hexagent-workspace",
    "/Library/Logs/confine/hexagent",
];

/// macOS's sh (Apple's bash 3.2) under `timeout`: a script that hangs is killed, with its process group,
/// and the test fails.
fn bounded() -> &'static [&'static str] {
    static SHELL: std::sync::OnceLock<[&'static str; 5]> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| ["timeout", "-k", "10", "300", apple_sh()[0]])
}

/// Runs `script` with sh as the agent hexagent (UID and GID 1051), as the kernel sees it.
fn as_agent(script: &str) {
    as_uid(1051, "1051,1050", script);
}

/// Runs `script` with sh as UID (and GID) `uid` with supplementary `groups`.
fn as_uid(uid: u32, groups: &str, script: &str) {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={groups}"),
            "--",
            "sh",
            "-euc",
            script,
        ])
        .output()
        .expect("setpriv");
    assert!(
        out.status.success(),
        "as the agent: {script}\n{}",
        output_text(&out)
    );
}

/// Everything on the Mac outside the agent's trees: owner, mode and content of every file, and the
/// directory records. Root's copy of the agent's gateway token is left out: it follows the token when an
/// install has to make a new one.
fn outside_agent_trees(mac: &Mac) -> BTreeMap<String, String> {
    let mut snap = mac.snapshot(true);
    snap.retain(|path, _| {
        !AGENT_TREES
            .iter()
            .any(|tree| path == tree || path.starts_with(&format!("{tree}/")))
            && !path.starts_with("/Users/Shared/hexagent-workspace.")
            && !path.ends_with("/records/hexagent/gateway-token")
    });
    snap
}

/// Installs the example fleet, lets `plant` attack, reinstalls, and checks the Mac outside the agent's
/// trees is unchanged and a further install still succeeds. Returns the reinstall's output.
fn reinstall_after(plant: impl FnOnce(&Mac, &str)) -> String {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let before = outside_agent_trees(&mac);
    let home = mac.on_mac(HOME).display().to_string();
    plant(&mac, &home);
    let out = mac
        .install(&plan)
        .unwrap_or_else(|e| panic!("the planted agent made the reinstall fail:\n{e}"));
    assert_eq!(
        changed(&before, &outside_agent_trees(&mac)),
        Vec::<String>::new(),
        "files outside the agent's trees changed:\n{out}"
    );
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("the next install failed:\n{e}"));
    assert_eq!(changed(&before, &outside_agent_trees(&mac)), Vec::<String>::new());
    out
}

/// Every message of `moved` is in the run's output.
fn assert_moved_aside(out: &str, moved: &[&str]) {
    for m in moved {
        assert!(out.contains(m), "{m}\n{out}");
    }
}

#[test]
fn planted_links_and_forged_key_lines_reach_nothing_outside_the_agent() {
    let out = reinstall_after(|mac, home| {
        let plist = mac.on_mac(&example().agents[0].launchd.plist_path);
        let daemons = mac.on_mac("/Library/LaunchDaemons");
        as_agent(&format!(
            "ln -sfn '{plist}' {home}/.openclaw/secrets/gateway-token
             rm -f {home}/.ssh/config && ln -s '{daemons}' {home}/.ssh/config
             printf 'docbot deploy_halfday ssh-ed25519 AAAAforged docbot\\n' >>{home}/.ssh/deploy_halfday.pub",
            plist = plist.display(),
            daemons = daemons.display(),
        ));
        // A hard link to a human's private key, as macOS lets the agent make.
        let pat = format!("{home}/.openclaw/secrets/github_pat");
        fs::remove_file(&pat).expect("remove the secret");
        fs::hard_link(mac.on_mac("/Users/alice/.ssh/id_ed25519"), &pat).expect("hard link");
    });
    assert_moved_aside(
        &out,
        &[
            "/.ssh/config.confine-moved: it was a symbolic link",
            "github_pat.confine-moved: it was a hard link or another account's file",
        ],
    );
}

#[test]
fn forged_public_key_lines_are_replaced_from_roots_record() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let public = mac.on_mac("/Users/hexagent/.ssh/deploy_halfday.pub");
    let genuine = fs::read_to_string(&public).expect("public key");
    let inventory = mac.on_mac(&format!("{}/public-keys.txt", plan.support_dir));
    let listed = fs::read_to_string(&inventory).expect("public-keys.txt");
    // Another valid key (one of the agent's own making), and a forged line for another agent.
    let forged = mac.state.join("forged");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "forged", "-f"])
        .arg(&forged)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let forged_line = fs::read_to_string(forged.with_extension("pub")).expect("forged key");
    as_agent(&format!(
        "printf '%s\\n%s\\n' '{}' 'docbot deploy ssh-ed25519 AAAAforged docbot' >'{}'",
        forged_line.trim_end(),
        public.display()
    ));
    assert!(fs::read_to_string(&public).unwrap().contains("AAAAforged"));
    mac.install(&plan).unwrap_or_else(|e| panic!("reinstall:\n{e}"));
    assert_eq!(fs::read_to_string(&inventory).unwrap(), listed);
    assert_eq!(fs::read_to_string(&public).unwrap(), genuine);
    let records = format!("{}/records", plan.support_dir);
    assert_eq!(
        mode_owner(&mac, &records),
        (0o700, 0, 0),
        "root's record is root-only"
    );
}

#[test]
fn fifos_and_hard_links_where_files_belong_neither_hang_nor_leak() {
    let support = example().support_dir.clone();
    let out = reinstall_after(|mac, home| {
        let support_dir = mac.on_mac(&support);
        as_agent(&format!(
            "rm -rf {home}/.openclaw/secrets && ln -s '{support}' {home}/.openclaw/secrets
             rm -f {home}/.ssh/config && mkfifo {home}/.ssh/config",
            support = support_dir.display(),
        ));
        // A hard link to root's own uninstall script where the public key belongs.
        let public = format!("{home}/.ssh/deploy_halfday.pub");
        fs::remove_file(&public).expect("remove the public key");
        fs::hard_link(support_dir.join("uninstall"), &public).expect("hard link");
    });
    assert_moved_aside(
        &out,
        &[
            "/.openclaw/secrets.confine-moved: it was a symbolic link",
            "/.ssh/config.confine-moved: it was not a regular file",
            "/.ssh/deploy_halfday.pub.confine-moved: it was a hard link or another account's file",
        ],
    );
}

#[test]
fn folders_where_files_belong_are_moved_aside() {
    let out = reinstall_after(|_, home| {
        as_agent(&format!(
            "rm -f {home}/.openclaw/secrets/gateway-token
             mkdir -p {home}/.openclaw/secrets/gateway-token/inside
             rm -f {home}/.ssh/deploy_halfday.pub && mkdir {home}/.ssh/deploy_halfday.pub"
        ));
    });
    assert!(
        out.contains("deploy_halfday.pub.confine-moved: it was not a regular file"),
        "{out}"
    );
}

#[test]
fn remote_login_refuses_the_agents_until_uninstall() {
    let mac = Mac::new(apple_sh());
    let plan = example();
    // Remote Login limited to named users, and someone added the agent.
    mac.write_ds("Groups", "com.apple.access_ssh", "PrimaryGroupID", "399");
    mac.write_ds(
        "Groups",
        "com.apple.access_ssh",
        "RecordName",
        "com.apple.access_ssh",
    );
    mac.write_ds(
        "Groups",
        "com.apple.access_ssh",
        "GroupMembership",
        "alice\nhexagent\n",
    );
    let out = mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    assert!(
        out.contains("removing hexagent from com.apple.access_ssh"),
        "{out}"
    );
    assert_eq!(
        mac.ds("Groups", "com.apple.access_ssh", "GroupMembership")
            .as_deref(),
        Some("alice\n")
    );
    let drop_in = "/etc/ssh/sshd_config.d/confine-halfday-agents.conf";
    assert_eq!(
        fs::read_to_string(mac.on_mac(drop_in)).expect("drop-in"),
        "# Written by confine for halfday-agents: its agents never log in over SSH.\nDenyUsers hexagent\n"
    );
    assert_eq!(mode_owner(&mac, drop_in), (0o644, 0, 0));
    let uninstall = mac.uninstall(&plan);
    assert!(uninstall.status.success(), "{}", output_text(&uninstall));
    assert!(!mac.on_mac(drop_in).exists(), "uninstall removes the drop-in");
}

/// A process of agent `uid` on this simulated Mac (its environment names the Mac's state, which is how
/// the simulated pgrep and pkill tell it from other tests' processes with the same UID). Killed when
/// dropped, should the installer not have ended it.
struct AgentProcess(Child);

impl AgentProcess {
    fn start(mac: &Mac, uid: u32, groups: &str, script: &str) -> AgentProcess {
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                &format!("--groups={groups}"),
                "--",
                "sh",
                "-c",
                script,
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SIM_STATE", &mac.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv");
        AgentProcess(child)
    }

    /// Whether it was ended by SIGKILL, waiting at most ten seconds.
    fn was_killed(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The racer: hexagent keeps swapping its secrets folder (and, with `workspace`, its shared workspace)
/// for links to root's folders, as fast as it can, for as long as it lives.
fn racer(mac: &Mac, support: &str, workspace: bool) -> AgentProcess {
    let home = mac.on_mac(HOME);
    let ws = match workspace {
        true => mac.on_mac("/Users/Shared/hexagent-workspace"),
        false => mac.on_mac("/nonexistent"),
    };
    let script = format!(
        "s='{home}/.openclaw/secrets'; w='{ws}'
         while :; do
           mv \"$s\" \"$s.real\" 2>/dev/null && ln -s '{support}' \"$s\" 2>/dev/null
           mv \"$w\" \"$w.real\" 2>/dev/null && ln -s '{daemons}' \"$w\" 2>/dev/null
           rm -f \"$s\" \"$w\"; mv \"$s.real\" \"$s\" 2>/dev/null; mv \"$w.real\" \"$w\" 2>/dev/null
         done",
        home = home.display(),
        ws = ws.display(),
        support = mac.on_mac(support).display(),
        daemons = mac.on_mac("/Library/LaunchDaemons").display(),
    );
    AgentProcess::start(mac, 1051, "1051,1050", &script)
}

/// The agent's plantings in its own trees before a run: links from the paths root writes (token, SSH
/// config) and from its OpenClaw log folder to root's and a human's files, a forged line in each public key, a
/// FIFO, and, as root (macOS would let the agent), a hard link to the human's key where a public key
/// belongs.
fn plant_everything(mac: &Mac, agent: &str, uid: u32, groups: &str) {
    let home = mac.on_mac(&format!("/Users/{agent}"));
    let alice = mac.on_mac("/Users/alice/.ssh/id_ed25519");
    as_uid(
        uid,
        groups,
        &format!(
            "cd '{home}'
             ln -sfn '{drop_ins}' .openclaw/secrets/gateway-token
             rm -f .ssh/config && ln -s '{daemons}' .ssh/config
             for k in .ssh/*.pub; do printf 'other deploy ssh-ed25519 AAAAforged x\\n' >>\"$k\"; done
             mkfifo .ssh/known_hosts
             ln -s '{alice}' .openclaw/alice
             ln -s '{alice}' '{logs}/openclaw/gateway.err.log.old'",
            home = home.display(),
            drop_ins = mac.on_mac("/etc/ssh/sshd_config.d").display(),
            daemons = mac.on_mac("/Library/LaunchDaemons").display(),
            alice = alice.display(),
            logs = mac.on_mac(&format!("/Library/Logs/confine/{agent}")).display(),
        ),
    );
    let public = fs::read_dir(home.join(".ssh"))
        .expect(".ssh")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pub"))
        .expect("a public key");
    fs::remove_file(&public).expect("remove the public key");
    fs::hard_link(&alice, &public).expect("hard link");
}

#[test]
fn a_racer_swapping_folders_for_links_is_ended_before_root_acts() {
    let support = example().support_dir.clone();
    let mut racing = None;
    let out = reinstall_after(|mac, _| {
        racing = Some(racer(mac, &support, true));
        std::thread::sleep(Duration::from_millis(200));
    });
    assert!(
        racing.unwrap().was_killed(),
        "the racer survived the install:\n{out}"
    );
    assert!(
        out.contains("ending every process of hexagent (UID 1051)"),
        "{out}"
    );
}

#[test]
fn sockets_where_files_and_folders_belong_are_moved_aside() {
    let out = reinstall_after(|mac, home| {
        as_agent(&format!(
            "rm -f {home}/.openclaw/secrets/gateway-token {home}/.ssh/config"
        ));
        let ws = mac.on_mac("/Users/Shared/hexagent-workspace");
        fs::remove_dir_all(&ws).expect("workspace");
        for path in [
            format!("{home}/.openclaw/secrets/gateway-token"),
            format!("{home}/.ssh/config"),
            ws.display().to_string(),
        ] {
            drop(std::os::unix::net::UnixListener::bind(&path).expect("socket"));
            std::os::unix::fs::lchown(&path, Some(1051), Some(1051)).expect("chown");
        }
    });
    assert_moved_aside(
        &out,
        &[
            "/.ssh/config.confine-moved: it was not a regular file",
            "hexagent-workspace.confine-moved: it was not a folder",
        ],
    );
}

#[test]
fn an_upgrade_with_a_racing_agent_changes_only_what_the_release_changes() {
    let mac = Mac::new(bounded());
    let v1 = example();
    mac.install(&v1).unwrap_or_else(|e| panic!("v1:\n{e}"));
    let before = outside_agent_trees(&mac);
    plant_everything(&mac, "hexagent", 1051, "1051,1050");
    let v2 = plan_from(&confine::spec::EXAMPLE.replace("port: 18789", "port: 18800"));
    let mut racing = racer(&mac, &v2.support_dir, true);
    std::thread::sleep(Duration::from_millis(200));
    let out = mac
        .install(&v2)
        .unwrap_or_else(|e| panic!("v2 with a racer:\n{e}"));
    assert!(racing.was_killed(), "the racer survived the upgrade:\n{out}");
    let support = &v2.support_dir;
    assert_eq!(
        changed(&before, &outside_agent_trees(&mac)),
        vec![
            format!("{support}/agents/hexagent/openclaw.json"),
            format!("{support}/fleet-data.sh"),
            "/Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist".to_owned(),
            "state/launchd/com.halfday.agents.hexagent.gateway/fields".to_owned(),
            "state/launchd/com.halfday.agents.hexagent.gateway/port".to_owned(),
        ],
        "{out}"
    );
    mac.install(&v2)
        .unwrap_or_else(|e| panic!("the next install:\n{e}"));
}

#[test]
fn a_failed_install_after_quiescing_starts_the_previous_daemon_again() {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    // Someone made the log root writable by everyone: root refuses to make the agent's log folder there.
    let logs = mac.on_mac("/Library/Logs/confine");
    set_mode(&logs, 0o777);
    let before = mac.snapshot(true);
    let err = mac
        .install(&plan)
        .expect_err("a log root others can write must fail");
    assert!(
        err.contains(
            "confine: ERROR: /Library/Logs/confine/ is not root's alone (another account owns or can \
             write it); refusing to create /Library/Logs/confine/hexagent under it"
        ),
        "{err}"
    );
    assert!(
        err.contains("starting com.halfday.agents.hexagent.gateway again as it was"),
        "{err}"
    );
    assert_eq!(
        changed(&before, &mac.snapshot(true)),
        Vec::<String>::new(),
        "{err}"
    );
    let job = mac.state.join("launchd/com.halfday.agents.hexagent.gateway");
    assert!(
        job.is_dir() && !job.join("stopping").exists(),
        "the daemon is loaded again"
    );
    set_mode(&logs, 0o755);
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("after the repair:\n{e}"));
}

/// Two agents with a deploy key each, in fleet "duo"; `with_docbot: false` is the release that drops
/// docbot.
fn duo(with_docbot: bool) -> Fleet {
    let agent = |name: &str, uid: u32, port: u32| {
        format!(
            "  - name: {name}\n    full_name: {name}\n    uid: {uid}\n    groups: [shared_agents]\n    \
             openclaw: {{ version: 2026.9.6 }}\n    gateway: {{ port: {port} }}\n    \
             credentials: {{ ssh_keys: [{{ name: deploy, host: github.com }}] }}\n"
        )
    };
    let mut yaml = "version: 1\nfleet: { name: duo, organization: Duo, identifier: com.example.duo, release: 1.0.0 }\n\
         groups:\n  - { name: shared_agents, gid: 1050, full_name: Shared, include_local_admins: true }\nagents:\n"
        .to_owned();
    yaml += &agent("hexagent", 1051, 18789);
    if with_docbot {
        yaml += &agent("docbot", 1061, 18790);
    } else {
        yaml = yaml.replace("release: 1.0.0", "release: 1.1.0");
    }
    plan_from(&yaml)
}

/// Every path on the volume whose owner is `uid` or whose group is `gid`.
fn owned_by(mac: &Mac, uid: u32, gid: u32) -> Vec<String> {
    let mut found = Vec::new();
    walk(&mac.target, &mut |path, meta| {
        if meta.uid() == uid || meta.gid() == gid {
            found.push(path.display().to_string());
        }
    });
    found
}

/// What a leaving agent plants in the places every account can write: a file, a set-user-ID program, a
/// folder, a link to a human's key (its own link, which only the link may be handed over through), and a
/// hard link to the human's key (made as root: not the agent's file, so never handed to anyone).
fn leave_traces(mac: &Mac, uid: u32, groups: &str, workspace: &str) {
    for (dir, mode) in [("/private/tmp", 0o1777), ("/private/var/tmp", 0o1777)] {
        fs::create_dir_all(mac.on_mac(dir)).expect("tmp");
        set_mode(&mac.on_mac(dir), mode);
    }
    let script = format!(
        "echo left >'{shared}/left.txt'
         cp /bin/true '{ws}/suid' && chmod 4755 '{ws}/suid'
         mkdir -p '{tmp}/left/inner' && echo x >'{tmp}/left/inner/file'
         ln -s '{key}' '{vartmp}/alice-key'
         sleep 1000 & sleep 1000",
        shared = mac.on_mac("/Users/Shared").display(),
        ws = mac.on_mac(workspace).display(),
        tmp = mac.on_mac("/private/tmp").display(),
        vartmp = mac.on_mac("/private/var/tmp").display(),
        key = mac.on_mac("/Users/alice/.ssh/id_ed25519").display(),
    );
    let _ = std::mem::ManuallyDrop::new(AgentProcess::start(mac, uid, groups, &script));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mac.on_mac("/private/var/tmp/alice-key").is_symlink() {
        assert!(Instant::now() < deadline, "the agent did not plant its traces");
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::hard_link(
        mac.on_mac("/Users/alice/.ssh/id_ed25519"),
        mac.on_mac("/private/tmp/alice-key-hardlink"),
    )
    .expect("hard link");
}

fn assert_handed_over(mac: &Mac, out: &str, workspace: &str) {
    for path in [
        "/Users/Shared/left.txt".to_owned(),
        format!("{workspace}/suid"),
        "/private/tmp/left/inner/file".to_owned(),
        "/private/var/tmp/alice-key".to_owned(),
    ] {
        assert!(
            out.contains(&format!("confine: handed to root: {path}\n")),
            "{path}\n{out}"
        );
        let meta = fs::symlink_metadata(mac.on_mac(&path)).expect(&path);
        assert_eq!(meta.uid(), 0, "{path}");
        assert_eq!(meta.mode() & 0o6000, 0, "{path} keeps no set-ID bit");
    }
    assert_eq!(mode_owner(mac, "/Users/alice/.ssh/id_ed25519"), (0o600, 501, 20));
    assert_eq!(
        fs::read_to_string(mac.on_mac("/Users/alice/.ssh/id_ed25519")).unwrap(),
        "alice's private key\n"
    );
}

#[test]
fn a_release_that_drops_an_agent_removes_it_completely() {
    let mac = Mac::new(bounded());
    mac.install(&duo(true)).unwrap_or_else(|e| panic!("v1:\n{e}"));
    let support = duo(true).support_dir.clone();
    let inventory = mac.on_mac(&format!("{support}/public-keys.txt"));
    let hex_line = fs::read_to_string(&inventory)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("hexagent "))
        .expect("hexagent's key")
        .to_owned();
    let workspace = "/Users/Shared/docbot-workspace";
    leave_traces(&mac, 1061, "1061,1050", workspace);
    // docbot also plants links to root's files in its home, and a hard link to the human's key.
    let home = mac.on_mac("/Users/docbot");
    std::os::unix::fs::symlink(mac.on_mac("/Library/LaunchDaemons"), home.join("daemons")).unwrap();
    fs::hard_link(mac.on_mac("/Users/alice/.ssh/id_ed25519"), home.join("alice")).unwrap();
    plant_everything(&mac, "docbot", 1061, "1061,1050");
    plant_everything(&mac, "hexagent", 1051, "1051,1050");
    let hex_before = outside_agent_trees(&mac);

    let out = mac
        .install(&duo(false))
        .unwrap_or_else(|e| panic!("v2 drops docbot:\n{e}"));
    assert!(
        out.contains("removing docbot: release 1.1.0 no longer has it"),
        "{out}"
    );
    assert!(out.contains("ending every process of docbot (UID 1061)"), "{out}");
    assert_handed_over(&mac, &out, workspace);
    assert_eq!(owned_by(&mac, 1061, 1061), Vec::<String>::new(), "{out}");
    assert!(mac.ds("Users", "docbot", "UniqueID").is_none(), "account gone");
    assert!(
        mac.ds("Groups", "docbot", "PrimaryGroupID").is_none(),
        "personal group gone"
    );
    assert_eq!(
        mac.ds("Groups", "shared_agents", "GroupMembership").as_deref(),
        Some("hexagent\nalice\n")
    );
    for gone in [
        "/Users/docbot",
        "/Library/Logs/confine/docbot",
        "/Library/LaunchDaemons/com.example.duo.docbot.gateway.plist",
        &format!("{support}/agents/docbot"),
        &format!("{support}/records/docbot"),
    ] {
        assert!(!mac.on_mac(gone).exists(), "{gone} is left");
    }
    assert!(!mac.state.join("launchd/com.example.duo.docbot.gateway").exists());
    let keys = fs::read_to_string(&inventory).unwrap();
    assert_eq!(
        keys,
        format!("{hex_line}\n"),
        "docbot's line goes, hexagent's stays"
    );
    let drop_in = fs::read_to_string(mac.on_mac("/etc/ssh/sshd_config.d/confine-duo.conf")).unwrap();
    assert!(drop_in.ends_with("DenyUsers hexagent\n"), "{drop_in}");
    // Nothing of the remaining agent, or of anyone else, changed but what the release changed.
    let after = outside_agent_trees(&mac);
    for path in changed(&hex_before, &after) {
        let expected = path.contains("docbot")
            || path.starts_with("/Users/Shared/")
            || path.starts_with("/private/")
            || [
                format!("{support}/fleet-data.sh"),
                format!("{support}/public-keys.txt"),
                format!("{support}/status.json"),
                "/etc/ssh/sshd_config.d/confine-duo.conf".to_owned(),
                "/private/etc/ssh/sshd_config.d/confine-duo.conf".to_owned(),
                "state/ds/Groups/shared_agents/GroupMembership".to_owned(),
                "state/receipts/com.example.duo".to_owned(),
            ]
            .contains(&path);
        assert!(expected, "{path} changed:\n{out}");
    }
    mac.install(&duo(false))
        .unwrap_or_else(|e| panic!("the next install:\n{e}"));
}

#[test]
fn uninstall_ends_the_agent_and_leaves_nothing_to_its_uid() {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    let workspace = "/Users/Shared/hexagent-workspace";
    leave_traces(&mac, 1051, "1051,1050", workspace);
    plant_everything(&mac, "hexagent", 1051, "1051,1050");
    let mut racing = racer(&mac, &plan.support_dir, false);
    let out = mac.uninstall(&plan);
    let out = format!(
        "{}{}",
        output_text(&out),
        if out.status.success() { "" } else { "FAILED" }
    );
    assert!(!out.contains("FAILED"), "{out}");
    assert!(racing.was_killed(), "the racer survived uninstall:\n{out}");
    assert!(
        out.contains("ending every process of hexagent (UID 1051)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept the workspace {workspace}: it is not empty")),
        "{out}"
    );
    assert_handed_over(&mac, &out, workspace);
    let ws = fs::symlink_metadata(mac.on_mac(workspace)).expect("the workspace is kept");
    assert_eq!(
        (ws.uid(), ws.gid(), ws.permissions().mode() & 0o7777),
        (0, 1050, 0o770)
    );
    assert_eq!(owned_by(&mac, 1051, 1051), Vec::<String>::new(), "{out}");
    assert!(mac.ds("Users", "hexagent", "UniqueID").is_none(), "account gone");
    assert!(!mac.on_mac(&plan.support_dir).exists(), "support folder gone");
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("a clean install after uninstall:\n{e}"));
}

/// Runs `snippet` after sourcing lib.sh (beside the example's other scripts) in `shell`, under timeout.
fn in_lib_sh(shell: &[&str], snippet: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    for s in confine::installer::scripts(&example()).expect("scripts") {
        fs::write(dir.path().join(&s.name), &s.contents).expect("script");
    }
    let status = Command::new("mkfifo").arg(dir.path().join("fifo")).status();
    assert!(status.expect("mkfifo").success());
    Command::new("timeout")
        .args(["60"])
        .args(shell.iter())
        // $0 is lib.sh, which finds fleet-data.sh beside it.
        .args(["-c", &format!(". ./lib.sh; {snippet}"), "./lib.sh"])
        .current_dir(dir.path())
        .output()
        .expect("shell")
}

/// Root's reads of what the agent controls go through `bounded`: a FIFO the agent planted (and never
/// writes) fails the read within its bound, in every shell, instead of hanging the install.
#[test]
fn bounded_reads_of_a_fifo_fail_instead_of_hanging() {
    for shell in [DASH, BASH_POSIX, apple_sh()] {
        let start = Instant::now();
        let out = in_lib_sh(
            shell,
            "bounded 1 head -c 512 \"$CONFINE_DIR/fifo\" || echo \"failed $?\"",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "failed 143\n",
            "{shell:?}: {}",
            output_text(&out)
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{shell:?} waited {:?}",
            start.elapsed()
        );
    }
}

/// A command the agent stopped (its gateway can SIGSTOP every process of its UID; a stopped process
/// ignores SIGTERM) is killed at the bound, and the step that timed out is named, in every shell.
#[test]
fn bounded_kills_a_stopped_command_and_names_the_step() {
    for shell in [DASH, BASH_POSIX, apple_sh()] {
        let out = in_lib_sh(
            shell,
            "STEP='ensure_credentials (hexagent)'; bounded 1 sh -c 'kill -STOP $$' || echo \"failed $?\"",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "failed 137\n",
            "{shell:?}: {}",
            output_text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("confine: ensure_credentials (hexagent) timed out after 1 seconds: sh was ended"),
            "{shell:?}: {}",
            output_text(&out)
        );
    }
}

/// A workspace group the agent is not in: the agent makes the folder, root sets the group on the folder
/// itself, and the result is checked.
#[test]
fn a_workspace_group_the_agent_is_not_in_is_set_by_root() {
    let plan = plan_from(
        r#"
version: 1
fleet: { name: solo, organization: Solo, identifier: com.example.solo, release: 1.0.0 }
groups:
  - { name: humans, gid: 1070, include_local_admins: true }
agents:
  - name: hexagent
    full_name: Hex Agent
    uid: 1051
    workspace: { group: humans, mode: "0770" }
    openclaw: { version: 2026.9.6 }
"#,
    );
    let mac = Mac::new(bounded());
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    assert_eq!(
        mode_owner(&mac, "/Users/Shared/hexagent-workspace"),
        (0o770, 1051, 1070)
    );
    mac.install(&plan).unwrap_or_else(|e| panic!("reinstall:\n{e}"));
}

/// Runs `script` as `uid` with the simulated Mac's tools at hand (`"$SIM/chflags"`), as the agent runs
/// macOS's own chflags.
fn as_uid_on(mac: &Mac, uid: u32, groups: &str, script: &str) {
    as_uid(
        uid,
        groups,
        &format!(
            "export SIM_STATE='{}' SIM_LIB='{}'; SIM='{}'\n{script}",
            mac.state.display(),
            mac.sim.join("simlib.sh").display(),
            mac.sim.join("bin").display()
        ),
    );
}

/// `chflags -R uchg` on its home and workspace (the owner may set it; root's rm, mv, chown and chmod then
/// fail): the reinstall clears the flags after quiescing the agent, and succeeds.
#[test]
fn user_immutable_flags_do_not_block_a_reinstall() {
    reinstall_after(|mac, home| {
        let ws = mac.on_mac("/Users/Shared/hexagent-workspace");
        as_uid_on(
            mac,
            1051,
            "1051,1050",
            &format!("\"$SIM/chflags\" -R uchg '{home}' '{}'", ws.display()),
        );
        // The flag holds against root until cleared.
        let out = Command::new(mac.sim.join("bin/chown"))
            .args(["-h", "0", home])
            .env("SIM_STATE", &mac.state)
            .env("SIM_LIB", mac.sim.join("simlib.sh"))
            .output()
            .expect("chown");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{}",
            output_text(&out)
        );
    });
}

/// The agent's per-user folder under /private/var/folders (macOS makes one for every account that runs a
/// process) and a cache in /Library/Caches.
const VAR_FOLDERS: &str = "/private/var/folders/zz/hexagent_n0000000000000";

fn leave_caches(mac: &Mac) {
    for (dir, uid, mode) in [
        ("/private/var/folders/zz", 0, 0o755),
        (VAR_FOLDERS, 1051, 0o755),
        (&format!("{VAR_FOLDERS}/T"), 1051, 0o700),
        (&format!("{VAR_FOLDERS}/C"), 1051, 0o700),
        ("/Library/Caches", 0, 0o1775),
        ("/Library/Caches/ai.openclaw", 1051, 0o755),
    ] {
        let path = mac.on_mac(dir);
        fs::create_dir_all(&path).expect("dir");
        std::os::unix::fs::chown(&path, Some(uid), Some(if uid == 0 { 80 } else { uid })).expect("chown");
        set_mode(&path, mode);
    }
    as_uid(
        1051,
        "1051,1050",
        &format!(
            "echo t >'{vf}/T/scratch'; echo c >'{vf}/C/cache.db'; echo c >'{caches}/ai.openclaw/blob'",
            vf = mac.on_mac(VAR_FOLDERS).display(),
            caches = mac.on_mac("/Library/Caches").display(),
        ),
    );
}

/// With its trees, its files in shared places and its caches flagged uchg, uninstall still removes the
/// agent, and no file of its UID is left anywhere (/Library/Caches and /private/var/folders included)
/// for the next account given that UID.
#[test]
fn uninstall_clears_flags_and_leaves_no_file_to_the_uid() {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    let workspace = "/Users/Shared/hexagent-workspace";
    leave_traces(&mac, 1051, "1051,1050", workspace);
    leave_caches(&mac);
    as_uid_on(
        &mac,
        1051,
        "1051,1050",
        &format!(
            "\"$SIM/chflags\" -R uchg '{}' '{}' '{}' '{}' '{}'",
            mac.on_mac(HOME).display(),
            mac.on_mac(workspace).display(),
            mac.on_mac(VAR_FOLDERS).display(),
            mac.on_mac("/Library/Caches/ai.openclaw").display(),
            mac.on_mac("/Users/Shared/left.txt").display(),
        ),
    );
    let out = mac.uninstall(&plan);
    assert!(out.status.success(), "{}", output_text(&out));
    let out = output_text(&out);
    for left in [
        format!("{VAR_FOLDERS}/T/scratch"),
        "/Library/Caches/ai.openclaw/blob".to_owned(),
    ] {
        assert!(
            out.contains(&format!("confine: handed to root: {left}\n")),
            "{left}\n{out}"
        );
    }
    assert_eq!(owned_by(&mac, 1051, 1051), Vec::<String>::new(), "{out}");
    assert!(mac.ds("Users", "hexagent", "UniqueID").is_none(), "account gone");
    assert!(!mac.on_mac(HOME).exists(), "home gone");
}

/// A fleet uninstall with two agents: while root walks docbot's workspace (docbot goes first), hexagent,
/// a member of its group, keeps renaming a hard link to a human's key over docbot's file names. Every
/// agent is ended before root walks any agent's files, so the racer is gone before the walk.
#[test]
fn a_fleet_uninstall_ends_every_agent_before_walking_any_files() {
    let mac = Mac::new(bounded());
    let fleet = duo(true);
    mac.install(&fleet).unwrap_or_else(|e| panic!("install:\n{e}"));
    let ws = mac.on_mac("/Users/Shared/docbot-workspace");
    as_uid(
        1061,
        "1061,1050",
        &format!(
            "cd '{}'; for i in 1 2 3 4 5 6 7 8; do echo d >f$i; done",
            ws.display()
        ),
    );
    // Made as root: Linux's protected_hardlinks stops the agent, macOS would not.
    fs::hard_link(mac.on_mac("/Users/alice/.ssh/id_ed25519"), ws.join(".k")).expect("hard link");
    let mut racing = AgentProcess::start(
        &mac,
        1051,
        "1051,1050",
        &format!(
            "cd '{}'; while :; do for i in 1 2 3 4 5 6 7 8; do mv -f .k f$i; mv -f f$i .k; done; done",
            ws.display()
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = mac.uninstall(&fleet);
    assert!(out.status.success(), "{}", output_text(&out));
    let out = output_text(&out);
    assert!(racing.was_killed(), "the racer survived uninstall:\n{out}");
    let ended = out
        .find("ending every process of hexagent (UID 1051)")
        .unwrap_or_else(|| panic!("hexagent was not ended:\n{out}"));
    let walked = out
        .find("confine: handed to root: ")
        .unwrap_or_else(|| panic!("docbot's files were not handed over:\n{out}"));
    assert!(
        ended < walked,
        "root walked docbot's files while hexagent ran:\n{out}"
    );
    assert_eq!(mode_owner(&mac, "/Users/alice/.ssh/id_ed25519"), (0o600, 501, 20));
}

/// Before a release adds a deploy key, the agent plants a private key of its own under that name, with a
/// comment whose second line forges another agent's entry. Root has no record of making it: it is set
/// aside and a new key generated, and public-keys.txt lists root's key, on one line.
#[test]
fn a_key_planted_before_a_release_adds_it_is_replaced() {
    let fleet = |credentials: &str| {
        plan_from(&format!(
            "version: 1\nfleet: {{ name: solo, organization: Solo, identifier: com.example.solo, release: 1.0.0 }}\n\
             agents:\n  - name: hexagent\n    full_name: Hex Agent\n    uid: 1051\n    openclaw: {{ version: 2026.9.6 }}\n{credentials}"
        ))
    };
    let mac = Mac::new(bounded());
    mac.install(&fleet("")).unwrap_or_else(|e| panic!("v1:\n{e}"));
    // The agent's own key (made here: ssh-keygen wants a passwd entry the simulated agent lacks).
    let own = mac.state.join("own-key");
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "mine\ndocbot deploy ssh-ed25519 AAAAforged",
            "-f",
        ])
        .arg(&own)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    set_mode(&own, 0o644);
    let ssh = mac.on_mac("/Users/hexagent/.ssh");
    as_uid(
        1051,
        "1051",
        &format!(
            "mkdir -p '{ssh}' && chmod 700 '{ssh}' && cat '{own}' >'{ssh}/deploy' && chmod 600 '{ssh}/deploy'
             cat '{own}.pub' >'{ssh}/deploy.pub'",
            ssh = ssh.display(),
            own = own.display()
        ),
    );
    let planted = fs::read_to_string(ssh.join("deploy.pub")).expect("planted key");
    let planted_key = planted.split_whitespace().nth(1).expect("key").to_owned();
    let v2 = fleet("    credentials: { ssh_keys: [{ name: deploy, host: github.com }] }\n");
    let out = mac.install(&v2).unwrap_or_else(|e| panic!("v2:\n{e}"));
    assert!(
        out.contains("/.ssh/deploy.confine-moved: it was a key root has no record of making"),
        "{out}"
    );
    let listed = fs::read_to_string(mac.on_mac(&format!("{}/public-keys.txt", v2.support_dir))).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("hexagent deploy ssh-ed25519 "), "{listed}");
    assert!(
        !listed.contains(&planted_key) && !listed.contains("AAAAforged"),
        "{listed}"
    );
    let public = fs::read_to_string(ssh.join("deploy.pub")).unwrap();
    assert_eq!(
        public.split_whitespace().nth(1),
        listed.split_whitespace().nth(3),
        "the agent's public key is root's"
    );
}

/// newsyslog (root) renames each archive and then chmods and chowns it by path, following links: an agent
/// that could plant `gateway.out.log.0 -> <a file root runs>` would own that file after two rotations.
/// The log folder is root's, so the plant fails, and forced rotations change nothing outside the logs.
#[test]
fn log_rotation_hands_nothing_of_roots_to_the_agent() {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    let logs = "/Library/Logs/confine/hexagent";
    assert_eq!(mode_owner(&mac, logs), (0o755, 0, 0), "root's folder");
    for stream in ["out", "err"] {
        let log = format!("{logs}/gateway.{stream}.log");
        assert_eq!(mode_owner(&mac, &log), (0o640, 1051, 80), "{log}");
    }
    assert_eq!(mode_owner(&mac, &format!("{logs}/openclaw")), (0o750, 1051, 80));
    let rotate = format!("{}/rotate", plan.support_dir);
    let before = mode_owner(&mac, &rotate);
    let planted = hexagent_sh(
        "-c",
        &format!(
            "ln -s '{}' '{}/gateway.out.log.0'",
            mac.on_mac(&rotate).display(),
            mac.on_mac(logs).display()
        ),
    )
    .output()
    .expect("setpriv");
    assert!(
        !planted.status.success(),
        "the agent planted a link in its log folder"
    );
    let conf = mac.on_mac(&plan.newsyslog_path);
    for _ in 0..3 {
        let out = Command::new(mac.sim.join("bin/newsyslog"))
            .args(["-F", "-f"])
            .arg(&conf)
            .env("SIM_STATE", &mac.state)
            .env("SIM_LIB", mac.sim.join("simlib.sh"))
            .env("CONFINE_SIM_TARGET", &mac.target)
            .output()
            .expect("newsyslog");
        assert!(out.status.success(), "{}", output_text(&out));
    }
    assert_eq!(mode_owner(&mac, &rotate), before, "root's rotate script");
    assert_eq!(
        mode_owner(&mac, &format!("{logs}/gateway.out.log.1")),
        (0o640, 1051, 80)
    );
}

/// After a successful rotation the agent writes the old (perhaps leaked) token back. The token is in
/// root's folder of the agent, the agent's to read (OpenClaw wants it so) but immutable (schg, which only
/// root clears): every way of putting the old one back fails, and the rotation checked that the
/// restarted gateway refuses the old token.
#[test]
fn a_rotated_token_cannot_be_put_back_by_the_agent() {
    let mac = Mac::new(bounded());
    mac.write_state("gateway-token-check", mac.target.to_str().expect("utf-8"));
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    let token_path = &plan.agents[0].token_path;
    let token = mac.on_mac(token_path);
    let old = fs::read_to_string(&token).expect("token");
    let out = crate::rotation::rotate(&mac, &plan, &["gateway-token", "hexagent"], "");
    assert!(out.status.success(), "{}", output_text(&out));
    let new = fs::read_to_string(&token).expect("token");
    assert_ne!(new, old);
    let t = token.display();
    for put_back in [
        format!("printf %s '{old}' >'{t}'"),
        format!("chmod 600 '{t}' && printf %s '{old}' >'{t}'"),
        format!("printf %s '{old}' >'{t}.old' && mv -f '{t}.old' '{t}'"),
        format!("rm -f '{t}' && printf %s '{old}' >'{t}'"),
    ] {
        let out = hexagent_sh("-c", &put_back).output().expect("setpriv");
        assert!(
            !out.status.success(),
            "the agent put its old token back: {put_back}"
        );
    }
    assert_eq!(fs::read_to_string(&token).expect("token"), new);
    assert_eq!(mode_owner(&mac, token_path), (0o400, 1051, 1051));
}

/// Hiding from the audit: the agent runs the exec it wants hidden, floods its trail with its own events
/// until rotation discards the file that held it, then runs a program with 3 MiB of arguments. What is
/// left says, in `confine audit`, that events were discarded and when; the oversized event keeps its
/// program.
#[test]
fn the_agent_cannot_hide_its_events_from_the_audit() {
    use crate::audit::{collect, expected, installed, trail, two_audited};
    let fleet = two_audited("{ enabled: true, file_mb: 1, keep: 2 }");
    let mac = installed(&fleet);
    let git = expected(1051, &["exec"])[0].clone();
    let mut feed = format!("{}\n", git.replace("\"--porcelain\"", "\"--hidden\""));
    for i in 0..2_000 {
        let line = git
            .replace(
                "\"global_seq_num\":40214",
                &format!("\"global_seq_num\":{}", 50_000 + i),
            )
            .replace("\"--porcelain\"", &format!("\"--porcelain={i}\""));
        feed.push_str(&line);
        feed.push('\n');
    }
    feed.push_str(&git.replace("\"--porcelain\"", &format!("\"{}\"", "A".repeat(3 << 20))));
    feed.push('\n');
    collect(&mac, &fleet, &feed);
    let audit = trail(&fleet);
    let log = mac.on_mac(&audit.agents[0].log);
    for kept in ["", ".1", ".2"] {
        let text = fs::read_to_string(format!("{}{kept}", log.display())).expect("kept file");
        assert!(!text.contains("--hidden"), "the flood did not push the exec out");
    }
    let out = crate::util::confine()
        .arg("audit")
        .arg(&log)
        .output()
        .expect("confine audit");
    assert!(out.status.success(), "{}", output_text(&out));
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(
        timeline
            .lines()
            .any(|l| l.contains(" -- EVENTS DISCARDED: ") && l.starts_with("20")),
        "the timeline says when events were discarded:\n{}",
        &timeline[..timeline.len().min(2000)]
    );
    assert!(
        timeline.contains("a exec event of pid ") && timeline.contains("(/usr/bin/git) was "),
        "the oversized exec keeps its program:\n{}",
        timeline
            .lines()
            .filter(|l| l.contains("too long"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rotation discarded the oldest events"),
        "{}",
        output_text(&out)
    );
}

/// The agent's gateway stops (SIGSTOP) every process of its UID that root starts (the simulated sudo
/// stops each one as the agent: a userspace loop would race processes that live milliseconds), and a
/// stopped process ignores SIGTERM. The run is killed at its bound, every process of the agent with it,
/// and rotate fails naming the step instead of waiting forever.
#[test]
fn an_agent_stopping_roots_runs_as_it_cannot_hang_a_rotation() {
    let mac = Mac::new(bounded());
    let plan = example();
    mac.install(&plan).unwrap_or_else(|e| panic!("install:\n{e}"));
    mac.write_state("agent-stops/hexagent", "");
    let mut gateway = AgentProcess::start(&mac, 1051, "1051,1050", "sleep 1000");
    let started = Instant::now();
    let out = crate::rotation::rotate(&mac, &plan, &["ssh-stage", "hexagent"], "");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "rotate hung or passed:\n{text}");
    for said in [
        "confine: rotate ssh-stage hexagent timed out after 60 seconds: sudo was ended\n",
        "confine: ERROR: ended every process of hexagent (UID 1051), which stalled rotate ssh-stage hexagent\n",
    ] {
        assert!(text.contains(said), "{said}\n{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(200), "{text}");
    assert!(
        gateway.was_killed(),
        "the agent's processes were ended with the run"
    );
}
