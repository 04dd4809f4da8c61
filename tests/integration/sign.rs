//! Signing, checked by tools that share no code with ours: the `openssl` command line (a separate
//! program driving OpenSSL's CMS/pkeyutl code paths) and Apple's own 2011 productsign output.

use {
    confine::sign::{
        Identity, PackageSigner, RsaConvention, TocSigner, create_dev_identity, load_certificates,
        sign_profile, verify_key_info_chain, verify_profile, verify_toc_cms, verify_toc_rsa,
    },
    openssl::hash::{MessageDigest, hash},
    std::{
        fs,
        io::Read,
        os::unix::fs::PermissionsExt,
        path::{Path, PathBuf},
        process::{Command, Output},
    },
};

const P12_PASSWORD: &str = "correct horse battery staple 42";
const PROFILE: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n\
    <key>PayloadIdentifier</key>\n<string>com.example.confine.test</string>\n</dict>\n</plist>\n";
/// Apple productsign output from 2011 (RSA signature only, sha1), in the `shared/` folder that sits next to
/// the repository checkout.
const APPLE_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/apple-productsign-2011.pkg"
);

/// Runs the `openssl` CLI in `dir`. Secrets are passed through the environment (`env:P12PASS`), never as
/// arguments, like the product itself does.
fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("P12PASS", P12_PASSWORD)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the openssl CLI ({e}); install it (apt-get install openssl)"))
}

/// `openssl pkcs12 -info` (with `-legacy` if asked) on `dir/name`; the details are on stderr.
fn p12_info(dir: &Path, name: &str, legacy: bool) -> Output {
    let mut args = vec!["pkcs12", "-info", "-noout", "-in", name, "-passin", "env:P12PASS"];
    if legacy {
        args.push("-legacy");
    }
    openssl(dir, &args)
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A development PKI in a fresh temporary directory.
fn dev_pki() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("identity");
    create_dev_identity(&out, P12_PASSWORD).unwrap();
    (tmp, out)
}

fn error_text(err: &anyhow::Error) -> String {
    format!("{err:#} {err:?}")
}

#[test]
fn signed_profile_verifies_with_openssl_and_tampering_is_detected() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pkcs12(&dir.join("profile-signing.p12"), P12_PASSWORD).unwrap();
    let signed = sign_profile(&id, PROFILE).unwrap();
    fs::write(dir.join("p.mobileconfig"), &signed).unwrap();

    let args = [
        "cms",
        "-verify",
        "-CAfile",
        "dev-ca.pem",
        "-purpose",
        "any",
        "-inform",
        "DER",
    ];
    let ok = openssl(
        &dir,
        &[&args[..], &["-in", "p.mobileconfig", "-out", "content.plist"]].concat(),
    );
    assert_success(&ok, "openssl cms -verify of the signed profile");
    assert_eq!(fs::read(dir.join("content.plist")).unwrap(), PROFILE);

    let mut tampered = signed.clone();
    let at = find(&tampered, b"com.example.confine.test").expect("profile content is encapsulated");
    tampered[at] ^= 0x01;
    fs::write(dir.join("tampered.mobileconfig"), &tampered).unwrap();
    let bad = openssl(
        &dir,
        &[&args[..], &["-in", "tampered.mobileconfig", "-out", "/dev/null"]].concat(),
    );
    assert!(!bad.status.success(), "openssl accepted a tampered profile");
    assert!(verify_profile(&tampered, None).is_err());
}

#[test]
fn signed_profile_uses_sha256_and_embeds_chain_without_root() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pkcs12(&dir.join("profile-signing.p12"), P12_PASSWORD).unwrap();
    fs::write(dir.join("p.der"), sign_profile(&id, PROFILE).unwrap()).unwrap();

    let printed = openssl(
        &dir,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "p.der"],
    );
    assert_success(&printed, "openssl cms -cmsout -print");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("sha256"), "digest is not SHA-256:\n{text}");
    assert!(
        !text.contains("eContent: <ABSENT>"),
        "the profile is not encapsulated:\n{text}"
    );
    let certs = openssl(
        &dir,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "p.der",
            "-print_certs",
            "-noout",
        ],
    );
    let subjects = String::from_utf8_lossy(&certs.stdout);
    assert_eq!(
        subjects.matches("subject=").count(),
        1,
        "only the leaf, not the self-signed CA:\n{subjects}"
    );
}

#[test]
fn verify_profile_reports_signer_content_and_trust() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pem(
        &dir.join("profile-signing.pem"),
        &dir.join("profile-signing.key"),
        &[dir.join("dev-ca.pem")],
    )
    .unwrap();
    let signed = sign_profile(&id, PROFILE).unwrap();
    let ca = load_certificates(&dir.join("dev-ca.pem")).unwrap();

    let checked = verify_profile(&signed, Some(&ca)).unwrap();
    assert_eq!(checked.content, PROFILE);
    assert_eq!(checked.signer.subject, id.subject());
    assert_eq!(checked.signer.chain_trusted, Some(true));
    assert_eq!(verify_profile(&signed, None).unwrap().signer.chain_trusted, None);

    let (_other_tmp, other) = dev_pki();
    let foreign_ca = load_certificates(&other.join("dev-ca.pem")).unwrap();
    let untrusted = verify_profile(&signed, Some(&foreign_ca)).unwrap();
    assert_eq!(untrusted.signer.chain_trusted, Some(false));
    assert!(untrusted.signer.chain_error.is_some());
}

#[test]
fn package_rsa_signature_is_digest_info_over_the_checksum() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pkcs12(&dir.join("installer-signing.p12"), P12_PASSWORD).unwrap();
    let signer = PackageSigner::new(&id, None).unwrap();
    let pubkey = id
        .certificate()
        .public_key()
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    fs::write(dir.join("pub.pem"), pubkey).unwrap();

    for (md, name) in [
        (MessageDigest::sha1(), "sha1"),
        (MessageDigest::sha256(), "sha256"),
    ] {
        let checksum = hash(md, b"compressed TOC bytes").unwrap().to_vec();
        let sig = signer.sign_rsa(&checksum).unwrap();
        assert_eq!(sig.len(), signer.rsa_signature_size());
        fs::write(dir.join("checksum.bin"), &checksum).unwrap();
        fs::write(dir.join("sig.bin"), &sig).unwrap();
        // pkeyutl with a digest option treats its input as an already computed digest: exactly the xar
        // DigestInfo convention, and not rcodesign's SHA-256-of-the-checksum.
        let digest_opt = format!("digest:{name}");
        let args = [
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-pkeyopt",
            &digest_opt,
        ];
        let ok = openssl(
            &dir,
            &[&args[..], &["-in", "checksum.bin", "-sigfile", "sig.bin"]].concat(),
        );
        assert_success(&ok, &format!("openssl pkeyutl -verify ({name})"));
        verify_toc_rsa(&signer.certificates()[0], &checksum, &sig).unwrap();

        let mut changed = checksum.clone();
        changed[0] ^= 0x80;
        fs::write(dir.join("changed.bin"), &changed).unwrap();
        let bad = openssl(
            &dir,
            &[&args[..], &["-in", "changed.bin", "-sigfile", "sig.bin"]].concat(),
        );
        assert!(
            !bad.status.success(),
            "openssl accepted the RSA signature for another checksum ({name})"
        );
        assert!(verify_toc_rsa(&signer.certificates()[0], &changed, &sig).is_err());
    }
}

#[test]
fn package_cms_signature_is_detached_over_the_checksum() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pkcs12(&dir.join("installer-signing.p12"), P12_PASSWORD).unwrap();
    let signer = PackageSigner::new(&id, None).unwrap();
    let checksum = hash(MessageDigest::sha1(), b"compressed TOC bytes")
        .unwrap()
        .to_vec();
    let cms = signer.sign_cms(&checksum).unwrap();
    assert!(cms.len() <= signer.cms_signature_size());
    fs::write(dir.join("cms.der"), &cms).unwrap();
    fs::write(dir.join("checksum.bin"), &checksum).unwrap();
    fs::write(dir.join("changed.bin"), b"another checksum....").unwrap();

    let args = [
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "cms.der",
        "-CAfile",
        "dev-ca.pem",
    ];
    let ok = openssl(
        &dir,
        &[
            &args[..],
            &["-purpose", "any", "-content", "checksum.bin", "-out", "/dev/null"],
        ]
        .concat(),
    );
    assert_success(&ok, "openssl cms -verify of the package CMS signature");
    let bad = openssl(
        &dir,
        &[
            &args[..],
            &["-purpose", "any", "-content", "changed.bin", "-out", "/dev/null"],
        ]
        .concat(),
    );
    assert!(
        !bad.status.success(),
        "openssl accepted the CMS signature for another checksum"
    );

    let printed = openssl(
        &dir,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "cms.der"],
    );
    let text = String::from_utf8_lossy(&printed.stdout);
    for attr in [
        "contentType",
        "signingTime",
        "messageDigest",
        "sha256WithRSAEncryption",
    ] {
        assert!(text.contains(attr), "{attr} missing:\n{text}");
    }
    assert!(!text.contains("SMIMECapabilities"), "{text}");
    assert!(
        text.contains("eContent: <ABSENT>"),
        "content is not detached:\n{text}"
    );
}

#[test]
fn package_verifiers_report_signer_and_chain() {
    let (_tmp, dir) = dev_pki();
    // PEM with a chain file: the `.p12` holds the leaf only, like a Keychain export.
    let id = Identity::from_pem(
        &dir.join("installer-signing.pem"),
        &dir.join("installer-signing.key"),
        &[dir.join("dev-ca.pem")],
    )
    .unwrap();
    let signer = PackageSigner::new(&id, None).unwrap();
    let checksum = [7u8; 20];
    let mut cms = signer.sign_cms(&checksum).unwrap();
    cms.resize(signer.cms_signature_size(), 0); // as read back from the reserved heap space
    let der_ca = [
        "x509",
        "-in",
        "dev-ca.pem",
        "-outform",
        "DER",
        "-out",
        "dev-ca.cer",
    ];
    assert_success(&openssl(&dir, &der_ca), "openssl x509 -outform DER");
    let ca = load_certificates(&dir.join("dev-ca.cer")).unwrap();
    assert_eq!(ca, load_certificates(&dir.join("dev-ca.pem")).unwrap());

    let checked = verify_toc_cms(&cms, &checksum, Some(&ca)).unwrap();
    assert_eq!(checked.timestamp, None);
    let info = checked.signer;
    assert_eq!(info.subject, id.subject());
    assert_eq!(info.chain_trusted, Some(true), "{:?}", info.chain_error);
    assert_eq!(info.certificate_der, signer.certificates()[0]);
    assert!(verify_toc_cms(&cms, &[8u8; 20], Some(&ca)).is_err());

    let certs = signer.certificates();
    assert_eq!(certs.len(), 2, "KeyInfo: leaf then CA");
    assert_eq!(certs[1], ca[0].to_der().unwrap());
    let key_info = verify_key_info_chain(&certs, Some(&ca)).unwrap();
    assert_eq!(key_info.chain_trusted, Some(true), "{:?}", key_info.chain_error);
    let leaf_only = verify_key_info_chain(&certs[..1], None).unwrap();
    assert_eq!(leaf_only.chain_trusted, None);
}

#[test]
fn chain_check_tolerates_only_apple_critical_extensions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    assert_success(
        &openssl(dir, &[&ca[..], &["-subj", "/CN=test CA", "-days", "1"]].concat()),
        "CA",
    );
    let anchors = load_certificates(&dir.join("ca.pem")).unwrap();
    for (name, extension, trusted) in [
        ("apple", "1.2.840.113635.100.6.1.14=critical,DER:0500", true),
        ("unknown", "1.2.3.4=critical,DER:0500", false),
    ] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let leaf = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
        ];
        let issue = [
            "-subj", "/CN=leaf", "-days", "1", "-CA", "ca.pem", "-CAkey", "ca.key", "-addext", extension,
        ];
        assert_success(&openssl(dir, &[&leaf[..], &issue[..]].concat()), "leaf");
        // OpenSSL alone rejects both, which is what makes the Apple case worth handling.
        let plain = openssl(dir, &["verify", "-CAfile", "ca.pem", "-purpose", "any", &pem]);
        assert!(!plain.status.success(), "openssl verify accepted {name}");

        let der = load_certificates(&dir.join(&pem)).unwrap()[0].to_der().unwrap();
        let info = verify_key_info_chain(&[der], Some(&anchors)).unwrap();
        assert_eq!(
            info.chain_trusted,
            Some(trusted),
            "{name}: {:?}",
            info.chain_error
        );
        if !trusted {
            assert_eq!(info.chain_error.as_deref(), Some("unhandled critical extension"));
        }
    }
}

#[test]
fn apple_productsign_rsa_signature_verifies() {
    let fixture = XarSignature::read(Path::new(APPLE_FIXTURE));
    assert_eq!(
        verify_toc_rsa(&fixture.leaf_der, &fixture.checksum, &fixture.signature).unwrap(),
        RsaConvention::XarDigestInfo
    );
    let mut changed = fixture.checksum.clone();
    changed[19] ^= 0x01;
    assert!(verify_toc_rsa(&fixture.leaf_der, &changed, &fixture.signature).is_err());
}

#[test]
fn pkcs12_legacy_modern_and_pem_identities_load() {
    let (_tmp, dir) = dev_pki();
    let expected = Identity::from_pkcs12(&dir.join("profile-signing.p12"), P12_PASSWORD)
        .unwrap()
        .subject();
    for (name, legacy) in [("modern.p12", false), ("legacy.p12", true)] {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            "profile-signing.pem",
            "-inkey",
            "profile-signing.key",
        ];
        args.extend(["-certfile", "dev-ca.pem", "-passout", "env:P12PASS", "-out", name]);
        if legacy {
            args.push("-legacy");
        }
        assert_success(&openssl(&dir, &args), &format!("openssl pkcs12 -export ({name})"));
        let id = Identity::from_pkcs12(&dir.join(name), P12_PASSWORD).unwrap();
        assert_eq!(id.subject(), expected);
        assert_eq!(id.chain().len(), 1, "{name}: the CA travels in the .p12");
    }
    let legacy_info = p12_info(&dir, "legacy.p12", true);
    assert!(
        String::from_utf8_lossy(&legacy_info.stderr).contains("RC2"),
        "the legacy fixture is not RC2"
    );

    let pem = Identity::from_pem(
        &dir.join("profile-signing.pem"),
        &dir.join("profile-signing.key"),
        &[],
    )
    .unwrap();
    assert_eq!(pem.subject(), expected);
    assert_eq!(
        expected,
        "CN=confine development profile signing, O=confine (development only)"
    );
}

#[test]
fn dev_identity_p12_is_the_format_keychain_and_rcodesign_import() {
    let (_tmp, dir) = dev_pki();
    for name in ["installer-signing.p12", "profile-signing.p12"] {
        let info = p12_info(&dir, name, true);
        assert_success(&info, &format!("openssl pkcs12 -legacy -info {name}"));
        let text = String::from_utf8_lossy(&info.stderr);
        assert!(text.contains("MAC: sha1,"), "{name}: {text}");
        assert_eq!(
            text.matches("pbeWithSHA1And3-KeyTripleDES-CBC").count(),
            2,
            "{name}: key bag and certificate bag are PBE-SHA1-3DES: {text}"
        );
        assert!(!text.contains("PBES2") && !text.contains("AES"), "{name}: {text}");
        // Like a Keychain identity export, and what rcodesign needs: it signs with the last certificate.
        assert_eq!(text.matches("Certificate bag").count(), 1, "{name}: {text}");
        // Without -legacy too: 3DES is in OpenSSL 3's default provider.
        let modern = p12_info(&dir, name, false);
        assert_success(&modern, &format!("openssl pkcs12 -info {name}"));
    }
}

#[test]
fn rsa_signatures_of_either_convention_verify_and_say_which() {
    let (_tmp, dir) = dev_pki();
    let id = Identity::from_pkcs12(&dir.join("installer-signing.p12"), P12_PASSWORD).unwrap();
    let signer = PackageSigner::new(&id, None).unwrap();
    let leaf = &signer.certificates()[0];
    let checksum = hash(MessageDigest::sha1(), b"compressed TOC bytes")
        .unwrap()
        .to_vec();
    fs::write(dir.join("checksum.bin"), &checksum).unwrap();
    // rcodesign's convention, made by the openssl CLI: `dgst -sha256 -sign` hashes the checksum once more.
    let dgst = [
        "dgst",
        "-sha256",
        "-sign",
        "installer-signing.key",
        "-out",
        "rehashed.sig",
        "checksum.bin",
    ];
    assert_success(&openssl(&dir, &dgst), "openssl dgst -sha256 -sign");
    let rehashed = fs::read(dir.join("rehashed.sig")).unwrap();
    assert_eq!(
        verify_toc_rsa(leaf, &checksum, &rehashed).unwrap(),
        RsaConvention::Sha256OfChecksum
    );
    let ours = signer.sign_rsa(&checksum).unwrap();
    assert_ne!(ours, rehashed);
    assert_eq!(
        verify_toc_rsa(leaf, &checksum, &ours).unwrap(),
        RsaConvention::XarDigestInfo
    );
    let mut other = checksum.clone();
    other[0] ^= 1;
    assert!(verify_toc_rsa(leaf, &other, &rehashed).is_err());
    assert!(verify_toc_rsa(leaf, &other, &ours).is_err());
}

#[test]
fn identity_errors_are_clear_and_leak_no_secrets() {
    let (_tmp, dir) = dev_pki();
    let key_pem = fs::read_to_string(dir.join("installer-signing.key")).unwrap();
    let key_body_line = key_pem.lines().nth(1).unwrap().to_owned();

    let p12 = dir.join("profile-signing.p12");
    let wrong = Identity::from_pkcs12(&p12, "not the password").unwrap_err();
    let text = error_text(&wrong);
    assert!(
        text.contains("profile-signing.p12") && text.contains("wrong password"),
        "{text}"
    );
    assert!(
        !text.contains("not the password") && !text.contains(P12_PASSWORD),
        "{text}"
    );

    let mismatch = Identity::from_pem(
        &dir.join("profile-signing.pem"),
        &dir.join("installer-signing.key"),
        &[],
    )
    .unwrap_err();
    let text = error_text(&mismatch);
    assert!(text.contains("does not belong to certificate"), "{text}");
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains(&key_body_line),
        "{text}"
    );

    let missing = Identity::from_pkcs12(&dir.join("nope.p12"), P12_PASSWORD).unwrap_err();
    assert!(error_text(&missing).contains("nope.p12"), "{missing:#}");
    let not_p12 = Identity::from_pkcs12(&dir.join("dev-ca.pem"), P12_PASSWORD).unwrap_err();
    assert!(error_text(&not_p12).contains("not a PKCS#12"), "{not_p12:#}");

    let encrypt = [
        "pkey",
        "-in",
        "profile-signing.key",
        "-aes256",
        "-passout",
        "env:P12PASS",
        "-out",
        "enc.key",
    ];
    assert_success(&openssl(&dir, &encrypt), "openssl pkey -aes256");
    let encrypted =
        Identity::from_pem(&dir.join("profile-signing.pem"), &dir.join("enc.key"), &[]).unwrap_err();
    assert!(
        error_text(&encrypted).contains("the key is encrypted"),
        "{encrypted:#}"
    );

    let id = Identity::from_pkcs12(&p12, P12_PASSWORD).unwrap();
    let debug = format!("{id:?} {id:#?}");
    assert!(debug.contains("confine development profile signing"), "{debug}");
    assert!(!debug.contains("PKey") && !debug.contains("PRIVATE"), "{debug}");
}

#[test]
fn ec_identity_signs_profiles_but_not_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let req = [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ec.key",
        "-out",
        "ec.pem",
        "-days",
        "1",
        "-subj",
        "/CN=ec signer",
    ];
    assert_success(&openssl(dir, &req), "openssl req (EC)");
    let id = Identity::from_pem(&dir.join("ec.pem"), &dir.join("ec.key"), &[]).unwrap();
    fs::write(dir.join("p.der"), sign_profile(&id, PROFILE).unwrap()).unwrap();
    let ok = openssl(
        dir,
        &[
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            "p.der",
            "-out",
            "/dev/null",
        ],
    );
    assert_success(&ok, "openssl cms -verify of an ECDSA-signed profile");
    let printed = openssl(
        dir,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", "p.der"],
    );
    assert!(String::from_utf8_lossy(&printed.stdout).contains("ecdsa-with-SHA256"));

    let err = PackageSigner::new(&id, None).unwrap_err();
    assert!(err.to_string().contains("non-RSA key"), "{err}");
}

#[test]
fn dev_identity_files_are_private_and_shaped_like_apple_certificates() {
    let (_tmp, dir) = dev_pki();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dev-ca.pem",
            "installer-signing.key",
            "installer-signing.p12",
            "installer-signing.pem",
            "profile-signing.key",
            "profile-signing.p12",
            "profile-signing.pem"
        ]
    );
    for name in &names {
        let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }

    let eku = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "installer-signing.pem",
            "-noout",
            "-ext",
            "extendedKeyUsage",
        ],
    );
    let eku = String::from_utf8_lossy(&eku.stdout);
    assert!(
        eku.contains("critical") && eku.contains("1.2.840.113635.100.4.13"),
        "{eku}"
    );
    let text = openssl(&dir, &["x509", "-in", "installer-signing.pem", "-noout", "-text"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("1.2.840.113635.100.6.1.14"));
    let ca = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "dev-ca.pem",
            "-noout",
            "-subject",
            "-ext",
            "basicConstraints,keyUsage",
        ],
    );
    let ca = String::from_utf8_lossy(&ca.stdout);
    assert!(
        ca.contains("CN = confine development CA")
            && ca.contains("CA:TRUE")
            && ca.contains("Certificate Sign"),
        "{ca}"
    );

    // The installer chain also validates with OpenSSL's own verifier.
    let verify = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "dev-ca.pem",
            "-purpose",
            "any",
            "installer-signing.pem",
        ],
    );
    assert_success(&verify, "openssl verify of the installer certificate");

    // The profile certificate carries emailProtection, so the default S/MIME purpose accepts it too.
    let id = Identity::from_pkcs12(&dir.join("profile-signing.p12"), P12_PASSWORD).unwrap();
    fs::write(dir.join("p.der"), sign_profile(&id, PROFILE).unwrap()).unwrap();
    let smime = openssl(
        &dir,
        &[
            "cms",
            "-verify",
            "-CAfile",
            "dev-ca.pem",
            "-inform",
            "DER",
            "-in",
            "p.der",
            "-out",
            "/dev/null",
        ],
    );
    assert_success(&smime, "openssl cms -verify with the default purpose");
}

#[test]
fn dev_identity_refuses_to_overwrite() {
    let (_tmp, dir) = dev_pki();
    let before = fs::read(dir.join("dev-ca.pem")).unwrap();
    let err = create_dev_identity(&dir, P12_PASSWORD).unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.join("dev-ca.pem")).unwrap(), before);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The TOC checksum, RSA signature and leaf certificate of a signed xar, read with just enough parsing
/// for this test (the package reader is tested on its own).
struct XarSignature {
    checksum: Vec<u8>,
    signature: Vec<u8>,
    leaf_der: Vec<u8>,
}

impl XarSignature {
    fn read(path: &Path) -> XarSignature {
        let xar = fs::read(path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
        assert_eq!(&xar[..4], b"xar!");
        let header_size = usize::from(u16::from_be_bytes([xar[4], xar[5]]));
        let toc_len = usize::try_from(u64::from_be_bytes(xar[8..16].try_into().unwrap())).unwrap();
        let mut toc = String::new();
        flate2::read::ZlibDecoder::new(&xar[header_size..header_size + toc_len])
            .read_to_string(&mut toc)
            .unwrap();
        let heap = &xar[header_size + toc_len..];
        let slice = |anchor: &str| {
            let offset: usize = element(&toc, anchor, "offset").parse().unwrap();
            let size: usize = element(&toc, anchor, "size").parse().unwrap();
            heap[offset..offset + size].to_vec()
        };
        let cert_b64: String = element(&toc, "<signature style=\"RSA\">", "X509Certificate")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        XarSignature {
            checksum: slice("<checksum style=\"sha1\">"),
            signature: slice("<signature style=\"RSA\">"),
            leaf_der: openssl::base64::decode_block(&cert_b64).unwrap(),
        }
    }
}

/// The text of the first `<tag>` after `anchor`.
fn element<'t>(toc: &'t str, anchor: &str, tag: &str) -> &'t str {
    let from = toc.find(anchor).unwrap_or_else(|| panic!("{anchor} not in TOC"));
    let open = format!("<{tag}>");
    let start = from + toc[from..].find(&open).unwrap() + open.len();
    let end = start + toc[start..].find(&format!("</{tag}>")).unwrap();
    &toc[start..end]
}
