//! `confine validate`: fleet specs and configuration profiles, every problem at once.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::Ui;
use super::json::Report;
use super::source::{self, SpecSource};
use super::ui::print_json;
use crate::diagnostics::{Diagnostic, Severity};
use crate::{build, profile};

pub const EXAMPLES: &str = "Examples:
  confine validate                       # ./fleet.yaml (or ./confine.yaml)
  confine validate fleet.yaml profiles/*.mobileconfig
  confine validate - < fleet.yaml        # the spec from stdin
  confine validate fleet.yaml --json | jq '.problems[]'";

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Fleet specs (YAML, `-` for stdin) and configuration profiles (`.mobileconfig`: XML, binary or
    /// signed). Default: ./fleet.yaml, then ./confine.yaml.
    files: Vec<PathBuf>,
    /// Check the built-in example fleet.
    #[arg(long, conflicts_with = "files")]
    example: bool,
    /// Print the result as JSON on stdout (schema `confine/validate/v1`).
    #[arg(long)]
    json: bool,
}

/// One checked file in `confine/validate/v1`.
#[derive(Debug, Serialize)]
struct FileResult {
    file: String,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct ValidateJson {
    files: Vec<FileResult>,
}

pub fn validate(args: &ValidateArgs, ui: &Ui) -> Result<bool> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let mut check = |name: String, found: Vec<Diagnostic>| {
        let ok = found.iter().all(|p| p.severity != Severity::Error);
        files.push(FileResult { file: name, ok });
        problems.extend(found);
    };
    if args.files.is_empty() {
        let (name, found) = spec_problems(source::find(None, args.example, ui), ui);
        check(name, found);
    }
    for file in &args.files {
        let (name, found) = if file.extension().is_some_and(|e| e == "mobileconfig") {
            (file.display().to_string(), profile_problems(file, ui))
        } else {
            spec_problems(source::find(Some(file), false, ui), ui)
        };
        check(name, found);
    }
    let report = Report::new("validate", &problems, ValidateJson { files });
    if args.json {
        print_json(&report)?;
    }
    Ok(report.ok)
}

/// The spec's problems (printed), named by the file they come from.
fn spec_problems(source: Result<SpecSource, crate::spec::SpecError>, ui: &Ui) -> (String, Vec<Diagnostic>) {
    let source = match source {
        Ok(source) => source,
        Err(e) => {
            let problems = Diagnostic::from_spec_error(&e);
            ui.problems(&problems, None);
            return (e.file.display().to_string(), problems);
        }
    };
    let name = source.origin.display().to_string();
    let checked = source
        .load()
        .map_err(anyhow::Error::from)
        .and_then(|loaded| build::check(&loaded));
    match checked {
        Ok(()) => {
            ui.note(&format!("{name}: valid"));
            (name, Vec::new())
        }
        Err(e) => {
            let mut problems = Diagnostic::from_error(&e);
            for problem in &mut problems {
                problem.file.get_or_insert_with(|| name.clone());
            }
            ui.problems(&problems, Some(&source.text));
            (name, problems)
        }
    }
}

/// A profile's findings (printed) as problems of that file.
fn profile_problems(path: &Path, ui: &Ui) -> Vec<Diagnostic> {
    let problems: Vec<Diagnostic> = match profile::validate_file(path) {
        Ok(findings) => findings
            .iter()
            .map(|f| Diagnostic {
                severity: match f.severity {
                    profile::Severity::Error => Severity::Error,
                    profile::Severity::Warning => Severity::Warning,
                },
                file: Some(path.display().to_string()),
                line: None,
                column: None,
                message: if f.path.is_empty() {
                    f.message.clone()
                } else {
                    format!("{}: {}", f.path, f.message)
                },
                help: None,
            })
            .collect(),
        Err(e) => vec![Diagnostic::error(Some(path), format!("{e:#}"))],
    };
    ui.problems(&problems, None);
    if problems.iter().all(|p| p.severity != Severity::Error) {
        ui.note(&format!("{}: valid", path.display()));
    }
    problems
}
