//! Limits on files confine did not write: the packages, BOMs, cpio archives, XML documents and property
//! lists that `inspect`, `verify` and `validate` read from downloads, MDM exports and CI artifacts.
//!
//! Each reader refuses input past these bounds with an error naming the limit, so that a small hostile
//! file cannot exhaust memory, the stack or CPU time. Every number sits far above what Apple's tools and
//! confine write (the real value is noted with each), and low enough that all of them at once stay well
//! inside 1 GiB of address space. Readers that recurse never go deeper than [`MAX_NESTING`].
//!
//! Every file a user hands confine (a spec, a lock file, an identity, a package, a profile, a trail) is
//! opened through [`open_regular`]: a regular file within its named limit, never a FIFO to wait on or a
//! device to read forever.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Nesting of XML elements (xar TOC, PackageInfo, Distribution) and of property-list arrays and
/// dictionaries. Real documents nest fewer than 15 levels; the readers and the `Drop` of their trees
/// recurse, and 128 frames fit any thread's stack.
pub const MAX_NESTING: usize = 128;

/// Elements in one XML document. A product archive's TOC lists a handful of files per component, a
/// Distribution a few dozen elements; 100,000 elements take about 10 MB as a tree.
pub const MAX_XML_ELEMENTS: usize = 100_000;

/// Attributes on one XML element. Apple's elements carry fewer than 10; the XML parser's duplicate check
/// is quadratic in this number.
pub const MAX_XML_ATTRIBUTES: usize = 64;

/// Bytes of one XML document once decompressed: the xar TOC, a PackageInfo or a Distribution. Real ones
/// are kilobytes (a signed TOC with its certificates is about 10 KB).
pub const MAX_XML_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of a BOM, read whole. A BOM costs about 100 bytes per path, so this holds over a million paths.
pub const MAX_BOM_BYTES: u64 = 128 * 1024 * 1024;

/// Paths in one BOM or one cpio archive. Xcode, among the largest packages Apple ships, has about
/// 300,000 paths.
pub const MAX_PATHS: usize = 1_000_000;

/// Bytes of one path name component: `NAME_MAX` on APFS and HFS+.
pub const MAX_NAME_BYTES: usize = 255;

/// Bytes of one path inside an archive: macOS's `PATH_MAX`, which an installed path must fit anyway.
pub const MAX_PATH_BYTES: usize = 1024;

/// Bytes of all the paths of one listing (a BOM or a cpio archive) together: a million paths of 128
/// bytes on average.
pub const MAX_LISTING_BYTES: u64 = 128 * 1024 * 1024;

/// Bytes a package's readers may read and decode in total, per byte of the package file, on top of
/// [`MIN_WORK_BYTES`]. `verify` reads each heap byte a few times (archived checksum, extracted checksum,
/// Payload listing) and payloads compress 2–5×, so real packages need under 20×; a decompression bomb
/// (about 1000× per deflate layer) or TOC entries sharing heap data stop here instead of running for
/// minutes.
pub const MAX_WORK_RATIO: u64 = 64;

/// The work allowance of any package, however small (see [`MAX_WORK_RATIO`]).
pub const MIN_WORK_BYTES: u64 = 256 * 1024 * 1024;

/// A `package.json` the build reads from a bundled tarball (OpenClaw 2026.9.6's is under 10 KB).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A build's `manifest.json` that `confine push` reads: a few hundred bytes per artifact.
pub const MAX_BUILD_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes of a configuration profile file (signed or not). Real profiles are kilobytes.
pub const MAX_PROFILE_BYTES: u64 = 16 * 1024 * 1024;

/// Values (scalars and collections) in one property list, counting every use of a binary plist's shared
/// object. Profiles hold hundreds; 200,000 values take about 40 MB as a tree.
pub const MAX_PLIST_VALUES: usize = 200_000;

/// Bytes of the strings, keys and data of one property list, counting every use of a shared object, so
/// that a binary plist whose objects reference each other cannot expand beyond four times the largest
/// profile.
pub const MAX_PLIST_BYTES: u64 = 4 * MAX_PROFILE_BYTES;

/// Reads `reader` to its end, refusing more than `limit` bytes. Reads at most one byte past the limit,
/// so a device or a growing file (`/dev/zero`) cannot keep it reading.
pub fn read_within(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!(
            "larger than the limit of {limit} bytes"
        )));
    }
    Ok(bytes)
}

/// Bytes of a package `inspect` and `verify` read. Apple's largest installer packages (Xcode's
/// components, macOS installers) stay under 16 GiB; confine's own are a few hundred megabytes.
pub const MAX_PACKAGE_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Bytes of a signing identity (`.p12`), a PEM private key or a certificate. Real ones are a few
/// kilobytes: a certificate chain of three with its key.
pub const MAX_IDENTITY_BYTES: u64 = 1024 * 1024;

/// Bytes of a spec's lock file (`fleet.lock`): about 500 bytes per locked package, so a bundle of ten
/// thousand packages stays under 8 MB.
pub const MAX_LOCK_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes of one cached npm tarball, hashed whole before it is unpacked. The largest packages on npm
/// (prebuilt browsers, compilers) are a few hundred megabytes.
pub const MAX_TARBALL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Opens `path` for reading if it is a regular file of at most `limit` bytes; returns it and its size.
/// The open does not wait (`O_NONBLOCK`), so a FIFO cannot hang it, and the type and size come from the
/// opened file (`fstat`), so a path swapped after a check cannot slip a device or a FIFO in. A symlink is
/// followed only to a regular file.
pub fn open_regular(path: &Path, limit: u64) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?;
    if !metadata.is_file() {
        bail!(
            "{} is {}, not a regular file; confine reads only regular files",
            path.display(),
            file_type(&metadata.file_type())
        );
    }
    if metadata.len() > limit {
        bail!(
            "{} is {} bytes, larger than the limit of {limit} bytes",
            path.display(),
            metadata.len()
        );
    }
    Ok((file, metadata.len()))
}

/// The whole regular file at `path`, of at most `limit` bytes (see [`open_regular`]; a file that grows
/// while it is read stops at the limit too).
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (file, _) = open_regular(path, limit)?;
    read_within(file, limit).with_context(|| format!("cannot read {}", path.display()))
}

fn file_type(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"0123456789").expect("write");
        assert_eq!(read_regular(&file, 10).expect("fits"), b"0123456789");
        let err = format!("{:#}", read_regular(&file, 9).expect_err("too big"));
        assert!(
            err.contains("10 bytes, larger than the limit of 9 bytes"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_regular(Path::new("/dev/zero"), 16).expect_err("device")
        );
        assert!(err.contains("is a character device, not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        let err = format!("{:#}", read_regular(&fifo, 16).expect_err("fifo"));
        assert!(err.contains("is a FIFO"), "{err}");
    }
}
