//! Bytes as hex digits and back, the one way every module writes them: a
//! MAC's bare form, LEAP's `DeviceUID`, share-link secrets and their
//! digests, a sealed portal message. Written lowercase; read in either
//! case, two digits a byte, and nothing else (no sign, no separator, no
//! odd digit left over).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex, two digits each.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The byte two hex digits write; `None` unless `pair` is exactly two.
pub fn byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some((digit(*hi)? << 4) | digit(*lo)?),
        _ => None,
    }
}

/// The bytes `text` writes; `None` for an odd number of digits or
/// anything that is not one.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    text.as_bytes().chunks(2).map(byte).collect()
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_written_as_two_lowercase_digits_each() {
        assert_eq!(encode(&[0x00, 0x0f, 0xa0, 0xff, 0x4c]), "000fa0ff4c");
        assert_eq!(encode(&[]), "");
    }

    #[test]
    fn digits_read_back_in_either_case() {
        assert_eq!(
            decode("000fA0fF4c"),
            Some(vec![0x00, 0x0f, 0xa0, 0xff, 0x4c])
        );
        assert_eq!(decode(""), Some(vec![]));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }

    #[test]
    fn an_odd_digit_or_a_non_digit_is_no_bytes() {
        for bad in ["0", "abc", "0g", "+f", "-1", " 0", "0x", "é0"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(byte(b"a"), None);
        assert_eq!(byte(b"abc"), None);
        assert_eq!(byte(b"Ab"), Some(0xab));
    }
}
