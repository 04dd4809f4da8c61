//! Signed configuration profiles: a DER CMS SignedData (RFC 5652, `1.2.840.113549.1.7.2`) whose
//! encapsulated `id-data` content is the profile plist, exactly what `security cms -S` produces on a Mac.
//!
//! Apple documents the signed form only in passing ("Configuration Profile Reference": profiles "can be
//! signed"; `security(1)` `cms -S`/`-D`). Choices here: content encapsulated (not detached), SHA-256
//! digest, RSA PKCS#1 v1.5 or ECDSA by key type (OpenSSL's default digest for both is SHA-256), the chain
//! embedded without its self-signed root, and `CMS_BINARY` so OpenSSL does not rewrite line endings
//! (MIME canonicalisation would change the plist bytes that the signature covers).
//!
//! Not supported: detached or PEM/S-MIME output, countersignatures, RFC 3161 timestamps on profiles,
//! encryption (`EncryptedPayloadContent`), and verifying SignedData whose signer is named by
//! subjectKeyIdentifier (`openssl cms -keyid`) rather than issuerAndSerialNumber, which is what
//! `security cms`, OpenSSL by default and this module emit.

use {
    super::{
        Identity,
        der::{self, Tlv},
        trust::{SignerInfo, signer_info},
    },
    anyhow::{Context, Result, bail},
    openssl::{
        cms::{CMSOptions, CmsContentInfo},
        pkcs7::{Pkcs7, Pkcs7Flags},
        stack::Stack,
        x509::X509,
    },
};

/// The result of checking a signed profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSignature {
    /// Who signed, and whether that chains to the CA given to [`verify_profile`].
    pub signer: SignerInfo,
    /// The encapsulated profile (XML or binary plist) exactly as signed.
    pub content: Vec<u8>,
}

/// How a `.mobileconfig` file is encoded, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileEncoding {
    /// A DER SEQUENCE: a CMS-signed profile.
    SignedCms,
    /// `<?xml` (optionally after a UTF-8 byte-order mark or whitespace) or `<plist`.
    XmlPlist,
    /// `bplist00`.
    BinaryPlist,
    Unknown,
}

/// Tells a signed profile from an unsigned XML or binary plist without parsing it.
pub fn profile_encoding(bytes: &[u8]) -> ProfileEncoding {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = text.trim_ascii_start();
    if bytes.first() == Some(&0x30) {
        ProfileEncoding::SignedCms
    } else if bytes.starts_with(b"bplist00") {
        ProfileEncoding::BinaryPlist
    } else if text.starts_with(b"<?xml") || text.starts_with(b"<plist") {
        ProfileEncoding::XmlPlist
    } else {
        ProfileEncoding::Unknown
    }
}

/// Signs a profile: DER CMS SignedData with the plist encapsulated. The result is verified before it is
/// returned, so a broken key or OpenSSL build cannot produce an unverifiable file silently.
///
/// Not deterministic: the signingTime attribute changes on every run. Review the unsigned plist instead.
pub fn sign_profile(identity: &Identity, profile_xml: &[u8]) -> Result<Vec<u8>> {
    let chain = identity.chain_without_root()?;
    let cms = CmsContentInfo::sign(
        Some(identity.certificate()),
        Some(identity.key()),
        Some(&chain),
        Some(profile_xml),
        CMSOptions::BINARY,
    )
    .with_context(|| format!("cannot sign the profile with \"{}\"", identity.subject()))?;
    let der = cms.to_der()?;
    let check = verify_profile(&der, None).context("the freshly signed profile does not verify")?;
    if check.content != profile_xml {
        bail!("the freshly signed profile does not contain the original plist");
    }
    Ok(der)
}

/// Verifies a signed profile's signature and returns its signer and content. With `ca`, also checks
/// that the signer chains to one of those certificates (reported in `signer.chain_trusted`, not as an
/// error, so a caller can show "signed, but not by your CA").
pub fn verify_profile(der: &[u8], ca: Option<&[X509]>) -> Result<ProfileSignature> {
    let mut cms =
        CmsContentInfo::from_der(der).context("not a DER CMS structure (is the profile signed?)")?;
    let mut content = Vec::new();
    // NOVERIFY: the signature is checked here; the chain is checked separately by `signer_info` so that
    // an untrusted chain is a verdict rather than an error.
    cms.verify(
        None,
        None,
        None,
        Some(&mut content),
        CMSOptions::BINARY | CMSOptions::NOVERIFY,
    )
    .context("the profile's signature does not match its content (modified after signing?)")?;
    check_content_type(der)?;
    check_profile_digests(der)?;
    let (signer, embedded) = signer_and_certificates(der)?;
    Ok(ProfileSignature {
        signer: signer_info(&signer, &embedded, ca)?,
        content,
    })
}

/// DER contents of `id-data` (1.2.840.113549.1.7.1), the content type of signed profiles and of xar's
/// detached TOC-checksum signatures.
const ID_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
/// DER contents of the `contentType` signed attribute's OID (1.2.840.113549.1.9.3).
const CONTENT_TYPE_ATTRIBUTE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];

/// Checks that a CMS SignedData encapsulates `id-data` and that every signer's signed `contentType`
/// attribute names that same type, as RFC 5652 §5.3 and §11.1 require. OpenSSL verifies the signature
/// over the attributes but not this match, so an altered eContentType would otherwise pass; the openssl
/// crate cannot read either field, hence this walk of
/// `ContentInfo { contentType, [0] SignedData { version, digestAlgorithms, encapContentInfo, [0] certs,
/// [1] crls, signerInfos } }`.
pub(crate) fn check_content_type(cms_der: &[u8]) -> Result<()> {
    let signed_data = der::read(cms_der)
        .and_then(|(content_info, _)| content_info.children())
        .and_then(|fields| fields.get(1)?.children())
        .and_then(|explicit| explicit.first()?.children())
        .context(MALFORMED)?;
    // encapContentInfo ::= SEQUENCE { eContentType OID, … }
    let content_type = first_child_contents(signed_data.get(2))?;
    if content_type != ID_DATA {
        bail!("the CMS eContentType is not id-data (1.2.840.113549.1.7.1)");
    }
    // signerInfos is the SET after encapContentInfo (digestAlgorithms, before it, is a SET too).
    for signer_infos in signed_data.iter().skip(3).filter(|f| f.tag == der::SET) {
        for signer in signer_infos.children().context(MALFORMED)? {
            check_signed_content_type(&signer, content_type)?;
        }
    }
    Ok(())
}

const MALFORMED: &str = "the CMS SignedData is malformed";

/// Digest and signature algorithms a profile signature may not use: MD5 and SHA-1 collide, so a
/// signature over one could be moved to another profile. (OID contents, name.)
const WEAK_ALGORITHMS: &[(&[u8], &str)] = &[
    (&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x05], "MD5"),
    (&[0x2B, 0x0E, 0x03, 0x02, 0x1A], "SHA-1"),
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x04],
        "MD5 with RSA",
    ),
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05],
        "SHA-1 with RSA",
    ),
    (&[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01], "ECDSA with SHA-1"),
    (&[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x03], "DSA with SHA-1"),
];

/// Refuses a profile signature whose SignedData lists, or whose signers use, an MD5 or SHA-1 digest
/// (RFC 5652: `SignedData.digestAlgorithms`; `SignerInfo { version, sid, digestAlgorithm, [0]
/// signedAttrs, signatureAlgorithm, … }`). OpenSSL verifies such signatures without complaint.
fn check_profile_digests(cms_der: &[u8]) -> Result<()> {
    let signed_data = der::read(cms_der)
        .and_then(|(content_info, _)| content_info.children())
        .and_then(|fields| fields.get(1)?.children())
        .and_then(|explicit| explicit.first()?.children())
        .context(MALFORMED)?;
    let mut algorithms = signed_data.get(1).and_then(Tlv::children).context(MALFORMED)?;
    for signer_infos in signed_data.iter().skip(3).filter(|f| f.tag == der::SET) {
        for signer in signer_infos.children().context(MALFORMED)? {
            let fields = signer.children().context(MALFORMED)?;
            algorithms.extend(
                fields
                    .iter()
                    .skip(2)
                    .filter(|f| f.tag != der::context(0))
                    .take(2)
                    .cloned(),
            );
        }
    }
    for algorithm in &algorithms {
        let oid = first_child_contents(Some(algorithm))?;
        if let Some((_, name)) = WEAK_ALGORITHMS.iter().find(|(weak, _)| *weak == oid) {
            bail!("the profile is signed with {name}, which is refused: sign it again with SHA-256");
        }
    }
    Ok(())
}

/// The contents of the first element inside `element`.
fn first_child_contents<'a>(element: Option<&Tlv<'a>>) -> Result<&'a [u8]> {
    element
        .and_then(Tlv::children)
        .and_then(|children| Some(children.first()?.contents))
        .context(MALFORMED)
}

/// A signer's signed attributes (`[0]`), when it has any, must hold a `contentType` equal to `expected`.
fn check_signed_content_type(signer: &Tlv, expected: &[u8]) -> Result<()> {
    let fields = signer.children().context(MALFORMED)?;
    let Some(signed_attributes) = fields.iter().find(|f| f.tag == der::context(0)) else {
        return Ok(());
    };
    for attribute in signed_attributes.children().context(MALFORMED)? {
        let parts = attribute.children().context(MALFORMED)?;
        if parts
            .first()
            .is_some_and(|oid| oid.contents == CONTENT_TYPE_ATTRIBUTE)
        {
            // Attribute ::= SEQUENCE { attrType OID, attrValues SET { OID } }
            if first_child_contents(parts.get(1))? != expected {
                bail!("the CMS signed contentType attribute does not match the eContentType");
            }
            return Ok(());
        }
    }
    bail!("the CMS signed attributes have no contentType")
}

/// The signer certificate and every certificate embedded in a CMS SignedData.
///
/// OpenSSL's CMS API in the openssl crate has no `CMS_get0_signers`; a CMS SignedData made of
/// `issuerAndSerialNumber` signer infos (what OpenSSL, `security cms` and productsign emit) is also a
/// valid PKCS#7 SignedData, whose API has it.
pub(crate) fn signer_and_certificates(der: &[u8]) -> Result<(X509, Vec<X509>)> {
    let p7 = Pkcs7::from_der(der).context("cannot read the SignedData certificates")?;
    let embedded: Vec<X509> = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|certs| certs.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    let no_extra_certs: Stack<X509> = Stack::new()?;
    let signers = p7
        .signers(&no_extra_certs, Pkcs7Flags::empty())
        .context("the signer's certificate is not embedded in the signature")?;
    let Some(signer) = signers.iter().next() else {
        bail!("the signature has no signer");
    };
    Ok((signer.to_owned(), embedded))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn detects_encodings() {
        assert_eq!(profile_encoding(b"\x30\x82\x01\x00"), ProfileEncoding::SignedCms);
        assert_eq!(profile_encoding(b"bplist00\xd1"), ProfileEncoding::BinaryPlist);
        assert_eq!(
            profile_encoding(b"\xEF\xBB\xBF <?xml version"),
            ProfileEncoding::XmlPlist
        );
        assert_eq!(
            profile_encoding(b"<plist version=\"1.0\">"),
            ProfileEncoding::XmlPlist
        );
        assert_eq!(profile_encoding(b"{}"), ProfileEncoding::Unknown);
        assert_eq!(profile_encoding(b""), ProfileEncoding::Unknown);
    }

    #[test]
    fn rejects_garbage() {
        let err = verify_profile(b"\x30\x03\x02\x01\x00", None).unwrap_err();
        assert!(err.to_string().contains("not a DER CMS"), "{err}");
    }
}
