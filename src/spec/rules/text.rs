//! Characters a spec may not contain anywhere, comments included.
//!
//! Invisible and direction-changing characters make a value read differently from what it is: an
//! organization of one zero-width space looks blank, U+202E shows a full name backwards, U+2028 breaks a
//! line where no newline is seen, and a bidi control in a comment can hide a line from a reviewer ("Trojan
//! Source"). None has a use in a fleet spec, so the whole file is scanned once and each one is reported
//! where it is. Tabs and line breaks stay allowed; field checks decide where a line break may go.

use super::super::error::Problem;

/// What an invisible or deceptive character is, if `c` is one.
pub fn deceptive(c: char) -> Option<&'static str> {
    Some(match c {
        '\t' | '\n' | '\r' => return None,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
            "a bidirectional control character"
        }
        '\u{2028}' | '\u{2029}' | '\u{0085}' => "a line or paragraph separator",
        '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{180E}'
        | '\u{034F}'
        | '\u{00AD}' => "a zero-width character",
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}' | '\u{FFFC}' => {
            "a blank-looking filler character"
        }
        '\u{E0000}'..='\u{E007F}' => "an invisible tag character",
        '\u{FFF9}'..='\u{FFFB}' => "an invisible annotation character",
        c if c.is_control() => "a control character",
        _ => return None,
    })
}

/// A file full of them gets the first few reported, not a screenful.
const MAX_REPORTED: usize = 20;

/// Every deceptive character in `text`, with its line and column. A byte-order mark is allowed as the
/// very first character, where editors put it.
pub fn check(text: &str, problems: &mut Vec<Problem>) {
    let mut found = 0;
    for (line_no, line) in text.split('\n').enumerate() {
        for (col, c) in line.chars().enumerate() {
            if line_no == 0 && col == 0 && c == '\u{FEFF}' {
                continue;
            }
            if let Some(what) = deceptive(c) {
                problems.push(Problem {
                    line: line_no as u64 + 1,
                    column: col as u64 + 1,
                    message: format!("{what} (U+{:04X}) is in the spec", u32::from(c)),
                    help: "delete it: invisible and direction-changing characters make text read differently from what it is".to_owned(),
                });
                found += 1;
                if found == MAX_REPORTED {
                    return;
                }
            }
        }
    }
}
