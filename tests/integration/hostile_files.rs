//! Hostile packages and profiles, each generated here and small, fed to `inspect`, `verify` and
//! `validate` under a 1 GiB address-space limit (`prlimit --as`): every one must end in a clean exit 1
//! naming the problem, never an abort, a panic, minutes of CPU or an "ok".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Result;
use confine::sign::{Identity, PackageSigner, TocSigner, create_dev_identity, verify_toc_cms};
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use openssl::hash::{MessageDigest, hash};

/// Runs `confine <command> <file>` under `prlimit --as=1G` (util-linux, installed by `tests/run`).
fn confine_limited(command: &str, file: &Path) -> Output {
    Command::new("prlimit")
        .arg("--as=1073741824")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_confine"))
        .arg(command)
        .arg(file)
        .output()
        .expect("cannot run prlimit (apt-get install util-linux)")
}

/// Asserts a clean refusal: exit status 1 (not an abort's 134 or a signal), no panic, and `needle` in
/// what the user sees. Returns that text.
fn assert_refused(output: &Output, needle: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{:?}: {text}", output.status);
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains(needle), "{needle:?} missing from: {text}");
    text
}

fn refuse(command: &str, file: &Path, needle: &str) -> String {
    assert_refused(&confine_limited(command, file), needle)
}

fn inspect_and_verify_refuse(file: &Path, needle: &str) {
    for command in ["inspect", "verify"] {
        refuse(command, file, needle);
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write hostile file");
    path
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("zlib");
    encoder.finish().expect("zlib")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A xar heap under construction; offset 0 holds the TOC's sha1, filled in by [`Heap::into_xar`].
struct Heap(Vec<u8>);

#[derive(Clone, Copy)]
enum Encoding {
    Stored,
    Zlib,
}

impl Heap {
    fn new() -> Self {
        Self(vec![0; 20])
    }

    /// Stores `contents` and returns its `<file>` element, with checksums in `style`.
    fn file_styled(&mut self, name: &str, contents: &[u8], encoding: Encoding, style: &str) -> String {
        let (archived, encoding) = match encoding {
            Encoding::Stored => (contents.to_vec(), "application/octet-stream"),
            Encoding::Zlib => (zlib(contents), "application/x-gzip"),
        };
        let digest = match style {
            "md5" => MessageDigest::md5(),
            _ => MessageDigest::sha1(),
        };
        let sum = |bytes: &[u8]| hex(&hash(digest, bytes).expect("digest"));
        let element = format!(
            "<file><name>{name}</name><type>file</type><data><offset>{}</offset><length>{}</length>\
             <size>{}</size><encoding style=\"{encoding}\"/><archived-checksum style=\"{style}\">{}\
             </archived-checksum><extracted-checksum style=\"{style}\">{}</extracted-checksum></data></file>",
            self.0.len(),
            archived.len(),
            contents.len(),
            sum(&archived),
            sum(contents)
        );
        self.0.extend_from_slice(&archived);
        element
    }

    fn file(&mut self, name: &str, contents: &[u8], encoding: Encoding) -> String {
        self.file_styled(name, contents, encoding, "sha1")
    }

    /// A xar whose TOC lists `files` (from [`Heap::file`] and [`dir`]) and whose heap is this one.
    fn into_xar(self, files: &[String]) -> Vec<u8> {
        let toc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><xar><toc><checksum style=\"sha1\"><offset>0</offset>\
             <size>20</size></checksum>{}</toc></xar>",
            files.concat()
        );
        xar_with_toc(toc.as_bytes(), self.0)
    }
}

fn xar_with_toc(toc: &[u8], mut heap: Vec<u8>) -> Vec<u8> {
    let compressed = zlib(toc);
    heap[..20].copy_from_slice(&hash(MessageDigest::sha1(), &compressed).expect("sha1"));
    let mut out = b"xar!".to_vec();
    out.extend_from_slice(&28u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(compressed.len() as u64).to_be_bytes());
    out.extend_from_slice(&(toc.len() as u64).to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // sha1
    out.extend_from_slice(&compressed);
    out.extend_from_slice(&heap);
    out
}

fn dir(name: &str, children: &[String]) -> String {
    format!(
        "<file><name>{name}</name><type>directory</type>{}</file>",
        children.concat()
    )
}

const PACKAGE_INFO: &[u8] = br#"<pkg-info format-version="2" identifier="com.example.x" version="1" install-location="/" auth="root"/>"#;

/// One odc cpio header and name (NUL added), for `size` bytes of data that the caller appends.
fn cpio_entry(name: &[u8], mode: u32, size: u64) -> Vec<u8> {
    let mut entry = format!(
        "070707000000000001{mode:06o}000000000000000001000000{:011o}{:06o}{size:011o}",
        0,
        name.len() + 1
    )
    .into_bytes();
    entry.extend_from_slice(name);
    entry.push(0);
    entry
}

fn cpio_trailer() -> Vec<u8> {
    cpio_entry(b"TRAILER!!!", 0, 0)
}

/// `entries` and the trailer, gzip'd: a `Scripts` or `Payload` archive.
fn cpio_archive(mut entries: Vec<u8>) -> Vec<u8> {
    entries.extend_from_slice(&cpio_trailer());
    gzip(&entries)
}

/// A component package (PackageInfo at the root) with these extra files.
fn component_package(extra: impl FnOnce(&mut Heap) -> Vec<String>, package_info: &[u8]) -> Vec<u8> {
    let mut heap = Heap::new();
    let mut files = vec![heap.file("PackageInfo", package_info, Encoding::Zlib)];
    files.extend(extra(&mut heap));
    heap.into_xar(&files)
}

#[test]
fn plist_nested_150000_deep_is_refused_not_a_stack_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = format!(
        "<?xml version=\"1.0\"?><plist version=\"1.0\">{}{}</plist>",
        "<array>".repeat(150_000),
        "</array>".repeat(150_000)
    );
    let file = write(tmp.path(), "deep.mobileconfig", deep.as_bytes());
    refuse("validate", &file, "nests deeper than 128");
}

/// A binary plist: `objects` in order (object i at the i-th offset), the last one the top object.
fn bplist(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for object in objects {
        offsets.push(out.len() as u32);
        out.extend_from_slice(object);
    }
    let table = out.len() as u64;
    for offset in &offsets {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&[4, 1]); // 4-byte offsets, 1-byte object references
    out.extend_from_slice(&(objects.len() as u64).to_be_bytes());
    out.extend_from_slice(&(objects.len() as u64 - 1).to_be_bytes());
    out.extend_from_slice(&table.to_be_bytes());
    out
}

#[test]
fn binary_plist_shared_references_count_toward_the_limits() {
    let tmp = tempfile::tempdir().unwrap();
    // Ten levels of arrays, each holding the level below 14 times: 14^10 values from 240 bytes.
    let mut objects = vec![b"\x51x".to_vec()];
    for level in 0..10u8 {
        let mut array = vec![0xAE];
        array.extend_from_slice(&[level; 14]);
        objects.push(array);
    }
    let values = bplist(&objects);
    assert!(values.len() < 256, "{}", values.len());
    let file = write(tmp.path(), "values.mobileconfig", &values);
    refuse("validate", &file, "more than 200000 values");

    // One megabyte of data used 2,000 times: few values, but 2 GB of expanded bytes.
    let mut data = vec![0x4F, 0x12];
    data.extend_from_slice(&(1u32 << 20).to_be_bytes());
    data.resize(data.len() + (1 << 20), b'A');
    let mut array = vec![0xAF, 0x11];
    array.extend_from_slice(&2000u16.to_be_bytes());
    array.extend_from_slice(&[0; 2000]);
    let file = write(tmp.path(), "bytes.mobileconfig", &bplist(&[data, array]));
    refuse("validate", &file, "strings and data exceed");
}

#[test]
fn a_toc_with_millions_of_elements_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let toc = format!("<xar><toc>{}</toc></xar>", "<e/>".repeat(2_000_000));
    let file = write(
        tmp.path(),
        "elements.pkg",
        &xar_with_toc(toc.as_bytes(), vec![0; 20]),
    );
    assert!(std::fs::metadata(&file).unwrap().len() < 100_000);
    inspect_and_verify_refuse(&file, "more than 100000 elements");
}

#[test]
fn a_compressed_element_bomb_in_distribution_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut heap = Heap::new();
    let bomb = format!(
        "<installer-gui-script>{}</installer-gui-script>",
        "<x/>".repeat(3_000_000)
    );
    let files = vec![
        heap.file("Distribution", bomb.as_bytes(), Encoding::Zlib),
        dir("c.pkg", &[heap.file("PackageInfo", PACKAGE_INFO, Encoding::Zlib)]),
    ];
    let file = write(tmp.path(), "distribution.pkg", &heap.into_xar(&files));
    assert!(std::fs::metadata(&file).unwrap().len() < 100_000);
    inspect_and_verify_refuse(&file, "more than 100000 elements");
}

/// A BOM: blocks 1.. as given, `Paths` naming block 1 (a tree block).
fn bom(blocks: &[Vec<u8>]) -> Vec<u8> {
    let vars = [&1u32.to_be_bytes()[..], &1u32.to_be_bytes(), &[5], b"Paths"].concat();
    let mut data = vec![0; 512];
    data.extend_from_slice(&vars);
    let mut index = ((blocks.len() + 1) as u32).to_be_bytes().to_vec();
    index.extend_from_slice(&[0; 8]);
    for block in blocks {
        index.extend_from_slice(&(data.len() as u32).to_be_bytes());
        index.extend_from_slice(&(block.len() as u32).to_be_bytes());
        data.extend_from_slice(block);
    }
    let index_offset = data.len() as u32;
    data.extend_from_slice(&index);
    data[..8].copy_from_slice(b"BOMStore");
    for (at, value) in [
        (8, 1),
        (12, blocks.len() as u32),
        (16, index_offset),
        (20, index.len() as u32),
        (24, 512),
        (28, vars.len() as u32),
    ] {
        data[at..at + 4].copy_from_slice(&u32::to_be_bytes(value));
    }
    data
}

fn tree_block(root: u32) -> Vec<u8> {
    [
        &b"tree"[..],
        &1u32.to_be_bytes(),
        &root.to_be_bytes(),
        &4096u32.to_be_bytes(),
        &[0; 5],
    ]
    .concat()
}

fn leaf_block(forward: u32, pairs: &[(u32, u32)]) -> Vec<u8> {
    let mut leaf = [1u16.to_be_bytes(), (pairs.len() as u16).to_be_bytes()].concat();
    leaf.extend_from_slice(&forward.to_be_bytes());
    leaf.extend_from_slice(&0u32.to_be_bytes());
    for (info, file) in pairs {
        leaf.extend_from_slice(&info.to_be_bytes());
        leaf.extend_from_slice(&file.to_be_bytes());
    }
    leaf
}

/// A 31-byte directory record.
fn dir_record() -> Vec<u8> {
    let mut record = vec![2, 1, 0, 3];
    record.extend_from_slice(&0o40755u16.to_be_bytes());
    record.resize(31, 0);
    record
}

fn file_block(parent: u32, name: &str) -> Vec<u8> {
    [&parent.to_be_bytes()[..], name.as_bytes(), &[0]].concat()
}

fn package_with_bom(bom: &[u8]) -> Vec<u8> {
    component_package(
        |heap| {
            vec![
                heap.file("Bom", bom, Encoding::Zlib),
                heap.file("Payload", &cpio_archive(Vec::new()), Encoding::Stored),
            ]
        },
        PACKAGE_INFO,
    )
}

#[test]
fn a_bom_leaf_pointing_at_itself_is_a_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    // Blocks: 1 tree, 2 a full leaf whose forward link is itself, 3 info (id 1, record 4), 4 record,
    // 5 file ".", then 20,000 empty blocks: a reader that bounds the walk by the block count alone
    // collects 65,535 paths 20,000 times.
    let info = [1u32.to_be_bytes(), 4u32.to_be_bytes()].concat();
    let mut blocks = vec![
        tree_block(2),
        leaf_block(2, &[(3, 5); 65_535]),
        info,
        dir_record(),
        file_block(0, "."),
    ];
    blocks.resize(20_005, Vec::new());
    let file = write(tmp.path(), "bom-cycle.pkg", &package_with_bom(&bom(&blocks)));
    inspect_and_verify_refuse(&file, "Paths leaves form a cycle");
}

#[test]
fn a_bom_parent_chain_65535_deep_is_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    // Path id n (blocks 2 + 2n, 3 + 2n) is "a" below id n - 1; id 1 is "." below nothing. The leaf lists
    // the deepest first, so the reader meets the whole chain at once.
    let depth = 65_535u32;
    let mut blocks = vec![tree_block(2), Vec::new(), dir_record()];
    let mut pairs = Vec::new();
    for id in 1..=depth {
        let info_block = 2 + 2 * id;
        blocks.push([id.to_be_bytes(), 3u32.to_be_bytes()].concat());
        blocks.push(file_block(id - 1, if id == 1 { "." } else { "a" }));
        pairs.push((info_block, info_block + 1));
    }
    pairs.reverse();
    blocks[1] = leaf_block(0, &pairs);
    let file = write(tmp.path(), "bom-deep.pkg", &package_with_bom(&bom(&blocks)));
    inspect_and_verify_refuse(&file, "nested deeper than a 1024-byte path allows");
}

/// A component package whose PackageInfo declares a postinstall and whose Scripts archive is `scripts`
/// (gzip'd cpio), stored with `encoding`.
fn package_with_scripts(scripts: &[u8], encoding: Encoding) -> Vec<u8> {
    let package_info = br#"<pkg-info identifier="com.example.x" version="1"><scripts><postinstall file="./postinstall"/></scripts></pkg-info>"#;
    component_package(|heap| vec![heap.file("Scripts", scripts, encoding)], package_info)
}

#[test]
fn cpio_names_are_bounded_in_length_and_number() {
    let tmp = tempfile::tempdir().unwrap();
    let long = cpio_archive(cpio_entry(&[b'a'; 65_535], 0o100644, 0));
    let file = write(
        tmp.path(),
        "cpio-long.pkg",
        &package_with_scripts(&long, Encoding::Stored),
    );
    inspect_and_verify_refuse(&file, "cpio name of 65536 bytes exceeds the limit of 1024");

    let mut many = Vec::new();
    for index in 0..=1_000_000u32 {
        many.extend_from_slice(&cpio_entry(format!("./{index}").as_bytes(), 0o100644, 0));
    }
    let many = cpio_archive(many);
    let file = write(
        tmp.path(),
        "cpio-many.pkg",
        &package_with_scripts(&many, Encoding::Stored),
    );
    inspect_and_verify_refuse(&file, "more than 1000000 entries");
}

#[test]
fn nested_compression_stops_at_the_work_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // A gzip'd cpio whose one entry claims 8 GiB - 1 of zeros: a deflate stream of identical blocks, each
    // 1 MiB of zeros, stored inside a zlib-encoded xar file (the second layer makes it tiny).
    let mut compress = flate2::Compress::new(Compression::best(), false);
    let mut deflate = Vec::with_capacity(16 << 20);
    let header = cpio_entry(b"./postinstall", 0o100755, 0o77_777_777_777);
    compress
        .compress_vec(&header, &mut deflate, flate2::FlushCompress::Sync)
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    let before = deflate.len();
    compress
        .compress_vec(&zeros, &mut deflate, flate2::FlushCompress::Sync)
        .unwrap();
    let first = deflate[before..].to_vec();
    compress
        .compress_vec(&zeros, &mut deflate, flate2::FlushCompress::Sync)
        .unwrap();
    let block = deflate[before + first.len()..].to_vec();
    deflate.truncate(before + first.len());
    for _ in 0..8_000 {
        deflate.extend_from_slice(&block);
    }
    let mut scripts = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    scripts.extend_from_slice(&deflate);
    let package = package_with_scripts(&scripts, Encoding::Zlib);
    assert!(package.len() < 200_000, "{}", package.len());
    let file = write(tmp.path(), "nested.pkg", &package);
    inspect_and_verify_refuse(&file, "stopped after reading and decoding");
}

#[test]
fn verify_wants_a_real_package_structure() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = write(tmp.path(), "empty.pkg", &Heap::new().into_xar(&[]));
    let text = refuse("verify", &empty, "no component package");
    assert!(!text.contains("ok: package"), "{text}");

    let evil = write(
        tmp.path(),
        "evil.pkg",
        &component_package(|_| Vec::new(), b"<evil/>"),
    );
    refuse(
        "verify",
        &evil,
        "PackageInfo's root element is <evil>, not <pkg-info>",
    );

    // A product archive: a Distribution and a component directory, each as it should be, except that
    // the Distribution names no component.
    let mut heap = Heap::new();
    let files = vec![
        heap.file(
            "Distribution",
            b"<installer-gui-script minSpecVersion=\"2\"/>",
            Encoding::Zlib,
        ),
        dir("c.pkg", &[heap.file("PackageInfo", PACKAGE_INFO, Encoding::Zlib)]),
    ];
    let product = write(tmp.path(), "product.pkg", &heap.into_xar(&files));
    refuse(
        "verify",
        &product,
        "Distribution: no pkg-ref names a component package",
    );
}

#[test]
fn verify_refuses_md5_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let mut heap = Heap::new();
    let files = vec![heap.file_styled("PackageInfo", PACKAGE_INFO, Encoding::Zlib, "md5")];
    let file = write(tmp.path(), "md5.pkg", &heap.into_xar(&files));
    refuse(
        "verify",
        &file,
        "archived-checksum: md5 is weaker than SHA-1 and is refused",
    );
}

#[test]
fn names_from_the_package_are_printed_with_controls_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = cpio_archive(cpio_entry(b"./\x1b[2J\x1b]0;pwned\x07", 0o100755, 0));
    let package_info = "<pkg-info identifier=\"com.example.\u{1b}[31mred\" version=\"1\">\
        <scripts><postinstall file=\"./\u{202e}kcab\"/></scripts></pkg-info>";
    let package = component_package(
        |heap| vec![heap.file("Scripts", &scripts, Encoding::Stored)],
        package_info.as_bytes(),
    );
    let file = write(tmp.path(), "escapes.pkg", &package);

    let inspect = confine_limited("inspect", &file);
    assert!(inspect.status.success(), "{inspect:?}");
    let shown = String::from_utf8(inspect.stdout).unwrap();
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown:?}");
    assert!(
        shown.contains(r"script \x1b[2J\x1b]0;pwned\x07 0 bytes"),
        "{shown}"
    );
    assert!(shown.contains(r"identifier com.example.\x1b[31mred"), "{shown}");

    let text = refuse(
        "verify",
        &file,
        r"names script ./\u{202e}kcab, which is not in Scripts",
    );
    assert!(!text.contains('\u{202e}'), "{text:?}");
}

/// A detached CMS signature over a TOC checksum, by a fresh development identity.
fn cms_signature() -> Result<(tempfile::TempDir, Vec<u8>, [u8; 20])> {
    let tmp = tempfile::tempdir()?;
    let password = "hostile files";
    create_dev_identity(&tmp.path().join("id"), password)?;
    let identity = Identity::from_pkcs12(&tmp.path().join("id/installer-signing.p12"), password)?;
    let checksum = [7u8; 20];
    let cms = PackageSigner::new(&identity, None)?.sign_cms(&checksum)?;
    Ok((tmp, cms, checksum))
}

/// Replaces the one occurrence of `from` in `bytes` by `to` (same length).
fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    let at: Vec<usize> = (0..=bytes.len() - from.len())
        .filter(|&i| bytes[i..].starts_with(from))
        .collect();
    assert_eq!(at.len(), 1, "{from:02x?} must occur once");
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
}

#[test]
fn a_cms_whose_content_type_was_altered_is_refused() -> Result<()> {
    let (_tmp, cms, checksum) = cms_signature()?;
    verify_toc_cms(&cms, &checksum, None)?;
    const ID_DATA: [u8; 11] = [6, 9, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 7, 1];
    const ID_DIGESTED_DATA: [u8; 11] = [6, 9, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 7, 5];

    // The unsigned eContentType (`SEQUENCE { OID }` of a detached signature), then the signed attribute.
    let mut altered = cms.clone();
    replace_once(
        &mut altered,
        &[&[0x30, 0x0B][..], &ID_DATA].concat(),
        &[&[0x30, 0x0B][..], &ID_DIGESTED_DATA].concat(),
    );
    let error = verify_toc_cms(&altered, &checksum, None).unwrap_err();
    assert!(
        format!("{error:#}").contains("eContentType is not id-data"),
        "{error:#}"
    );

    let content_type_attribute = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 9, 3, 0x31, 0x0B];
    let mut altered = cms.clone();
    replace_once(
        &mut altered,
        &[&content_type_attribute[..], &ID_DATA].concat(),
        &[&content_type_attribute[..], &ID_DIGESTED_DATA].concat(),
    );
    let error = verify_toc_cms(&altered, &checksum, None).unwrap_err();
    assert!(
        format!("{error:#}").contains("contentType attribute does not match"),
        "{error:#}"
    );
    Ok(())
}

#[test]
fn a_profile_that_never_ends_is_read_only_up_to_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let endless = tmp.path().join("endless.mobileconfig");
    std::os::unix::fs::symlink("/dev/zero", &endless).unwrap();
    for command in ["validate", "verify"] {
        refuse(command, &endless, "is a character device, not a regular file");
    }
}

/// Runs `confine <args>` in `dir` under `prlimit --as=1G` and `timeout 60`: a FIFO waited on or a device
/// read to exhaustion ends in timeout's exit 124, not a hung test.
fn confine_bounded(dir: &Path, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Output {
    Command::new("timeout")
        .args(["60", "prlimit", "--as=1073741824", "--"])
        .arg(env!("CARGO_BIN_EXE_confine"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("cannot run timeout and prlimit (coreutils, util-linux)")
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// A sparse file of `size` bytes: huge on paper, nothing on disk.
fn sparse(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// The hostile kinds of one input: a FIFO nobody writes, a symlink to /dev/zero, and (with a `limit`) a
/// sparse file past it; each must be refused quickly, naming what is wrong (the returned text).
fn hostile_inputs(dir: &Path, name: &str, limit: Option<u64>) -> Vec<(PathBuf, String)> {
    let fifo = dir.join(format!("fifo-{name}"));
    mkfifo(&fifo);
    let zero = dir.join(format!("zero-{name}"));
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let mut inputs = vec![
        (fifo, "is a FIFO, not a regular file".to_owned()),
        (zero, "is a character device, not a regular file".to_owned()),
    ];
    if let Some(limit) = limit {
        let huge = dir.join(format!("huge-{name}"));
        sparse(&huge, limit + 1);
        inputs.push((huge, format!("larger than the limit of {limit} bytes")));
    }
    inputs
}

#[test]
fn specs_packages_profiles_and_trails_must_be_bounded_regular_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, u64); 5] = [
        ("validate", "fleet.yaml", 1024 * 1024),
        ("build", "fleet.yaml", 1024 * 1024),
        ("inspect", "x.pkg", 16 << 30),
        ("verify", "x.pkg", 16 << 30),
        ("validate", "x.mobileconfig", 16 << 20),
    ];
    for (command, name, limit) in cases {
        for (file, needle) in hostile_inputs(tmp.path(), &format!("{command}-{name}"), Some(limit)) {
            let output = confine_bounded(tmp.path(), &[command.as_ref(), file.as_os_str()], &[]);
            assert_refused(&output, &needle);
        }
    }
    // A trail is read line by line, each line bounded: only its kind is checked.
    for (file, needle) in hostile_inputs(tmp.path(), "trail.jsonl", None) {
        assert_refused(
            &confine_bounded(tmp.path(), &["audit".as_ref(), file.as_os_str()], &[]),
            &needle,
        );
    }
}

#[test]
fn lock_files_and_identities_must_be_bounded_regular_files() {
    let spec = crate::util::example_with("      install: npm ", "      install: bundle ");
    for kind in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "fleet.yaml", spec.as_bytes());
        let (lock, needle) = hostile_inputs(tmp.path(), "lock", Some(64 << 20))[kind].clone();
        std::fs::rename(&lock, tmp.path().join("fleet.lock")).unwrap();
        let output = confine_bounded(
            tmp.path(),
            &[
                "build".as_ref(),
                "fleet.yaml".as_ref(),
                "--out".as_ref(),
                "dist".as_ref(),
            ],
            &[],
        );
        assert_refused(&output, &needle);
        assert!(!tmp.path().join("dist").exists());
    }
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "fleet.yaml", crate::util::example_spec().as_bytes());
    for (file, needle) in hostile_inputs(tmp.path(), "id.p12", Some(1024 * 1024)) {
        let output = confine_bounded(
            tmp.path(),
            &[
                "build".as_ref(),
                "fleet.yaml".as_ref(),
                "--identity".as_ref(),
                file.as_os_str(),
                "--out".as_ref(),
                "dist".as_ref(),
            ],
            &[("CONFINE_IDENTITY_PASSWORD", "x")],
        );
        assert_refused(&output, &needle);
    }
}

/// A cpio entry: name, st_mode, data.
type CpioEntry<'a> = (&'a str, u32, &'a [u8]);

/// A component package whose PackageInfo is `package_info` and whose Payload (no Bom) holds `entries`.
fn package_with_payload(package_info: &[u8], entries: &[CpioEntry]) -> Vec<u8> {
    let mut cpio = Vec::new();
    for (name, mode, data) in entries {
        cpio.extend_from_slice(&cpio_entry(name.as_bytes(), *mode, data.len() as u64));
        cpio.extend_from_slice(data);
    }
    let payload = cpio_archive(cpio);
    component_package(
        |heap| vec![heap.file("Payload", &payload, Encoding::Stored)],
        package_info,
    )
}

#[test]
fn verify_refuses_payload_paths_that_leave_the_install_location() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[CpioEntry], &str); 3] = [
        (
            "dotdot",
            &[(".", 0o40755, b""), ("./../../etc/sudoers.d/x", 0o100644, b"ALL")],
            "Payload path ./../../etc/sudoers.d/x climbs out of the install location with `..`",
        ),
        (
            "absolute",
            &[(".", 0o40755, b""), ("/etc/sudoers", 0o100644, b"ALL")],
            "Payload path /etc/sudoers is absolute",
        ),
        (
            "beneath-link",
            &[
                (".", 0o40755, b""),
                ("./Library", 0o120755, b"/etc"),
                ("./library/sudoers", 0o100644, b"ALL"),
            ],
            "Payload path ./library/sudoers is beneath ./library, a symlink of the same Payload",
        ),
    ];
    for (name, entries, needle) in cases {
        let file = write(
            tmp.path(),
            &format!("{name}.pkg"),
            &package_with_payload(PACKAGE_INFO, entries),
        );
        refuse("verify", &file, needle);
    }
}

#[test]
fn verify_refuses_script_paths_and_bad_install_locations() {
    let tmp = tempfile::tempdir().unwrap();
    let scripts = cpio_archive(cpio_entry(b"./postinstall", 0o100755, 0));
    let package_info = br#"<pkg-info identifier="com.example.x" version="1" install-location="/"><scripts><postinstall file="../../../usr/bin/true"/></scripts></pkg-info>"#;
    let package = component_package(
        |heap| vec![heap.file("Scripts", &scripts, Encoding::Stored)],
        package_info,
    );
    let file = write(tmp.path(), "script.pkg", &package);
    refuse(
        "verify",
        &file,
        "PackageInfo names script ../../../usr/bin/true, which is not a plain file name in Scripts",
    );

    for (name, package_info, needle) in [
        (
            "missing",
            &br#"<pkg-info identifier="com.example.x" version="1"/>"#[..],
            "PackageInfo has no install-location",
        ),
        (
            "relative",
            br#"<pkg-info identifier="com.example.x" version="1" install-location="Library"/>"#,
            "PackageInfo install-location \"Library\" is not an absolute path",
        ),
    ] {
        let file = write(
            tmp.path(),
            &format!("{name}.pkg"),
            &component_package(|_| Vec::new(), package_info),
        );
        refuse("verify", &file, needle);
    }
}

#[test]
fn unsigned_packages_and_profiles_are_refused_alike_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let package = write(
        tmp.path(),
        "unsigned.pkg",
        &component_package(|_| Vec::new(), PACKAGE_INFO),
    );
    let profile = write(
        tmp.path(),
        "unsigned.mobileconfig",
        br#"<?xml version="1.0"?><plist version="1.0"><dict/></plist>"#,
    );
    refuse(
        "verify",
        &package,
        "the package is not signed (pass --allow-unsigned",
    );
    refuse(
        "verify",
        &profile,
        "the profile is not signed (pass --allow-unsigned",
    );
    let allowed = confine_bounded(
        tmp.path(),
        &[
            "verify".as_ref(),
            "--allow-unsigned".as_ref(),
            package.as_os_str(),
            profile.as_os_str(),
        ],
        &[],
    );
    assert!(allowed.status.success(), "{allowed:?}");
}

/// A profile signed by a fresh self-signed key with `digest` (`openssl cms -sign -md <digest>`).
fn profile_signed_with(dir: &Path, digest: &str) -> PathBuf {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    if !dir.join("key.pem").exists() {
        run(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
            "-subj", "/CN=weak", "-days", "2",
        ]);
        std::fs::write(
            dir.join("plain.mobileconfig"),
            br#"<?xml version="1.0"?><plist version="1.0"><dict/></plist>"#,
        )
        .unwrap();
    }
    let signed = format!("{digest}.mobileconfig");
    run(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-md",
        digest,
        "-outform",
        "DER",
        "-signer",
        "cert.pem",
        "-inkey",
        "key.pem",
        "-in",
        "plain.mobileconfig",
        "-out",
        &signed,
    ]);
    dir.join(signed)
}

#[test]
fn profiles_signed_with_md5_or_sha1_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let strong = profile_signed_with(tmp.path(), "sha256");
    let output = confine_bounded(tmp.path(), &["verify".as_ref(), strong.as_os_str()], &[]);
    assert!(output.status.success(), "{output:?}");
    for (digest, name) in [("sha1", "SHA-1"), ("md5", "MD5")] {
        let weak = profile_signed_with(tmp.path(), digest);
        refuse(
            "verify",
            &weak,
            &format!("the profile is signed with {name}, which is refused"),
        );
    }
}

#[test]
fn audit_escapes_bidi_controls_and_line_separators() {
    let tmp = tempfile::tempdir().unwrap();
    let trail = write(
        tmp.path(),
        "trail.jsonl",
        br#"{"process":{"executable":{"path":"/bin/sh"}},"event":{"exec":{"target":{"executable":{"path":"/bin/echo\u202e"}},"args":["echo","a\u2028b","c\u2029d","e\u061cf","g\u2067h","i\u0085j","k\u200bl","m\ufeffn"]}}}
"#,
    );
    let output = confine_bounded(tmp.path(), &["audit".as_ref(), trail.as_os_str()], &[]);
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8(output.stdout).unwrap();
    for raw in [
        '\u{202e}', '\u{2028}', '\u{2029}', '\u{61c}', '\u{2067}', '\u{85}', '\u{200b}', '\u{feff}',
    ] {
        assert!(!shown.contains(raw), "{raw:?} reached the terminal: {shown:?}");
    }
    for escaped in [
        r"\u{2028}",
        r"\u{2029}",
        r"\u{61c}",
        r"\u{2067}",
        r"\u{85}",
        r"\u{202e}",
    ] {
        assert!(shown.contains(escaped), "{escaped} missing from {shown}");
    }
}
