//! Signatures of a xar table of contents, as in a signed macOS flat package (`productsign` output).
//!
//! A signed xar carries two signatures over the **raw TOC checksum bytes** (heap offset 0), both listed in
//! the TOC with the certificate chain in an XML-DSig `KeyInfo`:
//! * `<signature style="RSA">`: RSA PKCS#1 v1.5 over `DigestInfo(<checksum algorithm>, checksum)`. The
//!   checksum is treated as an already computed digest and is *not* hashed again. This is the convention
//!   of Apple's libxar (`xar/lib/signature.c`, `xar --digestinfo-to-sign`); apple-xar 0.20 and therefore
//!   `rcodesign` instead sign SHA-256 of the checksum, which libxar-style verifiers reject.
//! * `<x-signature style="CMS">`: a detached CMS SignedData (RFC 5652) over the checksum bytes, SHA-256,
//!   signed attributes contentType, signingTime and messageDigest, certificates included. Stapling a
//!   notarization ticket requires it.
//!
//! Apple does not document the format; it is defined by Apple's open-source xar and productsign output.
//!
//! Not supported: DSA keys, ECDSA for packages (the `RSA` signature style needs an RSA key, as Developer ID
//! Installer certificates have), and RFC 3161 timestamps (see [`PackageSigner`] for why and what to do
//! instead).

use {
    super::{
        Identity, TocSigner,
        cms::{check_content_type, signer_and_certificates},
        trust::{SignerInfo, signer_info},
    },
    anyhow::{Context, Result, bail},
    openssl::{
        cms::{CMSOptions, CmsContentInfo},
        md::{Md, MdRef},
        pkey::Id,
        pkey_ctx::{PkeyCtx, PkeyCtxRef},
        rsa::Padding,
        x509::X509,
    },
};

/// Extra room reserved beyond a trial CMS signature. The real signature differs from the trial only in
/// the signingTime attribute (UTCTime and GeneralizedTime differ by 2 bytes) and DER length octets; 512
/// bytes is apple-xar's margin and leaves space without making the heap noticeably larger.
const CMS_RESERVE_MARGIN: usize = 512;

/// Signs xar TOCs for the xar writer (see [`TocSigner`]) with an RSA identity.
///
/// # No RFC 3161 timestamp
///
/// The CMS signature carries no timestamp token, deliberately:
/// * the openssl crate has no TS API, so it would take a hand-written TimeStampReq/TimeStampResp codec, a
///   DER rewrite of the SignerInfo to add the `id-aa-timeStampToken` unsigned attribute, and a raw HTTP
///   client for the TSA (Apple's is plain `http://timestamp.apple.com/ts01`);
/// * that would be the only network access in an otherwise offline build, and builds would fail whenever
///   the TSA is unreachable; the token's size is also unknown when the heap space is reserved.
///
/// What it costs: Apple's notary service rejects packages without a secure timestamp, and without one a
/// signature stops being valid once the signing certificate expires (Developer ID Installer: 5 years).
/// MDM installs of a current build need neither. For notarized public distribution, build the package
/// unsigned and sign it with `rcodesign sign` (which timestamps with Apple's TSA by default), then
/// `rcodesign notarize --staple`; or use `productsign --timestamp` on a Mac.
pub struct PackageSigner<'a> {
    identity: &'a Identity,
    /// DER of the leaf, then the chain as loaded, for `KeyInfo`.
    certificates: Vec<Vec<u8>>,
    cms_reserve: usize,
}

impl std::fmt::Debug for PackageSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageSigner")
            .field("identity", self.identity)
            .field("cms_reserve", &self.cms_reserve)
            .finish()
    }
}

impl<'a> PackageSigner<'a> {
    /// Checks that the identity can sign packages (RSA key) and sizes the CMS reservation with a trial
    /// signature.
    pub fn new(identity: &'a Identity) -> Result<PackageSigner<'a>> {
        if identity.key().id() != Id::RSA {
            bail!(
                "\"{}\" has a non-RSA key; xar package signatures need RSA (Developer ID Installer keys are RSA)",
                identity.subject()
            );
        }
        let mut certificates = vec![identity.certificate().to_der()?];
        for cert in identity.chain() {
            certificates.push(cert.to_der()?);
        }
        let trial = cms_sign(identity, &[0; 20])?;
        Ok(PackageSigner {
            identity,
            certificates,
            cms_reserve: trial.len() + CMS_RESERVE_MARGIN,
        })
    }
}

impl TocSigner for PackageSigner<'_> {
    fn certificates(&self) -> Vec<Vec<u8>> {
        self.certificates.clone()
    }

    fn rsa_signature_size(&self) -> usize {
        self.identity.key().size()
    }

    fn cms_signature_size(&self) -> usize {
        self.cms_reserve
    }

    fn sign_rsa(&self, toc_checksum: &[u8]) -> Result<Vec<u8>> {
        let mut ctx = PkeyCtx::new(self.identity.key())?;
        ctx.sign_init()?;
        use_digest_info(&mut ctx, toc_checksum)?;
        let mut sig = Vec::new();
        ctx.sign_to_vec(toc_checksum, &mut sig)
            .context("RSA signing of the TOC checksum failed")?;
        Ok(sig)
    }

    fn sign_cms(&self, toc_checksum: &[u8]) -> Result<Vec<u8>> {
        let der = cms_sign(self.identity, toc_checksum)?;
        if der.len() > self.cms_reserve {
            bail!(
                "CMS signature is {} bytes, more than the {} reserved",
                der.len(),
                self.cms_reserve
            );
        }
        verify_toc_cms(&der, toc_checksum, None).context("the fresh CMS signature does not verify")?;
        Ok(der)
    }
}

/// Checks a TOC `<signature style="RSA">` with the public key of `cert_der` (the first `KeyInfo`
/// certificate): PKCS#1 v1.5 over `DigestInfo(alg, toc_checksum)`, with the algorithm inferred from the
/// checksum length (20 = sha1, 32 = sha256, 64 = sha512).
pub fn verify_toc_rsa(cert_der: &[u8], toc_checksum: &[u8], signature: &[u8]) -> Result<()> {
    let cert = X509::from_der(cert_der).context("the KeyInfo certificate is not valid DER")?;
    let key = cert
        .public_key()
        .context("cannot read the KeyInfo certificate's public key")?;
    if key.id() != Id::RSA {
        bail!("the KeyInfo certificate has no RSA key");
    }
    let mut ctx = PkeyCtx::new(&key)?;
    ctx.verify_init()?;
    use_digest_info(&mut ctx, toc_checksum)?;
    // A mismatch can surface as `Ok(false)` or as an OpenSSL error ("padding check failed"), depending on
    // where the comparison fails; both mean the same thing here.
    match ctx.verify(toc_checksum, signature) {
        Ok(true) => Ok(()),
        _ => bail!("the RSA signature does not match the TOC checksum (package modified after signing?)"),
    }
}

/// Checks a TOC `<x-signature style="CMS">`: a detached SignedData over `toc_checksum`. Zero padding after
/// the DER (the unused part of the reserved space) is ignored. With `ca`, also reports whether the signer
/// chains to one of those certificates, using the certificates embedded in the CMS as intermediates.
pub fn verify_toc_cms(cms_der: &[u8], toc_checksum: &[u8], ca: Option<&[X509]>) -> Result<SignerInfo> {
    let mut cms = CmsContentInfo::from_der(cms_der).context("the CMS signature is not valid DER")?;
    check_content_type(cms_der)?;
    cms.verify(
        None,
        None,
        Some(toc_checksum),
        None,
        CMSOptions::BINARY | CMSOptions::NOVERIFY,
    )
    .context("the CMS signature does not match the TOC checksum (package modified after signing?)")?;
    let (signer, embedded) = signer_and_certificates(cms_der)?;
    signer_info(&signer, &embedded, ca)
}

/// Reports who the `KeyInfo` certificates (leaf first, DER) name and, with `ca`, whether the leaf chains
/// to one of those certificates through the others.
pub fn verify_key_info_chain(certificates: &[Vec<u8>], ca: Option<&[X509]>) -> Result<SignerInfo> {
    let mut certs = Vec::with_capacity(certificates.len());
    for (i, der) in certificates.iter().enumerate() {
        certs.push(
            X509::from_der(der).with_context(|| format!("KeyInfo certificate {} is not valid DER", i + 1))?,
        );
    }
    let Some((leaf, rest)) = certs.split_first() else {
        bail!("the signature lists no certificates");
    };
    signer_info(leaf, rest, ca)
}

/// Detached CMS over the checksum. NOSMIMECAP drops the S/MIME capabilities attribute, leaving exactly
/// contentType, signingTime and messageDigest as productsign and apple-xar emit.
fn cms_sign(identity: &Identity, toc_checksum: &[u8]) -> Result<Vec<u8>> {
    let chain = identity.chain_without_root()?;
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY | CMSOptions::NOSMIMECAP;
    let cms = CmsContentInfo::sign(
        Some(identity.certificate()),
        Some(identity.key()),
        Some(&chain),
        Some(toc_checksum),
        flags,
    )
    .with_context(|| {
        format!(
            "cannot make the CMS package signature with \"{}\"",
            identity.subject()
        )
    })?;
    Ok(cms.to_der()?)
}

/// Makes an initialised RSA context take its input as a precomputed digest: with the signature md set,
/// OpenSSL wraps the input in that algorithm's DigestInfo (PKCS#1 v1.5) instead of hashing it.
fn use_digest_info<T>(ctx: &mut PkeyCtxRef<T>, toc_checksum: &[u8]) -> Result<()> {
    ctx.set_rsa_padding(Padding::PKCS1)?;
    ctx.set_signature_md(digest_for_checksum(toc_checksum)?)?;
    Ok(())
}

fn digest_for_checksum(toc_checksum: &[u8]) -> Result<&'static MdRef> {
    Ok(match toc_checksum.len() {
        20 => Md::sha1(),
        32 => Md::sha256(),
        64 => Md::sha512(),
        n => bail!("a {n}-byte TOC checksum matches no xar checksum algorithm (sha1, sha256, sha512)"),
    })
}
