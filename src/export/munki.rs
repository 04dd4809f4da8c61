//! Munki pkginfo: the property list a Munki repo keeps for each installer item, as `makepkginfo` derives
//! it (munki/munki `code/cli/munki/shared/admin/pkginfolib.swift`, `createPkgInfoFromPkg` and the
//! `uninstaller_item` branch; `shared/utils/pkgutils.swift`, `getPackageMetaData`), and a Workspace ONE
//! variant. Documented by Munki's wiki ("Pkginfo Files", "Supported Pkginfo Keys").
//!
//! Written into a tree shaped like the repo: `pkgs/<subdir>/` holds both packages,
//! `pkgsinfo/<subdir>/<name>-<release>.plist` the pkginfo, and `workspace-one/<name>-<release>.plist` the
//! Workspace ONE one. Derived like makepkginfo: `installer_item_size` and `uninstaller_item_size` are
//! the file sizes in KiB rounded down, the hashes SHA-256, `receipts` one per component with a payload
//! (the uninstall package has none and leaves no receipt), `installed_size` their sum. Added beyond what
//! makepkginfo finds: `minimum_os_version` (Munki cannot read it from our Distribution),
//! `uninstall_method: uninstall_package` with `minimum_munki_version: 6.2` (the first Munki that runs an
//! uninstall package), unattended install and removal (the package asks nothing of the user) and,
//! with `exports.munki.installs`, the gateway daemons' plists with their MD5.
//!
//! Not written: `_metadata` (creation date and user: it would make every export differ), profile items
//! (Munki 7 dropped them; profiles go through an MDM).

use anyhow::Result;
use plist::Value;

use super::{Input, dict, plist_xml};
use crate::output::{Kind, Staging};

/// The first Munki release that can run an uninstall package (`uninstall_method: uninstall_package`).
pub const MINIMUM_MUNKI_VERSION: &str = "6.2";

/// Writes the repo tree and the Workspace ONE pkginfo.
pub fn write(context: &Input, staging: &mut Staging) -> Result<()> {
    let plan = context.plan;
    let subdir = context
        .exports
        .munki
        .subdir
        .as_ref()
        .map_or_else(|| plan.fleet.name.clone(), |s| s.value.clone());
    let build = context.build;
    let install_location = format!("{subdir}/{}", build.install.file_name);
    let uninstall_location = format!("{subdir}/{}", build.uninstall.file_name);
    super::copy_package(
        staging,
        &build.install,
        &format!("pkgs/{install_location}"),
        Kind::Pkg,
        &plan.pkg_identifier,
    )?;
    super::copy_package(
        staging,
        &build.uninstall,
        &format!("pkgs/{uninstall_location}"),
        Kind::UninstallPkg,
        &plan.uninstall_pkg_identifier,
    )?;
    let info_name = format!("{}-{}.plist", plan.fleet.name, plan.fleet.release);
    let mut munki = pkginfo(context, &install_location);
    munki.extend([
        ("uninstall_method".to_owned(), "uninstall_package".into()),
        ("uninstaller_item_location".to_owned(), uninstall_location.into()),
        (
            "uninstaller_item_hash".to_owned(),
            build.uninstall.sha256.clone().into(),
        ),
        ("uninstaller_item_size".to_owned(), kib(build.uninstall.size)),
        ("minimum_munki_version".to_owned(), MINIMUM_MUNKI_VERSION.into()),
    ]);
    let xml = plist_xml(Value::Dictionary(munki.into_iter().collect()))?;
    staging.write(
        &format!("pkgsinfo/{subdir}/{info_name}"),
        Kind::Config,
        &plan.pkg_identifier,
        &xml,
    )?;
    let mut workspace_one = pkginfo(context, &build.install.file_name);
    let uninstaller = format!("{}/{}", plan.support_dir, crate::installer::UNINSTALL_FILE);
    workspace_one.extend([
        ("uninstall_method".to_owned(), "uninstall_script".into()),
        (
            "uninstall_script".to_owned(),
            uninstall_script(&uninstaller).into(),
        ),
    ]);
    let xml = plist_xml(Value::Dictionary(workspace_one.into_iter().collect()))?;
    staging.write(
        &format!("workspace-one/{info_name}"),
        Kind::Config,
        &plan.pkg_identifier,
        &xml,
    )?;
    Ok(())
}

/// The keys both variants share, from the install package as built.
fn pkginfo(context: &Input, location: &str) -> Vec<(String, Value)> {
    let (plan, install) = (context.plan, &context.build.install);
    let receipts: Vec<Value> = install
        .metadata
        .receipts
        .iter()
        .map(|r| {
            dict([
                ("packageid", r.identifier.clone().into()),
                ("version", r.version.clone().into()),
                ("installed_size", Value::Integer(r.install_kbytes.into())),
            ])
        })
        .collect();
    let installed: u64 = install.metadata.receipts.iter().map(|r| r.install_kbytes).sum();
    let catalogs: Vec<Value> = context
        .exports
        .munki
        .catalogs
        .value
        .iter()
        .map(|c| c.value.clone().into())
        .collect();
    let mut keys = vec![
        ("name".to_owned(), plan.fleet.name.clone().into()),
        ("display_name".to_owned(), install.metadata.title.clone().into()),
        ("version".to_owned(), install.metadata.version.clone().into()),
        ("catalogs".to_owned(), Value::Array(catalogs)),
        ("installer_item_location".to_owned(), location.into()),
        ("installer_item_hash".to_owned(), install.sha256.clone().into()),
        ("installer_item_size".to_owned(), kib(install.size)),
        ("installed_size".to_owned(), Value::Integer(installed.into())),
        ("receipts".to_owned(), Value::Array(receipts)),
        ("autoremove".to_owned(), false.into()),
        ("unattended_install".to_owned(), true.into()),
        ("unattended_uninstall".to_owned(), true.into()),
        ("uninstallable".to_owned(), true.into()),
    ];
    if let Some(minimum) = &install.metadata.minimum_macos {
        keys.push(("minimum_os_version".to_owned(), minimum.clone().into()));
    }
    if context.exports.munki.installs {
        keys.push(("installs".to_owned(), Value::Array(installs(context))));
    }
    keys
}

/// One `file` item per agent's gateway plist, as `makepkginfo -f` writes one for a plain file.
fn installs(context: &Input) -> Vec<Value> {
    context
        .plan
        .agents
        .iter()
        .filter_map(|agent| {
            let built = format!("launchd/{}.plist", agent.launchd.label);
            let file = context.build.launchd.iter().find(|f| f.path == built)?;
            let md5 =
                super::hex(&openssl::hash::hash(openssl::hash::MessageDigest::md5(), &file.bytes).ok()?);
            Some(dict([
                ("type", "file".into()),
                ("path", agent.launchd.plist_path.clone().into()),
                ("md5checksum", md5.into()),
            ]))
        })
        .collect()
}

/// Workspace ONE cannot run an uninstall package: its script runs the uninstaller the package left on
/// the Mac, which removes exactly what the uninstall package would.
fn uninstall_script(uninstaller: &str) -> String {
    let quoted = format!("'{}'", uninstaller.replace('\'', r"'\''"));
    format!(
        "#!/bin/sh\n# Removes the fleet's agents with the uninstaller its package installed.\nset -eu\nexec {quoted}\n"
    )
}

/// makepkginfo's sizes: bytes / 1024, rounded down.
fn kib(bytes: u64) -> Value {
    Value::Integer((bytes / 1024).into())
}
