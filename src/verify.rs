//! `confine verify`: checks a package or a signed profile end to end, the way a Mac would before
//! installing it: structure, every checksum, every signature, and (with a CA) the signer's chain.
//!
//! What a Mac checks beyond this (Apple's roots, notarization, Gatekeeper policy) cannot be checked on
//! Linux; see the README's on-Mac checklist.
//!
//! Reports and errors quote names from the file, so their text comes back with control characters
//! escaped ([`escape_controls`]), ready for a terminal.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use openssl::x509::X509;

use crate::escape::escape_controls;
use crate::limits::{MAX_PROFILE_BYTES, read_regular};
use crate::pkg::{self, SignatureParts};
use crate::sign::{self, ProfileEncoding, SignerInfo};

/// The outcome for one file: what was found, and every problem.
#[derive(Debug)]
pub struct Report {
    pub summary: String,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies a `.pkg` (by its `xar!` magic) or a signed `.mobileconfig`. A package or a profile without a
/// signature is a problem unless `allow_unsigned`; with `ca`, a signature must exist and chain to it.
pub fn verify_file(path: &Path, ca: Option<&[X509]>, allow_unsigned: bool) -> Result<Report> {
    let escape = |text: String| escape_controls(&text).into_owned();
    match check_file(path, ca, allow_unsigned) {
        Ok(report) => Ok(Report {
            summary: escape(report.summary),
            problems: report.problems.into_iter().map(escape).collect(),
        }),
        Err(error) => Err(anyhow!(escape(format!("{error:#}")))),
    }
}

fn check_file(path: &Path, ca: Option<&[X509]>, allow_unsigned: bool) -> Result<Report> {
    let mut magic = [0u8; 4];
    let (mut file, _) = crate::limits::open_regular(path, crate::limits::MAX_PACKAGE_BYTES)?;
    let n = std::io::Read::read(&mut file, &mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if n == 4 && &magic == b"xar!" {
        verify_package(path, ca, allow_unsigned)
    } else {
        verify_profile(path, ca, allow_unsigned)
    }
}

fn verify_package(path: &Path, ca: Option<&[X509]>, allow_unsigned: bool) -> Result<Report> {
    let verification = pkg::verify(path)?;
    let mut problems = verification.problems.clone();
    let signature = match &verification.signature_parts {
        Some(parts) if parts.rsa_signature.is_some() || parts.cms_signature.is_some() => {
            package_signatures(parts, ca, &mut problems)
        }
        _ => {
            unsigned("package", ca, allow_unsigned, &mut problems);
            "unsigned".to_owned()
        }
    };
    let summary = format!(
        "package, {} files checked, {signature}",
        verification.files_checked
    );
    Ok(Report { summary, problems })
}

/// Checks the RSA and CMS signatures over the TOC checksum and the KeyInfo chain; returns a description
/// naming the RSA convention found and the timestamp, if any.
fn package_signatures(parts: &SignatureParts, ca: Option<&[X509]>, problems: &mut Vec<String>) -> String {
    let mut kinds = Vec::new();
    if let Some(rsa) = &parts.rsa_signature {
        match parts.rsa_certificates.first() {
            Some(leaf) => match sign::verify_toc_rsa(leaf, &parts.toc_checksum, rsa) {
                Ok(convention) => kinds.push(format!("RSA: {convention}")),
                Err(e) => {
                    kinds.push("RSA".to_owned());
                    problems.push(format!("RSA signature: {e:#}"));
                }
            },
            None => {
                kinds.push("RSA".to_owned());
                problems.push("RSA signature has no certificate in KeyInfo".to_owned());
            }
        }
    }
    let mut timestamp = "no timestamp".to_owned();
    if let Some(cms) = &parts.cms_signature {
        kinds.push("CMS".to_owned());
        match sign::verify_toc_cms(cms, &parts.toc_checksum, ca) {
            Ok(checked) => {
                let keyinfo_leaf = parts.cms_certificates.first().or(parts.rsa_certificates.first());
                if keyinfo_leaf.is_some_and(|leaf| *leaf != checked.signer.certificate_der) {
                    problems.push("the CMS signer is not the KeyInfo certificate".to_owned());
                }
                if let Some(t) = checked.timestamp {
                    timestamp = format!("timestamp {} by {}", t.time, t.authority);
                }
            }
            Err(e) => problems.push(format!("CMS signature: {e:#}")),
        }
    }
    let certificates = if parts.rsa_certificates.is_empty() {
        &parts.cms_certificates
    } else {
        &parts.rsa_certificates
    };
    let kinds = kinds.join("; ");
    match sign::verify_key_info_chain(certificates, ca) {
        Ok(signer) => format!("signed ({kinds}) by {}, {timestamp}", trust(&signer, problems)),
        Err(e) => {
            problems.push(format!("KeyInfo certificates: {e:#}"));
            format!("signed ({kinds}), {timestamp}")
        }
    }
}

fn verify_profile(path: &Path, ca: Option<&[X509]>, allow_unsigned: bool) -> Result<Report> {
    let bytes = read_regular(path, MAX_PROFILE_BYTES)?;
    let mut problems = Vec::new();
    let summary = match sign::profile_encoding(&bytes) {
        ProfileEncoding::SignedCms => match sign::verify_profile(&bytes, ca) {
            Ok(signature) => format!(
                "signed profile, signed by {}",
                trust(&signature.signer, &mut problems)
            ),
            Err(e) => {
                problems.push(format!("profile signature: {e:#}"));
                "signed profile".to_owned()
            }
        },
        ProfileEncoding::XmlPlist | ProfileEncoding::BinaryPlist => {
            unsigned("profile", ca, allow_unsigned, &mut problems);
            "unsigned profile".to_owned()
        }
        ProfileEncoding::Unknown => {
            problems.push("neither a flat package (xar) nor a configuration profile".to_owned());
            "unknown file".to_owned()
        }
    };
    Ok(Report { summary, problems })
}

/// An unsigned package and an unsigned profile are treated alike: a problem, unless `allow_unsigned`
/// (which `--ca` excludes).
fn unsigned(what: &str, ca: Option<&[X509]>, allow_unsigned: bool, problems: &mut Vec<String>) {
    if ca.is_some() || !allow_unsigned {
        problems.push(format!(
            "the {what} is not signed (pass --allow-unsigned to accept unsigned packages and profiles)"
        ));
    }
}

/// `CN=… (chain trusted)`, recording an untrusted chain as a problem.
fn trust(signer: &SignerInfo, problems: &mut Vec<String>) -> String {
    match signer.chain_trusted {
        None => format!("{} (chain not checked: no --ca)", signer.subject),
        Some(true) => format!("{} (chain trusted)", signer.subject),
        Some(false) => {
            let reason = signer.chain_error.as_deref().unwrap_or("unknown reason");
            problems.push(format!("the signer's chain does not reach the CA: {reason}"));
            format!("{} (chain NOT trusted)", signer.subject)
        }
    }
}
