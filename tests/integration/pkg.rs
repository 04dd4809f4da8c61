//! Flat packages written by `confine::pkg`, read back by independent readers: apple-xar,
//! apple-flat-package, apple-bom, cpio-archive, bsdtar, 7-Zip and cksum, plus our own inspect/verify.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};
use apple_flat_package::{PkgReader, reader::PkgFlavor};
use apple_xar::reader::XarReader;
use confine::pkg::{BuildOptions, Component, Payload, Product, Script, inspect, verify, write_product};
use confine::sign::TocSigner;
use cpio_archive::{CpioReader, odc::OdcReader};
use flate2::read::GzDecoder;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::x509::X509;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/apple-productsign-2011.pkg"
);
const OPTIONS: BuildOptions = BuildOptions { mtime: 1_700_000_000 };
const AGENT: &str = "com.example.agent";
const SETUP: &str = "com.example.agent.setup";

/// Contents of the in-memory files, by payload path, so tests can compare against them.
fn sample_files(extra: usize) -> Vec<(String, Vec<u8>, u32)> {
    let mut files = vec![
        (
            "/Library/LaunchDaemons/com.example.agent.plist".to_owned(),
            b"<plist>daemon</plist>\n".to_vec(),
            0o644,
        ),
        (
            "/usr/local/libexec/agent".to_owned(),
            b"#!/bin/sh\nexec true\n".to_vec(),
            0o755,
        ),
        (
            "/Library/Application Support/Agent/secret.env".to_owned(),
            b"TOKEN=s3cr&t<\n".to_vec(),
            0o600,
        ),
        (
            "/Library/Application Support/Agent/empty".to_owned(),
            Vec::new(),
            0o644,
        ),
    ];
    for i in 0..extra {
        files.push((
            format!("/Library/Agent/many/f{i:04}"),
            format!("file {i}\n").repeat(i % 7).into_bytes(),
            0o644,
        ));
    }
    files
}

fn sample_product(extra: usize) -> Result<Product> {
    let mut payload = Payload::new();
    payload.add_dir("/Library/Application Support/Agent", 0o750, 0, 80)?;
    for (path, contents, mode) in sample_files(extra) {
        payload.add_file(&path, contents, mode, 0, 0)?;
    }
    payload.add_symlink("/usr/local/bin/agent", "../libexec/agent", 0, 0)?;
    let scripts = vec![
        Script {
            name: "postinstall".into(),
            contents: b"#!/bin/sh\n. ./helper.sh\n".to_vec(),
            mode: 0o755,
        },
        Script {
            name: "helper.sh".into(),
            contents: b"true\n".to_vec(),
            mode: 0o644,
        },
        Script {
            name: "preinstall".into(),
            contents: b"#!/bin/sh\nexit 0\n".to_vec(),
            mode: 0o755,
        },
    ];
    let setup = Component {
        identifier: SETUP.into(),
        version: "1.2.3".into(),
        payload: None,
        scripts: vec![Script {
            name: "postinstall".into(),
            contents: b"#!/bin/sh\n".to_vec(),
            mode: 0o755,
        }],
    };
    Ok(Product {
        title: "Example Agent & <Friends>".into(),
        identifier: "com.example.agent.product".into(),
        version: "1.2.3".into(),
        minimum_macos: "13.0".into(),
        components: vec![
            Component {
                identifier: AGENT.into(),
                version: "1.2.3".into(),
                payload: Some(payload),
                scripts,
            },
            setup,
        ],
    })
}

fn build(product: &Product, signer: Option<&dyn TocSigner>) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("agent.pkg");
    let mut file = File::create(&path)?;
    write_product(product, &mut file, &OPTIONS, signer)?;
    Ok((dir, path))
}

/// Fail loudly, naming the Debian package, when a command-line tool the tests need is missing.
fn require(name: &str, apt_package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    assert!(found, "`{name}` is not installed: apt-get install {apt_package}");
}

fn tool(name: &str, apt_package: &str) -> Command {
    require(name, apt_package);
    Command::new(name)
}

fn run(command: &mut Command) -> Result<Output> {
    command
        .output()
        .with_context(|| format!("cannot run {command:?}"))
}

fn xar_file(xar: &mut XarReader<File>, path: &str) -> Result<Vec<u8>> {
    xar.get_file_data_from_path(path)?
        .with_context(|| format!("{path} missing from the archive"))
}

#[test]
fn apple_xar_reads_every_file_and_the_toc_checksum() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let mut xar = XarReader::new(File::open(&path)?)?;
    assert!(xar.verify_table_of_contents_checksum()?);
    let names: Vec<String> = xar.files()?.into_iter().map(|(name, _)| name).collect();
    for expected in [
        "Distribution",
        "com.example.agent.pkg/Bom",
        "com.example.agent.pkg/Payload",
        "com.example.agent.pkg/Scripts",
        "com.example.agent.pkg/PackageInfo",
        "com.example.agent.setup.pkg/PackageInfo",
        "com.example.agent.setup.pkg/Scripts",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|name| name == "com.example.agent.setup.pkg/Bom"),
        "payload-free component has a Bom"
    );
    for (name, file) in xar.files()? {
        let Some(data) = file.data else { continue };
        let decoded = xar_file(&mut xar, &name)?;
        let digest = openssl::hash::hash(MessageDigest::sha1(), &decoded)?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, data.extracted_checksum.checksum, "{name}");
        assert_eq!(decoded.len() as u64, data.size, "{name}");
    }
    Ok(())
}

#[test]
fn apple_flat_package_sees_a_product_with_two_components() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let mut reader = PkgReader::new(File::open(&path)?)?;
    assert_eq!(reader.flavor(), PkgFlavor::Product);
    let distribution = reader.distribution()?.context("no Distribution")?;
    assert_eq!(distribution.min_spec_version, 2);
    let options = distribution.options.context("no <options>")?;
    assert_eq!(options.host_architecutres.as_deref(), Some("x86_64,arm64"));
    assert_eq!(
        distribution.product.context("no <product>")?.id,
        "com.example.agent.product"
    );
    let distribution_pkg_refs = distribution.pkg_ref;
    let components = reader.component_packages()?;
    assert_eq!(components.len(), 2);
    let info = components
        .iter()
        .filter_map(|c| c.package_info())
        .find(|i| i.identifier == AGENT)
        .context("agent")?;
    assert_eq!(
        (info.format_version, info.version.as_str(), info.auth.as_str()),
        (2, "1.2.3", "root")
    );
    assert_eq!(info.install_location.as_deref(), Some("/"));
    // pkgbuild's attributes, as apple-flat-package reads them.
    assert_eq!(
        (info.overwrite_permissions, info.relocatable),
        (Some(true), Some(false))
    );
    assert_eq!(info.postinstall_action.as_deref(), Some("none"));
    assert!(
        info.generator_version
            .as_deref()
            .is_some_and(|g| g.starts_with("confine-"))
    );
    let pkg_refs_with_bundle_version = distribution_pkg_refs
        .iter()
        .filter(|r| r.bundle_version.is_some())
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(pkg_refs_with_bundle_version, [AGENT, "com.example.agent.setup"]);
    let payload = info.payload.as_ref().context("no <payload>")?;
    // ".", Library, Library/Application Support, …/Agent, LaunchDaemons, usr, usr/local, libexec, bin,
    // 4 files, 1 symlink, Library/Agent, Library/Agent/many, 3 extra files.
    assert_eq!(payload.number_of_files, 19);
    assert_eq!(info.scripts.scripts.len(), 2);
    let setup = components
        .iter()
        .filter_map(|c| c.package_info())
        .find(|i| i.identifier == SETUP)
        .context("setup")?;
    assert!(setup.payload.is_none());
    Ok(())
}

/// (mode, uid, gid, size) per path as the cpio-archive crate reads the Payload.
fn cpio_listing(payload_gz: &[u8]) -> Result<BTreeMap<String, (u32, u32, u32, u64)>> {
    let mut reader = OdcReader::new(GzDecoder::new(payload_gz));
    let mut listing = BTreeMap::new();
    while let Some(header) = reader.read_next()? {
        listing.insert(
            header.name().to_owned(),
            (header.mode(), header.uid(), header.gid(), header.file_size()),
        );
    }
    Ok(listing)
}

fn bom_of(path: &Path, component: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut xar = XarReader::new(File::open(path)?)?;
    Ok((
        xar_file(&mut xar, &format!("{component}.pkg/Bom"))?,
        xar_file(&mut xar, &format!("{component}.pkg/Payload"))?,
    ))
}

#[test]
fn apple_bom_paths_equal_the_payload_cpio_entries() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let (bom, payload) = bom_of(&path, AGENT)?;
    let cpio = cpio_listing(&payload)?;
    assert_eq!(cpio.keys().next().map(String::as_str), Some("."));
    let parsed = apple_bom::ParsedBom::parse(&bom)?;
    let mut from_bom = BTreeMap::new();
    for entry in parsed.paths()? {
        let is_dir = u32::from(entry.file_mode()) & 0o170000 == 0o040000;
        // cpio records no size for directories; the BOM records 0.
        let size = if is_dir { 0 } else { entry.size() as u64 };
        from_bom.insert(
            entry.path().to_owned(),
            (
                u32::from(entry.file_mode()),
                entry.user_id(),
                entry.group_id(),
                size,
            ),
        );
    }
    assert_eq!(from_bom, cpio);
    assert_eq!(cpio["./Library/Application Support/Agent/secret.env"].0, 0o100600);
    assert_eq!(cpio["./Library/Application Support/Agent"], (0o040750, 0, 80, 0));
    assert_eq!(cpio["./usr/local/libexec/agent"].0, 0o100755);
    assert_eq!(cpio["./usr/local/bin/agent"], (0o120755, 0, 0, 16));
    Ok(())
}

#[test]
fn bom_checksums_equal_the_cksum_command() -> Result<()> {
    let (dir, path) = build(&sample_product(3)?, None)?;
    let (bom, _) = bom_of(&path, AGENT)?;
    let parsed = apple_bom::ParsedBom::parse(&bom)?;
    let crcs: BTreeMap<String, Option<u32>> = parsed
        .paths()?
        .iter()
        .map(|p| (p.path().to_owned(), p.crc32()))
        .collect();
    let mut expected = sample_files(3);
    expected.push(("/usr/local/bin/agent".into(), b"../libexec/agent".to_vec(), 0));
    for (index, (payload_path, contents, _)) in expected.iter().enumerate() {
        let copy = dir.path().join(format!("copy{index}"));
        fs::write(&copy, contents)?;
        let output = run(tool("cksum", "coreutils").arg(&copy))?;
        let stdout = String::from_utf8(output.stdout)?;
        let value: u32 = stdout
            .split_whitespace()
            .next()
            .context("no cksum output")?
            .parse()?;
        assert_eq!(crcs[&format!(".{payload_path}")], Some(value), "{payload_path}");
    }
    Ok(())
}

#[test]
fn more_than_256_paths_split_the_bom_into_linked_leaves() -> Result<()> {
    let (_dir, path) = build(&sample_product(600)?, None)?;
    let (bom, payload) = bom_of(&path, AGENT)?;
    let parsed = apple_bom::ParsedBom::parse(&bom)?;
    let tree = parsed.block_as_tree(parsed.find_variable("Paths")?.block_index as usize)?;
    let root = tree.paths(&parsed)?;
    assert_eq!(root.is_path_info, 0, "the Paths root should be a branch");
    assert_eq!(root.count, 3, "616 paths make three leaves of at most 256");
    let bom_paths: Vec<String> = parsed.paths()?.iter().map(|p| p.path().to_owned()).collect();
    let cpio_paths: Vec<String> = cpio_listing(&payload)?.into_keys().collect();
    assert_eq!(bom_paths.len(), 616);
    let mut sorted = bom_paths.clone();
    sorted.sort();
    assert_eq!(sorted, cpio_paths);
    assert!(verify(&path)?.is_ok());
    Ok(())
}

#[test]
fn bsdtar_and_7zip_read_it_cleanly() -> Result<()> {
    let (_dir, path) = build(&sample_product(300)?, None)?;
    let listed = run(tool("bsdtar", "libarchive-tools").arg("-tvf").arg(&path))?;
    assert!(listed.status.success() && listed.stderr.is_empty(), "{listed:?}");
    assert!(String::from_utf8(listed.stdout)?.contains("com.example.agent.pkg/Payload"));
    let extracted = run(tool("bsdtar", "libarchive-tools").arg("-xOf").arg(&path))?;
    assert!(
        extracted.status.success() && extracted.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&extracted.stderr)
    );
    let tested = run(tool("7zz", "7zip").arg("t").arg(&path))?;
    let stdout = String::from_utf8(tested.stdout)?;
    assert!(tested.status.success() && !stdout.contains("Warning"), "{stdout}");
    Ok(())
}

fn corrupt(path: &Path, offset: u64) -> Result<PathBuf> {
    let mut bytes = fs::read(path)?;
    let byte = bytes.get_mut(offset as usize).context("offset past the end")?;
    *byte ^= 0x55;
    let corrupted = path.with_extension("corrupt.pkg");
    fs::write(&corrupted, bytes)?;
    Ok(corrupted)
}

#[test]
fn a_corrupt_payload_byte_is_caught() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let xar = XarReader::new(File::open(&path)?)?;
    let payload = xar
        .find_file("com.example.agent.pkg/Payload")?
        .and_then(|f| f.data)
        .context("Payload")?;
    let bad = corrupt(
        &path,
        xar.heap_start_offset() + payload.offset + payload.length / 2,
    )?;
    let extracted = run(tool("bsdtar", "libarchive-tools").arg("-xOf").arg(&bad))?;
    assert!(!extracted.status.success(), "bsdtar accepted a corrupt payload");
    let tested = run(tool("7zz", "7zip").arg("t").arg(&bad))?;
    assert_eq!(
        tested.status.code(),
        Some(2),
        "7zz: {}",
        String::from_utf8_lossy(&tested.stdout)
    );
    let report = verify(&bad)?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("Payload: archived-checksum mismatch")),
        "{:?}",
        report.problems
    );
    Ok(())
}

#[test]
fn a_corrupt_toc_byte_is_caught() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    // Byte 40 is inside the zlib-compressed TOC, which starts at 28.
    let bad = corrupt(&path, 40)?;
    let listed = run(tool("bsdtar", "libarchive-tools").arg("-tvf").arg(&bad))?;
    assert!(!listed.status.success(), "bsdtar accepted a corrupt TOC");
    let tested = run(tool("7zz", "7zip").arg("t").arg(&bad))?;
    let stdout = String::from_utf8_lossy(&tested.stdout);
    // The TOC no longer inflates, so 7-Zip gives up on the xar format altogether.
    assert_eq!(tested.status.code(), Some(2), "7zz: {stdout}");
    assert!(
        stdout.contains("Cannot open the file as [Xar] archive"),
        "7zz: {stdout}"
    );
    let report = verify(&bad)?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("TOC checksum does not match")),
        "{:?}",
        report.problems
    );
    assert!(inspect(&bad).is_err());
    Ok(())
}

#[test]
fn a_corrupt_toc_checksum_is_caught() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let xar = XarReader::new(File::open(&path)?)?;
    // The stored checksum is the first heap byte: the TOC itself stays decodable.
    let bad = corrupt(&path, xar.heap_start_offset())?;
    let listed = run(tool("bsdtar", "libarchive-tools").arg("-tvf").arg(&bad))?;
    assert!(!listed.status.success(), "bsdtar accepted a bad TOC checksum");
    // pkg.md §1.5: 7-Zip only warns about the TOC checksum.
    let tested = run(tool("7zz", "7zip").arg("t").arg(&bad))?;
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success() && stdout.contains("Warning"),
        "7zz: {stdout}"
    );
    let report = verify(&bad)?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("TOC checksum does not match"));
    Ok(())
}

#[test]
fn identical_input_gives_identical_bytes() -> Result<()> {
    let (_a, first) = build(&sample_product(300)?, None)?;
    let (_b, second) = build(&sample_product(300)?, None)?;
    assert!(fs::read(first)? == fs::read(second)?);
    Ok(())
}

#[test]
fn trees_from_disk_keep_modes_and_symlinks() -> Result<()> {
    let source = tempfile::tempdir()?;
    fs::create_dir_all(source.path().join("sub/deeper"))?;
    fs::write(source.path().join("sub/run.sh"), "#!/bin/sh\n")?;
    fs::write(source.path().join("sub/deeper/data"), vec![7u8; 100_000])?;
    fs::write(source.path().join("private"), "x")?;
    std::os::unix::fs::symlink("sub/run.sh", source.path().join("link"))?;
    let set_mode = |path: &str, mode| {
        fs::set_permissions(
            source.path().join(path),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
    };
    set_mode("sub/run.sh", 0o755)?;
    set_mode("private", 0o600)?;
    set_mode("sub/deeper", 0o700)?;
    let mut payload = Payload::new();
    payload.add_tree_from_disk("/opt/agent", source.path(), 0, 0)?;
    let mut product = sample_product(0)?;
    product.components[0].payload = Some(payload);
    let (_dir, path) = build(&product, None)?;
    let (_, gz) = bom_of(&path, AGENT)?;
    let cpio = cpio_listing(&gz)?;
    let names: Vec<&str> = cpio.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            ".",
            "./opt",
            "./opt/agent",
            "./opt/agent/link",
            "./opt/agent/private",
            "./opt/agent/sub",
            "./opt/agent/sub/deeper",
            "./opt/agent/sub/deeper/data",
            "./opt/agent/sub/run.sh"
        ]
    );
    assert_eq!(
        cpio["./opt/agent"].0, 0o040755,
        "the destination is not given the temp dir's mode"
    );
    assert_eq!(cpio["./opt/agent/link"], (0o120755, 0, 0, 10));
    assert_eq!(cpio["./opt/agent/private"].0, 0o100600);
    assert_eq!(cpio["./opt/agent/sub/deeper"].0, 0o040700);
    assert_eq!(cpio["./opt/agent/sub/deeper/data"], (0o100644, 0, 0, 100_000));
    assert!(verify(&path)?.is_ok());
    Ok(())
}

#[test]
fn package_info_and_distribution_snapshots() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let mut xar = XarReader::new(File::open(&path)?)?;
    insta::assert_snapshot!(
        "package_info",
        String::from_utf8(xar_file(&mut xar, "com.example.agent.pkg/PackageInfo")?)?
    );
    insta::assert_snapshot!(
        "package_info_payload_free",
        String::from_utf8(xar_file(&mut xar, "com.example.agent.setup.pkg/PackageInfo")?)?
    );
    insta::assert_snapshot!(
        "distribution",
        String::from_utf8(xar_file(&mut xar, "Distribution")?)?
    );
    Ok(())
}

#[test]
fn inspect_and_verify_our_product() -> Result<()> {
    let (_dir, path) = build(&sample_product(3)?, None)?;
    let report = verify(&path)?;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.files_checked, 7);
    let parts = report.signature_parts.context("no checksum parts")?;
    assert_eq!(
        (parts.checksum_style.as_str(), parts.toc_checksum.len()),
        ("sha1", 20)
    );
    assert!(parts.rsa_signature.is_none() && parts.cms_signature.is_none());
    let text = inspect(&path)?;
    for expected in [
        "TOC checksum: sha1 at heap offset 0, 20 bytes",
        "creation-time: 2023-11-14T22:13:20",
        "signature: none",
        "Distribution: Example Agent & <Friends>",
        "hostArchitectures x86_64,arm64",
        "macOS >= 13.0",
        "pkg-ref com.example.agent 1.2.3 installKBytes=24 -> #com.example.agent.pkg",
        "identifier com.example.agent version 1.2.3",
        "payload numberOfFiles=19 installKBytes=24",
        "script postinstall 24 bytes mode 755",
        "100600 0/0 14 ./Library/Application Support/Agent/secret.env",
        "120755 0/0 16 ./usr/local/bin/agent -> ../libexec/agent",
        "component com.example.agent.setup.pkg",
        "payload-free",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    Ok(())
}

#[test]
fn inspect_and_verify_read_apples_2011_productsign_output() -> Result<()> {
    let path = Path::new(FIXTURE);
    let text = inspect(path)?;
    for expected in [
        "signature-creation-time: 322924475",
        "signature: RSA at heap offset 20, 256 bytes, 3 certificate(s), signer ",
        "CN=Mikkel Krautz",
        "component mumbleoverlay.pkg",
        "script postinstall 142 bytes mode 755",
        "120755 501/20 28 ./MumbleOverlay.osax/Contents/CodeResources -> _CodeSignature/CodeResources",
        "100755 0/80 138496 ./libmumbleoverlay.dylib",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let report = verify(path)?;
    assert!(report.is_ok(), "{:?}", report.problems);
    let parts = report.signature_parts.context("no signature parts")?;
    assert_eq!(parts.rsa_signature.map(|s| s.len()), Some(256));
    assert_eq!(parts.rsa_certificates.len(), 3);
    Ok(())
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() -> Result<()> {
    let (dir, path) = build(&sample_product(3)?, None)?;
    let garbage = dir.path().join("garbage.pkg");
    fs::write(&garbage, vec![0xA5; 4096])?;
    assert!(inspect(&garbage).is_err());
    assert!(verify(&garbage).is_err());
    let bytes = fs::read(&path)?;
    for keep in [0, 3, 27, 28, 100, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.path().join(format!("cut{keep}.pkg"));
        fs::write(&truncated, &bytes[..keep])?;
        assert!(inspect(&truncated).is_err(), "inspect accepted {keep} bytes");
        let verified = verify(&truncated);
        assert!(
            verified.as_ref().map_or(true, |report| !report.is_ok()),
            "verify accepted {keep} bytes"
        );
    }
    Ok(())
}

/// A throwaway signer: a fresh RSA key and self-signed certificate, signing like xar/productsign.
struct TestSigner {
    key: PKey<Private>,
    certificate: X509,
}

impl TestSigner {
    fn new() -> Result<Self> {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
        let mut name = openssl::x509::X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "confine test installer")?;
        let name = name.build();
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&key)?;
        builder.set_not_before(openssl::asn1::Asn1Time::days_from_now(0)?.as_ref())?;
        builder.set_not_after(openssl::asn1::Asn1Time::days_from_now(1)?.as_ref())?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(Self {
            key,
            certificate: builder.build(),
        })
    }
}

impl TocSigner for TestSigner {
    fn certificates(&self) -> Vec<Vec<u8>> {
        self.certificate.to_der().into_iter().collect()
    }

    fn rsa_signature_size(&self) -> usize {
        self.key.size()
    }

    fn cms_signature_size(&self) -> usize {
        4096
    }

    fn sign_rsa(&self, toc_checksum: &[u8]) -> Result<Vec<u8>> {
        let mut context = PkeyCtx::new(&self.key)?;
        context.sign_init()?;
        context.set_signature_md(Md::sha1())?;
        let mut signature = Vec::new();
        context.sign_to_vec(toc_checksum, &mut signature)?;
        Ok(signature)
    }

    fn sign_cms(&self, toc_checksum: &[u8]) -> Result<Vec<u8>> {
        let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
        Ok(CmsContentInfo::sign(
            Some(&self.certificate),
            Some(&self.key),
            None,
            Some(toc_checksum),
            flags,
        )?
        .to_der()?)
    }
}

#[test]
fn signed_products_reserve_and_fill_the_signature_space() -> Result<()> {
    let signer = TestSigner::new()?;
    let (_dir, path) = build(&sample_product(3)?, Some(&signer))?;
    let mut xar = XarReader::new(File::open(&path)?)?;
    assert!(xar.verify_table_of_contents_checksum()?);
    let toc = xar.table_of_contents().clone();
    let rsa = toc.signature.as_ref().context("no <signature>")?;
    let cms = toc.x_signature.as_ref().context("no <x-signature>")?;
    assert_eq!((rsa.offset, rsa.size, cms.offset, cms.size), (20, 256, 276, 4096));
    // Every file's data now starts after the reserved space and still decodes (checked by apple-xar).
    for (name, file) in xar.files()? {
        if let Some(data) = file.data {
            assert!(data.offset >= 20 + 256 + 4096, "{name} at {}", data.offset);
            xar_file(&mut xar, &name)?;
        }
    }
    let (signature, certificates) = xar.rsa_signature()?.context("no RSA signature")?;
    assert_eq!(certificates.len(), 1);
    // RSA: PKCS#1 v1.5 over DigestInfo(sha1, checksum), checked with openssl as xar would.
    let checksum = xar.checksum()?.1;
    let mut context = PkeyCtx::new(&signer.key)?;
    context.verify_init()?;
    context.set_signature_md(Md::sha1())?;
    assert!(context.verify(&checksum, &signature)?);
    assert!(xar.verify_cms_signature()?, "apple-xar rejects the CMS signature");
    let report = verify(&path)?;
    assert!(report.is_ok(), "{:?}", report.problems);
    let parts = report.signature_parts.context("no parts")?;
    assert_eq!(parts.toc_checksum, checksum);
    assert_eq!(parts.rsa_signature.as_deref(), Some(signature.as_slice()));
    let cms_der = parts.cms_signature.context("no CMS bytes")?;
    let mut cms_info = CmsContentInfo::from_der(&cms_der)?;
    assert_eq!(
        cms_info.to_der()?,
        cms_der,
        "the reservation's zero padding was not stripped"
    );
    let store = openssl::x509::store::X509StoreBuilder::new()?.build();
    cms_info.verify(
        None,
        Some(&store),
        Some(&checksum),
        None,
        CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )?;
    assert_eq!(parts.cms_certificates, vec![signer.certificate.to_der()?]);
    let listed = run(tool("bsdtar", "libarchive-tools").arg("-xOf").arg(&path))?;
    assert!(listed.status.success() && listed.stderr.is_empty(), "{listed:?}");
    let tested = run(tool("7zz", "7zip").arg("t").arg(&path))?;
    let stdout = String::from_utf8(tested.stdout)?;
    assert!(tested.status.success() && !stdout.contains("Warning"), "{stdout}");
    assert!(inspect(&path)?.contains("signer CN=confine test installer"));
    let mut header = [0u8; 28];
    File::open(&path)?.read_exact(&mut header)?;
    ensure!(
        header[..4] == *b"xar!" && header[4..6] == [0, 28],
        "bad header {header:?}"
    );
    Ok(())
}

#[test]
fn multi_block_payloads_are_one_standard_gzip_stream() -> Result<()> {
    let mut product = sample_product(3)?;
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| b"agent plist launchd "[(i % 20) as usize] ^ u8::from(i % 7919 == 0))
        .collect();
    let payload = product.components[0].payload.as_mut().context("payload")?;
    payload.add_file("/opt/agent/big.bin", big.clone(), 0o644, 0, 0)?;
    let (dir, path) = build(&product, None)?;
    let (_, gz) = bom_of(&path, AGENT)?;
    let payload_file = dir.path().join("Payload");
    fs::write(&payload_file, &gz)?;
    let tested = run(tool("gzip", "gzip").arg("-t").arg(&payload_file))?;
    assert!(tested.status.success() && tested.stderr.is_empty(), "{tested:?}");
    require("cpio", "cpio");
    let pipeline = format!("gzip -dc < '{}' | cpio -itv", payload_file.display());
    let listing = run(Command::new("sh").arg("-c").arg(pipeline))?;
    let stdout = String::from_utf8(listing.stdout)?;
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let line = stdout
        .lines()
        .find(|line| line.ends_with("./opt/agent/big.bin"))
        .context(stdout.clone())?;
    assert!(
        line.starts_with("-rw-r--r--   1 root     root      3500000 "),
        "{line}"
    );
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|line| line.starts_with("drwxr-xr-x") && line.ends_with(" .")),
        "{stdout}"
    );
    Ok(())
}
