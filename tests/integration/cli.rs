use std::process::Command as StdCommand;

use crate::util::{confine, example_spec, stderr, tree, write};

#[test]
fn build_without_a_spec_builds_the_example_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    confine().current_dir(dir.path()).arg("build").assert().success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest")).expect("JSON");
    assert_eq!(manifest["format_version"], 1);
    let artifacts = manifest["artifacts"].as_array().expect("artifacts");
    assert!(artifacts.iter().any(|a| a["kind"] == "launchd-plist"));
    for a in artifacts {
        let path = out.join(a["path"].as_str().expect("path"));
        let bytes = std::fs::read(&path).expect("listed artifact exists");
        assert_eq!(a["size"].as_u64(), Some(bytes.len() as u64));
        let sha = openssl::sha::sha256(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        assert_eq!(a["sha256"].as_str(), Some(sha.as_str()), "{}", path.display());
    }
}

#[test]
fn two_builds_produce_identical_trees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    confine().arg("build").arg("--out").arg(&a).assert().success();
    confine().arg("build").arg("--out").arg(&b).assert().success();
    assert_eq!(tree(&a), tree(&b));
}

#[test]
fn every_plist_parses_with_python_plistlib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    confine().arg("build").arg("--out").arg(&out).assert().success();
    let plists: Vec<_> = tree(&out)
        .into_iter()
        .filter(|(p, _)| p.ends_with(".plist") || p.ends_with(".mobileconfig"))
        .map(|(p, _)| out.join(p))
        .collect();
    assert!(!plists.is_empty());
    for path in plists {
        let status = StdCommand::new("python3")
            .args(["-c", "import plistlib,sys; plistlib.load(open(sys.argv[1],'rb'))"])
            .arg(&path)
            .status()
            .expect("python3 is installed");
        assert!(status.success(), "plistlib rejected {}", path.display());
    }
}

#[test]
fn a_failed_build_keeps_the_previous_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    confine().arg("build").arg("--out").arg(&out).assert().success();
    let before = tree(&out);
    let bad = write(
        dir.path(),
        "bad.yaml",
        &example_spec().replace("port: 18789", "port: 80"),
    );
    confine()
        .arg("build")
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    assert_eq!(tree(&out), before);
}

#[test]
fn build_refuses_to_replace_a_foreign_folder() {
    // A project folder that happens to hold a manifest.json: only the .confine-output marker proves
    // confine wrote a folder.
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "notes.txt", "mine");
    write(dir.path(), "manifest.json", "{\"artifacts\": []}");
    let output = confine()
        .arg("build")
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "a refused --out is a usage error");
    assert!(
        stderr(&output)
            .contains("holds 2 entries (`manifest.json`, `notes.txt`) and no .confine-output marker"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).expect("kept"),
        "mine"
    );

    // What confine wrote carries the marker and is replaced by the next build.
    let out = dir.path().join("dist");
    confine().arg("build").arg("--out").arg(&out).assert().success();
    assert!(out.join(".confine-output").is_file());
    confine().arg("build").arg("--out").arg(&out).assert().success();
}

#[test]
fn validate_reports_json_for_ci() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &example_spec().replace("port: 18789", "port: 80"),
    );
    let output = confine()
        .arg("validate")
        .arg(&bad)
        .arg("--json")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(v["schema"], "confine/validate/v1");
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][0]["ok"], false);
    let problem = &v["problems"][0];
    assert_eq!(problem["message"], "port 80 is out of range");
    assert_eq!(problem["file"], bad.display().to_string());
    assert!(problem["line"].as_u64().is_some_and(|l| l > 1));
}

#[test]
fn init_writes_a_valid_spec_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fleet.yaml");
    confine().arg("init").arg(&path).assert().success();
    confine().arg("validate").arg(&path).assert().success();
    std::fs::write(&path, "mine").expect("write");
    confine().arg("init").arg(&path).assert().code(1);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "mine");
}

#[test]
fn usage_errors_exit_2() {
    confine().arg("build").arg("--no-such-flag").assert().code(2);
    confine().arg("frobnicate").assert().code(2);
}

#[test]
fn schema_is_draft_07_and_stable() {
    let output = confine().arg("schema").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    insta::assert_snapshot!("fleet_schema", text);
}

#[test]
fn extra_payload_keeps_modes_and_the_component_package_is_written() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let tool = dir.path().join("vendor/tool");
    std::fs::create_dir_all(tool.join("bin")).expect("mkdir");
    write(&tool, "README", "read me\n");
    let run = write(&tool.join("bin"), "run", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let package = "package:\n  component: true\n  extra_payload:\n    - { source: vendor/tool, destination: /usr/local/libexec/tool }\n";
    let spec = write(
        dir.path(),
        "fleet.yaml",
        &crate::util::example_with("\nhardening:", &format!("\n{package}hardening:")),
    );
    let out = dir.path().join("dist");
    confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let component = out.join("halfday-agents-1.0.0-component.pkg");
    confine()
        .arg("verify")
        .arg("--allow-unsigned")
        .arg(&component)
        .assert()
        .success();
    let listing = StdCommand::new("sh")
        .args([
            "-c",
            "bsdtar -xOf \"$1\" Payload | gzip -dc | cpio -itv --quiet",
            "sh",
        ])
        .arg(&component)
        .output()
        .expect("bsdtar and cpio are installed (apt-get install libarchive-tools cpio)");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} in:\n{listing}"))
            .to_owned()
    };
    assert!(
        line("./usr/local/libexec/tool/bin/run").starts_with("-rwxr-x--- "),
        "{listing}"
    );
    assert!(
        line("./usr/local/libexec/tool/README").starts_with("-rw-r--r-- "),
        "{listing}"
    );
    assert!(
        line("./usr/local/libexec/tool/README").contains(" root "),
        "owned by root:\n{listing}"
    );
}

#[test]
fn validate_checks_mobileconfig_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    confine().arg("build").arg("--out").arg(&out).assert().success();
    let firewall = out.join("profiles/com.halfday.agents.profile.firewall.mobileconfig");
    confine().arg("validate").arg(&firewall).assert().success();
    let text = std::fs::read_to_string(&firewall).expect("read");
    assert_eq!(
        text.matches("<key>EnableFirewall</key>\n\t\t\t<true/>").count(),
        1,
        "fixture anchor:\n{text}"
    );
    let broken = text.replace(
        "<key>EnableFirewall</key>\n\t\t\t<true/>",
        "<key>EnableFirewall</key>\n\t\t\t<integer>1</integer>",
    );
    let bad = write(dir.path(), "bad.mobileconfig", &broken);
    let output = confine()
        .arg("validate")
        .arg(&bad)
        .arg("--json")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("EnableFirewall: ")),
        "{v}"
    );
}

#[test]
fn source_date_epoch_sets_the_package_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    confine().arg("build").arg("--out").arg(&a).assert().success();
    confine()
        .arg("build")
        .arg("--out")
        .arg(&b)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .assert()
        .success();
    let inspect = |out: &std::path::Path| {
        let output = confine()
            .arg("inspect")
            .arg(out.join("halfday-agents-1.0.0.pkg"))
            .output()
            .expect("runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(
        inspect(&a).contains("creation-time: 2024-01-01T00:00:00"),
        "the fixed default"
    );
    assert!(
        inspect(&b).contains("creation-time: 2026-01-01T00:00:00"),
        "SOURCE_DATE_EPOCH"
    );
    let output = confine()
        .arg("build")
        .arg("--out")
        .arg(dir.path().join("c"))
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("SOURCE_DATE_EPOCH"));
}
