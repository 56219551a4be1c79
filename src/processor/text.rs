//! Text from the LAN, made safe to print.

/// `s` with every control character written as an escape (`\n`, `\u{1b}`):
/// instance names, host names and TXT keys come from any device on the
/// LAN, and a terminal or a log reader must not act on what they carry.
/// Other characters, accents included, are kept as they are.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    printable_but(s, &[])
}

/// [`printable`], keeping the control characters in `keep` as they are
/// (the log's own colours, for one).
pub fn printable_but<'a>(s: &'a str, keep: &[char]) -> std::borrow::Cow<'a, str> {
    let escaped = |c: char| c.is_control() && !keep.contains(&c);
    if !s.chars().any(escaped) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("Lutron Status (2)"), "Lutron Status (2)");
        assert_eq!(printable("Caséta"), "Caséta");
        assert_eq!(printable("a\x1b[2Jb\nc\u{7f}"), "a\\u{1b}[2Jb\\nc\\u{7f}");
    }
}
