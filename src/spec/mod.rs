//! The fleet spec: its YAML model, strict validation, and the JSON Schema editors use.
//!
//! YAML parsing stays inside this module (serde-saphyr), so the parser can be swapped without touching
//! the rest of confine. Parsing runs under a budget: a spec larger than [`MAX_SPEC_BYTES`], or one whose
//! aliases would expand into a huge document (a "billion laughs" alias bomb), is refused before it costs
//! memory.

mod error;
mod model;
pub mod profiles;
mod rules;
mod schema;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{Problem, SpecError};
pub use model::*;
pub use rules::GATEWAY_TOKEN_FILE;
pub use rules::paths::{
    SUPPORT_ROOT, config_dir, default_home, default_label, default_prefix, default_workspace,
};
pub use rules::sources::{MAX_CERTIFICATE_BYTES, read_bounded};
pub use schema::json_schema;
pub(crate) use validate::parse_octal;

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
    let Some(path) = path else {
        let spec = parse_and_validate(EXAMPLE, Path::new(EXAMPLE_NAME))?;
        return Ok(LoadedSpec {
            spec,
            origin: EXAMPLE_NAME.into(),
            base_dir: PathBuf::from("."),
        });
    };
    let text = read_spec_file(path)?;
    let spec = parse_and_validate(&text, path)?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut problems = Vec::new();
    rules::sources::check(&spec, &base_dir, &mut problems);
    if !problems.is_empty() {
        return Err(SpecError {
            file: path.to_path_buf(),
            problems,
        });
    }
    Ok(LoadedSpec {
        spec,
        origin: path.to_path_buf(),
        base_dir,
    })
}

/// Parses and validates spec text; `file` only names it in messages.
pub fn parse_and_validate(text: &str, file: &Path) -> Result<Spec, SpecError> {
    let mut problems = Vec::new();
    if text.len() <= MAX_SPEC_BYTES {
        rules::check_text(text, &mut problems);
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| (p.line, p.column));
        return Err(SpecError {
            file: file.to_path_buf(),
            problems,
        });
    }
    let spec = parse(text, file)?;
    let problems = validate::validate(&spec);
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecError {
            file: file.to_path_buf(),
            problems,
        })
    }
}

fn read_spec_file(path: &Path) -> Result<String, SpecError> {
    let fail = |message: String, help: &str| SpecError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            line: 1,
            column: 1,
            message,
            help: help.to_owned(),
        }],
    };
    let metadata = std::fs::metadata(path).map_err(|e| {
        fail(
            format!("cannot read the spec: {e}"),
            "check the path; `confine init` writes an example",
        )
    })?;
    if metadata.len() > MAX_SPEC_BYTES as u64 {
        return Err(fail(
            format!(
                "the spec is {} bytes; a fleet spec may be at most {MAX_SPEC_BYTES} bytes",
                metadata.len()
            ),
            "is this the right file?",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the spec: {e}"), ""))?;
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

fn parse(text: &str, file: &Path) -> Result<Spec, SpecError> {
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
    serde_saphyr::from_str_with_options(text, parse_options()).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
        let mut message = strip_location_suffix(&e.without_snippet().to_string());
        if let Some(found) = token_at(text, line, column) {
            message = format!("{message} (found `{found}`)");
        }
        fail(
            line,
            column,
            message,
            "see `confine schema` for every key, its type and allowed values",
        )
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
    // The typing rules (rules/types.rs) report these first, with a fix; these keep the parser strict too.
    options.strict_booleans = true;
    options.reject_unsupported_tags = true;
    options
}

/// serde-saphyr ends some messages with `at line N, column M`; we print our own `file:line:column` first.
fn strip_location_suffix(message: &str) -> String {
    let trimmed = message.trim();
    match trimmed.rfind(" at line ") {
        Some(pos)
            if trimmed[pos + 9..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == ' ' || c.is_ascii_lowercase()) =>
        {
            trimmed[..pos].to_owned()
        }
        _ => trimmed.to_owned(),
    }
}

/// The text written at `line:column`, up to the end of the line, for messages like "invalid u32 (found
/// `abc`)". Control characters are escaped so a hostile spec cannot garble the terminal.
fn token_at(text: &str, line: u64, column: u64) -> Option<String> {
    let line_text = text.lines().nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let rest: String = line_text
        .chars()
        .skip(usize::try_from(column).ok()?.saturating_sub(1))
        .collect();
    let rest = rest.split(" #").next().unwrap_or_default().trim();
    if rest.is_empty() {
        return None;
    }
    let shown: String = rest
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string();
    Some(if rest.chars().count() > 40 {
        format!("{shown}…")
    } else {
        shown
    })
}

fn line_column(prefix: &[u8]) -> (u64, u64) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let column = prefix.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
    (line, column)
}
