//! Streamed trees: payload folders whose contents are produced only while the Payload is written, one
//! entry at a time, so that no list of their paths is held in memory. A folder on disk is one
//! ([`DiskTree`]); the OpenClaw bundle, streamed from its integrity-checked npm tarballs, is another.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The source of a streamed tree.
pub trait Tree: std::fmt::Debug {
    /// Emits every entry below the tree's root (not the root itself), by paths relative to it
    /// (`a/b`), each path once and every folder before anything inside it.
    fn emit(&self, sink: &mut dyn TreeSink) -> Result<()>;
}

/// Where a [`Tree`] sends its entries: the Payload writer. Modes are permission bits only.
pub trait TreeSink {
    fn directory(&mut self, path: &str, mode: u32) -> Result<()>;
    /// A regular file of `size` bytes, read from `data`; a source that yields another count is an
    /// error.
    fn file(&mut self, path: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()>;
    fn symlink(&mut self, path: &str, target: &str) -> Result<()>;
}

/// A folder on disk, walked in sorted order while the Payload is written. Permission bits come from
/// disk, symlinks stay symlinks.
#[derive(Debug)]
pub(crate) struct DiskTree {
    root: PathBuf,
}

impl DiskTree {
    pub(crate) fn new(root: &Path) -> Result<Self> {
        std::fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    fn walk(&self, dir: &Path, prefix: &str, sink: &mut dyn TreeSink) -> Result<()> {
        let mut children = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        children.sort_by_key(|child| child.file_name());
        for child in children {
            let source = child.path();
            let name = child.file_name();
            let name = name
                .to_str()
                .with_context(|| format!("{}: file name is not UTF-8", source.display()))?;
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let metadata = std::fs::symlink_metadata(&source)
                .with_context(|| format!("cannot stat {}", source.display()))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
            let file_type = metadata.file_type();
            if file_type.is_symlink() {
                let target = std::fs::read_link(&source)
                    .with_context(|| format!("cannot read link {}", source.display()))?;
                let target = target
                    .to_str()
                    .with_context(|| format!("{}: link target is not UTF-8", source.display()))?;
                sink.symlink(&path, target)?;
            } else if file_type.is_dir() {
                sink.directory(&path, mode)?;
                self.walk(&source, &path, sink)?;
            } else if file_type.is_file() {
                let (mut file, size) = crate::limits::open_regular(&source, u64::MAX)?;
                sink.file(&path, mode, size, &mut file)
                    .with_context(|| format!("reading {}", source.display()))?;
            } else {
                bail!(
                    "{}: only files, directories and symlinks can go in a payload",
                    source.display()
                );
            }
        }
        Ok(())
    }
}

impl Tree for DiskTree {
    fn emit(&self, sink: &mut dyn TreeSink) -> Result<()> {
        self.walk(&self.root, "", sink)
    }
}
