use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as StdCommand, Stdio};
use std::sync::{Mutex, OnceLock};

use openssl::hash::{MessageDigest, hash};

use crate::util::{confine, identity_new, stderr};

const PASSWORD: &str = "timestamp-test-password";

/// `openssl ts -reply` behind HTTP on 127.0.0.1 (tests/tsa/tsa.py), one per test process. The server
/// exits, removing its folder, when the test process ends and its stdin pipe closes.
pub struct LocalTsa {
    pub dir: PathBuf,
    port: u16,
    _server: Mutex<(Child, ChildStdin)>,
}

impl LocalTsa {
    /// `http://127.0.0.1:PORT/` plus a path that picks a (mis)behaviour; see tsa.py.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The root of the test TSA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

pub fn local_tsa() -> &'static LocalTsa {
    static TSA: OnceLock<LocalTsa> = OnceLock::new();
    TSA.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tsa-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tsa/tsa.py");
        let mut child = StdCommand::new("python3")
            .arg(script)
            .arg(&dir)
            .arg("--until-stdin-closes")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (apt-get install python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the TSA prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the test TSA did not start: {line:?}"));
        let stdin = child.stdin.take().expect("stdin");
        LocalTsa {
            dir,
            port,
            _server: Mutex::new((child, stdin)),
        }
    })
}

fn build_with_timestamp_url(ids: &Path, out: &Path, url: &str) -> std::process::Output {
    confine()
        .arg("build")
        .arg("--out")
        .arg(out)
        .arg("--pkg-identity")
        .arg(ids.join("installer-signing.p12"))
        .arg("--timestamp-url")
        .arg(url)
        .env("CONFINE_IDENTITY_PASSWORD", PASSWORD)
        .output()
        .expect("runs")
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    StdCommand::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed")
}

#[test]
fn the_package_signature_carries_a_token_that_openssl_ts_verifies() {
    let tsa = local_tsa();
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = identity_new(dir.path(), PASSWORD);
    let out = dir.path().join("dist");
    let built = build_with_timestamp_url(&ids, &out, &tsa.url(""));
    assert!(built.status.success(), "{}", stderr(&built));
    let pkg = out.join("halfday-agents-1.0.0.pkg");

    let parts = confine::pkg::verify(&pkg)
        .expect("verify")
        .signature_parts
        .expect("signed");
    let cms = parts.cms_signature.expect("CMS signature");
    let (signature, token) = confine::sign::signature_and_timestamp_token(&cms).expect("SignerInfo");
    let token = token.expect("a timestamp token");
    let work = dir.path();
    std::fs::write(work.join("token.der"), &token).expect("write");
    std::fs::write(work.join("cms.der"), &cms).expect("write");
    let digest = openssl::hash::hash(MessageDigest::sha256(), &signature).expect("sha256");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let ca = tsa.ca();
    let ca = ca.to_str().expect("utf-8");
    let ts_verify = |digest: &str| {
        openssl(
            work,
            &[
                "ts",
                "-verify",
                "-token_in",
                "-in",
                "token.der",
                "-CAfile",
                ca,
                "-digest",
                digest,
            ],
        )
    };
    let verified = ts_verify(&hex(&digest));
    assert!(
        verified.status.success(),
        "openssl ts -verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let other = hash(MessageDigest::sha256(), b"other data").expect("sha256");
    assert!(
        !ts_verify(&hex(&other)).status.success(),
        "openssl ts -verify accepted the token for other data"
    );

    // OpenSSL's own reading of the SignerInfo: productsign's algorithm and the token attribute.
    let printed = openssl(
        work,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "cms.der"],
    );
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("sha256WithRSAEncryption"), "{printed}");
    assert!(printed.contains("id-smime-aa-timeStampToken"), "{printed}");

    let verify = confine()
        .arg("verify")
        .arg("--ca")
        .arg(ids.join("dev-ca.pem"))
        .arg(&pkg)
        .output()
        .expect("runs");
    let report = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("by CN=confine test tsa"), "{report}");
    assert!(report.contains(", timestamp 20"), "{report}");
    let inspect = confine().arg("inspect").arg(&pkg).output().expect("runs");
    let listing = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("timestamp: 20") && l.ends_with("by CN=confine test tsa")),
        "{listing}"
    );

    // The token sits in the CMS's unsigned attributes, outside the TOC checksum and the signature: only
    // checking the token itself catches a change to it. Its last byte ends the TSA's signature value.
    let mut bytes = std::fs::read(&pkg).expect("read");
    let at = bytes
        .windows(token.len())
        .position(|w| w == token.as_slice())
        .expect("the token is in the package")
        + token.len()
        - 1;
    bytes[at] ^= 0x01;
    let tampered = dir.path().join("tampered.pkg");
    std::fs::write(&tampered, bytes).expect("write");
    let verify = confine().arg("verify").arg(&tampered).output().expect("runs");
    let report = String::from_utf8_lossy(&verify.stderr);
    assert_eq!(verify.status.code(), Some(1), "{report}");
    assert!(report.contains("timestamp token"), "{report}");
}

#[test]
fn bad_answers_from_the_authority_fail_the_build_before_anything_is_written() {
    let tsa = local_tsa();
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = identity_new(dir.path(), PASSWORD);
    for (path, expected) in [
        ("other-data", "timestamps other data"),
        ("wrong-nonce", "nonce is not the one sent"),
        ("not-a-tsa", "is not a time-stamping authority"),
        ("rejected", "test authority says no"),
    ] {
        let out = dir.path().join(path);
        let built = build_with_timestamp_url(&ids, &out, &tsa.url(path));
        let err = stderr(&built);
        assert_eq!(built.status.code(), Some(1), "{path}: {err}");
        assert!(err.contains(expected), "{path}: {err}");
        assert!(!out.exists(), "{path}: output written");
    }
}

#[test]
fn an_unreachable_authority_fails_with_advice_and_no_timestamp_builds_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = identity_new(dir.path(), PASSWORD);
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let out = dir.path().join("dist");
    let built = build_with_timestamp_url(&ids, &out, &format!("http://127.0.0.1:{port}/"));
    let err = stderr(&built);
    assert_eq!(built.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach it") && err.contains("--no-timestamp"),
        "{err}"
    );
    assert!(!out.exists());

    confine()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--pkg-identity")
        .arg(ids.join("installer-signing.p12"))
        .arg("--no-timestamp")
        .env("CONFINE_IDENTITY_PASSWORD", PASSWORD)
        .assert()
        .success();
    let verify = confine()
        .arg("verify")
        .arg(out.join("halfday-agents-1.0.0.pkg"))
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&verify.stderr).contains("no timestamp"));
}
