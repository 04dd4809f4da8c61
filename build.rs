//! Build script: records `git describe` for `confine --version`, when building from a git checkout.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    println!("cargo:rerun-if-changed=build.rs");
    let Some(describe) = git(&["describe", "--tags", "--always"]) else {
        return;
    };
    // Rebuild when HEAD moves: a checkout (HEAD) or a commit on the current branch (its ref).
    let head = git(&["rev-parse", "--git-path", "HEAD"]);
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"])
        .and_then(|name| git(&["rev-parse", "--git-path", &name]));
    // A path that does not exist would make cargo rerun this on every build.
    for path in [head, branch]
        .into_iter()
        .flatten()
        .filter(|p| std::path::Path::new(p).exists())
    {
        println!("cargo:rerun-if-changed={path}");
    }
    println!(
        "cargo:rustc-env=CONFINE_GIT_DESCRIBE={} ({describe})",
        env!("CARGO_PKG_VERSION")
    );
}
