//! Text from other people (titles, names, messages, labels) on a terminal (issue 22,
//! finding 10): control characters are removed before anything is drawn or printed, so a
//! title cannot carry an escape sequence that moves the cursor, rewrites the screen,
//! sets the window title or hides text; bidirectional overrides, which reorder what the
//! reader sees, go too. JSON output needs none of this: its encoder escapes them.

use std::borrow::Cow;

/// Whether a character may reach the terminal from someone else's text.
fn keep(c: char, multiline: bool) -> bool {
    if multiline && (c == '\n' || c == '\t') {
        return true;
    }
    !(c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}'))
}

/// One line of text as it may be drawn: every control character removed.
pub fn line(s: &str) -> Cow<'_, str> {
    clean(s, false)
}

/// Text that may span lines: newlines and tabs kept, every other control removed.
pub fn text(s: &str) -> Cow<'_, str> {
    clean(s, true)
}

fn clean(s: &str, multiline: bool) -> Cow<'_, str> {
    if s.chars().all(|c| keep(c, multiline)) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|c| keep(*c, multiline)).collect())
    }
}

/// Cleans a string in place.
pub fn clean_in_place(s: &mut String) {
    if let Cow::Owned(o) = line(s) {
        *s = o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_overrides_never_reach_the_terminal() {
        let title = "Compte rendu\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}fdp.exe\r";
        let shown = line(title);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "Compte rendu]0;pwned[2J31mfdp.exe");
        assert_eq!(text("a\nb\tc\u{1b}[1m"), "a\nb\tc[1m");
        // Control: ordinary text, accents and emoji included, is borrowed unchanged.
        assert!(matches!(line("Résultats de biologie ✓"), Cow::Borrowed(_)));
    }
}
