//! Problems as admins see them: one shape for every command, rendered in rustc's style for people
//! (`error:` title, `--> file:line:column`, the source line with a caret, `= help:`) and serialized as-is
//! for machines (`--json`, see `docs/json.md`).
//!
//! Rendering uses annotate-snippets, the crate rustc itself renders with, so the output looks like the
//! compiler errors admins already read, and colour follows the same conventions.

use std::path::Path;

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

use crate::escape::escape_controls;
use crate::spec::SpecError;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, where it is and how to fix it. Line and column are 1-based; `None` when the problem is
/// about a whole file (or no file at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error about a file as a whole (or, without `file`, about the command).
    pub fn error(file: Option<&Path>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: file.map(|f| f.display().to_string()),
            line: None,
            column: None,
            message: message.into(),
            help: None,
        }
    }

    /// Every problem of a spec, in file order.
    pub fn from_spec_error(error: &SpecError) -> Vec<Diagnostic> {
        let file = error.file.display().to_string();
        error
            .problems
            .iter()
            .map(|p| Diagnostic {
                severity: Severity::Error,
                file: Some(file.clone()),
                line: Some(p.line),
                column: Some(p.column),
                message: p.message.clone(),
                help: (!p.help.is_empty()).then(|| p.help.clone()),
            })
            .collect()
    }

    /// Any error: a spec error's problems one by one, anything else as one problem with its causes.
    pub fn from_error(error: &anyhow::Error) -> Vec<Diagnostic> {
        match error.downcast_ref::<SpecError>() {
            Some(spec_error) => Diagnostic::from_spec_error(spec_error),
            None => vec![Diagnostic::error(None, format!("{error:#}"))],
        }
    }
}

/// Renders diagnostics for a terminal. `source` is the text of the file the diagnostics point into, when
/// there is one; without it, only the `-->` location is shown.
pub fn render(diagnostics: &[Diagnostic], source: Option<&str>, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let level = match diagnostic.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        // Messages quote names and values from files: never pass their control characters to a terminal.
        let message = escape_controls(&diagnostic.message);
        let help = diagnostic.help.as_deref().map(escape_controls);
        let mut group = Group::with_title(level.primary_title(message.as_ref()));
        match (diagnostic.file.as_deref(), diagnostic.line) {
            (Some(file), Some(line)) => {
                let column = diagnostic.column.unwrap_or(1);
                let line_number = usize::try_from(line).unwrap_or(1);
                group = match source.and_then(|s| source_line(s, line)) {
                    Some(text) => group.element(
                        Snippet::source(text)
                            .line_start(line_number)
                            .path(file)
                            .annotation(AnnotationKind::Primary.span(caret_span(text, column))),
                    ),
                    None => group.element(
                        Origin::path(file)
                            .line(line_number)
                            .char_column(usize::try_from(column).unwrap_or(1)),
                    ),
                };
            }
            (Some(file), None) => group = group.element(Origin::path(file)),
            _ => {}
        }
        if let Some(help) = &help {
            group = group.element(Level::HELP.message(help.as_ref()));
        }
        out.push_str(&renderer.render(&[group]));
        out.push('\n');
    }
    out
}

/// The text of 1-based `line`, without its line break.
pub fn source_line(source: &str, line: u64) -> Option<&str> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    source.lines().nth(index)
}

/// Byte range to underline on `text` from 1-based character `column`: the token written there (up to a
/// space, `:`, `,`, `]` or `}`), or one character.
fn caret_span(text: &str, column: u64) -> std::ops::Range<usize> {
    let skip = usize::try_from(column.saturating_sub(1)).unwrap_or(0);
    let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    let rest = &text[start..];
    let quoted = rest.starts_with('"') || rest.starts_with('\'');
    let len = if quoted {
        let quote = rest.as_bytes()[0] as char;
        rest[1..].find(quote).map_or(rest.len(), |end| end + 2)
    } else {
        rest.find(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | ']' | '}' | '#'))
            .unwrap_or(rest.len())
    };
    let end = start + len.max(rest.chars().next().map_or(0, char::len_utf8));
    start..end
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_covers_the_token() {
        assert_eq!(caret_span("  uid: eleven # x", 8), 7..13);
        assert_eq!(caret_span("  mode: \"0 7\"", 9), 8..13);
        assert_eq!(caret_span("  - name: x", 3), 2..3);
        assert_eq!(caret_span("", 5), 0..0);
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(did_you_mean("relase", ["name", "release"]), Some("release"));
        assert_eq!(did_you_mean("zzz", ["name", "release"]), None);
    }
}
