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
    assert!(err.contains("larger than the limit of 1048576 bytes"), "{err}");
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

// Safety rules (issue 10): specs that would damage a Mac, refused with the line of the offending value.

/// The example with `lines` (indented for an agent's keys) added to agent `hexagent`.
fn agent_with(lines: &str) -> String {
    example_with(
        "    # home: /Users/hexagent       # the default\n",
        &format!("{lines}\n"),
    )
}

/// The example plus a second agent, `docbot`, with `extra` lines in its block.
fn second_agent(extra: &str) -> String {
    let agent = format!(
        "\n  - name: docbot\n    full_name: Doc Bot\n    uid: 1061\n    openclaw: {{ version: 2026.9.6 }}\n    gateway: {{ port: 18790 }}\n{extra}"
    );
    example_with("\nhardening:", &format!("{agent}\nhardening:"))
}

/// The example with a `package:` block.
fn with_package(package: &str) -> String {
    example_with("\nhardening:", &format!("\npackage:\n{package}\nhardening:"))
}

/// 1-based line of the line that is `needle`, else of the first line containing it.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l == needle)
        .or_else(|| text.lines().position(|l| l.contains(needle)))
        .unwrap_or_else(|| panic!("{needle:?} not in the spec"))
        + 1
}

/// `rejected`, and one diagnostic (an `error:` line and the lines under it) names the problem and points
/// at the line of `needle`.
fn rejected_at(name: &str, text: &str, needle: &str, message: &str) {
    let err = rejected(name, text);
    let line = line_of(text, needle);
    let located = err
        .split("\nerror: ")
        .any(|diagnostic| diagnostic.contains(message) && diagnostic.contains(&format!("{name}:{line}:")));
    assert!(located, "{name}: expected `{message}` at line {line}:\n{err}");
}

#[test]
fn homes_and_workspaces_in_system_places() {
    let system = [
        "/etc",
        "/System",
        "/Library",
        "/usr/local",
        "/Users/Shared",
        "/private/var/db/dslocal",
        "/Library/LaunchDaemons",
        "/Users",
        "/Users/alice",
        "/var/hexagent",
    ];
    for (i, place) in system.iter().enumerate() {
        let text = agent_with(&format!("    home: {place}"));
        rejected_at(&format!("home{i}.yaml"), &text, "    home:", "is not allowed");
        let text = example_with(
            "path: /Users/Shared/hexagent-workspace",
            &format!("path: {place}"),
        );
        rejected_at(&format!("ws{i}.yaml"), &text, "      path:", "is not allowed");
    }
}

#[test]
fn openclaw_prefix_outside_confines_root_owned_folder() {
    for (i, prefix) in [
        "/Users",
        "/usr/local",
        "/Users/Shared/hexagent-workspace/oc",
        "/Users/hexagent/oc",
        "/Library/Application Support/confine",
    ]
    .iter()
    .enumerate()
    {
        let text = example_with(
            "      install: npm ",
            &format!("      prefix: \"{prefix}\"\n      install: npm "),
        );
        rejected_at(&format!("prefix{i}.yaml"), &text, "prefix:", "OpenClaw prefix");
    }
}

#[test]
fn system_account_and_group_names() {
    for (i, name) in [
        "shared", "_www", "_sshd", "_mysql", "bin", "procmod", "guest", "root",
    ]
    .iter()
    .enumerate()
    {
        let text = second_agent("").replace("  - name: docbot", &format!("  - name: {name}"));
        rejected_at(
            &format!("agent{i}.yaml"),
            &text,
            &format!("  - name: {name}"),
            "macOS system name",
        );
    }
    for (i, name) in ["_lpadmin", "_appserveradm", "access_ssh", "wheel"]
        .iter()
        .enumerate()
    {
        let text = example_with("  - name: shared_agents", &format!("  - name: {name}"));
        rejected_at(
            &format!("group{i}.yaml"),
            &text,
            &format!("  - name: {name}"),
            "macOS system name",
        );
    }
}

#[test]
fn agents_that_overlap() {
    let text = second_agent("    home: /Users/hexagent\n");
    rejected_at(
        "samehome.yaml",
        &text,
        "    home: /Users/hexagent",
        "overlaps agent `hexagent`'s home",
    );
    let text = second_agent("    workspace: { path: /Users/Shared/hexagent-workspace }\n");
    rejected_at(
        "samews.yaml",
        &text,
        "    workspace: { path:",
        "overlaps agent `hexagent`'s workspace",
    );
    let text = second_agent("    workspace: { path: /Users/hexagent/shared }\n");
    rejected_at("wsinhome.yaml", &text, "    workspace: { path:", "is not allowed");
    // Homes that differ only in case: the second is refused as not the agent's own, and overlapping.
    let text = second_agent("    home: /Users/HEXAGENT\n");
    rejected_at(
        "casehome.yaml",
        &text,
        "    home: /Users/HEXAGENT",
        "overlaps agent `hexagent`'s home",
    );
    // A workspace in the dedicated root equal to another agent's home there.
    let text = second_agent("    home: /private/var/confine/halfday-agents/docbot\n").replace(
        "path: /Users/Shared/hexagent-workspace",
        "path: /private/var/confine/halfday-agents/docbot",
    );
    rejected_at(
        "wsishome.yaml",
        &text,
        "path: /private/var/confine/",
        "overlaps agent `docbot`'s home",
    );
}

#[test]
fn credential_names_that_collide_with_generated_files() {
    let cases = [
        (
            "- name: github_pat ",
            "- name: gateway-token ",
            "- name: gateway-token",
            "gateway token",
        ),
        (
            "- name: deploy_halfday ",
            "- name: config ",
            "- name: config",
            "taken by a file in `~/.ssh`",
        ),
        (
            "- name: deploy_halfday ",
            "- name: x\n          host: github.com\n        - name: x.pub ",
            "- name: x.pub",
            "taken by a file",
        ),
        (
            "- name: github_pat ",
            "- name: GitHub_PAT\n        - name: github_pat ",
            "- name: github_pat",
            "only in case",
        ),
    ];
    for (i, (from, to, needle, message)) in cases.iter().enumerate() {
        rejected_at(
            &format!("credential{i}.yaml"),
            &example_with(from, to),
            needle,
            message,
        );
    }
}

#[test]
fn launchd_labels_that_collide() {
    let text = agent_with("    launchd: { label: AI.OpenClaw.gateway }");
    rejected_at("openclaw.yaml", &text, "label: AI.OpenClaw", "OpenClaw's");
    let text = agent_with("    launchd: { label: com.apple.hexagent }");
    rejected_at("apple.yaml", &text, "label: com.apple", "Apple's");
    let text = second_agent("    launchd: { label: com.example.gateway }\n").replace(
        "    # launchd:\n",
        "    launchd: { label: COM.example.Gateway }\n",
    );
    rejected_at(
        "caselabel.yaml",
        &text,
        "label: com.example.gateway",
        "compared ignoring case",
    );
    // An explicit label equal to another agent's default fails validation, not the build.
    let text = second_agent("    launchd: { label: com.halfday.agents.hexagent.gateway }\n");
    rejected_at(
        "default.yaml",
        &text,
        "launchd: { label: com.halfday.agents.hexagent.gateway",
        "also agent `hexagent`'s label",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(dir.path(), "default.yaml", &text);
    let output = confine().arg("validate").arg(&spec).output().expect("runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn invisible_and_deceptive_text() {
    let cases = [
        (
            "  organization: Halfday ",
            "  organization: \u{200B} ",
            "zero-width",
        ),
        (
            "    full_name: Hex Agent",
            "    full_name: Hex \u{202E}tnegA",
            "bidirectional",
        ),
        (
            "  organization: Halfday ",
            "  organization: Half\u{2028}day ",
            "line or paragraph separator",
        ),
        (
            "  organization: Halfday ",
            "  organization: \"Half\\u200Bday\" ",
            "zero-width",
        ),
        ("  organization: Halfday ", "  organization: \u{3164} ", "filler"),
        (
            "  organization: Halfday ",
            "  organization: \"\\e[2J\" ",
            "control character",
        ),
        (
            "# yaml-language-server",
            "# \u{202E} yaml-language-server",
            "bidirectional",
        ),
        // A Cyrillic `е` that looks Latin, and a zero-width space, in a workspace path.
        (
            "path: /Users/Shared/hexagent-workspace",
            "path: /Users/Shar\u{435}d/hexagent-workspace",
            "look-alike scripts",
        ),
        (
            "path: /Users/Shared/hexagent-workspace",
            "path: /Users/Shared/hex\u{200B}agent-workspace",
            "zero-width",
        ),
    ];
    for (i, (from, to, message)) in cases.iter().enumerate() {
        let text = example_with(from, to);
        rejected_at(&format!("text{i}.yaml"), &text, to.trim(), message);
    }
    let text = example_with("  organization: Halfday ", "  organization: \"\u{a0}\u{3000}\" ");
    rejected_at("blank.yaml", &text, "  organization:", "empty");
}

#[test]
fn loose_yaml_typing() {
    let cases = [
        (
            "    uid: 1051 ",
            "    uid: \"1051\" ",
            "quoted text where a number goes",
        ),
        ("    uid: 1051 ", "    uid: 0x41B ", "not a plain decimal number"),
        ("    uid: 1051 ", "    uid: 1_051 ", "not a plain decimal number"),
        ("    uid: 1051 ", "    uid: +1051 ", "not a plain decimal number"),
        (
            "  lock_human_homes: true",
            "  lock_human_homes: yes",
            "not a boolean",
        ),
        (
            "  lock_human_homes: true",
            "  lock_human_homes: on",
            "not a boolean",
        ),
        (
            "  lock_human_homes: true",
            "  lock_human_homes: True",
            "not a boolean",
        ),
        (
            "  lock_human_homes: true",
            "  lock_human_homes: \"true\"",
            "quoted text",
        ),
        (
            "  organization: Halfday ",
            "  organization: !!python/object Halfday ",
            "YAML tags are not allowed",
        ),
        (
            "  organization: Halfday ",
            "  organization: !!str Halfday ",
            "YAML tags are not allowed",
        ),
        (
            "    restrictions: { enabled: true }",
            "    restrictions: { settings: { allowAirDrop: off } }",
            "reads as a boolean",
        ),
        (
            "    restrictions: { enabled: true }",
            "    restrictions: { settings: { maxGracePeriod: 0x10 } }",
            "in a form YAML tools read differently",
        ),
    ];
    for (i, (from, to, message)) in cases.iter().enumerate() {
        let text = example_with(from, to);
        rejected_at(&format!("type{i}.yaml"), &text, to.trim(), message);
    }
    for (i, umask) in ["0777", "0107", "0407"].iter().enumerate() {
        let text = agent_with(&format!("    launchd: {{ umask: \"{umask}\" }}"));
        rejected_at(
            &format!("umask{i}.yaml"),
            &text,
            "umask:",
            "the agent's own permissions",
        );
    }
}

#[test]
fn extra_payload_and_certificate_sources() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let key = write(
        fixtures.path(),
        "deploy",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let tree = fixtures.path().join("tool");
    std::fs::create_dir_all(tree.join("conf")).expect("mkdir");
    write(
        &tree.join("conf"),
        "server.pem",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
    );
    let cases = [
        ("/etc/shadow".to_owned(), "credential store"),
        ("/etc".to_owned(), "credential store"),
        ("/dev/zero".to_owned(), "pseudo file system"),
        ("/proc/self/environ".to_owned(), "pseudo file system"),
        ("/".to_owned(), "pseudo file system"),
        (key.display().to_string(), "looks like a private key"),
        (tree.display().to_string(), "looks like a private key"),
        ("missing/file".to_owned(), "cannot read"),
    ];
    for (i, (source, message)) in cases.iter().enumerate() {
        let text = with_package(&format!(
            "  extra_payload:\n    - {{ source: \"{source}\", destination: /usr/local/libexec/x }}"
        ));
        rejected_at(&format!("source{i}.yaml"), &text, "source:", message);
    }
    for (i, (cert, message)) in [
        ("/dev/zero", "pseudo file system"),
        ("/etc/shadow", "credential store"),
    ]
    .iter()
    .enumerate()
    {
        let text = example_with(
            "    # certificate: { path: fleet-ca.pem }",
            &format!("    certificate: {{ path: \"{cert}\" }}"),
        );
        rejected_at(&format!("cert{i}.yaml"), &text, "certificate:", message);
    }
}

#[test]
fn a_secret_payload_is_owner_only_and_needs_embed_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let fixtures = tempfile::tempdir().expect("tempdir");
    let key = write(
        fixtures.path(),
        "deploy",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let text = with_package(&format!(
        "  extra_payload:\n    - {{ source: \"{}\", destination: /usr/local/etc/deploy, secret: true }}",
        key.display()
    ));
    rejected_at("groupreadable.yaml", &text, "source:", "others can read it");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = rejected("noflag.yaml", &text);
    assert!(err.contains("only with --embed-secrets"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(dir.path(), "fleet.yaml", &text);
    confine()
        .arg("build")
        .arg(&spec)
        .arg("--embed-secrets")
        .arg("--out")
        .arg(dir.path().join("dist"))
        .assert()
        .success();
}

#[test]
fn extra_payload_destinations_that_clash() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let file = write(fixtures.path(), "tool", "#!/bin/sh\n");
    let cases = [
        (
            "/Library/LaunchDaemons/com.halfday.agents.hexagent.gateway.plist",
            "plist of the daemon",
        ),
        ("/Users/hexagent/.zshrc", "can write"),
        ("/Users/Shared/hexagent-workspace/x", "can write"),
        ("/usr", "system folder"),
        ("/System/Library/x", "nothing may be installed"),
        (
            "/Library/Application Support/confine/halfday-agents/uninstall",
            "confine's own folder",
        ),
        // Spelled as APFS compares them: ſ folds to s, case does not count.
        ("/U\u{17f}ers/hexagent/.zshrc", "can write"),
        ("/USERS/HEXAGENT/.ssh/authorized_keys", "can write"),
        // A system folder, and folders every user can write (an agent could plant a link there).
        ("/Users/Shared", "system folder"),
        ("/Users/Shared/tools/x", "every user, the agents too, can write"),
        ("/tmp/tool", "every user, the agents too, can write"),
        (
            "/var/db/dslocal/nodes/Default/users/x.plist",
            "nothing may be installed",
        ),
        ("/\u{17f}ystem/Library/x", "nothing may be installed"),
    ];
    for (i, (dest, message)) in cases.iter().enumerate() {
        let text = with_package(&format!(
            "  extra_payload:\n    - {{ source: \"{}\", destination: \"{dest}\" }}",
            file.display()
        ));
        rejected_at(&format!("dest{i}.yaml"), &text, "destination:", message);
    }
    let text = with_package(&format!(
        "  extra_payload:\n    - {{ source: \"{0}\", destination: /usr/local/bin/tool }}\n    - {{ source: \"{0}\", destination: /usr/local/bin/TOOL }}",
        file.display()
    ));
    rejected_at("dupdest.yaml", &text, "/usr/local/bin/TOOL", "also");
    let text = with_package(&format!(
        "  extra_payload:\n    - {{ source: \"{0}\", destination: /private/etc/tool.conf }}\n    - {{ source: \"{0}\", destination: /etc/tool.conf }}",
        file.display()
    ));
    rejected_at("dupprivate.yaml", &text, "destination: /etc/tool.conf", "also");
}

#[test]
fn extra_payload_names_macos_could_not_install() {
    // Five folders of 200-byte names: fine on Linux (PATH_MAX 4096), past macOS's 1024-byte paths.
    let fixtures = tempfile::tempdir().expect("tempdir");
    let deep = fixtures.path().join(vec!["d".repeat(200); 5].join("/"));
    std::fs::create_dir_all(&deep).expect("mkdir");
    write(&deep, "tool", "#!/bin/sh\n");
    let text = with_package(&format!(
        "  extra_payload:\n    - {{ source: \"{}\", destination: /usr/local/libexec/deep }}",
        fixtures.path().display()
    ));
    rejected_at(
        "deep.yaml",
        &text,
        "source:",
        "macOS and the package format accept at most 1024",
    );
}

#[test]
fn extra_payload_above_or_into_a_dedicated_home() {
    // An agent whose home is in the dedicated root, reached through the /var link and from above.
    let fixtures = tempfile::tempdir().expect("tempdir");
    let file = write(fixtures.path(), "tool", "#!/bin/sh\n");
    for (i, dest) in [
        "/var/confine/halfday-agents/hexagent/.zshrc",
        "/private/var/confine/halfday-agents",
    ]
    .iter()
    .enumerate()
    {
        let text = example_with(
            "\nhardening:",
            &format!(
                "\npackage:\n  extra_payload:\n    - {{ source: \"{}\", destination: \"{dest}\" }}\nhardening:",
                file.display()
            ),
        )
        .replace(
            "    # home: /Users/hexagent       # the default",
            "    home: /private/var/confine/halfday-agents/hexagent",
        );
        assert!(
            text.contains("home: /private/var"),
            "the example shows hexagent's home"
        );
        rejected_at(&format!("dedicated{i}.yaml"), &text, "destination:", "can write");
    }
}

#[test]
fn a_bundle_with_a_prefix() {
    let err = rejected(
        "bundle-prefix.yaml",
        &example_with(
            "      install: npm ",
            "      prefix: /opt/openclaw\n      install: bundle ",
        ),
    );
    assert!(err.contains("a bundled OpenClaw has no prefix"), "{err}");
}

#[test]
fn a_bundle_without_its_lockfile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = write(
        dir.path(),
        "fleet.yaml",
        &example_with("      install: npm ", "      install: bundle "),
    );
    let output = confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(dir.path().join("dist"))
        .output()
        .expect("runs");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fleet.lock")
            && err.contains(&format!("run `confine lock {}` to write it", spec.display())),
        "{err}"
    );
    assert!(!dir.path().join("dist").exists());
}

/// A wrong type, an unknown key and a broken rule elsewhere: all in one run. The rule checks run on the
/// spec with a stand-in for the wrong-typed value, and say nothing about the stand-in itself.
#[test]
fn type_errors_unknown_keys_and_rules_are_reported_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = crate::util::example_with("port: 18789 ", "port: lots  ")
        .replacen("uid: 1051 ", "uid: 70000 ", 1)
        .replacen("  release: 1.0.0", "  relase: 1.0.0", 1);
    let spec = crate::util::write(dir.path(), "fleet.yaml", &text);
    let err = crate::util::refused(&spec);
    for expected in [
        "unknown key `relase`",
        "`port` must be a whole number from 1024 to 65535, not `lots`",
        "UID 70000 is outside the safe range",
    ] {
        assert!(err.contains(expected), "lacks {expected:?}:\n{err}");
    }
    assert_eq!(err.matches("error:").count(), 3, "{err}");
}
