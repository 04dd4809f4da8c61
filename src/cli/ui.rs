//! Where output goes: data to stdout, everything for a person to stderr (see the rule in `cli`).

use std::io::Write;

use anyhow::{Result, bail};

use crate::diagnostics::{self, Diagnostic};

/// The terminal side of a run: colour and quietness, decided once from the flags and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    color: bool,
    quiet: bool,
}

impl Ui {
    pub fn new(color: bool, quiet: bool) -> Ui {
        Ui { color, quiet }
    }

    /// A summary or note for a person; `-q` silences it.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// A warning; shown even with `-q`.
    pub fn warn(&self, message: &str) {
        let prefix = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        eprintln!("{prefix}: {message}");
    }

    /// Problems in rustc's style; `source` is the text of the file they point into, if known.
    pub fn problems(&self, problems: &[Diagnostic], source: Option<&str>) {
        if problems.is_empty() {
            return;
        }
        let text = diagnostics::render(problems, source, self.color);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Pretty JSON and a newline on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    print_stdout(&text)
}

pub fn print_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A closed pipe (`confine schema | head`) is not an error worth reporting.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => bail!("writing to stdout: {e}"),
        Ok(()) => Ok(()),
    }
}
