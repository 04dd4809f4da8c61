//! `confine build`: spec → plan → artifacts → output folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::output::{Kind, Manifest, Staging};
use crate::plan::Plan;
use crate::sign::{self, Identity};
use crate::spec::LoadedSpec;
use crate::{launchd, openclaw, profile};

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
}

/// Builds every artifact of the fleet into `options.out` and returns the manifest.
pub fn build(loaded: &LoadedSpec, options: &BuildOptions) -> Result<Manifest> {
    let plan = Plan::new(&loaded.spec);
    let _epoch = source_date_epoch()?;
    let _secrets = embedded_secrets(&plan, options.embed_secrets)?;
    let mut staging = Staging::new(&options.out)?;
    write_agent_files(&plan, &mut staging)?;
    write_profiles(loaded, &plan, options.profile_identity.as_ref(), &mut staging)?;
    staging.commit()
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
        let config_id = format!("{}.{}.config", plan.fleet.identifier, agent.name);
        staging.write(
            &format!("config/{}/openclaw.json", agent.name),
            Kind::Config,
            &config_id,
            &openclaw::config(agent)?,
        )?;
    }
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
        staging.write(&path, Kind::Profile, &built.identifier, &built.xml)?;
        if let Some(identity) = identity {
            let signed = sign::sign_profile(identity, &built.xml)
                .with_context(|| format!("signing {}", built.file_name))?;
            let path = format!("profiles/signed/{}", built.file_name);
            staging.write(&path, Kind::SignedProfile, &built.identifier, &signed)?;
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
                eprintln!(
                    "note: secret `{}` of agent `{}` is not embedded (run with --embed-secrets to embed ${var}); the package creates an empty placeholder",
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

/// The default output folder, `dist/` in the current folder.
pub fn default_out() -> PathBuf {
    Path::new("dist").to_path_buf()
}
