//! `confine export`: a build described for Munki and Workspace ONE, Fleet GitOps, Apple MDM servers, and
//! the inventory scripts that report each Mac back (see [`crate::export`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::Ui;
use super::source;
use crate::diagnostics::Diagnostic;
use crate::export::{self, Target};

pub const EXAMPLES: &str = "Examples:
  confine build fleet.yaml --out dist && confine export munki fleet.yaml --build dist --out munki
  confine export fleet fleet.yaml --out gitops      # then copy gitops/ into the Fleet repo
  confine export apple-mdm fleet.yaml --out nanomdm
  confine export inventory fleet.yaml --out inventory";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to describe the build for.
    #[arg(value_enum)]
    target: ExportTarget,
    /// The fleet spec the build was made from (`-` for stdin). Default: ./fleet.yaml, then ./confine.yaml.
    spec: Option<PathBuf>,
    /// Use the built-in example fleet.
    #[arg(long, conflicts_with = "spec")]
    example: bool,
    /// The build folder `confine build` wrote.
    #[arg(long, default_value = "dist")]
    build: PathBuf,
    /// The folder to write. It is replaced only when the whole export succeeds, and only if confine
    /// wrote it. Default: `export/<target>`.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportTarget {
    /// A Munki repo tree (pkgs/, pkgsinfo/) and a Workspace ONE pkginfo.
    Munki,
    /// Fleet GitOps files: the package YAML, scripts, profiles and a fleet snippet.
    Fleet,
    /// Apple MDM commands for NanoMDM or MicroMDM and a ManifestURL manifest.
    AppleMdm,
    /// Inventory scripts: Jamf Pro extension attributes and a plain report script.
    Inventory,
}

impl ExportTarget {
    fn target(self) -> (Target, &'static str) {
        match self {
            ExportTarget::Munki => (Target::Munki, "munki"),
            ExportTarget::Fleet => (Target::Fleet, "fleet"),
            ExportTarget::AppleMdm => (Target::AppleMdm, "apple-mdm"),
            ExportTarget::Inventory => (Target::Inventory, "inventory"),
        }
    }
}

pub fn export(args: &ExportArgs, ui: &Ui) -> Result<bool> {
    let source = source::find(args.spec.as_deref(), args.example, ui)?;
    let (target, name) = args.target.target();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("export").join(name));
    super::build::check_out(&out, &source)?;
    let result = source
        .load()
        .map_err(anyhow::Error::from)
        .and_then(|loaded| export::export(&loaded, target, &args.build, &out));
    match result {
        Ok(manifest) => {
            ui.note(&format!(
                "exported {name} into {}/ ({} files)",
                out.display().to_string().trim_end_matches('/'),
                manifest.artifacts.len()
            ));
            Ok(true)
        }
        Err(e) => {
            ui.problems(&Diagnostic::from_error(&e), Some(source.text.as_str()));
            Ok(false)
        }
    }
}
