use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

/// The repository root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Pages the README links that other branches write (the lead merges them together); until they are
/// here, only their links are exempt from the existence check.
fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every ```sh block of `text` (runnable by definition; see docs/architecture.md), one command per line.
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    text.split("\n```sh\n")
        .skip(1)
        .map(|rest| {
            rest.split("\n```")
                .next()
                .expect("a closed block")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The first ```sh block after `heading` in the README.
fn code_block_after(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    sh_blocks(&readme[start..])
        .into_iter()
        .next()
        .expect("a ```sh block")
}

/// Runs `commands` in order with bash in a fresh folder, `confine` first on PATH; returns the folder.
fn run_in_fresh_folder(commands: &[String], origin: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_confine"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let output = StdCommand::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{origin}: step failed: {command}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    dir
}

#[test]
fn the_quick_start_works_as_written() {
    let commands = code_block_after(&read("README.md"), "## Quick start");
    assert!(commands.len() >= 5, "{commands:?}");
    let dir = run_in_fresh_folder(&commands, "README quick start");
    assert!(dir.path().join("fleet.yaml").is_file());
    assert!(dir.path().join("dist/manifest.json").is_file());
}

#[test]
fn every_runnable_block_in_the_docs_runs_as_written() {
    let mut ran = 0;
    for page in docs_pages() {
        let name = format!("docs/{}", page.display());
        for block in sh_blocks(&read(&name)) {
            run_in_fresh_folder(&block, &name);
            ran += 1;
        }
    }
    assert!(ran >= 2, "only {ran} runnable blocks in docs/");
}

#[test]
fn the_readme_says_how_to_install() {
    let install = code_block_after(&read("README.md"), "## Install");
    assert!(
        install
            .iter()
            .any(|l| l.starts_with("cargo install --locked --path .")),
        "{install:?}"
    );
}

/// The file names in docs/ that are pages (`*.md`).
fn docs_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|e| PathBuf::from(e.expect("entry").file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn the_readme_is_short_links_every_docs_page_and_every_link_resolves() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines; move detail to docs/");
    for page in docs_pages() {
        let link = format!("](docs/{})", page.display());
        assert!(
            readme.contains(&link),
            "README.md does not link docs/{}",
            page.display()
        );
    }
    for target in readme
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
    {
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().expect("path");
        assert!(
            Path::new(ROOT).join(file).exists(),
            "README.md links {target}, which does not exist"
        );
    }
}

#[test]
fn the_test_command_the_readme_names_exists_and_ci_runs_it() {
    let readme = read("README.md");
    let first_block = readme.split("```").nth(1).expect("a first code block");
    assert!(
        first_block.contains("cargo run --release -- build"),
        "{first_block}"
    );
    assert!(first_block.contains("tests/run"), "{first_block}");
    let script = Path::new(ROOT).join("tests/run");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&script).expect("tests/run").permissions(),
    );
    assert!(mode & 0o111 != 0, "tests/run is not executable");
    assert!(
        read(".ci/run").contains("tests/run"),
        ".ci/run does not call tests/run"
    );
    assert!(
        read("Justfile").contains("tests/run"),
        "just test does not call tests/run"
    );
    let check = StdCommand::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash");
    assert!(check.success(), "tests/run does not parse");
}
