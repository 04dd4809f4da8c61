//! The command line: the argument definitions and one module per group of subcommands.
//!
//! The output rule, for every command: stdout carries only what the command produces (a JSON object with
//! `--json`, a report, the schema, completions, a man page), so it can be piped; stderr carries
//! everything meant for a person (summaries, notes, warnings, diagnostics). `-q` silences the notes and
//! summaries, never warnings or errors. Exit status: 0 success, 1 error, 2 usage error, 130 interrupted.

mod audit;
mod build;
mod export;
mod json;
mod lock;
mod package;
mod progress;
mod push;
mod shell;
mod source;
mod ui;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diagnostics::Diagnostic;
pub use ui::Ui;

/// `confine --version`: the crate version, and the `git describe` of the build when there was one.
const VERSION: &str = match option_env!("CONFINE_GIT_DESCRIBE") {
    Some(describe) => describe,
    None => env!("CARGO_PKG_VERSION"),
};

/// Build the signed package, LaunchDaemons and configuration profiles that run an AI agent under its own
/// locked-down macOS account, on every Mac of a fleet.
#[derive(Debug, Parser)]
#[command(name = "confine", version = VERSION, about, max_term_width = 100)]
#[command(
    after_help = "Without a SPEC, commands use fleet.yaml, then confine.yaml, from the current folder or the nearest\nfolder above it that has one."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// When to colour messages: `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    /// Print only warnings, errors and the requested output.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every artifact of a fleet into an output folder.
    #[command(after_help = build::EXAMPLES)]
    Build(build::BuildArgs),
    /// Resolve the spec's OpenClaw versions for both Mac architectures and pin every package by sha512
    /// in the lockfile beside the spec (fleet.yaml gives fleet.lock), for `openclaw.install: bundle`.
    #[command(after_help = lock::EXAMPLES)]
    Lock(lock::LockArgs),
    /// Check fleet specs and configuration profiles; report every problem.
    #[command(after_help = validate::EXAMPLES)]
    Validate(validate::ValidateArgs),
    /// Write the example fleet spec, with comments that teach the format.
    #[command(after_help = "Example:\n  confine init fleet.yaml")]
    Init {
        /// Where to write it, or `-` for stdout. An existing file is never overwritten.
        #[arg(default_value = "fleet.yaml")]
        path: PathBuf,
    },
    /// Print the JSON Schema (draft-07) of the fleet spec, for editors.
    #[command(after_help = "Example:\n  confine schema > fleet.schema.json")]
    Schema,
    /// Show what packages hold: TOC, components, PackageInfo, payload listing (like lsbom), scripts and
    /// signatures.
    #[command(after_help = package::INSPECT_EXAMPLES)]
    Inspect(package::InspectArgs),
    /// Check packages and signed profiles: structure, every checksum and every signature. Exits 1 on any
    /// failure.
    #[command(after_help = package::VERIFY_EXAMPLES)]
    Verify(package::VerifyArgs),
    /// Deliver a build to Jamf Pro and Kandji: the signed package, the profiles, a Jamf policy and Kandji
    /// blueprint assignments. Each object is created, updated or left alone; a rerun changes nothing.
    /// Credentials come from the environment variables the spec's `mdm` section names.
    #[command(after_help = push::EXAMPLES)]
    Push(push::PushArgs),
    /// Print an agent's audit trail (the `<agent>.jsonl` root collects on the Mac with `agents[].audit`)
    /// as a timeline: time, UID, pid, parent, event, program and arguments or exit status.
    #[command(after_help = audit::EXAMPLES)]
    Audit(audit::AuditArgs),
    /// Describe a build for Munki and Workspace ONE, Fleet GitOps or Apple MDM servers (NanoMDM, MicroMDM),
    /// or write the inventory scripts that report each Mac's install back to the MDM.
    #[command(after_help = export::EXAMPLES)]
    Export(export::ExportArgs),
    /// Development signing identities.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Print a shell completion script.
    #[command(after_help = shell::COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write it and one page per subcommand into a folder.
    #[command(
        after_help = "Examples:\n  confine man | man -l -\n  confine man --out /usr/local/share/man/man1   # confine.1 and confine-build.1, …"
    )]
    Man {
        /// Write confine.1 and every confine-<command>.1 into this folder instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create a development CA plus profile-signing and installer-signing identities (files 0600). The
    /// `.p12` password is read from CONFINE_IDENTITY_PASSWORD. Fleets that trust their own CA deploy it with
    /// a certificate payload; production packages want an Apple Developer ID Installer identity instead.
    #[command(after_help = "Example:\n  CONFINE_IDENTITY_PASSWORD=… confine identity new --out ids")]
    New {
        /// The folder to write into. Existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A mistake in how confine was called, found after argument parsing (`--out /`): exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the command line, runs it, and reports errors. Exit status: 0 ok, 1 error, 2 usage, 130
/// interrupted (docs/cli.md).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let ui = Ui::new(color_enabled(cli.global.color), cli.global.quiet);
    if let Err(e) = crate::interrupt::install() {
        ui.warn(&format!("Ctrl-C will not stop cleanly: {e:#}"));
    }
    // `--json` is each subcommand's own flag; any of them asks for output a program reads, without progress.
    let json = std::env::args_os().any(|arg| arg == "--json");
    progress::show_if_watched(json, cli.global.quiet);
    let outcome = run(cli.command, &ui);
    if crate::interrupt::interrupted() && !matches!(outcome, Ok(true)) {
        ui.warn(&crate::interrupt::Interrupted.to_string());
        return ExitCode::from(130);
    }
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            ui.problems(&Diagnostic::from_error(&e), None);
            ExitCode::from(if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            })
        }
    }
}

/// Runs one command. `Ok(false)`: it failed and has already reported why.
fn run(command: Command, ui: &Ui) -> Result<bool> {
    match command {
        Command::Build(args) => build::build(&args, ui),
        Command::Validate(args) => validate::validate(&args, ui),
        Command::Lock(args) => lock::lock(&args, ui),
        Command::Init { path } => build::init(&path, ui).map(|()| true),
        Command::Schema => ui::print_stdout(crate::spec::json_schema().as_bytes()).map(|()| true),
        Command::Identity(IdentityCommand::New { out }) => build::identity_new(&out).map(|()| true),
        Command::Inspect(args) => package::inspect(&args, ui),
        Command::Verify(args) => package::verify(&args, ui),
        Command::Push(args) => push::push(&args, ui),
        Command::Audit(args) => audit::audit(&args, ui),
        Command::Export(args) => export::export(&args, ui),
        Command::Completions { shell } => shell::completions(shell).map(|()| true),
        Command::Man { out } => shell::man(out.as_deref()).map(|()| true),
    }
}

/// `--color`, then NO_COLOR (any non-empty value), then whether stderr is a terminal.
fn color_enabled(choice: ColorChoice) -> bool {
    use std::io::IsTerminal;
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
        }
    }
}

/// The clap command, for completions and the man page.
fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
