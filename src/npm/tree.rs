//! Lays out the locked packages as npm would install them (`node_modules` paths from the lockfile),
//! from the cached tarballs, each byte checked against the lockfile's sha512 as it is read. Like npm's
//! own extractor, links in a tarball are dropped, files are 0644 (0755 with any execute bit) and folders
//! 0755. No lifecycle script runs. Every prebuilt binary of a platform package must be a binary of that
//! platform: Mach-O of the package's arch for darwin.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;

use super::cache::HashingReader;
use super::lock::MAC_PLATFORMS;
use super::{Cache, Integrity, LockedPackage, Lockfile, Platform};

/// The laid-out trees, in a temporary folder that lives as long as this value (until the package that
/// streams them is written).
#[derive(Debug)]
pub struct Vendored {
    dir: tempfile::TempDir,
    /// OpenClaw version → the bundle root on disk (it holds `node_modules/`).
    pub trees: BTreeMap<String, PathBuf>,
    /// Prebuilt binaries checked, per platform.
    pub binaries: BTreeMap<Platform, usize>,
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

/// Fetches what the cache lacks, then lays out each version's locked packages.
pub fn vendor(lock: &Lockfile, lock_path: &Path, versions: &[String], cache: &Cache) -> Result<Vendored> {
    let wanted = platforms()?;
    ensure!(
        lock.platforms == wanted,
        "{} was locked for {}, the build needs {}: run `confine lock`",
        lock_path.display(),
        list(&lock.platforms),
        list(&wanted)
    );
    let mut packages = Vec::new();
    for version in versions {
        packages.push((version, lock.packages(version, lock_path)?));
    }
    cache.fetch_missing(packages.iter().flat_map(|(_, p)| p.values()))?;
    let dir = tempfile::tempdir()?;
    let mut vendored = Vendored {
        trees: BTreeMap::new(),
        binaries: BTreeMap::new(),
        dir,
    };
    for (version, locked) in packages {
        let root = vendored.dir.path().join(version);
        for (path, package) in locked {
            let dest = root.join(safe_relative(path)?);
            let binaries = extract(cache, package, &dest)
                .with_context(|| format!("{}@{} ({path})", package.name, package.version))?;
            if let Some(platform) = package.platform() {
                *vendored.binaries.entry(platform).or_default() += binaries;
            }
        }
        folders_0755(&root)?;
        vendored.trees.insert(version.clone(), root);
    }
    Ok(vendored)
}

/// Folders made while unpacking got the build machine's umask; the payload wants the same modes
/// everywhere.
fn folders_0755(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    for child in fs::read_dir(dir)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            folders_0755(&child.path())?;
        }
    }
    Ok(())
}

fn list(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relative path of plain components only.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    ensure!(
        !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))),
        "{path:?}: not a plain relative path"
    );
    Ok(p.to_path_buf())
}

/// Unpacks one tarball into `dest` (its first path component stripped, as npm does), verifying the
/// tarball's sha512 over every byte. Returns how many prebuilt binaries it checked.
fn extract(cache: &Cache, package: &LockedPackage, dest: &Path) -> Result<usize> {
    let integrity = Integrity::parse(&package.integrity)?;
    let cached = cache.path(&integrity);
    let file = File::open(&cached).with_context(|| format!("cannot open {}", cached.display()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(HashingReader::new(io::BufReader::new(file))?));
    let platform = package.platform();
    let mut binaries = 0;
    let unpacked = (|| -> Result<()> {
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
            let target = dest.join(relative);
            if kind.is_dir() {
                fs::create_dir_all(&target)?;
                continue;
            }
            let executable = entry.header().mode()? & 0o111 != 0;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut head = Vec::with_capacity(4096);
            (&mut entry).take(4096).read_to_end(&mut head)?;
            if let Some(platform) = &platform
                && binary::check(&head, relative, platform)?
            {
                binaries += 1;
            }
            let mut out =
                File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
            out.write_all(&head)?;
            io::copy(&mut entry, &mut out)?;
            let mode = if executable { 0o755 } else { 0o644 };
            fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        }
        Ok(())
    })();
    // The digest covers the whole file, also after a failed unpack: bad bytes are named as such.
    let got = archive.into_inner().into_inner().finish()?;
    if got != integrity {
        bail!(
            "the cached tarball {} has integrity {got}, the lockfile says {integrity}: the cache entry was \
             changed. Delete it and build again to fetch it afresh",
            cached.display()
        );
    }
    unpacked?;
    Ok(binaries)
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
