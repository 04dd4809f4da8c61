//! The fleet spec: its YAML model, strict validation, and the JSON Schema editors use.
//!
//! YAML parsing stays inside this module (serde-saphyr), so the parser can be swapped without touching
//! the rest of confine. Parsing runs under a budget: a spec larger than [`MAX_SPEC_BYTES`], or one whose
//! aliases would expand into a huge document (a "billion laughs" alias bomb), is refused before it costs
//! memory.

pub mod audit;
pub mod egress;
mod error;
pub mod exports;
pub mod mdm;
mod model;
pub mod profiles;
mod rules;
mod schema;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use error::{Problem, SpecError};
pub use model::*;
pub use rules::GATEWAY_TOKEN_FILE;
pub use rules::paths::apfs_key;
pub use rules::paths::{
    SUPPORT_ROOT, config_dir, default_home, default_label, default_prefix, default_workspace,
};
pub use rules::sources::MAX_CERTIFICATE_BYTES;
pub use schema::json_schema;
pub(crate) use validate::{parse_octal, time_of_day};

/// The example fleet: the blog's setup, with comments that teach the format. `confine init` writes it and
/// `confine build` without a spec builds it.
pub const EXAMPLE: &str = include_str!("example-fleet.yaml");

/// The name the example fleet is reported under in messages and the manifest.
pub const EXAMPLE_NAME: &str = "<built-in example fleet>";

/// A fleet spec is a short hand-written file; anything larger is a mistake (or an attack).
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// A parsed and validated spec, with the file it came from.
#[derive(Debug)]
pub struct LoadedSpec {
    pub spec: Spec,
    /// The spec's path, or [`EXAMPLE_NAME`] for the built-in example.
    pub origin: PathBuf,
    /// The folder relative paths in the spec (extra payload sources) are resolved against.
    pub base_dir: PathBuf,
}

/// Reads, parses and validates the spec at `path`, or the built-in example when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<LoadedSpec, SpecError> {
    match path {
        None => load_text(EXAMPLE, Path::new(EXAMPLE_NAME), PathBuf::from(".")),
        Some(path) => load_text(&read(path)?, path, base_dir_of(path)),
    }
}

/// Parses and validates spec text read elsewhere (a file, stdin). `origin` names it in messages;
/// relative paths in the spec resolve against `base_dir`.
pub fn load_text(text: &str, origin: &Path, base_dir: PathBuf) -> Result<LoadedSpec, SpecError> {
    let spec = parse_and_validate(text, origin)?;
    let mut problems = Vec::new();
    rules::sources::check(&spec, &base_dir, &mut problems);
    if !problems.is_empty() {
        return Err(SpecError {
            file: origin.to_path_buf(),
            problems,
        });
    }
    Ok(LoadedSpec {
        spec,
        origin: origin.to_path_buf(),
        base_dir,
    })
}

/// The folder a spec file's relative paths resolve against: its own.
pub fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Parses and validates spec text; `file` only names it in messages. Every problem found is reported:
/// tabs are all found first; then every unknown key and wrong type (parsing goes on past each); a
/// syntax error or a missing key stops parsing; once the spec parses, every semantic check runs, also
/// when wrong types were reported (on the spec with stand-ins for them, see [`parse`]).
pub fn parse_and_validate(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let fail = |problems| SpecError {
        file: file.to_path_buf(),
        problems,
    };
    let tabs = yaml::tab_problems(text);
    if !tabs.is_empty() {
        return Err(fail(tabs));
    }
    // Deceptive characters, loose typing and tags: found on the text, before it is read as a spec.
    let mut problems = Vec::new();
    if text.len() <= MAX_SPEC_BYTES {
        rules::check_text(text, &mut problems);
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| (p.line, p.column));
        return Err(fail(problems));
    }
    let (spec, mut problems, stand_in_lines) = parse(text, file)?;
    // A rule about a stand-in value speaks of a value the admin did not write: leave it out.
    let semantic = validate::validate(&spec)
        .into_iter()
        .chain(yaml::unquoted_modes(&spec, text))
        .filter(|p| !stand_in_lines.contains(&p.line));
    problems.extend(semantic);
    problems.sort_by_key(|p| (p.line, p.column));
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(fail(problems))
    }
}

/// Reads a spec file, refusing one too large or not UTF-8.
pub fn read(path: &Path) -> Result<String, SpecError> {
    let fail = |message: String, help: &str| SpecError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: 1,
            column: 1,
            message,
            help: help.to_owned(),
        }],
    };
    let bytes = crate::limits::read_regular(path, MAX_SPEC_BYTES as u64).map_err(|e| {
        fail(
            format!("cannot read the spec: {e:#}"),
            "give the path of a fleet spec (a regular file); `confine init` writes an example",
        )
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        SpecError {
            file: path.to_path_buf(),
            problems: vec![Problem {
                line,
                column,
                message: "the spec is not valid UTF-8".to_owned(),
                help: "save the file as UTF-8".to_owned(),
            }],
        }
    })
}

/// The most problems parsing reports at once; a file with more is probably not a fleet spec.
const MAX_PARSE_PROBLEMS: usize = 20;

/// The spec, the problems parsing found (unknown keys, wrong types), and the lines where a wrong-typed
/// value was replaced by a stand-in; or, when the spec cannot be read past a problem (syntax, a missing
/// key), every problem found until then. After a problem, parsing goes on as if it were fixed (see
/// [`yaml::recover`]), so every typo and wrong type shows at once.
fn parse(text: &str, file: &Path) -> Result<(Spec, Vec<Problem>, Vec<u64>), SpecError> {
    let fail = |line, column, message: String, help: &str| SpecError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            line,
            column,
            message,
            help: help.to_owned(),
        }],
    };
    if text.len() > MAX_SPEC_BYTES {
        return Err(fail(
            1,
            1,
            format!("the spec is {} bytes; the limit is {MAX_SPEC_BYTES}", text.len()),
            "",
        ));
    }
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(fail(
            1,
            1,
            "the spec is empty".to_owned(),
            "start from the example: `confine init fleet.yaml`",
        ));
    }
    let mut problems = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(text);
    let mut stand_in_lines = Vec::new();
    loop {
        let error = match serde_saphyr::from_str_with_options(&current, parse_options()) {
            Ok(spec) => return Ok((spec, problems, stand_in_lines)),
            Err(error) => error,
        };
        let problem = yaml::problem(&error, &current);
        if problems.last() == Some(&problem) {
            break; // the fix did not take
        }
        problems.push(problem);
        match yaml::recover(&error, &current) {
            Some(fixed) if problems.len() < MAX_PARSE_PROBLEMS => {
                stand_in_lines.extend(fixed.stand_in_line);
                current = fixed.text.into();
            }
            _ => break,
        }
    }
    Err(SpecError {
        file: file.to_path_buf(),
        problems,
    })
}

fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // Small limits on purpose: a real spec has a few hundred nodes and no use for alias-heavy tricks.
    budget.max_reader_input_bytes = Some(MAX_SPEC_BYTES);
    budget.max_aliases = 1_000;
    budget.max_nodes = 100_000;
    budget.max_depth = 64;
    budget.max_total_scalar_bytes = MAX_SPEC_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options
}

fn line_column(prefix: &[u8]) -> (u64, u64) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let column = prefix.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
    (line, column)
}
