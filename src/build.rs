//! `confine build`: spec → plan → artifacts → output folder.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::output::{Kind, Manifest, Staging};
use crate::plan::Plan;
use crate::spec::LoadedSpec;
use crate::{launchd, openclaw};

/// How to build, beyond the spec.
#[derive(Debug, Default)]
pub struct BuildOptions {
    /// The output folder, replaced as a whole when the build succeeds.
    pub out: PathBuf,
}

/// Builds every artifact of the fleet into `options.out` and returns the manifest.
pub fn build(loaded: &LoadedSpec, options: &BuildOptions) -> Result<Manifest> {
    let plan = Plan::new(&loaded.spec);
    let mut staging = Staging::new(&options.out)?;
    write_agent_files(&plan, &mut staging)?;
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

/// The default output folder, `dist/` in the current folder.
pub fn default_out() -> PathBuf {
    Path::new("dist").to_path_buf()
}
