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
//! The CMS signature follows productsign: the signer's chain below the root is embedded, the
//! SignerInfo's signature algorithm is `sha256WithRSAEncryption`, and with a time-stamping authority an
//! RFC 3161 token over the signature value is added as an unsigned attribute ([`super::timestamp`]).
//! OpenSSL's CMS API always writes `rsaEncryption` there and cannot add unsigned attributes, so both are
//! done by rewriting the SignerInfo's DER (`sign::der`); neither is covered by the signature itself.
//!
//! Verification accepts both RSA conventions found in the wild (see [`RsaConvention`]).
//!
//! Not supported: DSA keys, ECDSA for packages (the `RSA` signature style needs an RSA key, as Developer
//! ID Installer certificates have).

use {
    super::{
        Identity, TocSigner,
        cms::{check_content_type, signer_and_certificates},
        der::{self, Tlv},
        timestamp::{self, Timestamp, TimestampAuthority},
        trust::{SignerInfo, signer_info},
    },
    anyhow::{Context, Result, bail, ensure},
    openssl::{
        cms::{CMSOptions, CmsContentInfo},
        hash::{MessageDigest, hash},
        md::{Md, MdRef},
        pkey::Id,
        pkey_ctx::{PkeyCtx, PkeyCtxRef},
        rsa::Padding,
        x509::X509,
    },
};

/// The room productsign reserves for the CMS signature (Zoom's 2025 TOC: `<size>9216</size>`), so that a
/// later re-sign in place, e.g. with a longer chain or a bigger timestamp token, still fits.
const APPLE_CMS_RESERVE: usize = 9216;
/// Extra room beyond a trial CMS signature, when that is bigger than Apple's reservation. The real
/// signature differs from the trial in the signingTime encoding and the token's time, serial and nonce;
/// 512 bytes is apple-xar's margin.
const CMS_RESERVE_MARGIN: usize = 512;

/// Signs xar TOCs for the xar writer (see [`TocSigner`]) with an RSA identity, timestamping the CMS
/// signature when given a [`TimestampAuthority`].
pub struct PackageSigner<'a> {
    identity: &'a Identity,
    /// DER of the leaf, then the chain as loaded, for `KeyInfo`.
    certificates: Vec<Vec<u8>>,
    cms_reserve: usize,
    timestamps: Option<TimestampAuthority>,
}

impl std::fmt::Debug for PackageSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageSigner")
            .field("identity", self.identity)
            .field("cms_reserve", &self.cms_reserve)
            .field(
                "timestamps",
                &self.timestamps.as_ref().map(TimestampAuthority::url),
            )
            .finish()
    }
}

impl<'a> PackageSigner<'a> {
    /// Checks that the identity can sign packages (RSA key) and sizes the CMS reservation with a trial
    /// signature. With `timestamps`, the trial is timestamped too: that sizes the token, and an
    /// unreachable or misbehaving authority fails the build before anything is written.
    pub fn new(identity: &'a Identity, timestamps: Option<TimestampAuthority>) -> Result<PackageSigner<'a>> {
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
        let trial = cms_sign(identity, &[0; 20], timestamps.as_ref())?;
        Ok(PackageSigner {
            identity,
            certificates,
            cms_reserve: APPLE_CMS_RESERVE.max(trial.len() + CMS_RESERVE_MARGIN),
            timestamps,
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
        let der = cms_sign(self.identity, toc_checksum, self.timestamps.as_ref())?;
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

/// Which message a TOC `<signature style="RSA">` signs. Both are PKCS#1 v1.5 and both are on packages
/// that macOS installs: Fleet ships notarized packages signed by rcodesign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaConvention {
    /// `DigestInfo(<checksum algorithm>, checksum)`: the checksum taken as the digest, not hashed again.
    /// Apple's libxar and productsign (the 2011 fixture verifies so), and what confine writes.
    XarDigestInfo,
    /// `DigestInfo(sha256, SHA-256(checksum))`: the checksum hashed once more. apple-xar's `XarSigner`,
    /// hence `rcodesign sign`.
    Sha256OfChecksum,
}

impl std::fmt::Display for RsaConvention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::XarDigestInfo => "xar DigestInfo over the checksum",
            Self::Sha256OfChecksum => "SHA-256 of the checksum, rcodesign's convention",
        })
    }
}

/// Checks a TOC `<signature style="RSA">` with the public key of `cert_der` (the first `KeyInfo`
/// certificate) under either [`RsaConvention`], and says which one matched. For the xar convention the
/// algorithm is inferred from the checksum length (20 = sha1, 32 = sha256, 64 = sha512).
pub fn verify_toc_rsa(cert_der: &[u8], toc_checksum: &[u8], signature: &[u8]) -> Result<RsaConvention> {
    let cert = X509::from_der(cert_der).context("the KeyInfo certificate is not valid DER")?;
    let key = cert
        .public_key()
        .context("cannot read the KeyInfo certificate's public key")?;
    if key.id() != Id::RSA {
        bail!("the KeyInfo certificate has no RSA key");
    }
    let rehashed = hash(MessageDigest::sha256(), toc_checksum)?;
    let candidates = [
        (RsaConvention::XarDigestInfo, toc_checksum),
        (RsaConvention::Sha256OfChecksum, rehashed.as_ref()),
    ];
    for (convention, digest) in candidates {
        let mut ctx = PkeyCtx::new(&key)?;
        ctx.verify_init()?;
        use_digest_info(&mut ctx, digest)?;
        // A mismatch can surface as `Ok(false)` or as an OpenSSL error ("padding check failed"),
        // depending on where the comparison fails; both mean the same thing here.
        if ctx.verify(digest, signature).unwrap_or(false) {
            return Ok(convention);
        }
    }
    bail!("the RSA signature does not match the TOC checksum (package modified after signing?)")
}

/// What a valid TOC `<x-signature style="CMS">` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageCms {
    pub signer: SignerInfo,
    /// The RFC 3161 timestamp, checked against the signature value.
    pub timestamp: Option<Timestamp>,
}

/// Checks a TOC `<x-signature style="CMS">`: a detached SignedData over `toc_checksum`, and its
/// timestamp token if it has one. Zero padding after the DER (the unused part of the reserved space) is
/// ignored. With `ca`, also reports whether the signer chains to one of those certificates, using the
/// certificates embedded in the CMS as intermediates.
pub fn verify_toc_cms(cms_der: &[u8], toc_checksum: &[u8], ca: Option<&[X509]>) -> Result<PackageCms> {
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
    let timestamp = match signature_and_timestamp_token(cms_der)? {
        (_, None) => None,
        (signature, Some(token)) => {
            Some(timestamp::check_token(&token, &signature, None).context("timestamp token")?)
        }
    };
    Ok(PackageCms {
        signer: signer_info(&signer, &embedded, ca)?,
        timestamp,
    })
}

/// The single SignerInfo's signature value and, if present, its `id-aa-timeStampToken` (DER
/// ContentInfo).
pub fn signature_and_timestamp_token(cms_der: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let fields = signer_info_fields(cms_der)?;
    let signature = signature_position(&fields)?;
    let token = match fields.last().filter(|f| f.tag == der::context(1)) {
        None => None,
        Some(unsigned) => timestamp_attribute(unsigned)?,
    };
    Ok((fields[signature].contents.to_vec(), token))
}

/// `[1] IMPLICIT SET OF Attribute`, `Attribute ::= SEQUENCE { OID, SET OF value }`: the first value of
/// the timestamp-token attribute.
fn timestamp_attribute(unsigned: &Tlv) -> Result<Option<Vec<u8>>> {
    let attributes = unsigned
        .children()
        .context("the CMS unsigned attributes are not DER")?;
    for attribute in attributes {
        let parts = attribute
            .children()
            .context("a CMS unsigned attribute is not DER")?;
        if let [oid, values] = parts.as_slice()
            && oid.contents == timestamp::OID_TIMESTAMP_TOKEN
        {
            let token = values
                .children()
                .and_then(|v| v.first().copied())
                .context("the timestamp attribute holds no token")?;
            return Ok(Some(token.encoded.to_vec()));
        }
    }
    Ok(None)
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

/// Detached CMS over the checksum, shaped like productsign's, with a checked timestamp token when
/// `timestamps` is given. NOSMIMECAP drops the S/MIME capabilities attribute, leaving exactly
/// contentType, signingTime and messageDigest as productsign and apple-xar emit.
fn cms_sign(
    identity: &Identity,
    toc_checksum: &[u8],
    timestamps: Option<&TimestampAuthority>,
) -> Result<Vec<u8>> {
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
    let der = cms.to_der()?;
    let token = match timestamps {
        None => None,
        Some(authority) => {
            let fields = signer_info_fields(&der)?;
            Some(authority.timestamp(fields[signature_position(&fields)?].contents)?)
        }
    };
    finish_signer_info(&der, token.as_deref())
}

/// DER contents of rsaEncryption (1.2.840.113549.1.1.1), sha256WithRSAEncryption (…1.11) and SHA-256.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_SHA256_WITH_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// Rewrites OpenSSL's single SignerInfo as productsign writes it: `sha256WithRSAEncryption` for the
/// signature algorithm (same signature bytes; OpenSSL verifies either), and the timestamp token, if any,
/// as the unsigned attribute `id-aa-timeStampToken`. Neither field is covered by the signature.
fn finish_signer_info(cms_der: &[u8], token: Option<&[u8]>) -> Result<Vec<u8>> {
    let fields = signer_info_fields(cms_der)?;
    let signature = signature_position(&fields)?;
    ensure!(
        !fields.iter().any(|f| f.tag == der::context(1)),
        "OpenSSL's CMS signature already has unsigned attributes"
    );
    let digest_is_sha256 = fields
        .get(2)
        .and_then(Tlv::children)
        .is_some_and(|alg| alg.first().is_some_and(|oid| oid.contents == OID_SHA256));
    let algorithm = &fields[signature - 1];
    let is_rsa = algorithm
        .children()
        .is_some_and(|alg| alg.first().is_some_and(|oid| oid.contents == OID_RSA_ENCRYPTION));
    let sha256_with_rsa = der::encode_parts(
        der::SEQUENCE,
        &[
            &der::encode(der::OID, OID_SHA256_WITH_RSA),
            &der::encode(der::NULL, &[]),
        ],
    );
    let mut parts: Vec<&[u8]> = fields.iter().map(|f| f.encoded).collect();
    if digest_is_sha256 && is_rsa {
        parts[signature - 1] = &sha256_with_rsa;
    }
    let unsigned = token.map(|token| {
        let attribute = der::encode_parts(
            der::SEQUENCE,
            &[
                &der::encode(der::OID, timestamp::OID_TIMESTAMP_TOKEN),
                &der::encode(der::SET, token),
            ],
        );
        der::encode(der::context(1), &attribute)
    });
    if let Some(unsigned) = &unsigned {
        parts.push(unsigned);
    }
    replace_signer_info(cms_der, &der::encode_parts(der::SEQUENCE, &parts))
}

/// `ContentInfo { OID, [0] { SignedData { …, signerInfos SET { SignerInfo } } } }`: the path to the one
/// SignerInfo, outermost first.
fn signer_info_path(cms_der: &[u8]) -> Option<[Tlv<'_>; 4]> {
    let content_info = der::read(cms_der)?.0;
    let explicit = *content_info.children()?.get(1)?;
    let signed_data = der::read_all(explicit.contents)?;
    let signer_infos = *signed_data.children()?.last()?;
    match signer_infos.children()?.as_slice() {
        [signer_info] if signer_infos.tag == der::SET && signer_info.tag == der::SEQUENCE => {
            Some([content_info, explicit, signed_data, *signer_info])
        }
        _ => None,
    }
}

fn signer_info_fields(cms_der: &[u8]) -> Result<Vec<Tlv<'_>>> {
    signer_info_path(cms_der)
        .and_then(|[.., signer_info]| signer_info.children())
        .context("the CMS signature does not hold exactly one readable SignerInfo")
}

/// `SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs?, signatureAlgorithm,
/// signature OCTET STRING, [1] unsignedAttrs? }`: the signature's index (after at least 4 fields).
fn signature_position(fields: &[Tlv]) -> Result<usize> {
    fields
        .iter()
        .position(|f| f.tag == der::OCTET_STRING)
        .filter(|&i| i >= 3)
        .context("the CMS SignerInfo has no signature value")
}

/// The CMS with its one SignerInfo replaced by `signer_info` (DER), every enclosing length updated.
fn replace_signer_info(cms_der: &[u8], signer_info: &[u8]) -> Result<Vec<u8>> {
    let [content_info, explicit, signed_data, _] =
        signer_info_path(cms_der).context("the CMS signature has no single SignerInfo")?;
    let mut signed_fields: Vec<&[u8]> = signed_data
        .children()
        .context("unreadable SignedData")?
        .iter()
        .map(|f| f.encoded)
        .collect();
    let signer_infos = der::encode(der::SET, signer_info);
    *signed_fields.last_mut().context("empty SignedData")? = &signer_infos;
    let signed_data = der::encode_parts(der::SEQUENCE, &signed_fields);
    let explicit = der::encode(explicit.tag, &signed_data);
    let oid = content_info.children().and_then(|c| c.first().copied());
    let oid = oid.context("unreadable ContentInfo")?;
    Ok(der::encode_parts(content_info.tag, &[oid.encoded, &explicit]))
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

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn signer_info_surgery_refuses_garbage_without_panicking() {
        let empty_set = der::encode(der::SET, &[]);
        let no_signer = der::encode_parts(
            der::SEQUENCE,
            &[
                &der::encode(der::OID, &[0x2A]),
                &der::encode(der::context(0), &der::encode(der::SEQUENCE, &empty_set)),
            ],
        );
        // A SignerInfo of three fields: no room for an algorithm before the signature.
        let short_signer = der::encode_parts(
            der::SEQUENCE,
            &[
                &der::encode(der::INTEGER, &[1]),
                &der::encode(der::SEQUENCE, &[]),
                &der::encode(der::OCTET_STRING, &[1, 2]),
            ],
        );
        let short = der::encode_parts(
            der::SEQUENCE,
            &[
                &der::encode(der::OID, &[0x2A]),
                &der::encode(
                    der::context(0),
                    &der::encode(der::SEQUENCE, &der::encode(der::SET, &short_signer)),
                ),
            ],
        );
        for input in [&b""[..], b"\x30\x03\x02\x01", &no_signer, &short] {
            assert!(signature_and_timestamp_token(input).is_err(), "{input:02x?}");
            assert!(finish_signer_info(input, None).is_err(), "{input:02x?}");
        }
    }
}
