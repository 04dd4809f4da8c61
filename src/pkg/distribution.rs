//! `Distribution`: the product archive's installer script (XML), listing its components as choices and
//! package references.
//!
//! Apple documents it in the "Distribution Definition XML Schema Reference"
//! (<https://developer.apple.com/library/archive/documentation/DeveloperTools/Reference/DistributionDefinitionRef/Chapters/Distribution_XML_Ref.html>).
//! The shape follows what productbuild, Fleet and Mozilla ship (`shared/reference/pkg.md` §2.5): a single
//! `<options>` with `hostArchitectures` including arm64 (otherwise Apple silicon asks for Rosetta), all
//! three `<domains>` attributes, and a `<product id>` (apple-flat-package 0.20 needs both).
//!
//! What the Installer does with the less obvious parts:
//! * `<pkg-ref id version installKBytes onConclusion="none">#X.pkg</pkg-ref>`: the component at `X.pkg/`
//!   inside the archive, its size for the free-space check, and no restart or logout when done.
//! * `<pkg-ref id><bundle-version/></pkg-ref>`: the bundles whose versions the Installer compares before
//!   replacing them; empty, since our payload holds no bundle. productbuild always writes this stub, Apple's
//!   notarization tooling expects it (Fleet adds it for that reason), and MDM version detection
//!   (Intune-style) reads the pkg-refs it sits among.
//! * `<allowed-os-versions>`: the Installer refuses older macOS with a message instead of running scripts
//!   that would fail half-way.
//!
//! Not supported: welcome/readme/license/background resources, installation-check or volume-check
//! scripts, user-visible choices.

use anyhow::{Context, Result};
use askama::Template;

use super::{Product, WrittenComponent};

struct ComponentRef<'a> {
    identifier: &'a str,
    version: &'a str,
    install_kbytes: u64,
    /// The pkg-ref target inside the archive, percent-encoded: `<identifier>.pkg`.
    url: String,
}

#[derive(Template)]
#[template(path = "Distribution.xml")]
struct DistributionXml<'a> {
    title: &'a str,
    identifier: &'a str,
    version: &'a str,
    minimum_macos: &'a str,
    components: Vec<ComponentRef<'a>>,
}

pub(crate) fn render(product: &Product, components: &[WrittenComponent]) -> Result<String> {
    let components = components
        .iter()
        .map(|component| ComponentRef {
            identifier: component.identifier,
            version: component.version,
            install_kbytes: component.install_kbytes,
            url: percent_encode(&format!("{}.pkg", component.identifier)),
        })
        .collect();
    DistributionXml {
        title: &product.title,
        identifier: &product.identifier,
        version: &product.version,
        minimum_macos: &product.minimum_macos,
        components,
    }
    .render()
    .with_context(|| format!("product {}: rendering Distribution", product.identifier))
}

/// RFC 3986 percent-encoding of everything but unreserved characters: the pkg-ref is a URL reference.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn pkg_ref_urls_are_percent_encoded() {
        assert_eq!(percent_encode("com.example.agent.pkg"), "com.example.agent.pkg");
        assert_eq!(percent_encode("My Agent+1.pkg"), "My%20Agent%2B1.pkg");
    }
}
