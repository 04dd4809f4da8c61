//! `openclaw.install: bundle` on the simulated Mac. `confine lock` and `confine build` make a bundle for
//! the host (`CONFINE_TEST_PLATFORMS=linux-x64`, so the real node can run its prebuilt binaries), and the
//! built package itself is installed: its own Scripts run as Installer runs them, its Payload is laid down
//! by bsdtar and cpio. npm on the Mac is a tripwire, so the real gateway must start from the payload's
//! tree with no npm call. The BOM, which `pkgutil --files` reads from the receipt, must list every
//! OpenClaw file, and the built uninstaller must remove them. One slow run, sharing one installed Mac.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sim::*;
use crate::util::write;
use crate::vendored::{PKG, VERSION, bundle_spec, closed_port, files, ok, run, tool};

const COMPONENT: &str = "com.halfday.agents";
const UNINSTALL_PKG: &str = "halfday-agents-uninstall-1.0.0.pkg";
const BUNDLE_ROOT: &str = "/Library/Application Support/confine/halfday-agents/openclaw/2026.9.6";
const LIFECYCLE_MARKER: &str = "node_modules/openclaw/.openclaw-lifecycle-pending";

/// One member of a product archive (`bsdtar`, an independent xar reader).
fn member(pkg: &Path, name: &str) -> Vec<u8> {
    tool("bsdtar", &["-xOf", pkg.to_str().expect("utf-8"), name])
}

/// A component's `Scripts` archive (gzip'd cpio), unpacked by gzip and GNU cpio, as script files.
fn scripts_of(pkg: &Path, component: &str, dir: &Path) -> Vec<confine::installer::ScriptFile> {
    fs::create_dir_all(dir).expect("scripts dir");
    fs::write(
        dir.join("Scripts"),
        member(pkg, &format!("{component}.pkg/Scripts")),
    )
    .expect("Scripts");
    let status = Command::new("sh")
        .args(["-c", "gzip -dc Scripts | cpio -idm --quiet && rm Scripts"])
        .current_dir(dir)
        .status()
        .expect("gzip and cpio");
    assert!(status.success(), "unpacking the Scripts of {component}");
    fs::read_dir(dir)
        .expect("scripts")
        .map(|entry| {
            let path = entry.expect("entry").path();
            confine::installer::ScriptFile {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                contents: fs::read(&path).expect("script"),
                mode: fs::metadata(&path).expect("mode").mode() & 0o7777,
            }
        })
        .collect()
}

/// The BOM's paths below the bundle root, relative to it, as apple-bom reads them.
fn bom_bundle_paths(pkg: &Path) -> BTreeSet<PathBuf> {
    let bom = member(pkg, &format!("{COMPONENT}.pkg/Bom"));
    let parsed = apple_bom::ParsedBom::parse(&bom).expect("apple-bom reads the BOM");
    let root = format!(".{BUNDLE_ROOT}/");
    parsed
        .paths()
        .expect("BOM paths")
        .iter()
        .filter_map(|p| p.path().strip_prefix(&root).map(PathBuf::from))
        .collect()
}

impl Mac {
    /// npm at the Mac's path (where the nodejs.org installer puts it), and the host's, replaced by a
    /// tripwire that records each call (the daemon runs as the agent: the record is world-writable).
    fn npm_tripwire(&self) -> PathBuf {
        let calls = self.state.join("npm-calls");
        fs::write(&calls, "").expect("npm-calls");
        set_mode(&calls, 0o666);
        let tripwire = self.state.join("npm-tripwire");
        fs::write(
            &tripwire,
            format!(
                "#!/bin/sh\necho \"npm $* <- $(tr '\\0' ' ' </proc/$PPID/cmdline)\" >>'{}'\nexit 1\n",
                calls.display()
            ),
        )
        .expect("tripwire");
        set_mode(&tripwire, 0o755);
        let npm = self.on_mac("/usr/local/bin/npm");
        fs::remove_file(&npm).expect("the Mac's npm");
        fs::remove_file(self.on_mac("/usr/local/lib/node_modules/npm")).expect("npm's package");
        fs::copy(&tripwire, &npm).expect("tripwire at the Mac's npm");
        calls
    }

    /// Installer's steps with the built package: preinstall, the Payload, postinstall, the receipt.
    fn install_pkg(&self, pkg: &Path, scripts: &[confine::installer::ScriptFile]) -> Result<String, String> {
        let pre = self.run(scripts, "preinstall");
        if !pre.status.success() {
            return Err(output_text(&pre));
        }
        let status = Command::new("sh")
            .args([
                "-c",
                "bsdtar -xOf \"$1\" \"$2\" | gzip -dc | cpio -idmu --quiet",
                "sh",
            ])
            .arg(pkg)
            .arg(format!("{COMPONENT}.pkg/Payload"))
            .current_dir(&self.target)
            .status()
            .expect("bsdtar, gzip and cpio");
        assert!(status.success(), "laying down the Payload");
        let post = self.run(scripts, "postinstall");
        if !post.status.success() {
            return Err(output_text(&pre) + &output_text(&post));
        }
        fs::create_dir_all(self.state.join("receipts")).expect("receipts");
        fs::write(self.state.join("receipts").join(COMPONENT), "").expect("receipt");
        Ok(output_text(&pre) + &output_text(&post))
    }
}

#[test]
fn a_host_bundle_installs_runs_the_real_gateway_without_npm_and_uninstalls() {
    let tools = e2e_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let port = closed_port();
    let spec = bundle_spec(VERSION).replace("port: 18789", &format!("port: {port}"));
    assert!(
        spec.contains(&format!("port: {port}")),
        "the example names its port"
    );
    write(dir, "fleet.yaml", &spec);
    let host = |args: &[&str]| {
        let mut command = run(dir, args);
        command.env("CONFINE_TEST_PLATFORMS", "linux-x64");
        command
    };
    ok(host(&["lock"]).output().expect("runs"));
    ok(host(&["build", "-q", "--out", "out"]).output().expect("runs"));
    let pkg = dir.join("out").join(PKG);
    let scripts = scripts_of(&pkg, COMPONENT, &dir.join("scripts"));

    // The build put the bundled package's engines beside the scripts, for the preinstall's node check.
    let engines = scripts
        .iter()
        .find(|s| s.name == format!("openclaw-{VERSION}.json"))
        .expect("openclaw-<version>.json in the Scripts");
    let engines: serde_json::Value = serde_json::from_slice(&engines.contents).expect("JSON");
    assert_eq!(engines["version"], VERSION);

    let mac = Mac::real(&tools);
    let npm_calls = mac.npm_tripwire();

    // A node outside OpenClaw's engines: the preinstall names found and needed, and changes nothing.
    let old_node = Path::new("/usr/bin/node");
    let old_version = Command::new(old_node)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches('v')
                .to_owned()
        })
        .unwrap_or_default();
    assert!(
        old_version.starts_with("20.") || old_version.starts_with("22."),
        "the node check needs an old node at /usr/bin/node (found '{old_version}'): apt-get install nodejs"
    );
    mac.replace_node(old_node);
    let before = mac.snapshot(true);
    let err = mac.install_pkg(&pkg, &scripts).expect_err("node 20 is refused");
    let needed = engines["engines"]["node"].as_str().expect("engines.node");
    assert!(
        err.contains(&format!(
            "confine: ERROR: node {old_version} at /usr/local/bin/node is too old or too new for \
             openclaw@{VERSION}, which needs node {needed} (agent hexagent); install a supported \
             Node.js; nothing was changed"
        )),
        "{err}"
    );
    assert_eq!(changed(&before, &mac.snapshot(true)), Vec::<String>::new());

    // With the pinned node: the lifecycle completes on the payload's tree, the real gateway starts from
    // it, and every check of the self-check passes.
    mac.replace_node(&tools.dir.join("node/bin/node"));
    let out = mac
        .install_pkg(&pkg, &scripts)
        .unwrap_or_else(|e| panic!("the bundle install failed:\n{e}"));
    assert!(
        out.contains(&format!(
            "completing the package lifecycle of OpenClaw {VERSION} for hexagent"
        )),
        "{out}"
    );
    assert!(out.contains("every check passed"), "{out}");
    let fleet = plan_from(&spec);
    let agent = &fleet.agents[0];
    let status: serde_json::Value = serde_json::from_slice(
        &fs::read(mac.on_mac(&format!("{}/status.json", fleet.support_dir))).expect("status.json"),
    )
    .expect("JSON");
    assert_eq!(status["result"], "ok", "{status}");
    assert_eq!(status["agents"][0]["openclaw"], VERSION, "{status}");
    let label = &agent.launchd.label;
    let pid = fs::read_to_string(mac.state.join("launchd").join(label).join("pid")).expect("started");
    let pid: u32 = pid.trim().parse().expect("pid");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("the daemon runs");
    assert!(
        String::from_utf8_lossy(&cmdline).contains(&format!("{BUNDLE_ROOT}/node_modules/openclaw/")),
        "the daemon runs the bundle: {}",
        String::from_utf8_lossy(&cmdline)
    );
    // Nothing installed or fetched anything with npm. OpenClaw itself asks npm where global packages
    // live (`npm root -g`, local and read-only, from its spawn broker) and copes with the answer missing.
    let calls = fs::read_to_string(&npm_calls).expect("npm-calls");
    assert!(
        calls.lines().all(|call| call.starts_with("npm root -g <- ")),
        "npm was called: {calls}"
    );

    // The tree is complete, root's, and nobody else can write any of it. Its engines are the ones the
    // preinstall checked.
    let root = mac.on_mac(BUNDLE_ROOT);
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(root.join("node_modules/openclaw/package.json")).expect("package.json"),
    )
    .expect("JSON");
    assert_eq!(manifest["engines"]["node"], engines["engines"]["node"]);
    assert!(!root.join(LIFECYCLE_MARKER).exists(), "the lifecycle is complete");
    walk(&root, &mut |path, meta| {
        assert_eq!(meta.uid(), 0, "{}", path.display());
        assert_eq!(meta.mode() & 0o022, 0, "{} is writable by others", path.display());
    });

    // The receipt's BOM lists every OpenClaw file and folder: what the install left, and the lifecycle
    // marker the install completed.
    let listed = bom_bundle_paths(&pkg);
    let mut installed: BTreeSet<PathBuf> = files(&root).into_iter().collect();
    walk(&root, &mut |path, meta| {
        if meta.is_dir() {
            installed.insert(path.strip_prefix(&root).unwrap().to_path_buf());
        }
    });
    installed.insert(PathBuf::from(LIFECYCLE_MARKER));
    assert!(installed.len() > 30_000, "{} paths", installed.len());
    assert_eq!(
        listed.symmetric_difference(&installed).collect::<Vec<_>>(),
        Vec::<&PathBuf>::new()
    );

    // The built uninstaller: the daemon stops, every OpenClaw file goes, the receipt is forgotten.
    let uninstall = scripts_of(
        &dir.join("out").join(UNINSTALL_PKG),
        &format!("{COMPONENT}.uninstall"),
        &dir.join("uninstall-scripts"),
    );
    let out = mac.run(&uninstall, "postinstall");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")),
        "the daemon still runs"
    );
    let left: Vec<&PathBuf> = listed.iter().filter(|p| root.join(p).exists()).collect();
    assert_eq!(
        left,
        Vec::<&PathBuf>::new(),
        "OpenClaw files left after uninstall"
    );
    assert!(!mac.on_mac(BUNDLE_ROOT).exists());
    assert!(!mac.state.join("receipts").join(COMPONENT).exists());
    assert_eq!(fs::read_to_string(&npm_calls).expect("npm-calls"), calls);
}

/// A bundled OpenClaw as the payload lays it down, for the stub node: root-owned, its lifecycle pending.
fn stub_bundle(mac: &Mac, version: &str) -> PathBuf {
    let root = mac.on_mac(&format!(
        "/Library/Application Support/confine/halfday-agents/openclaw/{version}"
    ));
    let package = root.join("node_modules/openclaw");
    fs::create_dir_all(&package).expect("bundle");
    fs::write(
        package.join("package.json"),
        format!("{{\n  \"name\": \"openclaw\",\n  \"version\": \"{version}\",\n}}\n"),
    )
    .expect("package.json");
    fs::write(package.join("openclaw.mjs"), "// stub\n").expect("openclaw.mjs");
    fs::write(package.join(".openclaw-lifecycle-pending"), "pending\n").expect("marker");
    root
}

/// The fast half, with the stub node under dash and bash --posix: the preinstall refuses a package
/// without the engines file and a node outside them; the postinstall completes the payload's pending
/// lifecycle, and once the self-check passed, drops a bundled version no agent pins any more.
#[test]
fn bundle_scripts_check_node_complete_the_lifecycle_and_prune_old_versions() {
    for shell in [DASH, BASH_POSIX] {
        let mac = Mac::new(shell);
        let fleet = plan_from(&bundle_spec(VERSION));
        let old = stub_bundle(&mac, "2026.9.5");
        let mut scripts = confine::installer::scripts(&fleet).expect("scripts");

        let err = mac.install(&fleet).expect_err("no engines file");
        assert!(
            err.contains(&format!(
                "the package lacks openclaw-{VERSION}.json beside its scripts (agent hexagent)"
            )),
            "{err}"
        );
        scripts.push(confine::installer::ScriptFile {
            name: format!("openclaw-{VERSION}.json"),
            contents: format!(
                "{{\n  \"engines\": {{\n    \"node\": \">=24.16.0 <25\"\n  }},\n  \"name\": \"openclaw\",\n  \"version\": \"{VERSION}\"\n}}\n"
            )
            .into_bytes(),
            mode: 0o644,
        });
        mac.write_state("node-version", "v25.0.0\n");
        let pre = mac.run(&scripts, "preinstall");
        assert!(
            output_text(&pre).contains(&format!(
                "node 25.0.0 at /usr/local/bin/node is too old or too new for openclaw@{VERSION}, which \
                 needs node >=24.16.0 <25 (agent hexagent)"
            )),
            "{}",
            output_text(&pre)
        );
        fs::remove_file(mac.state.join("node-version")).expect("node 24 again");

        let pre = mac.run(&scripts, "preinstall");
        assert!(pre.status.success(), "{}", output_text(&pre));
        mac.lay_payload(&fleet);
        let new = stub_bundle(&mac, VERSION);
        let post = mac.run(&scripts, "postinstall");
        let out = output_text(&post);
        assert!(post.status.success(), "{out}");
        assert!(
            out.contains(&format!(
                "completing the package lifecycle of OpenClaw {VERSION} for hexagent"
            )),
            "{out}"
        );
        assert!(out.contains("removing bundled OpenClaw 2026.9.5"), "{out}");
        assert!(!new.join(LIFECYCLE_MARKER).exists(), "{out}");
        assert!(new.join("node_modules/openclaw/openclaw.mjs").exists());
        assert!(!old.exists(), "the unpinned version is gone");
        // The lifecycle ran first, as root (no sudo before it), with the Mac's node.
        let commands = mac.commands();
        let lines: Vec<&str> = commands.lines().collect();
        let first = lines
            .iter()
            .position(|l| l.ends_with("openclaw.mjs' --version"))
            .expect("OpenClaw ran");
        assert_eq!(
            lines[first],
            format!("/usr/local/bin/node '{BUNDLE_ROOT}/node_modules/openclaw/openclaw.mjs' --version")
        );
        assert!(!lines[first - 1].starts_with("sudo"), "{commands}");
    }
}
