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

use anyhow::{Result, bail};

use crate::installer;
use crate::plan::Plan;

const PROBE: &str = include_str!("../pkg/probe");

/// The line of `pkg/lib.sh` that sources the data file; in the probe the data is above it, in the file.
const SOURCE_DATA: &str = ". \"$CONFINE_DIR/fleet-data.sh\"\n";

/// `<fleet>-probe-<release>.sh`, in the output folder beside the package.
pub fn file_name(plan: &Plan) -> String {
    format!("{}-probe-{}.sh", plan.fleet.name, plan.fleet.release)
}

/// The probe script for the fleet.
pub fn script(plan: &Plan) -> Result<Vec<u8>> {
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
    text.extend(b"set -eu\n");
    text.extend(installer::LIB.replacen(SOURCE_DATA, "", 1).into_bytes());
    text.extend(PROBE.as_bytes());
    Ok(text)
}
