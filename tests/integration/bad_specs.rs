use crate::util::{confine, example_with, stderr, write};

/// Runs `confine build` on a bad spec and checks the contract: exit 1, a `file:line:column:` message,
/// no output folder, no panic. Returns stderr for case-specific checks.
fn rejected(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(dir.path(), name, text);
    let out = dir.path().join("dist");
    let output = confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{name}: exit 1 expected, stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{name} panicked:\n{err}");
    let located = format!("{}:", spec.display());
    let line_col = err.lines().any(|l| {
        l.split_once(&located).is_some_and(|(_, rest)| {
            let mut parts = rest.splitn(3, ':');
            parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
                && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
        })
    });
    assert!(line_col, "{name}: no file:line:column in:\n{err}");
    assert!(!out.exists(), "{name}: an output folder appeared");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{name}: staging left behind: {leftovers:?}");
    err
}

#[test]
fn syntax_error() {
    let err = rejected("syntax.yaml", "version: 1\nfleet:\n  name: [unclosed\n");
    assert!(err.contains("syntax.yaml:3:"), "{err}");
}

#[test]
fn unknown_key() {
    let err = rejected(
        "unknown.yaml",
        &example_with("  release: 1.0.0 ", "  relase: 1.0.0 "),
    );
    assert!(err.contains("unknown key `relase`"), "{err}");
    assert!(err.contains("did you mean `release`?"), "{err}");
}

#[test]
fn wrong_type() {
    let err = rejected("type.yaml", &example_with("    uid: 1051 ", "    uid: eleven "));
    assert!(err.contains("eleven"), "{err}");
}

#[test]
fn duplicate_uid() {
    let second_agent = "\n  - name: otheragent\n    full_name: Other\n    uid: 1051\n    primary_group: { name: otheragent, gid: 1060 }\n    openclaw: { version: 2026.9.6 }\n    gateway: { port: 18790 }\n";
    let text = example_with("\nhardening:", &format!("{second_agent}\nhardening:"));
    let err = rejected("dup.yaml", &text);
    assert!(err.contains("duplicate UID 1051"), "{err}");
}

#[test]
fn dot_dot_in_a_path() {
    let err = rejected(
        "dotdot.yaml",
        &example_with(
            "path: /Users/Shared/hexagent-workspace",
            "path: /Users/Shared/../../etc",
        ),
    );
    assert!(err.contains("/Users/Shared/../../etc"), "{err}");
}

#[test]
fn user_name_with_shell_metacharacters() {
    let err = rejected(
        "meta.yaml",
        &example_with("  - name: hexagent ", "  - name: \"hex$(id);`x`\" "),
    );
    assert!(err.contains("not a portable account name"), "{err}");
}

#[test]
fn empty_file() {
    let err = rejected("empty.yaml", "");
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn yaml_alias_bomb() {
    let mut text =
        String::from("version: 1\nagents:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, next) in "abcdefghij".chars().zip("bcdefghijk".chars()) {
        text.push_str(&format!(
            "  - &{next} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    rejected("bomb.yaml", &text);
}

#[test]
fn ten_megabyte_file() {
    let mut text = example_with("version: 1", "version: 1");
    text.push_str(&format!("# {}\n", "x".repeat(10 * 1024 * 1024)));
    let err = rejected("big.yaml", &text);
    assert!(err.contains("at most"), "{err}");
}

#[test]
fn world_readable_workspace_and_secret_looking_environment() {
    let text = example_with("mode: \"0770\"", "mode: \"0775\"");
    let err = rejected("mode.yaml", &text);
    assert!(err.contains("every local user"), "{err}");
    let text = example_with(
        "    # launchd:\n",
        "    launchd:\n      environment: { GITHUB_TOKEN: abc }\n",
    );
    let err = rejected("env.yaml", &text);
    assert!(err.contains("looks like a secret"), "{err}");
}

#[test]
fn staff_is_never_a_primary_group() {
    let err = rejected(
        "staff.yaml",
        &example_with(
            "primary_group: { name: hexagent, gid: 1051 }",
            "primary_group: { name: staff, gid: 20 }",
        ),
    );
    assert!(err.contains("`staff` is a macOS system name"), "{err}");
    assert!(err.contains("GID 20 is outside the safe range"), "{err}");
}

#[test]
fn a_profile_setting_the_catalog_refuses_names_its_spec_line() {
    let text = example_with(
        "    restrictions: { enabled: true }",
        "    restrictions: { settings: { allowAirDrop: 0 } }",
    );
    let err = rejected("restrictions.yaml", &text);
    assert!(err.contains("expected <boolean>, found <integer> 0"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(dir.path(), "restrictions.yaml", &text);
    let output = confine().arg("validate").arg(&spec).output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let line = text
        .lines()
        .position(|l| l.contains("allowAirDrop: 0"))
        .expect("line")
        + 1;
    assert!(
        stderr(&output).contains(&format!("restrictions.yaml:{line}:")),
        "{}",
        stderr(&output)
    );
}
