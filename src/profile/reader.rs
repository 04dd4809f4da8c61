//! Reading a property list (XML, binary or OpenStep text) from a file confine did not write, within
//! [`crate::limits`].
//!
//! The plist crate builds values without recursion, but its trees are dropped and walked recursively,
//! and a binary plist's objects may be referenced any number of times, so 164 bytes can describe
//! gigabytes. Its event stream is the expanded document, one event per value, every shared object
//! read again each time it is used; the stream is checked here against nesting, value count and
//! byte limits before each event reaches the crate's tree builder, which is what the crate's own
//! `Value::from_reader` does without the checks. (The stream API is behind the crate's
//! `enable_unstable_features_that_may_break_with_minor_version_bumps` feature; Cargo.lock pins the
//! version.)

use std::io::Cursor;

use anyhow::{Context, Result, anyhow, bail};
use plist::Value;
use plist::stream::{Event, OwnedEvent, Reader};

use crate::limits::{MAX_NESTING, MAX_PLIST_BYTES, MAX_PLIST_VALUES};

/// Parse `bytes` as a property list, refusing documents beyond the limits.
pub(crate) fn parse_plist(bytes: &[u8]) -> Result<Value> {
    let mut checked = Checked {
        events: Reader::new(Cursor::new(bytes)),
        depth: 0,
        values: 0,
        bytes: 0,
        refused: None,
    };
    let value = Value::from_events(&mut checked);
    if let Some(refused) = checked.refused {
        return Err(refused);
    }
    value.context("the profile is not a property list (XML or binary)")
}

/// The crate's events, stopped (with the reason in `refused`) at the first one past a limit.
struct Checked<R: std::io::Read + std::io::Seek> {
    events: Reader<R>,
    depth: usize,
    values: usize,
    bytes: u64,
    refused: Option<anyhow::Error>,
}

impl<R: std::io::Read + std::io::Seek> Checked<R> {
    fn check(&mut self, event: &OwnedEvent) -> Result<()> {
        match event {
            Event::EndCollection => {
                self.depth = self.depth.saturating_sub(1);
                return Ok(());
            }
            Event::StartArray(_) | Event::StartDictionary(_) => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    bail!(
                        "the property list nests deeper than {MAX_NESTING} arrays and dictionaries (limit)"
                    );
                }
            }
            Event::String(text) => self.bytes += text.len() as u64,
            Event::Data(data) => self.bytes += data.len() as u64,
            _ => {}
        }
        self.values += 1;
        if self.values > MAX_PLIST_VALUES {
            bail!(
                "the property list has more than {MAX_PLIST_VALUES} values, counting each use of a shared object (limit)"
            );
        }
        if self.bytes > MAX_PLIST_BYTES {
            bail!(
                "the property list's strings and data exceed {MAX_PLIST_BYTES} bytes, counting each use of a shared object (limit)"
            );
        }
        Ok(())
    }
}

impl<R: std::io::Read + std::io::Seek> Iterator for Checked<R> {
    type Item = Result<OwnedEvent, plist::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.refused.is_some() {
            return None;
        }
        let event = match self.events.next()? {
            // A binary plist's declared length would be reserved up front; let collections grow instead.
            Ok(Event::StartArray(_)) => Event::StartArray(None),
            Ok(Event::StartDictionary(_)) => Event::StartDictionary(None),
            Ok(event) => event,
            Err(error) => return Some(Err(error)),
        };
        match self.check(&event) {
            Ok(()) => Some(Ok(event)),
            Err(error) => {
                self.refused = Some(anyhow!(error));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xml_and_binary_plists() -> Result<()> {
        let xml = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>a</key><array><integer>1</integer><string>x</string></array></dict></plist>"#;
        let value = parse_plist(xml)?;
        let mut binary = Vec::new();
        value.to_writer_binary(&mut binary)?;
        assert_eq!(parse_plist(&binary)?, value);
        assert_eq!(
            value
                .as_dictionary()
                .and_then(|d| d["a"].as_array())
                .map(Vec::len),
            Some(2)
        );
        Ok(())
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let deep = format!(
            "<plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(MAX_NESTING + 1),
            "</array>".repeat(MAX_NESTING + 1)
        );
        let error = parse_plist(deep.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("nests deeper than 128"), "{error:#}");
        let fits = format!(
            "<plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(MAX_NESTING),
            "</array>".repeat(MAX_NESTING)
        );
        assert!(parse_plist(fits.as_bytes()).is_ok());
    }
}
