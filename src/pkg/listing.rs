//! The Payload's path list, kept on disk: every path the cpio writer streams is recorded here (mode,
//! owner, size, cksum), and the BOM is written from it afterwards in its breadth-first order. Records
//! are gathered in a bounded buffer, sorted, and spilled to a temporary file in sorted runs; the runs
//! are merged into one sorted file. Memory stays flat however many files a payload holds.
//!
//! The sort key is (depth, path compared component by component), which is exactly mkbom's
//! breadth-first order with siblings by name: at each depth, parents were themselves ordered by path,
//! so their children come out grouped by parent, each group by name.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result, bail, ensure};

/// Serialized records buffered before a sorted run is spilled.
const RUN_BYTES: usize = 4 << 20;
const READ_BUFFER: usize = 64 * 1024;

/// What a path is, as the BOM records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    Directory,
    File,
    Symlink,
}

/// One payload path and what the BOM says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Below the install location, `""` for the root, `a/b` below it.
    pub(crate) path: String,
    pub(crate) kind: PathKind,
    pub(crate) st_mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) cksum: u32,
    /// The target of a symlink.
    pub(crate) link_target: Option<String>,
}

impl Record {
    /// The last component; `.` for the root (the BOM's name of the install location).
    pub(crate) fn name(&self) -> &str {
        match self.path.rsplit_once('/') {
            Some((_, name)) => name,
            None if self.path.is_empty() => ".",
            None => &self.path,
        }
    }
}

/// Sort key: depth (big-endian u16), then the path with `/` as NUL, so that byte order is
/// component order ("a/c" before "a-b", as `a` sorts before `a-b`).
fn key(path: &str) -> Result<Vec<u8>> {
    let depth = if path.is_empty() {
        0
    } else {
        path.split('/').count()
    };
    let depth = u16::try_from(depth).context("a payload path is nested too deep")?;
    let mut key = Vec::with_capacity(2 + path.len());
    key.extend_from_slice(&depth.to_be_bytes());
    key.extend(path.bytes().map(|b| if b == b'/' { 0 } else { b }));
    Ok(key)
}

/// `[u32 length][u16 key length][key][kind][st_mode][uid][gid][size u64][cksum][link target]`, little
/// endian.
fn encode(record: &Record, out: &mut Vec<u8>) -> Result<()> {
    let key = key(&record.path)?;
    let target = record.link_target.as_deref().unwrap_or_default().as_bytes();
    let length = 2 + key.len() + 1 + 4 * 3 + 8 + 4 + target.len();
    out.extend_from_slice(&u32::try_from(length)?.to_le_bytes());
    out.extend_from_slice(&u16::try_from(key.len())?.to_le_bytes());
    out.extend_from_slice(&key);
    out.push(match record.kind {
        PathKind::Directory => 0,
        PathKind::File => 1,
        PathKind::Symlink => 2,
    });
    for value in [record.st_mode, record.uid, record.gid] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&record.size.to_le_bytes());
    out.extend_from_slice(&record.cksum.to_le_bytes());
    out.extend_from_slice(target);
    Ok(())
}

/// The key of an encoded record (without its length prefix).
fn key_of(body: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_le_bytes([body[0], body[1]]));
    &body[2..2 + len]
}

fn decode(body: &[u8]) -> Result<Record> {
    let key = key_of(body);
    let mut at = 2 + key.len();
    let mut take = |n: usize| -> Result<&[u8]> {
        let bytes = body
            .get(at..at + n)
            .context("payload listing: truncated record")?;
        at += n;
        Ok(bytes)
    };
    let kind = match take(1)?[0] {
        0 => PathKind::Directory,
        1 => PathKind::File,
        2 => PathKind::Symlink,
        other => bail!("payload listing: unknown kind {other}"),
    };
    let mut u32_field = || -> Result<u32> { Ok(u32::from_le_bytes(take(4)?.try_into()?)) };
    let (st_mode, uid, gid) = (u32_field()?, u32_field()?, u32_field()?);
    let size = u64::from_le_bytes(take(8)?.try_into()?);
    let cksum = u32::from_le_bytes(take(4)?.try_into()?);
    let target = &body[at..];
    let path: Vec<u8> = key[2..].iter().map(|&b| if b == 0 { b'/' } else { b }).collect();
    Ok(Record {
        path: String::from_utf8(path).context("payload listing: path is not UTF-8")?,
        kind,
        st_mode,
        uid,
        gid,
        size,
        cksum,
        link_target: (kind == PathKind::Symlink)
            .then(|| String::from_utf8(target.to_vec()))
            .transpose()
            .context("payload listing: link target is not UTF-8")?,
    })
}

/// Gathers records in any order; [`ListingWriter::finish`] sorts them.
pub(crate) struct ListingWriter {
    buffer: Vec<u8>,
    /// (start, length) of each record body in `buffer`.
    records: Vec<(usize, usize)>,
    runs_file: Option<BufWriter<File>>,
    /// Byte ranges of the sorted runs in `runs_file`.
    runs: Vec<(u64, u64)>,
    spilled: u64,
    count: u64,
    install_kbytes: u64,
}

impl ListingWriter {
    pub(crate) fn new() -> Self {
        Self {
            buffer: Vec::new(),
            records: Vec::new(),
            runs_file: None,
            runs: Vec::new(),
            spilled: 0,
            count: 0,
            install_kbytes: 0,
        }
    }

    pub(crate) fn push(&mut self, record: &Record) -> Result<()> {
        if record.kind != PathKind::Directory {
            // The installed size: files and link targets in whole 4 KiB blocks.
            self.install_kbytes += record.size.div_ceil(4096) * 4;
        }
        self.count += 1;
        let start = self.buffer.len();
        encode(record, &mut self.buffer)?;
        self.records.push((start + 4, self.buffer.len() - start - 4));
        if self.buffer.len() >= RUN_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    fn sort(&mut self) {
        let buffer = &self.buffer;
        self.records
            .sort_unstable_by(|a, b| key_of(&buffer[a.0..a.0 + a.1]).cmp(key_of(&buffer[b.0..b.0 + b.1])));
    }

    /// Writes the buffered records, sorted, as one run.
    fn spill(&mut self) -> Result<()> {
        self.sort();
        let file = match &mut self.runs_file {
            Some(file) => file,
            None => self.runs_file.insert(BufWriter::new(
                tempfile::tempfile().context("cannot create a temporary file for the payload listing")?,
            )),
        };
        let start = self.spilled;
        for &(at, len) in &self.records {
            file.write_all(&self.buffer[at - 4..at + len])?;
            self.spilled += 4 + len as u64;
        }
        self.runs.push((start, self.spilled));
        self.buffer.clear();
        self.records.clear();
        Ok(())
    }

    /// Sorts everything into one file, ready to be read in breadth-first order.
    pub(crate) fn finish(mut self) -> Result<Listing> {
        if !self.records.is_empty() {
            self.spill()?;
        }
        self.buffer = Vec::new();
        self.records = Vec::new();
        let runs_file = match self.runs_file.take() {
            Some(writer) => writer.into_inner().map_err(io::IntoInnerError::into_error)?,
            None => tempfile::tempfile()?,
        };
        let sorted = if self.runs.len() == 1 {
            runs_file
        } else {
            merge(&runs_file, &self.runs)?
        };
        Ok(Listing {
            sorted,
            count: self.count,
            install_kbytes: self.install_kbytes,
        })
    }
}

/// A reader at a position of a file shared with other readers.
struct At<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Length-prefixed record bodies, one at a time.
struct Bodies<'a> {
    reader: BufReader<At<'a>>,
}

impl<'a> Bodies<'a> {
    fn new(file: &'a File, start: u64, end: u64) -> Self {
        Self {
            reader: BufReader::with_capacity(
                READ_BUFFER,
                At {
                    file,
                    position: start,
                    end,
                },
            ),
        }
    }

    fn next_body(&mut self, body: &mut Vec<u8>) -> Result<bool> {
        let mut length = [0; 4];
        match self.reader.read_exact(&mut length) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        body.resize(u32::from_le_bytes(length) as usize, 0);
        self.reader
            .read_exact(body)
            .context("payload listing: truncated record")?;
        Ok(true)
    }
}

/// The head of one run in the merge: ordered by key, then by run so that equal keys stay stable.
struct Head {
    body: Vec<u8>,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// Reversed: `BinaryHeap` pops the greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        (key_of(&other.body), other.run).cmp(&(key_of(&self.body), self.run))
    }
}

fn merge(file: &File, runs: &[(u64, u64)]) -> Result<File> {
    let mut readers: Vec<Bodies> = runs
        .iter()
        .map(|&(start, end)| Bodies::new(file, start, end))
        .collect();
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (run, reader) in readers.iter_mut().enumerate() {
        let mut body = Vec::new();
        if reader.next_body(&mut body)? {
            heap.push(Head { body, run });
        }
    }
    let mut out = BufWriter::new(tempfile::tempfile()?);
    while let Some(mut head) = heap.pop() {
        out.write_all(&(head.body.len() as u32).to_le_bytes())?;
        out.write_all(&head.body)?;
        if readers[head.run].next_body(&mut head.body)? {
            heap.push(head);
        }
    }
    Ok(out.into_inner().map_err(io::IntoInnerError::into_error)?)
}

/// The sorted path list of a written Payload.
pub(crate) struct Listing {
    sorted: File,
    count: u64,
    install_kbytes: u64,
}

impl Listing {
    /// Every path, the root included.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Estimated installed size: files and link targets rounded up to 4 KiB blocks.
    pub(crate) fn install_kbytes(&self) -> u64 {
        self.install_kbytes
    }

    /// Calls `each(id, parent id, record)` in breadth-first order (ids from 1, the root's parent 0).
    /// A path listed twice, or whose parent is missing or no directory, is an error.
    pub(crate) fn breadth_first(&self, mut each: impl FnMut(u32, u32, &Record) -> Result<()>) -> Result<()> {
        let end = self.sorted.metadata()?.len();
        let mut paths = Bodies::new(&self.sorted, 0, end);
        // Parents come in the same order as their children, so one cursor that only moves forward
        // finds them all.
        let mut parents = Bodies::new(&self.sorted, 0, end);
        let mut parent = (0u32, Vec::new(), PathKind::Directory);
        let mut previous = Vec::new();
        let mut body = Vec::new();
        let mut id = 0u32;
        while paths.next_body(&mut body)? {
            id = id.checked_add(1).context("payload listing: too many paths")?;
            let record = decode(&body)?;
            ensure!(
                id == 1 || key_of(&body) != previous.as_slice(),
                "/{} is in the payload twice",
                record.path
            );
            previous.clear();
            previous.extend_from_slice(key_of(&body));
            let parent_id = if id == 1 {
                ensure!(record.path.is_empty(), "the payload has no root");
                0
            } else {
                let wanted = key(record.path.rsplit_once('/').map_or("", |(parent, _)| parent))?;
                let mut scratch = Vec::new();
                while parent.1 < wanted {
                    ensure!(
                        parents.next_body(&mut scratch)?,
                        "/{}: its parent is not in the payload",
                        record.path
                    );
                    parent = (parent.0 + 1, key_of(&scratch).to_vec(), decode(&scratch)?.kind);
                }
                ensure!(
                    parent.1 == wanted && parent.2 == PathKind::Directory,
                    "/{}: its parent is not a directory in the payload",
                    record.path
                );
                parent.0
            };
            each(id, parent_id, &record)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, kind: PathKind) -> Record {
        Record {
            path: path.to_owned(),
            kind,
            st_mode: 0o40755,
            uid: 0,
            gid: 80,
            size: 3,
            cksum: 7,
            link_target: (kind == PathKind::Symlink).then(|| "t".to_owned()),
        }
    }

    fn order(paths: &[(&str, PathKind)]) -> Result<Vec<(u32, u32, String)>> {
        let mut writer = ListingWriter::new();
        for &(path, kind) in paths {
            writer.push(&record(path, kind))?;
        }
        let listing = writer.finish()?;
        let mut seen = Vec::new();
        listing.breadth_first(|id, parent, r| {
            assert_eq!(r, &record(&r.path, r.kind), "round trip");
            seen.push((id, parent, r.path.clone()));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn breadth_first_with_siblings_by_component() -> Result<()> {
        use PathKind::*;
        let seen = order(&[
            ("a/c", Directory),
            ("", Directory),
            ("a-b", File),
            ("a", Directory),
            ("a/c/x", Symlink),
            ("b", File),
        ])?;
        let expected = [
            (1, 0, ""),
            (2, 1, "a"),
            (3, 1, "a-b"),
            (4, 1, "b"),
            (5, 2, "a/c"),
            (6, 5, "a/c/x"),
        ];
        let expected: Vec<_> = expected.iter().map(|&(i, p, s)| (i, p, s.to_owned())).collect();
        assert_eq!(seen, expected);
        Ok(())
    }

    #[test]
    fn missing_parents_and_duplicates_are_errors() {
        use PathKind::*;
        assert!(order(&[("", Directory), ("a/b", File)]).is_err());
        assert!(order(&[("", Directory), ("a", File), ("a/b", File)]).is_err());
        assert!(order(&[("", Directory), ("a", File), ("a", File)]).is_err());
        assert!(order(&[("a", Directory)]).is_err());
    }

    #[test]
    fn spilled_runs_merge_into_one_order() -> Result<()> {
        let mut writer = ListingWriter::new();
        writer.push(&record("", PathKind::Directory))?;
        // Long names make several runs.
        let long = "n".repeat(200);
        let count = 3 * RUN_BYTES / 200;
        for i in (0..count).rev() {
            writer.push(&record(&format!("{long}{i:06}"), PathKind::File))?;
        }
        assert!(writer.runs.len() >= 2, "{} runs", writer.runs.len());
        let listing = writer.finish()?;
        assert_eq!(listing.len(), count as u64 + 1);
        let mut last = String::new();
        listing.breadth_first(|id, parent, r| {
            assert!(id == 1 || (parent == 1 && r.path > last), "{id} {}", r.path);
            last.clone_from(&r.path);
            Ok(())
        })?;
        Ok(())
    }
}
