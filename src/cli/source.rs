//! Which spec a command reads, like cargo and just find theirs: the SPEC argument (`-` for stdin), else
//! `fleet.yaml` or `confine.yaml` in the current folder, else in the nearest parent that has one, else
//! the built-in example, announced loudly so nobody ships the example by mistake.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Ui;
use crate::spec::{self, LoadedSpec, Problem, SpecError};

/// The spec files looked for in the current folder and then each parent, in order.
pub const DISCOVERED: [&str; 2] = ["fleet.yaml", "confine.yaml"];

/// What `-` stands for in messages.
const STDIN_NAME: &str = "<stdin>";

/// A spec's text and where it came from.
#[derive(Debug)]
pub struct SpecSource {
    pub text: String,
    /// Names the spec in messages and the JSON output.
    pub origin: PathBuf,
    /// Relative paths in the spec resolve against it.
    pub base_dir: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Stdin,
    Example,
}

impl SpecSource {
    /// Parses and validates the text.
    pub fn load(&self) -> Result<LoadedSpec, SpecError> {
        spec::load_text(&self.text, &self.origin, self.base_dir.clone())
    }
}

/// Finds and reads the spec: `spec` as given (`-` reads stdin), the built-in example with `example`,
/// else the first of [`DISCOVERED`], else the example with a warning.
pub fn find(spec: Option<&Path>, example: bool, ui: &Ui) -> Result<SpecSource, SpecError> {
    if example {
        return Ok(example_source());
    }
    if let Some(path) = spec {
        return if path == Path::new("-") {
            read_stdin()
        } else {
            from_file(path)
        };
    }
    if let Some(found) = discover() {
        ui.note(&format!("using the spec {}", found.display()));
        return from_file(&found);
    }
    ui.warn(&format!(
        "no {} or {} in this folder or any folder above it: using the BUILT-IN EXAMPLE fleet, not \
         yours. Write your own with `confine init`, or pass --example to choose the example on purpose.",
        DISCOVERED[0], DISCOVERED[1]
    ));
    Ok(example_source())
}

/// The first of [`DISCOVERED`] in the current folder, else in the nearest parent folder that has one, as
/// a relative path (`fleet.yaml`, `../../fleet.yaml`) so messages stay short.
fn discover() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors().enumerate().find_map(|(depth, folder)| {
        DISCOVERED
            .iter()
            .find(|name| folder.join(name).is_file())
            .map(|name| "../".repeat(depth) + name)
            .map(PathBuf::from)
    })
}

fn example_source() -> SpecSource {
    SpecSource {
        text: spec::EXAMPLE.to_owned(),
        origin: PathBuf::from(spec::EXAMPLE_NAME),
        base_dir: PathBuf::from("."),
        kind: Kind::Example,
    }
}

fn from_file(path: &Path) -> Result<SpecSource, SpecError> {
    Ok(SpecSource {
        text: spec::read(path)?,
        origin: path.to_path_buf(),
        base_dir: spec::base_dir_of(path),
        kind: Kind::File,
    })
}

/// The spec from stdin, with the same size limit as a file.
fn read_stdin() -> Result<SpecSource, SpecError> {
    let fail = |message: String| SpecError {
        file: PathBuf::from(STDIN_NAME),
        problems: vec![Problem {
            line: 1,
            column: 1,
            message,
            help: String::new(),
        }],
    };
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(spec::MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read the spec from stdin: {e}")))?;
    if bytes.len() > spec::MAX_SPEC_BYTES {
        return Err(fail(format!(
            "the spec on stdin is larger than {} bytes",
            spec::MAX_SPEC_BYTES
        )));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| fail("the spec on stdin is not valid UTF-8".to_owned()))?;
    Ok(SpecSource {
        text,
        origin: PathBuf::from(STDIN_NAME),
        base_dir: PathBuf::from("."),
        kind: Kind::Stdin,
    })
}
