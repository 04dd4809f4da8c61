//! YAML typing, held to what a reader sees.
//!
//! serde-saphyr follows YAML's resolution rules, which read `uid: "1051"`, `0x41B` and `1_051` as the
//! number 1051 and `yes`/`on` as `true`, and it ignores most tags (`!!python/object`). Each is a way for
//! a spec to mean something other than it shows, so this pass walks the document's events beside the
//! spec's own JSON Schema (generated from the model, so it knows every field, present and future):
//! - a field the schema types as an integer takes an unquoted decimal number;
//! - a boolean field takes an unquoted `true` or `false`;
//! - where the schema allows any value (raw profile settings), a plain scalar may not be a YAML 1.1
//!   boolean spelling (`yes`, `On`…) or a non-decimal number (`0x1F`, `0o17`, `1_000`, `+1`, `017`);
//! - no node carries a tag;
//! - no double-quoted value escapes a character [`super::text`] refuses.
//!
//! It runs before deserialization and stops quietly at a syntax error, which deserialization reports.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span};

use super::super::error::Problem;
use super::super::validate::escape;
use super::text::deceptive;

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<super::super::model::Spec>();
    serde_json::to_value(schema).unwrap_or(Value::Bool(true))
});

/// A problem for every tag and every loosely typed scalar in `text`.
pub fn check(text: &str, problems: &mut Vec<Problem>) {
    let mut walker = Walker {
        root: &SCHEMA,
        stack: Vec::new(),
        anchors: HashMap::new(),
        problems,
    };
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return };
        walker.event(event, span);
    }
}

/// Where the walker is: which schema the next node is checked against.
enum Frame<'s> {
    /// In a mapping; `value` is `Some(schema)` after a key, `None` while a key is expected.
    Map {
        schema: Option<&'s Value>,
        value: Option<Option<&'s Value>>,
    },
    Seq {
        items: Option<&'s Value>,
    },
}

enum Slot<'s> {
    Key,
    Value(Option<&'s Value>),
}

struct Walker<'s, 'p> {
    root: &'s Value,
    stack: Vec<Frame<'s>>,
    /// Anchored scalars, for aliases used where a number or boolean is expected.
    anchors: HashMap<usize, (ScalarStyle, String)>,
    problems: &'p mut Vec<Problem>,
}

impl<'s> Walker<'s, '_> {
    fn event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                if let Some(tag) = tag {
                    self.tag(&tag.original(), &span);
                }
                // Escapes are the one way to write a character the text scan cannot see.
                if style == ScalarStyle::DoubleQuoted
                    && let Some((c, what)) = value.chars().find_map(|c| deceptive(c).map(|w| (c, w)))
                {
                    self.fail(span.start, format!("{what} (U+{:04X}) is in this value", u32::from(c)), "delete the escape: invisible and direction-changing characters make text read differently from what it is");
                }
                if let Slot::Value(schema) = self.slot() {
                    self.scalar(schema, &value, style, span.start);
                }
                if anchor != 0 {
                    self.anchors.insert(anchor, (style, value.to_string()));
                }
                self.done(Some(&value));
            }
            Event::Alias(id) => {
                if let (Slot::Value(schema), Some((style, value))) = (self.slot(), self.anchors.get(&id)) {
                    let (style, value) = (*style, value.clone());
                    self.scalar(schema, &value, style, span.start);
                }
                self.done(None);
            }
            Event::SequenceStart(_, _, tag) => {
                if let Some(tag) = tag {
                    self.tag(&tag.original(), &span);
                }
                let items = match self.slot() {
                    Slot::Value(Some(schema)) => self.child(schema, |alt| alt.get("items")),
                    _ => None,
                };
                self.stack.push(Frame::Seq { items });
            }
            Event::MappingStart(_, _, tag) => {
                if let Some(tag) = tag {
                    self.tag(&tag.original(), &span);
                }
                let schema = match self.slot() {
                    Slot::Value(schema) => schema,
                    Slot::Key => None,
                };
                self.stack.push(Frame::Map { schema, value: None });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
                self.done(None);
            }
            _ => {}
        }
    }

    fn slot(&self) -> Slot<'s> {
        match self.stack.last() {
            None => Slot::Value(Some(self.root)),
            Some(Frame::Map { value: None, .. }) => Slot::Key,
            Some(Frame::Map {
                value: Some(schema), ..
            }) => Slot::Value(*schema),
            Some(Frame::Seq { items }) => Slot::Value(*items),
        }
    }

    /// A node ended: after a key the mapping expects its value, after a value the next key.
    fn done(&mut self, key: Option<&str>) {
        let root = self.root;
        if let Some(Frame::Map { schema, value }) = self.stack.last_mut() {
            *value = match value {
                None => Some(key.and_then(|k| property(root, *schema, k))),
                Some(_) => None,
            };
        }
    }

    fn child(&self, schema: &'s Value, pick: impl Fn(&'s Value) -> Option<&'s Value>) -> Option<&'s Value> {
        alternatives(self.root, schema).into_iter().find_map(pick)
    }

    fn tag(&mut self, tag: &str, span: &Span) {
        let at = span.tag_start.unwrap_or(span.start);
        self.fail(
            at,
            format!("YAML tags are not allowed (found `{}`)", escape(tag)),
            "remove the tag: a spec holds plain values only",
        );
    }

    fn scalar(&mut self, schema: Option<&'s Value>, value: &str, style: ScalarStyle, at: Marker) {
        let kinds = schema.and_then(|s| kinds(self.root, s));
        if let Some((message, help)) = loose(kinds, value, style) {
            self.fail(at, message, help);
        }
    }

    fn fail(&mut self, at: Marker, message: String, help: &str) {
        self.problems.push(Problem {
            line: at.line() as u64,
            column: at.col() as u64 + 1,
            message,
            help: help.to_owned(),
        });
    }
}

/// What is wrong with a scalar written as `value` in `style` where the schema allows `kinds`.
fn loose(kinds: Option<Kinds>, value: &str, style: ScalarStyle) -> Option<(String, &'static str)> {
    let shown = escape(value);
    let plain = style == ScalarStyle::Plain;
    let (message, help) = match kinds {
        Some(k) if k.string => return None,
        Some(k) if k.null && plain && is_null(value) => return None,
        // Only what the parser would accept is reported here; a value of the wrong kind altogether
        // (`port: http`) is left to the parser's own message.
        Some(k) if k.integer && !plain && is_integer(value) => (
            format!("`{shown}` is quoted text where a number goes"),
            "write the number without quotes, e.g. `1051`",
        ),
        Some(k) if k.integer && plain && is_loose_integer(value) => (
            format!("`{shown}` is not a plain decimal number"),
            "write the number in decimal digits only, e.g. `1051` (no hex, octal, `_` or `+`)",
        ),
        Some(k) if k.boolean && !plain && is_yaml11_bool(value) => (
            format!("`{shown}` is quoted text where `true` or `false` goes"),
            "write `true` or `false` without quotes",
        ),
        Some(k) if k.boolean && plain && is_yaml11_bool(value) && value != "true" && value != "false" => {
            (format!("`{shown}` is not a boolean"), "write `true` or `false`")
        }
        None if plain && is_yaml11_bool(value) && value != "true" && value != "false" => (
            format!("`{shown}` reads as a boolean in some YAML tools and as text in others"),
            "write `true` or `false`, or quote it if you mean the text",
        ),
        None if plain && is_loose_integer(value) => (
            format!("`{shown}` is a number in a form YAML tools read differently"),
            "write the number in decimal digits only, or quote it if you mean the text",
        ),
        _ => return None,
    };
    Some((message, help))
}

/// The JSON types a schema node allows, or `None` when it allows anything.
#[derive(Default)]
struct Kinds {
    string: bool,
    integer: bool,
    boolean: bool,
    null: bool,
}

fn kinds(root: &Value, schema: &Value) -> Option<Kinds> {
    let alternatives = alternatives(root, schema);
    if alternatives.is_empty() {
        return None;
    }
    let mut kinds = Kinds::default();
    for alt in alternatives {
        let mut add = |t: &str| match t {
            "string" => kinds.string = true,
            "integer" => kinds.integer = true,
            "boolean" => kinds.boolean = true,
            "null" => kinds.null = true,
            _ => {}
        };
        match (alt.get("type"), alt.get("enum"), alt.get("const")) {
            (Some(Value::String(t)), _, _) => add(t),
            (Some(Value::Array(ts)), _, _) => ts.iter().filter_map(Value::as_str).for_each(add),
            (None, Some(Value::Array(values)), _) => values.iter().for_each(|v| add(json_type(v))),
            (None, None, Some(v)) => add(json_type(v)),
            _ if alt.get("properties").is_some() || alt.get("items").is_some() => {}
            _ => return None,
        }
    }
    Some(kinds)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Null => "null",
        _ => "other",
    }
}

/// The schema of `key`'s value in a mapping of `schema`.
fn property<'s>(root: &'s Value, schema: Option<&'s Value>, key: &str) -> Option<&'s Value> {
    alternatives(root, schema?).into_iter().find_map(|alt| {
        alt.get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| alt.get("additionalProperties").filter(|a| a.is_object()))
    })
}

/// `schema` with `$ref`s followed and `anyOf`/`oneOf`/`allOf` flattened: the nodes that say something.
fn alternatives<'s>(root: &'s Value, schema: &'s Value) -> Vec<&'s Value> {
    let mut out = Vec::new();
    collect(root, schema, &mut out, 0);
    out
}

fn collect<'s>(root: &'s Value, schema: &'s Value, out: &mut Vec<&'s Value>, depth: usize) {
    if depth > 16 {
        return;
    }
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
        && let Some(target) = root.get("definitions").and_then(|d| d.get(name))
    {
        collect(root, target, out, depth + 1);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for sub in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect(root, sub, out, depth + 1);
        }
    }
    let says_something = [
        "type",
        "enum",
        "const",
        "properties",
        "items",
        "additionalProperties",
    ]
    .iter()
    .any(|k| schema.get(k).is_some());
    if says_something {
        out.push(schema);
    }
}

fn is_null(v: &str) -> bool {
    matches!(v, "" | "~" | "null" | "Null" | "NULL")
}

/// `0`, `1051`, `-3`: what every YAML tool reads as the same integer.
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Any integer spelling the parser accepts.
fn is_integer(v: &str) -> bool {
    is_decimal(v) || is_loose_integer(v)
}

fn is_yaml11_bool(v: &str) -> bool {
    ["y", "yes", "n", "no", "true", "false", "on", "off"]
        .iter()
        .any(|b| v.eq_ignore_ascii_case(b))
}

/// Integer spellings that YAML 1.1 and 1.2 tools read differently: radix prefixes, `_` separators, a
/// leading `+`, or leading zeros (octal in YAML 1.1).
fn is_loose_integer(v: &str) -> bool {
    let unsigned = v.strip_prefix(['+', '-']).unwrap_or(v);
    let radix = [("0x", 16), ("0o", 8), ("0b", 2)].iter().find_map(|(p, r)| {
        unsigned
            .get(..2)
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| (&unsigned[2..], *r))
    });
    let (digits, radix) = radix.unwrap_or((unsigned, 10));
    let numeric = !digits.is_empty()
        && digits.chars().all(|c| c == '_' || c.is_digit(radix))
        && digits.chars().any(|c| c.is_digit(radix));
    numeric && !is_decimal(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let mut p = Vec::new();
        check(text, &mut p);
        p.into_iter()
            .map(|p| format!("{}:{} {}", p.line, p.column, p.message))
            .collect()
    }

    #[test]
    fn loose_integers() {
        for v in ["0x41B", "0o2033", "1_051", "+1051", "01051", "0b1"] {
            assert!(is_loose_integer(v), "{v}");
        }
        for v in ["1051", "0", "-3", "1.0", "abc", "0x", "_"] {
            assert!(!is_loose_integer(v), "{v}");
        }
    }

    #[test]
    fn integer_and_boolean_fields_follow_the_schema() {
        let text = "version: \"1\"\nhardening: { lock_human_homes: yes }\n";
        assert_eq!(
            problems(text),
            [
                "1:10 `1` is quoted text where a number goes",
                "2:32 `yes` is not a boolean"
            ]
        );
        assert!(problems("version: 1\nhardening: { lock_human_homes: true }\n").is_empty());
        assert_eq!(
            problems("version: 0x1\n"),
            ["1:10 `0x1` is not a plain decimal number"]
        );
    }

    #[test]
    fn tags_and_aliases() {
        assert_eq!(
            problems("fleet: { organization: !!python/object x }\n"),
            ["1:24 YAML tags are not allowed (found `!!python/object`)"]
        );
        let aliased = "fleet: { organization: &n \"1\" }\nversion: *n\n";
        assert_eq!(problems(aliased), ["2:10 `1` is quoted text where a number goes"]);
    }

    #[test]
    fn strings_stay_strings() {
        assert!(problems("fleet: { organization: yes, name: \"0x1\" }\n").is_empty());
    }
}
