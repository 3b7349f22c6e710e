//! Text that came from outside (a meta's failure reasons, a registry's error body)
//! made safe to print and to store: a terminal must never receive escape sequences
//! or control characters that someone else chose.

use std::borrow::Cow;

/// `text` without terminal control: escape sequences (CSI `ESC [ ... final`, OSC
/// `ESC ] ... BEL|ESC \`, and two-character `ESC x`) are removed whole, other C0/C1
/// control characters and DEL are dropped, and line breaks and tabs become a space,
/// so the result is one printable line. Unicode bidirectional overrides (which can
/// make a terminal show text in another order than it is) are dropped too.
/// Borrowed when there was nothing to remove.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // A C1 CSI or OSC introducer: the 8-bit forms of ESC [ and ESC ].
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' => skip_string(&mut chars),
            '\n' | '\r' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether a character must not reach a terminal as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        // Two-character sequences (ESC 7, ESC c, ...), or a lone ESC at the end.
        _ => {}
    }
}

/// Parameters and intermediates up to the final byte (`@`..`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        if !('\u{20}'..='\u{7e}').contains(&c) {
            // Not a well-formed sequence: stop here rather than eat the text.
            return;
        }
        chars.next();
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
    }
}

/// An OSC/DCS string, up to BEL, ST (`ESC \`) or the 8-bit ST.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let s = "manifest unknown: 镜像不存在 (tag 1.0)";
        assert!(matches!(sanitize(s), Cow::Borrowed(x) if x == s));
    }

    #[test]
    fn escape_sequences_and_controls_are_removed() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(
            sanitize("a\u{1b}]0;pwned title\u{7}b\u{1b}]8;;http://x\u{1b}\\c"),
            "abc"
        );
        assert_eq!(sanitize("x\u{1b}cy\u{1b}"), "xy");
        assert_eq!(
            sanitize("line1\r\nline2\tend\u{7}\u{8}\u{7f}"),
            "line1 line2 end"
        );
        assert_eq!(sanitize("\u{9b}2Jclear"), "clear");
        assert_eq!(sanitize("ab\u{202e}cd\u{2066}"), "abcd");
        // A broken CSI stops at the first byte that cannot belong to it.
        assert_eq!(sanitize("\u{1b}[12é"), "é");
        assert_eq!(sanitize("\u{1b}[12\u{1b}[0mok"), "ok");
    }

    #[test]
    fn output_never_holds_a_control_character() {
        let nasty: String = (0u32..0x250).filter_map(char::from_u32).collect();
        let clean = sanitize(&nasty);
        assert!(!clean.chars().any(is_unsafe), "{clean:?}");
        assert!(clean.contains("ABCxyz") || clean.contains('A'));
    }
}
