use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The `confine` binary built for this test run.
pub fn confine() -> Command {
    let mut cmd = Command::cargo_bin("confine").expect("the confine binary is built");
    // Builds must not depend on the caller's environment, except where a test sets it on purpose.
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// The built-in example spec text.
pub fn example_spec() -> &'static str {
    confine::spec::EXAMPLE
}

/// The example spec with `from` replaced by `to` exactly once (panics if `from` is not there, so a
/// fixture cannot silently stop testing what it claims).
pub fn example_with(from: &str, to: &str) -> String {
    let text = example_spec();
    assert_eq!(
        text.matches(from).count(),
        1,
        "fixture anchor {from:?} must occur once in the example"
    );
    text.replacen(from, to, 1)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `confine validate SPEC`, which must refuse it (exit 1): its standard error.
pub fn refused(spec: &Path) -> String {
    let out = confine()
        .arg("validate")
        .arg(spec)
        .output()
        .expect("runs confine");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}: {err}", spec.display());
    err
}

/// Every file under `root`, relative, sorted, with its bytes.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    collect(root, root, &mut files);
    files.sort();
    files
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            files.push((rel, std::fs::read(&path).expect("read")));
        }
    }
}

/// Runs `confine identity new --out DIR/ids` with `password` for the `.p12` files; returns DIR/ids.
pub fn identity_new(dir: &Path, password: &str) -> PathBuf {
    let ids = dir.join("ids");
    confine()
        .args(["identity", "new", "--out"])
        .arg(&ids)
        .env("CONFINE_IDENTITY_PASSWORD", password)
        .assert()
        .success();
    ids
}
