use std::path::Path;
use std::process::Command as StdCommand;

/// The first ```sh block after `heading` in the README, one command per line.
fn code_block_after(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let after = &readme[start..];
    let block = after.split("```sh\n").nth(1).expect("a ```sh block");
    let block = block.split("```").next().expect("closed block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_quick_start_works_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let commands = code_block_after(&readme, "## Quick start");
    assert!(commands.len() >= 5, "{commands:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_confine"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in &commands {
        let output = StdCommand::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "README quick start step failed: {command}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dir.path().join("fleet.yaml").is_file());
    assert!(dir.path().join("dist/manifest.json").is_file());
}

#[test]
fn the_readme_says_how_to_install() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let install = code_block_after(&readme, "## Install");
    assert!(
        install
            .iter()
            .any(|l| l.starts_with("cargo install --locked --path .")),
        "{install:?}"
    );
}
