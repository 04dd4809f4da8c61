//! `confine audit`: an agent's audit trail, collected on a Mac, as a timeline.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::Ui;
use crate::audit::timeline;

pub const EXAMPLES: &str = "Examples:
  confine audit hexagent.jsonl                  # a trail copied off a Mac
  ssh admin@mac sudo cat /private/var/log/confine/halfday-agents/hexagent.jsonl | confine audit -
  confine audit - < mdm-script-output.txt       # what an MDM script printed from the Mac";

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The agent's `<agent>.jsonl` (or a rotated `.N`) from `/private/var/log/confine/<fleet>/` on the Mac,
    /// or `-` for standard input.
    path: PathBuf,
}

pub fn audit(args: &AuditArgs, ui: &Ui) -> Result<bool> {
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let summary = if args.path.as_os_str() == "-" {
        let stdin = std::io::stdin().lock();
        timeline::print(&mut BufReader::new(stdin), "<stdin>", &mut out)?
    } else {
        // A trail is read line by line, each line bounded, so its size needs no limit; a FIFO or a
        // device does (it may never end).
        let (file, _) = crate::limits::open_regular(&args.path, u64::MAX)?;
        let origin = args.path.display().to_string();
        timeline::print(&mut BufReader::new(file), &origin, &mut out)?
    };
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(true),
        other => other.context("writing to stdout")?,
    }
    ui.note(&format!(
        "{} event(s); {} dropped by Endpoint Security; {} too long to keep",
        summary.events, summary.dropped, summary.oversized
    ));
    if summary.dropped > 0 {
        ui.warn("Endpoint Security dropped events: the trail has gaps (see the `--` lines)");
    }
    if summary.discarded > 0 {
        ui.warn("rotation discarded the oldest events: the trail does not reach back to the start (see the `--` lines)");
    }
    Ok(true)
}
