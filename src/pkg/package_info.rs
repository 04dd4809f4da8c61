//! `PackageInfo`: the XML that tells the Installer a component's receipt identifier, version, install
//! location, payload size and scripts.
//!
//! Apple does not publish a schema; the document is shaped like `pkgbuild`'s (apple-flat-package's
//! `package_info.rs` field docs, pkgbuild output quoted in `shared/reference/pkg.md` §2.2), with every
//! attribute and element pkgbuild writes for a payload without bundles. What the Installer does with each:
//!
//! * `format-version="2"`: the flat-package PackageInfo format; the only one flat packages use.
//! * `identifier`, `version`: the receipt (`pkgutil --pkgs`, `--pkg-info`) that MDMs detect installs by;
//!   it must equal the Distribution's `pkg-ref id`.
//! * `install-location="/"`: where payload paths (`./Library/...`) are rooted.
//! * `auth="root"`: the install needs an administrator and runs the scripts as root.
//! * `overwrite-permissions="true"` (pkgbuild's value): existing directories the payload also lists take
//!   the payload's mode and owner. Every directory in our payloads is either a system folder listed
//!   with macOS's own mode and owner (`/Library` root:wheel 0755, `/Library/Application Support`
//!   root:admin 0755) or one of ours, so this changes nothing on a healthy Mac and repairs a loosened one.
//! * `relocatable="false"`: the Installer does not look for moved copies of bundles to install into
//!   (there are none; pkgbuild writes false when no bundle is relocatable).
//! * `postinstall-action="none"`: no logout, restart or shutdown request after installing.
//! * `generator-version`: informational, the tool that wrote the package (`confine-<version>`; pkgbuild
//!   writes `InstallCmds-<build>`). Nothing reads it but people and inventory tools.
//! * `<payload numberOfFiles installKBytes>`: the BOM's path count and the size shown and checked
//!   against free space. Absent for a payload-free package, which then leaves no receipt, exactly as
//!   `pkgbuild --nopayload`.
//! * `<bundle-version/>`, `<upgrade-bundle/>`, `<update-bundle/>`, `<atomic-update-bundle/>`,
//!   `<strict-identifier/>`, `<relocate/>`: the bundles whose versions are recorded and compared before
//!   replacing, upgraded or updated in place, swapped atomically, matched by identifier, or allowed to
//!   move. All empty: the payload holds no `.app` or other bundle.
//! * `<scripts>`: the preinstall/postinstall entry points inside the `Scripts` archive.

use anyhow::{Context, Result};
use askama::Template;

use super::Component;
use super::listing::Listing;

/// The `<payload>` numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadSummary {
    /// Every BOM path, "." included (Apple's fixture: numberOfFiles equals its BOM entry count).
    pub(crate) number_of_files: u64,
    /// Estimated installed size: files and link targets rounded up to 4 KiB blocks.
    pub(crate) install_kbytes: u64,
}

impl PayloadSummary {
    pub(crate) fn new(listing: &Listing) -> Self {
        Self {
            number_of_files: listing.len(),
            install_kbytes: listing.install_kbytes(),
        }
    }
}

/// `generator-version`: this tool and its version.
const GENERATOR: &str = concat!("confine-", env!("CARGO_PKG_VERSION"));

#[derive(Template)]
#[template(path = "PackageInfo.xml")]
struct PackageInfoXml<'a> {
    identifier: &'a str,
    version: &'a str,
    payload: Option<&'a PayloadSummary>,
    generator: &'a str,
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
        generator: GENERATOR,
        preinstall: has_script("preinstall"),
        postinstall: has_script("postinstall"),
    }
    .render()
    .with_context(|| format!("component {}: rendering PackageInfo", component.identifier))
}
