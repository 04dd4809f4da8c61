//! Files the spec takes from the build machine: extra payload sources and the CA certificate.
//!
//! Whatever a source holds is installed on every Mac of the fleet and can be read by anyone who has the
//! package, so a source must be a regular file or a directory (a device such as `/dev/zero` would be read
//! forever), never a system credential store, and never a private key unless the spec marks the entry as
//! a secret, which then needs `confine build --embed-secrets` like every embedded secret.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::super::error::Problem;
use super::super::model::{Located, Spec};
use super::paths::within;

/// A certificate is a few kilobytes; anything past this is not one.
pub const MAX_CERTIFICATE_BYTES: u64 = 1024 * 1024;
/// How much of each payload file is searched for private-key markers: key files are small, and a key
/// pasted into a larger file sits near its top in practice.
const KEY_SCAN_BYTES: u64 = 64 * 1024;
/// A payload tree with more entries than this is refused rather than walked without end.
const MAX_TREE_ENTRIES: usize = 1_000_000;

/// Pseudo file systems: their "files" never end (`/dev/zero`) or describe the build machine.
const PSEUDO_ROOTS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// Where build machines keep account passwords, host keys and the local directory service, on Linux and
/// macOS (`/etc` there is a link to `/private/etc`, which canonical paths show).
const CREDENTIAL_STORES: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/master.passwd",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/private/etc/master.passwd",
    "/private/etc/sudoers",
    "/private/etc/sudoers.d",
    "/private/etc/ssh",
    "/private/var/db/dslocal",
    "/private/var/db/shadow",
    "/var/db/dslocal",
];

/// Folder names that hold a user's credentials wherever they are.
const CREDENTIAL_FOLDERS: &[&str] = &[".ssh", ".gnupg", ".aws", ".kube", ".docker", ".password-store"];

/// File names of private keys and identities.
fn key_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
    ]
    .contains(&lower.as_str())
        || [".p12", ".pfx", ".key", ".keychain", ".keychain-db", ".ppk"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// Private-key markers: PEM (`-----BEGIN … PRIVATE KEY-----`, OpenSSH, PKCS#8 encrypted) and PuTTY.
fn key_content(head: &[u8]) -> bool {
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    contains(b"PRIVATE KEY-----") || contains(b"PuTTY-User-Key-File")
}

/// Checks every extra payload source and the certificate, relative to `base_dir`.
pub fn check(spec: &Spec, base_dir: &Path, problems: &mut Vec<Problem>) {
    for extra in &spec.package.extra_payload {
        let source = base_dir.join(&extra.source.value);
        if let Err(message) = payload_source(&source, &extra.destination.value, extra.secret) {
            problems.push(problem(&extra.source, message.0, message.1));
        }
    }
    if let Some(cert) = &spec.hardening.profiles.certificate
        && let Err(message) = regular_file(&base_dir.join(&cert.path.value), MAX_CERTIFICATE_BYTES)
    {
        problems.push(problem(&cert.path, message.0, message.1));
    }
}

fn problem(at: &Located<String>, message: String, help: String) -> Problem {
    Problem::at(&at.referenced, message, help)
}

/// A message and a fix.
type Refusal = (String, String);

fn refuse(message: String, help: &str) -> Refusal {
    (message, help.to_owned())
}

/// Resolves `path` (links included) and refuses pseudo files and credential stores.
fn canonical(path: &Path) -> Result<PathBuf, Refusal> {
    let real = fs::canonicalize(path).map_err(|e| {
        refuse(
            format!("cannot read {}: {e}", path.display()),
            "give a path relative to the spec file",
        )
    })?;
    let text = real.to_string_lossy();
    if let Some(root) = PSEUDO_ROOTS.iter().find(|r| within(&text, r) || within(r, &text)) {
        return Err(refuse(
            format!("{} is (or holds) the pseudo file system {root}", real.display()),
            "give a regular file or a folder of your own",
        ));
    }
    let store = CREDENTIAL_STORES
        .iter()
        .find(|s| within(&text, s) || within(s, &text))
        .map(|s| (*s).to_owned())
        .or_else(|| {
            real.components()
                .filter_map(|c| c.as_os_str().to_str())
                .find(|c| CREDENTIAL_FOLDERS.contains(c))
                .map(str::to_owned)
        });
    if let Some(store) = store {
        return Err(refuse(
            format!("{} is (or holds) the credential store `{store}`", real.display()),
            "never ship the build machine's credentials; generate secrets on the Mac or use `credentials.secrets`",
        ));
    }
    Ok(real)
}

/// A readable regular file of at most `limit` bytes.
fn regular_file(path: &Path, limit: u64) -> Result<(), Refusal> {
    let real = canonical(path)?;
    let metadata =
        fs::metadata(&real).map_err(|e| refuse(format!("cannot read {}: {e}", real.display()), ""))?;
    if !metadata.is_file() {
        return Err(refuse(
            format!("{} is not a regular file", real.display()),
            "give a file",
        ));
    }
    if metadata.len() > limit {
        return Err(refuse(
            format!(
                "{} is {} bytes; the limit is {limit}",
                real.display(),
                metadata.len()
            ),
            "is this the right file?",
        ));
    }
    Ok(())
}

/// An extra payload source: a regular file or a folder of files, folders and links, holding no private
/// key unless the entry is a secret, and owner-only if it is one; each of its paths, installed at
/// `destination`, within macOS's name and path limits.
fn payload_source(path: &Path, destination: &str, secret: bool) -> Result<(), Refusal> {
    let real = canonical(path)?;
    let mut stack = vec![real.clone()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_TREE_ENTRIES {
            return Err(refuse(
                format!("{} holds more than {MAX_TREE_ENTRIES} entries", path.display()),
                "ship a smaller tree",
            ));
        }
        installed_name_fits(&path, &real, destination)?;
        let metadata = fs::symlink_metadata(&path)
            .map_err(|e| refuse(format!("cannot read {}: {e}", path.display()), ""))?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            continue;
        }
        if secret && std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o077 != 0 {
            return Err(refuse(
                format!("{} is part of a secret but others can read it", path.display()),
                "make it owner-only on the build machine (`chmod -R go-rwx`); the package keeps its mode",
            ));
        }
        if kind.is_dir() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && CREDENTIAL_FOLDERS.contains(&name)
            {
                return Err(refuse(
                    format!("{} is the credential store `{name}`", path.display()),
                    "never ship the build machine's credentials",
                ));
            }
            let entries = fs::read_dir(&path)
                .map_err(|e| refuse(format!("cannot list {}: {e}", path.display()), ""))?;
            for entry in entries {
                let entry = entry.map_err(|e| refuse(format!("cannot list {}: {e}", path.display()), ""))?;
                stack.push(entry.path());
            }
        } else if kind.is_file() {
            if !secret && holds_private_key(&path)? {
                return Err(refuse(
                    format!("{} looks like a private key", path.display()),
                    "a key in the package can be read by anyone who has it: generate keys on the Mac (`credentials.ssh_keys`), or mark the entry `secret: true` and build with --embed-secrets",
                ));
            }
        } else {
            return Err(refuse(
                format!("{} is not a regular file or a folder", path.display()),
                "only files, folders and symbolic links can go in a payload",
            ));
        }
    }
    Ok(())
}

/// Whether `path`, a file of the tree at `root` installed at `destination`, gets a name and a path macOS
/// and the package format accept (see [`crate::limits::MAX_NAME_BYTES`] and
/// [`crate::limits::MAX_PATH_BYTES`]; the archive spells the path `./…`).
fn installed_name_fits(path: &Path, root: &Path, destination: &str) -> Result<(), Refusal> {
    use crate::limits::{MAX_NAME_BYTES, MAX_PATH_BYTES};
    let relative = path.strip_prefix(root).unwrap_or(path);
    let installed = Path::new(destination).join(relative);
    let help = "shorten the names in the source: Installer could not write this path";
    if let Some(name) = installed.iter().find(|name| name.len() > MAX_NAME_BYTES) {
        return Err(refuse(
            format!(
                "{} has a name of {} bytes; macOS accepts at most {MAX_NAME_BYTES}",
                path.display(),
                name.len()
            ),
            help,
        ));
    }
    let spelled = installed.as_os_str().len() + 1;
    if spelled > MAX_PATH_BYTES {
        return Err(refuse(
            format!(
                "{} would be installed at a path of {spelled} bytes (as the package spells it); macOS and \
                 the package format accept at most {MAX_PATH_BYTES}",
                path.display()
            ),
            help,
        ));
    }
    Ok(())
}

fn holds_private_key(path: &Path) -> Result<bool, Refusal> {
    if path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(key_file_name)
    {
        return Ok(true);
    }
    let mut head = Vec::new();
    crate::limits::open_regular(path, u64::MAX)
        .and_then(|(f, _)| Ok(f.take(KEY_SCAN_BYTES).read_to_end(&mut head)?))
        .map_err(|e| refuse(format!("{e:#}"), ""))?;
    Ok(key_content(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_by_name_and_content() {
        assert!(key_file_name("id_ed25519"));
        assert!(key_file_name("Fleet.P12"));
        assert!(!key_file_name("id_ed25519.pub"));
        assert!(key_content(b"x\n-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(!key_content(b"-----BEGIN CERTIFICATE-----\n"));
    }

    #[test]
    fn credential_stores_and_pseudo_files() {
        for path in ["/etc/shadow", "/dev/null", "/proc/self/status", "/"] {
            assert!(canonical(Path::new(path)).is_err(), "{path}");
        }
        assert!(canonical(Path::new("/usr/bin")).is_ok());
    }
}
