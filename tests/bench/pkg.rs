//! Benchmarks of the package writer.
//!
//! `cargo bench --bench pkg`: build a product archive from a ~20,000-file, ~300 MB tree with
//! `add_tree_from_disk`, and compare its wall time with `gzip -6` over the same bytes. Prints wall
//! times and peak RSS. Set `CONFINE_BENCH_FILES` to change the file count.
//!
//! `cargo bench --bench pkg -- memory`: peak RSS of writing trees of small files with 1×, 2× and 4×
//! the OpenClaw bundle's ~38,000 files, each in a fresh process: memory must not grow with file count.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use confine::pkg::{BuildOptions, Component, Payload, Product, write_product};

/// Deterministic generator (64-bit LCG, Knuth's MMIX constants): same tree on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

const WORDS: &[&str] = &[
    "agent", "launchd", "plist", "config", "token", "session", "model", "request", "response", "error",
    "retry", "socket", "user", "group", "install", "payload", "string", "integer", "true", "false",
];

/// Text-like lines from a small vocabulary (compresses like logs or config), or LCG bytes (does not).
fn contents(rng: &mut Lcg, size: usize, random: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    if random {
        while out.len() < size {
            out.extend_from_slice(&rng.next().to_le_bytes()[..4]);
        }
    } else {
        while out.len() < size {
            let word = WORDS[(rng.next() % WORDS.len() as u64) as usize];
            out.extend_from_slice(word.as_bytes());
            out.push(if rng.next().is_multiple_of(9) { b'\n' } else { b' ' });
        }
    }
    out.truncate(size);
    out
}

/// 20,000 files in 200 directories: mostly 1–24 KiB, every 1,000th file 4 MiB, every 10th random.
/// `small`: 100 files a directory, 256 B – 4 KiB each, so that the file count, not the bytes, grows.
fn generate_tree(root: &Path, files: usize, small: bool) -> Result<u64> {
    let mut rng = Lcg(0x5eed);
    let mut total = 0;
    let dirs = if small { files.div_ceil(100) } else { 200 };
    for i in 0..files {
        let dir = root.join(format!("d{:04}", i % dirs));
        fs::create_dir_all(&dir)?;
        let size = if small {
            256 + (rng.next() % (4096 - 256)) as usize
        } else if i.is_multiple_of(1000) {
            4 << 20
        } else {
            1024 + (rng.next() % (23 * 1024)) as usize
        };
        fs::write(
            dir.join(format!("f{i:05}")),
            contents(&mut rng, size, i % 10 == 3),
        )?;
        total += size as u64;
    }
    Ok(total)
}

fn peak_rss_kib() -> Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("bad VmHWM")?.parse()?)
}

/// Concatenate the tree's files (sorted, like the payload) into one file for `gzip`.
fn concatenate(root: &Path, out: &Path) -> Result<()> {
    let mut writer = BufWriter::new(File::create(out)?);
    let mut dirs: Vec<_> = fs::read_dir(root)?.collect::<std::io::Result<_>>()?;
    dirs.sort_by_key(|entry| entry.file_name());
    for dir in dirs {
        let mut files: Vec<_> = fs::read_dir(dir.path())?.collect::<std::io::Result<_>>()?;
        files.sort_by_key(|entry| entry.file_name());
        for file in files {
            std::io::copy(&mut File::open(file.path())?, &mut writer)?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// The OpenClaw bundle's file count, the base of the memory benchmark.
const BUNDLE_FILES: usize = 38_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "memory") {
        return memory();
    }
    if let Some(at) = args.iter().position(|a| a == "write-small") {
        let files = args.get(at + 1).context("write-small FILES")?.parse()?;
        let work = tempfile::tempdir()?;
        let tree = work.path().join("tree");
        let bytes = generate_tree(&tree, files, true)?;
        let (elapsed, pkg_size) = write_package(&tree, work.path())?;
        println!(
            "{files:>7} files, {:>6.1} MB: {elapsed:>8.2?}, {:>6.1} MB .pkg, peak RSS {:>3} MiB",
            bytes as f64 / 1e6,
            pkg_size as f64 / 1e6,
            peak_rss_kib()? / 1024
        );
        return Ok(());
    }
    let files = std::env::var("CONFINE_BENCH_FILES")
        .ok()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let work = tempfile::tempdir()?;
    let tree = work.path().join("tree");
    let generated = Instant::now();
    let bytes = generate_tree(&tree, files, false)?;
    println!(
        "tree: {files} files, {:.1} MB, generated in {:.2?}",
        bytes as f64 / 1e6,
        generated.elapsed()
    );
    let (ours, pkg_size) = write_package(&tree, work.path())?;
    println!(
        "confine write_product: {ours:.2?}, {:.1} MB .pkg, peak RSS {} MiB",
        pkg_size as f64 / 1e6,
        peak_rss_kib()? / 1024
    );

    let concatenated = work.path().join("all.bin");
    concatenate(&tree, &concatenated)?;
    let started = Instant::now();
    let status = Command::new("gzip")
        .args(["-6", "-c"])
        .arg(&concatenated)
        .stdout(Stdio::null())
        .status()
        .context("cannot run gzip")?;
    let gzip = started.elapsed();
    ensure!(status.success(), "gzip failed");
    println!("gzip -6 -c over the same bytes: {gzip:.2?}");
    println!(
        "ratio confine / gzip: {:.2}",
        ours.as_secs_f64() / gzip.as_secs_f64()
    );
    Ok(())
}

/// Writes `tree` as a product archive into `work`: the wall time and the package's size.
fn write_package(tree: &Path, work: &Path) -> Result<(std::time::Duration, u64)> {
    let started = Instant::now();
    let mut payload = Payload::new();
    payload.add_tree_from_disk("/opt/agent", tree, 0, 0)?;
    let product = Product {
        title: "Benchmark".into(),
        identifier: "com.example.bench".into(),
        version: "1.0".into(),
        minimum_macos: "13.0".into(),
        components: vec![Component {
            identifier: "com.example.bench.agent".into(),
            version: "1.0".into(),
            payload: Some(payload),
            scripts: Vec::new(),
        }],
    };
    let pkg = work.join("bench.pkg");
    write_product(
        &product,
        &mut BufWriter::new(File::create(&pkg)?),
        &BuildOptions { mtime: 1_700_000_000 },
        None,
    )?;
    Ok((started.elapsed(), fs::metadata(&pkg)?.len()))
}

/// Peak RSS at 1×, 2× and 4× the bundle's file count, each written by a fresh process of this
/// benchmark, so that each peak is its own.
fn memory() -> Result<()> {
    println!("peak RSS of write_product by file count (small files, 100 a folder):");
    let exe = std::env::current_exe()?;
    for factor in [1, 2, 4] {
        let status = Command::new(&exe)
            .args(["write-small", &(factor * BUNDLE_FILES).to_string()])
            .status()
            .context("cannot run the benchmark itself")?;
        ensure!(status.success(), "the {factor}x run failed");
    }
    Ok(())
}
