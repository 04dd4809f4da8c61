//! The one JSON shape every `--json` prints (documented in `docs/json.md`): `schema` names the command
//! and the shape's version, `ok` is the verdict, `problems` lists what is wrong, and the command's own
//! fields follow.

use serde::Serialize;

use crate::diagnostics::{Diagnostic, Severity};

#[derive(Debug, Serialize)]
pub struct Report<'a, T: Serialize> {
    /// `confine/<command>/v1`. A new major version only for changes that break readers.
    pub schema: String,
    pub ok: bool,
    pub problems: &'a [Diagnostic],
    #[serde(flatten)]
    pub data: T,
}

impl<'a, T: Serialize> Report<'a, T> {
    /// `ok` is true when no problem is an error.
    pub fn new(command: &str, problems: &'a [Diagnostic], data: T) -> Report<'a, T> {
        Report {
            schema: format!("confine/{command}/v1"),
            ok: problems.iter().all(|p| p.severity != Severity::Error),
            problems,
            data,
        }
    }
}
