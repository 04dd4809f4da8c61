//! The user's tarball cache, keyed by integrity: `<cache>/tarballs/sha512/<hex>.tgz`. A tarball is
//! fetched once (by `npm pack`, so `.npmrc` registries, proxies and auth apply), checked against its
//! lockfile integrity before it enters the cache, and checked again on every read: a changed cache entry
//! stops the build.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use openssl::hash::{Hasher, MessageDigest};
use serde::Deserialize;

use super::LockedPackage;
use crate::limits::{MAX_TARBALL_BYTES, open_regular};

/// npm, or the program `CONFINE_NPM` names.
pub(super) fn npm() -> Command {
    Command::new(std::env::var_os("CONFINE_NPM").unwrap_or_else(|| "npm".into()))
}

/// A sha512 digest, parsed from npm's `sha512-<base64>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Integrity([u8; 64]);

impl Integrity {
    pub fn parse(text: &str) -> Result<Integrity> {
        let digest = text
            .strip_prefix("sha512-")
            .and_then(|b64| openssl::base64::decode_block(b64).ok())
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .with_context(|| format!("{text:?} is not a sha512 integrity (sha512-<base64 of 64 bytes>)"))?;
        Ok(Integrity(digest))
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha512-{}", openssl::base64::encode_block(&self.0))
    }
}

/// Reads through, hashing every byte read with sha512.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Result<Self> {
        Ok(Self {
            inner,
            hasher: Hasher::new(MessageDigest::sha512())?,
        })
    }

    /// Reads what is left, then returns the digest of everything read.
    fn finish(mut self) -> Result<Integrity> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = self.hasher.finish()?;
        Ok(Integrity(
            <[u8; 64]>::try_from(&digest[..]).expect("sha512 is 64 bytes"),
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }
}

fn sha512_file(path: &Path) -> Result<Integrity> {
    let (file, _) = open_regular(path, MAX_TARBALL_BYTES)?;
    HashingReader::new(file)?.finish()
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `$CONFINE_CACHE_DIR`, else `$XDG_CACHE_HOME/confine`, else `~/.cache/confine`.
    pub fn user() -> Result<Cache> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = match (var("CONFINE_CACHE_DIR"), var("XDG_CACHE_HOME"), var("HOME")) {
            (Some(dir), _, _) => dir,
            (None, Some(xdg), _) => xdg.join("confine"),
            (None, None, Some(home)) => home.join(".cache/confine"),
            (None, None, None) => bail!("no cache folder: set CONFINE_CACHE_DIR or HOME"),
        };
        Ok(Cache::at(dir))
    }

    /// The cache in `dir`.
    pub fn at(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    pub fn path(&self, integrity: &Integrity) -> PathBuf {
        self.dir
            .join("tarballs/sha512")
            .join(format!("{}.tgz", integrity.hex()))
    }

    /// The cached tarball of `integrity`, opened and hashed whole before anything reads it further: a
    /// changed entry (a small gzip that would expand to gigabytes, say) stops the build before one byte
    /// of it is unpacked. Returned rewound, so the hashed bytes are the ones unpacked.
    pub fn open_checked(&self, integrity: &Integrity) -> Result<File> {
        let cached = self.path(integrity);
        let (mut file, _) = open_regular(&cached, MAX_TARBALL_BYTES)?;
        let got = HashingReader::new(io::BufReader::new(&file))?.finish()?;
        ensure!(
            &got == integrity,
            "the cached tarball {} has integrity {got}, the lockfile says {integrity}: the cache entry was \
             changed. Delete it and build again to fetch it afresh",
            cached.display()
        );
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }

    /// Fetches every package missing from the cache, in one `npm pack` call, and stores each after its
    /// bytes matched the lockfile. With everything cached, nothing runs: no network.
    pub fn fetch_missing<'a>(&self, packages: impl IntoIterator<Item = &'a LockedPackage>) -> Result<()> {
        let mut missing = BTreeMap::new();
        for p in packages {
            let integrity = Integrity::parse(&p.integrity)
                .with_context(|| format!("the lockfile's {}@{}", p.name, p.version))?;
            if !self.path(&integrity).exists() {
                missing.insert(
                    (p.name.clone(), p.version.clone()),
                    (p.resolved.as_str(), integrity),
                );
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let store = self.dir.join("tarballs/sha512");
        std::fs::create_dir_all(&store).with_context(|| format!("cannot create {}", store.display()))?;
        let download = tempfile::tempdir_in(&self.dir)?;
        let packed = npm_pack(missing.values().map(|(url, _)| *url), download.path())?;
        for ((name, version), (_, wanted)) in &missing {
            let file = packed
                .get(&(name.clone(), version.clone()))
                .with_context(|| format!("npm pack did not fetch {name}@{version}"))?;
            let source = download.path().join(file);
            let got = sha512_file(&source)?;
            ensure!(
                &got == wanted,
                "{name}@{version}: the registry's tarball has integrity {got}, the lockfile says {wanted}. \
                 The lockfile was edited or the registry serves other bytes; run `confine lock` only if \
                 you trust the change"
            );
            std::fs::rename(&source, self.path(wanted))
                .with_context(|| format!("cannot store {name}@{version} in {}", store.display()))?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Packed {
    name: String,
    version: String,
    filename: String,
}

/// `npm pack <tarball URL>…` into `dir`: (name, version) → file name. By URL, not `name@version`: npm
/// then needs no registry metadata, only the tarball (which an offline npm cache also serves).
fn npm_pack<'a>(
    urls: impl Iterator<Item = &'a str>,
    dir: &Path,
) -> Result<BTreeMap<(String, String), String>> {
    let urls: Vec<&str> = urls.collect();
    let _step = crate::progress::start(
        &format!("fetching {} tarballs with npm pack", urls.len()),
        crate::progress::Measure::Time,
    );
    let output = crate::interrupt::output(
        npm()
            .args([
                "pack",
                "--json",
                "--ignore-scripts",
                "--loglevel=error",
                "--pack-destination",
            ])
            .arg(dir)
            .args(urls)
            .current_dir(dir),
    )
    .context("cannot run npm (confine fetches tarballs with `npm pack`): install node and npm")?;
    ensure!(
        output.status.success(),
        "npm pack could not fetch the locked tarballs:\n{}",
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    let packed: Vec<Packed> =
        serde_json::from_slice(&output.stdout).context("reading `npm pack --json`'s output")?;
    Ok(packed
        .into_iter()
        .map(|p| ((p.name, p.version), p.filename))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_round_trips() {
        let text =
            "sha512-/eufudw+aFY1LKLolT6yFE6UMmYRl7fMJ/DEONSIyR6wI3slHWITBsANRGqXEY8FRzqUxwh7QEaGiZHcJPVThg==";
        assert_eq!(Integrity::parse(text).unwrap().to_string(), text);
        assert!(Integrity::parse("sha1-abc").is_err());
        assert!(Integrity::parse("sha512-AAAA").is_err());
    }
}
