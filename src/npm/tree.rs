//! Lays out the locked packages as npm would install them (`node_modules` paths from the lockfile),
//! streamed straight from the cached tarballs into the package's Payload: nothing is unpacked to disk,
//! and each tarball is read once, its sha512 checked against the lockfile over every byte as it is
//! read. Like npm's own extractor, links in a tarball are dropped, files are 0644 (0755 with any execute
//! bit) and folders 0755. No lifecycle script runs. Every prebuilt binary of a platform package must be
//! a binary of that platform: Mach-O of the package's arch for darwin.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Component, Path};

use anyhow::{Context, Result, ensure};
use flate2::read::GzDecoder;
use flate2::{Crc, CrcReader};

use super::lock::MAC_PLATFORMS;
use super::{Cache, Integrity, LockedPackage, Lockfile, Platform};
use crate::pkg::{Tree, TreeSink};

/// The bundles to vendor, per OpenClaw version, ready to be streamed into a Payload.
#[derive(Debug)]
pub struct Vendored {
    /// OpenClaw version → its bundle (the contents of the bundle root: `node_modules/`).
    pub trees: BTreeMap<String, Bundle>,
}

/// One OpenClaw version's locked packages and the cache that holds their tarballs: a [`Tree`] whose
/// entries come from the tarballs while the Payload is written.
#[derive(Debug, Clone)]
pub struct Bundle {
    cache: Cache,
    /// `node_modules` path → package, in path order (a package before the ones nested in it).
    packages: Vec<(String, LockedPackage)>,
}

/// The platforms bundles are built for: both Macs, or (tests only) `CONFINE_TEST_PLATFORMS`, e.g.
/// `linux-x64`, so the simulated Mac can run the bundled gateway.
pub fn platforms() -> Result<Vec<Platform>> {
    match std::env::var("CONFINE_TEST_PLATFORMS") {
        Ok(list) if !list.is_empty() => list.split(',').map(|p| parse_platform(p.trim())).collect(),
        _ => MAC_PLATFORMS.iter().map(|p| parse_platform(p)).collect(),
    }
}

fn parse_platform(text: &str) -> Result<Platform> {
    Platform::try_from(text.to_owned()).map_err(anyhow::Error::msg)
}

/// Fetches what the cache lacks and returns each version's bundle; the tarballs are read (and their
/// integrity checked) only when the Payload is written.
pub fn vendor(lock: &Lockfile, spec: &Path, versions: &[String], cache: &Cache) -> Result<Vendored> {
    let wanted = platforms()?;
    ensure!(
        lock.platforms == wanted,
        "{} was locked for {}, the build needs {}: {}",
        super::lock_path(spec).display(),
        list(&lock.platforms),
        list(&wanted),
        super::lock::relock_hint(spec)
    );
    let mut trees = BTreeMap::new();
    for version in versions {
        let packages = lock.packages(version, spec)?;
        for (path, package) in packages {
            safe_relative(path)?;
            Integrity::parse(&package.integrity)
                .with_context(|| format!("the lockfile's {}@{}", package.name, package.version))?;
        }
        let packages = packages
            .iter()
            .map(|(path, package)| (path.clone(), package.clone()))
            .collect();
        trees.insert(
            version.clone(),
            Bundle {
                cache: cache.clone(),
                packages,
            },
        );
    }
    cache.fetch_missing(trees.values().flat_map(|b| b.packages.iter().map(|(_, p)| p)))?;
    Ok(Vendored { trees })
}

fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relative path of plain components only.
fn safe_relative(path: &str) -> Result<()> {
    let p = Path::new(path);
    ensure!(
        !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))),
        "{path:?}: not a plain relative path"
    );
    Ok(())
}

impl Bundle {
    /// The bytes of one file of the bundle, `node_modules/<package>/<file>`, read from its package's
    /// tarball (integrity checked) without laying anything out. For what the scripts need to know before
    /// Installer writes the payload, such as OpenClaw's `engines`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let (root, package) = self
            .packages
            .iter()
            .filter(|(root, _)| {
                path.strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(root, _)| root.len())
            .with_context(|| format!("no locked package holds {path}"))?;
        let mut sink = OneFile { path, contents: None };
        let mut folders = Folders {
            shared: BTreeMap::new(),
            own: HashSet::new(),
            files: HashMap::new(),
        };
        stream(&self.cache, package, root, &mut folders, &mut sink)
            .with_context(|| format!("{}@{} ({root})", package.name, package.version))?;
        sink.contents
            .with_context(|| format!("{}@{} has no {path}", package.name, package.version))
    }
}

/// A sink that keeps one file's bytes and drops the rest.
struct OneFile<'a> {
    path: &'a str,
    contents: Option<Vec<u8>>,
}

impl TreeSink for OneFile<'_> {
    fn directory(&mut self, _: &str, _: u32) -> Result<()> {
        Ok(())
    }

    fn file(&mut self, path: &str, _: u32, size: u64, data: &mut dyn Read) -> Result<()> {
        if path == self.path {
            let mut contents = Vec::new();
            data.take(crate::limits::MAX_MANIFEST_BYTES)
                .read_to_end(&mut contents)?;
            ensure!(
                contents.len() as u64 == size,
                "{path}: larger than {} bytes",
                crate::limits::MAX_MANIFEST_BYTES
            );
            self.contents = Some(contents);
        } else {
            io::copy(data, &mut io::sink())?;
        }
        Ok(())
    }

    fn symlink(&mut self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
}

impl Tree for Bundle {
    fn emit(&self, sink: &mut dyn TreeSink) -> Result<()> {
        // The folders that hold packages (`node_modules`, `node_modules/a/node_modules`, each package
        // root): made once, whichever tarball or package root needs them first. Other folders belong
        // to one tarball and are tracked only while it streams, so memory follows the number of
        // packages, not of files.
        let mut shared: BTreeMap<String, bool> = BTreeMap::new();
        for (path, _) in &self.packages {
            for (at, _) in path.match_indices('/').chain([(path.len(), "")]) {
                shared.insert(path[..at].to_owned(), false);
            }
        }
        let mut folders = Folders {
            shared,
            own: HashSet::new(),
            files: HashMap::new(),
        };
        for (path, package) in &self.packages {
            folders.own.clear();
            folders.files.clear();
            folders.make(path, sink)?;
            stream(&self.cache, package, path, &mut folders, sink)
                .with_context(|| format!("{}@{} ({path})", package.name, package.version))?;
        }
        Ok(())
    }
}

/// Which folders were already sent to the sink.
struct Folders {
    /// Package-holding folders → made yet.
    shared: BTreeMap<String, bool>,
    /// The current tarball's own folders made so far.
    own: HashSet<String>,
    /// The current tarball's files so far: size and CRC-32, to check a second entry of the same path.
    files: HashMap<String, (u64, u32)>,
}

impl Folders {
    /// Sends `path` and its missing parents to the sink, as 0755 folders.
    fn make(&mut self, path: &str, sink: &mut dyn TreeSink) -> Result<()> {
        for (at, _) in path.match_indices('/').chain([(path.len(), "")]) {
            let folder = &path[..at];
            let new = match self.shared.get_mut(folder) {
                Some(made) => !std::mem::replace(made, true),
                None => self.own.insert(folder.to_owned()),
            };
            if new {
                sink.directory(folder, 0o755)?;
            }
        }
        Ok(())
    }
}

/// Streams one tarball's files into the sink below `root` (its first path component stripped, as npm
/// does), after its sha512 matched the lockfile ([`Cache::open_checked`]).
fn stream(
    cache: &Cache,
    package: &LockedPackage,
    root: &str,
    folders: &mut Folders,
    sink: &mut dyn TreeSink,
) -> Result<()> {
    let integrity = Integrity::parse(&package.integrity)?;
    let file = cache.open_checked(&integrity)?;
    let mut archive = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    let platform = package.platform();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let raw = entry.path()?.into_owned();
        let mut parts = raw.components();
        parts.next();
        let relative = parts.as_path();
        if relative.as_os_str().is_empty() {
            continue;
        }
        ensure!(
            relative.components().all(|c| matches!(c, Component::Normal(_))),
            "{}: a path outside the package",
            raw.display()
        );
        let relative_text = relative
            .to_str()
            .with_context(|| format!("{}: file name is not UTF-8", raw.display()))?;
        let path = format!("{root}/{relative_text}");
        if kind.is_dir() {
            folders.make(&path, sink)?;
            continue;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            folders.make(parent, sink)?;
        }
        let mode = if entry.header().mode()? & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let size = entry.size();
        if let Some(&first) = folders.files.get(&path) {
            // Real tarballs hold `package/./dist/index.js` beside `package/dist/index.js`. npm lets
            // the later entry win; a stream cannot take the earlier one back, so the two must agree.
            let mut crc = CrcReader::new(&mut entry);
            io::copy(&mut crc, &mut io::sink())?;
            ensure!(
                first == (size, crc.crc().sum()),
                "{}: the tarball holds this file twice, with different contents",
                raw.display()
            );
            continue;
        }
        let mut head = Vec::with_capacity(4096);
        (&mut entry).take(4096).read_to_end(&mut head)?;
        if let Some(platform) = &platform {
            binary::check(&head, relative, platform)?;
        }
        let mut data = CrcReader::new(head.as_slice().chain(&mut entry));
        sink.file(&path, mode, size, &mut data)?;
        let crc: &Crc = data.crc();
        folders.files.insert(path, (size, crc.sum()));
    }
    Ok(())
}

/// Prebuilt binaries by their magic numbers: Mach-O (thin or fat) and ELF.
mod binary {
    use super::*;

    const CPU_X86_64: u32 = 0x0100_0007;
    const CPU_ARM64: u32 = 0x0100_000c;
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;

    enum Native {
        /// Thin Mach-O, or each slice of a fat one.
        MachO(Vec<u32>),
        Elf(u16),
    }

    fn parse(head: &[u8]) -> Option<Native> {
        let be32 = |at: usize| {
            head.get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        };
        let le32 = |at: usize| {
            head.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        match head.get(..4)? {
            [0xcf, 0xfa, 0xed, 0xfe] | [0xce, 0xfa, 0xed, 0xfe] => Some(Native::MachO(vec![le32(4)?])),
            [0xca, 0xfe, 0xba, 0xbe] => {
                // Java class files share the magic; their next word (a version) is far above any
                // fat binary's slice count.
                let slices = be32(4)?;
                (1..=16)
                    .contains(&slices)
                    .then(|| Native::MachO((0..slices as usize).filter_map(|i| be32(8 + 20 * i)).collect()))
            }
            [0x7f, b'E', b'L', b'F'] => Some(Native::Elf(u16::from_le_bytes(
                head.get(18..20)?.try_into().unwrap(),
            ))),
            _ => None,
        }
    }

    /// Whether `head` starts a binary (true) and, if it does, that it is one for `platform`. A `.node`
    /// addon, `.dylib` or `.so` that is no binary at all is an error too.
    pub(super) fn check(head: &[u8], path: &Path, platform: &Platform) -> Result<bool> {
        let named_native = path
            .extension()
            .is_some_and(|e| e == "node" || e == "dylib" || e == "so");
        let Some(native) = parse(head) else {
            ensure!(!named_native, "{}: not a Mach-O or ELF binary", path.display());
            return Ok(false);
        };
        let fits = match (platform.os.as_str(), platform.cpu.as_str(), &native) {
            ("darwin", "arm64", Native::MachO(cpus)) => cpus.contains(&CPU_ARM64),
            ("darwin", "x64", Native::MachO(cpus)) => cpus.contains(&CPU_X86_64),
            ("linux", "x64", Native::Elf(machine)) => *machine == EM_X86_64,
            ("linux", "arm64", Native::Elf(machine)) => *machine == EM_AARCH64,
            _ => false,
        };
        ensure!(
            fits,
            "{}: a prebuilt binary that is not for {platform} ({})",
            path.display(),
            describe(&native)
        );
        Ok(true)
    }

    fn describe(native: &Native) -> String {
        let cpu = |c: &u32| match *c {
            CPU_X86_64 => "x86_64".to_owned(),
            CPU_ARM64 => "arm64".to_owned(),
            other => format!("cputype {other:#x}"),
        };
        match native {
            Native::MachO(cpus) => format!("Mach-O {}", cpus.iter().map(cpu).collect::<Vec<_>>().join("+")),
            Native::Elf(machine) => format!("ELF machine {machine}"),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn platform(s: &str) -> Platform {
            Platform::try_from(s.to_owned()).unwrap()
        }

        #[test]
        fn mach_o_arch_must_match() {
            let mut arm = vec![0xcf, 0xfa, 0xed, 0xfe];
            arm.extend(CPU_ARM64.to_le_bytes());
            let path = Path::new("lib/addon.node");
            assert!(check(&arm, path, &platform("darwin-arm64")).unwrap());
            assert!(check(&arm, path, &platform("darwin-x64")).is_err());
            let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2];
            fat.extend(CPU_X86_64.to_be_bytes());
            fat.extend([0; 16]);
            fat.extend(CPU_ARM64.to_be_bytes());
            assert!(check(&fat, path, &platform("darwin-x64")).unwrap());
            assert!(check(&fat, path, &platform("darwin-arm64")).unwrap());
            let elf = [
                0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 62, 0,
            ];
            assert!(check(&elf, path, &platform("darwin-x64")).is_err());
            assert!(check(&elf, path, &platform("linux-x64")).unwrap());
            assert!(check(b"module.exports = 1", path, &platform("darwin-x64")).is_err());
            assert!(
                !check(
                    b"module.exports = 1",
                    Path::new("index.js"),
                    &platform("darwin-x64")
                )
                .unwrap()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the Payload writer would receive.
    #[derive(Default)]
    struct Recorded(Vec<String>);

    impl TreeSink for Recorded {
        fn directory(&mut self, path: &str, mode: u32) -> Result<()> {
            self.0.push(format!("{path}/ {mode:o}"));
            Ok(())
        }
        fn file(&mut self, path: &str, mode: u32, size: u64, data: &mut dyn Read) -> Result<()> {
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes)?;
            assert_eq!(bytes.len() as u64, size);
            self.0
                .push(format!("{path} {mode:o} {}", String::from_utf8_lossy(&bytes)));
            Ok(())
        }
        fn symlink(&mut self, path: &str, _: &str) -> Result<()> {
            panic!("{path}: links are dropped")
        }
    }

    /// A gzip'd tarball of (path, mode, contents), in the cache; returns its package.
    fn tarball(cache: &Path, name: &str, entries: &[(&str, u32, &str)]) -> Result<LockedPackage> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode, contents) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(contents.len() as u64);
            header.set_mode(*mode);
            // `set_path` would normalize `./` away: write the name as real tarballs hold it.
            header.as_ustar_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, contents.as_bytes())?;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &builder.into_inner()?)?;
        let bytes = gz.finish()?;
        let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha512(), &bytes)?;
        let integrity = format!("sha512-{}", openssl::base64::encode_block(&digest));
        let path = Cache::at(cache.to_owned()).path(&Integrity::parse(&integrity)?);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(path, bytes)?;
        Ok(LockedPackage {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            resolved: String::new(),
            integrity,
            os: Vec::new(),
            cpu: Vec::new(),
        })
    }

    fn emit(cache: &Path, packages: Vec<(&str, LockedPackage)>) -> Result<Vec<String>> {
        let bundle = Bundle {
            cache: Cache::at(cache.to_owned()),
            packages: packages.into_iter().map(|(p, l)| (p.to_owned(), l)).collect(),
        };
        let mut sink = Recorded::default();
        bundle.emit(&mut sink)?;
        Ok(sink.0)
    }

    #[test]
    fn folders_come_first_once_and_a_repeated_file_must_agree() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let a = tarball(
            dir.path(),
            "a",
            &[
                ("package/./lib/x.js", 0o644, "x"),
                ("package/lib/x.js", 0o600, "x"),
                ("package/bin/run", 0o700, "#!"),
            ],
        )?;
        let b = tarball(dir.path(), "b", &[("package/index.js", 0o644, "b")])?;
        let seen = emit(
            dir.path(),
            vec![
                ("node_modules/a", a.clone()),
                ("node_modules/a/node_modules/b", b),
            ],
        )?;
        assert_eq!(
            seen,
            [
                "node_modules/ 755",
                "node_modules/a/ 755",
                "node_modules/a/lib/ 755",
                "node_modules/a/lib/x.js 644 x",
                "node_modules/a/bin/ 755",
                "node_modules/a/bin/run 755 #!",
                "node_modules/a/node_modules/ 755",
                "node_modules/a/node_modules/b/ 755",
                "node_modules/a/node_modules/b/index.js 644 b",
            ]
        );

        let differs = tarball(
            dir.path(),
            "c",
            &[("package/./x", 0o644, "one"), ("package/x", 0o644, "two")],
        )?;
        let error = emit(dir.path(), vec![("node_modules/c", differs)]).unwrap_err();
        assert!(
            format!("{error:#}").contains("twice, with different contents"),
            "{error:#}"
        );

        let cached = Cache::at(dir.path().to_owned()).path(&Integrity::parse(&a.integrity)?);
        let mut bytes = std::fs::read(&cached)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&cached, bytes)?;
        let error = emit(dir.path(), vec![("node_modules/a", a)]).unwrap_err();
        assert!(
            format!("{error:#}").contains("the cache entry was changed"),
            "{error:#}"
        );
        Ok(())
    }

    #[test]
    fn a_changed_cache_entry_is_refused_before_anything_is_unpacked() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let locked = tarball(dir.path(), "a", &[("package/index.js", 0o644, "a")])?;
        // The cache now holds another valid tarball (think: a small gzip that expands to gigabytes).
        let other = tarball(dir.path(), "b", &[("package/evil.js", 0o644, "b")])?;
        let cache = Cache::at(dir.path().to_owned());
        std::fs::copy(
            cache.path(&Integrity::parse(&other.integrity)?),
            cache.path(&Integrity::parse(&locked.integrity)?),
        )?;
        let bundle = Bundle {
            cache,
            packages: vec![("node_modules/a".to_owned(), locked)],
        };
        let mut sink = Recorded::default();
        let error = bundle.emit(&mut sink).unwrap_err();
        assert!(
            format!("{error:#}").contains("the cache entry was changed"),
            "{error:#}"
        );
        assert_eq!(
            sink.0,
            ["node_modules/ 755", "node_modules/a/ 755"],
            "no file of it"
        );
        Ok(())
    }
}
