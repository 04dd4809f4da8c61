//! The contract every subcommand keeps (docs/cli.md): exit status 0 success, 1 error, 2 usage error;
//! `-` for stdin or stdout; unset variables named as unset; man pages for every command they name;
//! progress and Ctrl-C; one range for IDs in the schema and the validator. (manifest.json's
//! `format_version`: cli.rs.)

use std::path::Path;

use crate::util::{confine, example_spec, stderr, write};

/// One call of a subcommand and the exit status docs/cli.md's table promises for it.
struct Case {
    args: &'static [&'static str],
    stdin: &'static str,
    code: i32,
}

const fn case(args: &'static [&'static str], code: i32) -> Case {
    Case {
        args,
        stdin: "",
        code,
    }
}

/// Per subcommand: a success where one runs offline, an error (exit 1: bad or missing input) and a
/// usage error (exit 2: arguments clap or confine refuses). Run in a folder holding `fleet.yaml` (the
/// example), `nomdm.yaml` (the example, which has no `mdm` section) and a file `notes.md`.
fn cases(subcommand: &str) -> Vec<Case> {
    match subcommand {
        "build" => vec![
            case(&["build", "--out", "dist"], 0),
            case(&["build", "missing.yaml"], 1),
            case(&["build", "--bogus"], 2),
            case(&["build", "--out", "notes.md"], 2),
        ],
        "lock" => vec![case(&["lock", "missing.yaml"], 1), case(&["lock", "--bogus"], 2)],
        "validate" => vec![
            case(&["validate"], 0),
            Case {
                args: &["validate", "-"],
                stdin: "fleet: [",
                code: 1,
            },
            case(&["validate", "missing.yaml"], 1),
            case(&["validate", "--bogus"], 2),
        ],
        "init" => vec![
            case(&["init", "-"], 0),
            case(&["init", "fleet.yaml"], 1),
            case(&["init", "a", "b"], 2),
        ],
        "schema" => vec![case(&["schema"], 0), case(&["schema", "extra"], 2)],
        "inspect" => vec![case(&["inspect", "missing.pkg"], 1), case(&["inspect"], 2)],
        "verify" => vec![case(&["verify", "notes.md"], 1), case(&["verify"], 2)],
        "push" => vec![
            case(&["push", "nomdm.yaml", "--dry-run"], 1),
            case(&["push", "--retry-delay", "0"], 2),
        ],
        "export" => vec![
            case(&["export", "inventory", "--out", "inventory"], 0),
            case(&["export", "munki", "--build", "missing"], 1),
            case(&["export", "bogus"], 2),
        ],
        "audit" => vec![
            case(&["audit", "-"], 0),
            case(&["audit", "missing.jsonl"], 1),
            case(&["audit"], 2),
        ],
        "identity" => vec![
            case(&["identity", "new", "--out", "ids"], 1),
            case(&["identity", "new"], 2),
        ],
        "completions" => vec![
            case(&["completions", "bash"], 0),
            case(&["completions", "tcsh"], 2),
        ],
        "man" => vec![case(&["man"], 0), case(&["man", "--bogus"], 2)],
        other => panic!("`confine {other}` has no exit-status cases: add them here and to docs/cli.md"),
    }
}

/// The subcommands `confine --help` lists (without clap's `help`).
fn subcommands() -> Vec<String> {
    let help = confine().arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands = text
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .expect("the list");
    commands
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_exits_0_1_or_2_as_the_table_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", example_spec());
    write(dir.path(), "nomdm.yaml", example_spec());
    write(dir.path(), "notes.md", "my notes\n");
    let listed = subcommands();
    assert!(listed.len() >= 12, "{listed:?}");
    for subcommand in &listed {
        for case in cases(subcommand) {
            let output = confine()
                .current_dir(dir.path())
                .args(case.args)
                .env_remove("CONFINE_IDENTITY_PASSWORD")
                .write_stdin(case.stdin)
                .output()
                .expect("runs");
            assert_eq!(
                output.status.code(),
                Some(case.code),
                "confine {}: {}",
                case.args.join(" "),
                stderr(&output)
            );
        }
    }
    let table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).expect("docs/cli.md");
    for subcommand in &listed {
        assert!(
            table.contains(&format!("`confine {subcommand}")),
            "docs/cli.md does not mention `confine {subcommand}`"
        );
    }
}

#[test]
fn init_dash_prints_the_example_and_a_missing_folder_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = confine()
        .current_dir(dir.path())
        .args(["init", "-"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), example_spec());
    assert!(!dir.path().join("-").exists());

    let output = confine()
        .current_dir(dir.path())
        .args(["init", "newdir/fleet.yaml"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("there is no folder newdir"), "{err}");
    assert!(!err.contains("existing file"), "{err}");
}

#[test]
fn an_unreadable_spec_is_named_in_the_json_report() {
    let output = confine()
        .args(["build", "missing.yaml", "--json"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["spec"], "missing.yaml");
}

#[test]
fn an_unset_password_variable_is_named_as_unset() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", example_spec());
    write(dir.path(), "id.p12", "not read: the password is missing first");
    let output = confine()
        .current_dir(dir.path())
        .args(["build", "--identity", "id.p12", "--out", "dist"])
        .env_remove("CONFINE_IDENTITY_PASSWORD")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("CONFINE_IDENTITY_PASSWORD is not set"), "{err}");
    assert!(!dir.path().join("dist").exists());
}

#[test]
fn push_without_an_mdm_section_says_so_in_plain_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(dir.path(), "fleet.yaml", example_spec());
    let output = confine().arg("push").arg(&spec).output().expect("runs");
    let err = stderr(&output);
    assert!(err.contains("has no `mdm` section"), "{err}");
    assert!(!err.contains("no an"), "{err}");
}

/// Every `confine-<command>(1)` a page refers to, in `page`.
fn referenced_pages(page: &str) -> Vec<String> {
    page.split("confine\\-")
        .skip(1)
        .filter_map(|rest| rest.split_once("(1)").map(|(name, _)| name.replace("\\-", "-")))
        .filter(|name| !name.contains(char::is_whitespace))
        .map(|name| format!("confine-{name}.1"))
        .collect()
}

#[test]
fn man_writes_a_page_for_every_command_a_page_refers_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    confine()
        .arg("man")
        .arg("--out")
        .arg(dir.path())
        .assert()
        .success();
    let pages = |folder: &Path| -> Vec<String> {
        std::fs::read_dir(folder)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let written = pages(dir.path());
    assert!(written.contains(&"confine.1".to_owned()), "{written:?}");
    assert!(written.contains(&"confine-build.1".to_owned()), "{written:?}");
    for page in &written {
        let text = std::fs::read_to_string(dir.path().join(page)).expect("page");
        for referenced in referenced_pages(&text) {
            assert!(
                written.contains(&referenced),
                "{page} refers to {referenced}, which was not written"
            );
        }
    }
    let stdout = confine().arg("man").output().expect("runs");
    assert!(!String::from_utf8_lossy(&stdout.stdout).contains("confine\\-help"));
}

/// Ctrl-C while `confine lock` waits for npm. npm here is a stand-in that only records its pid and sleeps:
/// what is tested is confine's handling of its child and its temporary folder, not npm's answers (the
/// real npm resolves in vendored.rs).
#[test]
fn ctrl_c_during_lock_leaves_no_temp_folder_lockfile_or_npm() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    write(dir.path(), "fleet.yaml", example_spec());
    let pid_file = dir.path().join("npm.pid");
    let npm = write(
        dir.path(),
        "slow-npm",
        &format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 60\n", pid_file.display()),
    );
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lock = std::process::Command::new(env!("CARGO_BIN_EXE_confine"))
        .args(["lock", "fleet.yaml"])
        .current_dir(dir.path())
        .env("CONFINE_NPM", &npm)
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let waited = (0..300).find(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.trim().is_empty())
    });
    assert!(waited.is_some(), "the stand-in npm never started");
    let npm_pid = std::fs::read_to_string(&pid_file).expect("pid").trim().to_owned();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &lock.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = lock.wait_with_output().expect("waits");
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted"), "{}", stderr(&output));
    assert!(
        !Path::new(&format!("/proc/{npm_pid}")).exists(),
        "npm ({npm_pid}) is still there"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("ls").collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert!(!dir.path().join("fleet.lock").exists());
}

/// `confine ARGS` under `script(1)`, so stderr is a terminal: everything it printed.
fn on_a_terminal(dir: &Path, args: &str) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_confine"));
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("script (bsdutils) runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn progress_is_shown_on_a_terminal_only_and_never_with_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shown = on_a_terminal(dir.path(), "build --example --out a");
    assert!(
        shown.contains("done: writing com.halfday.agents's Payload in"),
        "{shown}"
    );

    let json = on_a_terminal(dir.path(), "build --example --out b --json");
    assert!(!json.contains("Payload"), "{json}");
    assert!(!json.contains("done:"), "{json}");

    let piped = confine()
        .current_dir(dir.path())
        .args(["build", "--example", "--out", "c"])
        .output()
        .expect("runs");
    assert!(!stderr(&piped).contains("done:"), "{}", stderr(&piped));
}

/// The schema's range for UIDs and GIDs is the validator's own (one constant generates both): each bound
/// the schema gives is accepted by `validate`, and one step beyond it is refused.
#[test]
fn the_schema_and_the_validator_share_the_id_range() {
    let schema: serde_json::Value =
        serde_json::from_slice(&confine().arg("schema").output().expect("runs").stdout).expect("JSON");
    let definitions = &schema["definitions"];
    let range = |definition: &str, field: &str| {
        let property = &definitions[definition]["properties"][field];
        let bound = |name: &str| {
            property[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{definition}.{field} has no {name}"))
        };
        (bound("minimum"), bound("maximum"))
    };
    let (min, max) = range("Agent", "uid");
    assert_eq!(range("Group", "gid"), (min, max));
    assert_eq!(range("PrimaryGroup", "gid"), (min, max));
    let dir = tempfile::tempdir().expect("tempdir");
    for (uid, valid) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        let text = crate::util::example_with("uid: 1051 ", &format!("uid: {uid} "));
        let spec = write(dir.path(), "fleet.yaml", &text);
        let output = confine().arg("validate").arg(&spec).output().expect("runs");
        assert_eq!(output.status.success(), valid, "uid {uid}: {}", stderr(&output));
    }
}
