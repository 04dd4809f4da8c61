//! Progress of long work (npm runs, package payloads, uploads) for whoever shows it. The command line
//! sets a [`Reporter`] when stderr is a terminal and neither `--json` nor `-q` was asked for; otherwise,
//! and in the library alone, progress goes nowhere. One hook for every module, so `lock`, `build` and
//! `push` report the same way without passing a handle through every signature.

use std::io::{self, Write};
use std::sync::OnceLock;

/// Shows progress to a person.
pub trait Reporter: Send + Sync {
    /// A step starts. It ends when the returned [`Step`] drops.
    fn start(&self, what: &str, measure: Measure) -> Box<dyn Step>;
    /// Something worth knowing mid-way, e.g. a retry and why.
    fn note(&self, message: &str);
}

/// What a step's progress is counted in.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// Only the time it takes (a child process).
    Time,
    /// Bytes, total unknown (a payload being written).
    Bytes,
    /// Bytes out of a known total (an upload).
    BytesOf(u64),
}

/// A running step.
pub trait Step {
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Sets where progress goes, once per process.
pub fn set_reporter(reporter: Box<dyn Reporter>) {
    let _ = REPORTER.set(reporter);
}

/// Starts a step; `None` when nobody watches.
pub fn start(what: &str, measure: Measure) -> Option<Box<dyn Step>> {
    REPORTER.get().map(|r| r.start(what, measure))
}

/// A note for whoever watches (nothing otherwise).
pub fn note(message: &str) {
    if let Some(reporter) = REPORTER.get() {
        reporter.note(message);
    }
}

/// A writer that counts what passes through into a step, and stops at an interrupt (see
/// [`crate::interrupt`]): the one place a long payload write is watched.
pub struct Counting<W> {
    inner: W,
    step: Option<Box<dyn Step>>,
}

impl<W: Write> Counting<W> {
    pub fn new(inner: W, what: &str) -> Self {
        Counting {
            inner,
            step: start(what, Measure::Bytes),
        }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::interrupt::check().map_err(io::Error::other)?;
        let written = self.inner.write(buf)?;
        if let Some(step) = &self.step {
            step.advance(written as u64);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
