//! Signing identities: a leaf certificate, its private key and the certificates that chain it to a root.
//!
//! Two sources are supported:
//! * PKCS#12 (RFC 7292), the `.p12` that Keychain Access exports (File → Export Items…, described in
//!   Apple's Keychain Access User Guide) and that CI secret stores usually hold. Both modern (AES-256/PBKDF2) and
//!   legacy (RC2-40/3DES, `openssl pkcs12 -export -legacy`, older macOS exports) encryption work; the latter
//!   needs OpenSSL 3's `legacy` provider, which is loaded once per process.
//! * PEM files: one certificate, one *unencrypted* private key (PKCS#8 or traditional), and optional
//!   chain files holding intermediate and root certificates (in any order; a copy of the leaf is ignored).
//!
//! Not supported: encrypted PEM keys (convert with `openssl pkey -in key.pem -out plain.pem` or use a
//! `.p12`), DER-encoded leaf or key files (CA files may be DER), hardware tokens and keychains.
//!
//! Private keys and passwords never appear in error messages or `Debug` output.

use {
    crate::limits::{MAX_IDENTITY_BYTES, read_regular},
    anyhow::{Context, Result, anyhow, bail},
    openssl::{
        pkcs12::Pkcs12,
        pkey::{Id, PKey, Private},
        provider::Provider,
        stack::Stack,
        x509::{X509, X509NameRef, X509Ref, X509VerifyResult},
    },
    std::{
        fmt,
        path::{Path, PathBuf},
        sync::OnceLock,
    },
};

/// A certificate with its private key and chain, ready to sign profiles and packages.
// Clone shares the underlying OpenSSL objects (reference-counted); nothing secret is copied out.
#[derive(Clone)]
pub struct Identity {
    cert: X509,
    key: PKey<Private>,
    /// Issuers of `cert`, nearest first, possibly ending with a self-signed root.
    chain: Vec<X509>,
}

impl fmt::Debug for Identity {
    // Hand-written so that the private key can never end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads a PKCS#12 file. `password` is the file's password (the CLI reads it from
    /// `CONFINE_IDENTITY_PASSWORD`); it is never included in errors.
    pub fn from_pkcs12(path: &Path, password: &str) -> Result<Identity> {
        let der = read_regular(path, MAX_IDENTITY_BYTES).context("cannot read the identity file")?;
        let legacy_available = load_legacy_provider();
        let parsed = Pkcs12::from_der(&der)
            .with_context(|| format!("{} is not a PKCS#12 (.p12) file", path.display()))?
            .parse2(password)
            .map_err(|_| {
                // The OpenSSL error adds nothing for the admin ("mac verify failure") and is dropped
                // so that nothing derived from the password can leak into logs.
                anyhow!(
                    "cannot decrypt {}: wrong password in CONFINE_IDENTITY_PASSWORD, or the file is damaged{}",
                    path.display(),
                    if legacy_available { "" } else { LEGACY_UNAVAILABLE }
                )
            })?;
        let cert = parsed.cert.ok_or_else(|| {
            anyhow!(
                "{} holds no certificate; export the identity (certificate and key) again",
                path.display()
            )
        })?;
        let key = parsed.pkey.ok_or_else(|| {
            anyhow!(
                "{} holds no private key; export the identity (certificate and key) again",
                path.display()
            )
        })?;
        let extra: Vec<X509> = parsed.ca.map(|s| s.into_iter().collect()).unwrap_or_default();
        Identity::new(cert, key, extra).with_context(|| format!("invalid identity in {}", path.display()))
    }

    /// Loads a PEM certificate, its unencrypted PEM private key and optional PEM chain files.
    pub fn from_pem(cert: &Path, key: &Path, chain: &[PathBuf]) -> Result<Identity> {
        let leaf = first_certificate(cert)?;
        let key_pem = read_regular(key, MAX_IDENTITY_BYTES).context("cannot read the private key file")?;
        let pkey = parse_private_key(&key_pem)
            .with_context(|| format!("cannot load private key {}", key.display()))?;
        let mut extra = Vec::new();
        for path in chain {
            extra.extend(load_certificates(path)?);
        }
        Identity::new(leaf, pkey, extra).with_context(|| {
            format!(
                "certificate {} and key {} do not form an identity",
                cert.display(),
                key.display()
            )
        })
    }

    /// Builds an identity from parts, checking that the key belongs to the certificate and ordering the
    /// chain leaf-to-root.
    pub fn new(cert: X509, key: PKey<Private>, chain: Vec<X509>) -> Result<Identity> {
        let cert_key = cert
            .public_key()
            .context("cannot read the certificate's public key")?;
        if !cert_key.public_eq(&key) {
            bail!(
                "the private key does not belong to certificate \"{}\"; pass the key that was generated with it",
                name_to_string(cert.subject_name())
            );
        }
        if !matches!(key.id(), Id::RSA | Id::EC) {
            bail!("unsupported key type: only RSA and EC (ECDSA) keys can sign");
        }
        let chain = order_chain(&cert, chain);
        Ok(Identity { cert, key, chain })
    }

    /// The leaf certificate's subject, e.g. `CN=Developer ID Installer: Example (TEAMID), O=Example`.
    pub fn subject(&self) -> String {
        name_to_string(self.cert.subject_name())
    }

    /// The leaf (signing) certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// Issuers of the leaf, nearest first, as loaded (a self-signed root is kept if it was supplied).
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    pub(crate) fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// The chain without self-signed roots, for embedding in CMS: a verifier must already hold the root,
    /// so shipping it only adds bytes (and tempts naive verifiers to trust it).
    pub(crate) fn chain_without_root(&self) -> Result<Stack<X509>> {
        let mut stack = Stack::new()?;
        for cert in self.chain.iter().filter(|c| !is_self_signed(c)) {
            stack.push(cert.clone())?;
        }
        Ok(stack)
    }
}

/// Loads every certificate in a PEM file, or the single certificate in a DER file (for example a CA given
/// with `--ca`).
pub fn load_certificates(path: &Path) -> Result<Vec<X509>> {
    let bytes = read_regular(path, MAX_IDENTITY_BYTES).context("cannot read the certificate file")?;
    if bytes.first() == Some(&0x30) {
        let cert =
            X509::from_der(&bytes).with_context(|| format!("{} is not a DER certificate", path.display()))?;
        return Ok(vec![cert]);
    }
    let certs = X509::stack_from_pem(&bytes)
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{} contains no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

/// A distinguished name as `CN=…, O=…`, in certificate order.
pub(crate) fn name_to_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let field = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_else(|_| "?".to_owned());
            format!("{field}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn is_self_signed(cert: &X509Ref) -> bool {
    cert.issued(cert) == X509VerifyResult::OK
}

fn first_certificate(path: &Path) -> Result<X509> {
    let mut certs = load_certificates(path)?;
    Ok(certs.remove(0))
}

fn parse_private_key(pem: &[u8]) -> Result<PKey<Private>> {
    if pem.windows(9).any(|w| w == b"ENCRYPTED") {
        bail!(
            "the key is encrypted; decrypt it with `openssl pkey -in KEY -out PLAIN` or use a .p12 identity"
        );
    }
    // The callback form stops OpenSSL from prompting on a terminal for a passphrase.
    PKey::private_key_from_pem_callback(pem, |_| Ok(0)).map_err(|_| {
        anyhow!("not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA/EC PRIVATE KEY-----)")
    })
}

/// Orders `certs` as issuer-of-leaf first, then its issuer, and so on. Copies of the leaf (a
/// "fullchain.pem" passed as `--chain`) and duplicates are dropped; other certificates that are not on the
/// path are appended in their original order so nothing else the admin supplied disappears silently.
fn order_chain(leaf: &X509Ref, certs: Vec<X509>) -> Vec<X509> {
    let mut pool: Vec<X509> = Vec::with_capacity(certs.len());
    for cert in certs {
        if *leaf != cert && !pool.contains(&cert) {
            pool.push(cert);
        }
    }
    let mut ordered = Vec::with_capacity(pool.len());
    let mut current = leaf.to_owned();
    while let Some(pos) = pool
        .iter()
        .position(|c| c.issued(&current) == X509VerifyResult::OK)
    {
        let issuer = pool.remove(pos);
        let reached_root = is_self_signed(&issuer);
        current = issuer.clone();
        ordered.push(issuer);
        if reached_root {
            break;
        }
    }
    ordered.extend(pool);
    ordered
}

const LEGACY_UNAVAILABLE: &str = " (OpenSSL's legacy provider is unavailable, so RC2-encrypted .p12 \
     files cannot be read; re-export without -legacy)";

/// Loads OpenSSL 3's `legacy` provider (RC2, RC4, DES…) next to `default`, once per process, and tells
/// whether that worked.
///
/// Keychain exports and `openssl pkcs12 -export -legacy` encrypt the certificate bag with RC2-40, which
/// OpenSSL 3 only implements in the legacy provider. Loading any provider explicitly disables the implicit
/// `default` one, so both are loaded. The handles live in a static: dropping them would unload the
/// providers again.
fn load_legacy_provider() -> bool {
    static PROVIDERS: OnceLock<Option<(Provider, Provider)>> = OnceLock::new();
    PROVIDERS
        .get_or_init(|| {
            let legacy = Provider::load(None, "legacy").ok()?;
            let default = Provider::load(None, "default").ok()?;
            Some((legacy, default))
        })
        .is_some()
}

#[cfg(test)]
mod test {
    use {
        super::*,
        openssl::{
            asn1::Asn1Time,
            bn::BigNum,
            hash::MessageDigest,
            rsa::Rsa,
            x509::{X509Builder, X509NameBuilder},
        },
    };

    fn cert_for(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
            .unwrap();
        b.build()
    }

    fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    #[test]
    fn orders_chain_leaf_to_root_and_drops_root_for_cms() {
        let (root_key, mid_key, leaf_key) = (rsa_key(), rsa_key(), rsa_key());
        let root = cert_for("root", &root_key, None);
        let mid = cert_for("mid", &mid_key, Some((&root, &root_key)));
        let leaf = cert_for("leaf", &leaf_key, Some((&mid, &mid_key)));
        // As from a "fullchain.pem" plus a root bundle: leaf copy, duplicate root, wrong order.
        let supplied = vec![root.clone(), leaf.clone(), mid, root];
        let id = Identity::new(leaf, leaf_key, supplied).unwrap();
        let names: Vec<String> = id
            .chain()
            .iter()
            .map(|c| name_to_string(c.subject_name()))
            .collect();
        assert_eq!(names, ["CN=mid", "CN=root"]);
        assert_eq!(id.chain_without_root().unwrap().len(), 1);
        assert_eq!(
            format!("{id:?}"),
            "Identity { subject: \"CN=leaf\", chain_len: 2, .. }"
        );
    }

    #[test]
    fn rejects_key_of_another_certificate() {
        let key = rsa_key();
        let cert = cert_for("leaf", &key, None);
        let err = Identity::new(cert, rsa_key(), vec![]).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not belong to certificate \"CN=leaf\""),
            "{err}"
        );
    }
}
