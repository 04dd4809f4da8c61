//! XAR archive writer: the container of a flat package.
//!
//! Layout (Apple's libxar, apple-oss-distributions/xar `include/xar.h.in`, `lib/archive.c`): a 28-byte
//! big-endian header, the zlib-compressed XML table of contents (TOC), then the heap. The heap starts
//! with the sha1 of the compressed TOC (offset 0), then, when signed, the RSA signature and the
//! reserved CMS signature (`shared/reference/pkg.md` §1, §4.1), then the file data. Every file
//! records its heap offset, archived/extracted lengths and lower-case sha1 checksums, which libxar
//! compares with `strcmp`.
//!
//! File data is spooled to a temporary heap file as it is produced, so the TOC (which must precede the
//! heap) can be written last with the final offsets; the result is header + TOC + heap copy.
//!
//! Not supported: extended attributes, hard links, bzip2/lzma encodings, checksum algorithms other
//! than sha1, `signature-creation-time` (never written: apple-xar rejects it, modern productsign omits it).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, ensure};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use openssl::hash::{Hasher, MessageDigest};

use crate::sign::TocSigner;

pub(crate) const MAGIC: u32 = 0x7861_7221;
pub(crate) const HEADER_LEN: u16 = 28;
/// Apple's numbering of the header's checksum algorithm (`XAR_CKSUM_SHA1`).
pub(crate) const CKSUM_SHA1: u32 = 1;
const SHA1_LEN: u64 = 20;

/// How a file's bytes are stored in the heap.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoding {
    /// `application/octet-stream`: stored as is. Payload and Scripts must be stored (already gzip'd).
    Stored,
    /// `application/x-gzip`, which in xar means a zlib (RFC 1950) stream, not gzip.
    Zlib,
}

impl Encoding {
    fn style(self) -> &'static str {
        match self {
            Self::Stored => "application/octet-stream",
            Self::Zlib => "application/x-gzip",
        }
    }
}

#[derive(Debug)]
struct HeapData {
    /// Relative to the first file byte; shifted past the checksum and signatures when the TOC is written.
    offset: u64,
    length: u64,
    size: u64,
    encoding: Encoding,
    archived_sha1: Vec<u8>,
    extracted_sha1: Vec<u8>,
}

#[derive(Debug)]
enum Node {
    Directory { name: String, children: Vec<Node> },
    File { name: String, data: HeapData },
}

impl Node {
    fn name(&self) -> &str {
        match self {
            Self::Directory { name, .. } | Self::File { name, .. } => name,
        }
    }
}

/// Builds a XAR: add directories and files, then [`XarBuilder::finish`].
pub(crate) struct XarBuilder {
    heap: File,
    heap_len: u64,
    root: Vec<Node>,
}

/// Counts and sha1-hashes what passes through, for the TOC's length and checksums.
struct DigestWriter<W> {
    inner: W,
    sha1: Hasher,
    count: u64,
}

impl<W: Write> DigestWriter<W> {
    fn new(inner: W) -> Result<Self> {
        Ok(Self {
            inner,
            sha1: Hasher::new(MessageDigest::sha1())?,
            count: 0,
        })
    }

    /// The writer (not flushed: a flush would end a zlib block), the sha1 and the count.
    fn finish(mut self) -> Result<(W, Vec<u8>, u64)> {
        let digest = self.sha1.finish()?.to_vec();
        Ok((self.inner, digest, self.count))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.sha1.update(&buf[..written]).map_err(io::Error::other)?;
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha1(data: &[u8]) -> Result<Vec<u8>> {
    Ok(openssl::hash::hash(MessageDigest::sha1(), data)?.to_vec())
}

impl XarBuilder {
    pub(crate) fn new() -> Result<Self> {
        let heap = tempfile::tempfile().context("cannot create a temporary file for the xar heap")?;
        Ok(Self {
            heap,
            heap_len: 0,
            root: Vec::new(),
        })
    }

    /// Add an (empty) directory; files added below it later are nested inside.
    pub(crate) fn add_directory(&mut self, path: &[&str]) -> Result<()> {
        self.insert(path, |name| Node::Directory {
            name,
            children: Vec::new(),
        })
    }

    /// Add a file whose (small) contents are in memory.
    pub(crate) fn add_bytes(&mut self, path: &[&str], data: &[u8], encoding: Encoding) -> Result<()> {
        let archived = match encoding {
            Encoding::Stored => data.to_vec(),
            Encoding::Zlib => {
                let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
                encoder.write_all(data)?;
                encoder.finish()?
            }
        };
        let offset = self.heap_len;
        self.heap
            .write_all(&archived)
            .context("cannot write the xar heap")?;
        self.heap_len += archived.len() as u64;
        let data = HeapData {
            offset,
            length: archived.len() as u64,
            size: data.len() as u64,
            encoding,
            archived_sha1: sha1(&archived)?,
            extracted_sha1: sha1(data)?,
        };
        self.insert_file(path, data)
    }

    /// Add a file whose bytes `produce` writes; they go straight to the heap file, zlib'd on the way
    /// for [`Encoding::Zlib`].
    pub(crate) fn add_stream<T>(
        &mut self,
        path: &[&str],
        encoding: Encoding,
        produce: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<T> {
        let offset = self.heap_len;
        let heap = DigestWriter::new(BufWriter::with_capacity(256 * 1024, &mut self.heap))?;
        let (produced, heap, extracted) = match encoding {
            Encoding::Stored => {
                let mut heap = heap;
                let produced = produce(&mut heap)?;
                (produced, heap, None)
            }
            Encoding::Zlib => {
                let mut plain = DigestWriter::new(ZlibEncoder::new(heap, Compression::best()))?;
                let produced = produce(&mut plain)?;
                let (encoder, digest, size) = plain.finish()?;
                let heap = encoder.finish().context("cannot write the xar heap")?;
                (produced, heap, Some((digest, size)))
            }
        };
        let (mut buffered, archived_sha1, length) = heap.finish()?;
        buffered.flush().context("cannot write the xar heap")?;
        drop(buffered);
        self.heap_len += length;
        let (extracted_sha1, size) = extracted.unwrap_or_else(|| (archived_sha1.clone(), length));
        let data = HeapData {
            offset,
            length,
            size,
            encoding,
            archived_sha1,
            extracted_sha1,
        };
        self.insert_file(path, data)?;
        Ok(produced)
    }

    fn insert_file(&mut self, path: &[&str], data: HeapData) -> Result<()> {
        self.insert(path, |name| Node::File { name, data })
    }

    /// Adds the node `make(name)` at `path`, refusing a second entry of the same name.
    fn insert(&mut self, path: &[&str], make: impl FnOnce(String) -> Node) -> Result<()> {
        let (name, parent) = path.split_last().context("xar: empty path")?;
        let siblings = self.directory_mut(parent)?;
        ensure!(
            !siblings.iter().any(|node| node.name() == *name),
            "xar: {} added twice",
            path.join("/")
        );
        siblings.push(make((*name).to_owned()));
        Ok(())
    }

    fn directory_mut(&mut self, path: &[&str]) -> Result<&mut Vec<Node>> {
        let mut nodes = &mut self.root;
        for name in path {
            nodes = match nodes.iter_mut().find(|node| node.name() == *name) {
                Some(Node::Directory { children, .. }) => children,
                _ => anyhow::bail!("xar: no directory {}", path.join("/")),
            };
        }
        Ok(nodes)
    }

    /// Write header, TOC, checksum (and signatures), then the spooled heap to `dest`.
    pub(crate) fn finish(
        mut self,
        dest: &mut impl Write,
        mtime: u64,
        signer: Option<&dyn TocSigner>,
    ) -> Result<()> {
        let reserved = signer.map_or(0, |s| (s.rsa_signature_size() + s.cms_signature_size()) as u64);
        let toc = Toc {
            nodes: &self.root,
            mtime,
            signer,
            data_start: SHA1_LEN + reserved,
        }
        .render()?;
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(toc.as_bytes())?;
        let compressed = encoder.finish()?;
        let checksum = sha1(&compressed)?;
        dest.write_all(&header(compressed.len() as u64, toc.len() as u64))?;
        dest.write_all(&compressed)?;
        dest.write_all(&checksum)?;
        if let Some(signer) = signer {
            write_signatures(dest, signer, &checksum)?;
        }
        self.heap.seek(SeekFrom::Start(0))?;
        let copied =
            io::copy(&mut (&mut self.heap).take(self.heap_len), dest).context("cannot copy the xar heap")?;
        ensure!(
            copied == self.heap_len,
            "xar heap file shrank while copying ({copied} of {} bytes)",
            self.heap_len
        );
        dest.flush()?;
        Ok(())
    }
}

fn header(toc_compressed: u64, toc_uncompressed: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(usize::from(HEADER_LEN));
    header.extend_from_slice(&MAGIC.to_be_bytes());
    header.extend_from_slice(&HEADER_LEN.to_be_bytes());
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&toc_compressed.to_be_bytes());
    header.extend_from_slice(&toc_uncompressed.to_be_bytes());
    header.extend_from_slice(&CKSUM_SHA1.to_be_bytes());
    header
}

fn write_signatures(dest: &mut impl Write, signer: &dyn TocSigner, checksum: &[u8]) -> Result<()> {
    let rsa = signer
        .sign_rsa(checksum)
        .context("RSA signature of the TOC checksum")?;
    ensure!(
        rsa.len() == signer.rsa_signature_size(),
        "RSA signature is {} bytes, the signer promised {}",
        rsa.len(),
        signer.rsa_signature_size()
    );
    let cms = signer
        .sign_cms(checksum)
        .context("CMS signature of the TOC checksum")?;
    let reserved = signer.cms_signature_size();
    ensure!(
        cms.len() <= reserved,
        "CMS signature is {} bytes, only {reserved} were reserved",
        cms.len()
    );
    dest.write_all(&rsa)?;
    dest.write_all(&cms)?;
    // Readers take the CMS blob's own DER length; the rest of the reservation is zero padding.
    dest.write_all(&vec![0; reserved - cms.len()])?;
    Ok(())
}

/// The table of contents, rendered as Apple's xar writes it (element order of productsign's TOC).
struct Toc<'a> {
    nodes: &'a [Node],
    mtime: u64,
    signer: Option<&'a dyn TocSigner>,
    /// Heap offset of the first file byte: after the checksum and any signatures.
    data_start: u64,
}

impl Toc<'_> {
    fn render(&self) -> Result<String> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xar>\n <toc>\n");
        xml.push_str(
            "  <checksum style=\"sha1\">\n   <offset>0</offset>\n   <size>20</size>\n  </checksum>\n",
        );
        xml.push_str(&format!(
            "  <creation-time>{}</creation-time>\n",
            timestamp(self.mtime)?
        ));
        if let Some(signer) = self.signer {
            let rsa_size = signer.rsa_signature_size() as u64;
            let key_info = key_info(&signer.certificates());
            xml.push_str(&signature_element(
                "signature",
                "RSA",
                SHA1_LEN,
                rsa_size,
                &key_info,
            ));
            let cms_size = signer.cms_signature_size() as u64;
            xml.push_str(&signature_element(
                "x-signature",
                "CMS",
                SHA1_LEN + rsa_size,
                cms_size,
                &key_info,
            ));
        }
        let mut next_id = 1;
        for node in self.nodes {
            self.render_node(&mut xml, node, &mut next_id, 2)?;
        }
        xml.push_str(" </toc>\n</xar>\n");
        Ok(xml)
    }

    fn render_node(&self, xml: &mut String, node: &Node, next_id: &mut u64, depth: usize) -> Result<()> {
        let indent = " ".repeat(depth);
        let id = *next_id;
        *next_id += 1;
        xml.push_str(&format!("{indent}<file id=\"{id}\">\n"));
        let (kind, mode) = match node {
            Node::Directory { .. } => ("directory", "0755"),
            Node::File { .. } => ("file", "0644"),
        };
        // 7-Zip only parses the 20-character form ending in Z.
        let mtime = format!("{}Z", timestamp(self.mtime)?);
        xml.push_str(&format!(
            "{indent} <name>{}</name>\n{indent} <type>{kind}</type>\n{indent} <mode>{mode}</mode>\n{indent} <uid>0</uid>\n{indent} <gid>0</gid>\n{indent} <user>root</user>\n{indent} <group>wheel</group>\n{indent} <mtime>{mtime}</mtime>\n",
            escape(node.name())
        ));
        match node {
            Node::Directory { children, .. } => {
                for child in children {
                    self.render_node(xml, child, next_id, depth + 1)?;
                }
            }
            Node::File { data, .. } => xml.push_str(&self.data_element(data, &indent)),
        }
        xml.push_str(&format!("{indent}</file>\n"));
        Ok(())
    }

    fn data_element(&self, data: &HeapData, indent: &str) -> String {
        format!(
            "{indent} <data>\n{indent}  <length>{}</length>\n{indent}  <offset>{}</offset>\n{indent}  <size>{}</size>\n{indent}  <encoding style=\"{}\"/>\n{indent}  <archived-checksum style=\"sha1\">{}</archived-checksum>\n{indent}  <extracted-checksum style=\"sha1\">{}</extracted-checksum>\n{indent} </data>\n",
            data.length,
            self.data_start + data.offset,
            data.size,
            data.encoding.style(),
            hex(&data.archived_sha1),
            hex(&data.extracted_sha1),
        )
    }
}

fn signature_element(element: &str, style: &str, offset: u64, size: u64, key_info: &str) -> String {
    format!(
        "  <{element} style=\"{style}\">\n   <offset>{offset}</offset>\n   <size>{size}</size>\n{key_info}  </{element}>\n"
    )
}

fn key_info(certificates: &[Vec<u8>]) -> String {
    let mut xml = String::from("   <KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\n    <X509Data>\n");
    for certificate in certificates {
        xml.push_str(&format!(
            "     <X509Certificate>{}</X509Certificate>\n",
            openssl::base64::encode_block(certificate)
        ));
    }
    xml.push_str("    </X509Data>\n   </KeyInfo>\n");
    xml
}

/// Lower-case hex: libxar compares checksums with `strcmp`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// XML text/attribute escaping for names.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// UTC `%FT%T` (no zone suffix), as libxar's `creation-time`.
pub(crate) fn timestamp(unix: u64) -> Result<String> {
    let days = i64::try_from(unix / 86_400).context("timestamp out of range")?;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    ensure!((0..=9999).contains(&year), "timestamp {unix} is past year 9999");
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    ))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_without_zone() -> Result<()> {
        assert_eq!(timestamp(0)?, "1970-01-01T00:00:00");
        // `date -u -d @1700000000 +%FT%T`
        assert_eq!(timestamp(1_700_000_000)?, "2023-11-14T22:13:20");
        assert_eq!(timestamp(951_782_400)?, "2000-02-29T00:00:00");
        Ok(())
    }

    #[test]
    fn escape_covers_xml_specials() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
