//! The installer scripts (`pkg/`), run as root against a simulated macOS (`tests/macos-sim`, see its
//! README): fake directory service, launchd and friends on PATH, a temp dir as the target volume, and real
//! privilege drops for the "the agent cannot ..." checks.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use confine::build::EmbeddedSecret;
use confine::installer::{self, ScriptFile};
use confine::plan::Plan;
use confine::spec::LoadedSpec;

const SIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/macos-sim");
const DASH: &[&str] = &["dash"];
const BASH_POSIX: &[&str] = &["bash", "--posix"];

/// A spec and its plan: the payload is built from both, like `confine build` does.
struct Fleet {
    loaded: LoadedSpec,
    plan: Plan,
    /// Secrets embedded as with `confine build --embed-secrets`.
    secrets: Vec<EmbeddedSecret>,
}

impl std::ops::Deref for Fleet {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

fn plan_from(yaml: &str) -> Fleet {
    let spec = confine::spec::parse_and_validate(yaml, Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("test spec is invalid: {e:?}"));
    let plan = Plan::new(&spec);
    let loaded = LoadedSpec {
        spec,
        origin: "test.yaml".into(),
        base_dir: ".".into(),
    };
    Fleet {
        loaded,
        plan,
        secrets: Vec::new(),
    }
}

fn example() -> Fleet {
    plan_from(confine::spec::EXAMPLE)
}

/// Two agents sharing a group; `port` is the first agent's gateway port.
fn two_agents(port: u32) -> Fleet {
    plan_from(&format!(
        r#"
version: 1
fleet: {{ name: duo, organization: Duo, identifier: com.example.duo, release: 1.0.0 }}
groups:
  - {{ name: shared_agents, gid: 1050, full_name: Shared, include_local_admins: true }}
agents:
  - name: hexagent
    full_name: Hex Agent
    uid: 1051
    groups: [shared_agents]
    openclaw: {{ version: 2026.9.6 }}
    gateway: {{ port: {port} }}
  - name: docbot
    full_name: Doc Bot
    uid: 1061
    groups: [shared_agents]
    openclaw: {{ version: 2026.9.6 }}
    gateway: {{ port: 18790 }}
"#
    ))
}

fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the installer tests must run as root: they chown files to the agents' UIDs and drop privileges \
         with setpriv (run `cargo test` as root, as CI does)"
    );
}

/// One simulated Mac: `target/` is the volume Installer passes as `$3`, `state/` the fakes' state.
struct Mac {
    _dir: tempfile::TempDir,
    target: PathBuf,
    state: PathBuf,
    sim: PathBuf,
    shell: &'static [&'static str],
    runs: std::cell::Cell<u32>,
}

impl Mac {
    fn new(shell: &'static [&'static str]) -> Mac {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        // Agents must be able to traverse to their files and run the fakes, as on a Mac.
        set_mode(dir.path(), 0o755);
        let mac = Mac {
            target: dir.path().join("target"),
            state: dir.path().join("state"),
            sim: dir.path().join("sim"),
            _dir: dir,
            shell,
            runs: std::cell::Cell::new(0),
        };
        mac.copy_sim();
        mac.seed_directory();
        mac.seed_volume();
        mac
    }

    fn copy_sim(&self) {
        for sub in ["bin", "mac"] {
            fs::create_dir_all(self.sim.join(sub)).expect("sim dir");
            for entry in fs::read_dir(Path::new(SIM).join(sub)).expect("sim sources") {
                let entry = entry.expect("entry");
                let to = self.sim.join(sub).join(entry.file_name());
                fs::copy(entry.path(), &to).expect("copy fake");
                set_mode(&to, 0o755);
            }
        }
        fs::copy(Path::new(SIM).join("simlib.sh"), self.sim.join("simlib.sh")).expect("simlib");
    }

    /// A Mac with one admin, alice (501, primary group staff), as Setup Assistant leaves it.
    fn seed_directory(&self) {
        for (name, uid, gid, home) in [
            ("root", "0", "0", "/var/root"),
            ("nobody", "-2", "-2", "/var/empty"),
            ("alice", "501", "20", "/Users/alice"),
        ] {
            self.write_ds("Users", name, "UniqueID", uid);
            self.write_ds("Users", name, "PrimaryGroupID", gid);
            self.write_ds("Users", name, "NFSHomeDirectory", home);
            self.write_ds("Users", name, "RecordName", name);
        }
        for (name, gid, members) in [
            ("wheel", "0", "root\n"),
            ("staff", "20", "root\n"),
            ("admin", "80", "root\nalice\n"),
        ] {
            self.write_ds("Groups", name, "PrimaryGroupID", gid);
            self.write_ds("Groups", name, "RecordName", name);
            self.write_ds("Groups", name, "GroupMembership", members);
        }
        self.write_state("macos-version", "15.5\n");
        let volumes = format!("BOOT-UUID /\nBOOT-UUID {}\n", self.target.display());
        self.write_state("volumes", &volumes);
        self.write_state("commands.log", "");
        set_mode(&self.state.join("commands.log"), 0o666);
    }

    fn seed_volume(&self) {
        for (path, mode) in [
            ("Users", 0o755),
            ("Users/Shared", 0o1777),
            ("Library/LaunchDaemons", 0o755),
            ("Library/Logs", 0o755),
            ("Library/Application Support", 0o755),
            ("usr/local/bin", 0o755),
        ] {
            let dir = self.target.join(path);
            fs::create_dir_all(&dir).expect("volume dir");
            set_mode(&dir, mode);
        }
        // root:admin, as on a Mac (and as the payload repeats it).
        chown(self.target.join("Library/Application Support"), Some(0), Some(80)).expect("chown");
        let home = self.target.join("Users/alice");
        fs::create_dir_all(home.join(".ssh")).expect("alice's home");
        fs::write(home.join(".ssh/id_ed25519"), "alice's private key\n").expect("key");
        for (path, mode) in [(".ssh/id_ed25519", 0o600), (".ssh", 0o700), ("", 0o750)] {
            let p = home.join(path);
            chown(&p, Some(501), Some(20)).expect("chown");
            set_mode(&p, mode);
        }
        for tool in ["node", "npm"] {
            let to = self.target.join("usr/local/bin").join(tool);
            fs::copy(self.sim.join("mac").join(tool), &to).expect("node");
            set_mode(&to, 0o755);
        }
    }

    fn write_ds(&self, kind: &str, name: &str, attr: &str, value: &str) {
        let dir = self.state.join("ds").join(kind).join(name);
        fs::create_dir_all(&dir).expect("ds dir");
        fs::write(dir.join(attr), value).expect("ds attribute");
    }

    fn write_state(&self, name: &str, value: &str) {
        fs::create_dir_all(&self.state).expect("state");
        fs::write(self.state.join(name), value).expect("state file");
    }

    fn ds(&self, kind: &str, name: &str, attr: &str) -> Option<String> {
        fs::read_to_string(self.state.join("ds").join(kind).join(name).join(attr)).ok()
    }

    /// The volume path of a path on the Mac.
    fn on_mac(&self, path: &str) -> PathBuf {
        self.target.join(path.trim_start_matches('/'))
    }

    /// Runs one package script the way Installer does, with `$1..$4`.
    fn run(&self, scripts: &[ScriptFile], name: &str) -> Output {
        self.runs.set(self.runs.get() + 1);
        let dir = self.state.with_file_name(format!("scripts-{}", self.runs.get()));
        fs::create_dir_all(&dir).expect("scripts dir");
        for s in scripts {
            let path = dir.join(&s.name);
            fs::write(&path, &s.contents).expect("script");
            set_mode(&path, s.mode);
        }
        let target = self.target.to_str().expect("utf-8 path");
        Command::new(self.shell[0])
            .args(&self.shell[1..])
            .arg(dir.join(name))
            .args(["/tmp/confine.pkg", target, target, target])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/var/root")
            .env("CONFINE_SIM_BIN", self.sim.join("bin"))
            .env("SIM_LIB", self.sim.join("simlib.sh"))
            .env("SIM_STATE", &self.state)
            .output()
            .expect("runs the script")
    }

    /// preinstall, the payload, postinstall and the receipt, as Installer runs a package.
    fn install(&self, plan: &Fleet) -> Result<String, String> {
        let scripts = installer::scripts(plan).expect("scripts");
        let pre = self.run(&scripts, "preinstall");
        if !pre.status.success() {
            return Err(output_text(&pre));
        }
        self.lay_payload(plan);
        let post = self.run(&scripts, "postinstall");
        if !post.status.success() {
            return Err(output_text(&post));
        }
        fs::create_dir_all(self.state.join("receipts")).expect("receipts");
        fs::write(self.state.join("receipts").join(&plan.pkg_identifier), "").expect("receipt");
        Ok(output_text(&pre) + &output_text(&post))
    }

    /// Lays down the payload of the component package confine builds, as Installer would: the Payload
    /// is taken out of the real package with bsdtar and extracted by GNU cpio (as root, so owners and modes
    /// are the archive's).
    fn lay_payload(&self, fleet: &Fleet) {
        let component = confine::layout::install_component(&fleet.loaded, &fleet.plan, &fleet.secrets)
            .expect("component");
        let pkg = self.state.join("component.pkg");
        let mut file = fs::File::create(&pkg).expect("create pkg");
        confine::pkg::write_component(
            &component,
            &mut file,
            &confine::pkg::BuildOptions { mtime: 0 },
            None,
        )
        .expect("write pkg");
        fs::create_dir_all(&self.target).expect("target");
        let script = "bsdtar -xOf \"$1\" Payload | gzip -dc | cpio -idmu --quiet";
        let status = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&pkg)
            .current_dir(&self.target)
            .status()
            .expect("bsdtar, gzip and cpio are installed (apt-get install libarchive-tools cpio)");
        assert!(status.success(), "extracting the payload failed");
        fs::remove_file(&pkg).expect("remove pkg");
    }

    fn uninstall(&self, plan: &Fleet) -> Output {
        self.run(
            &installer::uninstall_scripts(plan).expect("scripts"),
            "postinstall",
        )
    }

    /// The fakes' command log, with the temp volume removed so paths read as on a Mac. The volume on
    /// its own (`diskutil info <volume>`, which a Mac installing onto "/" skips) reads `$TARGET`.
    fn commands(&self) -> String {
        let log = fs::read_to_string(self.state.join("commands.log")).expect("log");
        let target = self.target.to_str().expect("utf-8");
        log.replace(&format!(" {target}\n"), " $TARGET\n")
            .replace(target, "")
    }

    fn clear_commands(&self) {
        fs::write(self.state.join("commands.log"), "").expect("clear log");
    }

    /// Directory records, loaded daemons, receipts, and every file on the volume with owner and mode
    /// (and a content hash when `contents`: tokens and keys are random, so runs differ there).
    fn snapshot(&self, contents: bool) -> BTreeMap<String, String> {
        let mut snap = BTreeMap::new();
        for part in ["ds", "launchd", "launchd-disabled", "receipts"] {
            walk(&self.state.join(part), &mut |path, meta| {
                let key = format!("state/{}", path.strip_prefix(&self.state).unwrap().display());
                let value = if meta.is_file() {
                    fs::read_to_string(path).unwrap_or_default()
                } else {
                    String::new()
                };
                snap.insert(key, value);
            });
        }
        walk(&self.target, &mut |path, meta| {
            let key = format!("/{}", path.strip_prefix(&self.target).unwrap().display());
            let mut value = format!("{:o} {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid());
            if meta.is_symlink() {
                value += &format!(" -> {}", fs::read_link(path).unwrap().display());
            } else if meta.is_file() && contents {
                let mut h = DefaultHasher::new();
                fs::read(path).unwrap().hash(&mut h);
                value += &format!(" {:016x}", h.finish());
            }
            snap.insert(key, value);
        });
        snap
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("metadata");
        f(&path, &meta);
        if meta.is_dir() {
            walk(&path, f);
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Paths whose snapshot entries differ between two snapshots.
fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn mode_owner(mac: &Mac, path: &str) -> (u32, u32, u32) {
    let meta = fs::symlink_metadata(mac.on_mac(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

#[test]
fn fresh_install_creates_accounts_folders_credentials_and_daemons() {
    let mac = Mac::new(DASH);
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
            "/Users/hexagent/.openclaw/secrets/gateway-token",
            (0o600, 1051, 1051),
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
        ("/Library/Logs/confine/hexagent", (0o750, 1051, 80)),
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
    assert_eq!(status["checks"].as_array().expect("checks").len(), 12);
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

#[test]
fn second_install_changes_nothing() {
    let mac = Mac::new(DASH);
    let plan = example();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("first install:\n{e}"));
    let before = mac.snapshot(true);
    mac.clear_commands();
    mac.install(&plan)
        .unwrap_or_else(|e| panic!("second install:\n{e}"));
    assert_eq!(changed(&before, &mac.snapshot(true)), Vec::<String>::new());
    let log = mac.commands();
    for change in [
        "dscl . -create",
        "dscl . -delete",
        "dseditgroup",
        "launchctl bootstrap",
        "launchctl bootout",
        "npm",
    ] {
        assert!(!log.contains(change), "a rerun ran `{change}`:\n{log}");
    }
    assert!(
        log.contains("launchctl kickstart -k system/com.halfday.agents.hexagent.gateway"),
        "{log}"
    );
}

#[test]
fn upgrade_reloads_only_the_daemon_whose_plist_changed() {
    let mac = Mac::new(DASH);
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
            "state/launchd/com.example.duo.hexagent.gateway/port".to_owned(),
        ]
    );
    let log = mac.commands();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("launchctl ")).collect();
    let hex = "system/com.example.duo.hexagent.gateway";
    let doc = "system/com.example.duo.docbot.gateway";
    assert!(
        lines.contains(&format!("launchctl bootout {hex}").as_str()),
        "{log}"
    );
    assert!(
        lines.contains(
            &"launchctl bootstrap system /Library/LaunchDaemons/com.example.duo.hexagent.gateway.plist"
        ),
        "{log}"
    );
    // bootout is asynchronous: the script waits until launchd has let go before bootstrapping.
    let reload = format!(
        "launchctl bootout {hex}\nlaunchctl print {hex}\nsleep 1\nlaunchctl print {hex}\n\
         launchctl bootstrap system /Library/LaunchDaemons/com.example.duo.hexagent.gateway.plist\n"
    );
    assert!(log.contains(&reload), "{log}");
    assert!(
        !lines.contains(&format!("launchctl kickstart -k {hex}").as_str()),
        "{log}"
    );
    assert!(
        lines.contains(&format!("launchctl kickstart -k {doc}").as_str()),
        "{log}"
    );
    assert!(
        !log.contains("docbot.gateway.plist"),
        "docbot was reloaded:\n{log}"
    );
    assert!(
        !lines.contains(&format!("launchctl bootout {doc}").as_str()),
        "{log}"
    );
}

#[test]
fn uid_collision_fails_in_preinstall_and_changes_nothing() {
    let mac = Mac::new(DASH);
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
    let mac = Mac::new(DASH);
    mac.write_ds("Groups", "devs", "PrimaryGroupID", "1050");
    let err = mac.install(&example()).expect_err("a taken GID must fail");
    assert!(
        err.contains("ID 1050 of group 'shared_agents' already belongs to group 'devs'"),
        "{err}"
    );

    let mac = Mac::new(DASH);
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
    let mac = Mac::new(DASH);
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
    let mac = Mac::new(DASH);
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
    let mac = Mac::new(DASH);
    mac.write_state("sudoers-nopasswd", "hexagent\n");
    let err = mac.install(&example()).expect_err("an agent with sudo must fail");
    assert!(err.contains("self-check failed: hexagent/cannot-sudo ("), "{err}");
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
    let mac = Mac::new(DASH);
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
    assert!(
        mac.commands().contains(&format!(
            "approvals allowlist add --agent '*' '/usr/bin/$(touch {canary})'"
        )),
        "{}",
        mac.commands()
    );

    let out = mac.uninstall(&plan);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!Path::new(&canary).exists(), "a spec value was executed");
}

#[test]
fn bash_posix_runs_the_same_install_as_dash() {
    let plan = example();
    let dash = Mac::new(DASH);
    dash.install(&plan).unwrap_or_else(|e| panic!("dash:\n{e}"));
    let bash = Mac::new(BASH_POSIX);
    bash.install(&plan)
        .unwrap_or_else(|e| panic!("bash --posix:\n{e}"));
    assert_eq!(dash.commands(), bash.commands());
    let (a, b) = (dash.snapshot(false), bash.snapshot(false));
    let strip = |m: BTreeMap<String, String>, mac: &Mac| -> BTreeMap<String, String> {
        let root = mac.target.to_str().unwrap().to_owned();
        m.into_iter().map(|(k, v)| (k, v.replace(&root, ""))).collect()
    };
    assert_eq!(changed(&strip(a, &dash), &strip(b, &bash)), Vec::<String>::new());
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
        for shell in [DASH, BASH_POSIX] {
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
    let mac = Mac::new(DASH);
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
