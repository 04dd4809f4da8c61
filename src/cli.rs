//! The command line: argument parsing and one function per subcommand. Results go to stdout (JSON with
//! `--json`), messages to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::build::{self, BuildOptions};
use crate::spec::{self, SpecError};

/// Build the signed package, LaunchDaemons and configuration profiles that run an AI agent under its own
/// locked-down macOS account, on every Mac of a fleet.
#[derive(Debug, Parser)]
#[command(name = "confine", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every artifact of a fleet into an output folder (the built-in example fleet without SPEC).
    Build(BuildArgs),
    /// Check a fleet spec (the built-in example without SPEC).
    Validate(ValidateArgs),
    /// Write the example fleet spec, with comments that teach the format.
    Init {
        /// Where to write it. An existing file is never overwritten.
        #[arg(default_value = "fleet.yaml")]
        path: PathBuf,
    },
    /// Print the JSON Schema (draft-07) of the fleet spec, for editors.
    Schema,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The fleet spec (YAML). Without it, the built-in example fleet is built.
    spec: Option<PathBuf>,
    /// The output folder. It is replaced only when the whole build succeeds.
    #[arg(long, default_value_os_t = build::default_out())]
    out: PathBuf,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// The fleet spec (YAML). Without it, the built-in example fleet is checked.
    spec: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Parses the command line, runs it, and reports errors. Exit status: 0 ok, 1 error, 2 usage.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build_command(&args),
        Command::Validate(args) => validate_command(&args),
        Command::Init { path } => init_command(&path),
        Command::Schema => print_stdout(spec::json_schema().as_bytes()),
    }
}

fn build_command(args: &BuildArgs) -> Result<()> {
    let result = spec::load(args.spec.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|loaded| {
            build::build(
                &loaded,
                &BuildOptions {
                    out: args.out.clone(),
                },
            )
        });
    match result {
        Ok(manifest) => {
            if args.json {
                print_json(&serde_json::json!({ "ok": true, "artifacts": manifest.artifacts }))?;
            } else {
                eprintln!(
                    "built {} artifacts into {}",
                    manifest.artifacts.len(),
                    args.out.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            if args.json {
                print_json(&error_json(&e))?;
            }
            Err(e)
        }
    }
}

fn validate_command(args: &ValidateArgs) -> Result<()> {
    match spec::load(args.spec.as_deref()) {
        Ok(loaded) => {
            if args.json {
                print_json(&serde_json::json!({ "ok": true, "file": loaded.origin, "problems": [] }))?;
            } else {
                eprintln!("{}: valid", loaded.origin.display());
            }
            Ok(())
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            if args.json {
                print_json(&error_json(&e))?;
            }
            Err(e)
        }
    }
}

fn init_command(path: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(spec::EXAMPLE.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}; check it with `confine validate {0}`", path.display());
    Ok(())
}

/// `{"ok": false, ...}`: the spec's problems one by one when the error is a spec error.
fn error_json(e: &anyhow::Error) -> serde_json::Value {
    match e.downcast_ref::<SpecError>() {
        Some(spec_error) => {
            let problems: Vec<_> = spec_error
                .problems
                .iter()
                .map(|p| serde_json::json!({ "line": p.line, "column": p.column, "message": p.message, "help": p.help }))
                .collect();
            serde_json::json!({ "ok": false, "file": spec_error.file, "problems": problems })
        }
        None => serde_json::json!({ "ok": false, "error": format!("{e:#}") }),
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    print_stdout(&text)
}

fn print_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A closed pipe (`confine schema | head`) is not an error worth reporting.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => bail!("writing to stdout: {e}"),
        Ok(()) => Ok(()),
    }
}
