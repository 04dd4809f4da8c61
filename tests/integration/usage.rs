use std::path::Path;
use std::process::{Command as StdCommand, Output};

use crate::util::{confine, example_spec, stderr, write};

/// `confine ARGS` in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    confine().current_dir(dir).args(args).output().expect("runs")
}

/// Fails with the whole stderr when it lacks `needle`.
fn assert_stderr_has(output: &Output, needle: &str) {
    let err = stderr(output);
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The fleet name in the built manifest's package file names.
fn built_packages(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .expect("output folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pkg"))
        .collect();
    names.sort();
    names
}

#[test]
fn build_finds_fleet_yaml_then_confine_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let renamed = example_spec().replace("name: halfday-agents", "name: acme-agents");
    write(dir.path(), "confine.yaml", &renamed);
    let output = run_in(dir.path(), &["build"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_stderr_has(&output, "using the spec confine.yaml");
    assert!(
        stderr(&output).contains("built acme-agents 1.0.0 from confine.yaml into dist/ (")
            && stderr(&output).contains(" artifacts; packages unsigned, profiles unsigned)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        built_packages(&dir.path().join("dist"))[0],
        "acme-agents-1.0.0.pkg"
    );

    let other = example_spec().replace("name: halfday-agents", "name: first-agents");
    write(dir.path(), "fleet.yaml", &other);
    let output = run_in(dir.path(), &["build"]);
    assert!(
        stderr(&output).contains("using the spec fleet.yaml"),
        "fleet.yaml comes first"
    );
    assert_eq!(
        built_packages(&dir.path().join("dist"))[0],
        "first-agents-1.0.0.pkg"
    );

    let output = run_in(dir.path(), &["validate"]);
    assert_stderr_has(&output, "fleet.yaml: valid");
}

#[test]
fn a_spec_in_a_parent_folder_is_found_and_named() {
    let project = tempfile::tempdir().expect("tempdir");
    let renamed = example_spec().replace("name: halfday-agents", "name: parent-agents");
    write(project.path(), "fleet.yaml", &renamed);
    let deep = project.path().join("docs/notes");
    std::fs::create_dir_all(&deep).expect("mkdir");

    let output = run_in(&deep, &["validate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_stderr_has(&output, "using the spec ../../fleet.yaml");
    assert!(!stderr(&output).contains("EXAMPLE"), "{}", stderr(&output));

    let output = run_in(&deep, &["build"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(built_packages(&deep.join("dist"))[0], "parent-agents-1.0.0.pkg");
}

#[test]
fn without_a_spec_the_example_is_built_with_a_loud_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_in(dir.path(), &["build", "-q"]);
    assert!(output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(
            "warning: no fleet.yaml or confine.yaml in this folder or any folder above it: using the \
             BUILT-IN EXAMPLE"
        ),
        "{err}"
    );
    let explicit = run_in(dir.path(), &["build", "--example", "--out", "example"]);
    assert!(!stderr(&explicit).contains("warning"), "{}", stderr(&explicit));
    assert!(stderr(&explicit).contains("from the BUILT-IN EXAMPLE spec"));
    confine()
        .args(["build", "--example", "fleet.yaml"])
        .assert()
        .code(2);
}

#[test]
fn quiet_prints_only_warnings_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", example_spec());
    let output = run_in(dir.path(), &["build", "-q"]);
    assert!(output.status.success());
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), "");
}

#[test]
fn out_pointing_at_a_file_is_refused_and_the_file_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "notes.md", "my notes\n");
    let output = run_in(dir.path(), &["build", "--example", "--out", "notes.md"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_stderr_has(&output, "is not a folder");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.md")).expect("read"),
        "my notes\n"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["notes.md"], "nothing else written");
}

#[test]
fn out_refuses_root_home_and_the_spec_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    write(&home, "precious", "x");
    let spec_dir = dir.path().join("fleet");
    std::fs::create_dir(&spec_dir).expect("mkdir");
    let spec = write(&spec_dir, "fleet.yaml", example_spec());
    for (out, why) in [
        (Path::new("/").to_path_buf(), "root folder"),
        (home.clone(), "home folder"),
        (spec_dir.clone(), "spec's own folder"),
    ] {
        let output = confine()
            .env("HOME", &home)
            .arg("build")
            .arg(&spec)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{out:?}: {}", stderr(&output));
        assert_stderr_has(&output, why);
    }
    assert!(home.join("precious").exists());
}

#[test]
fn a_spec_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = confine()
        .current_dir(dir.path())
        .args(["build", "-", "--out", "dist"])
        .write_stdin(example_spec().replace("name: halfday-agents", "name: piped-agents"))
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_stderr_has(&output, "from <stdin>");
    assert_eq!(
        built_packages(&dir.path().join("dist"))[0],
        "piped-agents-1.0.0.pkg"
    );
    let output = confine()
        .args(["validate", "-"])
        .write_stdin("version: 1\nfleet:\n  name: [unclosed\n")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_has(&output, "--> <stdin>:3:");
    assert!(
        stderr(&output).contains("  name: [unclosed"),
        "source line:\n{}",
        stderr(&output)
    );
}

#[test]
fn inspect_and_verify_take_many_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    confine()
        .args(["build", "--example", "-q", "--out"])
        .arg(&out)
        .assert()
        .success();
    let packages = [
        out.join("halfday-agents-1.0.0.pkg"),
        out.join("halfday-agents-uninstall-1.0.0.pkg"),
    ];
    let inspect = confine().arg("inspect").args(&packages).output().expect("runs");
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    for package in &packages {
        assert!(
            stdout(&inspect).contains(&package.display().to_string()),
            "each report names its file"
        );
    }
    let verify = confine()
        .arg("verify")
        .arg("--allow-unsigned")
        .args(&packages)
        .output()
        .expect("runs");
    assert!(verify.status.success());
    assert_eq!(
        stderr(&verify).matches(": ok: package").count(),
        2,
        "{}",
        stderr(&verify)
    );
    assert_eq!(stdout(&verify), "", "human results go to stderr");

    let bogus = write(dir.path(), "bogus.pkg", "not a package");
    let verify = confine()
        .arg("verify")
        .arg("--allow-unsigned")
        .arg(&packages[0])
        .arg(&bogus)
        .arg(&packages[1])
        .output()
        .expect("runs");
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(
        stderr(&verify).matches(": ok: package").count(),
        2,
        "the good files are still checked"
    );
    assert_stderr_has(&verify, "1 of 3 files failed verification");
    let inspect = confine()
        .arg("inspect")
        .arg(&bogus)
        .arg(&packages[0])
        .output()
        .expect("runs");
    assert_eq!(inspect.status.code(), Some(1));
    assert!(
        stdout(&inspect).contains("Distribution"),
        "the readable package is still shown"
    );
}

#[test]
fn completions_for_every_shell_load_in_that_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = confine().args(["completions", shell]).output().expect("runs");
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        for word in ["build", "validate", "inspect", "bundle"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // bash itself loads the script and completes `confine va` to `validate`.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = confine().args(["completions", "bash"]).output().expect("runs");
    let script = write(dir.path(), "confine.bash", &stdout(&output));
    let probe = format!(
        "source {}; COMP_WORDS=(confine va); COMP_CWORD=1; _confine confine va confine; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let completed = StdCommand::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash");
    assert_eq!(String::from_utf8_lossy(&completed.stdout).trim(), "validate");
    confine().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn the_man_page_renders_with_groff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = confine().arg("man").output().expect("runs");
    assert!(output.status.success());
    let page = write(dir.path(), "confine.1", &stdout(&output));
    let rendered = StdCommand::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(&page)
        .output()
        .expect("groff is installed");
    assert!(rendered.status.success());
    assert_eq!(stderr(&rendered), "", "groff warnings");
    let text = stdout(&rendered);
    for word in [
        "SYNOPSIS",
        "SUBCOMMANDS",
        "build",
        "validate",
        "completions",
        "color",
    ] {
        assert!(text.contains(word), "man page lacks {word}:\n{text}");
    }
}

#[test]
fn version_names_the_crate_version() {
    let output = confine().arg("--version").output().expect("runs");
    assert!(stdout(&output).starts_with(&format!("confine {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn every_subcommand_help_has_examples() {
    for command in [
        "build",
        "validate",
        "init",
        "schema",
        "inspect",
        "verify",
        "completions",
        "man",
    ] {
        let output = confine().args([command, "--help"]).output().expect("runs");
        assert!(
            stdout(&output).contains("Example"),
            "{command} --help has no example"
        );
    }
}
