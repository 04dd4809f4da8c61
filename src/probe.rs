//! The pilot-Mac probe: a read-only POSIX `sh` script, `<fleet>-probe-<release>.sh` beside the package,
//! that an admin runs with sudo on one Mac before a rollout. It checks every fact the package scripts rely
//! on that only a Mac can settle (macOS version, the shell behind /bin/sh, sshd's Include, Background Task
//! Management, pf's anchor hook, UID/GID collisions, dscl's format, node, awk, curl, eslogger, the folders
//! above the agents' homes and workspaces) and prints a verdict per fact and a JSON report.
//!
//! It is one file, so an admin can copy it alone: the fleet's data file (the same bytes the installer
//! sources, see [`installer::data_file`]), then `pkg/lib.sh` without the line that sources the data file
//! (the probe uses the installer's own functions: `check_id`, `ds_get`, `root_only`, `node_satisfies`…),
//! then `pkg/probe`. Nothing from the spec is ever evaluated: the data file only assigns quoted values.

use std::fmt::Write;

use anyhow::{Context, Result, bail};
use askama::filters::Escaper;

use crate::installer::{self, ShellQuote};
use crate::npm::Vendored;
use crate::plan::Plan;

const PROBE: &str = include_str!("../pkg/probe");

/// The line of `pkg/lib.sh` that sources the data file; in the probe the data is above it, in the file.
const SOURCE_DATA: &str = ". \"$CONFINE_DIR/fleet-data.sh\"\n";

/// `<fleet>-probe-<release>.sh`, in the output folder beside the package.
pub fn file_name(plan: &Plan) -> String {
    format!("{}-probe-{}.sh", plan.fleet.name, plan.fleet.release)
}

/// The probe script for the fleet; `vendored` holds the OpenClaw versions the package bundles.
pub fn script(plan: &Plan, vendored: Option<&Vendored>) -> Result<Vec<u8>> {
    if !installer::LIB.contains(SOURCE_DATA) {
        bail!(
            "internal error: pkg/lib.sh no longer sources the data file with `{}`",
            SOURCE_DATA.trim_end()
        );
    }
    // No spec value here: they are only ever in the data file, quoted.
    let mut text = b"#!/bin/sh\n# confine's pilot-Mac probe: run it with sudo on one Mac before the rollout \
        (sudo sh <this file>).\n# Read-only: it changes nothing. Verdicts on stderr, a JSON report on stdout; \
        exit status 1 if a fact would fail.\n"
        .to_vec();
    text.extend(installer::data_file(plan)?);
    text.extend(bundled_engines(vendored)?.into_bytes());
    text.extend(b"set -eu\n");
    text.extend(installer::LIB.replacen(SOURCE_DATA, "", 1).into_bytes());
    text.extend(PROBE.as_bytes());
    Ok(text)
}

/// `bundled_engines VERSION`: REPLY = the `engines.node` of the bundled OpenClaw VERSION (the excerpt
/// preinstall reads, `openclaw-<version>.json`), empty for a version the package does not bundle. Every
/// value is quoted by the installer's escaper, as in the data file.
fn bundled_engines(vendored: Option<&Vendored>) -> Result<String> {
    let mut function = String::from(
        "# The engines.node of each OpenClaw version the package bundles.\nbundled_engines() {\n\tREPLY=\n\tcase $1 in\n",
    );
    let excerpts = match vendored {
        Some(vendored) => installer::bundle_scripts(vendored)?,
        None => Vec::new(),
    };
    for excerpt in excerpts {
        let json: serde_json::Value = serde_json::from_slice(&excerpt.contents)?;
        let version = json["version"]
            .as_str()
            .context("a bundled OpenClaw without a version")?;
        let node = json["engines"]["node"]
            .as_str()
            .context("a bundled OpenClaw without engines.node")?;
        function.push('\t');
        ShellQuote.write_escaped_str(&mut function, version)?;
        function.push_str(") REPLY=");
        ShellQuote.write_escaped_str(&mut function, node)?;
        writeln!(function, " ;;")?;
    }
    function.push_str("\tesac\n}\n");
    Ok(function)
}
