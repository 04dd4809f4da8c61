use std::path::Path;
use std::process::Command as StdCommand;

use crate::util::{confine, stderr};

fn build_bundle(out: &Path, epoch: Option<&str>) -> Vec<u8> {
    let mut command = confine();
    command
        .args(["build", "--example", "-q", "--bundle", "--out"])
        .arg(out);
    if let Some(epoch) = epoch {
        command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = command.output().expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::read(out.join("halfday-agents-1.0.0.zip")).expect("the bundle is in the output folder")
}

#[test]
fn bundles_are_byte_identical_and_read_by_unzip_and_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = build_bundle(&a, None);
    assert_eq!(first, build_bundle(&b, None), "same spec, same bytes");

    let zip = a.join("halfday-agents-1.0.0.zip");
    let tested = StdCommand::new("unzip")
        .arg("-t")
        .arg(&zip)
        .output()
        .expect("unzip is installed");
    assert!(
        tested.status.success() && String::from_utf8_lossy(&tested.stdout).contains("No errors detected"),
        "unzip -t: {}",
        String::from_utf8_lossy(&tested.stdout)
    );

    // Python's zipfile: every manifest entry is in the zip with the built bytes, sorted, 0644, at
    // the fixed build time.
    let script = r#"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
names = z.namelist()
manifest = json.loads(z.read("manifest.json"))
paths = [a["path"] for a in manifest["artifacts"]]
assert names == ["manifest.json"] + paths, names
for a in manifest["artifacts"]:
    assert hashlib.sha256(z.read(a["path"])).hexdigest() == a["sha256"], a["path"]
for info in z.infolist():
    assert info.date_time == (2024, 1, 1, 0, 0, 0), info.date_time
    assert (info.external_attr >> 16) & 0o777 == 0o644, oct(info.external_attr >> 16)
print(len(names))
"#;
    let python = StdCommand::new("python3")
        .args(["-c", script])
        .arg(&zip)
        .output()
        .expect("python3");
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );

    let later = build_bundle(&dir.path().join("c"), Some("1767225600"));
    assert_ne!(first, later, "SOURCE_DATE_EPOCH sets the entries' time");
}
