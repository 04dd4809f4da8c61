//! A throwaway development PKI for `confine identity new --out DIR`: a self-signed CA and two leaves, one
//! for signing configuration profiles and one for signing installer packages.
//!
//! The certificates follow the shape of Apple's (RFC 5280 profiles; Apple's Developer ID certificate
//! contents are described in "Apple Developer ID" CPS documents at apple.com/certificateauthority) but are
//! trusted by nothing until an admin installs the CA, e.g. with a Certificate payload through MDM. They
//! are for testing the pipeline end to end, not for distribution: Gatekeeper rejects packages that are not
//! signed with a real Developer ID Installer certificate and notarized.
//!
//! Files written (all mode 0600, never overwriting):
//! * `dev-ca.pem`: the CA certificate (import it on test Macs, pass it to `--ca`). Its private key is
//!   discarded after signing the two leaves, so nothing else can ever be issued under this CA; run the
//!   command again for a fresh set.
//! * `profile-signing.{pem,key,p12}` and `installer-signing.{pem,key,p12}`: each leaf as PEM certificate,
//!   unencrypted PKCS#8 PEM key, and a PKCS#12 file protected with the caller's password (the CLI uses
//!   `CONFINE_IDENTITY_PASSWORD`). The `.p12` is what Keychain Access exports for an identity: the leaf
//!   and its key only, PBE-SHA1-3DES for both, SHA-1 MAC. Keychain Access and rcodesign cannot open
//!   OpenSSL 3's default (PBES2/AES-256 with a SHA-256 MAC), and rcodesign 0.29 signs with the *last*
//!   certificate it finds in a `.p12`, so a CA stored after the leaf would become its signer. The CA is
//!   `dev-ca.pem`, a trust anchor that nothing needs inside the identity. OpenSSL reads the `.p12` with
//!   or without `-legacy`, since 3DES is in its default provider.
//!
//! Unix only (file modes).

use {
    anyhow::{Context, Result, bail},
    openssl::{
        asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time},
        bn::{BigNum, MsbOption},
        hash::MessageDigest,
        nid::Nid,
        pkcs12::Pkcs12,
        pkey::{PKey, Private},
        rsa::Rsa,
        x509::{
            X509, X509Builder, X509Extension, X509Name, X509NameBuilder,
            extension::{
                AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
            },
        },
    },
    std::{
        fs::{DirBuilder, OpenOptions},
        io::Write,
        os::unix::fs::{DirBuilderExt, OpenOptionsExt},
        path::{Path, PathBuf},
        time::{SystemTime, UNIX_EPOCH},
    },
};

/// Common name of the development CA.
pub const DEV_CA_NAME: &str = "confine development CA";
/// Common name of the development profile-signing certificate.
pub const DEV_PROFILE_SIGNER_NAME: &str = "confine development profile signing";
/// Common name of the development installer-signing certificate.
pub const DEV_INSTALLER_SIGNER_NAME: &str = "confine development installer signing";

/// Extended key usage "Developer ID Installer package signing" (Apple), marked critical in Apple's leaves.
const OID_EKU_APPLE_INSTALLER: &str = "1.2.840.113635.100.4.13";
/// Apple's marker extension for a Developer ID Installer leaf (value: DER NULL).
const OID_EXT_DEVELOPER_ID_INSTALLER: &str = "1.2.840.113635.100.6.1.14";

const CA_DAYS: u32 = 3650;
const LEAF_DAYS: u32 = 825;
const RSA_BITS: u32 = 2048;

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Role {
    Profile,
    Installer,
}

impl Role {
    fn stem(self) -> &'static str {
        match self {
            Role::Profile => "profile-signing",
            Role::Installer => "installer-signing",
        }
    }

    fn common_name(self) -> &'static str {
        match self {
            Role::Profile => DEV_PROFILE_SIGNER_NAME,
            Role::Installer => DEV_INSTALLER_SIGNER_NAME,
        }
    }
}

/// Creates the development CA and the two signing identities in `out_dir` (created with mode 0700 if
/// missing) and returns the paths written. Refuses to start if any of the files already exists.
/// `p12_password` protects the `.p12` files.
pub fn create_dev_identity(out_dir: &Path, p12_password: &str) -> Result<Vec<PathBuf>> {
    let ca_path = out_dir.join("dev-ca.pem");
    let mut paths = vec![ca_path.clone()];
    for role in [Role::Profile, Role::Installer] {
        for ext in ["pem", "key", "p12"] {
            paths.push(out_dir.join(format!("{}.{ext}", role.stem())));
        }
    }
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        bail!(
            "refusing to overwrite {}; remove the old identity files or choose another --out",
            existing.display()
        );
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let (ca, ca_key) = make_ca()?;
    write_new(&ca_path, &ca.to_pem()?)?;
    for role in [Role::Profile, Role::Installer] {
        write_leaf(out_dir, role, &ca, &ca_key, p12_password)?;
    }
    Ok(paths)
}

fn write_leaf(out_dir: &Path, role: Role, ca: &X509, ca_key: &PKey<Private>, password: &str) -> Result<()> {
    let key = PKey::from_rsa(Rsa::generate(RSA_BITS)?)?;
    let cert = make_leaf(role, &key, ca, ca_key)?;
    let p12 = Pkcs12::builder()
        .name(role.common_name())
        .pkey(&key)
        .cert(&cert)
        .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
        .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
        .mac_md(MessageDigest::sha1())
        .build2(password)?;
    let stem = out_dir.join(role.stem());
    write_new(&stem.with_extension("pem"), &cert.to_pem()?)?;
    write_new(&stem.with_extension("key"), &key.private_key_to_pem_pkcs8()?)?;
    write_new(&stem.with_extension("p12"), &p12.to_der()?)?;
    Ok(())
}

/// Writes a new file with mode 0600 from the start (no window in which it is world-readable), failing if
/// it exists.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn make_ca() -> Result<(X509, PKey<Private>)> {
    let key = PKey::from_rsa(Rsa::generate(RSA_BITS)?)?;
    let name = name(DEV_CA_NAME)?;
    let mut b = base_builder(&name, &name, &key, CA_DAYS)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}

fn make_leaf(role: Role, key: &PKey<Private>, ca: &X509, ca_key: &PKey<Private>) -> Result<X509> {
    let mut b = base_builder(&name(role.common_name())?, ca.subject_name(), key, LEAF_DAYS)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    match role {
        // Both EKUs: code signing is what Developer ID certificates used for profiles carry, and email
        // protection satisfies OpenSSL's default S/MIME purpose, so `openssl cms -verify` passes even
        // without `-purpose any`.
        Role::Profile => b.append_extension(
            ExtendedKeyUsage::new()
                .code_signing()
                .email_protection()
                .build()?,
        )?,
        Role::Installer => {
            b.append_extension(
                ExtendedKeyUsage::new()
                    .critical()
                    .other(OID_EKU_APPLE_INSTALLER)
                    .build()?,
            )?;
            b.append_extension(developer_id_installer_marker()?)?;
        }
    }
    let ctx = b.x509v3_context(Some(ca), None);
    let ski = SubjectKeyIdentifier::new().build(&ctx)?;
    let aki = AuthorityKeyIdentifier::new().keyid(true).build(&ctx)?;
    b.append_extension(ski)?;
    b.append_extension(aki)?;
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// Apple marks this extension critical in real certificates. Here it is non-critical: OpenSSL (and other
/// generic X.509 verifiers) reject chains with critical extensions they do not know, which would make the
/// development chain unverifiable on Linux, and nothing trusts this CA for Developer ID purposes anyway.
fn developer_id_installer_marker() -> Result<X509Extension> {
    let oid = Asn1Object::from_str(OID_EXT_DEVELOPER_ID_INSTALLER)?;
    let der_null = Asn1OctetString::new_from_bytes(&[0x05, 0x00])?;
    Ok(X509Extension::new_from_der(&oid, false, &der_null)?)
}

fn base_builder(
    subject: &X509Name,
    issuer: &openssl::x509::X509NameRef,
    key: &PKey<Private>,
    days: u32,
) -> Result<X509Builder> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = random_serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    // Back-dated one hour so a Mac whose clock is slightly behind the CI runner accepts it immediately.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    let start = i64::try_from(now).context("system clock out of range")? - 3600;
    let (not_before, not_after) = (Asn1Time::from_unix(start)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok(b)
}

/// 64 random bits, top bit set so the DER length is fixed; RFC 5280 asks for unique positive serials.
fn random_serial() -> Result<Asn1Integer> {
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::ONE, false)?;
    Ok(serial.to_asn1_integer()?)
}

fn name(common_name: &str) -> Result<X509Name> {
    let mut b = X509NameBuilder::new()?;
    b.append_entry_by_text("CN", common_name)?;
    b.append_entry_by_text("O", "confine (development only)")?;
    Ok(b.build())
}
