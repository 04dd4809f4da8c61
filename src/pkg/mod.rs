//! Flat installer packages (`.pkg`): component packages and product archives.
//!
//! A flat package is a XAR archive (`xar`) holding, per component, a `PackageInfo` (`package_info`),
//! a `Bom` (`bom`), a gzip'd odc cpio `Payload` and `Scripts` (`cpio`, `gzip`); a product archive
//! adds a `Distribution` (`distribution`) at the root and puts each component in `<identifier>.pkg/`.
//! Apple documents only the Distribution XML; the rest follows Apple's open-source xar, bomutils and the
//! byte-level notes in `shared/reference/pkg.md`.
//!
//! The [`Payload`] lists the paths to install; folders with many files (the OpenClaw bundle, a tree
//! on disk) are streamed [`Tree`]s, expanded only while the cpio is written. The cpio writer records
//! each path's size and POSIX cksum in an on-disk listing (`listing`), and the BOM is written
//! afterwards from that listing, so the two cannot disagree. Payload bytes are read once from their
//! source and spooled to a temporary heap file; memory use grows neither with payload size nor with
//! file count.
//!
//! Not supported: hard links, device nodes, files of 4 GiB or more (the BOM's 32-bit size), extended
//! attributes, `Resources/` (welcome, license, background), pbzx payloads.

mod bom;
mod cpio;
mod distribution;
mod gzip;
mod inspect;
mod listing;
mod metadata;
mod package_info;
mod reader;
mod safety;
mod tree;
mod verify;
mod xar;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

pub use inspect::inspect;
pub use metadata::{ProductMetadata, Receipt, product_metadata};
pub(crate) use reader::{Element, parse_xml};
pub use tree::{Tree, TreeSink};
pub use verify::{SignatureParts, Verification, verify};
pub(crate) use xar::civil_from_days;

use crate::sign::TocSigner;
use listing::PathKind;

/// Files, directories and symlinks to install, keyed by their path components below the install
/// location ("/"). Ordered parents-first (a path sorts before everything below it), which is the order
/// the cpio Payload needs.
#[derive(Debug)]
pub struct Payload {
    entries: BTreeMap<PayloadPath, Entry>,
    /// Directories among `entries` whose contents are streamed from a [`Tree`] while the Payload is
    /// written: nothing else may be added below them.
    trees: BTreeMap<PayloadPath, StreamedTree>,
}

/// A [`Tree`] and the owner of everything in it.
#[derive(Debug)]
pub(crate) struct StreamedTree {
    pub(crate) source: Box<dyn Tree>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// A path below the install location as one string, `Library/LaunchDaemons/x.plist` (`""` for the
/// root), ordered component by component so that a path sorts before everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayloadPath(Box<str>);

impl PayloadPath {
    fn new(components: &[String]) -> Self {
        Self(components.join("/").into_boxed_str())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }
}

impl Ord for PayloadPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for PayloadPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) kind: EntryKind,
    /// Permission bits only (`0o7777`); the file-type bits come from `kind`.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

#[derive(Debug)]
pub(crate) enum EntryKind {
    Directory,
    File(FileSource),
    Symlink(String),
}

#[derive(Debug)]
pub(crate) enum FileSource {
    Memory(Vec<u8>),
    /// Opened and streamed while the Payload is written.
    Disk(PathBuf),
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
/// pkgbuild and cpio(1) record symlinks as `lrwxr-xr-x`; the mode of a link is not used on macOS.
const SYMLINK_MODE: u32 = 0o755;

/// The full `st_mode` of a path of `kind` with permission bits `mode`.
fn st_mode(kind: PathKind, mode: u32) -> u32 {
    let file_type = match kind {
        PathKind::Directory => S_IFDIR,
        PathKind::File => S_IFREG,
        PathKind::Symlink => S_IFLNK,
    };
    file_type | mode
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload {
    /// A payload holding only ".", the install location itself, as `0755 root:wheel`.
    pub fn new() -> Self {
        let root = Entry {
            kind: EntryKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        Self {
            entries: BTreeMap::from([(PayloadPath::new(&[]), root)]),
            trees: BTreeMap::new(),
        }
    }

    /// Add (or re-own) a directory. Missing parents are added as `0755 root:wheel`.
    pub fn add_dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        check_mode(path, mode)?;
        let components = components(path)?;
        self.add_parents(path, &components)?;
        let entry = Entry {
            kind: EntryKind::Directory,
            mode,
            uid,
            gid,
        };
        let key = PayloadPath::new(&components);
        self.check_outside_trees(path, &key)?;
        match self.entries.get_mut(&key) {
            Some(
                existing @ Entry {
                    kind: EntryKind::Directory,
                    ..
                },
            ) => *existing = entry,
            Some(_) => bail!("{path}: already in the payload as something other than a directory"),
            None => {
                self.entries.insert(key, entry);
            }
        }
        Ok(())
    }

    /// Add a regular file whose contents are already in memory.
    pub fn add_file(&mut self, path: &str, contents: Vec<u8>, mode: u32, uid: u32, gid: u32) -> Result<()> {
        self.add_leaf(
            path,
            EntryKind::File(FileSource::Memory(contents)),
            mode,
            uid,
            gid,
        )
    }

    /// Add a regular file that is read from `source` only while the package is written.
    pub fn add_file_from_disk(
        &mut self,
        path: &str,
        source: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        self.add_leaf(
            path,
            EntryKind::File(FileSource::Disk(source.to_owned())),
            mode,
            uid,
            gid,
        )
    }

    /// Add a symbolic link pointing at `target` (stored verbatim, relative or absolute).
    pub fn add_symlink(&mut self, path: &str, target: &str, uid: u32, gid: u32) -> Result<()> {
        ensure!(
            !target.is_empty() && !target.contains('\0'),
            "{path}: symlink target must be non-empty, without NUL"
        );
        self.add_leaf(
            path,
            EntryKind::Symlink(target.to_owned()),
            SYMLINK_MODE,
            uid,
            gid,
        )
    }

    /// Add everything below `source_dir` under `dest`, walked in sorted order while the package is
    /// written. Permission bits come from disk, owners from `uid`/`gid`, symlinks stay symlinks. `dest`
    /// itself (and its missing parents) are `0755 root:wheel` unless added with [`Payload::add_dir`]:
    /// the source directory's own mode is often a temp dir's 0700, which must not leak onto an install
    /// location.
    pub fn add_tree_from_disk(&mut self, dest: &str, source_dir: &Path, uid: u32, gid: u32) -> Result<()> {
        self.add_tree(dest, Box::new(tree::DiskTree::new(source_dir)?), uid, gid)
    }

    /// Add a directory at `dest` whose contents `source` streams while the package is written, owned by
    /// `uid`/`gid`. `dest` itself is as in [`Payload::add_tree_from_disk`]. Nothing else may be added
    /// below `dest`.
    pub fn add_tree(&mut self, dest: &str, source: Box<dyn Tree>, uid: u32, gid: u32) -> Result<()> {
        let components = components(dest)?;
        self.add_parents(dest, &components)?;
        let key = PayloadPath::new(&components);
        match self.entries.get(&key) {
            None => self.add_dir(dest, 0o755, 0, 0)?,
            Some(Entry {
                kind: EntryKind::Directory,
                ..
            }) => {}
            Some(_) => bail!("{dest}: already in the payload as something other than a directory"),
        }
        let below = |path: &PayloadPath| is_below(path.as_str(), key.as_str());
        ensure!(
            !self.entries.keys().any(below) && !self.trees.keys().any(|t| below(t) || t == &key),
            "{dest}: the payload already has entries below it"
        );
        self.trees.insert(key, StreamedTree { source, uid, gid });
        Ok(())
    }

    /// Refuses a path inside a streamed tree: the tree owns everything below its root.
    fn check_outside_trees(&self, path: &str, key: &PayloadPath) -> Result<()> {
        if let Some(root) = self
            .trees
            .keys()
            .find(|root| is_below(key.as_str(), root.as_str()))
        {
            bail!(
                "{path}: inside /{}, whose contents are streamed from one source",
                root.as_str()
            );
        }
        Ok(())
    }

    fn add_leaf(&mut self, path: &str, kind: EntryKind, mode: u32, uid: u32, gid: u32) -> Result<()> {
        check_mode(path, mode)?;
        let components = components(path)?;
        ensure!(
            !components.is_empty(),
            "{path}: the payload root can only be a directory"
        );
        self.add_parents(path, &components)?;
        let key = PayloadPath::new(&components);
        self.check_outside_trees(path, &key)?;
        ensure!(!self.entries.contains_key(&key), "{path}: already in the payload");
        self.entries.insert(key, Entry { kind, mode, uid, gid });
        Ok(())
    }

    fn add_parents(&mut self, path: &str, components: &[String]) -> Result<()> {
        for depth in 1..components.len() {
            let parent = PayloadPath::new(&components[..depth]);
            match self.entries.get(&parent) {
                Some(Entry {
                    kind: EntryKind::Directory,
                    ..
                }) => {}
                Some(_) => bail!("{path}: /{} is not a directory in the payload", parent.as_str()),
                None => {
                    let entry = Entry {
                        kind: EntryKind::Directory,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    };
                    self.entries.insert(parent, entry);
                }
            }
        }
        Ok(())
    }

    /// Entries parents-first, "." first; streamed trees are not expanded.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&PayloadPath, &Entry)> {
        self.entries.iter()
    }

    /// The tree streamed into the directory `path`, if any.
    pub(crate) fn tree(&self, path: &PayloadPath) -> Option<&StreamedTree> {
        self.trees.get(path)
    }
}

/// Whether `path` is strictly below `root` (`""` is the payload root).
fn is_below(path: &str, root: &str) -> bool {
    if root.is_empty() {
        return !path.is_empty();
    }
    path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

fn check_mode(path: &str, mode: u32) -> Result<()> {
    ensure!(
        mode & !0o7777 == 0,
        "{path}: mode {mode:o} has bits outside 0o7777 (give permission bits only)"
    );
    Ok(())
}

/// Split an absolute payload path into components, refusing anything that could escape or confuse the
/// install location ("..", ".", empty components, NUL).
fn components(path: &str) -> Result<Vec<String>> {
    let relative = path
        .strip_prefix('/')
        .with_context(|| format!("{path}: payload paths must be absolute"))?;
    let relative = relative.trim_end_matches('/');
    if relative.is_empty() {
        return Ok(Vec::new());
    }
    relative
        .split('/')
        .map(|component| {
            ensure!(
                !component.is_empty() && component != "." && component != ".." && !component.contains('\0'),
                "{path}: invalid path component {component:?}"
            );
            Ok(component.to_owned())
        })
        .collect()
}

/// A file in the component's `Scripts` archive: `preinstall`, `postinstall`, or a helper they call.
#[derive(Debug)]
pub struct Script {
    pub name: String,
    pub contents: Vec<u8>,
    /// Permission bits, usually 0o755.
    pub mode: u32,
}

/// One component package: a receipt identifier, its payload and scripts.
#[derive(Debug)]
pub struct Component {
    pub identifier: String,
    pub version: String,
    /// `None` makes a payload-free package, like `pkgbuild --nopayload`: no Bom, no Payload, no receipt.
    pub payload: Option<Payload>,
    pub scripts: Vec<Script>,
}

/// A product archive: a Distribution plus its components.
#[derive(Debug)]
pub struct Product {
    pub title: String,
    pub identifier: String,
    pub version: String,
    /// Lowest macOS version allowed, e.g. "13.0".
    pub minimum_macos: String,
    pub components: Vec<Component>,
}

/// Settings that are not part of the package description.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Every timestamp in the package (cpio, BOM, TOC), in Unix seconds. Callers pass
    /// `SOURCE_DATE_EPOCH` or a fixed epoch so that builds are reproducible.
    pub mtime: u64,
}

/// What the Distribution needs to know about a component once it is written.
pub(crate) struct WrittenComponent<'a> {
    pub(crate) identifier: &'a str,
    pub(crate) version: &'a str,
    pub(crate) install_kbytes: u64,
}

/// Write a product archive (Distribution + `<identifier>.pkg/` per component) to `dest`.
pub fn write_product(
    product: &Product,
    dest: &mut impl Write,
    options: &BuildOptions,
    signer: Option<&dyn TocSigner>,
) -> Result<()> {
    ensure!(
        !product.components.is_empty(),
        "product {}: has no components",
        product.identifier
    );
    let mut archive = xar::XarBuilder::new()?;
    let mut written = Vec::with_capacity(product.components.len());
    for component in &product.components {
        let directory = format!("{}.pkg", component.identifier);
        ensure!(
            !written
                .iter()
                .any(|w: &WrittenComponent| w.identifier == component.identifier),
            "product {}: component {} appears twice",
            product.identifier,
            component.identifier
        );
        archive.add_directory(&[&directory])?;
        written.push(add_component(&mut archive, Some(&directory), component, options)?);
    }
    let distribution = distribution::render(product, &written)?;
    archive.add_bytes(&["Distribution"], distribution.as_bytes(), xar::Encoding::Zlib)?;
    archive.finish(dest, options.mtime, signer)
}

/// Write a bare component package (PackageInfo, Bom, Payload, Scripts at the root) to `dest`.
pub fn write_component(
    component: &Component,
    dest: &mut impl Write,
    options: &BuildOptions,
    signer: Option<&dyn TocSigner>,
) -> Result<()> {
    let mut archive = xar::XarBuilder::new()?;
    add_component(&mut archive, None, component, options)?;
    archive.finish(dest, options.mtime, signer)
}

fn add_component<'a>(
    archive: &mut xar::XarBuilder,
    directory: Option<&str>,
    component: &'a Component,
    options: &BuildOptions,
) -> Result<WrittenComponent<'a>> {
    let id = &component.identifier;
    ensure!(
        !id.is_empty() && !id.contains(['/', '\0']) && id != "." && id != "..",
        "component identifier {id:?} cannot name a directory in the archive"
    );
    let at = |name: &'static str| -> Vec<&str> { directory.into_iter().chain([name]).collect() };
    let mut payload_summary = None;
    if let Some(payload) = &component.payload {
        let listing = archive
            .add_stream(&at("Payload"), xar::Encoding::Stored, |out| {
                let mut watched = crate::progress::Counting::new(out, &format!("writing {id}'s Payload"));
                cpio::write_payload(payload, options.mtime, &mut watched)
            })
            .with_context(|| format!("component {id}: writing the Payload"))?;
        // Metadata is zlib'd as productbuild does it (the Installer's most travelled path); a BOM of
        // 20,000 paths shrinks about tenfold. Payload and Scripts stay stored: they are gzip already.
        archive
            .add_stream(&at("Bom"), xar::Encoding::Zlib, |out| {
                bom::write(&listing, options.mtime, out)
            })
            .with_context(|| format!("component {id}: writing the Bom"))?;
        payload_summary = Some(package_info::PayloadSummary::new(&listing));
    }
    if !component.scripts.is_empty() {
        archive
            .add_stream(&at("Scripts"), xar::Encoding::Stored, |out| {
                cpio::write_scripts(&component.scripts, options.mtime, out)
            })
            .with_context(|| format!("component {id}: writing the Scripts"))?;
    }
    let package_info = package_info::render(component, payload_summary.as_ref())?;
    archive.add_bytes(&at("PackageInfo"), package_info.as_bytes(), xar::Encoding::Zlib)?;
    Ok(WrittenComponent {
        identifier: id,
        version: &component.version,
        install_kbytes: payload_summary.map_or(0, |summary| summary.install_kbytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(payload: &Payload) -> Vec<String> {
        payload
            .entries()
            .map(|(path, entry)| {
                let kind = match entry.kind {
                    EntryKind::Directory => PathKind::Directory,
                    EntryKind::File(_) => PathKind::File,
                    EntryKind::Symlink(_) => PathKind::Symlink,
                };
                format!("/{} {:o}", path.as_str(), st_mode(kind, entry.mode))
            })
            .collect()
    }

    #[test]
    fn parents_are_added_and_sorted_before_children() -> Result<()> {
        let mut payload = Payload::new();
        payload.add_file("/Library/LaunchDaemons/x.plist", b"x".to_vec(), 0o644, 0, 0)?;
        payload.add_dir("/Library", 0o755, 0, 80)?;
        payload.add_file("/Library-x", Vec::new(), 0o600, 0, 0)?;
        assert_eq!(
            paths(&payload),
            [
                "/ 40755",
                "/Library 40755",
                "/Library/LaunchDaemons 40755",
                "/Library/LaunchDaemons/x.plist 100644",
                "/Library-x 100600"
            ]
        );
        Ok(())
    }

    #[derive(Debug)]
    struct Empty;

    impl Tree for Empty {
        fn emit(&self, _: &mut dyn TreeSink) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_streamed_tree_owns_everything_below_its_root() -> Result<()> {
        let mut payload = Payload::new();
        payload.add_file("/opt/x", Vec::new(), 0o644, 0, 0)?;
        assert!(
            payload.add_tree("/opt", Box::new(Empty), 0, 0).is_err(),
            "entries below"
        );
        assert!(
            payload.add_tree("/opt/x", Box::new(Empty), 0, 0).is_err(),
            "a file"
        );
        payload.add_tree("/usr/lib/agent", Box::new(Empty), 0, 0)?;
        payload.add_dir("/usr/lib/agent", 0o750, 0, 0)?;
        assert!(
            payload
                .add_file("/usr/lib/agent/x", Vec::new(), 0o644, 0, 0)
                .is_err()
        );
        assert!(payload.add_dir("/usr/lib/agent/sub", 0o755, 0, 0).is_err());
        assert!(
            payload
                .add_tree("/usr/lib/agent/sub", Box::new(Empty), 0, 0)
                .is_err()
        );
        assert!(payload.add_tree("/usr/lib", Box::new(Empty), 0, 0).is_err());
        payload.add_file("/usr/lib/agent-x", Vec::new(), 0o644, 0, 0)?;
        Ok(())
    }

    #[test]
    fn bad_paths_and_modes_are_refused() {
        let mut payload = Payload::new();
        assert!(payload.add_file("relative", Vec::new(), 0o644, 0, 0).is_err());
        assert!(payload.add_file("/a/../b", Vec::new(), 0o644, 0, 0).is_err());
        assert!(payload.add_file("/a//b", Vec::new(), 0o644, 0, 0).is_err());
        assert!(payload.add_file("/a", Vec::new(), 0o100644, 0, 0).is_err());
        assert!(payload.add_file("/", Vec::new(), 0o644, 0, 0).is_err());
        assert!(payload.add_file("/f", Vec::new(), 0o644, 0, 0).is_ok());
        assert!(
            payload.add_file("/f", Vec::new(), 0o644, 0, 0).is_err(),
            "duplicate"
        );
        assert!(
            payload.add_file("/f/g", Vec::new(), 0o644, 0, 0).is_err(),
            "parent is a file"
        );
        assert!(
            payload.add_dir("/f", 0o755, 0, 0).is_err(),
            "file re-added as directory"
        );
    }
}
