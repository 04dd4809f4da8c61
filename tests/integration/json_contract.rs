use std::path::Path;

use serde_json::Value;

use crate::util::{confine, example_spec, write};

/// Runs confine in `dir` with `args`, checks the exit status, and returns stdout as JSON with the
/// fields that change with every artifact change (hashes, sizes, report text) replaced by placeholders.
fn json(dir: &Path, args: &[&str], code: i32) -> Value {
    let output = confine().current_dir(dir).args(args).output().expect("runs");
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut value: Value = serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    for key in ["schema", "ok", "problems"] {
        assert!(value.get(key).is_some(), "{key} missing: {value}");
    }
    assert_eq!(value["ok"], code == 0);
    for problem in value["problems"].as_array().expect("problems") {
        let keys: Vec<_> = problem.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys, ["column", "file", "help", "line", "message", "severity"]);
    }
    redact(&mut value);
    value
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match key.as_str() {
                    "sha256" => *field = "[sha256]".into(),
                    "size" => *field = 0.into(),
                    "report" | "summary" if field.is_string() => *field = format!("[{key}]").into(),
                    // One entry shows the shape; the list itself belongs to the build's own tests.
                    "artifacts" => {
                        if let Value::Array(entries) = field {
                            entries.truncate(1);
                            entries.iter_mut().for_each(redact);
                        }
                    }
                    _ => redact(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A temp folder holding a valid `fleet.yaml`, a bad `bad.yaml`, and a build in `dist`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "fleet.yaml", example_spec());
    write(
        dir.path(),
        "bad.yaml",
        &example_spec()
            .replace("port: 18789", "port: 80")
            .replace("uid: 1051 ", "uid: 99   "),
    );
    write(dir.path(), "broken.pkg", "not a package");
    confine()
        .current_dir(dir.path())
        .args(["build", "-q", "fleet.yaml"])
        .assert()
        .success();
    dir
}

#[test]
fn build() {
    let dir = workspace();
    let ok = json(dir.path(), &["build", "fleet.yaml", "--out", "out", "--json"], 0);
    insta::assert_json_snapshot!("build_ok", ok);
    let failed = json(dir.path(), &["build", "bad.yaml", "--out", "out", "--json"], 1);
    insta::assert_json_snapshot!("build_failed", failed);
}

#[test]
fn validate() {
    let dir = workspace();
    let ok = json(dir.path(), &["validate", "fleet.yaml", "--json"], 0);
    insta::assert_json_snapshot!("validate_ok", ok);
    let failed = json(dir.path(), &["validate", "fleet.yaml", "bad.yaml", "--json"], 1);
    insta::assert_json_snapshot!("validate_failed", failed);
}

#[test]
fn inspect() {
    let dir = workspace();
    let ok = json(
        dir.path(),
        &["inspect", "dist/halfday-agents-1.0.0.pkg", "--json"],
        0,
    );
    insta::assert_json_snapshot!("inspect_ok", ok);
    let failed = json(dir.path(), &["inspect", "broken.pkg", "--json"], 1);
    insta::assert_json_snapshot!("inspect_failed", failed);
}

#[test]
fn verify() {
    let dir = workspace();
    let ok = json(
        dir.path(),
        &[
            "verify",
            "--allow-unsigned",
            "dist/halfday-agents-1.0.0.pkg",
            "--json",
        ],
        0,
    );
    insta::assert_json_snapshot!("verify_ok", ok);
    let failed = json(
        dir.path(),
        &[
            "verify",
            "--allow-unsigned",
            "dist/halfday-agents-1.0.0.pkg",
            "broken.pkg",
            "--json",
        ],
        1,
    );
    insta::assert_json_snapshot!("verify_failed", failed);
}
