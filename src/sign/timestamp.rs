//! RFC 3161 trusted timestamps for package signatures: ask a time-stamping authority (TSA) to sign the
//! hash of our CMS signature, check its answer, and put the token in the CMS SignerInfo.
//!
//! Apple's notary service refuses a package whose signature carries no secure timestamp, and a
//! timestamped signature stays valid after the signing certificate expires. `productsign --timestamp`
//! and `rcodesign` ask Apple's TSA, `http://timestamp.apple.com/ts01`, which is also the default here.
//!
//! The protocol (RFC 3161 §3.4, over plain HTTP): POST a DER `TimeStampReq` as
//! `application/timestamp-query`, get a DER `TimeStampResp` back. The request carries the SHA-256 of
//! the SignerInfo's signature value (RFC 3161 Appendix A), a random nonce, and asks for the TSA's
//! certificate. The token is a CMS SignedData over a `TSTInfo`; it goes into the SignerInfo's unsigned
//! attributes as `id-aa-timeStampToken` (1.2.840.113549.1.9.16.2.14), which the signature does not
//! cover, so adding it leaves our signature intact.
//!
//! A response is accepted only if the status is granted, the token's CMS signature verifies, its
//! content type is `id-ct-TSTInfo`, the imprint equals the hash of our signature value, the nonce is the
//! one we sent, and the signer certificate has the time-stamping extended key usage. Not checked: the
//! TSA's chain (Apple's TSA chains to Apple's roots, which only a Mac holds), its ESS signing-certificate
//! attribute, and the requested policy (none is requested).

use std::io::Read as _;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::{MessageDigest, hash};

use super::cms::signer_and_certificates;
use super::der::{self, Tlv};
use super::identity::name_to_string;

/// Apple's time-stamping authority, as `productsign --timestamp` and rcodesign use it.
pub const APPLE_TSA: &str = "http://timestamp.apple.com/ts01";

/// DER contents of the OIDs used here.
const OID_SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
/// id-ct-TSTInfo, 1.2.840.113549.1.9.16.1.4.
const OID_TST_INFO: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x04];
/// id-aa-timeStampToken, 1.2.840.113549.1.9.16.2.14.
pub(crate) const OID_TIMESTAMP_TOKEN: &[u8] =
    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x0E];
/// id-ce-extKeyUsage, 2.5.29.37.
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x25];
/// id-kp-timeStamping, 1.3.6.1.5.5.7.3.8.
const OID_KP_TIMESTAMPING: &[u8] = &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// A TSA answer is a few kilobytes; anything this big is not one.
const MAX_RESPONSE: u64 = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A time-stamping authority reached over HTTP.
#[derive(Debug)]
pub struct TimestampAuthority {
    url: String,
    agent: ureq::Agent,
}

/// What a checked token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// The TSA's time, `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC).
    pub time: String,
    /// The subject of the certificate that signed the token.
    pub authority: String,
}

impl TimestampAuthority {
    /// Plain `http://` only: a token is signed by the TSA, so TLS adds nothing, and Apple's TSA is
    /// plain HTTP (this keeps a TLS stack out of the build).
    pub fn new(url: &str) -> Result<TimestampAuthority> {
        ensure!(
            url.starts_with("http://"),
            "timestamp URL {url:?}: only http:// is supported (tokens are signed by the authority; Apple's is {APPLE_TSA})"
        );
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build();
        Ok(TimestampAuthority {
            url: url.to_owned(),
            agent: config.into(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Gets a checked token (DER ContentInfo) over `signature_value`, the SignerInfo's signature bytes.
    pub fn timestamp(&self, signature_value: &[u8]) -> Result<Vec<u8>> {
        let imprint = hash(MessageDigest::sha256(), signature_value)?;
        let nonce = nonce()?;
        let response = self
            .post(&request(&imprint, &nonce))
            .with_context(|| format!("timestamp authority {}", self.url))?;
        let token = token_from_response(&response)
            .with_context(|| format!("timestamp authority {} answered", self.url))?;
        check_token(&token, signature_value, Some(&nonce))
            .with_context(|| format!("the token from timestamp authority {}", self.url))?;
        Ok(token)
    }

    fn post(&self, request: &[u8]) -> Result<Vec<u8>> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .send(request)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach it ({e}); check the network, name another authority with --timestamp-url, \
                     or sign without a timestamp with --no-timestamp (Apple's notary service then refuses the package)"
                )
            })?;
        let status = response.status();
        ensure!(status.is_success(), "HTTP status {status}");
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE + 1)
            .read_to_end(&mut body)
            .context("reading the response")?;
        ensure!(
            body.len() as u64 <= MAX_RESPONSE,
            "the response is over {MAX_RESPONSE} bytes"
        );
        Ok(body)
    }
}

/// 64 random bits as a positive DER INTEGER's contents (no leading zero byte needed).
fn nonce() -> Result<Vec<u8>> {
    let mut nonce = vec![0u8; 8];
    openssl::rand::rand_bytes(&mut nonce)?;
    nonce[0] = (nonce[0] & 0x7F) | 0x40;
    Ok(nonce)
}

/// `TimeStampReq ::= SEQUENCE { version 1, messageImprint, nonce, certReq TRUE }` (RFC 3161 §2.4.1).
fn request(sha256_imprint: &[u8], nonce: &[u8]) -> Vec<u8> {
    der::encode_parts(
        der::SEQUENCE,
        &[
            &der::encode(der::INTEGER, &[1]),
            &message_imprint(sha256_imprint),
            &der::encode(der::INTEGER, nonce),
            &der::encode(der::BOOLEAN, &[0xFF]),
        ],
    )
}

fn message_imprint(sha256: &[u8]) -> Vec<u8> {
    let algorithm = der::encode_parts(
        der::SEQUENCE,
        &[&der::encode(der::OID, OID_SHA256), &der::encode(der::NULL, &[])],
    );
    der::encode_parts(
        der::SEQUENCE,
        &[&algorithm, &der::encode(der::OCTET_STRING, sha256)],
    )
}

/// `TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }`.
fn token_from_response(response: &[u8]) -> Result<Vec<u8>> {
    let fields = der::read_all(response)
        .filter(|r| r.tag == der::SEQUENCE)
        .and_then(|r| r.children())
        .context("not a DER TimeStampResp")?;
    let status_info = fields
        .first()
        .and_then(Tlv::children)
        .context("the TimeStampResp has no status")?;
    let status = status_info
        .first()
        .filter(|s| s.tag == der::INTEGER && s.contents.len() == 1)
        .map(|s| s.contents[0])
        .context("the TimeStampResp status is not a small INTEGER")?;
    // PKIStatus: 0 granted, 1 grantedWithMods; 2 rejection, 3 waiting, 4/5 revocation.
    if status > 1 {
        let text = status_info
            .get(1)
            .filter(|t| t.tag == der::SEQUENCE)
            .and_then(Tlv::children)
            .map(|strings| {
                strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s.contents).into_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        bail!("the request was not granted (PKIStatus {status}) {text}");
    }
    let token = fields
        .get(1)
        .context("the response is granted but holds no token")?;
    Ok(token.encoded.to_vec())
}

/// Checks a token (DER ContentInfo) against the signature value it should timestamp, and, when given,
/// the nonce sent. See the module documentation for what is checked.
pub fn check_token(token: &[u8], signature_value: &[u8], nonce: Option<&[u8]>) -> Result<Timestamp> {
    let mut cms = CmsContentInfo::from_der(token).context("the token is not a DER CMS SignedData")?;
    let mut tst_info = Vec::new();
    cms.verify(
        None,
        None,
        None,
        Some(&mut tst_info),
        CMSOptions::BINARY | CMSOptions::NOVERIFY,
    )
    .context("the token's signature does not verify")?;
    ensure!(
        econtent_type(token) == Some(OID_TST_INFO),
        "the token's content is not a TSTInfo"
    );
    let info = TstInfo::parse(&tst_info).context("the token's TSTInfo cannot be read")?;
    let digest = digest_for_oid(info.imprint_algorithm)?;
    ensure!(
        hash(digest, signature_value)?.as_ref() == info.imprint,
        "the token timestamps other data: its imprint is not the hash of this signature"
    );
    if let Some(nonce) = nonce {
        ensure!(
            info.nonce == Some(nonce),
            "the token's nonce is not the one sent (a replayed or mixed-up answer)"
        );
    }
    let (tsa, _) = signer_and_certificates(token).context("the token carries no TSA certificate")?;
    ensure!(
        has_timestamping_usage(&tsa.to_der()?),
        "the token's signer \"{}\" is not a time-stamping authority (no timeStamping extended key usage)",
        name_to_string(tsa.subject_name())
    );
    Ok(Timestamp {
        time: info.time,
        authority: name_to_string(tsa.subject_name()),
    })
}

/// `ContentInfo { OID, [0] { SignedData { version, digestAlgorithms, encapContentInfo { eContentType, … } } } }`.
fn econtent_type(token: &[u8]) -> Option<&[u8]> {
    let content_info = der::read_all(token)?.children()?;
    let signed_data = der::read_all(content_info.get(1)?.contents)?.children()?;
    let encap = signed_data.get(2)?.children()?;
    let oid = encap.first()?;
    (oid.tag == der::OID).then_some(oid.contents)
}

/// The fields of a `TSTInfo` (RFC 3161 §2.4.2) that are checked.
struct TstInfo<'a> {
    imprint_algorithm: &'a [u8],
    imprint: &'a [u8],
    time: String,
    nonce: Option<&'a [u8]>,
}

impl<'a> TstInfo<'a> {
    /// `SEQUENCE { version, policy, messageImprint, serialNumber, genTime, accuracy?, ordering?, nonce?, tsa [0]?, extensions [1]? }`
    fn parse(der_bytes: &'a [u8]) -> Option<TstInfo<'a>> {
        let fields = der::read_all(der_bytes)?.children()?;
        let imprint = fields.get(2)?.children()?;
        let algorithm = imprint.first()?.children()?;
        let imprint_algorithm = algorithm.first().filter(|a| a.tag == der::OID)?.contents;
        let imprint = imprint.get(1).filter(|d| d.tag == der::OCTET_STRING)?.contents;
        let time = fields.get(4).filter(|t| t.tag == der::GENERALIZED_TIME)?;
        // After genTime: accuracy (SEQUENCE), ordering (BOOLEAN), then the only top-level INTEGER.
        let nonce = fields[5..]
            .iter()
            .find(|f| f.tag == der::INTEGER)
            .map(|n| n.contents);
        Some(TstInfo {
            imprint_algorithm,
            imprint,
            time: generalized_time(time.contents)?,
            nonce,
        })
    }
}

/// `YYYYMMDDHHMMSS[.f*]Z` to `YYYY-MM-DDTHH:MM:SS[.f*]Z`.
fn generalized_time(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let (digits, rest) = text.split_at_checked(14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !rest.ends_with('Z') {
        return None;
    }
    let d = |range: std::ops::Range<usize>| &digits[range];
    Some(format!(
        "{}-{}-{}T{}:{}:{}{rest}",
        d(0..4),
        d(4..6),
        d(6..8),
        d(8..10),
        d(10..12),
        d(12..14)
    ))
}

fn digest_for_oid(oid: &[u8]) -> Result<MessageDigest> {
    Ok(match oid {
        OID_SHA1 => MessageDigest::sha1(),
        OID_SHA256 => MessageDigest::sha256(),
        OID_SHA384 => MessageDigest::sha384(),
        OID_SHA512 => MessageDigest::sha512(),
        _ => bail!("the token's imprint uses an unknown hash algorithm"),
    })
}

/// Whether the certificate's extended key usage lists id-kp-timeStamping (RFC 3161 §2.3).
fn has_timestamping_usage(cert_der: &[u8]) -> bool {
    let Some(extensions) = der::certificate_extensions(cert_der) else {
        return false;
    };
    extensions
        .iter()
        .filter(|e| e.oid == OID_EXT_KEY_USAGE)
        .filter_map(|e| der::read_all(e.value)?.children())
        .flatten()
        .any(|usage| usage.tag == der::OID && usage.contents == OID_KP_TIMESTAMPING)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_is_the_rfc_3161_shape() {
        let request = request(&[0xAB; 32], &[0x41, 2, 3, 4, 5, 6, 7, 8]);
        let fields = der::read_all(&request).unwrap().children().unwrap();
        let tags: Vec<u8> = fields.iter().map(|f| f.tag).collect();
        assert_eq!(tags, [der::INTEGER, der::SEQUENCE, der::INTEGER, der::BOOLEAN]);
        assert_eq!(fields[2].contents, [0x41, 2, 3, 4, 5, 6, 7, 8]);
        let imprint = fields[1].children().unwrap();
        assert_eq!(imprint[1].contents, [0xAB; 32]);
    }

    #[test]
    fn nonces_are_positive_and_minimal() {
        for _ in 0..32 {
            let nonce = nonce().unwrap();
            assert!(nonce[0] & 0x80 == 0 && nonce[0] != 0, "{nonce:02x?}");
        }
    }

    #[test]
    fn rejections_report_the_status_and_text() {
        // SEQUENCE { SEQUENCE { INTEGER 2, SEQUENCE { UTF8String "bad alg" } } }
        let text = der::encode(0x0C, b"bad alg");
        let status = der::encode_parts(
            der::SEQUENCE,
            &[
                &der::encode(der::INTEGER, &[2]),
                &der::encode(der::SEQUENCE, &text),
            ],
        );
        let response = der::encode(der::SEQUENCE, &status);
        let err = token_from_response(&response).unwrap_err().to_string();
        assert!(err.contains("PKIStatus 2") && err.contains("bad alg"), "{err}");
        assert!(token_from_response(b"<html>").is_err());
    }

    #[test]
    fn generalized_times_are_shown_in_iso_form() {
        assert_eq!(
            generalized_time(b"20261129101500Z").as_deref(),
            Some("2026-11-29T10:15:00Z")
        );
        assert_eq!(
            generalized_time(b"20261129101500.25Z").as_deref(),
            Some("2026-11-29T10:15:00.25Z")
        );
        assert_eq!(generalized_time(b"2026112910Z"), None);
    }
}
