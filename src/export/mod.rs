//! `confine export`: the fleet's build described for the deployment tools that are not Jamf Pro or
//! Kandji: a Munki repo (and Workspace ONE, Munki underneath) ([`munki`]), a Fleet GitOps repo
//! ([`fleet`]), raw commands for open-source Apple MDM servers such as NanoMDM and MicroMDM
//! ([`apple_mdm`]), and inventory scripts that report each Mac's install back to any of them
//! ([`inventory`]).
//!
//! An export is a pure function of a build: it reads the build folder `confine build` wrote (its
//! `manifest.json`, and each package's own Distribution and PackageInfo), never rebuilds, and checks every
//! file it describes against the manifest's SHA-256, so a description can only match the bytes Macs will
//! download. Same build, same export bytes: nothing depends on the time or the machine.

pub mod apple_mdm;
pub mod fleet;
pub mod inventory;
pub mod munki;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use openssl::hash::{Hasher, MessageDigest};
use plist::{Dictionary, Value};

use crate::output::{Entry, Kind, Manifest, Staging};
use crate::pkg::{ProductMetadata, product_metadata};
use crate::plan::Plan;
use crate::spec::LoadedSpec;
use crate::spec::exports::Exports;

/// What to export for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Munki,
    Fleet,
    AppleMdm,
    Inventory,
}

/// Apple's chunk size for the `md5s` and `sha256s` of a software-package asset: 10 MiB, as in the
/// InstallApplication examples and MicroMDM's `appmanifest`.
pub const CHUNK_BYTES: u64 = 10 * 1024 * 1024;

/// One package of the build, with what every target needs to describe it.
#[derive(Debug, Clone)]
pub struct BuiltPackage {
    /// The file name in the build folder, e.g. `halfday-agents-1.0.0.pkg`.
    pub file_name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    /// MD5 and SHA-256 of each [`CHUNK_BYTES`] chunk, for Apple's manifest.
    pub chunk_md5s: Vec<String>,
    pub chunk_sha256s: Vec<String>,
    pub metadata: ProductMetadata,
}

/// A small artifact of the build (a profile, a LaunchDaemon plist), read whole.
#[derive(Debug, Clone)]
pub struct BuiltFile {
    /// Relative to the build folder, e.g. `profiles/x.mobileconfig`.
    pub path: String,
    pub identifier: String,
    pub bytes: Vec<u8>,
}

/// A build folder, checked against its manifest.
#[derive(Debug)]
pub struct Build {
    pub install: BuiltPackage,
    pub uninstall: BuiltPackage,
    /// Unsigned profiles, sorted by path.
    pub profiles: Vec<BuiltFile>,
    /// Signed profiles (with a profile identity), sorted by path.
    pub signed_profiles: Vec<BuiltFile>,
    /// The LaunchDaemon plists, sorted by path.
    pub launchd: Vec<BuiltFile>,
}

/// Profiles and LaunchDaemon plists are small; the limit keeps a hostile build folder from costing memory.
const MAX_SMALL_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Build {
    /// Reads the build of `plan` in `dir`. Fails, naming the command that fixes it, when the folder holds
    /// another fleet, another release, or a file that no longer matches the manifest.
    pub fn read(dir: &Path, plan: &Plan) -> Result<Build> {
        let manifest = Manifest::read(dir)?;
        let (name, release) = (&plan.fleet.name, &plan.fleet.release);
        let find = |kind: Kind, file: String, identifier: &str| -> Result<&Entry> {
            manifest
                .artifacts
                .iter()
                .find(|e| e.kind == kind && e.path == file && e.identifier == identifier)
                .with_context(|| {
                    format!(
                        "{} holds no {file} of {name} {release}: run `confine build` with this spec and `--out {}` first",
                        dir.display(),
                        dir.display()
                    )
                })
        };
        let install = find(Kind::Pkg, format!("{name}-{release}.pkg"), &plan.pkg_identifier)?;
        let uninstall = find(
            Kind::UninstallPkg,
            format!("{name}-uninstall-{release}.pkg"),
            &plan.uninstall_pkg_identifier,
        )?;
        let small = |kind: Kind| -> Result<Vec<BuiltFile>> {
            let mut files = manifest
                .artifacts
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| read_small(dir, e))
                .collect::<Result<Vec<_>>>()?;
            files.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(files)
        };
        Ok(Build {
            install: read_package(dir, install)?,
            uninstall: read_package(dir, uninstall)?,
            profiles: small(Kind::Profile)?,
            signed_profiles: small(Kind::SignedProfile)?,
            launchd: small(Kind::LaunchdPlist)?,
        })
    }
}

fn stale(dir: &Path, entry: &Entry) -> anyhow::Error {
    anyhow::anyhow!(
        "{}/{} no longer matches the build's manifest.json (size or SHA-256 differ): rebuild with `confine build --out {}`",
        dir.display(),
        entry.path,
        dir.display()
    )
}

fn read_small(dir: &Path, entry: &Entry) -> Result<BuiltFile> {
    let path = entry.path_in(dir)?;
    ensure!(
        entry.size <= MAX_SMALL_FILE_BYTES,
        "{}: larger than {MAX_SMALL_FILE_BYTES} bytes, too large for a profile or plist",
        path.display()
    );
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(MAX_SMALL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if hex(&openssl::sha::sha256(&bytes)) != entry.sha256 || bytes.len() as u64 != entry.size {
        return Err(stale(dir, entry));
    }
    Ok(BuiltFile {
        path: entry.path.clone(),
        identifier: entry.identifier.clone(),
        bytes,
    })
}

/// Hashes the package in one pass (whole-file SHA-256 and MD5, and per-chunk digests), then reads its
/// Distribution and PackageInfo.
fn read_package(dir: &Path, entry: &Entry) -> Result<BuiltPackage> {
    let path = entry.path_in(dir)?;
    let mut file = fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut whole_sha = Hasher::new(MessageDigest::sha256())?;
    let mut whole_md5 = Hasher::new(MessageDigest::md5())?;
    let (mut chunk_md5s, mut chunk_sha256s) = (Vec::new(), Vec::new());
    let mut size = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let mut chunk_sha = Hasher::new(MessageDigest::sha256())?;
        let mut chunk_md5 = Hasher::new(MessageDigest::md5())?;
        let mut in_chunk = 0u64;
        while in_chunk < CHUNK_BYTES {
            let want = buffer.len().min((CHUNK_BYTES - in_chunk) as usize);
            let n = file
                .read(&mut buffer[..want])
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            for hasher in [&mut whole_sha, &mut whole_md5, &mut chunk_sha, &mut chunk_md5] {
                hasher.update(&buffer[..n])?;
            }
            in_chunk += n as u64;
        }
        if in_chunk == 0 {
            break;
        }
        size += in_chunk;
        chunk_md5s.push(hex(&chunk_md5.finish()?));
        chunk_sha256s.push(hex(&chunk_sha.finish()?));
        if in_chunk < CHUNK_BYTES {
            break;
        }
    }
    let sha256 = hex(&whole_sha.finish()?);
    if sha256 != entry.sha256 || size != entry.size {
        return Err(stale(dir, entry));
    }
    Ok(BuiltPackage {
        file_name: entry.path.rsplit('/').next().unwrap_or(&entry.path).to_owned(),
        metadata: product_metadata(&path)?,
        path,
        size,
        sha256,
        md5: hex(&whole_md5.finish()?),
        chunk_md5s,
        chunk_sha256s,
    })
}

/// Writes the export of `target` for the build of `loaded` in `build_dir` into `out` (replaced as a
/// whole, like a build's output folder) and returns its manifest.
pub fn export(loaded: &LoadedSpec, target: Target, build_dir: &Path, out: &Path) -> Result<Manifest> {
    let plan = Plan::new(&loaded.spec);
    let no_exports = Exports::default();
    let exports = loaded.spec.exports.as_ref().unwrap_or(&no_exports);
    let mut staging = Staging::new(out)?;
    match target {
        Target::Inventory => inventory::write(&plan, &mut staging)?,
        _ => {
            let build = Build::read(build_dir, &plan)?;
            let input = Input {
                loaded,
                plan: &plan,
                exports,
                build: &build,
            };
            match target {
                Target::Munki => munki::write(&input, &mut staging)?,
                Target::Fleet => fleet::write(&input, &mut staging)?,
                Target::AppleMdm => apple_mdm::write(&input, &mut staging)?,
                Target::Inventory => unreachable!("handled above"),
            }
        }
    }
    staging.commit()
}

/// Everything an export reads.
pub struct Input<'a> {
    pub loaded: &'a LoadedSpec,
    pub plan: &'a Plan,
    pub exports: &'a Exports,
    pub build: &'a Build,
}

impl Input<'_> {
    /// The download URL of a file, from `exports.url`; an error that says what to add when the spec has
    /// none (`target` names the export that needs it).
    pub fn download_url(&self, file_name: &str, target: &str) -> Result<String> {
        let Some(template) = &self.exports.url else {
            bail!(
                "{}: `confine export {target}` needs the URL Macs download packages from: add `exports: {{url: \"https://packages.example.com/agents/{{file}}\"}}` to the spec",
                self.loaded.origin.display()
            );
        };
        Ok(template
            .value
            .replacen(crate::spec::exports::FILE_PLACEHOLDER, file_name, 1))
    }
}

/// Copies a package of the build into the export (a hard link when the folders share a file system).
pub(crate) fn copy_package(
    staging: &mut Staging,
    package: &BuiltPackage,
    relative: &str,
    kind: Kind,
    identifier: &str,
) -> Result<()> {
    let to = staging.path(relative)?;
    if fs::hard_link(&package.path, &to).is_err() {
        fs::copy(&package.path, &to)
            .with_context(|| format!("copying {} to {}", package.path.display(), to.display()))?;
    }
    staging.record(relative, kind, identifier)?;
    Ok(())
}

/// An XML property list with every dictionary's keys sorted (as Apple's and Munki's tools write them),
/// so the bytes do not depend on the order the code inserted them.
pub(crate) fn plist_xml(value: Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    sorted(value)
        .to_writer_xml(&mut out)
        .context("writing a property list")?;
    out.push(b'\n');
    Ok(out)
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Dictionary(d) => {
            let mut entries: Vec<(String, Value)> = d.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Dictionary(entries.into_iter().collect::<Dictionary>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A dictionary from `(key, value)` pairs.
pub(crate) fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Dictionary(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
