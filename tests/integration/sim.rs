//! The simulated Mac the installer tests run the package scripts on (`tests/macos-sim`, see its README):
//! fake directory service, launchd and friends on PATH, a temp dir as the target volume, and real privilege
//! drops for the "the agent cannot ..." checks.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use confine::installer::{self, ScriptFile};
use confine::layout::EmbeddedSecret;
use confine::plan::Plan;
use confine::spec::LoadedSpec;

/// The rule lines of macOS's stock /etc/pf.conf.
const APPLE_PF_CONF: &str = "scrub-anchor \"com.apple/*\"\nnat-anchor \"com.apple/*\"\nrdr-anchor \"com.apple/*\"\n\
    dummynet-anchor \"com.apple/*\"\nanchor \"com.apple/*\"\nload anchor \"com.apple\" from \"/etc/pf.anchors/com.apple\"\n";

pub(crate) const SIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/macos-sim");
pub(crate) const DASH: &[&str] = &["dash"];
pub(crate) const BASH_POSIX: &[&str] = &["bash", "--posix"];

/// macOS's /bin/sh: Apple's bash 3.2.57 invoked as `sh` (POSIX mode), built once by .ci/run into
/// `$CONFINE_APPLE_BASH` (default `~/.cache/confine/bash-3.2`). Missing, it is a failure that says how to
/// build it: the installer suite never passes without the shell Macs run.
pub(crate) fn apple_sh() -> &'static [&'static str] {
    static SHELL: std::sync::OnceLock<[&'static str; 1]> = std::sync::OnceLock::new();
    SHELL.get_or_init(|| {
        let dir = std::env::var_os("CONFINE_APPLE_BASH")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/confine/bash-3.2")))
            .expect("HOME or CONFINE_APPLE_BASH is set");
        let sh = dir.join("sh");
        assert!(
            sh.is_file(),
            "Apple's bash 3.2.57 (macOS's /bin/sh) is not built at {}: run \
             `bash ../shared/macos-shell/build-bash-3.2.sh {}` (needs gcc, make, bison; .ci/run does it)",
            sh.display(),
            dir.display()
        );
        [String::leak(
            sh.into_os_string().into_string().expect("utf-8 path"),
        )]
    })
}

/// A spec and its plan: the payload is built from both, like `confine build` does.
pub(crate) struct Fleet {
    pub(crate) loaded: LoadedSpec,
    pub(crate) plan: Plan,
    /// Secrets embedded as with `confine build --embed-secrets`.
    pub(crate) secrets: Vec<EmbeddedSecret>,
}

impl std::ops::Deref for Fleet {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

pub(crate) fn plan_from(yaml: &str) -> Fleet {
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

pub(crate) fn example() -> Fleet {
    plan_from(confine::spec::EXAMPLE)
}

/// Two agents sharing a group; `port` is the first agent's gateway port.
pub(crate) fn two_agents(port: u32) -> Fleet {
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

pub(crate) fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the installer tests must run as root: they chown files to the agents' UIDs and drop privileges \
         with setpriv (run `cargo test` as root, as CI does)"
    );
}

/// One simulated Mac: `target/` is the volume Installer passes as `$3`, `state/` the fakes' state.
pub(crate) struct Mac {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) target: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) sim: PathBuf,
    pub(crate) shell: &'static [&'static str],
    pub(crate) runs: std::cell::Cell<u32>,
    /// The real node, npm and OpenClaw cache, for a Mac whose daemons really run (see [`Mac::real`]).
    pub(crate) tools: Option<E2eTools>,
}

/// What `.ci/install-e2e-tools` installs: a pinned real node and npm, and an npm cache holding the pinned
/// OpenClaw versions, in `$CONFINE_E2E_TOOLS` (default `~/.cache/confine-e2e`).
#[derive(Clone)]
pub(crate) struct E2eTools {
    pub(crate) dir: PathBuf,
    /// The pinned OpenClaw, and the older version the upgrade test starts from.
    pub(crate) openclaw: String,
    pub(crate) openclaw_previous: String,
    pub(crate) node: String,
}

/// The installed e2e tools, or a panic that says how to install them: these tests never pass silently.
pub(crate) fn e2e_tools() -> E2eTools {
    let dir = std::env::var_os("CONFINE_E2E_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/confine-e2e")))
        .expect("HOME or CONFINE_E2E_TOOLS is set");
    let versions = fs::read_to_string(dir.join("versions")).unwrap_or_else(|e| {
        panic!(
            "the real node, npm and OpenClaw are not installed in {} ({e}): run `.ci/install-e2e-tools` \
             (or `just e2e-tools`) once, then rerun the tests",
            dir.display()
        )
    });
    let get = |key: &str| {
        versions
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} is missing from {}/versions", dir.display()))
            .to_owned()
    };
    E2eTools {
        openclaw: get("OPENCLAW_VERSION"),
        openclaw_previous: get("OPENCLAW_PREVIOUS"),
        node: get("NODE_VERSION"),
        dir,
    }
}

impl Mac {
    pub(crate) fn new(shell: &'static [&'static str]) -> Mac {
        let mac = Mac::seeded(tempfile::tempdir().expect("temp dir"), shell, None);
        mac.install_stub_node();
        mac
    }

    /// A Mac in `dir` with its directory and volume seeded, and no node yet.
    fn seeded(dir: tempfile::TempDir, shell: &'static [&'static str], tools: Option<E2eTools>) -> Mac {
        require_root();
        // Agents must be able to traverse to their files and run the fakes, as on a Mac.
        set_mode(dir.path(), 0o755);
        let mac = Mac {
            target: dir.path().join("target"),
            state: dir.path().join("state"),
            sim: dir.path().join("sim"),
            _dir: dir,
            shell,
            runs: std::cell::Cell::new(0),
            tools,
        };
        mac.copy_sim();
        mac.seed_directory();
        mac.seed_volume();
        mac.plant_in_console_session();
        mac
    }

    /// A Mac with the real node and npm at /usr/local (npm reads OpenClaw from the offline cache), on
    /// which launchctl really starts the daemons. The scripts see the volume as `/`: they run in a mount
    /// namespace of their own where it is bound at /Users, /Library and /usr/local, because OpenClaw
    /// reads the Mac paths written in its config.
    pub(crate) fn real(tools: &E2eTools) -> Mac {
        // Not under /tmp: the Mac's own /private/tmp is bound there (OpenClaw keeps its state locks in
        // /tmp, keyed by UID and state path, which every simulated Mac shares).
        let dir = tempfile::tempdir_in("/var/tmp").expect("temp dir");
        let mac = Mac::seeded(dir, apple_sh(), Some(tools.clone()));
        mac.write_state("real-daemons", "");
        let tmp = mac.target.join("private/tmp");
        fs::create_dir_all(&tmp).expect("/private/tmp");
        set_mode(&tmp, 0o1777);
        let bin = mac.target.join("usr/local/bin");
        link_or_copy(&tools.dir.join("node/bin/node"), &bin.join("node"));
        let modules = mac.target.join("usr/local/lib/node_modules");
        fs::create_dir_all(&modules).expect("node_modules");
        std::os::unix::fs::symlink(tools.dir.join("npm"), modules.join("npm")).expect("npm");
        std::os::unix::fs::symlink("../lib/node_modules/npm/bin/npm-cli.js", bin.join("npm")).expect("npm");
        mac
    }

    /// Replaces the Mac's node with another one (e.g. an older release), as an admin might.
    pub(crate) fn replace_node(&self, node: &Path) {
        let to = self.target.join("usr/local/bin/node");
        fs::remove_file(&to).expect("remove node");
        link_or_copy(node, &to);
    }

    pub(crate) fn copy_sim(&self) {
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
    pub(crate) fn seed_directory(&self) {
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
        // What the Mac's resolver answers (fake dscacheutil and nc): the example's egress hosts.
        for (host, addresses) in [
            ("github.com", "192.0.2.10\n"),
            ("api.github.com", "192.0.2.11\n"),
            ("api.anthropic.com", "198.51.100.20\n2001:db8::20\n"),
        ] {
            self.write_state(&format!("dns/{host}"), addresses);
        }
        let volumes = format!("BOOT-UUID /\nBOOT-UUID {}\n", self.target.display());
        self.write_state("volumes", &volumes);
        self.write_state("commands.log", "");
        set_mode(&self.state.join("commands.log"), 0o666);
        // File flags (fake chflags), kept by inode: every account may flag its own files.
        fs::create_dir_all(self.state.join("flags")).expect("flags");
        set_mode(&self.state.join("flags"), 0o1777);
    }

    pub(crate) fn seed_volume(&self) {
        for (path, mode) in [
            ("Users", 0o755),
            ("Users/Shared", 0o1777),
            ("Library/LaunchDaemons", 0o755),
            ("Library/Logs", 0o755),
            ("Library/Application Support", 0o755),
            ("usr/local/bin", 0o755),
            ("private/etc/ssh/sshd_config.d", 0o755),
            ("private/var/log", 0o755),
            ("private/etc/newsyslog.d", 0o755),
        ] {
            let dir = self.target.join(path);
            fs::create_dir_all(&dir).expect("volume dir");
            set_mode(&dir, mode);
        }
        std::os::unix::fs::symlink("private/etc", self.target.join("etc")).expect("/etc");
        // Apple's /etc/pf.conf, and the main ruleset com.apple.pfctl loads from it at boot (fake pfctl).
        fs::write(self.target.join("private/etc/pf.conf"), APPLE_PF_CONF).expect("pf.conf");
        // As `pfctl -s rules` lists it (capture pfctl-s-rules--01.txt).
        let main_rules = "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"com.apple/*\" all\n";
        self.write_state("pf/main-rules", main_rules);
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
    }

    /// The console user's session, as a compromised or careless one could leave it: a ~/.npmrc and
    /// variables (set by [`Mac::run`]) that would run `planted.sh` or `planted.js`, which leave
    /// `state/pwned`, if anything root runs honoured them.
    fn plant_in_console_session(&self) {
        let pwned = self.state.join("pwned");
        let script = self.state.join("planted.sh");
        fs::write(
            &script,
            format!("#!/bin/sh\necho \"$0 $*\" >>'{}'\n", pwned.display()),
        )
        .expect("planted.sh");
        set_mode(&script, 0o755);
        let js = format!(
            "require('fs').appendFileSync({:?}, 'NODE_OPTIONS\\n');\n",
            pwned.display().to_string()
        );
        fs::write(self.state.join("planted.js"), js).expect("planted.js");
        let npmrc = format!(
            "script-shell={}\nnode-options=--require {}\nregistry=http://127.0.0.1:9/\n",
            script.display(),
            self.state.join("planted.js").display()
        );
        let path = self.target.join("Users/alice/.npmrc");
        fs::write(&path, npmrc).expect(".npmrc");
        chown(&path, Some(501), Some(20)).expect("chown");
    }

    /// Whether anything planted by [`Mac::plant_in_console_session`] ran.
    pub(crate) fn console_session_ran(&self) -> Option<String> {
        fs::read_to_string(self.state.join("pwned")).ok()
    }

    fn install_stub_node(&self) {
        for tool in ["node", "npm"] {
            let to = self.target.join("usr/local/bin").join(tool);
            let stub = fs::read_to_string(self.sim.join("mac").join(tool)).expect("stub");
            let stub = stub
                .replace("@SIM_LIB@", &self.sim.join("simlib.sh").display().to_string())
                .replace("@SIM_STATE@", &self.state.display().to_string());
            fs::write(&to, stub).expect("node");
            set_mode(&to, 0o755);
        }
    }

    pub(crate) fn write_ds(&self, kind: &str, name: &str, attr: &str, value: &str) {
        let dir = self.state.join("ds").join(kind).join(name);
        fs::create_dir_all(&dir).expect("ds dir");
        fs::write(dir.join(attr), value).expect("ds attribute");
    }

    pub(crate) fn write_state(&self, name: &str, value: &str) {
        let path = self.state.join(name);
        fs::create_dir_all(path.parent().expect("in state")).expect("state");
        fs::write(self.state.join(name), value).expect("state file");
    }

    pub(crate) fn ds(&self, kind: &str, name: &str, attr: &str) -> Option<String> {
        fs::read_to_string(self.state.join("ds").join(kind).join(name).join(attr)).ok()
    }

    /// The volume path of a path on the Mac.
    pub(crate) fn on_mac(&self, path: &str) -> PathBuf {
        self.target.join(path.trim_start_matches('/'))
    }

    /// Runs one package script the way Installer does, with `$1..$4`.
    pub(crate) fn run(&self, scripts: &[ScriptFile], name: &str) -> Output {
        let target = match &self.tools {
            None => self.target.to_str().expect("utf-8 path"),
            Some(_) => "/",
        };
        self.run_targeting(scripts, name, target)
    }

    /// [`Mac::run`] with `target` as the volume Installer names (`installer -target`).
    pub(crate) fn run_targeting(&self, scripts: &[ScriptFile], name: &str, target: &str) -> Output {
        self.runs.set(self.runs.get() + 1);
        let dir = self.state.with_file_name(format!("scripts-{}", self.runs.get()));
        fs::create_dir_all(&dir).expect("scripts dir");
        for s in scripts {
            let path = dir.join(&s.name);
            fs::write(&path, &s.contents).expect("script");
            set_mode(&path, s.mode);
        }
        let mut command = match &self.tools {
            None => Command::new(self.shell[0]),
            Some(_) => {
                let mut command = self.in_mount_namespace();
                command.arg(self.shell[0]);
                command
            }
        };
        // Installer runs the scripts in its root-only sandbox (capture pkg-preinstall-env--01.txt: PWD).
        let sandbox = self.state.with_file_name("PKInstallSandbox");
        fs::create_dir_all(&sandbox).expect("sandbox");
        set_mode(&sandbox, 0o700);
        command
            .current_dir(&sandbox)
            .args(&self.shell[1..])
            .arg(dir.join(name))
            .args(["/tmp/confine.pkg", target, target, target]);
        self.root_env(&mut command);
        // What Installer hands the scripts (capture pkg-preinstall-env--01.txt): the console user's HOME
        // and USER, and what their session exported, here hostile (see `plant_in_console_session`).
        let home = match &self.tools {
            None => self.on_mac("/Users/alice"),
            Some(_) => PathBuf::from("/Users/alice"),
        };
        let planted = self.state.join("planted.sh");
        command
            .env("HOME", home)
            .env("USER", "alice")
            .env(
                "NODE_OPTIONS",
                format!("--require {}", self.state.join("planted.js").display()),
            )
            .env("npm_config_registry", "http://127.0.0.1:9/")
            .env("npm_config_script_shell", &planted)
            .env("BASH_ENV", &planted)
            .env("ENV", &planted);
        if let Some(tools) = &self.tools {
            // As on a Mac without network access to anything but the cache: npm never asks the registry.
            command.env("CONFINE_SIM_NPM_CACHE", tools.dir.join("npm-cache"));
        }
        command.output().expect("runs the script")
    }

    /// The environment a script run as root on this Mac gets (sudo's, or Installer's reduced to what the
    /// scripts read), with the fakes on the scripts' PATH.
    pub(crate) fn root_env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/var/root")
            .env("CONFINE_SIM_BIN", self.sim.join("bin"))
            .env("SIM_LIB", self.sim.join("simlib.sh"))
            .env("SIM_STATE", &self.state)
    }

    /// `unshare` into a private mount namespace where the volume's Users, Library, usr/local and
    /// private/tmp are bound at their Mac paths, then runs the arguments added to the command. /Users and
    /// /Library are created (empty) on this machine as the mount points; nothing is mounted outside the
    /// namespace.
    pub(crate) fn in_mount_namespace(&self) -> Command {
        for point in ["/Users", "/Library", "/etc/ssh/sshd_config.d", "/private/var/log"] {
            fs::create_dir_all(point).expect("mount point");
        }
        let mut binds = String::new();
        for (from, to) in [
            ("Users", "/Users"),
            ("Library", "/Library"),
            ("usr/local", "/usr/local"),
            ("private/tmp", "/tmp"),
            ("private/etc/ssh/sshd_config.d", "/etc/ssh/sshd_config.d"),
            ("private/var/log", "/private/var/log"),
        ] {
            binds += &format!("mount --bind '{}' {to} && ", self.target.join(from).display());
        }
        // A Mac without npm (vendored_mac): the host's npm is shadowed by the same tripwire.
        let tripwire = self.state.join("npm-tripwire");
        if tripwire.exists() && Path::new("/usr/bin/npm").exists() {
            binds += &format!("mount --bind '{}' /usr/bin/npm && ", tripwire.display());
        }
        let mut command = Command::new("unshare");
        // Start at `/`: the namespace binds the volume over /tmp, so a test run from a clone under /tmp
        // would start in a folder that no longer exists there (node's spawn then fails with ENOENT).
        command
            .current_dir("/")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("{binds}exec \"$@\""))
            .arg("sh");
        command
    }

    /// preinstall, the payload, postinstall and the receipt, as Installer runs a package.
    pub(crate) fn install(&self, plan: &Fleet) -> Result<String, String> {
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
        if let Some(ran) = self.console_session_ran() {
            panic!("the console user's environment or ~/.npmrc reached a tool root ran:\n{ran}");
        }
        fs::create_dir_all(self.state.join("receipts")).expect("receipts");
        fs::write(self.state.join("receipts").join(&plan.pkg_identifier), "").expect("receipt");
        Ok(output_text(&pre) + &output_text(&post))
    }

    /// Lays down the payload of the component package confine builds, as Installer would: the Payload
    /// is taken out of the real package with bsdtar and extracted by GNU cpio (as root, so owners and modes
    /// are the archive's).
    pub(crate) fn lay_payload(&self, fleet: &Fleet) {
        let component = confine::layout::install_component(&fleet.loaded, &fleet.plan, &fleet.secrets, None)
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

    pub(crate) fn uninstall(&self, plan: &Fleet) -> Output {
        self.run(
            &installer::uninstall_scripts(plan).expect("scripts"),
            "postinstall",
        )
    }

    /// The fakes' command log, with the temp volume removed so paths read as on a Mac. The volume on
    /// its own (`diskutil info <volume>`, which a Mac installing onto "/" skips) reads `$TARGET`.
    pub(crate) fn commands(&self) -> String {
        let log = fs::read_to_string(self.state.join("commands.log")).expect("log");
        let target = self.target.to_str().expect("utf-8");
        log.replace(&format!(" {target}\n"), " $TARGET\n")
            .replace(target, "")
    }

    pub(crate) fn clear_commands(&self) {
        fs::write(self.state.join("commands.log"), "").expect("clear log");
    }

    /// Directory records, loaded daemons, receipts, and every file on the volume with owner and mode
    /// (and a content hash when `contents`: tokens and keys are random, so runs differ there).
    pub(crate) fn snapshot(&self, contents: bool) -> BTreeMap<String, String> {
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
            } else if meta.is_file() && contents && is_code(path, meta) {
                // Installed code (OpenClaw's 330 packages, node itself) by size and time: hashing it
                // all would dominate the end-to-end tests.
                value += &format!(" {} bytes @{}", meta.len(), meta.mtime());
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

/// Ends every daemon the simulated launchctl started, with every process below it (OpenClaw's workers
/// start sessions of their own), even when the test failed.
impl Drop for Mac {
    fn drop(&mut self) {
        // Files the fake chflags made immutable for real (schg): the temp dir could not go otherwise.
        if self.state.join("flags-real").exists() {
            let _ = Command::new("chattr")
                .args(["-R", "-f", "-i"])
                .arg(&self.target)
                .status();
        }
        let Ok(jobs) = fs::read_dir(self.state.join("launchd")) else {
            return;
        };
        for job in jobs.flatten() {
            let Some(pid) = fs::read_to_string(job.path().join("pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
            else {
                continue;
            };
            let pids: Vec<String> = process_tree(pid).iter().map(u32::to_string).collect();
            // Quiesce may already have ended the daemon: `kill` with no pid prints its usage.
            if !pids.is_empty() {
                let _ = Command::new("kill").arg("-KILL").args(&pids).status();
            }
        }
    }
}

/// `root` and every process below it, from the kernel's parent links.
fn process_tree(root: u32) -> Vec<u32> {
    let parents: BTreeMap<u32, u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    parents
        .keys()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            while p != root && p > 1 {
                match parents.get(&p) {
                    Some(&parent) => p = parent,
                    None => return false,
                }
            }
            p == root
        })
        .collect()
}

fn is_code(path: &Path, meta: &fs::Metadata) -> bool {
    meta.len() > 1 << 20 || path.components().any(|c| c.as_os_str() == "node_modules")
}

/// A hard link where it can (node is 120 MB), a copy across file systems.
fn link_or_copy(from: &Path, to: &Path) {
    fs::hard_link(from, to)
        .or_else(|_| fs::copy(from, to).map(drop))
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

pub(crate) fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
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

pub(crate) fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

pub(crate) fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Paths whose snapshot entries differ between two snapshots.
pub(crate) fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Runs `sh -euc script` as the example's agent hexagent, as the kernel sees it.
pub(crate) fn as_hexagent(script: &str) -> Output {
    hexagent_sh("-euc", script).output().expect("setpriv")
}

/// `sh <flags> script` as the example's agent hexagent: its real UID and GID 1051 and groups 1051 and
/// 1050, through setpriv.
pub(crate) fn hexagent_sh(flags: &str, script: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=1051",
        "--regid=1051",
        "--groups=1051,1050",
        "--",
        "sh",
        flags,
        script,
    ]);
    command
}

pub(crate) fn mode_owner(mac: &Mac, path: &str) -> (u32, u32, u32) {
    let meta = fs::symlink_metadata(mac.on_mac(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}
