//! Problems found in a spec, each with the file, line and column it comes from and how to fix it.

use std::fmt;
use std::path::PathBuf;

use serde_saphyr::Location;

/// One thing wrong with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    /// What is wrong, naming the offending value.
    pub message: String,
    /// What is allowed, or how to fix it.
    pub help: String,
}

impl Problem {
    pub fn at(location: &Location, message: impl Into<String>, help: impl Into<String>) -> Problem {
        // A value the spec did not write (a default) has no location; point at the top of the file.
        let (line, column) = if *location == Location::UNKNOWN {
            (1, 1)
        } else {
            (location.line(), location.column())
        };
        Problem {
            line,
            column,
            message: message.into(),
            help: help.into(),
        }
    }
}

/// Every problem found in one spec file. Displayed as `file:line:column: message` lines, each followed by
/// a `help:` line.
#[derive(Debug)]
pub struct SpecError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                p.line,
                p.column,
                p.message
            )?;
            if !p.help.is_empty() {
                write!(f, "\n  help: {}", p.help)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}
