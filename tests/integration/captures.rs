//! Real macOS output through the package scripts' own parsers. Each case takes lines of a capture in
//! ../shared/macos-captures (verbatim output of a real Mac, sources in PROVENANCE.md), has a stub of the
//! tool print exactly those bytes on the stream and with the exit status the capture records, runs a
//! function of the shipped scripts (lib.sh, egress.sh, pre- and postinstall without their `main`) under
//! Apple's bash 3.2 with that stub first on PATH, and checks what the function concluded. A script that
//! expects a format no Mac prints fails here, whatever the simulated Mac's fakes say.

use std::fs;
use std::path::Path;
use std::process::Command;

use confine::installer;

use crate::sim::*;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/macos-captures");

/// Where the stub writes the capture.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}
use Stream::{Stderr, Stdout};

/// One capture fed to one parser.
struct Case {
    capture: &'static str,
    /// 1-based line numbers to keep (empty: the whole capture), as the tool prints them for the narrower
    /// question the script asks (one attribute of a record, one listener of a port).
    lines: &'static [usize],
    tool: &'static str,
    stream: Stream,
    status: i32,
    /// Shell run after the scripts' functions are defined; its standard output is compared.
    snippet: &'static str,
    expected: &'static str,
}

const fn case(
    capture: &'static str,
    lines: &'static [usize],
    tool: &'static str,
    (stream, status): (Stream, i32),
    snippet: &'static str,
    expected: &'static str,
) -> Case {
    Case {
        capture,
        lines,
        tool,
        stream,
        status,
        snippet,
        expected,
    }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // ds_get: one-line, two-line and dsAttrTypeNative: forms, a missing record and a missing key.
    case("dscl-read-ishidden--01.txt", &[], "dscl", (Stdout, 0), r#"ds_get /Users/a IsHidden && echo "$REPLY""#, "1\n"),
    case("dscl-read-group-sharepoint--01.txt", &[1], "dscl", (Stdout, 0), r#"ds_get /Groups/g IsHidden && echo "$REPLY""#, "1\n"),
    case("dscl-read-group-sharepoint--01.txt", &[7, 8], "dscl", (Stdout, 0), r#"ds_get /Groups/g RealName && echo "$REPLY""#, "Avery Quinn\u{2019}s Public Folder\n"),
    case("dscl-read-user-full--01.txt", &[17, 18], "dscl", (Stdout, 0), r#"ds_get /Users/u RealName && echo "$REPLY""#, "User One\n"),
    case("dscl-read-user-full--01.txt", &[16], "dscl", (Stdout, 0), r#"ds_get /Users/u PrimaryGroupID && echo "$REPLY""#, "20\n"),
    case("dscl-read-group-groupmembership--02.txt", &[], "dscl", (Stdout, 0), r#"ds_get /Groups/admin GroupMembership && echo "$REPLY""#, "root dutov _mbsetupuser\n"),
    case("dscl-read-user-attr--01.txt", &[2], "dscl", (Stdout, 0), r#"ds_get /Users/u UniqueID && echo "$REPLY""#, "501\n"),
    case("dscl-read-record-not-found--01.txt", &[], "dscl", (Stderr, 56), "ds_get /Users/a UniqueID || echo absent", "absent\n"),
    // The stream of "No such key" is not settled by a capture: either way it is a missing attribute.
    case("dscl-read-missing-key--01.txt", &[], "dscl", (Stderr, 0), "ds_get /Users/root AuthenticationAuthority || echo absent", "absent\n"),
    case("dscl-read-missing-key--01.txt", &[], "dscl", (Stdout, 0), "ds_get /Users/root AuthenticationAuthority || echo absent", "absent\n"),
    // check_id reads `dscl . -list /Users UniqueID` (names padded to byte 25).
    case("dscl-list-users-uniqueid--03.txt", &[], "dscl", (Stdout, 0), "(check_id Users UniqueID newagent 360 user) 2>&1 || :", "confine: ERROR: ID 360 of user 'newagent' already belongs to user '_nixbld10'; nothing was changed\n"),
    // Remote Login off or for all users: there is no com.apple.access_ssh record.
    case("dscl-read-record-not-found--01.txt", &[], "dscl", (Stderr, 56), "not_in_remote_login && echo pass", "pass\n"),
    // Mode checks: "+" (ACL) after the permissions of every home.
    case("ls-la-home-acl--01.txt", &[3], "ls", (Stdout, 0), "file_info /Users/m; mode_of /Users/m", "drwxr-x--- michaelrinebold staff\n750\n"),
    case("ls-lde-acl--01.txt", &[1], "ls", (Stdout, 0), "file_info /Users/u/Movies", "drwx------ username staff\n"),
    // launchctl print: the PID of a running job; none for a job that does not run or is not loaded.
    case("launchctl-print-system-daemon--01.txt", &[], "launchctl", (Stdout, 0), "daemon_pid org.nixos.nix-daemon", "383\n"),
    case("launchctl-print-system-daemon--03.txt", &[], "launchctl", (Stdout, 0), "daemon_pid x", "893\n"),
    case("launchctl-print-system-daemon--02.txt", &[], "launchctl", (Stdout, 0), "daemon_pid x || echo stopped", "stopped\n"),
    case("launchctl-print-system-daemon--04.txt", &[], "launchctl", (Stdout, 0), "daemon_pid x || echo stopped", "stopped\n"),
    case("launchctl-print-missing--01.txt", &[], "launchctl", (Stderr, 113), "daemon_loaded x || echo unloaded; daemon_pid x || echo stopped", "unloaded\nstopped\n"),
    // pfctl -E: the reference token.
    case("pfctl-vvv-f-E--01.txt", &[], "pfctl", (Stdout, 0), r#"T=$PROBE_DIR; EGRESS_STATE_DIR=; egress_enable >/dev/null; cat "$T/pf-token""#, "18446743525445205896\n"),
    // pfctl -s rules: Apple's stock main ruleset hooks com.apple/* (the ALTQ lines are its stderr).
    case("pfctl-s-rules--01.txt", &[3, 4], "pfctl", (Stdout, 0), "apple_anchor_hooked && echo hooked", "hooked\n"),
    case("pfctl-s-rules--01.txt", &[3], "pfctl", (Stdout, 0), "apple_anchor_hooked || echo unhooked", "unhooked\n"),
    // scutil --dns: the resolvers, without a scoped link-local one.
    case("scutil-dns--01.txt", &[], "scutil", (Stdout, 0), "egress_resolvers", "100.100.100.100\n2a02:6b67:ea05:9200::1\n192.168.50.1\n"),
    // lsof: the gateway's listeners, loopback or not.
    case("lsof-nP-iTCP-listen--01.txt", &[1, 6], "lsof", (Stdout, 0), "A_PORT=11434; loopback_only && echo loopback", "loopback\n"),
    case("lsof-nP-iTCP-listen--01.txt", &[1, 8], "lsof", (Stdout, 0), "A_PORT=3000; loopback_only || echo exposed", "exposed\n"),
    case("lsof-nP-iTCP-listen--01.txt", &[1, 2, 3], "lsof", (Stdout, 0), "A_PORT=61119; loopback_only || echo exposed", "exposed\n"),
    // sysadminctl -secureTokenStatus (stderr, with an NSLog prefix, naming the RealName).
    case("sysadminctl-securetokenstatus--02.txt", &[2], "sysadminctl", (Stderr, 0), "A_NAME=op; no_secure_token && echo none", "none\n"),
    case("sysadminctl-securetokenstatus--02.txt", &[1], "sysadminctl", (Stderr, 0), "A_NAME=op; no_secure_token || echo token", "token\n"),
    case("sysadminctl-securetokenstatus--01.txt", &[1], "sysadminctl", (Stderr, 0), "A_NAME=ec2-user; no_secure_token && echo none", "none\n"),
    // sw_vers: the macOS version preinstall compares with the fleet's minimum.
    case("sw_vers--01.txt", &[], "sw_vers", (Stdout, 0), "FLEET_MINIMUM_MACOS=26.6.3; (require_macos) 2>&1 || :", "confine: ERROR: macOS 26.6.2 is older than 26.6.3, the oldest this fleet supports\n"),
    case("sw_vers--02.txt", &[], "sw_vers", (Stdout, 0), "FLEET_MINIMUM_MACOS=14; require_macos && echo supported", "supported\n"),
    // dsmemberutil checkmembership.
    case("dsmemberutil-checkmembership-notmember--01.txt", &[], "dsmemberutil", (Stdout, 0), "A_NAME=a; not_member admin && echo out", "out\n"),
    case("dsmemberutil-checkmembership-member--01.txt", &[], "dsmemberutil", (Stdout, 0), "A_NAME=a; not_member admin || echo in", "in\n"),
];

#[test]
fn every_capture_a_script_parses_reads_as_the_script_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scripts = dir.path().join("scripts");
    fs::create_dir(&scripts).expect("scripts dir");
    for s in installer::scripts(&example()).expect("scripts") {
        let contents = String::from_utf8(s.contents).expect("utf-8 script");
        let contents = match s.name.as_str() {
            // Its functions, without running it.
            "preinstall" | "postinstall" => contents
                .strip_suffix("main \"$@\"\n")
                .expect("the script ends by calling main")
                .to_owned(),
            _ => contents,
        };
        fs::write(scripts.join(&s.name), contents).expect("script");
    }
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let probe = dir.path().join(format!("probe-{i}"));
        fs::create_dir(&probe).expect("probe dir");
        let out = run_case(case, &scripts, &probe);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout != case.expected {
            failures.push(format!(
                "{} lines {:?} through `{}`: expected {:?}, got {:?} (stderr: {})",
                case.capture,
                case.lines,
                case.snippet,
                case.expected,
                stdout,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// The capture's chosen lines, byte for byte (each with its newline).
fn capture_lines(case: &Case) -> Vec<u8> {
    let path = Path::new(CAPTURES).join(case.capture);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the repository is cloned beside shared/)",
            path.display()
        )
    });
    if case.lines.is_empty() {
        return text.into_bytes();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    case.lines
        .iter()
        .map(|&n| {
            *lines
                .get(n - 1)
                .unwrap_or_else(|| panic!("{} has no line {n}", case.capture))
        })
        .collect::<String>()
        .into_bytes()
}

fn run_case(case: &Case, scripts: &Path, probe: &Path) -> std::process::Output {
    let bin = probe.join("bin");
    fs::create_dir(&bin).expect("stub dir");
    fs::write(probe.join("capture"), capture_lines(case)).expect("capture");
    let redirect = match case.stream {
        Stdout => "",
        Stderr => " >&2",
    };
    let stub = format!(
        "#!/bin/sh\ncat '{}'{redirect}\nexit {}\n",
        probe.join("capture").display(),
        case.status
    );
    fs::write(bin.join(case.tool), stub).expect("stub");
    // The retry loops wait a second between tries: not here.
    fs::write(bin.join("sleep"), "#!/bin/sh\n").expect("sleep stub");
    for tool in [case.tool, "sleep"] {
        set_mode(&bin.join(tool), 0o755);
    }
    let driver = scripts.join(format!("probe-{}", probe.file_name().unwrap().to_string_lossy()));
    fs::write(
        &driver,
        format!(
            "dir=$(dirname \"$0\")\n. \"$dir/postinstall\"\n. \"$dir/preinstall\"\n{}\n",
            case.snippet
        ),
    )
    .expect("driver");
    Command::new(apple_sh()[0])
        .arg(&driver)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CONFINE_SIM_BIN", &bin)
        .env("PROBE_DIR", probe)
        .output()
        .expect("runs Apple's sh")
}

/// The simulated Mac's fakes answer with the captures' own bytes, where the scripts read them.
#[test]
fn the_fakes_print_what_real_macs_print() {
    let mac = Mac::new(apple_sh());
    mac.write_ds("Users", "hexagent", "IsHidden", "1");
    mac.write_ds("Users", "hexagent", "RealName", "Tuist Runner Operator");
    let whole = |capture: &str| fs::read_to_string(Path::new(CAPTURES).join(capture)).expect("capture");
    let line = |capture: &str, n: usize| {
        whole(capture)
            .split_inclusive('\n')
            .nth(n - 1)
            .expect("line")
            .to_owned()
    };
    // (fake command line, exit status, stdout, stderr)
    let cases: &[(&str, i32, String, String)] = &[
        (
            "dscl . -read /Users/hexagent IsHidden",
            0,
            whole("dscl-read-ishidden--01.txt"),
            String::new(),
        ),
        (
            "dscl . -read /Users/nobody-here UniqueID",
            56,
            String::new(),
            whole("dscl-read-record-not-found--01.txt"),
        ),
        (
            "dsmemberutil checkmembership -U alice -G admin",
            0,
            whole("dsmemberutil-checkmembership-member--01.txt"),
            String::new(),
        ),
        (
            "dsmemberutil checkmembership -U hexagent -G admin",
            0,
            whole("dsmemberutil-checkmembership-notmember--01.txt"),
            String::new(),
        ),
        (
            "launchctl print system/systems.determinate.nix-daemon",
            113,
            String::new(),
            whole("launchctl-print-missing--01.txt"),
        ),
        (
            "launchctl bootout system/dev.tetherd.nonexistent.zzz",
            3,
            String::new(),
            whole("launchctl-bootout-not-loaded--01.txt"),
        ),
        (
            "sysadminctl -secureTokenStatus hexagent",
            0,
            String::new(),
            line("sysadminctl-securetokenstatus--02.txt", 2),
        ),
        (
            "echo 26.6.2 >\"$SIM_STATE/macos-version\"; sw_vers",
            0,
            whole("sw_vers--01.txt"),
            String::new(),
        ),
    ];
    for (command, status, stdout, stderr) in cases {
        let out = Command::new("sh")
            .args(["-c", command])
            .env("PATH", format!("{}:/usr/bin:/bin", mac.sim.join("bin").display()))
            .env("SIM_LIB", mac.sim.join("simlib.sh"))
            .env("SIM_STATE", &mac.state)
            .output()
            .expect("fake");
        assert_eq!(
            out.status.code(),
            Some(*status),
            "{command}: {}",
            output_text(&out)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), *stdout, "{command}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *stderr, "{command}");
    }
}
