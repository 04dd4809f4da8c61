//! `confine audit`: the collected trail (`<agent>.jsonl` from a Mac) as a timeline, one line per event:
//! time, UID, pid, parent pid, event, and what happened (the program and its arguments for `exec`, the
//! child for `fork`, the status for `exit`).
//!
//! The lines are eslogger's JSON, modelled on Endpoint Security's `es_message_t` (`time`, `process`,
//! `event`, `global_seq_num`…), whose layout Apple says is not API: every field is optional here, an
//! event without the expected fields still prints with what it has, and unknown fields are ignored. The
//! collector's own records (`{"confine": …}`) print as `--` lines. Memory is bounded: the input is read a
//! line at a time, each at most [`MAX_LINE_BYTES`]; a longer line, or one that is not JSON, is an error
//! that names the file and line. Everything the agent controls (program paths, arguments) is printed
//! with control characters escaped, so a planted argument cannot rewrite the reader's terminal.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::escape::needs_escape;

/// The longest line read: the collector keeps events up to [`super::MAX_EVENT_BYTES`].
pub const MAX_LINE_BYTES: usize = super::MAX_EVENT_BYTES as usize + 4096;

/// What one timeline run saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// Events Endpoint Security dropped, from the collector's `dropped` records.
    pub dropped: u64,
    /// Events too long to keep, from `oversized` records.
    pub oversized: u64,
    /// Rotations that discarded the oldest rotated file, from `discarded` records.
    pub discarded: u64,
}

/// Prints the timeline of `input` (named `origin` in errors) to `out`.
pub fn print(input: &mut dyn BufRead, origin: &str, out: &mut dyn Write) -> Result<Summary> {
    writeln!(
        out,
        "{:<30} {:>6} {:>7} {:>7} {:<6} WHAT",
        "TIME", "UID", "PID", "PPID", "EVENT"
    )?;
    let mut summary = Summary::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    while read_line(input, &mut line).with_context(|| format!("reading {origin}"))? {
        number += 1;
        if line.len() > MAX_LINE_BYTES {
            bail!(
                "{origin}:{number}: the line is longer than {} MiB; this is not a confine audit log",
                MAX_LINE_BYTES >> 20
            );
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(&line).map_err(|e| {
            anyhow::anyhow!(
                "{origin}:{number}: not a JSON event ({e}); the audit log holds one JSON object per line"
            )
        })?;
        let Value::Object(_) = value else {
            bail!("{origin}:{number}: not a JSON object; the audit log holds one JSON object per line");
        };
        writeln!(out, "{}", row(&value, &mut summary))?;
    }
    Ok(summary)
}

/// Reads up to and without the next newline into `line`, keeping at most [`MAX_LINE_BYTES`] + 1 bytes
/// (enough to tell the line is too long). `false` at the end of the input.
fn read_line(input: &mut dyn BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let mut any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        input.consume(used);
        if done {
            return Ok(true);
        }
    }
}

fn row(v: &Value, summary: &mut Summary) -> String {
    let time = text(v.get("time")).unwrap_or_else(|| "?".to_owned());
    if let Some(kind) = v.get("confine") {
        return format!("{time:<30} -- {}", record(kind, v, summary));
    }
    summary.events += 1;
    let process = v.get("process");
    let token = process.and_then(|p| p.get("audit_token"));
    let uid = number(token.and_then(|t| t.get("ruid")));
    let pid = number(token.and_then(|t| t.get("pid")));
    let ppid = number(process.and_then(|p| p.get("ppid")));
    let (event, detail) = match v
        .get("event")
        .and_then(Value::as_object)
        .and_then(|e| e.iter().next())
    {
        Some((name, body)) => (clean(name), detail(name, body, process)),
        None => ("?".to_owned(), String::new()),
    };
    format!("{time:<30} {uid:>6} {pid:>7} {ppid:>7} {event:<6} {detail}")
}

/// The collector's records: a start, a rotation, the oldest file discarded, events Endpoint Security
/// dropped, a line too long (with its program).
fn record(kind: &Value, v: &Value, summary: &mut Summary) -> String {
    let count = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
    match kind.as_str() {
        Some("collector-started") => "collector started".to_owned(),
        Some("rotated") => format!(
            "file rotated (rotation {} since the collector started)",
            count("rotations")
        ),
        Some("dropped") => {
            summary.dropped += count("events");
            format!(
                "{} event(s) dropped by Endpoint Security before this point (any process)",
                count("events")
            )
        }
        Some("oversized") => {
            summary.oversized += 1;
            let program = v.get("program").and_then(Value::as_str).unwrap_or("");
            format!(
                "a {} event of pid {} ({}) was {} bytes, too long to keep",
                clean(v.get("event").and_then(Value::as_str).unwrap_or("?")),
                count("pid"),
                if program.is_empty() {
                    "program unknown".to_owned()
                } else {
                    clean(program)
                },
                count("bytes")
            )
        }
        Some("discarded") => {
            summary.discarded += 1;
            format!(
                "EVENTS DISCARDED: the file rotated out at this time (the trail keeps {} rotated files) is \
                 gone; every earlier event is lost",
                count("keep")
            )
        }
        _ => format!("confine record {}", clean(&kind.to_string())),
    }
}

fn detail(name: &str, body: &Value, process: Option<&Value>) -> String {
    match name {
        "exec" => {
            let target = body.get("target");
            let program = text(
                target
                    .and_then(|t| t.get("executable"))
                    .and_then(|e| e.get("path")),
            );
            let args: Vec<String> = body
                .get("args")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| quote(&text(Some(x)).unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = program.unwrap_or_else(|| "?".to_owned());
            if !args.is_empty() {
                let _ = write!(out, " [{}]", args.join(" "));
            }
            // A setuid program: the new image runs with another effective UID.
            let euid = target
                .and_then(|t| t.get("audit_token"))
                .and_then(|t| t.get("euid"));
            let ruid = process
                .and_then(|p| p.get("audit_token"))
                .and_then(|t| t.get("ruid"));
            if let (Some(euid), Some(ruid)) = (euid.and_then(Value::as_i64), ruid.and_then(Value::as_i64))
                && euid != ruid
            {
                let _ = write!(out, " (effective UID {euid})");
            }
            out
        }
        "fork" => format!(
            "child {}",
            number(
                body.get("child")
                    .and_then(|c| c.get("audit_token"))
                    .and_then(|t| t.get("pid"))
            )
        ),
        "exit" => match body.get("stat").and_then(Value::as_i64) {
            // A wait(2) status: exited when the low 7 bits are 0, else killed by that signal.
            Some(stat) if stat & 0x7f == 0 => format!("{} exited {}", program(process), (stat >> 8) & 0xff),
            Some(stat) => format!("{} killed by signal {}", program(process), stat & 0x7f),
            None => format!("{} exited", program(process)),
        },
        _ => program(process),
    }
}

fn program(process: Option<&Value>) -> String {
    text(
        process
            .and_then(|p| p.get("executable"))
            .and_then(|e| e.get("path")),
    )
    .unwrap_or_else(|| "?".to_owned())
}

/// A string field, with control characters escaped; numbers as written.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(clean(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> String {
    v.and_then(Value::as_i64)
        .map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// Control characters, bidi controls, line separators and other invisible format characters (see
/// [`needs_escape`]) written as `\u{…}`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An argument as a shell would need it: bare when it is plain, else in single quotes.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(input: &str) -> Result<(String, Summary)> {
        let mut out = Vec::new();
        let summary = print(&mut input.as_bytes(), "audit.jsonl", &mut out)?;
        Ok((String::from_utf8(out).expect("utf-8"), summary))
    }

    #[test]
    fn fields_are_optional_and_unknown_ones_ignored() {
        let (out, summary) =
            timeline("{\"event\":{\"exec\":{\"new_field\":1}},\"extra\":[1,2]}\n{}\n").expect("reads");
        assert!(out.lines().nth(1).expect("row").contains("exec   ?"), "{out}");
        assert_eq!(summary.events, 2);
    }

    #[test]
    fn control_characters_are_escaped() {
        let (out, _) = timeline(
            r#"{"process":{"executable":{"path":"/bin/sh"}},"event":{"exec":{"target":{"executable":{"path":"/bin/echo"}},"args":["echo","\u001b[2Jgone"]}}}"#,
        )
        .expect("reads");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(out.contains(r"'\u{1b}[2Jgone'"), "{out}");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let err = timeline("{}\nnot json\n").expect_err("fails");
        assert!(
            format!("{err:#}").starts_with("audit.jsonl:2: not a JSON event"),
            "{err:#}"
        );
        let err = timeline("[1]\n").expect_err("fails");
        assert!(
            format!("{err:#}").starts_with("audit.jsonl:1: not a JSON object"),
            "{err:#}"
        );
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut input = std::io::Read::take(std::io::repeat(b'x'), 3 * MAX_LINE_BYTES as u64);
        let mut reader = std::io::BufReader::new(&mut input);
        let mut line = Vec::new();
        assert!(read_line(&mut reader, &mut line).expect("reads"));
        assert_eq!(line.len(), MAX_LINE_BYTES + 1);
    }
}
