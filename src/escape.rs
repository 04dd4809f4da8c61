//! Names read from a file (package paths, XML attributes, profile keys, certificate subjects) are shown
//! to a human on a terminal. A name may carry escape sequences that clear the screen or retitle the
//! window, line breaks that forge extra report lines, or bidi overrides that reorder what is shown;
//! [`escape_controls`] makes every such character visible instead.

use std::borrow::Cow;

/// `text` with each control character (C0, DEL, C1), bidi control and line/paragraph separator written
/// as a visible escape: `\x1b`, `\n`, `\u{202e}`. Returns the text unchanged (borrowed) when it has none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidi embeddings, overrides and isolates; the left-to-right/right-to-left/Arabic marks.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            // Line and paragraph separators, which some terminals and editors break lines on.
            | '\u{2028}' | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_the_rest_is_untouched() {
        assert!(matches!(
            escape_controls("./Applications/Café.app"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(escape_controls("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(escape_controls("\u{9b}2J\u{7f}"), "\\x9b2J\\x7f");
        assert_eq!(escape_controls("evil\u{202e}gpj.pkg"), "evil\\u{202e}gpj.pkg");
        assert_eq!(escape_controls("a\u{2028}b"), "a\\u{2028}b");
    }
}
