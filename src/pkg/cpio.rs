//! The odc ("portable ASCII", magic `070707`) cpio archives inside a flat package: `Payload` and
//! `Scripts`, each gzip-compressed.
//!
//! The format is POSIX.1-1988 `cpio` (documented in the `pax` rationale and FreeBSD's `cpio(5)`); Apple's
//! pkgbuild writes it and the Installer's BOMCopier reads it. Each entry is a 76-byte ASCII header of
//! octal fields, the NUL-terminated name, then the data, with no padding; a `TRAILER!!!` entry ends the
//! archive. Names are `.` then `./path`, parents before children.
//!
//! Not supported: the newc/crc formats (`070701`/`070702`), hard links, device nodes, files of
//! 8 GiB or more (the 11-digit size field).

use std::io::{self, Read, Write};

use anyhow::{Context, Result, bail, ensure};

use super::bom::Cksum;
use super::gzip::GzipWriter;
use super::listing::{Listing, ListingWriter, PathKind, Record};
use super::{Entry, EntryKind, FileSource, Payload, S_IFDIR, S_IFREG, SYMLINK_MODE, Script, TreeSink};
use crate::limits::{MAX_LISTING_BYTES, MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_PATHS};

const MAGIC: &[u8; 6] = b"070707";
const HEADER_LEN: usize = 76;
const TRAILER: &str = "TRAILER!!!";
/// Reading buffer for file data; large enough that syscalls and per-call overhead are noise.
const CHUNK: usize = 256 * 1024;

/// One odc header: what both writers emit and the reader returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OdcHeader {
    pub(crate) name: String,
    pub(crate) ino: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) mtime: u64,
    pub(crate) file_size: u64,
}

/// What the BOM needs to know about each payload path after streaming it: the byte count and the POSIX
/// cksum of the data (file contents, or a symlink's target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathStats {
    pub(crate) size: u64,
    pub(crate) cksum: u32,
}

fn octal(out: &mut Vec<u8>, field: &str, value: u64, digits: u32) -> Result<()> {
    ensure!(
        value < 8u64.pow(digits),
        "cpio {field} {value} does not fit in {digits} octal digits"
    );
    write!(out, "{value:0width$o}", width = digits as usize)?;
    Ok(())
}

fn write_header(out: &mut impl Write, header: &OdcHeader) -> Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + header.name.len() + 1);
    bytes.extend_from_slice(MAGIC);
    octal(&mut bytes, "dev", 0, 6)?;
    octal(&mut bytes, "ino", header.ino, 6)?;
    octal(&mut bytes, "mode", header.mode.into(), 6)?;
    octal(&mut bytes, "uid", header.uid.into(), 6)?;
    octal(&mut bytes, "gid", header.gid.into(), 6)?;
    octal(&mut bytes, "nlink", header.nlink.into(), 6)?;
    octal(&mut bytes, "rdev", 0, 6)?;
    octal(&mut bytes, "mtime", header.mtime, 11)?;
    octal(&mut bytes, "namesize", header.name.len() as u64 + 1, 6)?;
    octal(&mut bytes, "filesize", header.file_size, 11)?;
    bytes.extend_from_slice(header.name.as_bytes());
    bytes.push(0);
    out.write_all(&bytes)?;
    Ok(())
}

fn write_trailer(out: &mut impl Write) -> Result<()> {
    let trailer = OdcHeader {
        name: TRAILER.into(),
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        file_size: 0,
    };
    write_header(out, &trailer)
}

/// The cpio name of a payload path: "." for the root, "./a/b" below it (what pkgbuild writes).
fn cpio_name(path: &str) -> String {
    match path {
        "" => ".".to_owned(),
        relative => format!("./{relative}"),
    }
}

/// Refuses a payload path macOS or a package reader would refuse: a name longer than `NAME_MAX` or a
/// path (as the archive spells it, `./…`) longer than `PATH_MAX`. confine's own `verify` holds packages to
/// the same limits, so nothing is built that it would reject.
fn check_name_lengths(path: &str) -> Result<()> {
    if let Some(name) = path.split('/').find(|name| name.len() > MAX_NAME_BYTES) {
        bail!(
            "{}…: a name of {} bytes; macOS and the package format accept at most {MAX_NAME_BYTES}",
            name.chars().take(40).collect::<String>(),
            name.len()
        );
    }
    let spelled = cpio_name(path).len();
    ensure!(
        spelled <= MAX_PATH_BYTES,
        "{}…: a path of {spelled} bytes in the payload; macOS and the package format accept at most \
         {MAX_PATH_BYTES}",
        path.chars().take(80).collect::<String>()
    );
    Ok(())
}

/// Stream the payload as gzip'd odc cpio into `out`, expanding each streamed tree where its root sorts,
/// and return the listing of every path written (its size and cksum included) for the BOM. File
/// contents are read once, in `CHUNK`s.
pub(crate) fn write_payload(payload: &Payload, mtime: u64, out: &mut dyn Write) -> Result<Listing> {
    let mut writer = PayloadWriter {
        gzip: GzipWriter::new(out)?,
        mtime,
        ino: 0,
        listing: ListingWriter::new(),
        buffer: vec![0; CHUNK],
    };
    for (path, entry) in payload.entries() {
        writer
            .write_entry(path.as_str(), entry)
            .with_context(|| format!("payload entry {}", cpio_name(path.as_str())))?;
        if let Some(tree) = payload.tree(path) {
            tree.source.emit(&mut TreeWriter {
                writer: &mut writer,
                root: path.as_str(),
                owner: (tree.uid, tree.gid),
            })?;
        }
    }
    write_trailer(&mut writer.gzip)?;
    writer.gzip.finish()?;
    writer.listing.finish()
}

/// The gzip'd cpio stream being written, and the listing of what went into it.
struct PayloadWriter<'a> {
    gzip: GzipWriter<&'a mut dyn Write>,
    mtime: u64,
    ino: u64,
    listing: ListingWriter,
    buffer: Vec<u8>,
}

/// The data of one entry.
enum Data<'r> {
    None,
    Bytes(&'r [u8]),
    Reader(u64, &'r mut dyn Read),
}

impl PayloadWriter<'_> {
    fn write_entry(&mut self, path: &str, entry: &Entry) -> Result<()> {
        let owner = (entry.uid, entry.gid);
        match &entry.kind {
            EntryKind::Directory => self.write(path, PathKind::Directory, entry.mode, owner, Data::None),
            EntryKind::Symlink(target) => self.write(
                path,
                PathKind::Symlink,
                entry.mode,
                owner,
                Data::Bytes(target.as_bytes()),
            ),
            EntryKind::File(FileSource::Memory(contents)) => {
                self.write(path, PathKind::File, entry.mode, owner, Data::Bytes(contents))
            }
            EntryKind::File(FileSource::Disk(source)) => {
                let (mut file, size) = crate::limits::open_regular(source, u64::MAX)?;
                self.write(
                    path,
                    PathKind::File,
                    entry.mode,
                    owner,
                    Data::Reader(size, &mut file),
                )
                .with_context(|| format!("cannot read {}", source.display()))
            }
        }
    }

    /// One cpio entry, recorded in the listing. `mode` is the permission bits; a symlink's data is
    /// its target.
    fn write(&mut self, path: &str, kind: PathKind, mode: u32, owner: (u32, u32), data: Data) -> Result<()> {
        check_name_lengths(path)?;
        // Inode numbers only need to be distinct among hard links (nlink > 1): readers pair equal
        // (dev, ino) only then, so wrapping past the 6-digit field harms nothing.
        self.ino = self.ino % 0o777_777 + 1;
        let st_mode = super::st_mode(kind, mode);
        let mut header = OdcHeader {
            name: cpio_name(path),
            ino: self.ino,
            mode: st_mode,
            uid: owner.0,
            gid: owner.1,
            // 2 for a directory ("." and its entry in the parent), as every cpio writer records a leaf dir.
            nlink: if kind == PathKind::Directory { 2 } else { 1 },
            mtime: self.mtime,
            file_size: 0,
        };
        let mut link_target = None;
        let stats = match data {
            Data::None => {
                write_header(&mut self.gzip, &header)?;
                PathStats {
                    size: 0,
                    cksum: Cksum::new().finish(),
                }
            }
            Data::Bytes(bytes) => {
                if kind == PathKind::Symlink {
                    link_target = Some(String::from_utf8(bytes.to_vec())?);
                }
                header.file_size = bytes.len() as u64;
                write_data(&mut self.gzip, header, bytes)?
            }
            Data::Reader(size, reader) => {
                header.file_size = size;
                write_header(&mut self.gzip, &header)?;
                let stats = copy_counting(&mut reader.take(size), &mut self.gzip, &mut self.buffer)?;
                // The header already promised `size` bytes; a source that changed underneath would
                // corrupt the archive silently, so refuse.
                let more = reader.read(&mut self.buffer[..1])?;
                ensure!(
                    stats.size == size && more == 0,
                    "changed size while being read ({size} bytes → {}{})",
                    stats.size,
                    if more > 0 { " and more" } else { "" }
                );
                stats
            }
        };
        self.listing.push(&Record {
            path: path.to_owned(),
            kind,
            st_mode,
            uid: owner.0,
            gid: owner.1,
            size: stats.size,
            cksum: stats.cksum,
            link_target,
        })
    }
}

/// The sink a streamed tree writes into: its paths are below `root`, all owned by `owner`.
struct TreeWriter<'w, 'a> {
    writer: &'w mut PayloadWriter<'a>,
    root: &'w str,
    owner: (u32, u32),
}

impl TreeWriter<'_, '_> {
    /// Checks a tree's path and mode, then writes the entry at its full payload path.
    fn write(&mut self, path: &str, kind: PathKind, mode: u32, data: Data) -> Result<()> {
        ensure!(
            !path.is_empty()
                && path
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0')),
            "{path:?}: not a plain relative path"
        );
        ensure!(
            mode & !0o7777 == 0,
            "{path}: mode {mode:o} has bits outside 0o7777"
        );
        let full = if self.root.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.root)
        };
        self.writer
            .write(&full, kind, mode, self.owner, data)
            .with_context(|| format!("payload entry {}", cpio_name(&full)))
    }
}

impl TreeSink for TreeWriter<'_, '_> {
    fn directory(&mut self, path: &str, mode: u32) -> Result<()> {
        self.write(path, PathKind::Directory, mode, Data::None)
    }

    fn file(&mut self, path: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()> {
        self.write(path, PathKind::File, mode, Data::Reader(size, data))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        ensure!(
            !target.is_empty() && !target.contains('\0'),
            "{path}: symlink target must be non-empty, without NUL"
        );
        self.write(
            path,
            PathKind::Symlink,
            SYMLINK_MODE,
            Data::Bytes(target.as_bytes()),
        )
    }
}

fn write_data(out: &mut impl Write, header: OdcHeader, data: &[u8]) -> Result<PathStats> {
    write_header(out, &header)?;
    out.write_all(data)?;
    let mut cksum = Cksum::new();
    cksum.update(data);
    Ok(PathStats {
        size: data.len() as u64,
        cksum: cksum.finish(),
    })
}

/// Copy `from` to `to` through `buffer`, counting and cksumming the bytes.
fn copy_counting(from: &mut impl Read, to: &mut impl Write, buffer: &mut [u8]) -> io::Result<PathStats> {
    let mut cksum = Cksum::new();
    let mut size = 0u64;
    loop {
        let read = match from.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        cksum.update(&buffer[..read]);
        to.write_all(&buffer[..read])?;
        size += read as u64;
    }
    Ok(PathStats {
        size,
        cksum: cksum.finish(),
    })
}

/// Write the `Scripts` archive: "." and one `./name` per script, all owned by root.
pub(crate) fn write_scripts(scripts: &[Script], mtime: u64, out: &mut dyn Write) -> Result<()> {
    let mut sorted: Vec<&Script> = scripts.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut gzip = GzipWriter::new(out)?;
    let root = OdcHeader {
        name: ".".into(),
        ino: 1,
        mode: S_IFDIR | 0o755,
        uid: 0,
        gid: 0,
        nlink: 2,
        mtime,
        file_size: 0,
    };
    write_header(&mut gzip, &root)?;
    let mut previous: Option<&str> = None;
    for (ino, script) in (2..).zip(sorted) {
        let name = &script.name;
        ensure!(
            !name.is_empty() && !name.contains(['/', '\0']) && name != "." && name != "..",
            "script name {name:?} must be a plain file name"
        );
        ensure!(previous != Some(name), "script {name} appears twice");
        ensure!(
            script.mode & !0o7777 == 0,
            "script {name}: mode {:o} has bits outside 0o7777",
            script.mode
        );
        previous = Some(name);
        let header = OdcHeader {
            name: format!("./{name}"),
            ino,
            mode: S_IFREG | script.mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime,
            file_size: script.contents.len() as u64,
        };
        write_data(&mut gzip, header, &script.contents)?;
    }
    write_trailer(&mut gzip)?;
    gzip.finish()?;
    Ok(())
}

/// One entry read back from an odc archive, its data already consumed.
#[derive(Debug)]
pub(crate) struct OdcEntry {
    pub(crate) header: OdcHeader,
    pub(crate) data: PathStats,
    /// The data as text when the entry is a symlink (its target).
    pub(crate) link_target: Option<String>,
}

/// Reads odc entries one at a time from an uncompressed cpio stream (wrap gzip data in a decoder first).
/// Names and symlink targets are bounded by macOS's `PATH_MAX`, and their number and total size by
/// [`crate::limits`], because callers keep them.
pub(crate) struct OdcReader<R> {
    inner: R,
    done: bool,
    entries: usize,
    listing_bytes: u64,
    /// Reused for every entry's data: archives hold up to a million entries.
    buffer: Vec<u8>,
}

impl<R: Read> OdcReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            done: false,
            entries: 0,
            listing_bytes: 0,
            buffer: Vec::new(),
        }
    }

    /// The next entry, or `None` after `TRAILER!!!`.
    pub(crate) fn next_entry(&mut self) -> Result<Option<OdcEntry>> {
        if self.done {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_LEN];
        self.inner
            .read_exact(&mut raw)
            .context("cpio archive ends inside a header (no TRAILER!!!)")?;
        ensure!(
            &raw[..6] == MAGIC,
            "not an odc cpio header (magic {:?})",
            String::from_utf8_lossy(&raw[..6])
        );
        let field = |start: usize, len: usize| parse_octal(&raw[start..start + len]);
        let name_size = field(59, 6)?;
        ensure!(name_size >= 1, "cpio name size is 0");
        ensure!(
            name_size <= MAX_PATH_BYTES as u64 + 1,
            "cpio name of {name_size} bytes exceeds the limit of {MAX_PATH_BYTES}"
        );
        let mut name = vec![0u8; name_size as usize];
        self.inner
            .read_exact(&mut name)
            .context("cpio archive ends inside a name")?;
        ensure!(name.pop() == Some(0), "cpio name is not NUL-terminated");
        let name = String::from_utf8(name).context("cpio name is not UTF-8")?;
        ensure!(
            name.split('/').all(|component| component.len() <= MAX_NAME_BYTES),
            "cpio name has a component longer than the limit of {MAX_NAME_BYTES} bytes"
        );
        let header = OdcHeader {
            ino: field(12, 6)?,
            mode: u32::try_from(field(18, 6)?)?,
            uid: u32::try_from(field(24, 6)?)?,
            gid: u32::try_from(field(30, 6)?)?,
            nlink: u32::try_from(field(36, 6)?)?,
            mtime: field(48, 11)?,
            file_size: field(65, 11)?,
            name,
        };
        if header.name == TRAILER {
            self.done = true;
            return Ok(None);
        }
        self.entries += 1;
        ensure!(
            self.entries <= MAX_PATHS,
            "cpio archive has more than {MAX_PATHS} entries (limit)"
        );
        let (data, link_target) = self.read_data(&header)?;
        self.listing_bytes += (header.name.len() + link_target.as_ref().map_or(0, String::len)) as u64;
        ensure!(
            self.listing_bytes <= MAX_LISTING_BYTES,
            "cpio names and link targets exceed the limit of {MAX_LISTING_BYTES} bytes in total"
        );
        Ok(Some(OdcEntry {
            header,
            data,
            link_target,
        }))
    }

    fn read_data(&mut self, header: &OdcHeader) -> Result<(PathStats, Option<String>)> {
        let mut data = (&mut self.inner).take(header.file_size);
        if header.mode & 0o170_000 == super::S_IFLNK {
            ensure!(
                header.file_size <= MAX_PATH_BYTES as u64,
                "{}: symlink target of {} bytes exceeds the limit of {MAX_PATH_BYTES}",
                header.name,
                header.file_size
            );
            let mut target = Vec::new();
            data.read_to_end(&mut target)?;
            ensure!(
                target.len() as u64 == header.file_size,
                "{}: cpio archive ends inside the data",
                header.name
            );
            let mut cksum = Cksum::new();
            cksum.update(&target);
            let stats = PathStats {
                size: target.len() as u64,
                cksum: cksum.finish(),
            };
            return Ok((stats, Some(String::from_utf8_lossy(&target).into_owned())));
        }
        self.buffer.resize(CHUNK, 0);
        let stats = copy_counting(&mut data, &mut io::sink(), &mut self.buffer)?;
        ensure!(
            stats.size == header.file_size,
            "{}: cpio archive ends inside the data",
            header.name
        );
        Ok((stats, None))
    }
}

fn parse_octal(field: &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for &digit in field {
        if !(b'0'..=b'7').contains(&digit) {
            bail!(
                "cpio header field {:?} is not octal",
                String::from_utf8_lossy(field)
            );
        }
        value = value * 8 + u64::from(digit - b'0');
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    #[test]
    fn header_layout_matches_odc() -> Result<()> {
        let mut out = Vec::new();
        let header = OdcHeader {
            name: "./a".into(),
            ino: 3,
            mode: 0o100644,
            uid: 0,
            gid: 80,
            nlink: 1,
            mtime: 8,
            file_size: 5,
        };
        write_header(&mut out, &header)?;
        let expected = concat!(
            "070707",
            "000000",
            "000003",
            "100644",
            "000000",
            "000120",
            "000001",
            "000000",
            "00000000010",
            "000004",
            "00000000005",
            "./a\0"
        );
        assert_eq!(out, expected.as_bytes());
        Ok(())
    }

    #[test]
    fn payload_round_trips_through_the_reader() -> Result<()> {
        let mut payload = Payload::new();
        payload.add_file("/etc/x", b"hello".to_vec(), 0o600, 0, 0)?;
        payload.add_symlink("/etc/y", "x", 0, 0)?;
        let mut gz = Vec::new();
        let listing = write_payload(&payload, 1_700_000_000, &mut gz)?;
        let mut stats = Vec::new();
        listing.breadth_first(|_, _, record| {
            stats.push(PathStats {
                size: record.size,
                cksum: record.cksum,
            });
            Ok(())
        })?;
        let mut reader = OdcReader::new(GzDecoder::new(gz.as_slice()));
        let mut names = Vec::new();
        while let Some(entry) = reader.next_entry()? {
            names.push((
                entry.header.name,
                entry.header.mode,
                entry.data,
                entry.link_target,
            ));
        }
        assert_eq!(names.len(), stats.len());
        assert_eq!(names[0].0, ".");
        assert_eq!(names[2], ("./etc/x".into(), 0o100600, stats[2], None));
        assert_eq!(names[3], ("./etc/y".into(), 0o120755, stats[3], Some("x".into())));
        Ok(())
    }

    #[test]
    fn names_and_paths_past_what_macos_accepts_are_refused() {
        assert!(check_name_lengths(&"n".repeat(MAX_NAME_BYTES)).is_ok());
        let err = check_name_lengths(&format!("usr/{}", "n".repeat(256))).expect_err("long name");
        assert!(format!("{err}").contains("a name of 256 bytes"), "{err}");
        let deep = vec!["d".repeat(200); 5].join("/");
        assert!(check_name_lengths(&deep).is_ok(), "1006 bytes as ./…");
        let err = check_name_lengths(&format!("{deep}/{}", "f".repeat(30))).expect_err("long path");
        assert!(format!("{err}").contains("a path of 1037 bytes"), "{err}");
        let mut payload = Payload::new();
        payload
            .add_file(
                &format!("/{}/{}", "d".repeat(255), "f".repeat(256)),
                Vec::new(),
                0o644,
                0,
                0,
            )
            .expect("added");
        assert!(write_payload(&payload, 0, &mut Vec::new()).is_err());
    }

    #[test]
    fn truncated_archive_is_an_error() -> Result<()> {
        let mut out = Vec::new();
        write_header(
            &mut out,
            &OdcHeader {
                name: "./a".into(),
                ino: 1,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                nlink: 1,
                mtime: 0,
                file_size: 9,
            },
        )?;
        out.extend_from_slice(b"abc");
        assert!(OdcReader::new(out.as_slice()).next_entry().is_err());
        assert!(OdcReader::new(&b"garbage"[..]).next_entry().is_err());
        Ok(())
    }
}
