//! A small, lenient XAR reader for `inspect` and `verify`: header, table of contents, heap data.
//!
//! It reads what our writer produces and what Apple's tools produced over the years (upper-case
//! `SHA1` styles, `signature-creation-time`, `FinderCreateTime`, …), and treats the file as untrusted:
//! every length and offset is checked against the file before use, documents and names against
//! [`crate::limits`], and every byte read or decoded from the heap is charged to a [`WorkBudget`]
//! proportional to the file's size, so decompression bombs and entries sharing heap data end early.
//!
//! Not supported: bzip2 and lzma file encodings, extended-attribute (`<ea>`) data.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail, ensure};
use flate2::read::{GzDecoder, ZlibDecoder};
use openssl::hash::{Hasher, MessageDigest};
use quick_xml::events::Event;

use super::cpio::OdcReader;
use super::xar::{HEADER_LEN, MAGIC};
use crate::limits::{
    MAX_NAME_BYTES, MAX_NESTING, MAX_PACKAGE_BYTES, MAX_PATH_BYTES, MAX_WORK_RATIO, MAX_XML_ATTRIBUTES,
    MAX_XML_BYTES, MAX_XML_ELEMENTS, MIN_WORK_BYTES, open_regular,
};

/// One XML element with its attributes, child elements and concatenated text.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    attributes: Vec<(String, String)>,
    pub(crate) children: Vec<Element>,
    text: String,
}

impl Element {
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    pub(crate) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |child| child.name == name)
    }

    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn text(&self) -> &str {
        self.text.trim()
    }

    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(Element::text)
    }
}

/// Parse an XML document into its root element. `what` names the document in errors.
pub(crate) fn parse_xml(bytes: &[u8], what: &str) -> Result<Element> {
    parse_elements(bytes).with_context(|| format!("{what} is not well-formed XML"))
}

fn parse_elements(bytes: &[u8]) -> Result<Element> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buffer = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut elements = 0;
    loop {
        let event = reader.read_event_into(&mut buffer)?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            ensure!(
                elements <= MAX_XML_ELEMENTS,
                "more than {MAX_XML_ELEMENTS} elements (limit)"
            );
        }
        match event {
            Event::Start(start) => {
                ensure!(
                    stack.len() < MAX_NESTING,
                    "elements nested deeper than {MAX_NESTING} (limit)"
                );
                stack.push(element(&start)?);
            }
            Event::Empty(start) => attach(&mut stack, &mut root, element(&start)?)?,
            Event::End(_) => {
                let done = stack.pop().context("unbalanced end tag")?;
                attach(&mut stack, &mut root, done)?;
            }
            Event::Text(text) => push_text(&mut stack, &text.xml10_content()),
            Event::CData(data) => push_text(&mut stack, &data.into_inner()),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref()? {
                    Some(c) => c,
                    None => named_entity(&reference)?,
                };
                push_text(&mut stack, resolved.encode_utf8(&mut [0; 4]));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
        buffer.clear();
    }
    ensure!(
        stack.is_empty(),
        "document ends inside <{}>",
        stack.last().map_or("", |e| e.name.as_str())
    );
    root.context("document has no root element")
}

fn element(start: &quick_xml::events::BytesStart) -> Result<Element> {
    let name = start.name().as_ref().to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        // Checked before the parser's duplicate check, which is quadratic in the attribute count.
        ensure!(
            attributes.len() < MAX_XML_ATTRIBUTES,
            "<{name}> has more than {MAX_XML_ATTRIBUTES} attributes (limit)"
        );
        let attribute = attribute?;
        let value = attribute.normalized_value(quick_xml::XmlVersion::Explicit1_0)?;
        attributes.push((attribute.key.as_ref().to_owned(), value.into_owned()));
    }
    Ok(Element {
        name,
        attributes,
        ..Element::default()
    })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, done: Element) -> Result<()> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None => {
            ensure!(root.is_none(), "more than one root element");
            *root = Some(done);
        }
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

fn named_entity(name: &str) -> Result<char> {
    Ok(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        other => bail!("unknown entity &{other};"),
    })
}

/// The fixed-size XAR header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XarHeader {
    pub(crate) header_size: u16,
    pub(crate) toc_compressed_len: u64,
    pub(crate) toc_len: u64,
    pub(crate) cksum_alg: u32,
}

/// A XAR file opened for reading: its header and compressed TOC, with the heap left on disk.
pub(crate) struct RawXar {
    pub(crate) path: PathBuf,
    pub(crate) header: XarHeader,
    pub(crate) toc_compressed: Vec<u8>,
    pub(crate) heap_start: u64,
    /// The package, opened once: every heap reader reads this file, not whatever the path names later.
    file: Rc<File>,
    file_len: u64,
    budget: WorkBudget,
}

/// Reads `file` from `position` on, without moving the file's own offset, so that several readers of
/// one open file do not disturb each other.
pub(crate) struct ReadAt {
    file: Rc<File>,
    position: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

/// Bytes the readers of one package may still read and decode, shared by every reader of its heap: a
/// bomb or many TOC entries pointing at the same heap data use it up, whichever path they take.
#[derive(Clone)]
pub(crate) struct WorkBudget {
    remaining: Rc<Cell<u64>>,
    total: u64,
}

impl WorkBudget {
    /// [`MIN_WORK_BYTES`] plus [`MAX_WORK_RATIO`] bytes per byte of a `file_len`-byte package.
    fn for_file(file_len: u64) -> Self {
        let total = MIN_WORK_BYTES.saturating_add(file_len.saturating_mul(MAX_WORK_RATIO));
        Self {
            remaining: Rc::new(Cell::new(total)),
            total,
        }
    }

    fn charge(&self, bytes: usize) -> io::Result<()> {
        match self.remaining.get().checked_sub(bytes as u64) {
            Some(left) => {
                self.remaining.set(left);
                Ok(())
            }
            None => {
                self.remaining.set(0);
                Err(io::Error::other(format!(
                    "stopped after reading and decoding {} bytes, the limit for a package this size \
                     ({MAX_WORK_RATIO}× its size plus {} MiB): a decompression bomb, or entries \
                     sharing heap data?",
                    self.total,
                    MIN_WORK_BYTES >> 20
                )))
            }
        }
    }
}

/// A reader whose every byte is charged to a [`WorkBudget`].
pub(crate) struct Metered<R> {
    inner: R,
    budget: WorkBudget,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.budget.charge(read)?;
        Ok(read)
    }
}

/// The cpio archive in a gzip'd heap file (`Payload`, `Scripts`), decoded under the package's budget.
pub(crate) type CpioReader = OdcReader<Metered<GzDecoder<DataReader>>>;

/// Where something sits in the heap, and how it is checked (TOC checksum or a signature).
#[derive(Debug, Clone)]
pub(crate) struct HeapRef {
    pub(crate) style: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// DER certificates from `KeyInfo` (signatures only).
    pub(crate) certificates: Vec<Vec<u8>>,
}

/// The parts of the TOC that inspect and verify use.
#[derive(Debug)]
pub(crate) struct Toc {
    pub(crate) creation_time: Option<String>,
    pub(crate) checksum: Option<HeapRef>,
    pub(crate) signature_creation_time: Option<String>,
    pub(crate) signature: Option<HeapRef>,
    pub(crate) x_signature: Option<HeapRef>,
    /// Every entry, depth-first, with its full path ("dir/name").
    pub(crate) files: Vec<TocFile>,
    /// Index into `files` by path.
    by_path: HashMap<String, usize>,
}

#[derive(Debug)]
pub(crate) struct TocFile {
    pub(crate) path: String,
    pub(crate) kind: String,
    pub(crate) data: Option<TocData>,
}

#[derive(Debug, Clone)]
pub(crate) struct TocData {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) size: u64,
    pub(crate) encoding: String,
    pub(crate) archived: Option<(String, String)>,
    pub(crate) extracted: Option<(String, String)>,
}

impl Toc {
    pub(crate) fn file(&self, path: &str) -> Option<&TocFile> {
        self.by_path.get(path).map(|&index| &self.files[index])
    }

    /// Component packages: "" when the archive itself is one (PackageInfo at the root), else each
    /// top-level `*.pkg` directory, as apple-flat-package finds them.
    pub(crate) fn component_dirs(&self) -> Vec<&str> {
        if self.file("PackageInfo").is_some() {
            return vec![""];
        }
        self.files
            .iter()
            .filter(|file| {
                file.kind == "directory" && !file.path.contains('/') && file.path.ends_with(".pkg")
            })
            .map(|file| file.path.as_str())
            .collect()
    }
}

/// The digest algorithm for a xar checksum style; xar and Apple spell them in either case. MD5, which
/// libxar also knows, is refused: anyone can make two files with the same MD5.
pub(crate) fn digest_for(style: &str) -> Option<MessageDigest> {
    match style.to_ascii_lowercase().as_str() {
        "sha1" => Some(MessageDigest::sha1()),
        "sha256" => Some(MessageDigest::sha256()),
        "sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// Why [`digest_for`] has no digest for `style`.
pub(crate) fn refused_style(style: &str) -> String {
    if style.eq_ignore_ascii_case("md5") {
        "md5 is weaker than SHA-1 and is refused".to_owned()
    } else {
        format!("checksum style {style:?} is not sha1, sha256 or sha512")
    }
}

/// The checksum style named by the header's algorithm number (Apple's numbering).
pub(crate) fn header_style(cksum_alg: u32) -> Option<&'static str> {
    match cksum_alg {
        1 => Some("sha1"),
        2 => Some("md5"),
        3 => Some("sha256"),
        4 => Some("sha512"),
        _ => None,
    }
}

impl RawXar {
    /// Read the header and the compressed TOC. Fails on anything that is not a complete XAR header+TOC.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let (mut file, file_len) = open_regular(path, MAX_PACKAGE_BYTES)?;
        let mut raw = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut raw)
            .with_context(|| format!("{}: too short for a xar header", path.display()))?;
        let be64 = |at: usize| {
            u64::from_be_bytes([
                raw[at],
                raw[at + 1],
                raw[at + 2],
                raw[at + 3],
                raw[at + 4],
                raw[at + 5],
                raw[at + 6],
                raw[at + 7],
            ])
        };
        ensure!(
            u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) == MAGIC,
            "{}: not a xar archive (no \"xar!\" magic)",
            path.display()
        );
        let header = XarHeader {
            header_size: u16::from_be_bytes([raw[4], raw[5]]),
            toc_compressed_len: be64(8),
            toc_len: be64(16),
            cksum_alg: u32::from_be_bytes([raw[24], raw[25], raw[26], raw[27]]),
        };
        ensure!(
            header.header_size >= HEADER_LEN,
            "{}: xar header size {} is below 28",
            path.display(),
            header.header_size
        );
        ensure!(
            header.toc_compressed_len <= MAX_XML_BYTES && header.toc_len <= MAX_XML_BYTES,
            "{}: xar TOC sizes {}/{} exceed the limit of {MAX_XML_BYTES} bytes",
            path.display(),
            header.toc_compressed_len,
            header.toc_len
        );
        let toc_start = u64::from(header.header_size);
        let heap_start = toc_start + header.toc_compressed_len;
        ensure!(
            heap_start <= file_len,
            "{}: truncated inside the xar TOC ({file_len} bytes, TOC ends at {heap_start})",
            path.display()
        );
        file.seek(SeekFrom::Start(toc_start))?;
        let mut toc_compressed = vec![0; header.toc_compressed_len as usize];
        file.read_exact(&mut toc_compressed)
            .with_context(|| format!("{}: cannot read the xar TOC", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            header,
            toc_compressed,
            heap_start,
            file: Rc::new(file),
            file_len,
            budget: WorkBudget::for_file(file_len),
        })
    }

    /// Decompress and parse the TOC.
    pub(crate) fn decode_toc(&self) -> Result<Toc> {
        let mut xml = Vec::new();
        ZlibDecoder::new(self.toc_compressed.as_slice())
            .take(MAX_XML_BYTES + 1)
            .read_to_end(&mut xml)
            .with_context(|| format!("{}: the xar TOC is not a valid zlib stream", self.path.display()))?;
        ensure!(
            xml.len() as u64 == self.header.toc_len,
            "{}: the xar TOC is {} bytes, the header says {}",
            self.path.display(),
            xml.len(),
            self.header.toc_len
        );
        let root = parse_xml(&xml, &format!("{}: xar TOC", self.path.display()))?;
        parse_toc(&root).with_context(|| format!("{}: unexpected xar TOC", self.path.display()))
    }

    /// Read `size` raw heap bytes at `offset` (checksums, signatures).
    pub(crate) fn read_heap(&self, offset: u64, size: u64) -> Result<Vec<u8>> {
        let mut reader = self.heap_reader(offset, size)?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        ensure!(
            bytes.len() as u64 == size,
            "{}: heap range {offset}+{size} is truncated",
            self.path.display()
        );
        Ok(bytes)
    }

    fn heap_reader(&self, offset: u64, length: u64) -> Result<Metered<Take<BufReader<ReadAt>>>> {
        ensure!(
            length <= self.file_len,
            "{}: heap range {offset}+{length} is larger than the file",
            self.path.display()
        );
        let start = self
            .heap_start
            .checked_add(offset)
            .and_then(|s| s.checked_add(length).map(|end| (s, end)));
        match start {
            Some((start, end)) if end <= self.file_len => {
                let file = ReadAt {
                    file: Rc::clone(&self.file),
                    position: start,
                };
                Ok(self.metered(BufReader::with_capacity(256 * 1024, file).take(length)))
            }
            _ => bail!(
                "{}: heap range {offset}+{length} runs past the end of the file (truncated?)",
                self.path.display()
            ),
        }
    }

    /// A reader of a file's decoded contents that also hashes the archived and extracted bytes.
    pub(crate) fn data_reader(&self, data: &TocData) -> Result<DataReader> {
        let raw = DigestReader::new(
            self.heap_reader(data.offset, data.length)?,
            data.archived.as_ref(),
        )?;
        let decoded = match data.encoding.as_str() {
            "application/octet-stream" => Decoded::Stored(raw),
            "application/x-gzip" => Decoded::Zlib(Box::new(self.metered(ZlibDecoder::new(raw)))),
            other => bail!("encoding {other} is not supported"),
        };
        Ok(DataReader {
            // Never more than the TOC promised: a longer stream is wrong however it ends, and reading it
            // to the end would let a small file decode for as long as the budget lasts.
            inner: DigestReader::new(decoded.take(data.size.saturating_add(1)), data.extracted.as_ref())?,
        })
    }

    /// The cpio archive in the gzip'd heap file `data` (`Payload`, `Scripts`).
    pub(crate) fn cpio_reader(&self, data: &TocData) -> Result<CpioReader> {
        Ok(OdcReader::new(
            self.metered(GzDecoder::new(self.data_reader(data)?)),
        ))
    }

    fn metered<R: Read>(&self, inner: R) -> Metered<R> {
        Metered {
            inner,
            budget: self.budget.clone(),
        }
    }

    /// Read a small file (PackageInfo, Bom, …) whole, refusing one larger than `limit` bytes.
    pub(crate) fn read_file(&self, toc: &Toc, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(data) = toc.file(path).and_then(|file| file.data.as_ref()) else {
            return Ok(None);
        };
        let too_large = || format!("{path}: larger than the limit of {limit} bytes");
        ensure!(data.size <= limit, "{}; the TOC says {}", too_large(), data.size);
        let mut bytes = Vec::new();
        self.data_reader(data)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{}: cannot read {path}", self.path.display()))?;
        ensure!(bytes.len() as u64 <= limit, "{}", too_large());
        Ok(Some(bytes))
    }
}

fn parse_toc(root: &Element) -> Result<Toc> {
    ensure!(root.name == "xar", "root element is <{}>, not <xar>", root.name);
    let toc = root.child("toc").context("no <toc> element")?;
    let mut files = Vec::new();
    for file in toc.children_named("file") {
        collect_files(file, "", &mut files, 0)?;
    }
    let mut by_path = HashMap::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        ensure!(
            by_path.insert(file.path.clone(), index).is_none(),
            "{} is listed twice",
            file.path
        );
    }
    Ok(Toc {
        creation_time: toc.child_text("creation-time").map(str::to_owned),
        checksum: toc.child("checksum").map(heap_ref).transpose()?,
        signature_creation_time: toc.child_text("signature-creation-time").map(str::to_owned),
        signature: toc.child("signature").map(heap_ref).transpose()?,
        x_signature: toc.child("x-signature").map(heap_ref).transpose()?,
        files,
        by_path,
    })
}

fn heap_ref(element: &Element) -> Result<HeapRef> {
    let number = |name: &str| -> Result<u64> {
        let text = element
            .child_text(name)
            .with_context(|| format!("<{}> has no <{name}>", element.name))?;
        text.parse()
            .with_context(|| format!("<{}><{name}> {text:?} is not a number", element.name))
    };
    let mut certificates = Vec::new();
    if let Some(data) = element
        .child("KeyInfo")
        .and_then(|key_info| key_info.child("X509Data"))
    {
        for certificate in data.children_named("X509Certificate") {
            // Apple wraps the base64 at 76 columns; openssl's decoder wants it unbroken.
            let base64: String = certificate.text().split_whitespace().collect();
            certificates
                .push(openssl::base64::decode_block(&base64).context("X509Certificate is not base64")?);
        }
    }
    Ok(HeapRef {
        style: element.attribute("style").unwrap_or_default().to_owned(),
        offset: number("offset")?,
        size: number("size")?,
        certificates,
    })
}

fn collect_files(element: &Element, parent: &str, files: &mut Vec<TocFile>, depth: usize) -> Result<()> {
    ensure!(depth < MAX_NESTING, "file entries nested too deeply");
    let name = element.child_text("name").context("a <file> has no <name>")?;
    ensure!(
        !name.is_empty() && !name.contains('/') && name != "..",
        "bad file name {name:?}"
    );
    ensure!(
        name.len() <= MAX_NAME_BYTES,
        "a file name of {} bytes exceeds the limit of {MAX_NAME_BYTES}",
        name.len()
    );
    let path = if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    };
    ensure!(
        path.len() <= MAX_PATH_BYTES,
        "a path of {} bytes exceeds the limit of {MAX_PATH_BYTES}",
        path.len()
    );
    let data = element
        .child("data")
        .map(|data| file_data(data).with_context(|| format!("{path}: bad <data>")))
        .transpose()?;
    files.push(TocFile {
        path: path.clone(),
        kind: element.child_text("type").unwrap_or("file").to_owned(),
        data,
    });
    for child in element.children_named("file") {
        collect_files(child, &path, files, depth + 1)?;
    }
    Ok(())
}

fn file_data(data: &Element) -> Result<TocData> {
    let number = |name: &str| -> Result<u64> {
        let text = data.child_text(name).with_context(|| format!("no <{name}>"))?;
        text.parse()
            .with_context(|| format!("<{name}> {text:?} is not a number"))
    };
    let checksum = |name: &str| {
        data.child(name).map(|element| {
            (
                element.attribute("style").unwrap_or_default().to_owned(),
                element.text().to_owned(),
            )
        })
    };
    Ok(TocData {
        offset: number("offset")?,
        length: number("length")?,
        size: number("size")?,
        encoding: data
            .child("encoding")
            .and_then(|e| e.attribute("style"))
            .unwrap_or("application/octet-stream")
            .to_owned(),
        archived: checksum("archived-checksum"),
        extracted: checksum("extracted-checksum"),
    })
}

/// Counts and (when the style is known) hashes what is read through it.
pub(crate) struct DigestReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    count: u64,
}

impl<R: Read> DigestReader<R> {
    fn new(inner: R, checksum: Option<&(String, String)>) -> Result<Self> {
        let hasher = checksum
            .and_then(|(style, _)| digest_for(style))
            .map(Hasher::new)
            .transpose()?;
        Ok(Self {
            inner,
            hasher,
            count: 0,
        })
    }

    fn finish(&mut self) -> Result<(Option<Vec<u8>>, u64)> {
        let digest = self
            .hasher
            .as_mut()
            .map(|hasher| hasher.finish().map(|d| d.to_vec()))
            .transpose()?;
        Ok((digest, self.count))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..read]).map_err(io::Error::other)?;
        }
        self.count += read as u64;
        Ok(read)
    }
}

type HeapReader = DigestReader<Metered<Take<BufReader<ReadAt>>>>;

pub(crate) enum Decoded {
    Stored(HeapReader),
    Zlib(Box<Metered<ZlibDecoder<HeapReader>>>),
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Stored(reader) => reader.read(buf),
            Self::Zlib(reader) => reader.read(buf),
        }
    }
}

/// Digests and byte counts of one file's archived (heap) and extracted (decoded) bytes.
#[derive(Debug)]
pub(crate) struct DataDigests {
    pub(crate) archived: Option<Vec<u8>>,
    pub(crate) archived_len: u64,
    pub(crate) extracted: Option<Vec<u8>>,
    pub(crate) extracted_len: u64,
}

/// Decoded file contents, at most one byte more than the TOC's `<size>`; [`DataReader::finish`] reads
/// whatever is left and returns the digests.
pub(crate) struct DataReader {
    inner: DigestReader<Take<Decoded>>,
}

impl DataReader {
    pub(crate) fn finish(mut self) -> Result<DataDigests> {
        io::copy(&mut self.inner, &mut io::sink())?;
        let (extracted, extracted_len) = self.inner.finish()?;
        let raw = match self.inner.inner.get_mut() {
            Decoded::Stored(raw) => raw,
            Decoded::Zlib(decoder) => decoder.inner.get_mut(),
        };
        // A zlib stream may end before the heap range does; the archived checksum covers the range.
        io::copy(raw, &mut io::sink())?;
        let (archived, archived_len) = raw.finish()?;
        Ok(DataDigests {
            archived,
            archived_len,
            extracted,
            extracted_len,
        })
    }
}

impl Read for DataReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_entities_attributes_and_nesting() -> Result<()> {
        let root = parse_xml(
            br#"<?xml version="1.0"?><a x="1&amp;2"><b>t&lt;&#65;</b><c/><b>u</b></a>"#,
            "test",
        )?;
        assert_eq!(root.attribute("x"), Some("1&2"));
        assert_eq!(root.child_text("b"), Some("t<A"));
        assert_eq!(root.children_named("b").count(), 2);
        assert!(root.child("c").is_some());
        Ok(())
    }

    #[test]
    fn malformed_xml_is_an_error() {
        for bad in [&b"<a><b></a>"[..], b"<a>", b"", b"<a/><b/>", b"<a>&bogus;</a>"] {
            assert!(
                parse_xml(bad, "test").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
