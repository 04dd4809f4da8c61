//! The output folder: artifacts are written into a staging folder beside it, listed in `manifest.json`,
//! and the staging folder replaces the output folder only when everything succeeded. On any error the
//! output folder is left as it was and the staging folder is removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use openssl::hash::{Hasher, MessageDigest};
use serde::Serialize;

/// What an artifact is, as listed in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// One line of `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Relative to the output folder, with `/` separators.
    pub path: String,
    pub kind: Kind,
    pub sha256: String,
    pub size: u64,
    /// The Apple identifier the artifact carries (profile identifier, launchd label, package identifier).
    pub identifier: String,
    /// What an admin must know to deploy it (e.g. a profile that needs a user-approved MDM enrollment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The version of `manifest.json`'s layout, raised when a field changes meaning or goes away (adding a
/// field does not raise it), so a deploy script can refuse a manifest it does not understand.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// `manifest.json`: its format version and every artifact, sorted by path.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format_version: u32,
    pub artifacts: Vec<Entry>,
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
        finish(self.dir.path(), &manifest)?;
        crate::interrupt::check()?;
        let staged = self.dir.keep();
        replace_folder(&staged, &self.out).inspect_err(|_| {
            let _ = fs::remove_dir_all(&staged);
        })?;
        Ok(manifest)
    }
}

/// An existing output folder is replaced only if confine wrote it (it has a manifest): `--out ~` must
/// never delete a home folder.
fn refuse_foreign_folder(out: &Path) -> Result<()> {
    if fs::symlink_metadata(out).is_ok_and(|m| !m.is_dir()) {
        bail!(
            "{} exists and is not a folder; choose another --out",
            out.display()
        );
    }
    let Ok(mut entries) = fs::read_dir(out) else {
        return Ok(());
    };
    if entries.next().is_none() || out.join("manifest.json").is_file() {
        return Ok(());
    }
    bail!(
        "{} exists and was not written by confine (it has no manifest.json); choose another --out or remove it",
        out.display()
    )
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
    fn refuses_to_replace_a_folder_confine_did_not_write() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("precious"), b"keep").expect("write");
        let err = Staging::new(root.path()).err().expect("refused");
        assert!(format!("{err:#}").contains("not written by confine"));
    }
}
