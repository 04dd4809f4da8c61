//! The command line: argument parsing and one function per subcommand. Results go to stdout (JSON with
//! `--json`), messages to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::build::{self, BuildOptions};
use crate::sign::{self, Identity};
use crate::spec::{self, LoadedSpec, SpecError};
use crate::{pkg, profile, verify};

/// The environment variable holding the password of PKCS#12 identities.
const PASSWORD_VARIABLE: &str = "CONFINE_IDENTITY_PASSWORD";

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
    /// Check fleet specs and configuration profiles (the built-in example fleet without FILES).
    Validate(ValidateArgs),
    /// Write the example fleet spec, with comments that teach the format.
    Init {
        /// Where to write it. An existing file is never overwritten.
        #[arg(default_value = "fleet.yaml")]
        path: PathBuf,
    },
    /// Print the JSON Schema (draft-07) of the fleet spec, for editors.
    Schema,
    /// Show what a package holds: TOC, components, PackageInfo, payload listing (like lsbom), scripts and
    /// signatures.
    Inspect {
        /// A flat package (`.pkg`).
        file: PathBuf,
    },
    /// Check packages and signed profiles: structure, every checksum and every signature. Exits 1 on any
    /// failure.
    Verify {
        /// Packages (`.pkg`) and signed profiles (`.mobileconfig`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also require a signature whose chain reaches one of these CA certificates (PEM or DER).
        #[arg(long, value_name = "CA.pem")]
        ca: Option<PathBuf>,
    },
    /// Development signing identities.
    #[command(subcommand)]
    Identity(IdentityCommand),
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Create a development CA plus profile-signing and installer-signing identities (files 0600). The
    /// `.p12` password is read from CONFINE_IDENTITY_PASSWORD. Fleets that trust their own CA deploy it with
    /// a certificate payload; production packages want an Apple Developer ID Installer identity instead.
    New {
        /// The folder to write into. Existing files are never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Embed the secrets whose spec entry has `embed_from_env`, read from this machine's environment.
    /// Anyone holding the package can then read them.
    #[arg(long)]
    embed_secrets: bool,
    #[command(flatten)]
    signing: SigningArgs,
}

/// Signing identities. A PKCS#12 file's password comes from the CONFINE_IDENTITY_PASSWORD environment
/// variable, never from the command line. Without any identity, nothing is signed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Signing")]
struct SigningArgs {
    /// PKCS#12 identity that signs profiles and packages.
    #[arg(long, value_name = "FILE.p12")]
    identity: Option<PathBuf>,
    /// PKCS#12 identity for profiles only (overrides --identity).
    #[arg(long, value_name = "FILE.p12")]
    profile_identity: Option<PathBuf>,
    /// PKCS#12 identity for packages only, e.g. Developer ID Installer (overrides --identity).
    #[arg(long, value_name = "FILE.p12")]
    pkg_identity: Option<PathBuf>,
    /// PEM certificate of an identity that signs both kinds (with --key).
    #[arg(long, value_name = "CERT.pem", requires = "key", conflicts_with = "identity")]
    cert: Option<PathBuf>,
    /// PEM private key matching --cert.
    #[arg(long, value_name = "KEY.pem", requires = "cert")]
    key: Option<PathBuf>,
    /// PEM intermediate certificates to include with --cert.
    #[arg(long, value_name = "CHAIN.pem", requires = "cert")]
    chain: Vec<PathBuf>,
    /// RFC 3161 time-stamping authority for package signatures (plain http). Apple's notary service
    /// requires a timestamp.
    #[arg(long, value_name = "URL", default_value = sign::APPLE_TSA)]
    timestamp_url: String,
    /// Sign packages without a timestamp (offline builds; Apple's notary service refuses them).
    #[arg(long, conflicts_with = "timestamp_url")]
    no_timestamp: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Fleet specs (YAML) and configuration profiles (`.mobileconfig`: XML, binary or signed). Without
    /// any, the built-in example fleet is checked.
    files: Vec<PathBuf>,
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
        Command::Identity(IdentityCommand::New { out }) => identity_new_command(&out),
        Command::Inspect { file } => print_stdout(pkg::inspect(&file)?.as_bytes()),
        Command::Verify { files, ca } => verify_command(&files, ca.as_deref()),
    }
}

fn build_command(args: &BuildArgs) -> Result<()> {
    let result = spec::load(args.spec.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|loaded| {
            let (profile_identity, pkg_identity) = identities(&args.signing, &loaded)?;
            let options = BuildOptions {
                out: args.out.clone(),
                embed_secrets: args.embed_secrets,
                profile_identity,
                pkg_identity,
                timestamp_url: (!args.signing.no_timestamp).then(|| args.signing.timestamp_url.clone()),
            };
            build::build(&loaded, &options)
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
    let reports: Vec<serde_json::Value> = if args.files.is_empty() {
        vec![validate_spec(None)]
    } else {
        args.files.iter().map(|f| validate_file(f)).collect()
    };
    let ok = reports.iter().all(|r| r["ok"] == true);
    if args.json {
        print_json(&serde_json::json!({ "ok": ok, "files": reports }))?;
    }
    if !ok {
        bail!("validation failed");
    }
    Ok(())
}

/// A profile by its extension; anything else is a fleet spec.
fn validate_file(path: &Path) -> serde_json::Value {
    if path.extension().is_some_and(|e| e == "mobileconfig") {
        validate_profile(path)
    } else {
        validate_spec(Some(path))
    }
}

fn validate_spec(path: Option<&Path>) -> serde_json::Value {
    let checked = spec::load(path).map_err(anyhow::Error::from).and_then(|loaded| {
        build::check(&loaded)?;
        Ok(loaded)
    });
    match checked {
        Ok(loaded) => {
            eprintln!("{}: valid", loaded.origin.display());
            serde_json::json!({ "file": loaded.origin, "ok": true, "problems": [] })
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            error_json(&e)
        }
    }
}

fn validate_profile(path: &Path) -> serde_json::Value {
    match profile::validate_file(path) {
        Ok(findings) => {
            for finding in &findings {
                eprintln!("{}: {finding}", path.display());
            }
            let ok = findings.iter().all(|f| f.severity != profile::Severity::Error);
            if ok {
                eprintln!("{}: valid", path.display());
            }
            let problems: Vec<_> = findings
                .iter()
                .map(|f| {
                    let severity = if f.severity == profile::Severity::Error {
                        "error"
                    } else {
                        "warning"
                    };
                    serde_json::json!({ "severity": severity, "path": f.path, "message": f.message })
                })
                .collect();
            serde_json::json!({ "file": path, "ok": ok, "problems": problems })
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            serde_json::json!({ "file": path, "ok": false, "error": format!("{e:#}") })
        }
    }
}

fn verify_command(files: &[PathBuf], ca: Option<&Path>) -> Result<()> {
    let ca = ca.map(sign::load_certificates).transpose()?;
    let mut failed = 0;
    for file in files {
        match verify::verify_file(file, ca.as_deref()) {
            Ok(report) if report.is_ok() => println!("{}: ok: {}", file.display(), report.summary),
            Ok(report) => {
                failed += 1;
                println!("{}: FAILED: {}", file.display(), report.summary);
                for problem in &report.problems {
                    println!("  {problem}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e:#}", file.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files failed verification", files.len());
    }
    Ok(())
}

fn identity_new_command(out: &Path) -> Result<()> {
    let password = std::env::var(PASSWORD_VARIABLE).with_context(|| {
        format!("set {PASSWORD_VARIABLE} to the password that will protect the .p12 files")
    })?;
    for path in sign::create_dev_identity(out, &password)? {
        println!("{}", path.display());
    }
    Ok(())
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

/// The identities a build signs with: command-line flags first, then the environment variables the spec
/// names. Loaded before anything is built, so a wrong password fails fast with nothing written.
fn identities(args: &SigningArgs, loaded: &LoadedSpec) -> Result<(Option<Identity>, Option<Identity>)> {
    let s = &loaded.spec.signing;
    let from_env = |name: &Option<spec::Located<String>>| -> Result<Option<PathBuf>> {
        let Some(name) = name else { return Ok(None) };
        let value = std::env::var_os(&name.value)
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!(
                    "the spec's signing section names ${}, which is not set",
                    name.value
                )
            })?;
        Ok(Some(PathBuf::from(value)))
    };
    // A flag wins, and then the spec's variable is not even read: it need not be set.
    let path = |flag: &Option<PathBuf>, variable| match flag {
        Some(path) => Ok(Some(path.clone())),
        None => from_env(variable),
    };
    let both = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(Identity::from_pem(cert, key, &args.chain)?),
        _ => load_p12(path(&args.identity, &s.identity_env)?)?,
    };
    let profile = load_p12(path(&args.profile_identity, &s.profile_identity_env)?)?;
    let pkg = load_p12(path(&args.pkg_identity, &s.pkg_identity_env)?)?;
    Ok((profile.or_else(|| both.clone()), pkg.or(both)))
}

fn load_p12(path: Option<PathBuf>) -> Result<Option<Identity>> {
    let Some(path) = path else { return Ok(None) };
    let password = std::env::var(PASSWORD_VARIABLE).unwrap_or_default();
    Identity::from_pkcs12(&path, &password).map(Some)
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
            serde_json::json!({ "file": spec_error.file, "ok": false, "problems": problems })
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
