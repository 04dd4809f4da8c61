//! `confine push`: delivers what `confine build` wrote to Jamf Pro ([`jamf`]) and Kandji ([`kandji`]).
//!
//! It pushes the build in an output folder as `manifest.json` lists it, after checking every artifact's
//! SHA-256 against the manifest: the signed product archive, and the unsigned profiles (both MDMs sign
//! profiles themselves). Each object is found by a stable confine identifier, not by its display name
//! alone, then created, updated or left alone; unchanged means the same package hash, or the same profile
//! once the MDM's rewrites are normalised away ([`normalize`]). With `dry_run` only reads are made and the
//! report is the plan.
//!
//! Every step is safe to interrupt: records are found again by their identifier, a create that may have
//! gone through is looked for before it is retried, and a record whose file never arrived has no hash, so
//! a rerun uploads it. A rerun therefore converges without duplicates.
//!
//! Not supported: basic-auth Jamf accounts (API clients only), Jamf on-premises file-share distribution
//! points, following a Jamf profile or policy an admin renamed (it is found by name, then checked by its
//! identifier), Kandji assignment maps.

pub mod http;
mod jamf;
mod kandji;
mod multipart;
mod normalize;

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use openssl::hash::{Hasher, MessageDigest};
use serde::{Deserialize, Serialize};

use crate::spec::LoadedSpec;

/// The versioned shape of `confine push --json`.
pub const SCHEMA: &str = "confine/push/v1";

/// Which MDM to push to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Jamf,
    Kandji,
}

pub struct PushOptions {
    /// The output folder of `confine build`.
    pub dist: PathBuf,
    /// Only this MDM (default: every one the spec names).
    pub to: Option<Target>,
    pub dry_run: bool,
    pub settings: http::Settings,
    /// Draw a progress bar for uploads (a terminal on stderr, no `--json`).
    pub progress: bool,
}

/// What happens (or, in a dry run, would happen) to one object in the MDM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

/// One object in an MDM, as the push found and left it.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    /// `package`, `profile`, `policy` (Jamf); `custom-app`, `custom-profile`, `blueprint-assignment` (Kandji).
    pub kind: &'static str,
    pub name: String,
    /// The confine identifier it is matched by.
    pub identifier: String,
    /// The MDM's record id; none for an object a dry run would create.
    pub id: Option<String>,
    pub action: Action,
}

/// What was done in one MDM.
#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub mdm: &'static str,
    pub url: String,
    pub objects: Vec<Object>,
    /// Requests that could change the tenant (everything but reads and token requests), retries included.
    pub write_calls: u32,
    /// Why this MDM's push stopped, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of `confine push`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub targets: Vec<TargetReport>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.targets.iter().all(|t| t.error.is_none())
    }
}

/// A built artifact, checked against the manifest.
pub struct Artifact {
    pub path: PathBuf,
    pub file_name: String,
    pub identifier: String,
    pub sha256: String,
    pub size: u64,
    /// The name shown in the MDM.
    pub display_name: String,
}

/// What a push delivers.
pub struct Build {
    pub package: Artifact,
    /// SHA3-512 of the package, the hash Jamf Pro records.
    pub package_sha3_512: String,
    pub profiles: Vec<Artifact>,
    pub organization: String,
    pub release: String,
}

/// Checks the build and credentials, then pushes to each MDM the spec names (or `options.to`). An MDM
/// that fails is reported in its [`TargetReport`]; an error here means nothing was sent.
pub fn push(loaded: &LoadedSpec, options: &PushOptions) -> Result<Report> {
    let mdm = loaded.spec.mdm.as_ref();
    let jamf = mdm
        .and_then(|m| m.jamf.as_ref())
        .filter(|_| options.to != Some(Target::Kandji));
    let kandji = mdm
        .and_then(|m| m.kandji.as_ref())
        .filter(|_| options.to != Some(Target::Jamf));
    if jamf.is_none() && kandji.is_none() {
        let which = match options.to {
            Some(Target::Jamf) => "`mdm.jamf`",
            Some(Target::Kandji) => "`mdm.kandji`",
            None => "`mdm` section (jamf or kandji)",
        };
        bail!(
            "{} has no {which} to push to; add one (see `confine schema`)",
            loaded.origin.display()
        );
    }
    // Credentials first: a missing one fails before any file is read or any request made.
    let jamf = jamf
        .map(|config| jamf::credentials(config).map(|auth| (config, auth)))
        .transpose()?;
    let kandji = kandji
        .map(|config| kandji::credentials(config).map(|auth| (config, auth)))
        .transpose()?;
    let build = check_build(loaded, &options.dist)?;
    let mut targets = Vec::new();
    if let Some((config, auth)) = jamf {
        let client = http::Client::new(&config.url.value, auth, &options.settings);
        let mut objects = Vec::new();
        let result = jamf::push(&client, config, &build, options, &mut objects);
        targets.push(report("jamf", &config.url.value, &client, objects, result));
    }
    if let Some((config, auth)) = kandji {
        let client = http::Client::new(&config.url.value, auth, &options.settings);
        let mut objects = Vec::new();
        let result = kandji::push(&client, config, &build, options, &mut objects);
        targets.push(report("kandji", &config.url.value, &client, objects, result));
    }
    Ok(Report {
        dry_run: options.dry_run,
        targets,
    })
}

fn report(
    mdm: &'static str,
    url: &str,
    client: &http::Client,
    objects: Vec<Object>,
    result: Result<()>,
) -> TargetReport {
    TargetReport {
        mdm,
        url: url.to_owned(),
        objects,
        write_calls: client.writes(),
        error: result.err().map(|e| client.redact(&format!("{e:#}"))),
    }
}

/// The record named `wanted` among `all`, or an error that lists what exists: a group, category or
/// blueprint the spec names must already exist in the MDM.
fn find_named<'a, T>(all: &'a [T], name: impl Fn(&T) -> &str, wanted: &str, missing: &str) -> Result<&'a T> {
    all.iter().find(|item| name(item) == wanted).with_context(|| {
        let names: Vec<String> = all.iter().map(|item| format!("`{}`", name(item))).collect();
        let existing = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        format!("{missing} `{wanted}`; it has: {existing}")
    })
}

/// A credential from the environment variable the spec names.
fn env_secret(variable: &str, what: &str) -> Result<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => bail!(
            "${variable} is not set: it must hold the {what} (the spec's `mdm` section names the variable; set it from your CI's secret store)"
        ),
    }
}

#[derive(Deserialize)]
struct Manifest {
    artifacts: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
struct ManifestEntry {
    path: String,
    kind: String,
    sha256: String,
    size: u64,
    identifier: String,
}

/// Reads `dist/manifest.json` and checks every artifact's size and SHA-256 before anything is sent.
fn check_build(loaded: &LoadedSpec, dist: &Path) -> Result<Build> {
    let manifest_path = dist.join("manifest.json");
    let text = std::fs::read(&manifest_path).with_context(|| {
        format!(
            "cannot read {}; run `confine build --out {}` first",
            manifest_path.display(),
            dist.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a confine manifest", manifest_path.display()))?;
    let fleet = &loaded.spec.fleet;
    let mut package = None;
    let mut profiles = Vec::new();
    for entry in &manifest.artifacts {
        let path = artifact_path(dist, &entry.path)?;
        let (sha256, sha3_512) = hash_file(&path, entry.kind == "pkg")?;
        let size = std::fs::metadata(&path)?.len();
        if sha256 != entry.sha256 || size != entry.size {
            bail!(
                "{} does not match the manifest (SHA-256 {sha256}, the manifest says {}): the build was changed after `confine build`; nothing was pushed",
                path.display(),
                entry.sha256
            );
        }
        let file_name = entry.path.rsplit('/').next().unwrap_or(&entry.path).to_owned();
        let mut artifact = Artifact {
            path,
            file_name,
            identifier: entry.identifier.clone(),
            sha256,
            size,
            display_name: String::new(),
        };
        match entry.kind.as_str() {
            "pkg" => {
                artifact.display_name = fleet.name.value.clone();
                package = Some((artifact, sha3_512));
            }
            "profile" => {
                let bytes = std::fs::read(&artifact.path)?;
                artifact.display_name =
                    normalize::display_name(&bytes).unwrap_or_else(|| artifact.identifier.clone());
                profiles.push(artifact);
            }
            _ => {}
        }
    }
    let Some((package, package_sha3_512)) = package else {
        bail!("{} lists no installer package", manifest_path.display());
    };
    if package.identifier != fleet.identifier.value {
        bail!(
            "{} holds the build of `{}`, but {} describes `{}`; push the build of this spec",
            dist.display(),
            package.identifier,
            loaded.origin.display(),
            fleet.identifier.value
        );
    }
    Ok(Build {
        package,
        package_sha3_512,
        profiles,
        organization: fleet.organization.value.clone(),
        release: fleet.release.value.clone(),
    })
}

/// A manifest path inside `dist`: relative, without `..`.
fn artifact_path(dist: &Path, relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the manifest names `{relative}`, which is not a path inside the build folder");
    }
    Ok(dist.join(path))
}

/// SHA-256 and, when asked, SHA3-512 of a file, read once.
fn hash_file(path: &Path, sha3: bool) -> Result<(String, String)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut sha256 = Hasher::new(MessageDigest::sha256())?;
    let mut sha3_512 = Hasher::new(MessageDigest::sha3_512())?;
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha256.update(&buffer[..n])?;
        if sha3 {
            sha3_512.update(&buffer[..n])?;
        }
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok((hex(&sha256.finish()?), hex(&sha3_512.finish()?)))
}

/// Progress of one upload, in bytes of its total, when asked for and someone watches
/// ([`crate::progress`]). The step ends when the upload drops it.
fn progress_for(options: &PushOptions, what: &str, total: u64) -> Option<multipart::Progress> {
    if !options.progress {
        return None;
    }
    let step = crate::progress::start(
        &format!("uploading {what}"),
        crate::progress::Measure::BytesOf(total),
    )?;
    let reported = std::cell::Cell::new(0);
    Some(Box::new(move |sent| {
        step.advance(sent.saturating_sub(reported.replace(sent)));
    }))
}

/// Runs `create`; when it fails in a way that may have gone through, looks with `find` before trying
/// again, so an interrupted create never leaves a duplicate.
fn create_once<T>(
    client: &http::Client,
    mut find: impl FnMut() -> Result<Option<T>>,
    mut create: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut attempt = 0;
    loop {
        match create() {
            Ok(created) => return Ok(created),
            Err(e) if attempt < client.settings().retries && is_transient(&e) => {
                attempt += 1;
                std::thread::sleep(client.backoff(attempt));
                if let Some(found) = find()? {
                    return Ok(found);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// An error marked by [`transient`]: a 5xx or a lost connection, after which a create may or may not
/// have happened.
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<Transient>())
}

#[derive(Debug)]
struct Transient;

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server failed or the connection broke")
    }
}

impl std::error::Error for Transient {}

/// The answer to a create, or an error that says whether retrying after a look is worthwhile.
fn created(
    client: &http::Client,
    method: &str,
    path: &str,
    outcome: Result<http::Response>,
) -> Result<http::Response> {
    match outcome {
        Ok(r) if r.is_success() => Ok(r),
        Ok(r) if r.status >= 500 => {
            Err(anyhow::Error::new(Transient).context(client.describe_failure(method, path, &r)))
        }
        Ok(r) => bail!("{}", client.describe_failure(method, path, &r)),
        Err(e) => Err(anyhow::Error::new(Transient).context(format!("{e:#}"))),
    }
}

/// XML text content: `&`, `<`, `>` escaped.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside() {
        let dist = Path::new("/tmp/dist");
        assert!(artifact_path(dist, "profiles/a.mobileconfig").is_ok());
        assert!(artifact_path(dist, "../etc/passwd").is_err());
        assert!(artifact_path(dist, "/etc/passwd").is_err());
        assert!(artifact_path(dist, "").is_err());
    }
}
