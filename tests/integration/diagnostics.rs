use std::path::Path;
use std::process::Command as StdCommand;

use crate::util::{confine, stderr, write};

/// A small valid spec the ten mistakes are made in (not the example: its comments would crowd the
/// snapshots).
const SPEC: &str = "version: 1
fleet:
  name: acme-agents
  organization: Acme
  identifier: com.acme.agents
  release: 1.0.0
groups:
  - name: agents
    gid: 1050
    members: [hexagent]
agents:
  - name: hexagent
    full_name: Hex Agent
    uid: 1051
    groups: [agents]
    workspace:
      mode: \"0770\"
    openclaw:
      version: 2026.9.6
    gateway:
      port: 18789
";

/// `SPEC` with `from` replaced by `to`; `from` must occur exactly once.
fn spec_with(from: &str, to: &str) -> String {
    assert_eq!(SPEC.matches(from).count(), 1, "anchor {from:?}");
    SPEC.replacen(from, to, 1)
}

/// `SPEC` with a second agent appended.
fn spec_with_agent(name: &str, uid: u32, port: u32) -> String {
    format!(
        "{SPEC}  - name: {name}\n    full_name: Second\n    uid: {uid}\n    openclaw: {{ version: 2026.9.6 }}\n    gateway: {{ port: {port} }}\n"
    )
}

/// `confine validate fleet.yaml` on `text`: exit 1, and the diagnostics on stderr.
fn diagnostics(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", text);
    let output = confine()
        .current_dir(dir.path())
        .args(["validate", "fleet.yaml"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    for line in err
        .lines()
        .filter(|l| !l.starts_with([' ', '|']) && !l.is_empty())
    {
        assert!(
            line.starts_with("error: ") || line.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "every problem starts with `error:`: {line:?}\n{err}"
        );
    }
    assert!(err.contains("--> fleet.yaml:"), "location:\n{err}");
    assert!(err.contains('^'), "caret:\n{err}");
    for jargon in [
        "while parsing",
        "invalid u32",
        "expected one of",
        "did not find",
        "\\\"",
    ] {
        assert!(!err.contains(jargon), "parser jargon {jargon:?}:\n{err}");
    }
    err
}

#[test]
fn the_base_spec_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", SPEC);
    confine()
        .current_dir(dir.path())
        .args(["validate", "fleet.yaml"])
        .assert()
        .success();
}

#[test]
fn typo_in_a_key() {
    insta::assert_snapshot!(diagnostics(&spec_with("  release: 1.0.0", "  relase: 1.0.0")));
}

#[test]
fn wrong_indentation() {
    insta::assert_snapshot!(diagnostics(&spec_with(
        "    full_name: Hex Agent",
        "   full_name: Hex Agent"
    )));
}

#[test]
fn a_tab() {
    insta::assert_snapshot!(diagnostics(&spec_with("    uid: 1051", "\tuid: 1051")));
}

#[test]
fn a_string_where_a_number_belongs() {
    insta::assert_snapshot!(diagnostics(&spec_with("      port: 18789", "      port: http")));
}

#[test]
fn an_unquoted_octal_mode() {
    insta::assert_snapshot!(diagnostics(&spec_with("mode: \"0770\"", "mode: 0770")));
}

#[test]
fn a_duplicate_agent() {
    insta::assert_snapshot!(diagnostics(&spec_with_agent("hexagent", 1052, 18790)));
}

#[test]
fn an_unknown_group_member() {
    insta::assert_snapshot!(diagnostics(&spec_with(
        "members: [hexagent]",
        "members: [hexagnet]"
    )));
}

#[test]
fn a_port_used_twice() {
    insta::assert_snapshot!(diagnostics(&spec_with_agent("otheragent", 1052, 18789)));
}

#[test]
fn a_missing_required_key() {
    insta::assert_snapshot!(diagnostics(&spec_with("  organization: Acme\n", "")));
}

#[test]
fn version_latest() {
    insta::assert_snapshot!(diagnostics(&spec_with("version: 2026.9.6", "version: latest")));
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = spec_with("members: [hexagent]", "members: [hexagnet]").replace("port: 18789", "port: 80");
    let err = diagnostics(&text);
    assert_eq!(err.matches("error: ").count(), 2, "{err}");
}

#[test]
fn did_you_mean_for_enum_values_and_groups() {
    let err = diagnostics(&spec_with("    groups: [agents]", "    groups: [agnets]"));
    assert!(err.contains("did you mean `agents`?"), "{err}");
    let err = diagnostics(&spec_with(
        "    gateway:\n",
        "    tools: { exec: { mode: alowlist } }\n    gateway:\n",
    ));
    assert!(err.contains("did you mean `allowlist`?"), "{err}");
}

/// `confine validate fleet.yaml` with a bad spec under a pseudo-terminal (util-linux `script`), so
/// `--color auto` sees a TTY.
fn on_a_terminal(dir: &Path, extra_env: &[(&str, &str)], args: &str) -> String {
    let binary = env!("CARGO_BIN_EXE_confine");
    let mut command = StdCommand::new("script");
    command.current_dir(dir).env_remove("NO_COLOR").args([
        "-qec",
        &format!("{binary} validate fleet.yaml {args}"),
        "/dev/null",
    ]);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let output = command.output().expect("script (util-linux) is installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "fleet.yaml",
        &spec_with("      port: 18789", "      port: http"),
    );
    let escape = "\x1b[";
    let tty = on_a_terminal(dir.path(), &[], "");
    assert!(
        tty.contains("error") && tty.contains(escape),
        "colour on a terminal:\n{tty}"
    );
    let no_color = on_a_terminal(dir.path(), &[("NO_COLOR", "1")], "");
    assert!(
        no_color.contains("error") && !no_color.contains(escape),
        "NO_COLOR:\n{no_color}"
    );
    let never = on_a_terminal(dir.path(), &[], "--color never");
    assert!(!never.contains(escape), "--color never:\n{never}");
    let piped = confine()
        .current_dir(dir.path())
        .args(["validate", "fleet.yaml"])
        .env_remove("NO_COLOR")
        .output()
        .expect("runs");
    assert!(!stderr(&piped).contains(escape), "no colour into a pipe");
    let always = confine()
        .current_dir(dir.path())
        .args(["validate", "fleet.yaml", "--color", "always"])
        .output()
        .expect("runs");
    assert!(stderr(&always).contains(escape), "--color always");
}

#[test]
fn every_unknown_key_is_reported_with_the_semantic_problems() {
    let text = spec_with("  release: 1.0.0", "  relase: 1.0.0")
        .replace("      port: 18789", "      prot: 18789\n      port: 80")
        .replace("    uid: 1051", "    uid: 1051\n    colour: blue");
    let err = diagnostics(&text);
    let titles: Vec<_> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(
        titles,
        [
            "error: unknown key `relase`",
            "error: unknown key `colour`",
            "error: unknown key `prot`",
            "error: port 80 is out of range",
        ],
        "{err}"
    );
}

#[test]
fn every_wrong_type_is_reported_at_once() {
    let text = spec_with("    uid: 1051", "    uid: eleven")
        .replace("      port: 18789", "      port: http")
        .replace("    gid: 1050", "    gid: 1050\n    include_local_admins: maybe");
    let err = diagnostics(&text);
    let titles: Vec<_> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(
        titles,
        [
            "error: `include_local_admins` must be `true` or `false`, not `maybe`",
            "error: `uid` must be a whole number from 1000 to 60000, not `eleven`",
            "error: `port` must be a whole number from 1024 to 65535, not `http`",
        ],
        "{err}"
    );
}
