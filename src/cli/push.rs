//! `confine push`: delivers a build to Jamf Pro and Kandji ([`crate::mdm`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::json::Report;
use super::source::{self, SpecSource};
use super::ui::print_json;
use super::{Ui, UsageError};
use crate::diagnostics::Diagnostic;
use crate::{build, mdm};

pub const EXAMPLES: &str = "Examples:
  confine push --dry-run                 # the plan: create, update or unchanged, per object
  confine push fleet.yaml --dist dist --json
  confine push --to kandji --upload-timeout 7200";

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The fleet spec (YAML, `-` for stdin) with an `mdm` section. Default: ./fleet.yaml, then
    /// ./confine.yaml.
    spec: Option<PathBuf>,
    /// The output folder of `confine build`; nothing is rebuilt.
    #[arg(long, default_value_os_t = build::default_out())]
    dist: PathBuf,
    /// Push to this MDM only.
    #[arg(long, value_enum)]
    to: Option<mdm::Target>,
    /// Print the plan (create, update or unchanged per object) and change nothing: reads only.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan or the result as JSON on stdout (schema `confine/push/v1`).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    connect_timeout: f64,
    /// Seconds to wait for the answer to an ordinary request.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    read_timeout: f64,
    /// Seconds an upload may take, its answer included.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0)]
    upload_timeout: f64,
    /// Retries after a connection error, 429 or 5xx (only for steps that are safe to repeat).
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
    /// Seconds before the first retry; each retry doubles it, with jitter.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    retry_delay: f64,
}

/// The command's own fields in `confine/push/v1`.
#[derive(Debug, Serialize)]
struct PushJson<'a> {
    dry_run: bool,
    targets: &'a [mdm::TargetReport],
}

pub fn push(args: &PushArgs, ui: &Ui) -> Result<bool> {
    let options = options(args)?;
    let source = match source::find(args.spec.as_deref(), false, ui) {
        Ok(source) => source,
        Err(e) => return report(args, ui, None, Err(e.into())),
    };
    let result = source
        .load()
        .map_err(anyhow::Error::from)
        .and_then(|loaded| mdm::push(&loaded, &options));
    report(args, ui, Some(&source), result)
}

fn options(args: &PushArgs) -> Result<mdm::PushOptions, UsageError> {
    let seconds = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| UsageError(format!("--{flag} must be a positive number of seconds")))
    };
    Ok(mdm::PushOptions {
        dist: args.dist.clone(),
        to: args.to,
        dry_run: args.dry_run,
        settings: mdm::http::Settings {
            connect_timeout: seconds(args.connect_timeout, "connect-timeout")?,
            read_timeout: seconds(args.read_timeout, "read-timeout")?,
            upload_timeout: seconds(args.upload_timeout, "upload-timeout")?,
            retries: args.retries,
            retry_delay: seconds(args.retry_delay, "retry-delay")?,
        },
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
}

/// Prints one line per object (or the problems) on stderr, and with `--json` the report on stdout.
fn report(
    args: &PushArgs,
    ui: &Ui,
    source: Option<&SpecSource>,
    result: Result<mdm::Report>,
) -> Result<bool> {
    let mut problems = match &result {
        Ok(_) => Vec::new(),
        Err(e) => Diagnostic::from_error(e),
    };
    if let Ok(pushed) = &result {
        for target in &pushed.targets {
            if !target.asked && target.error.is_none() {
                ui.note(&format!(
                    "{}: no credentials, so {} was not asked; what the build would push, in this order, scoped to {}:",
                    target.mdm,
                    target.url,
                    target.scope.join(", ")
                ));
            }
            for object in &target.objects {
                ui.note(&object_line(target.mdm, object, pushed.dry_run));
            }
            if let Some(error) = &target.error {
                problems.push(Diagnostic::error(None, format!("{}: {error}", target.mdm)));
            }
        }
    }
    ui.problems(&problems, source.map(|s| s.text.as_str()));
    if args.json {
        let targets = result.as_ref().map_or(&[][..], |r| &r.targets);
        let data = PushJson {
            dry_run: args.dry_run,
            targets,
        };
        print_json(&Report::new("push", &problems, data))?;
    }
    if !problems.is_empty() && result.is_ok() {
        ui.note("the push did not finish; run it again once the cause is fixed: a rerun converges");
    }
    Ok(problems.is_empty())
}

/// `jamf: profile `Halfday: Firewall` (id 12): unchanged`.
fn object_line(mdm: &str, object: &mdm::Object, dry_run: bool) -> String {
    let action = match (object.action, dry_run) {
        (mdm::Action::Create, true) => "would create",
        (mdm::Action::Update, true) => "would update",
        (mdm::Action::Create, false) => "created",
        (mdm::Action::Update, false) => "updated",
        (mdm::Action::Unchanged, _) => "unchanged",
        (mdm::Action::Push, _) => "would push (create or update)",
    };
    let id = object
        .id
        .as_deref()
        .map(|id| format!(" (id {id})"))
        .unwrap_or_default();
    format!("{mdm}: {} `{}`{id}: {action}", object.kind, object.name)
}
