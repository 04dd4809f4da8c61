//! Signing with a code-signing identity: CMS SignedData for configuration profiles and the RSA and CMS
//! signatures of a xar table of contents.
//!
//! * [`identity`]: load an [`Identity`] from PKCS#12 or PEM.
//! * [`cms`]: sign and verify `.mobileconfig` profiles ([`sign_profile`], [`verify_profile`]).
//! * [`xar`]: [`PackageSigner`] implements [`TocSigner`] for the xar writer; [`verify_toc_rsa`],
//!   [`verify_toc_cms`] and [`verify_key_info_chain`] check a package's signatures.
//! * [`timestamp`]: RFC 3161 tokens for package signatures from a [`TimestampAuthority`].
//! * [`dev_identity`]: [`create_dev_identity`] makes a development CA and signing certificates.
//!
//! All cryptography is OpenSSL's (through the `openssl` crate); `der` reads and rewrites the few DER
//! structures its Rust API cannot reach, and the timestamp request is plain HTTP through `ureq`. Trust is checked only against a CA the
//! caller names, never against Apple's roots or the system store; see [`trust`].

pub mod cms;
mod der;
pub mod dev_identity;
pub mod identity;
pub mod timestamp;
pub mod trust;
pub mod xar;

pub use {
    cms::{ProfileEncoding, ProfileSignature, profile_encoding, sign_profile, verify_profile},
    dev_identity::create_dev_identity,
    identity::{Identity, load_certificates},
    timestamp::{APPLE_TSA, Timestamp, TimestampAuthority},
    trust::SignerInfo,
    xar::{
        PackageCms, PackageSigner, RsaConvention, signature_and_timestamp_token, verify_key_info_chain,
        verify_toc_cms, verify_toc_rsa,
    },
};

use anyhow::Result;

/// What the xar writer needs from a signer. The writer reserves `rsa_signature_size()` and
/// `cms_signature_size()` bytes in the heap right after the TOC checksum, records both in the TOC with
/// `certificates()` in `KeyInfo`, compresses and hashes the TOC, then asks for the two signatures over the
/// raw checksum bytes and writes them into the reserved space (zero-padded).
pub trait TocSigner {
    /// DER certificates for `KeyInfo`: the leaf first, then the chain.
    fn certificates(&self) -> Vec<Vec<u8>>;
    /// Exact length of the RSA signature (the key's modulus size).
    fn rsa_signature_size(&self) -> usize;
    /// Bytes to reserve for the CMS signature; the real one may be shorter.
    fn cms_signature_size(&self) -> usize;
    /// PKCS#1 v1.5 over DigestInfo(sha1, checksum): the checksum is not hashed again.
    fn sign_rsa(&self, toc_checksum: &[u8]) -> Result<Vec<u8>>;
    /// Detached CMS SignedData over the checksum bytes (timestamped if the signer has an authority).
    fn sign_cms(&self, toc_checksum: &[u8]) -> Result<Vec<u8>>;
}
