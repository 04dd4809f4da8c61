//! The lockfile (`fleet.lock` beside `fleet.yaml`): every package of each pinned OpenClaw version that
//! runs on the Mac platforms, with its `node_modules` path, version, tarball URL and sha512 integrity.
//! Pretty JSON with sorted keys, so the diff of a version bump is what a reviewer reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// The format version written as `confine_lock`.
const FORMAT: u32 = 1;

/// The platforms a bundle is built for: both Mac architectures.
pub const MAC_PLATFORMS: [&str; 2] = ["darwin-arm64", "darwin-x64"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub confine_lock: u32,
    /// npm's `os-cpu` pairs the packages were chosen for, e.g. `darwin-arm64`.
    pub platforms: Vec<Platform>,
    /// OpenClaw version → `node_modules` path (relative to the bundle root) → package.
    pub openclaw: BTreeMap<String, BTreeMap<String, LockedPackage>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub resolved: String,
    /// `sha512-<base64>`, as npm writes it.
    pub integrity: String,
    /// npm's `os` and `cpu` fields: set on platform packages (prebuilt binaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu: Vec<String>,
}

/// An npm platform, `<os>-<cpu>` as node names them (`process.platform`, `process.arch`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    pub os: String,
    pub cpu: String,
}

impl TryFrom<String> for Platform {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once('-') {
            Some((os, cpu)) if !os.is_empty() && !cpu.is_empty() => Ok(Platform {
                os: os.to_owned(),
                cpu: cpu.to_owned(),
            }),
            _ => Err(format!("{s:?} is not an <os>-<cpu> platform like darwin-arm64")),
        }
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.cpu)
    }
}

impl Platform {
    /// npm's rule (npm-install-checks): a `!x` entry that matches excludes, and a list with plain
    /// entries must contain ours. `libc` is only set on Linux packages; we take glibc.
    fn accepts(&self, os: &[String], cpu: &[String], libc: &[String]) -> bool {
        let fits = |list: &[String], ours: &str| {
            !list.iter().any(|e| e.strip_prefix('!') == Some(ours))
                && (list.iter().all(|e| e.starts_with('!')) || list.iter().any(|e| e == ours))
        };
        let libc_ours = if self.os == "linux" { "glibc" } else { "" };
        fits(os, &self.os) && fits(cpu, &self.cpu) && (libc.is_empty() || fits(libc, libc_ours))
    }
}

impl LockedPackage {
    /// A platform package (npm `os`/`cpu`): the one platform its prebuilt binaries must be for.
    pub fn platform(&self) -> Option<Platform> {
        match (self.os.as_slice(), self.cpu.as_slice()) {
            ([os], [cpu]) if !os.starts_with('!') && !cpu.starts_with('!') => Some(Platform {
                os: os.clone(),
                cpu: cpu.clone(),
            }),
            _ => None,
        }
    }
}

/// The lockfile beside a spec: `fleet.yaml` → `fleet.lock`.
pub fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

/// The hint every lockfile error ends with, naming the spec as given (`fleets/a.yaml`, not fleet.yaml).
pub fn relock_hint(spec: &Path) -> String {
    format!("run `confine lock {}`", spec.display())
}

impl Lockfile {
    /// The lockfile of `spec` (see [`lock_path`]).
    pub fn read(spec: &Path) -> Result<Lockfile> {
        let path = lock_path(spec);
        let relock = relock_hint(spec);
        let text = crate::limits::read_regular(&path, crate::limits::MAX_LOCK_BYTES).with_context(|| {
            format!(
                "cannot read the lockfile {}: {relock} to write it",
                path.display()
            )
        })?;
        let lock: Lockfile = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a confine lockfile: {relock}", path.display()))?;
        ensure!(
            lock.confine_lock == FORMAT,
            "{}: lockfile format {} (this confine reads {FORMAT}): {relock}",
            path.display(),
            lock.confine_lock
        );
        Ok(lock)
    }

    /// Writes the lockfile whole (a temporary file renamed over it), so a failed write leaves the old one.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        crate::interrupt::check()?;
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// The packages of one OpenClaw version, or the error that says how to fix the lockfile.
    pub fn packages(&self, version: &str, spec: &Path) -> Result<&BTreeMap<String, LockedPackage>> {
        self.openclaw.get(version).with_context(|| {
            let locked: Vec<&str> = self.openclaw.keys().map(String::as_str).collect();
            format!(
                "{} locks openclaw {}, not {version}, which the spec pins: {} to lock the spec's versions",
                lock_path(spec).display(),
                if locked.is_empty() {
                    "nothing".to_owned()
                } else {
                    locked.join(", ")
                },
                relock_hint(spec)
            )
        })
    }
}

/// Resolves each `openclaw@<version>` with npm (no scripts, no install) and keeps the packages that
/// run on any of `platforms`. npm resolves one tree for every platform, listing each platform package
/// with its `os`/`cpu`; the filter is ours.
pub fn resolve(versions: &[String], platforms: &[Platform]) -> Result<Lockfile> {
    let mut openclaw = BTreeMap::new();
    for version in versions {
        openclaw.insert(version.clone(), resolve_one(version, platforms)?);
    }
    Ok(Lockfile {
        confine_lock: FORMAT,
        platforms: platforms.to_vec(),
        openclaw,
    })
}

/// What we read of npm's `package-lock.json` (lockfileVersion 3).
#[derive(Deserialize)]
struct NpmLock {
    packages: BTreeMap<String, NpmPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NpmPackage {
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    cpu: Vec<String>,
    #[serde(default)]
    libc: Vec<String>,
    /// Shipped inside its parent's tarball: nothing to fetch.
    #[serde(default)]
    in_bundle: bool,
    #[serde(default)]
    link: bool,
}

fn resolve_one(version: &str, platforms: &[Platform]) -> Result<BTreeMap<String, LockedPackage>> {
    let dir = tempfile::tempdir()?;
    let manifest = serde_json::json!({
        "private": true,
        "dependencies": { "openclaw": version },
    });
    std::fs::write(dir.path().join("package.json"), manifest.to_string())?;
    let _step = crate::progress::start(
        &format!("resolving openclaw@{version} with npm"),
        crate::progress::Measure::Time,
    );
    let output = crate::interrupt::output(
        super::cache::npm()
            .args([
                "install",
                "--package-lock-only",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                // Some .npmrc files leave `resolved` out of lockfiles; ours needs every URL.
                "--omit-lockfile-registry-resolved=false",
            ])
            .current_dir(dir.path()),
    )
    .context("cannot run npm (confine lock resolves with it): install node and npm")?;
    ensure!(
        output.status.success(),
        "npm could not resolve openclaw@{version}:\n{}",
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    let text = std::fs::read_to_string(dir.path().join("package-lock.json"))?;
    let npm: NpmLock = serde_json::from_str(&text).context("reading npm's package-lock.json")?;
    let mut packages = BTreeMap::new();
    for (path, p) in npm.packages {
        if path.is_empty() || p.in_bundle {
            continue;
        }
        ensure!(!p.link, "{path}: a linked package cannot be vendored");
        if !platforms.iter().any(|pl| pl.accepts(&p.os, &p.cpu, &p.libc)) {
            continue;
        }
        let name = match p.name {
            Some(name) => name,
            None => package_name(&path)?.to_owned(),
        };
        let (Some(version), Some(resolved), Some(integrity)) = (p.version, p.resolved, p.integrity) else {
            bail!(
                "{path}: npm gave no version, tarball URL or integrity; only registry packages can be vendored"
            );
        };
        ensure!(
            integrity.starts_with("sha512-"),
            "{name}@{version}: integrity {integrity} is not sha512"
        );
        packages.insert(
            path,
            LockedPackage {
                name,
                version,
                resolved,
                integrity,
                os: p.os,
                cpu: p.cpu,
            },
        );
    }
    ensure!(
        packages.contains_key("node_modules/openclaw"),
        "npm's tree for openclaw@{version} has no node_modules/openclaw"
    );
    Ok(packages)
}

/// `node_modules/a/node_modules/@s/b` → `@s/b`.
fn package_name(path: &str) -> Result<&str> {
    path.rsplit_once("node_modules/")
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty())
        .with_context(|| format!("{path}: not a node_modules path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(s: &str) -> Platform {
        Platform::try_from(s.to_owned()).unwrap()
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn platform_filter_follows_npm() {
        let mac = platform("darwin-arm64");
        assert!(mac.accepts(&[], &[], &[]));
        assert!(mac.accepts(&list(&["darwin"]), &list(&["arm64"]), &[]));
        assert!(!mac.accepts(&list(&["darwin"]), &list(&["x64"]), &[]));
        assert!(!mac.accepts(&list(&["!darwin"]), &[], &[]));
        assert!(mac.accepts(&list(&["!win32"]), &[], &[]));
        assert!(!mac.accepts(&list(&["linux"]), &list(&["arm64"]), &list(&["glibc"])));
        assert!(platform("linux-x64").accepts(&list(&["linux"]), &list(&["x64"]), &list(&["glibc"])));
        assert!(!platform("linux-x64").accepts(&list(&["linux"]), &list(&["x64"]), &list(&["musl"])));
    }

    #[test]
    fn names_come_from_the_last_node_modules() {
        assert_eq!(package_name("node_modules/a/node_modules/@s/b").unwrap(), "@s/b");
        assert!(package_name("lib/x").is_err());
    }
}
