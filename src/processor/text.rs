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

/// `raw` as the text of a short field a processor reports (firmware,
/// model), or why it cannot be one: empty, longer than
/// [`super::MAX_FIELD_LEN`] bytes, not UTF-8, or with control characters.
/// The one rule for such text, whether it came off the LAN in a TXT record
/// or from a site box in a relayed event.
///
/// # Errors
/// The reason, to follow the field's name: "is empty", …
pub fn field_text(raw: &[u8]) -> Result<&str, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.len() > super::MAX_FIELD_LEN {
        return Err(format!(
            "is {} bytes long (at most {} expected)",
            raw.len(),
            super::MAX_FIELD_LEN
        ));
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("is not UTF-8".into());
    };
    if text.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::{field_text, printable};

    #[test]
    fn a_reported_field_is_short_printable_text() {
        assert_eq!(field_text(b"26.00.14f000"), Ok("26.00.14f000"));
        assert_eq!(field_text("Caséta".as_bytes()), Ok("Caséta"));
        assert_eq!(field_text(&[b'x'; 64]).map(str::len), Ok(64));
        assert_eq!(
            field_text(&[b'x'; 65]),
            Err("is 65 bytes long (at most 64 expected)".into())
        );
        assert_eq!(field_text(b""), Err("is empty".into()));
        assert_eq!(field_text(b"\xff\xfe"), Err("is not UTF-8".into()));
        for bad in ["a\x1b[2Jb", "1.0\n", "x\u{7f}", "\u{85}"] {
            assert_eq!(
                field_text(bad.as_bytes()),
                Err("contains control characters".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("Lutron Status (2)"), "Lutron Status (2)");
        assert_eq!(printable("Caséta"), "Caséta");
        assert_eq!(printable("a\x1b[2Jb\nc\u{7f}"), "a\\u{1b}[2Jb\\nc\\u{7f}");
    }
}
