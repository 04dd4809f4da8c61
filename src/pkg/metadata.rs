//! What deployment tools read from a built product archive without installing it: the receipts it
//! leaves, its product version and the oldest macOS its Distribution allows.
//!
//! Read the way Munki's `pkgutils` reads a flat package (munki/munki, `code/cli/munki/shared/utils/
//! pkgutils.swift`: `receiptFromPackageInfoFile`, `getFlatPackageInfo`): one receipt per component whose
//! `PackageInfo` has a `<payload>` (a payload-free component leaves no receipt on the Mac), its
//! `installed_size` the payload's `installKBytes`. Unlike Munki, the minimum macOS is taken from the
//! top-level `<allowed-os-versions>` our Distribution writes; Munki looks for it only inside
//! `<volume-check>` and so finds none, which is why exports write it explicitly.

use std::path::Path;

use anyhow::{Context, Result};

use super::reader::{RawXar, parse_xml};

/// PackageInfo and Distribution are small XML documents; anything larger is not ours.
const MAX_XML_BYTES: u64 = 1024 * 1024;

/// One receipt the package leaves: `pkgutil --pkgs` lists its identifier after an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub identifier: String,
    pub version: String,
    pub install_kbytes: u64,
}

/// What a product archive says about itself.
#[derive(Debug, Clone)]
pub struct ProductMetadata {
    /// `<product version>` of the Distribution.
    pub version: String,
    /// `<title>` of the Distribution.
    pub title: String,
    /// The highest `<allowed-os-versions><os-version min>`, if any.
    pub minimum_macos: Option<String>,
    /// Components with a payload, in archive order.
    pub receipts: Vec<Receipt>,
}

/// Reads the Distribution and every component's PackageInfo of the product archive at `path`.
pub fn product_metadata(path: &Path) -> Result<ProductMetadata> {
    let raw = RawXar::open(path)?;
    let toc = raw.decode_toc()?;
    let what = |name: &str| format!("{}: {name}", path.display());
    let distribution = raw
        .read_file(&toc, "Distribution", MAX_XML_BYTES)?
        .with_context(|| format!("{} is not a product archive (no Distribution)", path.display()))?;
    let distribution = parse_xml(&distribution, &what("Distribution"))?;
    let product = distribution
        .child("product")
        .with_context(|| what("Distribution has no <product>"))?;
    let minimum_macos = distribution
        .child("allowed-os-versions")
        .into_iter()
        .flat_map(|allowed| allowed.children_named("os-version"))
        .filter_map(|os| os.attribute("min"))
        .max_by(|a, b| compare_versions(a, b))
        .map(str::to_owned);
    let mut receipts = Vec::new();
    for dir in toc.component_dirs() {
        let name = if dir.is_empty() {
            "PackageInfo".to_owned()
        } else {
            format!("{dir}/PackageInfo")
        };
        let Some(bytes) = raw.read_file(&toc, &name, MAX_XML_BYTES)? else {
            continue;
        };
        let info = parse_xml(&bytes, &what(&name))?;
        if let Some(receipt) = receipt(&info) {
            receipts.push(receipt);
        }
    }
    Ok(ProductMetadata {
        version: product.attribute("version").unwrap_or_default().to_owned(),
        title: distribution.child_text("title").unwrap_or_default().to_owned(),
        minimum_macos,
        receipts,
    })
}

/// The receipt a `<pkg-info>` leaves, if it has a payload.
fn receipt(info: &super::Element) -> Option<Receipt> {
    let payload = info.child("payload")?;
    Some(Receipt {
        identifier: info.attribute("identifier")?.to_owned(),
        version: info.attribute("version")?.to_owned(),
        install_kbytes: payload.attribute("installKBytes")?.parse().ok()?,
    })
}

/// Dotted versions compared numerically, part by part (`10.15` < `14.0`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert!(compare_versions("10.15", "14.0").is_lt());
        assert!(compare_versions("14.10", "14.9").is_gt());
    }
}
