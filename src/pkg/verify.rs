//! `verify`: check a flat package's integrity without a Mac.
//!
//! Checks, in order: the XAR header, the TOC checksum (style, location, value), every file's archived
//! and extracted checksums and lengths (SHA-1 or stronger), the archive's shape (a component package has
//! a PackageInfo at its root; a product archive has a Distribution and components), then per component a
//! real PackageInfo, the BOM against the Payload (paths, modes, owners, sizes, cksums), PackageInfo's
//! `numberOfFiles` and scripts against the BOM and Scripts, what a careful admin refuses ([`safety`]:
//! payload paths leaving the install location, script names that are paths, a relative or missing
//! install-location), and the Distribution's pkg-refs against the archive's directories. Everything read is bounded by [`crate::limits`].
//!
//! Signatures are parsed and handed back in [`SignatureParts`], not verified here: trust decisions
//! belong to the signing module.

use std::collections::BTreeMap;
use std::path::Path;

use super::bom::{self, BomRecord};
use super::reader::{self, Element, RawXar, Toc, TocFile, digest_for, header_style, refused_style};
use super::safety;
use super::xar::{HEADER_LEN, hex};
use crate::limits::{MAX_BOM_BYTES, MAX_XML_BYTES};
use anyhow::{Context, Result};

/// Signatures never come near this; a bigger claim is corrupt.
pub(crate) const MAX_SIGNATURE: u64 = 1024 * 1024;

/// The outcome of [`verify`]: every problem found (empty means the package checked out).
#[derive(Debug, Default)]
pub struct Verification {
    pub problems: Vec<String>,
    /// Files whose checksums were checked.
    pub files_checked: usize,
    /// The TOC checksum and signatures as stored, for signature checks; `None` if the TOC is unreadable.
    pub signature_parts: Option<SignatureParts>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The signed material of a XAR, as stored. Both signatures sign `toc_checksum` (the raw digest bytes).
#[derive(Debug, Default, Clone)]
pub struct SignatureParts {
    /// The checksum style ("sha1" in everything we write).
    pub checksum_style: String,
    /// The TOC checksum stored at heap offset `<checksum><offset>`.
    pub toc_checksum: Vec<u8>,
    /// PKCS#1 v1.5 signature from `<signature style="RSA">`.
    pub rsa_signature: Option<Vec<u8>>,
    /// Certificates (DER, leaf first) from the RSA signature's KeyInfo.
    pub rsa_certificates: Vec<Vec<u8>>,
    /// DER CMS SignedData from `<x-signature style="CMS">`, with the reservation's zero padding removed.
    pub cms_signature: Option<Vec<u8>>,
    pub cms_certificates: Vec<Vec<u8>>,
}

/// Verify the package at `path`. `Err` means the file is not a readable XAR at all; anything wrong
/// beyond that is listed in [`Verification::problems`].
pub fn verify(path: &Path) -> Result<Verification> {
    let raw = RawXar::open(path)?;
    let mut report = Verification::default();
    if raw.header.header_size != HEADER_LEN {
        report.problems.push(format!(
            "xar header size is {}, not 28 (Apple's libxar assumes 28)",
            raw.header.header_size
        ));
    }
    let toc = match raw.decode_toc() {
        Ok(toc) => toc,
        Err(error) => {
            // Still compare the checksum, assuming Apple's offset 0: it tells corruption from a bad writer.
            check_toc_checksum(&raw, None, &mut report);
            report.problems.push(format!("{error:#}"));
            return Ok(report);
        }
    };
    report.signature_parts = check_toc_checksum(&raw, toc.checksum.as_ref(), &mut report);
    if let Some(parts) = &mut report.signature_parts {
        read_signatures(&raw, &toc, parts, &mut report.problems);
    }
    for file in &toc.files {
        if check_file_data(&raw, file, &mut report.problems) {
            report.files_checked += 1;
        }
    }
    let components = toc.component_dirs();
    let is_component_package = components == [""];
    if components.is_empty() {
        report
            .problems
            .push("no component package: neither a PackageInfo at the root nor a *.pkg directory".to_owned());
    }
    for dir in components {
        check_component(&raw, &toc, dir, &mut report.problems)?;
    }
    check_distribution(&raw, &toc, is_component_package, &mut report.problems)?;
    Ok(report)
}

/// Compare the stored TOC checksum with the digest of the compressed TOC.
fn check_toc_checksum(
    raw: &RawXar,
    checksum: Option<&reader::HeapRef>,
    report: &mut Verification,
) -> Option<SignatureParts> {
    let problems = &mut report.problems;
    let Some(header_style) = header_style(raw.header.cksum_alg).filter(|style| digest_for(style).is_some())
    else {
        let reason = match header_style(raw.header.cksum_alg) {
            Some(style) => refused_style(style),
            None => "not sha1, sha256 or sha512".to_owned(),
        };
        problems.push(format!(
            "xar header checksum algorithm {}: {reason}",
            raw.header.cksum_alg
        ));
        return None;
    };
    let (style, offset, size) = match checksum {
        Some(checksum) => (checksum.style.as_str(), checksum.offset, checksum.size),
        None => (header_style, 0, 0),
    };
    if checksum.is_some() && style != header_style {
        problems.push(format!("TOC checksum style {style:?} does not match the header's {header_style} (libxar compares exactly)"));
    }
    let digest = digest_for(header_style).and_then(|md| openssl::hash::hash(md, &raw.toc_compressed).ok())?;
    let size = if size == 0 { digest.len() as u64 } else { size };
    if size != digest.len() as u64 {
        problems.push(format!(
            "TOC checksum: {size} bytes is not the length of a {header_style} digest"
        ));
        return None;
    }
    let stored = match raw.read_heap(offset, size) {
        Ok(stored) => stored,
        Err(error) => {
            problems.push(format!("TOC checksum: {error:#}"));
            return None;
        }
    };
    if stored != digest.as_ref() {
        problems.push(format!(
            "TOC checksum does not match: stored {}, computed {}",
            hex(&stored),
            hex(&digest)
        ));
    }
    Some(SignatureParts {
        checksum_style: style.to_owned(),
        toc_checksum: stored,
        ..SignatureParts::default()
    })
}

fn read_signatures(raw: &RawXar, toc: &Toc, parts: &mut SignatureParts, problems: &mut Vec<String>) {
    let mut read = |name: &str, heap_ref: &reader::HeapRef| -> Option<Vec<u8>> {
        if heap_ref.size > MAX_SIGNATURE {
            problems.push(format!("{name} claims {} bytes", heap_ref.size));
            return None;
        }
        raw.read_heap(heap_ref.offset, heap_ref.size)
            .map_err(|error| problems.push(format!("{name}: {error:#}")))
            .ok()
    };
    if let Some(signature) = &toc.signature {
        parts.rsa_signature = read("RSA signature", signature);
        parts.rsa_certificates.clone_from(&signature.certificates);
    }
    if let Some(signature) = &toc.x_signature {
        parts.cms_signature = read("CMS signature", signature).map(|mut der| {
            der.truncate(der_length(&der).unwrap_or(der.len()));
            der
        });
        parts.cms_certificates.clone_from(&signature.certificates);
    }
}

/// Length of the DER element at the start of `der` (tag, length, contents), to strip zero padding.
fn der_length(der: &[u8]) -> Option<usize> {
    let first = usize::from(*der.get(1)?);
    let (header, content) = if first < 0x80 {
        (2, first)
    } else {
        let count = first & 0x7f;
        let bytes = der.get(2..2 + count)?;
        (
            2 + count,
            bytes.iter().fold(0usize, |n, &b| {
                n.saturating_mul(256).saturating_add(usize::from(b))
            }),
        )
    };
    let total = header.checked_add(content)?;
    (total <= der.len()).then_some(total)
}

/// Decode one file and compare lengths and checksums; returns whether it had data to check.
fn check_file_data(raw: &RawXar, file: &TocFile, problems: &mut Vec<String>) -> bool {
    let Some(data) = &file.data else { return false };
    let path = &file.path;
    let digests = match raw.data_reader(data).and_then(|reader| reader.finish()) {
        Ok(digests) => digests,
        Err(error) => {
            problems.push(format!("{path}: cannot read its data: {error:#}"));
            return true;
        }
    };
    if digests.archived_len != data.length {
        problems.push(format!(
            "{path}: {} archived bytes, the TOC says {}",
            digests.archived_len, data.length
        ));
    }
    if digests.extracted_len > data.size {
        problems.push(format!(
            "{path}: more extracted bytes than the TOC's {} (reading stopped there)",
            data.size
        ));
    } else if digests.extracted_len != data.size {
        problems.push(format!(
            "{path}: {} extracted bytes, the TOC says {}",
            digests.extracted_len, data.size
        ));
    }
    for (what, expected, actual) in [
        ("archived", &data.archived, &digests.archived),
        ("extracted", &data.extracted, &digests.extracted),
    ] {
        match (expected, actual) {
            (None, _) => problems.push(format!("{path}: no {what}-checksum")),
            (Some((style, _)), None) => {
                problems.push(format!("{path}: {what}-checksum: {}", refused_style(style)))
            }
            (Some((_, expected)), Some(actual)) if !expected.eq_ignore_ascii_case(&hex(actual)) => {
                problems.push(format!(
                    "{path}: {what}-checksum mismatch: TOC {expected}, data {}",
                    hex(actual)
                ));
            }
            _ => {}
        }
    }
    true
}

/// The path of `name` inside component directory `dir` ("" for a bare component package).
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn check_component(raw: &RawXar, toc: &Toc, dir: &str, problems: &mut Vec<String>) -> Result<()> {
    let label = if dir.is_empty() { "component" } else { dir };
    let Some(package_info) = read_xml(raw, toc, &join(dir, "PackageInfo"), problems)? else {
        problems.push(format!("{label}: no PackageInfo"));
        return Ok(());
    };
    if check_package_info(label, &package_info, problems) {
        safety::install_location(label, package_info.attribute("install-location"), problems);
    }
    let bom = match raw.read_file(toc, &join(dir, "Bom"), MAX_BOM_BYTES) {
        Ok(Some(bom)) => Some(bom),
        Ok(None) => None,
        Err(error) => {
            problems.push(format!("{label}/Bom: {error:#}"));
            return Ok(());
        }
    };
    let payload = toc
        .file(&join(dir, "Payload"))
        .and_then(|file| file.data.as_ref())
        .map(|data| payload_entries(raw, data));
    match &payload {
        Some(Ok(entries)) => {
            let is_link = |entry: &PayloadEntry| entry.mode & 0o170000 == 0o120000;
            let paths = entries
                .iter()
                .map(|(path, entry)| (path.as_str(), is_link(entry)));
            safety::payload_paths(label, paths, problems);
        }
        Some(Err(error)) => problems.push(format!("{label}/Payload: {error:#}")),
        None => {}
    }
    match (bom, payload, package_info.child("payload")) {
        (None, None, None) => {}
        (Some(bom), Some(entries), declared) => {
            let records = match bom::read(&bom) {
                Ok(records) => records,
                Err(error) => {
                    problems.push(format!("{label}/Bom: {error:#}"));
                    return Ok(());
                }
            };
            check_declared_count(label, declared, records.len(), problems);
            if let Ok(entries) = entries {
                compare_bom_and_payload(label, &records, &entries, problems);
            }
        }
        _ => problems.push(format!(
            "{label}: Bom, Payload and <payload> must be all present or all absent"
        )),
    }
    check_scripts(raw, toc, dir, label, &package_info, problems);
    Ok(())
}

/// The Installer needs a `<pkg-info>` with an identifier (its receipt name) and a version. Whether the
/// root element is a `<pkg-info>` at all.
fn check_package_info(label: &str, package_info: &Element, problems: &mut Vec<String>) -> bool {
    if package_info.name != "pkg-info" {
        problems.push(format!(
            "{label}: PackageInfo's root element is <{}>, not <pkg-info>",
            package_info.name
        ));
        return false;
    }
    for attribute in ["identifier", "version"] {
        if package_info.attribute(attribute).is_none_or(str::is_empty) {
            problems.push(format!("{label}: PackageInfo has no {attribute}"));
        }
    }
    true
}

fn check_declared_count(label: &str, declared: Option<&Element>, count: usize, problems: &mut Vec<String>) {
    let declared = declared.and_then(|payload| payload.attribute("numberOfFiles"));
    if declared.and_then(|n| n.parse::<usize>().ok()) != Some(count) {
        problems.push(format!(
            "{label}: PackageInfo numberOfFiles is {declared:?}, the BOM lists {count} paths"
        ));
    }
}

/// What a cpio entry says about a path, in the BOM's terms.
#[derive(Debug)]
struct PayloadEntry {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    cksum: u32,
    link_target: Option<String>,
}

fn payload_entries(raw: &RawXar, data: &reader::TocData) -> Result<BTreeMap<String, PayloadEntry>> {
    let mut cpio = raw.cpio_reader(data)?;
    let mut entries = BTreeMap::new();
    while let Some(entry) = cpio.next_entry()? {
        let header = entry.header;
        let value = PayloadEntry {
            mode: header.mode,
            uid: header.uid,
            gid: header.gid,
            size: entry.data.size,
            cksum: entry.data.cksum,
            link_target: entry.link_target,
        };
        anyhow::ensure!(
            entries.insert(header.name.clone(), value).is_none(),
            "{} appears twice",
            header.name
        );
    }
    Ok(entries)
}

fn compare_bom_and_payload(
    label: &str,
    records: &[BomRecord],
    payload: &BTreeMap<String, PayloadEntry>,
    problems: &mut Vec<String>,
) {
    let mut seen = 0;
    for record in records {
        let path = &record.path;
        let Some(entry) = payload.get(path) else {
            problems.push(format!("{label}: {path} is in the BOM but not in the Payload"));
            continue;
        };
        seen += 1;
        let mut differs = |what: &str, bom: String, cpio: String| {
            if bom != cpio {
                problems.push(format!(
                    "{label}: {path}: {what} is {bom} in the BOM, {cpio} in the Payload"
                ));
            }
        };
        differs("mode", format!("{:o}", record.mode), format!("{:o}", entry.mode));
        differs(
            "owner",
            format!("{}/{}", record.uid, record.gid),
            format!("{}/{}", entry.uid, entry.gid),
        );
        if !record.is_directory() {
            differs("size", record.size.to_string(), entry.size.to_string());
            if let Some(cksum) = record.cksum {
                differs("cksum", cksum.to_string(), entry.cksum.to_string());
            }
            if let Some(target) = &record.link_target {
                differs(
                    "link target",
                    target.clone(),
                    entry.link_target.clone().unwrap_or_default(),
                );
            }
        }
    }
    if seen != payload.len() {
        let in_bom: std::collections::HashSet<&str> = records.iter().map(|r| r.path.as_str()).collect();
        for path in payload.keys().filter(|path| !in_bom.contains(path.as_str())) {
            problems.push(format!("{label}: {path} is in the Payload but not in the BOM"));
        }
    }
}

/// Every script PackageInfo names must be in the Scripts archive.
fn check_scripts(
    raw: &RawXar,
    toc: &Toc,
    dir: &str,
    label: &str,
    package_info: &Element,
    problems: &mut Vec<String>,
) {
    let declared: Vec<&str> = package_info
        .child("scripts")
        .map(|scripts| {
            scripts
                .children
                .iter()
                .filter_map(|script| script.attribute("file"))
                .collect()
        })
        .unwrap_or_default();
    if declared.is_empty() {
        return;
    }
    safety::script_names(label, &declared, problems);
    let present = match script_names(raw, toc, dir) {
        Ok(present) => present,
        Err(error) => {
            problems.push(format!("{label}/Scripts: {error:#}"));
            return;
        }
    };
    for file in declared {
        let name = file.trim_start_matches("./");
        if !present.iter().any(|present| present == name) {
            problems.push(format!(
                "{label}: PackageInfo names script {file}, which is not in Scripts"
            ));
        }
    }
}

fn script_names(raw: &RawXar, toc: &Toc, dir: &str) -> Result<Vec<String>> {
    let data = toc
        .file(&join(dir, "Scripts"))
        .and_then(|file| file.data.as_ref())
        .context("no Scripts archive")?;
    let mut cpio = raw.cpio_reader(data)?;
    let mut names = Vec::new();
    while let Some(entry) = cpio.next_entry()? {
        names.push(entry.header.name.trim_start_matches("./").to_owned());
    }
    Ok(names)
}

fn read_xml(raw: &RawXar, toc: &Toc, path: &str, problems: &mut Vec<String>) -> Result<Option<Element>> {
    let parsed = raw
        .read_file(toc, path, MAX_XML_BYTES)
        .and_then(|bytes| bytes.map(|bytes| reader::parse_xml(&bytes, path)).transpose());
    Ok(parsed.unwrap_or_else(|error| {
        problems.push(format!("{error:#}"));
        None
    }))
}

/// A product archive's Distribution is an `<installer-gui-script>` (or the older `<installer-script>`) whose `<pkg-ref>`s name at least one
/// component; each `#name.pkg` target must be a directory in the archive.
fn check_distribution(
    raw: &RawXar,
    toc: &Toc,
    is_component_package: bool,
    problems: &mut Vec<String>,
) -> Result<()> {
    let Some(distribution) = read_xml(raw, toc, "Distribution", problems)? else {
        if !is_component_package && toc.file("Distribution").is_none() {
            problems.push("a product archive needs a Distribution".to_owned());
        }
        return Ok(());
    };
    // Apple's packages from before macOS 10.7 or so call the root element `installer-script`.
    if !matches!(
        distribution.name.as_str(),
        "installer-gui-script" | "installer-script"
    ) {
        problems.push(format!(
            "Distribution's root element is <{}>, not <installer-gui-script>",
            distribution.name
        ));
        return Ok(());
    }
    let mut targets = 0;
    for pkg_ref in distribution.children_named("pkg-ref") {
        let Some(target) = pkg_ref.text().strip_prefix('#') else {
            continue;
        };
        targets += 1;
        let target = percent_decode(target);
        if toc.file(&target).is_none_or(|file| file.kind != "directory") {
            problems.push(format!(
                "Distribution: pkg-ref {} points at {target:?}, which is not in the archive",
                pkg_ref.attribute("id").unwrap_or("?")
            ));
        }
    }
    if targets == 0 {
        problems.push("Distribution: no pkg-ref names a component package".to_owned());
    }
    Ok(())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Used by inspect: the payload listing source of truth is the BOM, like `lsbom`.
pub(crate) fn bom_records(raw: &RawXar, toc: &Toc, dir: &str) -> Result<Option<Vec<BomRecord>>> {
    raw.read_file(toc, &join(dir, "Bom"), MAX_BOM_BYTES)?
        .map(|bom| bom::read(&bom))
        .transpose()
}

/// Used by inspect: script names with their sizes and modes.
pub(crate) fn scripts_listing(raw: &RawXar, toc: &Toc, dir: &str) -> Result<Option<Vec<(String, u64, u32)>>> {
    let Some(data) = toc
        .file(&join(dir, "Scripts"))
        .and_then(|file| file.data.as_ref())
    else {
        return Ok(None);
    };
    let mut cpio = raw.cpio_reader(data)?;
    let mut scripts = Vec::new();
    while let Some(entry) = cpio.next_entry()? {
        if entry.header.name != "." {
            scripts.push((
                entry.header.name.trim_start_matches("./").to_owned(),
                entry.data.size,
                entry.header.mode,
            ));
        }
    }
    Ok(Some(scripts))
}

pub(crate) fn read_package_xml(raw: &RawXar, toc: &Toc, path: &str) -> Result<Option<Element>> {
    raw.read_file(toc, path, MAX_XML_BYTES)?
        .map(|bytes| reader::parse_xml(&bytes, path))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_strips_padding() {
        assert_eq!(der_length(&[0x30, 0x03, 1, 2, 3, 0, 0]), Some(5));
        assert_eq!(der_length(&[0x30, 0x82, 0x00, 0x01, 9, 0]), Some(5));
        assert_eq!(der_length(&[0x30, 0x05, 1]), None);
    }

    #[test]
    fn bom_and_payload_disagreements_are_each_reported() {
        let record = |path: &str, mode, size| BomRecord {
            path: path.into(),
            path_type: if mode & 0o040000 != 0 { 2 } else { 1 },
            mode,
            uid: 0,
            gid: 0,
            size,
            cksum: Some(7),
            link_target: None,
        };
        let entry = |mode, uid, size, cksum| PayloadEntry {
            mode,
            uid,
            gid: 0,
            size,
            cksum,
            link_target: None,
        };
        let records = [
            record(".", 0o40755, 0),
            record("./a", 0o100644, 3),
            record("./gone", 0o100644, 1),
        ];
        let payload = BTreeMap::from([
            (".".to_owned(), entry(0o40755, 0, 0, 0)),
            ("./a".to_owned(), entry(0o100600, 501, 4, 8)),
            ("./extra".to_owned(), entry(0o100644, 0, 0, 7)),
        ]);
        let mut problems = Vec::new();
        compare_bom_and_payload("c.pkg", &records, &payload, &mut problems);
        assert_eq!(
            problems,
            [
                "c.pkg: ./a: mode is 100644 in the BOM, 100600 in the Payload",
                "c.pkg: ./a: owner is 0/0 in the BOM, 501/0 in the Payload",
                "c.pkg: ./a: size is 3 in the BOM, 4 in the Payload",
                "c.pkg: ./a: cksum is 7 in the BOM, 8 in the Payload",
                "c.pkg: ./gone is in the BOM but not in the Payload",
                "c.pkg: ./extra is in the Payload but not in the BOM",
            ]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("My%20Agent%2B1.pkg"), "My Agent+1.pkg");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
