use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};

use apple_xar::reader::XarReader;
use openssl::pkey::PKey;

use crate::util::{confine, identity_new, stderr, tree};

const PASSWORD: &str = "hunter2-confine-test-password";
const APPLE_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/apple-productsign-2011.pkg"
);

/// Development identities made with `confine identity new`, and a build signed with them.
struct SignedBuild {
    _dir: tempfile::TempDir,
    ids: PathBuf,
    out: PathBuf,
    /// What `confine build` printed.
    output: Output,
}

fn signed_build() -> SignedBuild {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = identity_new(dir.path(), PASSWORD);
    let out = dir.path().join("dist");
    let output = confine()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--profile-identity")
        .arg(ids.join("profile-signing.p12"))
        .arg("--pkg-identity")
        .arg(ids.join("installer-signing.p12"))
        .arg("--timestamp-url")
        .arg(crate::timestamp::local_tsa().url(""))
        .env("CONFINE_IDENTITY_PASSWORD", PASSWORD)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "signed build failed:\n{}",
        stderr(&output)
    );
    SignedBuild {
        _dir: dir,
        ids,
        out,
        output,
    }
}

impl SignedBuild {
    fn ca(&self) -> PathBuf {
        self.ids.join("dev-ca.pem")
    }

    fn files(&self, suffix: &str) -> Vec<PathBuf> {
        let files: Vec<_> = tree(&self.out)
            .into_iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(p, _)| self.out.join(p))
            .collect();
        assert!(!files.is_empty(), "no {suffix} in the build");
        files
    }

    /// `confine verify --ca <dev CA> file` succeeds.
    fn assert_verifies(&self, file: &Path) {
        confine()
            .arg("verify")
            .arg("--ca")
            .arg(self.ca())
            .arg(file)
            .assert()
            .success();
    }

    fn signed_profiles(&self) -> Vec<PathBuf> {
        self.files(".mobileconfig")
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/signed/"))
            .collect()
    }
}

fn openssl(args: &[&str], paths: &[&Path]) -> bool {
    let mut cmd = StdCommand::new("openssl");
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    cmd.output()
        .expect("openssl is installed (apt-get install openssl)")
        .status
        .success()
}

/// A copy of `path` with the byte at `at` (negative: from the end) inverted.
fn tampered(path: &Path, at: isize) -> PathBuf {
    let mut bytes = std::fs::read(path).expect("read");
    let i = if at < 0 {
        bytes.len() - at.unsigned_abs()
    } else {
        at.unsigned_abs()
    };
    bytes[i] ^= 0xff;
    let copy = path.with_file_name(format!(
        "tampered-{}",
        path.file_name().expect("name").to_string_lossy()
    ));
    std::fs::write(&copy, bytes).expect("write");
    copy
}

#[test]
fn signed_profiles_verify_with_openssl_cms_and_tampering_is_caught() {
    let build = signed_build();
    let ca = build.ca();
    for signed in build.signed_profiles() {
        let verify = [
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
            "-CAfile",
        ];
        assert!(
            openssl(&verify, &[&ca, Path::new("-in"), &signed]),
            "{}",
            signed.display()
        );
        let unsigned = build.out.join("profiles").join(signed.file_name().expect("name"));
        let content = StdCommand::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-noverify", "-in"])
            .arg(&signed)
            .output()
            .expect("openssl");
        assert_eq!(
            content.stdout,
            std::fs::read(&unsigned).expect("unsigned"),
            "the content is the unsigned profile"
        );
        // The middle of the file is inside the encapsulated plist.
        let len = std::fs::metadata(&signed).expect("meta").len() as isize;
        let bad = tampered(&signed, len / 2);
        assert!(
            !openssl(&verify, &[&ca, Path::new("-in"), &bad]),
            "tampered {} verified",
            signed.display()
        );
    }
}

#[test]
fn confine_verify_accepts_the_signed_build_and_rejects_tampered_copies() {
    let build = signed_build();
    let mut files = build.files(".pkg");
    files.extend(build.signed_profiles());
    confine()
        .arg("verify")
        .arg("--ca")
        .arg(build.ca())
        .args(&files)
        .assert()
        .success();
    for file in &files {
        // -100 lands in the package's file data (the end of the heap) or the profile's signature.
        let bad = tampered(file, -100);
        let output = confine()
            .arg("verify")
            .arg("--ca")
            .arg(build.ca())
            .arg(&bad)
            .output()
            .expect("runs");
        assert_eq!(
            output.status.code(),
            Some(1),
            "tampered {} passed:\n{}",
            file.display(),
            stderr(&output)
        );
    }
    // A byte inside the compressed TOC, right after the 28-byte header.
    let bad = tampered(&build.files(".pkg")[0], 40);
    confine().arg("verify").arg(&bad).assert().code(1);
}

#[test]
fn confine_verify_requires_a_signature_that_reaches_the_ca() {
    let build = signed_build();
    let unsigned_dir = tempfile::tempdir().expect("tempdir");
    let unsigned = unsigned_dir.path().join("dist");
    confine()
        .arg("build")
        .arg("--out")
        .arg(&unsigned)
        .assert()
        .success();
    let pkg = unsigned.join("halfday-agents-1.0.0.pkg");
    // Unsigned packages and unsigned profiles alike: each reported, both accepted only when asked.
    let profile = tree(&unsigned)
        .into_iter()
        .map(|(path, _)| unsigned.join(path))
        .find(|path| path.extension().is_some_and(|e| e == "mobileconfig"))
        .expect("an unsigned profile");
    let output = confine()
        .arg("verify")
        .arg(&pkg)
        .arg(&profile)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    for what in ["package", "profile"] {
        assert!(
            stderr(&output).contains(&format!("the {what} is not signed (pass --allow-unsigned")),
            "{}",
            stderr(&output)
        );
    }
    confine()
        .arg("verify")
        .arg("--allow-unsigned")
        .arg(&pkg)
        .arg(&profile)
        .assert()
        .success();
    confine()
        .arg("verify")
        .arg("--ca")
        .arg(build.ca())
        .arg(&pkg)
        .assert()
        .code(1);
    let other = tempfile::tempdir().expect("tempdir");
    let other_ids = identity_new(other.path(), "x");
    let output = confine()
        .arg("verify")
        .arg("--ca")
        .arg(other_ids.join("dev-ca.pem"))
        .arg(&build.files(".pkg")[0])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("chain NOT trusted"));
}

#[test]
fn package_signatures_check_out_with_independent_tools() {
    let build = signed_build();
    let pkg = &build.files(".pkg")[0];
    let mut xar =
        XarReader::new(std::fs::File::open(pkg).expect("open")).expect("apple-xar parses the signed package");
    assert!(xar.verify_table_of_contents_checksum().expect("checksum"));
    assert!(
        xar.verify_cms_signature().expect("CMS parses"),
        "apple-xar found no CMS signer"
    );

    let parts = confine::pkg::verify(pkg)
        .expect("verify")
        .signature_parts
        .expect("signed");
    let work = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let p = work.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let checksum = write("checksum.bin", &parts.toc_checksum);
    let rsa = write("rsa.sig", parts.rsa_signature.as_deref().expect("RSA signature"));
    let cms = write("cms.der", parts.cms_signature.as_deref().expect("CMS signature"));
    let leaf = openssl::x509::X509::from_der(&parts.rsa_certificates[0]).expect("leaf");
    let public = write(
        "pub.pem",
        &leaf.public_key().expect("key").public_key_to_pem().expect("pem"),
    );
    // pkeyutl treats the input as an already-computed SHA-1 digest: the xar DigestInfo convention.
    let rsa_check = [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-pkeyopt",
        "digest:sha1",
        "-inkey",
    ];
    assert!(openssl(
        &rsa_check,
        &[&public, Path::new("-in"), &checksum, Path::new("-sigfile"), &rsa]
    ));
    let cms_check = [
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-purpose",
        "any",
        "-out",
        "/dev/null",
        "-CAfile",
    ];
    assert!(openssl(
        &cms_check,
        &[
            &build.ca(),
            Path::new("-in"),
            &cms,
            Path::new("-content"),
            &checksum
        ]
    ));
    let wrong = write("wrong.bin", &[0u8; 20]);
    assert!(!openssl(
        &rsa_check,
        &[&public, Path::new("-in"), &wrong, Path::new("-sigfile"), &rsa]
    ));
}

#[test]
fn a_package_re_signed_with_rcodesign_s_rsa_convention_verifies() {
    let build = signed_build();
    let pkg = &build.files(".pkg")[0];
    let parts = confine::pkg::verify(pkg)
        .expect("verify")
        .signature_parts
        .expect("signed");
    let work = tempfile::tempdir().expect("tempdir");
    let checksum = work.path().join("checksum.bin");
    std::fs::write(&checksum, &parts.toc_checksum).expect("write");
    let signature = work.path().join("rehashed.sig");
    // What apple-xar's XarSigner (rcodesign) signs: SHA-256 of the checksum, hashed by `dgst`.
    let key = build.ids.join("installer-signing.key");
    assert!(openssl(
        &["dgst", "-sha256", "-sign"],
        &[&key, Path::new("-out"), &signature, &checksum]
    ));
    let signature = std::fs::read(&signature).expect("read");
    // The RSA signature sits at heap offset 20 (after the sha1 checksum); the heap follows the header
    // and the compressed TOC, whose length is the header's bytes 8..16.
    let mut bytes = std::fs::read(pkg).expect("read");
    let toc_len = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let at = 28 + usize::try_from(toc_len).expect("small") + 20;
    assert_eq!(
        bytes[at..at + signature.len()],
        *parts.rsa_signature.as_deref().expect("RSA")
    );
    bytes[at..at + signature.len()].copy_from_slice(&signature);
    let resigned = work.path().join("resigned.pkg");
    std::fs::write(&resigned, &bytes).expect("write");
    let output = confine()
        .arg("verify")
        .arg("--ca")
        .arg(build.ca())
        .arg(&resigned)
        .output()
        .expect("runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("RSA: SHA-256 of the checksum"), "{report}");
    // The same bytes over another checksum are refused.
    bytes[at] ^= 0x01;
    std::fs::write(&resigned, &bytes).expect("write");
    confine().arg("verify").arg(&resigned).assert().code(1);
}

#[test]
fn no_artifact_or_output_holds_the_private_key_or_the_password() {
    let build = signed_build();
    let mut secrets: Vec<Vec<u8>> = vec![PASSWORD.as_bytes().to_vec()];
    for key in ["profile-signing.key", "installer-signing.key"] {
        let pem = std::fs::read(build.ids.join(key)).expect("key");
        let pkey = PKey::private_key_from_pem(&pem).expect("PEM key");
        secrets.push(pkey.private_key_to_der().expect("DER"));
        secrets.push(pkey.rsa().expect("RSA").d().to_vec());
        let text = String::from_utf8(pem).expect("PEM is text");
        secrets.extend(
            text.lines()
                .filter(|l| l.len() >= 40)
                .map(|l| l.as_bytes().to_vec()),
        );
    }
    let mut haystacks = tree(&build.out);
    haystacks.push(("stdout".into(), build.output.stdout.clone()));
    haystacks.push(("stderr".into(), build.output.stderr.clone()));
    for (name, bytes) in &haystacks {
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{name} holds secret material"
            );
        }
    }
}

#[test]
fn a_wrong_password_fails_cleanly_without_output() {
    let build = signed_build();
    let out = build.out.with_file_name("other");
    let output = confine()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--identity")
        .arg(build.ids.join("installer-signing.p12"))
        .env("CONFINE_IDENTITY_PASSWORD", "not-the-password")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("password"), "{err}");
    assert!(
        !err.contains("not-the-password") && !err.contains(PASSWORD),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn pem_identity_signs_packages_too() {
    let build = signed_build();
    let out = build.out.with_file_name("pem");
    confine()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--cert")
        .arg(build.ids.join("installer-signing.pem"))
        .arg("--key")
        .arg(build.ids.join("installer-signing.key"))
        .arg("--chain")
        .arg(build.ca())
        .arg("--no-timestamp")
        .assert()
        .success();
    build.assert_verifies(&out.join("halfday-agents-1.0.0.pkg"));
}

#[test]
fn confine_verify_and_inspect_read_apple_s_own_signed_package() {
    let output = confine().arg("verify").arg(APPLE_FIXTURE).output().expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("signed (RSA: xar DigestInfo over the checksum)"));
    let inspect = confine()
        .arg("inspect")
        .arg(APPLE_FIXTURE)
        .output()
        .expect("runs");
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("Distribution"));
}

#[test]
fn the_spec_names_identities_through_environment_variables() {
    let build = signed_build();
    let signing = "signing:\n  pkg_identity_env: FLEET_INSTALLER_P12\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let spec_text = crate::util::example_with("\nhardening:", &format!("\n{signing}hardening:"));
    let spec = crate::util::write(dir.path(), "fleet.yaml", &spec_text);
    let out = dir.path().join("dist");
    let missing = confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(
        missing.status.code(),
        Some(1),
        "an unset variable the spec names is an error"
    );
    assert!(stderr(&missing).contains("FLEET_INSTALLER_P12"));
    confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .env("FLEET_INSTALLER_P12", build.ids.join("installer-signing.p12"))
        .arg("--no-timestamp")
        .env("CONFINE_IDENTITY_PASSWORD", PASSWORD)
        .assert()
        .success();
    build.assert_verifies(&out.join("halfday-agents-1.0.0.pkg"));
    // A command-line identity wins; the variable the spec names need not be set then.
    confine()
        .arg("build")
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--pkg-identity")
        .arg(build.ids.join("installer-signing.p12"))
        .arg("--no-timestamp")
        .env_remove("FLEET_INSTALLER_P12")
        .env("CONFINE_IDENTITY_PASSWORD", PASSWORD)
        .assert()
        .success();
    build.assert_verifies(&out.join("halfday-agents-1.0.0.pkg"));
}
