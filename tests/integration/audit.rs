//! The audit trail (issue 15, `agents[].audit`): eslogger events (a fixture modelled on Endpoint
//! Security's `es_message_t`, in `tests/fixtures/eslogger`) go from the simulated Mac's fake eslogger
//! through the FIFO to the real collector script, run as launchd would run the two plists the package
//! installs. Only the audited agents' events are kept, verbatim, root-only; the agent (its real UID, via
//! setpriv) can neither read nor erase them; a flood stays within its own bounded files; `confine audit`
//! prints the timeline. Also: the PPPC grant against Apple's schema, and the newsyslog entry.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confine::audit::{AuditPlan, daemons, newsyslog};
use serde_json::Value;

use crate::sim::*;
use crate::util::confine;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/eslogger/session.jsonl"
);

fn fixture() -> String {
    fs::read_to_string(FIXTURE).expect("the eslogger fixture")
}

pub(crate) fn trail(fleet: &Fleet) -> &AuditPlan {
    fleet.plan.audit.as_ref().expect("the fleet has an audit trail")
}

/// The example fleet, with a second audited agent (docbot, 1061) and `hexagent_audit` for hexagent.
pub(crate) fn two_audited(hexagent_audit: &str) -> Fleet {
    let yaml = confine::spec::EXAMPLE
        .replace(
            "    audit:\n      enabled: true\n      events: [exec, fork, exit]  # also: signal, setuid, setgid, uipc_connect, uipc_bind, create, unlink, rename\n      file_mb: 10                 # rotated at 10 MiB; at most file_mb × (keep + 1) on disk\n      keep: 5\n",
            &format!("    audit: {hexagent_audit}\n"),
        )
        .replace(
            "hardening:\n",
            "  - name: docbot\n    full_name: Doc Bot\n    uid: 1061\n    openclaw: { version: 2026.9.6 }\n    gateway: { port: 18790 }\n    audit: { enabled: true }\n\nhardening:\n",
        );
    assert!(
        yaml.contains(hexagent_audit),
        "the example's audit block is replaced"
    );
    plan_from(&yaml)
}

/// What launchd would run for a plist: its ProgramArguments and StandardOutPath, with Mac paths put on the
/// simulated volume and /usr/bin/eslogger being the simulation's fake.
fn job(mac: &Mac, plist: &[u8]) -> (Vec<PathBuf>, Option<PathBuf>) {
    let d = plist::from_bytes::<plist::Value>(plist)
        .expect("plist")
        .into_dictionary()
        .expect("dict");
    assert!(!d.contains_key("UserName"), "the audit daemons run as root");
    assert_eq!(d["Umask"].as_signed_integer(), Some(63), "files owner-only");
    let on_mac = |s: &str| {
        if s == daemons::ESLOGGER {
            mac.sim.join("bin/eslogger")
        } else if s.starts_with("/Library/") || s.starts_with("/private/") {
            mac.on_mac(s)
        } else {
            PathBuf::from(s)
        }
    };
    let args = d["ProgramArguments"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| on_mac(a.as_string().expect("string")))
        .collect();
    let stdout = d["StandardOutPath"].as_string().map(on_mac);
    (args, stdout)
}

/// Makes the simulated Mac's `awk` the one macOS ships, Brian Kernighan's (Debian's `original-awk`),
/// instead of this machine's.
fn macos_awk(mac: &Mac) {
    let bwk = Path::new("/usr/bin/original-awk");
    assert!(
        bwk.exists(),
        "original-awk is missing: apt-get install original-awk (tests/run installs it)"
    );
    std::os::unix::fs::symlink(bwk, mac.sim.join("bin/awk")).expect("awk");
}

fn sim_env(mac: &Mac, command: &mut Command) {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CONFINE_SIM_BIN", mac.sim.join("bin"))
        .env("SIM_LIB", mac.sim.join("simlib.sh"))
        .env("SIM_STATE", &mac.state);
}

/// Feeds `feed` to the fleet's audit daemons, started as launchd starts them (collector, then eslogger
/// with its stdout the FIFO), and waits, bounded, until eslogger is done and the collector has drained the
/// FIFO. Returns the collector's messages.
pub(crate) fn collect(mac: &Mac, fleet: &Fleet, feed: &str) -> String {
    let audit = trail(fleet);
    mac.write_state("eslogger-feed", feed);
    let (collector_args, _) = job(mac, &daemons::collector_plist(audit).expect("plist"));
    let (eslogger_args, fifo) = job(mac, &daemons::eslogger_plist(audit).expect("plist"));
    let fifo = fifo.expect("eslogger's stdout");
    assert!(
        fs::symlink_metadata(&fifo)
            .expect("the FIFO")
            .file_type()
            .is_fifo()
    );
    let mut collector = Command::new(&collector_args[0]);
    collector.args(&collector_args[1..]).arg(&mac.target);
    sim_env(mac, &mut collector);
    let mut collector = collector
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("collector");
    // As launchd does: the job's stdout is opened in the job's own process, which waits for the reader.
    let mut eslogger = Command::new("sh");
    eslogger
        .args(["-c", "out=$1; shift; exec \"$@\" >>\"$out\"", "sh"])
        .arg(&fifo)
        .args(&eslogger_args);
    sim_env(mac, &mut eslogger);
    let mut eslogger = eslogger.spawn().expect("eslogger");
    let started = Instant::now();
    while collector.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = collector.kill();
            let _ = eslogger.kill();
            panic!("the collector did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = eslogger.kill();
    let _ = eslogger.wait();
    let out = collector.wait_with_output().expect("collector output");
    let text = output_text(&out);
    assert!(out.status.success(), "the collector failed:\n{text}");
    text
}

fn agent_lines(mac: &Mac, fleet: &Fleet, agent: &str) -> Vec<String> {
    let log = &trail(fleet)
        .agents
        .iter()
        .find(|a| a.name == agent)
        .expect("agent")
        .log;
    fs::read_to_string(mac.on_mac(log))
        .expect("the agent's trail")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The fixture's lines whose acting process runs as `uid` (real or effective) and whose event is listed.
pub(crate) fn expected(uid: i64, events: &[&str]) -> Vec<String> {
    fixture()
        .lines()
        .filter(|line| {
            let v: Value = serde_json::from_str(line).expect("fixture JSON");
            let token = &v["process"]["audit_token"];
            let event = v["event"].as_object().and_then(|e| e.keys().next().cloned());
            (token["ruid"] == uid || token["euid"] == uid)
                && event.is_some_and(|e| events.contains(&e.as_str()))
        })
        .map(str::to_owned)
        .collect()
}

fn events_only(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("{\"confine\""))
        .cloned()
        .collect()
}

/// Whether `script` works as the agent hexagent, its real UID.
fn agent_manages(script: &str) -> bool {
    as_hexagent(script).status.success()
}

pub(crate) fn installed(fleet: &Fleet) -> Mac {
    let mac = Mac::new(apple_sh());
    mac.install(fleet)
        .unwrap_or_else(|e| panic!("install failed:\n{e}"));
    mac
}

#[test]
fn only_the_agents_events_are_kept_verbatim_root_only() {
    only_the_agents_events_are_kept(false);
}

#[test]
fn only_the_agents_events_are_kept_with_macos_awk() {
    only_the_agents_events_are_kept(true);
}

fn only_the_agents_events_are_kept(bwk_awk: bool) {
    let fleet = example();
    let mac = installed(&fleet);
    if bwk_awk {
        macos_awk(&mac);
    }
    let audit = trail(&fleet);
    assert_eq!(mode_owner(&mac, "/private/var/log/confine"), (0o700, 0, 0));
    assert_eq!(mode_owner(&mac, &audit.dir), (0o700, 0, 0));
    assert_eq!(mode_owner(&mac, &audit.fifo).0, 0o600);
    for label in [&audit.collector_label, &audit.eslogger_label] {
        assert!(
            mac.state.join("launchd").join(label).is_dir(),
            "{label} is loaded"
        );
    }

    collect(&mac, &fleet, &fixture());
    let lines = agent_lines(&mac, &fleet, "hexagent");
    let kept = expected(1051, &["exec", "fork", "exit"]);
    assert_eq!(
        kept.len(),
        9,
        "the fixture has nine events of hexagent's processes"
    );
    assert_eq!(
        events_only(&lines),
        kept,
        "hexagent's events, verbatim and in order"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"future_field\"")),
        "unknown fields are kept"
    );
    assert_eq!(
        lines[0],
        r#"{"confine":"collector-started","time":"2026-01-01T00:00:00Z"}"#
    );
    assert!(
        lines.contains(
            &r#"{"confine":"dropped","events":3,"time":"2026-11-29T10:15:03.010020000Z"}"#.to_owned()
        ),
        "the gap in global_seq_num is recorded:\n{}",
        lines.join("\n")
    );
    assert_eq!(mode_owner(&mac, &audit.agents[0].log), (0o600, 0, 0));
    assert!(
        mac.commands().contains("eslogger exec fork exit\n"),
        "{}",
        mac.commands()
    );
}

#[test]
fn the_agent_can_neither_read_nor_erase_the_trail() {
    let fleet = example();
    let mac = installed(&fleet);
    collect(&mac, &fleet, &fixture());
    let audit = trail(&fleet);
    let log = mac.on_mac(&audit.agents[0].log);
    let dir = mac.on_mac(&audit.dir);
    let before = fs::read(&log).expect("trail");
    for attack in [
        format!("cat '{}'", log.display()),
        format!("rm -f '{}'", log.display()),
        format!(": >'{}'", log.display()),
        format!("truncate -s 0 '{}'", log.display()),
        format!("mv '{}' '{}.gone'", log.display(), log.display()),
        format!("ls '{}'", dir.display()),
        format!("rm -rf '{}'", dir.display()),
        format!("printf '{{}}\\n' >>'{}'", mac.on_mac(&audit.fifo).display()),
        format!("mv '{}' /tmp/confine-audit-stolen", dir.display()),
    ] {
        assert!(!agent_manages(&attack), "the agent could: {attack}");
    }
    assert_eq!(fs::read(&log).expect("trail"), before, "the trail is unchanged");
    assert_eq!(mode_owner(&mac, &audit.agents[0].log), (0o600, 0, 0));
}

#[test]
fn a_flooding_agent_fills_only_its_own_bounded_files() {
    let fleet = two_audited("{ enabled: true, file_mb: 1, keep: 2 }");
    let mac = installed(&fleet);
    macos_awk(&mac);
    let git = expected(1051, &["exec"])[0].clone();
    let docbot = expected(1061, &["exec"])[0].clone();
    let mut feed = format!("{docbot}\n");
    let flood = 2_000;
    for i in 0..flood {
        // Sequence numbers stay contiguous: the collector keeps up, so nothing counts as dropped.
        let line = git
            .replace(
                "\"global_seq_num\":40214",
                &format!("\"global_seq_num\":{}", 50_000 + i),
            )
            .replace("\"--porcelain\"", &format!("\"--porcelain={i}\""));
        feed.push_str(&line);
        feed.push('\n');
    }
    // One exec whose arguments are bigger than the collector keeps.
    let huge = git.replace("\"--porcelain\"", &format!("\"{}\"", "A".repeat(3 << 20)));
    feed.push_str(&huge);
    feed.push('\n');
    collect(&mac, &fleet, &feed);

    let audit = trail(&fleet);
    let hexagent = &audit.agents[0];
    assert_eq!((hexagent.file_bytes, hexagent.keep), (1 << 20, 2));
    let files: BTreeMap<String, u64> = fs::read_dir(mac.on_mac(&audit.dir))
        .expect("audit dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().starts_with("hexagent.jsonl"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("meta").len(),
            )
        })
        .collect();
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        ["hexagent.jsonl", "hexagent.jsonl.1", "hexagent.jsonl.2"],
        "keep: 2 rotated files, never more"
    );
    let total: u64 = files.values().sum();
    assert!(
        total <= 3 << 20,
        "{total} bytes on disk for a 1 MiB × (2 + 1) bound"
    );
    let current = agent_lines(&mac, &fleet, "hexagent");
    assert!(
        current[0].starts_with("{\"confine\":\"rotated\",\"rotations\":"),
        "{}",
        current[0]
    );
    let last = current.last().expect("a last line");
    assert!(
        last.starts_with("{\"confine\":\"oversized\",\"bytes\":"),
        "the 3 MiB exec is a counted record, not kept: {}",
        &last[..last.len().min(200)]
    );
    assert!(
        current
            .iter()
            .any(|l| l.contains(&format!("--porcelain={}\"", flood - 1))),
        "the newest flood events are there"
    );
    assert!(
        !current.iter().any(|l| l.contains("\"dropped\"")),
        "nothing was dropped"
    );
    for name in files.keys() {
        let path = format!("{}/{name}", audit.dir);
        assert_eq!(mode_owner(&mac, &path), (0o600, 0, 0), "{path}");
    }
    // The other agent's trail is its own: the flood rotated none of it.
    let docbot_lines = agent_lines(&mac, &fleet, "docbot");
    assert_eq!(events_only(&docbot_lines), vec![docbot]);
    assert!(!mac.on_mac(&format!("{}/docbot.jsonl.1", audit.dir)).exists());
}

#[test]
fn confine_audit_prints_the_timeline() {
    let fleet = example();
    let mac = installed(&fleet);
    collect(&mac, &fleet, &fixture());
    let log = mac.on_mac(&trail(&fleet).agents[0].log);
    let out = confine().arg("audit").arg(&log).output().expect("confine audit");
    assert!(out.status.success(), "{}", output_text(&out));
    let timeline = String::from_utf8(out.stdout).expect("utf-8");
    insta::assert_snapshot!("audit_timeline", timeline);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("9 event(s); 3 dropped by Endpoint Security"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same from standard input, as an MDM script's output arrives.
    let piped = confine()
        .args(["audit", "-"])
        .pipe_stdin(&log)
        .expect("log")
        .output()
        .expect("confine audit -");
    assert_eq!(String::from_utf8(piped.stdout).expect("utf-8"), timeline);

    // Not a trail: file and line, exit 1.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.jsonl");
    fs::write(
        &bad,
        format!("{}\n{{\"time\": oops}}\n", fixture().lines().next().unwrap()),
    )
    .expect("write");
    let out = confine().arg("audit").arg(&bad).output().expect("confine audit");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2: not a JSON event", bad.display())),
        "{stderr}"
    );
}

#[test]
fn a_huge_line_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("huge.jsonl");
    fs::write(&bad, vec![b'x'; 64 << 20]).expect("write");
    let out = Command::new("prlimit")
        .arg("--as=1073741824")
        .arg(env!("CARGO_BIN_EXE_confine"))
        .arg("audit")
        .arg(&bad)
        .output()
        .expect("prlimit");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("huge.jsonl:1: the line is longer than 2 MiB"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn pppc_grants_eslogger_full_disk_access_by_apples_requirement() {
    let profiles = crate::profile::example();
    crate::profile::assert_apple_valid(&profiles, "14.0");
    let pppc = profiles
        .iter()
        .find(|p| p.identifier.ends_with(".pppc"))
        .expect("the PPPC profile");
    let d = crate::profile::plist_of(pppc);
    let payload = d["PayloadContent"].as_array().expect("payloads")[0]
        .as_dictionary()
        .expect("payload");
    let all_files = payload["Services"].as_dictionary().expect("services")["SystemPolicyAllFiles"]
        .as_array()
        .expect("entries");
    let grants: Vec<&plist::Dictionary> = all_files
        .iter()
        .filter_map(|e| e.as_dictionary())
        .filter(|e| e.get("Allowed").and_then(plist::Value::as_boolean) == Some(true))
        .collect();
    assert_eq!(grants.len(), 1, "one allow rule: eslogger's");
    let grant = grants[0];
    assert_eq!(grant["Identifier"].as_string(), Some("/usr/bin/eslogger"));
    assert_eq!(grant["IdentifierType"].as_string(), Some("path"));
    assert_eq!(
        grant["CodeRequirement"].as_string(),
        Some("identifier \"com.apple.eslogger\" and anchor apple")
    );
    // Without an audited agent, no allow rule at all.
    let off = confine::spec::EXAMPLE.replace(
        "      enabled: true\n      events",
        "      enabled: false\n      events",
    );
    let loaded = confine::spec::load_text(&off, Path::new("off.yaml"), ".".into()).expect("valid");
    let plan = confine::plan::Plan::new(&loaded.spec);
    assert!(plan.audit.is_none());
    let built = confine::profile::build(&loaded.spec, &plan, Path::new(".")).expect("builds");
    let xml = &built
        .iter()
        .find(|p| p.identifier.ends_with(".pppc"))
        .expect("pppc")
        .xml;
    assert!(!String::from_utf8_lossy(xml).contains("eslogger"));
}

#[test]
fn newsyslog_rotates_the_gateways_output_without_a_signal() {
    let fleet = two_audited("{ enabled: true }");
    let conf = String::from_utf8(newsyslog::conf(&fleet.plan)).expect("utf-8");
    insta::assert_snapshot!("newsyslog_conf", conf);
    let mac = installed(&example());
    let path = "/private/etc/newsyslog.d/confine-halfday-agents.conf";
    assert_eq!(mode_owner(&mac, path), (0o644, 0, 0));
    // Every line: logfile owner:group mode count size when flags, newsyslog.conf(5); N, no compression.
    let installed = fs::read_to_string(mac.on_mac(path)).expect("conf");
    let entries: Vec<&str> = installed.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        entries.len(),
        4,
        "two gateway streams, two audit daemons:\n{installed}"
    );
    for line in entries {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 7, "{line}");
        let owner_mode = if fields[0].starts_with("/private/var/log/confine/halfday-agents/") {
            ["0:0", "600"]
        } else {
            assert!(
                fields[0].starts_with("/Library/Logs/confine/hexagent/gateway."),
                "{line}"
            );
            ["1051:80", "640"]
        };
        assert_eq!(fields[1..3], owner_mode, "{line}");
        assert_eq!(fields[3..], ["3", "1024", "*", "N"], "{line}");
    }
}

#[test]
fn uninstall_stops_the_daemons_and_keeps_the_trail() {
    let fleet = example();
    let mac = installed(&fleet);
    collect(&mac, &fleet, &fixture());
    let audit = trail(&fleet);
    let before = fs::read(mac.on_mac(&audit.agents[0].log)).expect("trail");
    let out = mac.uninstall(&fleet);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("kept the audit trail in /private/var/log/confine/halfday-agents"),
        "{text}"
    );
    for (label, plist) in [
        (&audit.collector_label, &audit.collector_plist),
        (&audit.eslogger_label, &audit.eslogger_plist),
    ] {
        assert!(!mac.on_mac(plist).exists(), "{plist}");
        assert!(
            mac.commands()
                .contains(&format!("launchctl bootout system/{label}\n"))
        );
    }
    assert!(
        !mac.on_mac("/private/etc/newsyslog.d/confine-halfday-agents.conf")
            .exists()
    );
    assert!(!mac.on_mac(&audit.fifo).exists());
    assert_eq!(fs::read(mac.on_mac(&audit.agents[0].log)).expect("trail"), before);
    assert_eq!(mode_owner(&mac, &audit.dir), (0o700, 0, 0));
}

#[test]
fn audit_spec_errors_name_the_line() {
    let yaml = confine::spec::EXAMPLE.replace("events: [exec, fork, exit]", "events: [exce, fork, fork]");
    let err = confine::spec::parse_and_validate(&yaml, Path::new("fleet.yaml")).expect_err("invalid");
    let text = err.to_string();
    let line = yaml
        .lines()
        .position(|l| l.contains("events: [exce"))
        .expect("line")
        + 1;
    assert!(
        text.contains(&format!("fleet.yaml:{line}:16: `exce` is not an audit event")),
        "{text}"
    );
    assert!(text.contains("did you mean `exec`?"), "{text}");
    assert!(
        text.contains(&format!(
            "fleet.yaml:{line}:28: audit event `fork` is listed twice"
        )),
        "{text}"
    );
    assert!(text.contains("the audit events leave out `exec`"), "{text}");
    let yaml = confine::spec::EXAMPLE
        .replace("keep: 5\n", "keep: 0\n")
        .replace("file_mb: 10 ", "file_mb: 2048 ");
    let text = confine::spec::parse_and_validate(&yaml, Path::new("fleet.yaml"))
        .expect_err("invalid")
        .to_string();
    assert!(
        text.contains("an audit file of 2048 MiB is out of range"),
        "{text}"
    );
    assert!(
        text.contains("keeping 0 rotated audit files is out of range"),
        "{text}"
    );
    let yaml = confine::spec::EXAMPLE.replace("minimum_macos: \"14.0\"", "minimum_macos: \"12.6\"");
    let text = confine::spec::parse_and_validate(&yaml, Path::new("fleet.yaml"))
        .expect_err("invalid")
        .to_string();
    let line = yaml
        .lines()
        .position(|l| l.contains("minimum_macos"))
        .expect("line")
        + 1;
    assert!(
        text.contains(&format!(
            "fleet.yaml:{line}:18: an agent's audit trail needs eslogger, macOS 13"
        )),
        "{text}"
    );
}

#[test]
fn the_collector_parses_in_dash_and_bash_and_passes_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = example();
    for file in confine::installer::support_files(&plan).expect("support files") {
        let name = Path::new(&file.path).file_name().expect("name").to_owned();
        fs::write(dir.path().join(name), &file.contents).expect("write");
    }
    for shell in [apple_sh(), DASH, BASH_POSIX] {
        let out = Command::new(shell[0])
            .args(&shell[1..])
            .args(["-n", "audit-collector"])
            .current_dir(dir.path())
            .output()
            .expect("shell");
        assert!(out.status.success(), "{shell:?}: {}", output_text(&out));
    }
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-x", "audit-collector"])
        .current_dir(dir.path())
        .output()
        .expect("shellcheck");
    assert!(out.status.success(), "shellcheck:\n{}", output_text(&out));
    let _ = fs::metadata(dir.path().join("audit-collector"))
        .expect("written")
        .mode();
}
