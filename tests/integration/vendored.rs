//! `openclaw.install: bundle` with the real OpenClaw from npm: `confine lock`, then `confine build`,
//! offline from the npm cache `.ci/fill-bundle-cache` fills. The payload is checked with bsdtar, the
//! tarballs' sha512 with openssl, the prebuilt binaries with file(1). One lock serves every case: the
//! build of a 40,000-file package is the slow step, so it runs twice (cold and warm cache) and the
//! tampering cases stop before writing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{confine, example_with, stderr, write};

pub(crate) const VERSION: &str = "2026.9.6";
pub(crate) const PKG: &str = "halfday-agents-1.0.0.pkg";

/// The e2e tools folder: `$CONFINE_E2E_TOOLS`, else `~/.cache/confine-e2e`.
fn tools() -> PathBuf {
    std::env::var_os("CONFINE_E2E_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/confine-e2e"),
        PathBuf::from,
    )
}

/// The npm cache filled by `.ci/fill-bundle-cache`.
fn npm_cache() -> PathBuf {
    let cache = tools().join("npm-cache");
    assert!(
        cache.join(format!(".bundle-{VERSION}-musl")).exists(),
        "{} is not filled: run .ci/fill-bundle-cache",
        cache.display()
    );
    cache
}

/// confine in `dir`, npm offline against the filled cache, tarballs cached in `dir/cache`.
pub(crate) fn run(dir: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut command = confine();
    command
        .current_dir(dir)
        .args(args)
        .env("CONFINE_NPM", tools().join("bin/npm"))
        .env("npm_config_cache", npm_cache())
        .env("npm_config_offline", "true")
        .env("npm_config_update_notifier", "false")
        .env("CONFINE_CACHE_DIR", dir.join("cache"))
        .env_remove("CONFINE_TEST_PLATFORMS");
    command
}

pub(crate) fn ok(output: Output) -> Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

fn fails_with(output: Output, needles: &[&str]) {
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}

pub(crate) fn bundle_spec(version: &str) -> String {
    example_with("      install: npm ", "      install: bundle ")
        .replace("version: 2026.9.6", &format!("version: {version}"))
}

/// A loopback port nobody listens on.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub(crate) fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?}: {}", stderr(&output));
    output.stdout
}

fn cached_tarball(cache: &Path, integrity: &str) -> PathBuf {
    let digest = tool(
        "sh",
        &[
            "-c",
            &format!(
                "printf %s '{}' | base64 -d | od -An -v -tx1 | tr -d ' \\n'",
                &integrity[7..]
            ),
        ],
    );
    cache
        .join("tarballs/sha512")
        .join(format!("{}.tgz", String::from_utf8(digest).unwrap()))
}

/// Regular files below `root`, relative path → bytes' length (content compared separately).
pub(crate) fn files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                assert!(
                    kind.is_file(),
                    "{}: only files and folders",
                    entry.path().display()
                );
                found.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_real_lock_builds_exactly_the_locked_bytes_offline_and_tampering_stops_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(dir, "fleet.yaml", &bundle_spec(VERSION));

    // The lock: every package pinned by sha512, the darwin platform packages of both arches, no other.
    ok(run(dir, &["lock"]).output().expect("runs"));
    let lock: Value = serde_json::from_slice(&std::fs::read(dir.join("fleet.lock")).unwrap()).unwrap();
    assert_eq!(
        lock["platforms"],
        serde_json::json!(["darwin-arm64", "darwin-x64"])
    );
    let packages = lock["openclaw"][VERSION]
        .as_object()
        .expect("the pinned version is locked");
    assert_eq!(packages["node_modules/openclaw"]["version"], VERSION);
    let mut arches = BTreeMap::<String, usize>::new();
    for (path, p) in packages {
        assert!(p["integrity"].as_str().unwrap().starts_with("sha512-"), "{path}");
        assert!(p["resolved"].as_str().unwrap().starts_with("https://"), "{path}");
        if let Some(os) = p.get("os") {
            assert_eq!(
                os,
                &serde_json::json!(["darwin"]),
                "{path}: only Mac platform packages"
            );
            *arches
                .entry(p["cpu"][0].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(arches["arm64"] > 0 && arches["x64"] > 0, "{arches:?}");

    // Cold cache: npm pack fills it. Warm cache: no npm at all, the registry unreachable.
    let cold = ok(run(dir, &["build", "-q", "--out", "a"]).output().expect("runs"));
    // A bundle installs on a Mac (see vendored_mac): a quiet build says nothing.
    assert_eq!(stderr(&cold), "", "build -q is quiet");
    let registry = format!("http://127.0.0.1:{}/", closed_port());
    ok(run(dir, &["build", "-q", "--out", "b"])
        .env("CONFINE_NPM", dir.join("no-npm-here"))
        .env("npm_config_registry", &registry)
        .env_remove("npm_config_offline")
        .output()
        .expect("runs"));
    assert!(
        std::fs::read(dir.join("a").join(PKG)).unwrap() == std::fs::read(dir.join("b").join(PKG)).unwrap(),
        "two builds, same bytes"
    );

    // The payload, unpacked by bsdtar: exactly the files of the locked tarballs, byte for byte.
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(unpacked.join("root")).unwrap();
    tool(
        "bsdtar",
        &[
            "-xf",
            dir.join("a").join(PKG).to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    );
    tool(
        "bsdtar",
        &[
            "-xf",
            unpacked.join("com.halfday.agents.pkg/Payload").to_str().unwrap(),
            "-C",
            unpacked.join("root").to_str().unwrap(),
        ],
    );
    let root = unpacked
        .join("root/Library/Application Support/confine/halfday-agents/openclaw")
        .join(VERSION);
    let cache = dir.join("cache");
    let mut expected = Vec::new();
    let mut mach_o = BTreeMap::<String, usize>::new();
    for (path, p) in packages {
        let integrity = p["integrity"].as_str().unwrap();
        let tarball = cached_tarball(&cache, integrity);
        let digest = tool(
            "sh",
            &[
                "-c",
                &format!(
                    "openssl dgst -sha512 -binary '{}' | base64 -w0",
                    tarball.display()
                ),
            ],
        );
        assert_eq!(
            format!("sha512-{}", String::from_utf8(digest).unwrap()),
            integrity,
            "{path}"
        );
        let from = dir.join("tarball");
        let _ = std::fs::remove_dir_all(&from);
        std::fs::create_dir_all(&from).unwrap();
        tool(
            "bsdtar",
            &[
                "-xzf",
                tarball.to_str().unwrap(),
                "-C",
                from.to_str().unwrap(),
                "--strip-components",
                "1",
            ],
        );
        for file in files(&from) {
            let installed = root.join(path).join(&file);
            assert!(
                std::fs::read(from.join(&file)).unwrap() == std::fs::read(&installed).unwrap_or_default(),
                "{} differs from its tarball",
                installed.display()
            );
            if p.get("os").is_some() {
                let kind = String::from_utf8(tool("file", &["-b", installed.to_str().unwrap()])).unwrap();
                if kind.contains("Mach-O") {
                    let arch = if p["cpu"][0] == "arm64" { "arm64" } else { "x86_64" };
                    assert!(kind.contains(arch), "{}: {kind}", installed.display());
                    *mach_o.entry(arch.to_owned()).or_default() += 1;
                }
                assert!(!kind.contains("ELF"), "{}: {kind}", installed.display());
            }
            expected.push(Path::new(path).join(file));
        }
    }
    expected.sort();
    assert_eq!(
        files(&root),
        expected,
        "the bundle holds exactly the locked packages' files"
    );
    assert!(mach_o["arm64"] > 0 && mach_o["x86_64"] > 0, "{mach_o:?}");

    // A lockfile for another version.
    write(dir, "older.yaml", &bundle_spec("2026.9.5"));
    std::fs::copy(dir.join("fleet.lock"), dir.join("older.lock")).unwrap();
    fails_with(
        run(dir, &["build", "older.yaml", "--out", "c"])
            .output()
            .expect("runs"),
        &[
            "older.lock locks openclaw 2026.9.6, not 2026.9.5",
            "run `confine lock older.yaml`",
        ],
    );

    // A wrong integrity in the lockfile: the fetched bytes do not match it.
    let (first_path, first) = packages.iter().next().unwrap();
    let wrong = format!("sha512-{}", "AQ".repeat(43) + "==");
    let mut edited = lock.clone();
    edited["openclaw"][VERSION][first_path]["integrity"] = Value::String(wrong.clone());
    write(dir, "edited.yaml", &bundle_spec(VERSION));
    write(
        dir,
        "edited.lock",
        &serde_json::to_string_pretty(&edited).unwrap(),
    );
    fails_with(
        run(dir, &["build", "edited.yaml", "--out", "c"])
            .output()
            .expect("runs"),
        &[
            &format!("the lockfile says {wrong}"),
            first["name"].as_str().unwrap(),
        ],
    );

    // A changed tarball in the cache.
    let cached = cached_tarball(&cache, first["integrity"].as_str().unwrap());
    let mut bytes = std::fs::read(&cached).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cached, bytes).unwrap();
    fails_with(
        run(dir, &["build", "--out", "c"]).output().expect("runs"),
        &["the cache entry was changed", cached.to_str().unwrap()],
    );
    assert!(!dir.join("c").exists(), "nothing written");
}
