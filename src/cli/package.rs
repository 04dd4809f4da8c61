//! `confine inspect` and `confine verify`: built packages and signed profiles, any number at once.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::Ui;
use super::json::Report;
use super::ui::{print_json, print_stdout};
use crate::diagnostics::Diagnostic;
use crate::{pkg, sign, verify as verifier};

pub const INSPECT_EXAMPLES: &str = "Examples:
  confine inspect dist/*.pkg | less
  confine inspect dist/halfday-agents-1.0.0.pkg --json | jq -r '.packages[0].report'";

pub const VERIFY_EXAMPLES: &str = "Examples:
  confine verify dist/*.pkg dist/profiles/signed/*.mobileconfig
  confine verify dist/*.pkg --ca fleet-ca.pem --json
  confine verify dist/*.pkg --allow-unsigned     # a development build";

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Flat packages (`.pkg`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the reports as JSON on stdout (schema `confine/inspect/v1`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Packages (`.pkg`) and signed profiles (`.mobileconfig`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also require a signature whose chain reaches one of these CA certificates (PEM or DER).
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// Accept unsigned packages and profiles (a development build); without it either one fails.
    #[arg(long, conflicts_with = "ca")]
    allow_unsigned: bool,
    /// Print the result as JSON on stdout (schema `confine/verify/v1`).
    #[arg(long)]
    json: bool,
}

/// One package in `confine/inspect/v1`: the same text report the human output shows.
#[derive(Debug, Serialize)]
struct Inspected {
    file: PathBuf,
    report: String,
}

#[derive(Debug, Serialize)]
struct InspectJson {
    packages: Vec<Inspected>,
}

/// One file in `confine/verify/v1`.
#[derive(Debug, Serialize)]
struct Verified {
    file: PathBuf,
    ok: bool,
    summary: Option<String>,
}

#[derive(Debug, Serialize)]
struct VerifyJson {
    files: Vec<Verified>,
}

/// Each package's report on stdout, in order; a file that cannot be read is a problem, and the others
/// are still shown.
pub fn inspect(args: &InspectArgs, ui: &Ui) -> Result<bool> {
    let mut problems = Vec::new();
    let mut packages = Vec::new();
    for (index, file) in args.files.iter().enumerate() {
        match pkg::inspect(file) {
            Ok(report) => {
                if !args.json {
                    let separator = if index > 0 { "\n" } else { "" };
                    print_stdout(format!("{separator}{report}").as_bytes())?;
                }
                packages.push(Inspected {
                    file: file.clone(),
                    report,
                });
            }
            Err(e) => {
                let problem = Diagnostic::error(Some(file), format!("{e:#}"));
                ui.problems(std::slice::from_ref(&problem), None);
                problems.push(problem);
            }
        }
    }
    let report = Report::new("inspect", &problems, InspectJson { packages });
    if args.json {
        print_json(&report)?;
    }
    Ok(report.ok)
}

/// Every file is checked; each gets an `ok` or `FAILED` line on stderr and its problems.
pub fn verify(args: &VerifyArgs, ui: &Ui) -> Result<bool> {
    let ca = args.ca.as_deref().map(sign::load_certificates).transpose()?;
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for file in &args.files {
        let (summary, found) = match verifier::verify_file(file, ca.as_deref(), args.allow_unsigned) {
            Ok(report) => {
                let found: Vec<_> = report
                    .problems
                    .iter()
                    .map(|p| Diagnostic::error(Some(file), p.as_str()))
                    .collect();
                (Some(report.summary), found)
            }
            Err(e) => (None, vec![Diagnostic::error(Some(file), format!("{e:#}"))]),
        };
        let ok = found.is_empty();
        match (&summary, ok) {
            (Some(summary), true) => ui.note(&format!("{}: ok: {summary}", file.display())),
            (summary, _) => {
                // A failure is shown even with -q.
                let summary = summary.as_ref().map_or_else(String::new, |s| format!(": {s}"));
                eprintln!("{}: FAILED{summary}", file.display());
                ui.problems(&found, None);
            }
        }
        files.push(Verified {
            file: file.clone(),
            ok,
            summary,
        });
        problems.extend(found);
    }
    let report = Report::new("verify", &problems, VerifyJson { files });
    if args.json {
        print_json(&report)?;
    }
    if !report.ok {
        let failed = report.data.files.iter().filter(|f| !f.ok).count();
        ui.problems(
            &[Diagnostic::error(
                None,
                format!("{failed} of {} files failed verification", args.files.len()),
            )],
            None,
        );
    }
    Ok(report.ok)
}
