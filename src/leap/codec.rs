//! Framing shared by both processor ports: one JSON object per line.
//!
//! Pure, in the manner of mini-redis's `frame.rs`: [`LineCodec::check`]
//! says whether a whole line is buffered, [`LineCodec::decode`] turns one
//! line into a JSON object, [`LineCodec::encode`] writes one. No I/O, no
//! panics on any input, so it can be fuzzed directly.
//!
//! Wire facts (processor-protocol.md §2–3): processors end lines with
//! `\r\n`, clients with `\r\n` or `\n`, so both are accepted and `\r\n` is
//! written. Lines are capped at 256 KiB (pylutron-caseta's stream limit).

use serde::Serialize;
use serde_json::{Map, Value};

/// The longest line, terminator excluded, either side accepts.
pub const MAX_LINE: usize = 256 * 1024;

/// A decoded frame: the top-level JSON object of one line.
pub type JsonObject = Map<String, Value>;

/// How many characters of a bad line an error quotes.
const SNIPPET_CHARS: usize = 60;

/// Why a line could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No line end within the cap. Nothing after it can be trusted to start
    /// a frame, so the stream is not resynchronised: see [`CodecError::is_fatal`].
    #[error(
        "received a line longer than {limit} bytes; the stream cannot be read further \
         (LEAP lines are at most 256 KiB)"
    )]
    Oversized { limit: usize },
    #[error("received a line that is not UTF-8 text: {snippet}")]
    NotUtf8 { snippet: String },
    #[error("received a line that is not JSON ({reason}): {snippet}")]
    NotJson { reason: String, snippet: String },
    #[error("received JSON that is not an object (it is {found}): {snippet}")]
    NotObject {
        found: &'static str,
        snippet: String,
    },
    /// Our own frame could not be written; a bug, never the peer's fault.
    #[error("cannot send a frame: {reason}")]
    Unencodable { reason: String },
}

impl CodecError {
    /// Whether the stream is unusable after this error. Only an oversized
    /// line is: the other errors consume exactly one line.
    pub fn is_fatal(&self) -> bool {
        matches!(self, CodecError::Oversized { .. })
    }
}

/// The line framing, with its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCodec {
    max_line: usize,
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new()
    }
}

impl LineCodec {
    /// The codec with the 256 KiB cap of real clients.
    pub const fn new() -> LineCodec {
        LineCodec { max_line: MAX_LINE }
    }

    /// A codec with another cap, so tests need not build 256 KiB lines.
    pub const fn with_max_line(max_line: usize) -> LineCodec {
        LineCodec { max_line }
    }

    pub const fn max_line(&self) -> usize {
        self.max_line
    }

    /// The length, terminator included, of the whole line at the start of
    /// `buf`, or `None` while it is incomplete.
    ///
    /// # Errors
    /// [`CodecError::Oversized`] once the line cannot fit the cap, whether
    /// or not its end has arrived; the caller must stop reading.
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        // Content, optional `\r`, then `\n`: never look past max + 2 bytes.
        let window = &buf[..buf.len().min(self.max_line.saturating_add(2))];
        match window.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                let content = strip_terminator(&window[..=newline]).len();
                if content > self.max_line {
                    Err(self.oversized())
                } else {
                    Ok(Some(newline + 1))
                }
            }
            None if window.len() >= self.max_line.saturating_add(2) => Err(self.oversized()),
            None => Ok(None),
        }
    }

    /// Decodes one complete line (as [`LineCodec::check`] delimits it; the
    /// terminator may be present or not). A blank line is `Ok(None)`: it is
    /// not a frame, and skipping it costs nothing.
    ///
    /// # Errors
    /// [`CodecError::Oversized`], [`CodecError::NotUtf8`],
    /// [`CodecError::NotJson`] or [`CodecError::NotObject`], each naming the
    /// start of the line.
    pub fn decode(&self, line: &[u8]) -> Result<Option<JsonObject>, CodecError> {
        let content = strip_terminator(line);
        if content.len() > self.max_line {
            return Err(self.oversized());
        }
        let text = std::str::from_utf8(content).map_err(|_| CodecError::NotUtf8 {
            snippet: snippet(&String::from_utf8_lossy(content)),
        })?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => Ok(Some(object)),
            Ok(other) => Err(CodecError::NotObject {
                found: kind_of(&other),
                snippet: snippet(text),
            }),
            Err(e) => Err(CodecError::NotJson {
                reason: e.to_string(),
                snippet: snippet(text),
            }),
        }
    }

    /// Appends `frame` to `dst` as one `\r\n`-terminated line. The line is
    /// built whole so that the caller can hand it to one write: lutron-leap-js
    /// parses each TCP read as one document.
    ///
    /// # Errors
    /// [`CodecError::Unencodable`] when `frame` does not serialise to a JSON
    /// object, or when the line would exceed the cap the peer enforces.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        frame: &T,
        dst: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let json = serde_json::to_vec(frame).map_err(|e| CodecError::Unencodable {
            reason: e.to_string(),
        })?;
        if json.first() != Some(&b'{') {
            return Err(CodecError::Unencodable {
                reason: "a frame must be a JSON object".into(),
            });
        }
        if json.len() > self.max_line {
            return Err(CodecError::Unencodable {
                reason: format!(
                    "the frame is {} bytes, more than the {} a line may hold",
                    json.len(),
                    self.max_line
                ),
            });
        }
        // serde_json escapes every control character inside strings and
        // writes no whitespace, so the line holds no `\n` of its own.
        dst.reserve(json.len() + 2);
        dst.extend_from_slice(&json);
        dst.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn oversized(&self) -> CodecError {
        CodecError::Oversized {
            limit: self.max_line,
        }
    }
}

/// The line without its `\n` or `\r\n`.
fn strip_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The start of a bad line, escaped, for an error message.
fn snippet(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SNIPPET_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CODEC: LineCodec = LineCodec::new();

    #[test]
    fn check_waits_for_a_line_end() {
        assert_eq!(CODEC.check(b""), Ok(None));
        assert_eq!(CODEC.check(b"{\"a\":1}"), Ok(None));
        assert_eq!(CODEC.check(b"{\"a\":1}\r"), Ok(None));
        assert_eq!(CODEC.check(b"{\"a\":1}\n{\"b\""), Ok(Some(8)));
        assert_eq!(CODEC.check(b"{\"a\":1}\r\n{\"b\""), Ok(Some(9)));
    }

    #[test]
    fn accepts_either_line_ending() {
        for line in [&b"{\"a\":1}\n"[..], b"{\"a\":1}\r\n", b"{\"a\":1}"] {
            let object = CODEC.decode(line).unwrap().unwrap();
            assert_eq!(Value::Object(object), json!({"a": 1}), "{line:?}");
        }
    }

    #[test]
    fn writes_crlf_terminated_compact_lines() {
        let mut out = Vec::new();
        CODEC.encode(&json!({"a": "x\ny"}), &mut out).unwrap();
        CODEC.encode(&json!({"b": 2}), &mut out).unwrap();
        assert_eq!(out, b"{\"a\":\"x\\ny\"}\r\n{\"b\":2}\r\n");
    }

    #[test]
    fn blank_lines_are_not_frames() {
        assert_eq!(CODEC.decode(b"\r\n"), Ok(None));
        assert_eq!(CODEC.decode(b"  \t\n"), Ok(None));
    }

    #[test]
    fn line_at_the_cap_is_accepted_and_one_byte_more_is_not() {
        let codec = LineCodec::with_max_line(16);
        let at_cap = b"{\"k\":\"123456789\"}"; // 17 bytes
        assert_eq!(at_cap.len(), 17);
        let fits = b"{\"k\":\"12345678\"}\r\n"; // 16 + 2
        assert_eq!(codec.check(fits), Ok(Some(18)));
        assert!(codec.decode(fits).unwrap().is_some());
        let mut over = at_cap.to_vec();
        over.extend_from_slice(b"\r\n");
        assert_eq!(codec.check(&over), Err(CodecError::Oversized { limit: 16 }));
        assert_eq!(
            codec.decode(&over),
            Err(CodecError::Oversized { limit: 16 })
        );
    }

    #[test]
    fn oversized_line_is_reported_before_its_end_arrives() {
        let codec = LineCodec::with_max_line(16);
        assert_eq!(
            codec.check(&[b'x'; 17]),
            Ok(None),
            "may still be 16 + \\r\\n"
        );
        let err = codec.check(&[b'x'; 18]).unwrap_err();
        assert!(err.is_fatal());
        assert!(err.to_string().contains("longer than 16 bytes"), "{err}");
    }

    #[test]
    fn the_real_cap_is_256_kib() {
        let mut line = vec![b' '; MAX_LINE];
        line[0] = b'{';
        line[MAX_LINE - 1] = b'}';
        line.extend_from_slice(b"\r\n");
        assert_eq!(CODEC.check(&line), Ok(Some(MAX_LINE + 2)));
        assert!(CODEC.decode(&line).unwrap().is_some());
        line.insert(1, b' ');
        assert!(CODEC.check(&line).unwrap_err().is_fatal());
    }

    #[test]
    fn rejects_non_utf8_lines() {
        let err = CODEC.decode(b"{\"a\":\"\xff\"}\n").unwrap_err();
        assert!(matches!(err, CodecError::NotUtf8 { .. }), "{err:?}");
        assert!(!err.is_fatal());
    }

    #[test]
    fn rejects_lines_that_are_not_json_and_quotes_them() {
        let err = CODEC.decode(b"HTTP/1.1 400 Bad Request\r\n").unwrap_err();
        assert!(matches!(err, CodecError::NotJson { .. }), "{err:?}");
        assert!(err.to_string().contains("HTTP/1.1 400"), "{err}");
        let two = CODEC.decode(b"{\"a\":1}{\"b\":2}\n").unwrap_err();
        assert!(matches!(two, CodecError::NotJson { .. }), "{two:?}");
    }

    #[test]
    fn rejects_json_that_is_not_an_object() {
        for (line, found) in [
            (&b"[1,2]\n"[..], "an array"),
            (b"\"hi\"\n", "a string"),
            (b"42\n", "a number"),
            (b"null\n", "null"),
        ] {
            match CODEC.decode(line) {
                Err(CodecError::NotObject { found: f, .. }) => assert_eq!(f, found),
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_to_encode_non_objects_and_oversized_frames() {
        let mut out = Vec::new();
        assert!(CODEC.encode(&json!([1]), &mut out).is_err());
        let codec = LineCodec::with_max_line(8);
        assert!(codec.encode(&json!({"key": "long"}), &mut out).is_err());
        assert!(out.is_empty(), "nothing half-written");
    }

    #[test]
    fn snippets_are_short_and_escaped() {
        let long = format!("{{{}\u{7}", "x".repeat(200));
        let err = CODEC.decode(long.as_bytes()).unwrap_err().to_string();
        assert!(err.contains('…') && !err.contains("\\u{7}"), "{err}");
        assert!(err.len() < 200, "{err}");
        let bell = CODEC.decode(b"\x07oops\n").unwrap_err().to_string();
        assert!(bell.contains("\\u{7}oops"), "{bell}");
    }

    /// Random bytes and mutated frames: the codec never panics, `check`
    /// never claims more than it holds, and every line it delimits ends in
    /// `\n`. A fixed seed keeps failures reproducible.
    #[test]
    fn survives_random_and_mutated_input() {
        let mut rng = fastrand::Rng::with_seed(0x1ea9);
        const SPECIALS: &[u8] = b"\r\n{}\"\\\xff";
        let codec = LineCodec::with_max_line(64);
        let seeds: [&[u8]; 3] = [
            b"{\"Header\":{\"StatusCode\":\"200 OK\"},\"Body\":{}}\r\n",
            b"{\"CommuniqueType\":\"ReadRequest\"}\n",
            b"[\"\\ud800\",1e999,{\"a\":[[[[[]]]]]}]\n",
        ];
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 2 == 0 {
                (0..rng.usize(0..150)).map(|_| rng.u8(..)).collect()
            } else {
                let mut b = seeds[rng.usize(..seeds.len())].to_vec();
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(..b.len());
                    match rng.u8(..3) {
                        0 => b[at] = rng.u8(..),
                        1 => b.insert(at, SPECIALS[rng.usize(..SPECIALS.len())]),
                        _ => {
                            b.remove(at);
                            if b.is_empty() {
                                b.push(b'\n');
                            }
                        }
                    }
                }
                b
            };
            while let Ok(Some(n)) = codec.check(&buf) {
                assert!(n <= buf.len() && buf[n - 1] == b'\n');
                let _ = codec.decode(&buf[..n]);
                buf.drain(..n);
            }
            let _ = codec.decode(&buf);
        }
        // Deep nesting must be refused, not overflow the stack.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(CODEC.decode(deep.as_bytes()).is_err());
    }
}
