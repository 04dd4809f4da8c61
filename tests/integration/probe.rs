//! The pilot-Mac probe (`src/probe.rs`, `pkg/probe`) as root on the simulated Mac, under dash, `bash
//! --posix` and Apple's bash 3.2 when built: a pilot Mac that can take the fleet gets `ok` for every fact
//! and exit 0; each broken fact is a `would fail` naming it, and exit 1; the JSON report has one entry per
//! fact; and no file, directory record, daemon or pf state changes. Background Task Management is what
//! real Macs printed (`sfltool dumpbtm`, ../shared/macos-captures).

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::sim::{DASH, Fleet, Mac, changed, example, output_text, plan_from, walk};
use crate::util::{confine, example_with};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/macos-captures");
/// Three allowed items, none of them the fleet's.
const BTM_ALLOWED: &str = "sfltool-dumpbtm-excerpt--02.txt";
/// The legacy daemon com.muse.authservice, switched off in Login Items.
const BTM_DISALLOWED: &str = "sfltool-dumpbtm-excerpt--01.txt";

/// The facts the probe reports for the example fleet, in order.
const EXAMPLE_FACTS: &[&str] = &[
    "macos-version",
    "sh",
    "dscl-read",
    "gid hexagent",
    "gid shared_agents",
    "uid hexagent",
    "node hexagent",
    "openclaw-engines hexagent",
    "home-parent hexagent",
    "workspace-parent hexagent",
    "awk",
    "curl",
    "sshd-include",
    "btm com.halfday.agents.hexagent.gateway",
    "btm com.halfday.agents.egress",
    "btm com.halfday.agents.audit.collector",
    "btm com.halfday.agents.audit.eslogger",
    "pf-conf-hook",
    "pf-main-ruleset",
    "eslogger",
    "eslogger-full-disk-access",
    "installer-environment",
];

/// What no Mac lets the probe settle before the first install: it says how to check them by hand.
const UNKNOWN_BEFORE_INSTALL: &[&str] = &[
    "openclaw-engines hexagent",
    "eslogger-full-disk-access",
    "installer-environment",
];

/// A shell to run the probe with, as `/bin/sh` on the Mac: `select` is what /private/var/select/sh names.
struct Shell {
    argv: Vec<String>,
    select: &'static str,
}

/// dash, `bash --posix` and Apple's bash 3.2.57 (`sim::apple_sh`), each as `sh`.
fn shells() -> Vec<Shell> {
    vec![
        Shell {
            argv: vec!["dash".into()],
            select: "/bin/dash",
        },
        Shell {
            argv: vec!["bash".into(), "--posix".into()],
            select: "/bin/bash",
        },
        Shell {
            argv: vec![crate::sim::apple_sh()[0].to_owned()],
            select: "/bin/bash",
        },
    ]
}

/// The simulated Mac as a pilot Mac that can take the example fleet: Apple's sshd_config Include, /bin/sh
/// the shell under test, Background Task Management with none of the fleet's daemons.
fn pilot_mac(shell: &Shell) -> Mac {
    let mac = Mac::new(DASH);
    // The line macOS 13 and later put first in /etc/ssh/sshd_config (OpenSSH's grammar, the admin's file).
    fs::write(
        mac.on_mac("/private/etc/ssh/sshd_config"),
        "Include /etc/ssh/sshd_config.d/*\nKbdInteractiveAuthentication no\nSubsystem\tsftp\t/usr/libexec/sftp-server\n",
    )
    .expect("sshd_config");
    fs::create_dir_all(mac.on_mac("/private/var/select")).expect("select");
    symlink(shell.select, mac.on_mac("/private/var/select/sh")).expect("select/sh");
    fs::create_dir_all(mac.on_mac("/bin")).expect("/bin");
    let program = which(&shell.argv[0]);
    symlink(&program, mac.on_mac("/bin/sh")).expect("/bin/sh");
    btm(&mac, BTM_ALLOWED);
    // pf's own bookkeeping the fake keeps (no tokens, no anchors yet), present as on a Mac.
    for dir in ["pf/tokens", "pf/anchors"] {
        fs::create_dir_all(mac.state.join(dir)).expect("pf state");
    }
    mac
}

/// Background Task Management lists what a real Mac printed (`sfltool dumpbtm`), byte for byte.
fn btm(mac: &Mac, capture: &str) {
    let bytes = fs::read(Path::new(CAPTURES).join(capture)).expect("../shared/macos-captures");
    fs::write(mac.state.join("sfltool-dumpbtm"), bytes).expect("btm");
}

fn which(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .output()
        .expect("sh");
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
}

/// What the probe reported: its exit status, its verdict lines (stderr) and its JSON report (stdout).
struct Report {
    out: Output,
    text: String,
    json: serde_json::Value,
}

impl Report {
    /// (fact, verdict) of every JSON entry, checked against the text lines: one line per entry.
    fn verdicts(&self) -> Vec<(String, String)> {
        let facts = self.json["facts"].as_array().expect("facts");
        let verdicts: Vec<(String, String)> = facts
            .iter()
            .map(|f| {
                for key in ["step", "detail"] {
                    assert!(f[key].as_str().is_some_and(|s| !s.is_empty()), "{key} of {f}");
                }
                (
                    f["fact"].as_str().expect("fact").to_owned(),
                    f["verdict"].as_str().expect("verdict").to_owned(),
                )
            })
            .collect();
        let lines: Vec<(String, String)> = self
            .text
            .lines()
            .filter(|l| !l.starts_with("confine probe: "))
            .map(|l| {
                let (verdict, rest) = l.split_at(10);
                let fact = rest.trim_start().split(": ").next().expect("fact: detail");
                (fact.to_owned(), verdict.trim_end().to_owned())
            })
            .collect();
        assert_eq!(
            verdicts, lines,
            "the text and the JSON report differ:\n{}",
            self.text
        );
        verdicts
    }

    fn facts(&self) -> Vec<String> {
        self.verdicts().into_iter().map(|(f, _)| f).collect()
    }

    /// The facts whose verdict is `verdict`.
    fn with(&self, verdict: &str) -> Vec<String> {
        self.verdicts()
            .into_iter()
            .filter(|(_, v)| v == verdict)
            .map(|(f, _)| f)
            .collect()
    }
}

/// Runs the probe as root on `mac`, the way an admin runs it with sudo (its environment reset), with the
/// simulation's fakes on PATH as the installer tests put them.
fn run_probe(mac: &Mac, probe: &[u8], shell: &Shell) -> Report {
    let path = mac.state.with_file_name("probe.sh");
    fs::write(&path, probe).expect("probe");
    let mut command = Command::new(&shell.argv[0]);
    command.args(&shell.argv[1..]).arg(&path).arg(&mac.target);
    let out = mac.root_env(&mut command).output().expect("runs the probe");
    let text = String::from_utf8(out.stderr.clone()).expect("utf-8");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}", output_text(&out)));
    Report { out, text, json }
}

fn probe_of(fleet: &Fleet) -> Vec<u8> {
    confine::probe::script(&fleet.plan, None).expect("probe")
}

/// Every file and folder of the volume and of the simulation's state (directory records, daemons, pf,
/// receipts) with type, mode, owner and content, except the fakes' command log.
fn everything(mac: &Mac) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for (name, root) in [("volume", &mac.target), ("state", &mac.state)] {
        walk(root, &mut |path, meta| {
            let key = format!("{name}/{}", path.strip_prefix(root).expect("inside").display());
            if key == "state/commands.log" {
                return;
            }
            let mut value = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
            if meta.is_symlink() {
                value += &format!(" -> {}", fs::read_link(path).expect("link").display());
            } else if meta.is_file() {
                let mut h = DefaultHasher::new();
                fs::read(path).expect("read").hash(&mut h);
                value += &format!(" {:016x}", h.finish());
            }
            all.insert(key, value);
        });
    }
    all
}

#[test]
fn build_writes_the_probe_beside_the_package_and_lists_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("dist");
    confine()
        .args(["build", "--example", "--out"])
        .arg(&out)
        .assert()
        .success();
    let name = "halfday-agents-probe-1.0.0.sh";
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).expect("manifest")).expect("json");
    let entry = manifest["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["path"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the manifest:\n{manifest:#}"));
    assert_eq!(entry["kind"], "probe");
    assert_eq!(entry["identifier"], "com.halfday.agents");
    let built = fs::read(out.join(name)).expect("probe");
    assert_eq!(
        built,
        probe_of(&example()),
        "the build writes what confine::probe::script makes"
    );
    let text = String::from_utf8(built).expect("utf-8");
    assert!(text.starts_with("#!/bin/sh\n"));
    // One file: the data is in it, and nothing sources another file.
    assert!(text.contains("\nFLEET_NAME='halfday-agents'\n"));
    assert!(
        !text.contains("fleet-data.sh\"\n"),
        "the probe still sources the data file"
    );
}

#[test]
fn probe_parses_and_passes_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("probe.sh");
    fs::write(&path, probe_of(&example())).expect("probe");
    for shell in shells() {
        let out = Command::new(&shell.argv[0])
            .args(&shell.argv[1..])
            .arg("-n")
            .arg(&path)
            .output()
            .expect("shell");
        assert!(out.status.success(), "{:?} -n: {}", shell.argv, output_text(&out));
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("shellcheck is missing ({e}): apt-get install shellcheck"));
    assert!(out.status.success(), "shellcheck:\n{}", output_text(&out));
}

#[test]
fn a_mac_that_can_take_the_fleet_gets_ok_for_every_fact_and_nothing_changes() {
    let fleet = example();
    for shell in shells() {
        let mac = pilot_mac(&shell);
        let before = everything(&mac);
        let report = run_probe(&mac, &probe_of(&fleet), &shell);
        assert_eq!(
            changed(&before, &everything(&mac)),
            Vec::<String>::new(),
            "{:?} changed the Mac",
            shell.argv
        );
        assert!(report.out.status.success(), "{:?}:\n{}", shell.argv, report.text);
        assert_eq!(report.facts(), EXAMPLE_FACTS, "{:?}", shell.argv);
        assert_eq!(report.with("would fail"), Vec::<String>::new(), "{}", report.text);
        assert_eq!(report.with("unknown"), UNKNOWN_BEFORE_INSTALL, "{}", report.text);
        assert_eq!(report.json["result"], "ok");
        assert_eq!(report.json["fleet"], "halfday-agents");
        let sh = line(&report.text, "sh");
        match shell.select {
            "/bin/dash" => assert!(sh.contains("-> /bin/dash"), "{sh}"),
            _ if shell.argv[0].ends_with("/sh") => assert!(sh.contains("/bin/sh is bash 3.2.57("), "{sh}"),
            _ => assert!(sh.contains("/bin/sh is bash 5."), "{sh}"),
        }
        // Nothing is written, created, loaded or enabled: only reads reach the fakes.
        let commands = mac.commands();
        for line in commands.lines() {
            let verb = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
            assert!(
                [
                    "sw_vers",
                    "dscl .",
                    "sfltool dumpbtm",
                    "pfctl -s",
                    "diskutil info"
                ]
                .iter()
                .any(|read| verb.starts_with(read))
                    || line.ends_with("--version"),
                "the probe ran {line}"
            );
        }
        assert!(
            !commands.contains("-create") && !commands.contains("-delete"),
            "{commands}"
        );
        if shell.argv[0] == "dash" {
            insta::assert_snapshot!("probe_clean_mac", redact(&report.text, &mac));
        }
    }
}

/// The snapshot without what differs between runs and machines: the fakes' temporary folder and the host
/// awk's version line.
fn redact(text: &str, mac: &Mac) -> String {
    text.replace(&mac.sim.display().to_string(), "<sim>")
        .lines()
        .map(|l| match (l.find(" awk: "), l.find(") gives")) {
            (Some(_), Some(end)) => {
                let start = l.find('(').expect("(");
                format!("{}(<this machine's awk>{}", &l[..start], &l[end..])
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Breaks one fact of a pilot Mac, runs the probe under every shell, and returns the facts that would
/// fail (the same under each) and the verdict lines of the first run.
fn broken(fleet: &Fleet, breaks: impl Fn(&Mac)) -> (Vec<String>, String) {
    let mut seen: Option<(Vec<String>, String)> = None;
    for shell in shells() {
        let mac = pilot_mac(&shell);
        breaks(&mac);
        let before = everything(&mac);
        let report = run_probe(&mac, &probe_of(fleet), &shell);
        assert_eq!(
            changed(&before, &everything(&mac)),
            Vec::<String>::new(),
            "{:?} changed the Mac",
            shell.argv
        );
        assert_eq!(
            report.out.status.code(),
            Some(1),
            "{:?}:\n{}",
            shell.argv,
            report.text
        );
        assert_eq!(report.json["result"], "would fail");
        assert!(
            report.text.contains("would fail: fix them before rolling out"),
            "{}",
            report.text
        );
        let failing = report.with("would fail");
        match &seen {
            Some((first, _)) => assert_eq!(first, &failing, "{:?} differs", shell.argv),
            None => seen = Some((failing, report.text)),
        }
    }
    seen.expect("at least one shell")
}

/// The verdict line of `fact`.
fn line<'a>(text: &'a str, fact: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.get(12..)
                .is_some_and(|rest| rest.starts_with(&format!("{fact}: ")))
        })
        .unwrap_or_else(|| panic!("no line for {fact}:\n{text}"))
}

#[test]
fn an_old_macos_would_fail() {
    let (failing, text) = broken(&example(), |mac| mac.write_state("macos-version", "13.6.1\n"));
    assert_eq!(failing, ["macos-version"]);
    assert!(
        line(&text, "macos-version")
            .contains("macOS 13.6.1 is older than 14.0, the oldest this fleet supports"),
        "{text}"
    );
}

#[test]
fn a_taken_uid_would_fail_naming_its_owner() {
    let (failing, text) = broken(&example(), |mac| {
        for (attr, value) in [
            ("UniqueID", "1051"),
            ("PrimaryGroupID", "20"),
            ("RecordName", "bob"),
        ] {
            mac.write_ds("Users", "bob", attr, value);
        }
    });
    assert_eq!(failing, ["uid hexagent"]);
    assert!(
        line(&text, "uid hexagent").contains("ID 1051 of user 'hexagent' already belongs to user 'bob'"),
        "{text}"
    );
}

#[test]
fn a_daemon_switched_off_in_login_items_would_fail() {
    // The label a real Mac listed as disallowed (capture sfltool-dumpbtm-excerpt--01) is the agent's.
    let fleet = plan_from(&example_with(
        "    # launchd:\n    #   label: com.halfday.agents.hexagent.gateway",
        "    launchd:\n      label: com.muse.authservice\n    #",
    ));
    let (failing, text) = broken(&fleet, |mac| btm(mac, BTM_DISALLOWED));
    assert_eq!(failing, ["btm com.muse.authservice"]);
    let verdict = line(&text, "btm com.muse.authservice");
    assert!(
        verdict.contains("[enabled, disallowed, visible, notified] (0x9)"),
        "{verdict}"
    );
    assert!(
        verdict.contains("Login Items") && verdict.contains("[postinstall: load_daemon]"),
        "{verdict}"
    );
    // The same list with the example's own labels: none of them is registered, so all are ok.
    let mac = pilot_mac(&shells()[0]);
    btm(&mac, BTM_DISALLOWED);
    assert!(
        run_probe(&mac, &probe_of(&example()), &shells()[0])
            .out
            .status
            .success()
    );
}

#[test]
fn a_pf_conf_without_apple_s_anchor_would_fail() {
    let (failing, text) = broken(&example(), |mac| {
        let conf = mac.on_mac("/private/etc/pf.conf");
        let kept: String = fs::read_to_string(&conf)
            .expect("pf.conf")
            .lines()
            .filter(|l| !l.starts_with("anchor "))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(conf, kept).expect("pf.conf");
    });
    assert_eq!(failing, ["pf-conf-hook"]);
    assert!(
        line(&text, "pf-conf-hook").contains("no anchor \"com.apple/*\" line"),
        "{text}"
    );
}

#[test]
fn a_main_ruleset_another_tool_replaced_would_fail() {
    let (failing, _) = broken(&example(), |mac| mac.write_state("pf/main-rules", "pass all\n"));
    assert_eq!(failing, ["pf-main-ruleset"]);
}

#[test]
fn an_sshd_config_without_the_include_would_fail() {
    let (failing, text) = broken(&example(), |mac| {
        fs::write(
            mac.on_mac("/private/etc/ssh/sshd_config"),
            "Match User alice\n\tInclude /etc/ssh/sshd_config.d/*\n",
        )
        .expect("sshd_config")
    });
    assert_eq!(failing, ["sshd-include"]);
    assert!(
        line(&text, "sshd-include").contains("add 'Include /etc/ssh/sshd_config.d/*' as its first line"),
        "{text}"
    );
}

#[test]
fn a_sh_other_than_bash_or_dash_would_fail() {
    let (failing, text) = broken(&example(), |mac| {
        let select = mac.on_mac("/private/var/select/sh");
        fs::remove_file(&select).expect("select/sh");
        symlink("/bin/zsh", select).expect("zsh");
    });
    assert_eq!(failing, ["sh"]);
    assert!(line(&text, "sh").contains("/bin/sh runs /bin/zsh"), "{text}");
}

#[test]
fn a_home_parent_others_can_write_would_fail() {
    let (failing, _) = broken(&example(), |mac| {
        crate::sim::set_mode(&mac.on_mac("/Users"), 0o777)
    });
    assert_eq!(failing, ["home-parent hexagent"]);
}

#[test]
fn after_the_install_every_fact_holds_and_openclaw_s_engines_are_checked() {
    let fleet = example();
    let shell = &shells()[0];
    let mac = pilot_mac(shell);
    mac.install(&fleet).unwrap_or_else(|e| panic!("install:\n{e}"));
    let before = everything(&mac);
    let report = run_probe(&mac, &probe_of(&fleet), shell);
    assert_eq!(changed(&before, &everything(&mac)), Vec::<String>::new());
    assert!(report.out.status.success(), "{}", report.text);
    assert_eq!(report.facts(), EXAMPLE_FACTS);
    assert_eq!(
        report.with("unknown"),
        ["eslogger-full-disk-access", "installer-environment"]
    );
    assert!(
        line(&report.text, "openclaw-engines hexagent")
            .contains("node v24.22.3 is in openclaw@2026.9.6's engines")
    );
}

#[test]
fn a_bundle_s_engines_are_checked_against_the_mac_s_node_before_the_install() {
    use crate::vendored::{VERSION, bundle_spec, ok, run};
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    crate::util::write(dir, "fleet.yaml", &bundle_spec(VERSION));
    ok(run(dir, &["lock"]).output().expect("runs"));
    ok(run(dir, &["build", "-q", "--out", "out"]).output().expect("runs"));
    let probe = fs::read(dir.join("out/halfday-agents-probe-1.0.0.sh")).expect("probe");
    let text = String::from_utf8_lossy(&probe).into_owned();
    // The engines of the real bundled package, the same bytes the preinstall reads, quoted like the data.
    assert!(text.contains(&format!("\t'{VERSION}') REPLY='>=")), "{text}");
    let shell = &shells()[0];
    let mac = pilot_mac(shell);
    let report = run_probe(&mac, &probe, shell);
    assert!(report.out.status.success(), "{}", report.text);
    let verdict = line(&report.text, "openclaw-engines hexagent");
    assert!(
        verdict.starts_with("ok ") && verdict.contains("node v24.22.3 is in openclaw@"),
        "{verdict}"
    );
    mac.write_state("node-version", "v20.19.0\n");
    let report = run_probe(&mac, &probe, shell);
    assert_eq!(report.out.status.code(), Some(1), "{}", report.text);
    assert_eq!(report.with("would fail"), ["openclaw-engines hexagent"]);
    assert!(
        line(&report.text, "openclaw-engines hexagent").contains("node v20.19.0 is not in"),
        "{}",
        report.text
    );
}
