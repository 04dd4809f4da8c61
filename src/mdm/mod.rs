//! `confine push`: delivers what `confine build` wrote to Jamf Pro ([`jamf`]) and Kandji ([`kandji`]).
//!
//! It pushes the build in an output folder as `manifest.json` lists it, after checking every artifact's
//! SHA-256 against the manifest: the signed product archive, and the unsigned profiles (both MDMs sign
//! profiles themselves). Each object is found by a stable confine identifier, not by its display name
//! alone, then created, updated or left alone; unchanged means the same package hash, or the same profile
//! once the MDM's rewrites are normalised away ([`normalize`]). With `dry_run` only reads are made and the
//! report is the plan; a dry run without an MDM's credentials (a CI job without secrets) asks nothing and
//! reports what the build would push there, in order, with its scope.
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
mod jamf_inventory;
mod kandji;
mod multipart;
mod normalize;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use openssl::hash::{Hasher, MessageDigest};
use serde::Serialize;

use crate::output::{Kind, Manifest};
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
    /// A dry run without credentials: pushed (created or updated) unless the MDM already holds it.
    Push,
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
    /// Whether the MDM was asked; false for a dry run without its credentials, whose objects are the
    /// build's plan (action `push`).
    pub asked: bool,
    /// What the objects are scoped to: computer groups and category, or blueprints.
    pub scope: Vec<String>,
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
    /// What was hashed, kept so that exactly that is sent.
    pub contents: Contents,
    pub file_name: String,
    pub identifier: String,
    pub sha256: String,
    pub size: u64,
    /// The name shown in the MDM.
    pub display_name: String,
}

/// An artifact's bytes as they were hashed.
pub enum Contents {
    /// The package: held open, sent through this handle and hashed again on the way.
    Held(File),
    /// A profile, read once (it is small and bounded).
    Bytes(Vec<u8>),
}

impl Artifact {
    /// The artifact as a multipart file part.
    fn source(&self) -> multipart::Source<'_> {
        match &self.contents {
            Contents::Held(file) => multipart::Source::Held {
                file,
                len: self.size,
                sha256: &self.sha256,
            },
            Contents::Bytes(bytes) => multipart::Source::Bytes(bytes),
        }
    }

    /// A profile's bytes (empty for the package, which is never read whole).
    fn bytes(&self) -> &[u8] {
        match &self.contents {
            Contents::Held(_) => &[],
            Contents::Bytes(bytes) => bytes,
        }
    }
}

/// What a push delivers.
pub struct Build {
    pub package: Artifact,
    /// SHA3-512 of the package, the hash Jamf Pro records.
    pub package_sha3_512: String,
    /// MD5 of the package, which Jamf Pro needs for PreStage enrollment packages.
    pub package_md5: String,
    pub profiles: Vec<Artifact>,
    pub organization: String,
    pub release: String,
    /// The Jamf Pro extension attributes that report each Mac's install ([`jamf_inventory`]).
    pub extension_attributes: Vec<jamf_inventory::ExtensionAttribute>,
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
    // Credentials first: a missing one fails before any file is read or any request made, except in a
    // dry run, which then plans from the build alone.
    let usable = |auth: Result<http::Auth>| match auth {
        Err(_) if options.dry_run => Ok(None),
        other => other.map(Some),
    };
    let jamf = jamf
        .map(|config| usable(jamf::credentials(config)).map(|auth| (config, auth)))
        .transpose()?;
    let kandji = kandji
        .map(|config| usable(kandji::credentials(config)).map(|auth| (config, auth)))
        .transpose()?;
    let build = check_build(loaded, &options.dist)?;
    let mut targets = Vec::new();
    if let Some((config, auth)) = jamf {
        let mut target = TargetReport::new("jamf", &config.url.value, jamf::scope(config));
        match auth {
            Some(auth) => {
                let client = http::Client::new(&config.url.value, auth, &options.settings)
                    .with_privileges(jamf::privileges);
                let result = jamf::push(&client, config, &build, options, &mut target.objects);
                target.finish(&client, result);
            }
            None => match jamf::plan(&build) {
                Ok(objects) => target.objects = objects,
                Err(e) => target.error = Some(format!("{e:#}")),
            },
        }
        targets.push(target);
    }
    if let Some((config, auth)) = kandji {
        let mut target = TargetReport::new("kandji", &config.url.value, kandji::scope(config));
        match auth {
            Some(auth) => {
                let client = http::Client::new(&config.url.value, auth, &options.settings);
                let result = kandji::push(&client, config, &build, options, &mut target.objects);
                target.finish(&client, result);
            }
            None => target.objects = kandji::plan(config, &build),
        }
        targets.push(target);
    }
    Ok(Report {
        dry_run: options.dry_run,
        targets,
    })
}

impl TargetReport {
    /// A target not asked (yet): `finish` records the push.
    fn new(mdm: &'static str, url: &str, scope: Vec<String>) -> TargetReport {
        TargetReport {
            mdm,
            url: url.to_owned(),
            asked: false,
            scope,
            objects: Vec::new(),
            write_calls: 0,
            error: None,
        }
    }

    fn finish(&mut self, client: &http::Client, result: Result<()>) {
        self.asked = true;
        self.write_calls = client.writes();
        self.error = result.err().map(|e| client.redact(&format!("{e:#}")));
    }
}

/// One object of a plan made without asking the MDM.
fn planned(kind: &'static str, name: String, identifier: &str) -> Object {
    Object {
        kind,
        name,
        identifier: identifier.to_owned(),
        id: None,
        action: Action::Push,
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

/// Pages, records and bytes one listing (every page of one list) may take: far above a busy tenant (a
/// few thousand packages), and a bound on a server that pages forever or claims a huge total.
const MAX_LIST_PAGES: usize = 200;
const MAX_LIST_RECORDS: usize = 100_000;
const MAX_LIST_BYTES: usize = 256 * 1024 * 1024;

/// What one listing has read so far, checked against the bounds above after each page.
#[derive(Default)]
struct Listing {
    pages: usize,
    records: usize,
    bytes: usize,
}

impl Listing {
    fn page(&mut self, what: &str, records: usize, bytes: usize) -> Result<()> {
        self.pages += 1;
        self.records += records;
        self.bytes += bytes;
        if self.pages > MAX_LIST_PAGES || self.records > MAX_LIST_RECORDS || self.bytes > MAX_LIST_BYTES {
            bail!(
                "the server's list {what} does not end: {} pages, {} records, {} bytes read (limits {MAX_LIST_PAGES} pages, {MAX_LIST_RECORDS} records, {MAX_LIST_BYTES} bytes); check the URL points at a real tenant",
                self.pages,
                self.records,
                self.bytes
            );
        }
        Ok(())
    }
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

/// Reads `dist/manifest.json` and checks every artifact's size and SHA-256 before anything is sent.
fn check_build(loaded: &LoadedSpec, dist: &Path) -> Result<Build> {
    let manifest_path = dist.join("manifest.json");
    let manifest = Manifest::read(dist)?;
    let fleet = &loaded.spec.fleet;
    let mut package = None;
    let mut profiles = Vec::new();
    for entry in &manifest.artifacts {
        if entry.kind != Kind::Pkg && entry.kind != Kind::Profile {
            continue;
        }
        let path = entry.path_in(dist)?;
        let (contents, size, sha256, sha3_512) = if entry.kind == Kind::Pkg {
            let (file, _) = crate::limits::open_regular(&path, crate::limits::MAX_PACKAGE_BYTES)?;
            let hashes = hash_held(&file, &path)?;
            (
                Contents::Held(file),
                hashes.size,
                hashes.sha256,
                (hashes.sha3_512, hashes.md5),
            )
        } else {
            let bytes = crate::limits::read_regular(&path, crate::limits::MAX_PROFILE_BYTES)?;
            let sha256 = hex(&openssl::sha::sha256(&bytes));
            (Contents::Bytes(bytes), 0, sha256, Default::default())
        };
        let size = match &contents {
            Contents::Bytes(bytes) => bytes.len() as u64,
            Contents::Held(_) => size,
        };
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
            contents,
            file_name,
            identifier: entry.identifier.clone(),
            sha256,
            size,
            display_name: String::new(),
        };
        match entry.kind {
            Kind::Pkg => {
                artifact.display_name = fleet.name.value.clone();
                package = Some((artifact, sha3_512));
            }
            Kind::Profile => {
                artifact.display_name =
                    normalize::display_name(artifact.bytes()).unwrap_or_else(|| artifact.identifier.clone());
                profiles.push(artifact);
            }
            _ => {}
        }
    }
    let Some((package, (package_sha3_512, package_md5))) = package else {
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
        package_md5,
        profiles,
        organization: fleet.organization.value.clone(),
        release: fleet.release.value.clone(),
        extension_attributes: extension_attributes(loaded)?,
    })
}

/// The inventory scripts as Jamf Pro extension attributes, named and identified after the fleet.
fn extension_attributes(loaded: &LoadedSpec) -> Result<Vec<jamf_inventory::ExtensionAttribute>> {
    use crate::export::inventory::{JAMF_ATTRIBUTES, jamf_scripts};
    let plan = crate::plan::Plan::new(&loaded.spec);
    let scripts = jamf_scripts(&plan)?;
    Ok(JAMF_ATTRIBUTES
        .iter()
        .zip(scripts)
        .map(
            |((suffix, _, _), (name, script))| jamf_inventory::ExtensionAttribute {
                name,
                identifier: format!("{}.inventory.{suffix}", plan.fleet.identifier),
                script: String::from_utf8_lossy(&script).into_owned(),
            },
        )
        .collect())
}

struct Hashes {
    size: u64,
    sha256: String,
    sha3_512: String,
    md5: String,
}

/// Size, SHA-256, SHA3-512 and MD5 of an open file, read once from its start by position.
fn hash_held(file: &File, path: &Path) -> Result<Hashes> {
    let mut sha256 = Hasher::new(MessageDigest::sha256())?;
    let mut sha3_512 = Hasher::new(MessageDigest::sha3_512())?;
    let mut md5 = Hasher::new(MessageDigest::md5())?;
    let mut buffer = vec![0; 1 << 16];
    let mut offset = 0;
    loop {
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buffer, offset)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha256.update(&buffer[..n])?;
        sha3_512.update(&buffer[..n])?;
        md5.update(&buffer[..n])?;
        offset += n as u64;
    }
    Ok(Hashes {
        size: offset,
        sha256: hex(&sha256.finish()?),
        sha3_512: hex(&sha3_512.finish()?),
        md5: hex(&md5.finish()?),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
