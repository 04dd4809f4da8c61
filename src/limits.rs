//! Limits on files confine did not write: the packages, BOMs, cpio archives, XML documents and property
//! lists that `inspect`, `verify` and `validate` read from downloads, MDM exports and CI artifacts.
//!
//! Each reader refuses input past these bounds with an error naming the limit, so that a small hostile
//! file cannot exhaust memory, the stack or CPU time. Every number sits far above what Apple's tools and
//! confine write (the real value is noted with each), and low enough that all of them at once stay well
//! inside 1 GiB of address space. Readers that recurse never go deeper than [`MAX_NESTING`].

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};

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

/// The whole file at `path`, of at most `limit` bytes (see [`read_within`]).
pub fn read_file_within(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_within(file, limit).with_context(|| format!("cannot read {}", path.display()))
}
