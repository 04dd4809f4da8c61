//! Progress on a terminal: a spinner per long step (npm runs, package payloads) with elapsed time and
//! bytes, and notes such as push retries, drawn with indicatif on stderr. Only when stderr is a terminal
//! and the run is neither `--json` nor `-q`: piped output and JSON never carry it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Reporter, Step};

/// Shows progress when a person is watching: stderr is a terminal, and neither `json` nor `quiet`.
pub fn show_if_watched(json: bool, quiet: bool) {
    if !json && !quiet && std::io::stderr().is_terminal() {
        crate::progress::set_reporter(Box::new(Terminal));
    }
}

struct Terminal;

struct Spinner {
    bar: ProgressBar,
}

/// Templates are constants, so a failure to parse one is a bug; fall back to indicatif's default.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Reporter for Terminal {
    fn start(&self, what: &str, total: Option<u64>) -> Box<dyn Step> {
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(style(
                    "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_style(style("{spinner} {msg} {elapsed} {bytes:>10}")),
        };
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Spinner { bar })
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

impl Step for Spinner {
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl Drop for Spinner {
    /// Leaves one line: what was done, how long it took and how much was written.
    fn drop(&mut self) {
        self.bar.set_style(style("done {msg} in {elapsed} ({bytes})"));
        self.bar.finish();
    }
}
