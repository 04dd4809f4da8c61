//! What the fleet's packages put where on the Mac: the one place that maps a plan to package contents.
//!
//! The install package's payload holds, at their final paths:
//! - each agent's LaunchDaemon plist, `/Library/LaunchDaemons/<label>.plist`, root:wheel 0644 (launchd
//!   refuses group- or world-writable plists);
//! - each agent's OpenClaw config, root:<agent's group> 0640, so the agent can read but not change it;
//! - the installer's support files (uninstaller, shared functions, data file) under the fleet's support
//!   folder, root-owned;
//! - each bundled OpenClaw version (`openclaw.install: bundle`), laid out from the locked tarballs under
//!   `<support folder>/openclaw/<version>`, root-owned, files 0644 or 0755;
//! - the fleet's newsyslog.d entry and, with `agents[].audit`, the audit trail's two daemon plists and its
//!   collector script ([`crate::audit`]);
//! - with `egress`, the fleet's pf anchor and its watchdog (script and LaunchDaemon plist), root-owned
//!   ([`crate::egress`]);
//! - the spec's extra payload, modes preserved, root-owned;
//! - secrets embedded with `--embed-secrets`, root-only 0600 in a staging folder that the postinstall
//!   empties into the agent's secrets folder.
//!
//! Its scripts are the static files in `pkg/` plus the generated data file ([`crate::installer`]) and, per
//! bundled OpenClaw version, the `engines` the preinstall checks the Mac's node against. The
//! uninstall package has no payload: its postinstall is the uninstaller.
//!
//! Receipts: the install component leaves one (`pkgutil --pkgs` lists the fleet identifier), which is
//! what Jamf's receipts inventory, Intune-style PKG detection and Kandji audit scripts look at. The
//! uninstall component is payload-free, as `pkgbuild --nopayload` makes it, and like Apple's tools it
//! leaves no receipt; the uninstaller also forgets the install receipt. So after an uninstall an MDM sees
//! no confine receipt at all, the same as a Mac that never had the fleet, and the uninstall's success is
//! the installer's exit status (Jamf policy logs, `installer` in a script). A receipt for the uninstaller
//! would read as "installed" forever and would outlive a later reinstall.

use anyhow::{Context, Result};

use crate::npm::Vendored;
use crate::pkg::{Component, Payload, Product, Script};
use crate::plan::{Plan, SUPPORT_ROOT, bundle_root};
use crate::spec::LoadedSpec;
use crate::{audit, egress, installer, launchd, openclaw};

/// A secret value taken from the build machine's environment, to be installed on every Mac.
pub struct EmbeddedSecret {
    pub agent: String,
    pub name: String,
    /// Where the installer puts it, owner-only.
    pub path: String,
    pub value: Vec<u8>,
}

// Written by hand so a value can never reach a log through `{:?}`.
impl std::fmt::Debug for EmbeddedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmbeddedSecret({}/{}, {} bytes)",
            self.agent,
            self.name,
            self.value.len()
        )
    }
}

const ROOT: u32 = 0;
const WHEEL: u32 = 0;
/// `/Library/Application Support` is root:admin on macOS; the payload repeats the owner it already has.
const ADMIN: u32 = 80;

/// The install package: a product archive around the install component.
pub fn install_product(plan: &Plan, component: Component) -> Product {
    product(plan, plan.fleet.organization.clone(), component)
}

/// The component inside the install product, also written on its own for `installer -pkg` and agent-based
/// MDMs.
pub fn install_component(
    loaded: &LoadedSpec,
    plan: &Plan,
    secrets: &[EmbeddedSecret],
    vendored: Option<&Vendored>,
) -> Result<Component> {
    let mut script_files = installer::scripts(plan)?;
    if let Some(vendored) = vendored {
        script_files.extend(installer::bundle_scripts(vendored)?);
    }
    Ok(Component {
        identifier: plan.pkg_identifier.clone(),
        version: plan.fleet.release.clone(),
        payload: Some(install_payload(loaded, plan, secrets, vendored)?),
        scripts: scripts(script_files),
    })
}

/// The payload-free uninstall package.
pub fn uninstall_product(plan: &Plan) -> Result<Product> {
    let component = Component {
        identifier: plan.uninstall_pkg_identifier.clone(),
        version: plan.fleet.release.clone(),
        payload: None,
        scripts: scripts(installer::uninstall_scripts(plan)?),
    };
    Ok(product(
        plan,
        format!("Uninstall {}", plan.fleet.organization),
        component,
    ))
}

fn product(plan: &Plan, title: String, component: Component) -> Product {
    Product {
        title: format!("{title} agents ({})", plan.fleet.name),
        identifier: component.identifier.clone(),
        version: plan.fleet.release.clone(),
        minimum_macos: plan.fleet.minimum_macos.clone(),
        components: vec![component],
    }
}

fn scripts(files: Vec<installer::ScriptFile>) -> Vec<Script> {
    files
        .into_iter()
        .map(|f| Script {
            name: f.name,
            contents: f.contents,
            mode: f.mode,
        })
        .collect()
}

fn install_payload(
    loaded: &LoadedSpec,
    plan: &Plan,
    secrets: &[EmbeddedSecret],
    vendored: Option<&Vendored>,
) -> Result<Payload> {
    let mut payload = Payload::new();
    payload.add_dir("/Library", 0o755, ROOT, WHEEL)?;
    payload.add_dir("/Library/LaunchDaemons", 0o755, ROOT, WHEEL)?;
    payload.add_dir("/Library/Application Support", 0o755, ROOT, ADMIN)?;
    payload.add_dir(SUPPORT_ROOT, 0o755, ROOT, WHEEL)?;
    payload.add_dir(&plan.support_dir, 0o755, ROOT, WHEEL)?;
    for agent in &plan.agents {
        payload.add_file(
            &agent.launchd.plist_path,
            launchd::daemon_plist(agent)?,
            0o644,
            ROOT,
            WHEEL,
        )?;
        for daemon in agent.rotation.iter().filter(|d| d.enabled) {
            payload.add_file(
                &daemon.plist_path,
                launchd::rotation_plist(agent, daemon)?,
                0o644,
                ROOT,
                WHEEL,
            )?;
        }
        payload.add_dir(&agent.config_dir, 0o755, ROOT, WHEEL)?;
        payload.add_file(
            &agent.config_path,
            openclaw::config(agent)?,
            0o640,
            ROOT,
            agent.primary_gid,
        )?;
    }
    add_logging(&mut payload, plan)?;
    for (path, contents, mode) in egress::payload_files(plan)? {
        payload.add_file(&path, contents, mode, ROOT, WHEEL)?;
    }
    for file in installer::support_files(plan)? {
        payload.add_file(&file.path, file.contents, file.mode, ROOT, WHEEL)?;
    }
    if let Some(vendored) = vendored {
        add_bundles(&mut payload, plan, vendored)?;
    }
    add_extra_payload(&mut payload, loaded)?;
    add_embedded_secrets(&mut payload, plan, secrets)?;
    Ok(payload)
}

/// The fleet's newsyslog.d entry for the gateways' stdout and stderr and, with `agents[].audit`, the audit
/// trail's two root daemons ([`crate::audit`]).
fn add_logging(payload: &mut Payload, plan: &Plan) -> Result<()> {
    payload.add_dir("/private", 0o755, ROOT, WHEEL)?;
    payload.add_dir("/private/etc", 0o755, ROOT, WHEEL)?;
    payload.add_dir("/private/etc/newsyslog.d", 0o755, ROOT, WHEEL)?;
    payload.add_file(
        &plan.newsyslog_path,
        audit::newsyslog::conf(plan),
        0o644,
        ROOT,
        WHEEL,
    )?;
    if let Some(trail) = &plan.audit {
        let plists = [
            (&trail.eslogger_plist, audit::daemons::eslogger_plist(trail)?),
            (&trail.collector_plist, audit::daemons::collector_plist(trail)?),
        ];
        for (path, bytes) in plists {
            payload.add_file(path, bytes, 0o644, ROOT, WHEEL)?;
        }
    }
    Ok(())
}

/// Each bundled OpenClaw version, root-owned: the agents read and run it, and cannot change it.
fn add_bundles(payload: &mut Payload, plan: &Plan, vendored: &Vendored) -> Result<()> {
    for (version, bundle) in &vendored.trees {
        let root = bundle_root(&plan.fleet.name, version);
        payload.add_tree(&root, Box::new(bundle.clone()), ROOT, WHEEL)?;
    }
    Ok(())
}

fn add_extra_payload(payload: &mut Payload, loaded: &LoadedSpec) -> Result<()> {
    for extra in &loaded.spec.package.extra_payload {
        let source = loaded.base_dir.join(&extra.source.value);
        let destination = &extra.destination.value;
        let metadata = std::fs::symlink_metadata(&source).with_context(|| {
            format!(
                "extra payload {} (from {}:{})",
                source.display(),
                loaded.origin.display(),
                extra.source.referenced.line()
            )
        })?;
        if metadata.is_dir() {
            payload.add_tree_from_disk(destination, &source, ROOT, WHEEL)?;
        } else {
            payload.add_file_from_disk(destination, &source, permission_bits(&metadata), ROOT, WHEEL)?;
        }
    }
    Ok(())
}

fn permission_bits(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o7777
}

fn add_embedded_secrets(payload: &mut Payload, plan: &Plan, secrets: &[EmbeddedSecret]) -> Result<()> {
    if secrets.is_empty() {
        return Ok(());
    }
    let dir = &plan.embedded_secrets_dir;
    payload.add_dir(dir, 0o700, ROOT, WHEEL)?;
    for secret in secrets {
        payload.add_dir(&format!("{dir}/{}", secret.agent), 0o700, ROOT, WHEEL)?;
        payload.add_file(
            &format!("{dir}/{}/{}", secret.agent, secret.name),
            secret.value.clone(),
            0o600,
            ROOT,
            WHEEL,
        )?;
    }
    Ok(())
}
