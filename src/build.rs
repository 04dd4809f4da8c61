//! `confine build`: spec → plan → artifacts → output folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::layout::EmbeddedSecret;
use crate::output::{Kind, Manifest, Staging};
use crate::plan::Plan;
use crate::sign::{self, Identity, PackageSigner, TimestampAuthority, TocSigner};
use crate::spec::{InstallMethod, LoadedSpec};
use crate::{audit, bundle, egress, installer, launchd, layout, npm, openclaw, pkg, probe, profile};

/// The timestamp written where a format demands one (cpio mtimes, the xar creation time) when
/// `SOURCE_DATE_EPOCH` is not set: 2024-01-01T00:00:00Z. A constant, so builds are reproducible.
pub const DEFAULT_EPOCH: u64 = 1_704_067_200;

/// How to build, beyond the spec.
#[derive(Debug, Default)]
pub struct BuildOptions {
    /// The output folder, replaced as a whole when the build succeeds.
    pub out: PathBuf,
    /// Embed the secrets whose spec entry names `embed_from_env`. Off by default: anyone holding the
    /// package can read an embedded secret.
    pub embed_secrets: bool,
    /// Signs the profiles (signed copies beside the unsigned ones).
    pub profile_identity: Option<Identity>,
    /// Signs the packages.
    pub pkg_identity: Option<Identity>,
    /// The RFC 3161 authority that timestamps package signatures (`None`: no timestamp).
    pub timestamp_url: Option<String>,
    /// Also write `<fleet>-<release>.zip` of every artifact and the manifest.
    pub bundle: bool,
}

/// Checks what a build would check before writing anything: the plan and every profile against the
/// payload catalog (errors name the spec line that produced the bad value). `confine validate` runs this
/// after the spec itself loaded.
pub fn check(loaded: &LoadedSpec) -> Result<()> {
    profile::build_loaded(loaded, &Plan::new(&loaded.spec))?;
    Ok(())
}

/// Builds every artifact of the fleet into `options.out` and returns the manifest.
pub fn build(loaded: &LoadedSpec, options: &BuildOptions) -> Result<Manifest> {
    secret_payload_needs_the_flag(loaded, options.embed_secrets)?;
    let plan = Plan::new(&loaded.spec);
    let packages = PackageOptions {
        mtime: source_date_epoch()?,
        secrets: embedded_secrets(&plan, options.embed_secrets)?,
        signer: options
            .pkg_identity
            .as_ref()
            .map(|identity| {
                let timestamps = options
                    .timestamp_url
                    .as_deref()
                    .map(TimestampAuthority::new)
                    .transpose()?;
                PackageSigner::new(identity, timestamps)
            })
            .transpose()?,
    };
    // Built once: its scripts are also written standalone, and it goes into the product archive and, if
    // asked, into a bare component package.
    let vendored = vendor_openclaw(loaded, &plan)?;
    let component = layout::install_component(loaded, &plan, &packages.secrets, vendored.as_ref())?;
    let mut staging = Staging::new(&options.out)?;
    write_agent_files(&plan, &mut staging)?;
    write_audit_files(&plan, &mut staging)?;
    write_scripts(&plan, &component.scripts, &mut staging)?;
    write_secret_scripts(&plan, &mut staging)?;
    write_probe(&plan, vendored.as_ref(), &mut staging)?;
    write_profiles(loaded, &plan, options.profile_identity.as_ref(), &mut staging)?;
    let component_pkg = loaded.spec.package.component;
    write_packages(&plan, component, component_pkg, &packages, &mut staging)?;
    if !options.bundle {
        return staging.commit();
    }
    let zip_name = bundle::file_name(&plan.fleet.name, &plan.fleet.release);
    staging.commit_with(|dir, manifest| bundle::write(dir, manifest, &dir.join(&zip_name), packages.mtime))
}

/// The OpenClaw versions that agents with `install: bundle` pin, laid out from the lockfile beside the
/// spec. Never resolves: a version the lockfile lacks is an error that names `confine lock`.
fn vendor_openclaw(loaded: &LoadedSpec, plan: &Plan) -> Result<Option<npm::Vendored>> {
    let versions: BTreeSet<String> = plan
        .agents
        .iter()
        .filter(|a| a.openclaw.install == InstallMethod::Bundle)
        .map(|a| a.openclaw.version.clone())
        .collect();
    if versions.is_empty() {
        return Ok(None);
    }
    let lock = npm::Lockfile::read(&loaded.origin)?;
    let versions: Vec<String> = versions.into_iter().collect();
    npm::vendor(&lock, &loaded.origin, &versions, &npm::Cache::user()?).map(Some)
}

/// Each agent's LaunchDaemon plist and OpenClaw config, standalone for review and diffs (the package
/// carries the same bytes).
fn write_agent_files(plan: &Plan, staging: &mut Staging) -> Result<()> {
    for agent in &plan.agents {
        let label = &agent.launchd.label;
        staging.write(
            &format!("launchd/{label}.plist"),
            Kind::LaunchdPlist,
            label,
            &launchd::daemon_plist(agent)?,
        )?;
        for daemon in agent.rotation.iter().filter(|d| d.enabled) {
            staging.write(
                &format!("launchd/{}.plist", daemon.label),
                Kind::LaunchdPlist,
                &daemon.label,
                &launchd::rotation_plist(agent, daemon)?,
            )?;
        }
        let config_id = format!("{}.{}.config", plan.fleet.identifier, agent.name);
        staging.write(
            &format!("config/{}/openclaw.json", agent.name),
            Kind::Config,
            &config_id,
            &openclaw::config(agent)?,
        )?;
    }
    write_egress_files(plan, staging)
}

/// With `egress`: the watchdog's plist and script, and the pf anchor it loads, standalone for review.
fn write_egress_files(plan: &Plan, staging: &mut Staging) -> Result<()> {
    let Some(anchor) = egress::anchor(plan)? else {
        return Ok(());
    };
    let e = &plan.egress;
    let plist = launchd::egress_plist(e)?;
    staging.write(
        &format!("launchd/{}.plist", e.label),
        Kind::LaunchdPlist,
        &e.label,
        &plist,
    )?;
    staging.write("config/egress-anchor.conf", Kind::Config, &e.anchor, &anchor)?;
    staging.write(
        "scripts/egress-watchdog",
        Kind::Script,
        &e.label,
        egress::WATCHDOG.as_bytes(),
    )?;
    Ok(())
}

/// The audit trail's two root daemons, standalone like the agents' (`launchd/<label>.plist`).
fn write_audit_files(plan: &Plan, staging: &mut Staging) -> Result<()> {
    let Some(trail) = &plan.audit else {
        return Ok(());
    };
    let plists = [
        (&trail.eslogger_label, audit::daemons::eslogger_plist(trail)?),
        (&trail.collector_label, audit::daemons::collector_plist(trail)?),
    ];
    for (label, bytes) in plists {
        staging.write(
            &format!("launchd/{label}.plist"),
            Kind::LaunchdPlist,
            label,
            &bytes,
        )?;
    }
    Ok(())
}

/// The installer scripts, standalone so a reviewer can read exactly what runs on the Mac as root.
fn write_scripts(plan: &Plan, scripts: &[pkg::Script], staging: &mut Staging) -> Result<()> {
    for script in scripts {
        let path = format!("scripts/{}", script.name);
        staging.write(&path, Kind::Script, &plan.pkg_identifier, &script.contents)?;
    }
    Ok(())
}

/// The MDM scripts that replace each agent's secrets on a Mac.
fn write_secret_scripts(plan: &Plan, staging: &mut Staging) -> Result<()> {
    for script in installer::secret_scripts(plan)? {
        staging.write(&script.path, Kind::Script, &script.identifier, &script.contents)?;
    }
    Ok(())
}

/// The read-only pilot-Mac probe, beside the package.
fn write_probe(plan: &Plan, vendored: Option<&npm::Vendored>, staging: &mut Staging) -> Result<()> {
    let entry = staging.write(
        &probe::file_name(plan),
        Kind::Probe,
        &plan.pkg_identifier,
        &probe::script(plan, vendored)?,
    )?;
    entry.notes.push(
        "run with sudo on one pilot Mac before the rollout: it changes nothing and says which facts the installer relies on would fail (docs/pilot.md)".to_owned(),
    );
    Ok(())
}

struct PackageOptions<'a> {
    mtime: u64,
    secrets: Vec<EmbeddedSecret>,
    signer: Option<PackageSigner<'a>>,
}

/// The install product archive, the payload-free uninstall product and, if `component_pkg`, the bare
/// component package. Each streams straight into its file in the staging folder.
fn write_packages(
    plan: &Plan,
    component: pkg::Component,
    component_pkg: bool,
    options: &PackageOptions,
    staging: &mut Staging,
) -> Result<()> {
    let write = pkg::BuildOptions { mtime: options.mtime };
    let signer = options.signer.as_ref().map(|s| s as &dyn TocSigner);
    let (name, release) = (&plan.fleet.name, &plan.fleet.release);
    if component_pkg {
        let path = format!("{name}-{release}-component.pkg");
        write_pkg(staging, &path, Kind::ComponentPkg, &plan.pkg_identifier, |out| {
            pkg::write_component(&component, out, &write, signer)
        })?;
    }
    let install = layout::install_product(plan, component);
    let install_path = format!("{name}-{release}.pkg");
    write_pkg(staging, &install_path, Kind::Pkg, &plan.pkg_identifier, |out| {
        pkg::write_product(&install, out, &write, signer)
    })?;
    let uninstall = layout::uninstall_product(plan)?;
    let uninstall_path = format!("{name}-uninstall-{release}.pkg");
    write_pkg(
        staging,
        &uninstall_path,
        Kind::UninstallPkg,
        &plan.uninstall_pkg_identifier,
        |out| pkg::write_product(&uninstall, out, &write, signer),
    )?;
    Ok(())
}

fn write_pkg(
    staging: &mut Staging,
    relative: &str,
    kind: Kind,
    identifier: &str,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    let path = staging.path(relative)?;
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out).with_context(|| format!("writing {relative}"))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {relative}"))?;
    staging.record(relative, kind, identifier)?;
    Ok(())
}

/// Every profile, unsigned (reviewable, byte-stable) and, with a profile identity, signed beside it.
fn write_profiles(
    loaded: &LoadedSpec,
    plan: &Plan,
    identity: Option<&Identity>,
    staging: &mut Staging,
) -> Result<()> {
    for built in profile::build_loaded(loaded, plan)? {
        for warning in &built.warnings {
            eprintln!("warning: {}: {warning}", built.file_name);
        }
        let path = format!("profiles/{}", built.file_name);
        staging
            .write(&path, Kind::Profile, &built.identifier, &built.xml)?
            .notes = built.notes.clone();
        if let Some(identity) = identity {
            let signed = sign::sign_profile(identity, &built.xml)
                .with_context(|| format!("signing {}", built.file_name))?;
            let path = format!("profiles/signed/{}", built.file_name);
            staging
                .write(&path, Kind::SignedProfile, &built.identifier, &signed)?
                .notes = built.notes.clone();
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (seconds since 1970, as reproducible-builds.org defines it) or [`DEFAULT_EPOCH`].
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_EPOCH),
        Ok(v) if v.is_empty() => Ok(DEFAULT_EPOCH),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&t| t < 1 << 33)
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")),
        Err(e) => bail!("SOURCE_DATE_EPOCH: {e}"),
    }
}

/// The secrets to embed: only those the spec marks with `embed_from_env`, and only with `--embed-secrets`.
/// Without the flag they stay empty placeholders, filled later on the Mac.
fn embedded_secrets(plan: &Plan, enabled: bool) -> Result<Vec<EmbeddedSecret>> {
    let mut secrets = Vec::new();
    for agent in &plan.agents {
        for secret in &agent.secrets {
            let Some(var) = &secret.embed_from_env else {
                continue;
            };
            if !enabled {
                // A warning (shown even with -q): the spec asks for the secret, and the package lacks it.
                eprintln!(
                    "warning: secret `{}` of agent `{}` is not embedded (run with --embed-secrets to embed ${var}); the package creates an empty placeholder",
                    secret.name, agent.name
                );
                continue;
            }
            let value = std::env::var_os(var).filter(|v| !v.is_empty()).with_context(|| {
                format!(
                    "--embed-secrets: ${var} (secret `{}` of agent `{}`) is not set",
                    secret.name, agent.name
                )
            })?;
            secrets.push(EmbeddedSecret {
                agent: agent.name.clone(),
                name: secret.name.clone(),
                path: secret.path.clone(),
                value: value.into_encoded_bytes(),
            });
        }
    }
    Ok(secrets)
}

/// An extra payload entry marked `secret` is embedded like any secret: only with `--embed-secrets`.
fn secret_payload_needs_the_flag(loaded: &LoadedSpec, enabled: bool) -> Result<()> {
    let secret = loaded.spec.package.extra_payload.iter().find(|e| e.secret);
    if let (Some(entry), false) = (secret, enabled) {
        let at = &entry.source.referenced;
        bail!(
            "{}:{}:{}: extra payload `{}` is marked secret; anyone holding the package can read it, so it is packed only with --embed-secrets",
            loaded.origin.display(),
            at.line(),
            at.column(),
            entry.source.value
        );
    }
    Ok(())
}

/// The default output folder, `dist/` in the current folder.
pub fn default_out() -> PathBuf {
    Path::new("dist").to_path_buf()
}
