//! `confine lock`: resolves the spec's pinned OpenClaw versions for the Mac platforms and writes the
//! lockfile beside the spec, which `confine build` reads for `openclaw.install: bundle`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::Ui;
use super::source::{self, Kind};
use crate::diagnostics::Diagnostic;
use crate::npm;

pub const EXAMPLES: &str = "Examples:
  confine lock                 # ./fleet.yaml: writes ./fleet.lock
  confine lock fleets/a.yaml   # writes fleets/a.lock
  git diff fleet.lock          # what changed when OpenClaw moved";

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The fleet spec. Default: ./fleet.yaml, then ./confine.yaml.
    spec: Option<PathBuf>,
}

pub fn lock(args: &LockArgs, ui: &Ui) -> Result<bool> {
    let source = source::find(args.spec.as_deref(), false, ui)?;
    if source.kind != Kind::File {
        bail!(
            "confine lock writes the lockfile beside a spec file: name one, e.g. `confine lock fleet.yaml`"
        );
    }
    let loaded = match source.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            ui.problems(&Diagnostic::from_error(&e.into()), Some(&source.text));
            return Ok(false);
        }
    };
    let versions: BTreeSet<String> = loaded
        .spec
        .agents
        .iter()
        .map(|a| a.openclaw.version.value.clone())
        .collect();
    let versions: Vec<String> = versions.into_iter().collect();
    let platforms = npm::platforms()?;
    let lock = npm::resolve(&versions, &platforms)?;
    let path = npm::lock_path(&source.origin);
    lock.write(&path)?;
    let packages: usize = lock.openclaw.values().map(|p| p.len()).sum();
    ui.note(&format!(
        "locked openclaw {} for {}: {packages} packages in {}",
        versions.join(", "),
        platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        path.display()
    ));
    Ok(true)
}
