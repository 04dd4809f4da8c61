//! Raw Apple MDM commands for open-source MDM servers (NanoMDM's and MicroMDM's `/v1/enqueue/<id>`, which
//! take the command property list as is), and the manifest `InstallEnterpriseApplication` installs from.
//!
//! Shapes from Apple's device-management schema (github.com/apple/device-management, release
//! b6202ca2fbd3, macOS 15.1): `mdm/commands/application.install.enterprise.yaml` (the command and its
//! `Manifest`), `mdm/commands/profile.install.yaml` (`Payload`, the profile's bytes) and
//! `other/manifesturl.yaml` (the manifest: `items[].assets[]` with `kind`, `url`, `md5-size` and `md5s`,
//! `sha256-size` and `sha256s`; `items[].metadata` with `bundle-identifier`, `bundle-version`, `kind:
//! software` and `title`). One quirk: the schema's asset `kind` range lists only app-store kinds, while
//! macOS installs a package from an asset of kind `software-package` (Apple's InstallApplication
//! documentation and every MDM that installs packages); that is what is written.
//!
//! Files: `manifest.plist` (to host at `exports.url` for a `ManifestURL`), and under `commands/` one
//! `InstallEnterpriseApplication.plist` carrying the manifest inline and one `InstallProfile-<profile>.plist`
//! per profile (the signed profile when the build signed them). Each command's `CommandUUID` is a UUID v5
//! of its content, so the same command always has the same UUID (NanoMDM refuses a UUID it already
//! queued, which makes a repeated enqueue harmless) and a changed one a new UUID.

use anyhow::Result;
use plist::Value;

use super::{BuiltPackage, CHUNK_BYTES, Input, dict, plist_xml};
use crate::output::{Kind, Staging};

/// The namespace of the commands' UUID v5 (a UUID v5 of "confine.export.apple-mdm" in the URL namespace).
fn namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"confine.export.apple-mdm")
}

/// Writes the manifest and the commands.
pub fn write(context: &Input, staging: &mut Staging) -> Result<()> {
    let plan = context.plan;
    let install = &context.build.install;
    let url = context.download_url(&install.file_name, "apple-mdm")?;
    let manifest = manifest(context, install, &url);
    staging.write(
        "manifest.plist",
        Kind::Config,
        &plan.pkg_identifier,
        &plist_xml(manifest.clone())?,
    )?;
    let install_command = command("InstallEnterpriseApplication", [("Manifest", manifest)])?;
    staging.write(
        "commands/InstallEnterpriseApplication.plist",
        Kind::Config,
        &plan.pkg_identifier,
        &install_command,
    )?;
    let build = context.build;
    for profile in &build.profiles {
        let file = profile.path.rsplit('/').next().unwrap_or(&profile.path);
        let signed = build
            .signed_profiles
            .iter()
            .find(|s| s.path.rsplit('/').next() == Some(file));
        let bytes = signed.map_or(&profile.bytes, |s| &s.bytes);
        let stem = file.strip_suffix(".mobileconfig").unwrap_or(file);
        let xml = command("InstallProfile", [("Payload", Value::Data(bytes.clone()))])?;
        staging.write(
            &format!("commands/InstallProfile-{stem}.plist"),
            Kind::Config,
            &profile.identifier,
            &xml,
        )?;
    }
    Ok(())
}

/// The ManifestURL manifest of the install package.
fn manifest(context: &Input, package: &BuiltPackage, url: &str) -> Value {
    let strings = |items: &[String]| Value::Array(items.iter().cloned().map(Value::from).collect());
    let asset = dict([
        ("kind", "software-package".into()),
        ("url", url.into()),
        ("md5-size", Value::Integer(CHUNK_BYTES.into())),
        ("md5s", strings(&package.chunk_md5s)),
        ("sha256-size", Value::Integer(CHUNK_BYTES.into())),
        ("sha256s", strings(&package.chunk_sha256s)),
    ]);
    let metadata = dict([
        ("kind", "software".into()),
        ("bundle-identifier", context.plan.pkg_identifier.clone().into()),
        ("bundle-version", package.metadata.version.clone().into()),
        ("title", package.metadata.title.clone().into()),
    ]);
    dict([(
        "items",
        Value::Array(vec![dict([
            ("assets", Value::Array(vec![asset])),
            ("metadata", metadata),
        ])]),
    )])
}

/// `{Command: {RequestType, …keys}, CommandUUID}`, the UUID derived from the rest.
fn command<const N: usize>(request_type: &str, keys: [(&str, Value); N]) -> Result<Vec<u8>> {
    let mut body: plist::Dictionary = keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    body.insert("RequestType".into(), request_type.into());
    let without_uuid = plist_xml(dict([("Command", Value::Dictionary(body.clone()))]))?;
    let uuid = uuid::Uuid::new_v5(&namespace(), &without_uuid)
        .hyphenated()
        .to_string()
        .to_uppercase();
    plist_xml(dict([
        ("Command", Value::Dictionary(body)),
        ("CommandUUID", uuid.into()),
    ]))
}
