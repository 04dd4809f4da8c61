//! Certificate chain checks (RFC 5280 path validation, done by OpenSSL's `X509_verify_cert`) of a signer
//! against CA certificates the admin supplies (`--ca CA.pem`).
//!
//! This answers "does this signer chain to *my* CA?", which is what an MDM-trusted enterprise or
//! development CA needs. It is not Apple's trust evaluation: Gatekeeper and `pkgutil --check-signature` also
//! require Developer ID policy OIDs and notarization, which only a Mac can check. Revocation (CRL/OCSP) is
//! not checked. Any certificate purpose is accepted (like `openssl cms -verify -purpose any`) because
//! Apple's signing certificates carry EKUs OpenSSL's purpose table does not know.

use {
    super::identity::name_to_string,
    anyhow::Result,
    openssl::{
        stack::Stack,
        x509::{
            X509, X509PurposeId, X509Ref, X509StoreContext,
            store::{X509Store, X509StoreBuilder},
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
pub(crate) fn signer_info(
    leaf: &X509Ref,
    untrusted: &[X509],
    ca: Option<&[X509]>,
) -> Result<SignerInfo> {
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

/// The outer `Result` is an OpenSSL failure; the inner one is the verdict with OpenSSL's reason.
fn check_chain(leaf: &X509Ref, untrusted: &[X509], anchors: &[X509]) -> Result<Result<(), String>> {
    let store = anchor_store(anchors)?;
    let mut intermediates = Stack::new()?;
    for cert in untrusted {
        intermediates.push(cert.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let verdict = ctx.init(&store, leaf, &intermediates, |ctx| {
        Ok(if ctx.verify_cert()? {
            Ok(())
        } else {
            Err(ctx.error().error_string().to_owned())
        })
    })?;
    Ok(verdict)
}

fn anchor_store(anchors: &[X509]) -> Result<X509Store> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in anchors {
        builder.add_cert(cert.clone())?;
    }
    builder.set_purpose(X509PurposeId::ANY)?;
    Ok(builder.build())
}
