//! Progress on a terminal: a spinner per long step (npm runs, package payloads) with elapsed time and
//! bytes, and notes such as push retries, drawn with indicatif on stderr. Only when stderr is a terminal
//! and the run is neither `--json` nor `-q`: piped output and JSON never carry it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Measure, Reporter, Step};

/// Shows progress when a person is watching: stderr is a terminal, and neither `json` nor `quiet`.
pub fn show_if_watched(json: bool, quiet: bool) {
    if !json && !quiet && std::io::stderr().is_terminal() {
        crate::progress::set_reporter(Box::new(Terminal));
    }
}

struct Terminal;

struct Spinner {
    bar: ProgressBar,
    measure: Measure,
}

/// Templates are constants, so a failure to parse one is a bug; fall back to indicatif's default.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Reporter for Terminal {
    fn start(&self, what: &str, measure: Measure) -> Box<dyn Step> {
        let (length, template) = match measure {
            Measure::Time => (None, "{spinner} {msg} {elapsed}"),
            Measure::Bytes => (None, "{spinner} {msg} {elapsed} {bytes} ({bytes_per_sec})"),
            Measure::BytesOf(total) => (
                Some(total),
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            ),
        };
        let bar =
            ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr()).with_style(style(template));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Spinner { bar, measure })
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
    /// Replaces the spinner with one line: what was done, how long it took, and how much when counted.
    fn drop(&mut self) {
        let mut line = format!(
            "done: {} in {}",
            self.bar.message(),
            indicatif::HumanDuration(self.bar.elapsed())
        );
        if !matches!(self.measure, Measure::Time) {
            line.push_str(&format!(" ({})", indicatif::HumanBytes(self.bar.position())));
        }
        self.bar.finish_and_clear();
        eprintln!("{line}");
    }
}
