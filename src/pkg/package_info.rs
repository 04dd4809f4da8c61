//! `PackageInfo`: the XML that tells the Installer a component's receipt identifier, version, install
//! location, payload size and scripts.
//!
//! Apple does not publish a schema; the attributes follow what `pkgbuild` writes (see
//! apple-flat-package's `package_info.rs` field docs and `shared/reference/pkg.md` §2.2).
//!
//! Not written: `relocatable` and the bundle elements (`bundle-version`, `relocate`, …), which only
//! mean something for `.app` bundles in the payload, and `overwrite-permissions`, whose `true` would
//! re-apply the payload's modes to existing directories such as `/Library`.

use anyhow::{Context, Result};
use askama::Template;

use super::cpio::PathStats;
use super::{Component, EntryKind, Payload};

/// The `<payload>` numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadSummary {
    /// Every BOM path, "." included (Apple's fixture: numberOfFiles equals its BOM entry count).
    pub(crate) number_of_files: usize,
    /// Estimated installed size: files and link targets rounded up to 4 KiB blocks.
    pub(crate) install_kbytes: u64,
}

impl PayloadSummary {
    pub(crate) fn new(payload: &Payload, stats: &[PathStats]) -> Self {
        let install_kbytes = payload
            .entries()
            .zip(stats)
            .filter(|((_, entry), _)| !matches!(entry.kind, EntryKind::Directory))
            .map(|(_, stats)| stats.size.div_ceil(4096) * 4)
            .sum();
        Self {
            number_of_files: payload.len(),
            install_kbytes,
        }
    }
}

#[derive(Template)]
#[template(path = "PackageInfo.xml")]
struct PackageInfoXml<'a> {
    identifier: &'a str,
    version: &'a str,
    payload: Option<&'a PayloadSummary>,
    preinstall: bool,
    postinstall: bool,
}

/// Render the component's PackageInfo; `payload` is `None` for a payload-free package.
pub(crate) fn render(component: &Component, payload: Option<&PayloadSummary>) -> Result<String> {
    let has_script = |name: &str| component.scripts.iter().any(|script| script.name == name);
    PackageInfoXml {
        identifier: &component.identifier,
        version: &component.version,
        payload,
        preinstall: has_script("preinstall"),
        postinstall: has_script("postinstall"),
    }
    .render()
    .with_context(|| format!("component {}: rendering PackageInfo", component.identifier))
}
