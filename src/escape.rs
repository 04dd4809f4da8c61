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

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1, which includes
/// NEL), a bidi control (Unicode's Bidi_Control: the Arabic letter mark, the left-to-right and
/// right-to-left marks, embeddings, overrides and isolates), a line or paragraph separator, or another
/// invisible format character that hides or reorders text (zero-width spaces and joiners, word joiner
/// and invisible operators, the deprecated shaping controls, the byte-order mark, interlinear
/// annotations, tag characters).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
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
        for c in [
            '\u{2029}',
            '\u{061c}',
            '\u{85}',
            '\u{200b}',
            '\u{2066}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            assert!(needs_escape(c), "{c:?}");
        }
        for c in ['é', 'ſ', '\u{00a0}', '项'] {
            assert!(!needs_escape(c), "{c:?}");
        }
    }
}
