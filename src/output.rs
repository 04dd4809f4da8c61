//! The output folder: artifacts are written into a staging folder beside it, listed in `manifest.json`,
//! and the staging folder replaces the output folder only when everything succeeded. On any error the
//! output folder is left as it was and the staging folder is removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use openssl::hash::{Hasher, MessageDigest};
use serde::{Deserialize, Serialize};

use crate::escape::escape_controls;

/// What an artifact is, as listed in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Profile,
    SignedProfile,
    LaunchdPlist,
    Pkg,
    ComponentPkg,
    UninstallPkg,
    Config,
    Script,
    /// The read-only pilot-Mac probe (`src/probe.rs`).
    Probe,
}

/// One line of `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the output folder, with `/` separators.
    pub path: String,
    pub kind: Kind,
    pub sha256: String,
    pub size: u64,
    /// The Apple identifier the artifact carries (profile identifier, launchd label, package identifier).
    pub identifier: String,
    /// What an admin must know to deploy it (e.g. a profile that needs a user-approved MDM enrollment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The version of `manifest.json`'s layout, raised when a field changes meaning or goes away (adding a
/// field does not raise it), so a deploy script can refuse a manifest it does not understand.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// `manifest.json`: its format version and every artifact, sorted by path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub artifacts: Vec<Entry>,
}

impl Manifest {
    /// Reads the `manifest.json` of the build in `dir`; the error names the command that writes one.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        if !path.exists() {
            bail!(
                "{} is not a confine build (no manifest.json): run `confine build --out {}` first",
                dir.display(),
                dir.display()
            );
        }
        let text = crate::limits::read_regular(&path, crate::limits::MAX_BUILD_MANIFEST_BYTES)?;
        let rebuild = format!("run `confine build --out {}` again", dir.display());
        let manifest: Manifest = serde_json::from_slice(&text).with_context(|| {
            format!(
                "{} is not a confine manifest of this version: {rebuild}",
                path.display()
            )
        })?;
        ensure!(
            manifest.format_version == MANIFEST_FORMAT_VERSION,
            "{}: manifest format {} (this confine reads {MANIFEST_FORMAT_VERSION}): {rebuild}",
            path.display(),
            manifest.format_version
        );
        Ok(manifest)
    }
}

impl Entry {
    /// The artifact's path under the build folder `dir`: the manifest's paths are relative,
    /// `/`-separated and never leave the folder, and one that would is an error.
    pub fn path_in(&self, dir: &Path) -> Result<PathBuf> {
        let safe = !self.path.is_empty()
            && !self.path.starts_with('/')
            && self
                .path
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != "..");
        if !safe {
            bail!(
                "manifest.json lists `{}`, which is not a path inside the build",
                self.path
            );
        }
        Ok(dir.join(&self.path))
    }
}

/// A staging folder beside the output folder.
pub struct Staging {
    dir: tempfile::TempDir,
    out: PathBuf,
    entries: Vec<Entry>,
}

impl Staging {
    /// Creates the staging folder next to `out`, so the final rename stays on one file system.
    pub fn new(out: &Path) -> Result<Staging> {
        refuse_foreign_folder(out)?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = out
            .file_name()
            .map_or_else(|| "dist".into(), |n| n.to_string_lossy().into_owned());
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(&parent)
            .with_context(|| format!("creating a staging folder in {}", parent.display()))?;
        Ok(Staging {
            dir,
            out: out.to_path_buf(),
            entries: Vec::new(),
        })
    }

    /// Absolute path of `relative` inside the staging folder, with its parent folders created.
    pub fn path(&self, relative: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        Ok(path)
    }

    /// Writes a small artifact and records it; the returned entry can take notes.
    pub fn write(
        &mut self,
        relative: &str,
        kind: Kind,
        identifier: &str,
        bytes: &[u8],
    ) -> Result<&mut Entry> {
        let path = self.path(relative)?;
        let mut file = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        self.record(relative, kind, identifier)
    }

    /// Records an artifact already written at `relative` (large files, written by streaming).
    pub fn record(&mut self, relative: &str, kind: Kind, identifier: &str) -> Result<&mut Entry> {
        let path = self.dir.path().join(relative);
        let (sha256, size) = sha256_file(&path)?;
        let identifier = identifier.to_owned();
        let entry = Entry {
            path: relative.to_owned(),
            kind,
            sha256,
            size,
            identifier,
            notes: Vec::new(),
        };
        let index = self.entries.len();
        self.entries.push(entry);
        Ok(&mut self.entries[index])
    }

    /// Writes `manifest.json` and moves the staging folder into place.
    pub fn commit(self) -> Result<Manifest> {
        self.commit_with(|_, _| Ok(()))
    }

    /// Writes `manifest.json`, lets `finish` add files that summarize the build (given the staging
    /// folder and the manifest; they are not listed in it), and moves the staging folder into place.
    pub fn commit_with(mut self, finish: impl FnOnce(&Path, &Manifest) -> Result<()>) -> Result<Manifest> {
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            artifacts: self.entries,
        };
        let mut json = serde_json::to_vec_pretty(&manifest).context("serializing the manifest")?;
        json.push(b'\n');
        fs::write(self.dir.path().join("manifest.json"), json).context("writing manifest.json")?;
        fs::write(self.dir.path().join(MARKER), MARKER_CONTENTS).context("writing the output marker")?;
        finish(self.dir.path(), &manifest)?;
        crate::interrupt::check()?;
        let staged = self.dir.keep();
        replace_folder(&staged, &self.out).inspect_err(|_| {
            let _ = fs::remove_dir_all(&staged);
        })?;
        Ok(manifest)
    }
}

/// The file that marks a folder confine wrote, holding [`MARKER_CONTENTS`]. Only a folder with it (or
/// an empty one) is ever replaced: a `manifest.json` alone proves nothing, as any project may have one.
const MARKER: &str = ".confine-output";
/// The marker's contents: what wrote the folder, and the version of its layout.
const MARKER_CONTENTS: &[u8] = b"confine output folder, format 1\n";

/// Why a build may not replace `out`, if it may not: it exists and is not a folder, or it is a folder
/// that is not empty and has no [`MARKER`] (a home folder, a project). Names what is in the way.
pub fn foreign_folder(out: &Path) -> Option<String> {
    let metadata = fs::symlink_metadata(out).ok()?;
    if !metadata.is_dir() {
        return Some("it exists and is not a folder; confine never replaces a file".to_owned());
    }
    let mut names: Vec<String> = match fs::read_dir(out) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return Some(format!("cannot list it: {e}")),
    };
    let marked = crate::limits::read_regular(&out.join(MARKER), MARKER_CONTENTS.len() as u64)
        .is_ok_and(|bytes| bytes == MARKER_CONTENTS);
    if names.is_empty() || marked {
        return None;
    }
    let count = names.len();
    names.sort();
    names.truncate(3);
    let shown: Vec<String> = names
        .iter()
        .map(|n| format!("`{}`", escape_controls(n)))
        .collect();
    Some(format!(
        "it holds {count} {} ({}{}) and no {MARKER} marker, so confine did not write it and will not \
         replace it",
        if count == 1 { "entry" } else { "entries" },
        shown.join(", "),
        if count > shown.len() { ", …" } else { "" }
    ))
}

/// The check of [`foreign_folder`], as an error.
fn refuse_foreign_folder(out: &Path) -> Result<()> {
    match foreign_folder(out) {
        Some(why) => bail!("--out {}: {why}; choose another output folder", out.display()),
        None => Ok(()),
    }
}

/// Swaps `staged` into `out`: the old folder is renamed aside first, so a failure leaves it in place.
fn replace_folder(staged: &Path, out: &Path) -> Result<()> {
    if !out.exists() {
        return fs::rename(staged, out).with_context(|| format!("moving the build into {}", out.display()));
    }
    let aside = staged.with_extension("previous");
    fs::rename(out, &aside).with_context(|| format!("moving the old {} aside", out.display()))?;
    if let Err(e) = fs::rename(staged, out) {
        let _ = fs::rename(&aside, out);
        return Err(e).with_context(|| format!("moving the build into {}", out.display()));
    }
    fs::remove_dir_all(&aside).with_context(|| format!("removing the old build at {}", aside.display()))
}

/// SHA-256 (hex) and size of a file, read in chunks.
fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Hasher::new(MessageDigest::sha256())?;
    let size =
        std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok((hex(&hasher.finish()?), size))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_build_leaves_old_output_alone() {
        let root = tempfile::tempdir().expect("tempdir");
        let out = root.path().join("dist");
        let mut first = Staging::new(&out).expect("staging");
        first.write("a.txt", Kind::Config, "x", b"one").expect("write");
        first.commit().expect("commit");
        let mut second = Staging::new(&out).expect("staging");
        second.write("a.txt", Kind::Config, "x", b"two").expect("write");
        drop(second); // an error path: never committed
        assert_eq!(fs::read(out.join("a.txt")).expect("read"), b"one");
        let leftovers: Vec<_> = fs::read_dir(root.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "only dist/ remains");
    }

    #[test]
    fn manifest_paths_stay_inside_the_build() {
        let entry = |path: &str| Entry {
            path: path.to_owned(),
            kind: Kind::Pkg,
            sha256: String::new(),
            size: 0,
            identifier: String::new(),
            notes: Vec::new(),
        };
        let dir = Path::new("/build");
        assert_eq!(
            entry("a/b.pkg").path_in(dir).expect("inside"),
            dir.join("a/b.pkg")
        );
        for hostile in ["../x.pkg", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(entry(hostile).path_in(dir).is_err(), "{hostile}");
        }
    }

    #[test]
    fn refuses_to_replace_a_folder_confine_did_not_write() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("precious"), b"keep").expect("write");
        let err = Staging::new(root.path()).err().expect("refused");
        assert!(format!("{err:#}").contains("holds 1 entry (`precious`) and no .confine-output marker"));
        // A manifest.json is no proof: any project may have one.
        fs::write(root.path().join("manifest.json"), b"{}").expect("write");
        assert!(foreign_folder(root.path()).is_some());
        // A folder confine wrote is replaced.
        let out = root.path().join("dist");
        Staging::new(&out).expect("staging").commit().expect("commit");
        assert_eq!(foreign_folder(&out), None);
        Staging::new(&out).expect("staging").commit().expect("replaced");
    }
}
