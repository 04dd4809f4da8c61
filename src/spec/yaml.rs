//! YAML and type errors in an admin's words. serde-saphyr reports what the parser or serde saw (`invalid
//! u32`, `while parsing a block mapping`); this turns each into a [`Problem`] that names the key, says what
//! is allowed, points where the fix goes (a missing key at the mapping that lacks it) and suggests the
//! closest valid name for a typo. [`recover`] fixes a typo or a wrong type in the text so parsing can go
//! on and report the next one. It also catches what the parser accepts but admins get wrong: tabs in
//! indentation and unquoted octal modes.

use serde_saphyr::{Error, Location};

use super::error::Problem;
use super::model::Spec;
use super::validate::{MAX_ID, MIN_ID, escape};
use crate::diagnostics::{did_you_mean, source_line};

/// Every tab in the indentation of a line: YAML forbids them, and parsers report them a line late. Lines
/// of a block scalar (`key: |`) are text, where a tab is allowed.
pub(super) fn tab_problems(text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut block_scalar_of: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        if let Some(parent) = block_scalar_of {
            if line.trim().is_empty() || indent_of(line) > parent {
                continue;
            }
            block_scalar_of = None;
        }
        let value = line.split(" #").next().unwrap_or_default().trim_end();
        if value.ends_with(['|', '>']) || value.ends_with("|-") || value.ends_with(">-") {
            block_scalar_of = Some(indent_of(line));
        }
        let indent = line.len() - line.trim_start_matches([' ', '\t', '-']).len();
        if let Some(tab) = line[..indent].find('\t') {
            problems.push(Problem {
                line: index as u64 + 1,
                column: line[..tab].chars().count() as u64 + 1,
                message: "YAML does not allow tabs for indentation; use spaces".to_owned(),
                help: "replace the tab with spaces, lined up with the keys around it".to_owned(),
            });
        }
    }
    problems
}

/// Octal modes written without quotes: YAML 1.1 tools read `0770` as the number 504, YAML 1.2 tools as
/// 770, so the same file means different things to an editor and to confine.
pub(super) fn unquoted_modes(spec: &Spec, text: &str) -> Vec<Problem> {
    let modes = spec.agents.iter().flat_map(|agent| {
        let workspace = agent.workspace.mode.as_ref().map(|m| ("mode", m));
        workspace
            .into_iter()
            .chain(std::iter::once(("umask", &agent.launchd.umask)))
    });
    modes
        .filter(|(_, mode)| mode.referenced != Location::UNKNOWN)
        .filter(|(_, mode)| {
            char_at(text, mode.referenced.line(), mode.referenced.column())
                .is_some_and(|c| c != '"' && c != '\'')
        })
        .map(|(key, mode)| {
            Problem::at(
                &mode.referenced,
                format!("`{key}` must be a quoted string, such as \"{}\"", mode.value),
                format!(
                    "unquoted, YAML reads {} as a number (other tools see a different value); write `{key}: \"{}\"`",
                    mode.value, mode.value
                ),
            )
        })
        .collect()
}

/// The problem a serde-saphyr error stands for, in plain words.
pub(super) fn problem(error: &Error, text: &str) -> Problem {
    let (line, column) = error
        .location()
        .filter(|l| *l != Location::UNKNOWN)
        .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
    let at = |message: String, help: String| Problem {
        line,
        column,
        message,
        help,
    };
    match original(error) {
        Error::SerdeUnknownField { field, expected, .. } => at(
            format!("unknown key `{field}`"),
            suggestion(field, expected, "the keys here are"),
        ),
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => at(
            format!("`{variant}` is not an allowed value"),
            suggestion(variant, expected, "allowed values are"),
        ),
        Error::SerdeMissingField { field, .. } => missing_key(text, line, column, field),
        Error::InvalidScalar { ty, .. } => type_problem(text, line, column, ty),
        Error::SerdeInvalidType { expected, .. } | Error::SerdeInvalidValue { expected, .. } => {
            type_problem(text, line, column, expected)
        }
        Error::Unexpected { expected, .. } => type_problem(text, line, column, expected),
        Error::DuplicateMappingKey { key, .. } => at(
            format!(
                "the key `{}` is written twice in this mapping",
                key.as_deref().unwrap_or("?")
            ),
            "keep one of them".to_owned(),
        ),
        Error::Eof { .. } => at(
            "the spec ends in the middle of a value".to_owned(),
            "close every `[`, `{` and quote".to_owned(),
        ),
        other => syntax_problem(&other.to_string(), text, line, column),
    }
}

/// Spec text with one problem fixed, so parsing can go on to find the next.
pub(super) struct Fixed {
    pub text: String,
    /// The line (1-based) where a wrong-typed value was replaced by a stand-in of the right type; `None`
    /// when only an unknown key was renamed or dropped, so every value is still the admin's own.
    pub stand_in_line: Option<u64>,
}

/// `text` as if the problem `error` reports were fixed: an unknown key renamed or dropped, a value of
/// the wrong type replaced by one of the right type. `None` for a problem that cannot be fixed by
/// editing one line (a syntax error, a missing key).
pub(super) fn recover(error: &Error, text: &str) -> Option<Fixed> {
    if let Some(text) = without_unknown_key(error, text) {
        return Some(Fixed {
            text,
            stand_in_line: None,
        });
    }
    let (location, placeholder) = match original(error) {
        Error::InvalidScalar { ty, location } => (location, placeholder_for(ty)),
        Error::SerdeInvalidType {
            expected, location, ..
        }
        | Error::SerdeInvalidValue {
            expected, location, ..
        } => (location, placeholder_for(expected)),
        Error::Unexpected { expected, location } => (location, placeholder_for(expected)),
        Error::SerdeUnknownVariant {
            expected, location, ..
        } => (location, (*expected.first()?).to_owned()),
        _ => return None,
    };
    let index = usize::try_from(location.line()).ok()?.checked_sub(1)?;
    let start_char = usize::try_from(location.column()).ok()?.checked_sub(1)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = lines.get(index)?;
    let start = line.char_indices().nth(start_char).map(|(i, _)| i)?;
    let rest = &line[start..];
    let after_key = line[..start].trim_end().ends_with(':');
    if !after_key || rest.starts_with(['[', '{', '"', '\'', '|', '>']) {
        return None; // not a plain one-line scalar written after its key
    }
    let value = &rest[..rest.find(" #").unwrap_or(rest.len())];
    let end = start + value.find([',', '}', ']']).unwrap_or(value.len());
    lines[index].replace_range(start..end, &placeholder);
    Some(Fixed {
        text: lines.join("\n") + "\n",
        stand_in_line: Some(location.line()),
    })
}

/// A value of the type an error expected, for [`recover`].
fn placeholder_for(expected: &str) -> String {
    match type_in_words(expected).as_str() {
        "a whole number" => "1000",
        "`true` or `false`" => "false",
        "a list" => "[]",
        "a mapping of keys" => "{}",
        _ => "placeholder",
    }
    .to_owned()
}

/// The unknown key `error` reports, renamed to the key it is closest to or, with none close, cut out
/// (its line and the block nested under it become empty lines, so every other line keeps its number).
/// `None` when the key does not start its line.
fn without_unknown_key(error: &Error, text: &str) -> Option<String> {
    let Error::SerdeUnknownField {
        field,
        expected,
        location,
    } = original(error)
    else {
        return None;
    };
    let index = usize::try_from(location.line()).ok()?.checked_sub(1)?;
    let key_indent = usize::try_from(location.column()).ok()?.checked_sub(1)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let key_line = lines.get(index)?;
    if indent_of(key_line) != key_indent || !key_line[key_indent..].starts_with(field.as_str()) {
        return None; // a key inside a flow mapping or after `- `: not cut out by lines
    }
    let close = did_you_mean(field, expected.iter().copied())
        .filter(|close| !has_sibling(&lines, index, key_indent, close));
    if let Some(close) = close {
        lines[index].replace_range(key_indent..key_indent + field.len(), close);
    } else {
        let block_end = lines[index + 1..]
            .iter()
            .position(|l| !l.trim().is_empty() && indent_of(l) <= key_indent)
            .map_or(lines.len(), |n| index + 1 + n);
        lines[index..block_end].iter_mut().for_each(String::clear);
    }
    Some(lines.join("\n") + "\n")
}

/// Whether the mapping whose key at `key_indent` is on line `index` also has `key`: on a line around it
/// at that indentation, or on the `- key:` line that opens its list item.
fn has_sibling(lines: &[String], index: usize, key_indent: usize, key: &str) -> bool {
    let written_here = |line: &str| {
        line.get(key_indent..)
            .and_then(|rest| rest.strip_prefix(key))
            .is_some_and(|rest| rest.starts_with(':'))
    };
    let sibling = |line: &str| indent_of(line) == key_indent && written_here(line);
    let in_block = |line: &str| line.trim().is_empty() || indent_of(line) >= key_indent;
    if lines[index + 1..]
        .iter()
        .take_while(|l| in_block(l))
        .any(|l| sibling(l))
    {
        return true;
    }
    for line in lines[..index].iter().rev() {
        if !in_block(line) {
            let opens_item = line
                .get(..key_indent)
                .is_some_and(|head| head.trim().starts_with('-'));
            return opens_item && written_here(line);
        }
        if sibling(line) {
            return true;
        }
    }
    false
}

/// The error itself, without the wrappers serde-saphyr adds for snippets and aliases.
fn original(error: &Error) -> &Error {
    let mut error = error.without_snippet();
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } = error {
        error = inner;
    }
    error
}

fn suggestion(word: &str, expected: &[&'static str], list_intro: &str) -> String {
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(word, expected.iter().copied()) {
        Some(close) => format!("did you mean `{close}`? ({list_intro} {list})"),
        None => format!("{list_intro} {list}"),
    }
}

/// A missing key points at the mapping that lacks it: its key line (`fleet:`) or list item (`- name:`).
/// When the key is written just below but indented differently, the problem is the indentation, and
/// points there.
fn missing_key(text: &str, line: u64, column: u64, field: &str) -> Problem {
    let lines: Vec<&str> = text.lines().collect();
    let key_indent = usize::try_from(column.saturating_sub(1)).unwrap_or(0);
    let parent = parent_of(
        &lines,
        usize::try_from(line).unwrap_or(1).saturating_sub(1),
        key_indent,
    );
    let Some((parent_line, parent_column, name)) = parent else {
        return Problem {
            line: 1,
            column: 1,
            message: format!("the spec has no top-level `{field}`"),
            help: format!("add `{field}:` (see `confine init` for an example)"),
        };
    };
    let misplaced = lines
        .iter()
        .enumerate()
        .skip(parent_line + 1)
        .take_while(|(_, l)| l.trim().is_empty() || indent_of(l) > parent_column)
        .find(|(_, l)| l.trim_start().starts_with(&format!("{field}:")) && indent_of(l) != key_indent);
    if let Some((index, written)) = misplaced {
        return Problem {
            line: index as u64 + 1,
            column: indent_of(written) as u64 + 1,
            message: format!(
                "`{field}` is indented by {}, but the other keys of {name} by {}",
                spaces(indent_of(written)),
                spaces(key_indent)
            ),
            help: format!(
                "line it up with the keys above it; as written, {name} on line {} has no `{field}`",
                parent_line + 1
            ),
        };
    }
    Problem {
        line: parent_line as u64 + 1,
        column: parent_column as u64 + 1,
        message: format!("{name} has no `{field}`"),
        help: format!("add `{field}: …` to it"),
    }
}

/// The line and column of the mapping that holds a key at `key_indent` on line `index` (0-based), and
/// how to name it: the list item (`- ` before the key) or the key that introduces the block.
fn parent_of(lines: &[&str], index: usize, key_indent: usize) -> Option<(usize, usize, String)> {
    for i in (0..=index.min(lines.len().saturating_sub(1))).rev() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        let head = line.get(..key_indent).unwrap_or(line);
        if let Some(dash) = head.rfind("- ").filter(|_| head.trim_start().starts_with('-')) {
            return Some((i, dash, "this list item".to_owned()));
        }
        if let Some(brace) = head.rfind('{') {
            return Some((i, brace, "this mapping".to_owned()));
        }
        if indent < key_indent {
            let key = trimmed
                .split(':')
                .next()
                .unwrap_or(trimmed)
                .trim_start_matches("- ");
            return Some((i, indent, format!("`{key}`")));
        }
    }
    None
}

fn spaces(n: usize) -> String {
    if n == 1 {
        "1 space".to_owned()
    } else {
        format!("{n} spaces")
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A value of the wrong type, in plain words with the key's allowed range.
fn type_problem(text: &str, line: u64, column: u64, expected: &str) -> Problem {
    let key = key_before(text, line, column);
    let found = token_at(text, line, column);
    let allowed = match key.as_deref() {
        Some("uid" | "gid") => format!("a whole number from {MIN_ID} to {MAX_ID}"),
        Some("port") => "a whole number from 1024 to 65535".to_owned(),
        Some("version") if expected.starts_with('u') => "the number 1".to_owned(),
        _ => type_in_words(expected),
    };
    let subject = key.map_or_else(|| "this value".to_owned(), |k| format!("`{k}`"));
    let message = match found {
        Some(found) => format!("{subject} must be {allowed}, not `{found}`"),
        None => format!("{subject} must be {allowed}"),
    };
    Problem {
        line,
        column,
        message,
        help: "`confine schema` lists every key with its type and allowed values".to_owned(),
    }
}

fn type_in_words(expected: &str) -> String {
    let e = expected.to_ascii_lowercase();
    if ["u8", "u16", "u32", "u64", "i32", "i64", "integer"]
        .iter()
        .any(|t| e.contains(t))
    {
        "a whole number".to_owned()
    } else if e.contains("bool") {
        "`true` or `false`".to_owned()
    } else if e.contains("sequence") {
        "a list".to_owned()
    } else if e.contains("struct") || e.contains("map") {
        "a mapping of keys".to_owned()
    } else if e.contains("string") || e.contains("char") {
        "text".to_owned()
    } else {
        expected.to_owned()
    }
}

/// Parser errors (syntax) in plain words; the parser's own text is kept only for the rare ones we do not
/// know.
fn syntax_problem(parser_message: &str, text: &str, line: u64, column: u64) -> Problem {
    let m = parser_message.to_ascii_lowercase();
    let (message, help) = if m.contains("did not find expected key")
        || m.contains("mapping values are not allowed")
        || m.contains("block mapping")
        || m.contains("indentation")
    {
        (
            "this line is not lined up with the keys around it".to_owned(),
            indentation_help(text, line),
        )
    } else if m.contains("unclosed quote") || m.contains("quoted scalar") {
        (
            "a quoted value is not closed".to_owned(),
            "end the value with the same quote it starts with, on the same line".to_owned(),
        )
    } else if m.contains("flow sequence") || m.contains("flow mapping") || m.contains("unclosed") {
        (
            "a `[` or `{` is not closed".to_owned(),
            "close it on the same line, e.g. `members: [hexagent]`".to_owned(),
        )
    } else if m.contains("unexpected character") || m.contains("control character") {
        (
            "this character is not allowed in a YAML file".to_owned(),
            "remove it; control characters are not valid even inside quotes".to_owned(),
        )
    } else if m.contains("budget") || m.contains("limit") || m.contains("alias") {
        (
            strip_location_suffix(parser_message),
            "a fleet spec needs no anchors or aliases beyond a few".to_owned(),
        )
    } else {
        (
            format!(
                "this is not valid YAML ({})",
                strip_location_suffix(parser_message)
            ),
            "check the indentation and quoting on this line and the one above".to_owned(),
        )
    };
    Problem {
        line,
        column,
        message,
        help,
    }
}

/// How far the key on `line` is indented compared with the key lines before it.
fn indentation_help(text: &str, line: u64) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line)
        .unwrap_or(1)
        .saturating_sub(1)
        .min(lines.len().saturating_sub(1));
    let previous = lines[..index]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    match (lines.get(index), previous) {
        (Some(this), Some(previous)) if indent_of(this) != indent_of(previous) => format!(
            "keys of one mapping start in the same column: this line is indented by {}, the line above by {}",
            spaces(indent_of(this)),
            spaces(indent_of(previous))
        ),
        _ => "keys of one mapping start in the same column; a value with `: ` in it needs quotes".to_owned(),
    }
}

/// serde-saphyr ends some messages with `at line N, column M`; we print our own location.
fn strip_location_suffix(message: &str) -> String {
    let trimmed = message.trim();
    match trimmed.rfind(" at line ") {
        Some(pos) => trimmed[..pos].to_owned(),
        None => trimmed.to_owned(),
    }
}

/// The key a value at `line:column` belongs to: the `key:` before the column on that line, or for a
/// value on its own line, the nearest key line above.
fn key_before(text: &str, line: u64, column: u64) -> Option<String> {
    let before: String = source_line(text, line)?
        .chars()
        .take(usize::try_from(column).ok()?.saturating_sub(1))
        .collect();
    let key = before.trim_end().strip_suffix(':')?;
    let key = key.rsplit(['{', ',', ' ', '-']).next()?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

fn char_at(text: &str, line: u64, column: u64) -> Option<char> {
    source_line(text, line)?
        .chars()
        .nth(usize::try_from(column).ok()?.checked_sub(1)?)
}

/// The value written at `line:column`, for messages like "must be a whole number, not `abc`". Control
/// characters are escaped so a hostile spec cannot garble the terminal.
fn token_at(text: &str, line: u64, column: u64) -> Option<String> {
    let rest: String = source_line(text, line)?
        .chars()
        .skip(usize::try_from(column).ok()?.saturating_sub(1))
        .collect();
    let rest = rest.split(" #").next().unwrap_or_default();
    let rest = rest.split([',', '}', ']']).next().unwrap_or_default().trim();
    (!rest.is_empty()).then(|| escape(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_of_a_value() {
        let text = "a:\n  uid: eleven\n  x: { port: http }\n";
        assert_eq!(key_before(text, 2, 8).as_deref(), Some("uid"));
        assert_eq!(key_before(text, 3, 14).as_deref(), Some("port"));
    }

    #[test]
    fn siblings_of_a_key() {
        let lines: Vec<String> = ["a:", "  - name: x", "    nmae: y", "    uid: 1", "b: 2"]
            .iter()
            .map(|l| (*l).to_owned())
            .collect();
        assert!(has_sibling(&lines, 2, 4, "name"));
        assert!(has_sibling(&lines, 2, 4, "uid"));
        assert!(!has_sibling(&lines, 2, 4, "b"));
        assert!(!has_sibling(&lines, 2, 4, "full_name"));
    }

    #[test]
    fn a_tab_is_found_where_it_is() {
        let problems = tab_problems("a:\n  b: 1\n\tc: 2\n  - \td\nnote: |\n  \ttext\n\te: 1\n");
        let at: Vec<_> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(3, 1), (4, 5), (7, 1)]);
    }
}
