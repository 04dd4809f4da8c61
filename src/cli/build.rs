//! `confine build`, `confine init` and `confine identity new`: the commands that write files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::json::Report;
use super::source::{self, Kind, SpecSource};
use super::ui::print_json;
use super::{Ui, UsageError};
use crate::build::{self as builder, BuildOptions};
use crate::diagnostics::Diagnostic;
use crate::output::Entry;
use crate::sign::{self, Identity};
use crate::spec::{self, LoadedSpec};

/// The environment variable holding the password of PKCS#12 identities.
const PASSWORD_VARIABLE: &str = "CONFINE_IDENTITY_PASSWORD";

pub const EXAMPLES: &str = "Examples:
  confine build                          # ./fleet.yaml (or ./confine.yaml) into dist/
  confine build fleet.yaml --out dist --bundle
  confine build --example                # the built-in example fleet
  generate-spec | confine build - --json # the spec from stdin, the result as JSON
  CONFINE_IDENTITY_PASSWORD=… confine build fleet.yaml --pkg-identity installer.p12";

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The fleet spec (YAML), or `-` for stdin (its relative paths then resolve against the current
    /// folder). Default: ./fleet.yaml, then ./confine.yaml.
    spec: Option<PathBuf>,
    /// Build the built-in example fleet.
    #[arg(long, conflicts_with = "spec")]
    example: bool,
    /// The output folder. It is replaced only when the whole build succeeds, and only if confine wrote it.
    #[arg(long, default_value_os_t = builder::default_out())]
    out: PathBuf,
    /// Also write <fleet>-<release>.zip into the output folder: every artifact and the manifest, the
    /// same bytes on every run.
    #[arg(long)]
    bundle: bool,
    /// Print the result as JSON on stdout (schema `confine/build/v1`).
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

/// The command's own fields in `confine/build/v1`.
#[derive(Debug, Serialize)]
struct BuildJson<'a> {
    spec: String,
    out: &'a Path,
    fleet: Option<String>,
    release: Option<String>,
    bundle: Option<PathBuf>,
    artifacts: &'a [Entry],
}

/// What was built, for the summary line.
struct Built {
    fleet: String,
    release: String,
    artifacts: Vec<Entry>,
    package_signer: Option<String>,
    profile_signer: Option<String>,
}

pub fn build(args: &BuildArgs, ui: &Ui) -> Result<bool> {
    let source = match source::find(args.spec.as_deref(), args.example, ui) {
        Ok(source) => source,
        Err(e) => return report(args, ui, None, Err(e.into())),
    };
    check_out(&args.out, &source)?;
    let result = source
        .load()
        .map_err(anyhow::Error::from)
        .and_then(|loaded| build_loaded(args, &loaded));
    report(args, ui, Some(&source), result)
}

fn build_loaded(args: &BuildArgs, loaded: &LoadedSpec) -> Result<Built> {
    let (profile_identity, pkg_identity) = identities(&args.signing, loaded)?;
    let package_signer = pkg_identity.as_ref().map(common_name);
    let profile_signer = profile_identity.as_ref().map(common_name);
    let options = BuildOptions {
        out: args.out.clone(),
        embed_secrets: args.embed_secrets,
        profile_identity,
        pkg_identity,
        timestamp_url: (!args.signing.no_timestamp).then(|| args.signing.timestamp_url.clone()),
        bundle: args.bundle,
    };
    let manifest = builder::build(loaded, &options)?;
    Ok(Built {
        fleet: loaded.spec.fleet.name.value.clone(),
        release: loaded.spec.fleet.release.value.clone(),
        artifacts: manifest.artifacts,
        package_signer,
        profile_signer,
    })
}

/// The signing certificate's common name (`Developer ID Installer: Example (TEAMID)`), or its whole
/// subject when it has none.
fn common_name(identity: &Identity) -> String {
    let subject = identity.certificate().subject_name();
    subject
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|cn| cn.data().to_string().ok())
        .unwrap_or_else(|| identity.subject())
}

/// Prints the outcome: the summary or the problems on stderr, and with `--json` the report on stdout.
fn report(args: &BuildArgs, ui: &Ui, source: Option<&SpecSource>, result: Result<Built>) -> Result<bool> {
    let problems = match &result {
        Ok(_) => Vec::new(),
        Err(e) => Diagnostic::from_error(e),
    };
    match &result {
        Ok(built) => ui.note(&summary(built, source, &args.out, args.bundle)),
        Err(_) => ui.problems(&problems, source.map(|s| s.text.as_str())),
    }
    if args.json {
        let built = result.as_ref().ok();
        let data = BuildJson {
            spec: spec_name(source, args.spec.as_deref()),
            out: &args.out,
            fleet: built.map(|b| b.fleet.clone()),
            release: built.map(|b| b.release.clone()),
            bundle: built
                .filter(|_| args.bundle)
                .map(|b| args.out.join(crate::bundle::file_name(&b.fleet, &b.release))),
            artifacts: built.map_or(&[], |b| &b.artifacts),
        };
        print_json(&Report::new("build", &problems, data))?;
    }
    Ok(result.is_ok())
}

/// The spec as the JSON report names it: where it was read from, else the path given when it could not be
/// read (`build missing.yaml --json`).
fn spec_name(source: Option<&SpecSource>, given: Option<&Path>) -> String {
    match (source, given) {
        (Some(s), _) => s.origin.display().to_string(),
        (None, Some(path)) => path.display().to_string(),
        (None, None) => String::new(),
    }
}

/// `built halfday-agents 1.0.0 from fleet.yaml into dist/ (14 artifacts; packages signed by "…",
/// profiles unsigned)`.
fn summary(built: &Built, source: Option<&SpecSource>, out: &Path, bundle: bool) -> String {
    let from = match source {
        Some(s) if s.kind == Kind::Example => "the BUILT-IN EXAMPLE spec".to_owned(),
        Some(s) => s.origin.display().to_string(),
        None => String::new(),
    };
    let signed = |what: &str, signer: &Option<String>| match signer {
        Some(subject) => format!("{what} signed by \"{subject}\""),
        None => format!("{what} unsigned"),
    };
    let mut line = format!(
        "built {} {} from {from} into {}/ ({} artifacts; {}, {})",
        built.fleet,
        built.release,
        out.display().to_string().trim_end_matches('/'),
        built.artifacts.len(),
        signed("packages", &built.package_signer),
        signed("profiles", &built.profile_signer),
    );
    if bundle {
        let name = crate::bundle::file_name(&built.fleet, &built.release);
        line.push_str(&format!("\nbundled them into {}", out.join(name).display()));
    }
    line
}

/// `--out` must be a folder confine may replace: not an existing file, not `/`, not the home folder,
/// not the spec's own folder. A refusal is a usage error, and nothing is touched.
pub(super) fn check_out(out: &Path, source: &SpecSource) -> Result<(), UsageError> {
    let refuse = |why: &str| {
        Err(UsageError(format!(
            "--out {}: {why}; choose an output folder such as `dist`",
            out.display()
        )))
    };
    let Ok(metadata) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    if !metadata.is_dir() {
        return refuse("it exists and is not a folder; confine never replaces a file");
    }
    let canonical = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    if canonical == Path::new("/") {
        return refuse("that is the root folder");
    }
    let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
    if home.is_some_and(|home| home == canonical) {
        return refuse("that is your home folder");
    }
    let spec_folder = (source.kind == Kind::File)
        .then(|| std::fs::canonicalize(&source.base_dir).ok())
        .flatten();
    if spec_folder.is_some_and(|folder| folder == canonical) {
        return refuse("that is the spec's own folder");
    }
    match crate::output::foreign_folder(out) {
        Some(why) => refuse(&why),
        None => Ok(()),
    }
}

pub fn identity_new(out: &Path) -> Result<()> {
    let password = identity_password("the password that will protect the new .p12 files")?;
    for path in sign::create_dev_identity(out, &password)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// `confine init PATH`: the example spec into a new file, or on stdout for `-`.
pub fn init(path: &Path, ui: &Ui) -> Result<()> {
    if path == Path::new("-") {
        return super::ui::print_stdout(spec::EXAMPLE.as_bytes());
    }
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty())
        && !folder.is_dir()
    {
        anyhow::bail!(
            "cannot create {}: there is no folder {}; create it first (`mkdir -p {1}`)",
            path.display(),
            folder.display()
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists already; confine init never overwrites a file: choose another name, or `confine \
                 init -` to print the example",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
        })?;
    file.write_all(spec::EXAMPLE.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    ui.note(&format!(
        "wrote {}; check it with `confine validate {0}`",
        path.display()
    ));
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
    let password = identity_password(&format!("the password of the identity {}", path.display()))?;
    Identity::from_pkcs12(&path, &password).map(Some)
}

/// CONFINE_IDENTITY_PASSWORD, which must hold `what`. Unset is not the same mistake as a wrong password,
/// so it is named as unset; set and empty is a password.
fn identity_password(what: &str) -> Result<String> {
    match std::env::var(PASSWORD_VARIABLE) {
        Ok(password) => Ok(password),
        Err(std::env::VarError::NotPresent) => {
            anyhow::bail!("{PASSWORD_VARIABLE} is not set: set it to {what}")
        }
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{PASSWORD_VARIABLE} is not valid UTF-8"),
    }
}
