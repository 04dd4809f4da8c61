//! Certificate chain checks (RFC 5280 path validation, done by OpenSSL's `X509_verify_cert`) of a signer
//! against CA certificates the admin supplies (`--ca CA.pem`).
//!
//! This answers "does this signer chain to *my* CA?", which is what an MDM-trusted enterprise or
//! development CA needs. It is not Apple's trust evaluation: Gatekeeper and `pkgutil --check-signature` also
//! require Developer ID policy OIDs and notarization, which only a Mac can check. Revocation (CRL/OCSP) is
//! not checked. Any certificate purpose is accepted (like `openssl cms -verify -purpose any`) because
//! Apple's signing certificates carry EKUs OpenSSL's purpose table does not know.
//!
//! Apple marks its Developer ID extensions (`1.2.840.113635.100.6.*`, e.g. `…6.1.14` on Developer ID
//! Installer leaves) critical, and OpenSSL rejects any critical extension it does not implement ("unhandled
//! critical extension"), so a real Developer ID chain would never validate. When that is the only
//! problem, the chain is checked again ignoring unhandled critical extensions, and accepted only if every
//! critical extension in the validated chain is either a standard one (`2.5.29.*`) or in Apple's
//! certificate-extension arc. Any other unknown critical extension still fails.

use {
    super::{der, identity::name_to_string},
    anyhow::Result,
    openssl::{
        stack::Stack,
        x509::{
            X509, X509PurposeId, X509Ref, X509StoreContext,
            store::{X509Store, X509StoreBuilder},
            verify::X509VerifyFlags,
        },
    },
};

/// Who signed, and whether the signer chains to the CA the caller supplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    /// The signer certificate's subject, `CN=…, O=…`.
    pub subject: String,
    /// The signer certificate, DER, so callers can compare signers (e.g. the CMS signer with the leaf
    /// of the TOC `KeyInfo`).
    pub certificate_der: Vec<u8>,
    /// `None` when no CA was given; otherwise whether the chain validates up to one of the CA
    /// certificates.
    pub chain_trusted: Option<bool>,
    /// OpenSSL's reason when `chain_trusted` is `Some(false)`, e.g. "certificate has expired".
    pub chain_error: Option<String>,
}

/// Builds a [`SignerInfo`] for `leaf`, validating it against `ca` with `untrusted` as intermediates.
pub(crate) fn signer_info(leaf: &X509Ref, untrusted: &[X509], ca: Option<&[X509]>) -> Result<SignerInfo> {
    let (chain_trusted, chain_error) = match ca {
        None => (None, None),
        Some(anchors) => match check_chain(leaf, untrusted, anchors)? {
            Ok(()) => (Some(true), None),
            Err(reason) => (Some(false), Some(reason)),
        },
    };
    Ok(SignerInfo {
        subject: name_to_string(leaf.subject_name()),
        certificate_der: leaf.to_der()?,
        chain_trusted,
        chain_error,
    })
}

/// `X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION` in OpenSSL's `x509_vfy.h`.
const UNHANDLED_CRITICAL_EXTENSION: i32 = 34;
/// DER contents of the OID prefixes whose critical extensions may be left to the verifier's owner:
/// id-ce (2.5.29, RFC 5280) and Apple's certificate extensions (1.2.840.113635.100.6).
const KNOWN_CRITICAL_ARCS: [&[u8]; 2] = [&[0x55, 0x1D], &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x63, 0x64, 0x06]];

/// OpenSSL's path validation outcome: the validated chain (DER, leaf first) or its error code and reason.
type Verdict = Result<Vec<Vec<u8>>, (i32, String)>;

/// The outer `Result` is an OpenSSL failure; the inner one is the verdict with OpenSSL's reason.
fn check_chain(leaf: &X509Ref, untrusted: &[X509], anchors: &[X509]) -> Result<Result<(), String>> {
    let strict = validate(leaf, untrusted, anchors, X509VerifyFlags::empty())?;
    let Err((UNHANDLED_CRITICAL_EXTENSION, reason)) = strict else {
        return Ok(strict.map(drop).map_err(|(_, reason)| reason));
    };
    let lenient = validate(leaf, untrusted, anchors, X509VerifyFlags::IGNORE_CRITICAL)?;
    match lenient {
        Ok(chain) if chain.iter().all(|der| only_known_critical_extensions(der)) => Ok(Ok(())),
        _ => Ok(Err(reason)),
    }
}

/// Runs OpenSSL's path validation with `flags`.
fn validate(leaf: &X509Ref, untrusted: &[X509], anchors: &[X509], flags: X509VerifyFlags) -> Result<Verdict> {
    let store = anchor_store(anchors, flags)?;
    let mut intermediates = Stack::new()?;
    for cert in untrusted {
        intermediates.push(cert.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let verdict = ctx.init(&store, leaf, &intermediates, |ctx| {
        if !ctx.verify_cert()? {
            return Ok(Err((ctx.error().as_raw(), ctx.error().error_string().to_owned())));
        }
        let chain = ctx.chain().map(|c| c.iter().map(|cert| cert.to_der()).collect());
        Ok(Ok(chain.transpose()?.unwrap_or_default()))
    })?;
    Ok(verdict)
}

fn anchor_store(anchors: &[X509], flags: X509VerifyFlags) -> Result<X509Store> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in anchors {
        builder.add_cert(cert.clone())?;
    }
    builder.set_purpose(X509PurposeId::ANY)?;
    builder.set_flags(flags)?;
    Ok(builder.build())
}

/// Whether every critical extension of a DER certificate lies in [`KNOWN_CRITICAL_ARCS`]. A certificate
/// that cannot be walked counts as "no".
fn only_known_critical_extensions(cert_der: &[u8]) -> bool {
    der::certificate_extensions(cert_der).is_some_and(|extensions| {
        extensions
            .iter()
            .filter(|extension| extension.critical)
            .all(|extension| {
                KNOWN_CRITICAL_ARCS
                    .iter()
                    .any(|arc| extension.oid.starts_with(arc))
            })
    })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn unknown_critical_extensions_are_not_tolerated() {
        // Certificate { tbs { [3] { SEQ { ext(2.5.29.19, critical), ext(1.2.3, critical) } } } }
        let cert = |second_oid: &[u8]| {
            let bc = [
                0x30, 0x0A, 0x06, 0x03, 0x55, 0x1D, 0x13, 0x01, 0x01, 0xFF, 0x04, 0x00,
            ];
            let oid = der::encode(der::OID, second_oid);
            let other = der::encode_parts(der::SEQUENCE, &[&oid, &[0x01, 0x01, 0xFF, 0x04, 0x00]]);
            let list = der::encode_parts(der::SEQUENCE, &[&bc, &other]);
            let tbs = der::encode(der::SEQUENCE, &der::encode(der::context(3), &list));
            der::encode(der::SEQUENCE, &tbs)
        };
        assert!(!only_known_critical_extensions(&cert(&[0x2A, 0x03])));
        let apple_installer = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x63, 0x64, 0x06, 0x01, 0x0E];
        assert!(only_known_critical_extensions(&cert(&apple_installer)));
        assert!(!only_known_critical_extensions(&[0x30, 0x05, 0x30]));
    }
}
