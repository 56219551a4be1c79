//! The frame codec of the relay and control protocols: a 4-byte big-endian
//! length, then one CBOR map.
//!
//! Pure, like mini-redis's `frame.rs`: [`check`] says whether a whole frame
//! is buffered (and refuses an oversized one from its prefix alone, before
//! a byte of its body is buffered), [`decode`] reads one, [`encode`] writes
//! one. No I/O, no panic on any input, so it is fuzzed directly.
//!
//! Deterministic encoding, so that a decoded frame re-encodes byte for
//! byte: RFC 8949 §4.2.1 (core deterministic encoding). ciborium already
//! writes integers and lengths in their shortest form and every length
//! definite; [`canonical`] sorts the keys of every map, at every depth, by
//! the bytes of their encoding. For our keys, all short text, that is:
//! shorter keys first, then byte order, e.g. `k`, `p`, `at`, `ev`, `id`,
//! `sn`, `mac`, `dur`, `why`, `code`, `link`, `rule`, `email`, `force`,
//! `proof`. Absent optional fields are left out, never written as null.

use std::io::Cursor;

use ciborium::Value;

use super::error::ProtoError;
use super::relay::RelayMessage;

/// A protocol whose messages travel one per frame: each is one CBOR map
/// whose `"k"` names its kind. [`RelayMessage`] and
/// [`super::control::ControlMessage`] are the two; [`decode_as`] and
/// [`encode_message`] frame either.
pub trait FrameMessage: Sized {
    /// The message as one CBOR map in deterministic key order.
    ///
    /// # Errors
    /// [`ProtoError::Unencodable`] for a message only ever decoded.
    fn to_value(&self) -> Result<Value, ProtoError>;

    /// The message a decoded map holds.
    ///
    /// # Errors
    /// [`ProtoError::MissingKind`] or [`ProtoError::Invalid`].
    fn from_map(map: &[(Value, Value)]) -> Result<Self, ProtoError>;
}

impl FrameMessage for RelayMessage {
    fn to_value(&self) -> Result<Value, ProtoError> {
        RelayMessage::to_value(self)
    }

    fn from_map(map: &[(Value, Value)]) -> Result<RelayMessage, ProtoError> {
        RelayMessage::from_map(map)
    }
}

/// The length prefix.
pub const HEADER_LEN: usize = 4;

/// The most bytes one CBOR item (prefix excluded) may take, either way.
pub const MAX_ITEM: usize = 64 * 1024;

/// The length, prefix included, of the whole frame at the start of `buf`,
/// or `None` while it is incomplete (fewer than 4 bytes, or a body still
/// arriving).
///
/// # Errors
/// [`ProtoError::Oversized`] as soon as the prefix announces more than
/// [`MAX_ITEM`]; the caller must stop reading (the error is fatal).
pub fn check(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    let Some(len) = announced(buf)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + len;
    Ok((buf.len() >= total).then_some(total))
}

/// Decodes one whole frame, prefix included, as [`check`] delimits it.
///
/// # Errors
/// [`ProtoError::Oversized`], [`ProtoError::Truncated`] (fewer bytes than
/// announced), [`ProtoError::Empty`], [`ProtoError::NotCbor`],
/// [`ProtoError::TrailingBytes`] (more bytes than one item, inside the
/// frame or after it), [`ProtoError::NotAMap`], [`ProtoError::MissingKind`]
/// or [`ProtoError::Invalid`] (a known kind whose fields do not fit). An
/// unknown kind is not an error: it is [`RelayMessage::Unknown`].
pub fn decode(frame: &[u8]) -> Result<RelayMessage, ProtoError> {
    decode_as(frame)
}

/// [`decode`] for any framed protocol.
///
/// # Errors
/// As [`decode`].
pub fn decode_as<M: FrameMessage>(frame: &[u8]) -> Result<M, ProtoError> {
    let len = announced(frame)?.ok_or(ProtoError::Truncated {
        need: HEADER_LEN,
        have: frame.len(),
    })?;
    let body = &frame[HEADER_LEN..];
    if body.len() < len {
        return Err(ProtoError::Truncated {
            need: HEADER_LEN + len,
            have: frame.len(),
        });
    }
    if body.len() > len {
        return Err(ProtoError::TrailingBytes {
            count: body.len() - len,
        });
    }
    if body.is_empty() {
        return Err(ProtoError::Empty);
    }
    let mut reader = Cursor::new(body);
    let item: Value = ciborium::from_reader(&mut reader).map_err(|e| ProtoError::NotCbor {
        reason: describe(e),
    })?;
    let read = usize::try_from(reader.position()).unwrap_or(usize::MAX);
    if read < body.len() {
        return Err(ProtoError::TrailingBytes {
            count: body.len() - read,
        });
    }
    match &item {
        Value::Map(entries) => M::from_map(entries),
        other => Err(ProtoError::NotAMap {
            found: value_kind(other),
        }),
    }
}

/// The frame for `msg`, prefix included.
///
/// # Errors
/// [`ProtoError::Unencodable`] for an `Unknown` message or event (they are
/// only ever decoded), or when the item would exceed [`MAX_ITEM`].
pub fn encode(msg: &RelayMessage) -> Result<Vec<u8>, ProtoError> {
    encode_message(msg)
}

/// [`encode`] for any framed protocol.
///
/// # Errors
/// As [`encode`].
pub fn encode_message<M: FrameMessage>(msg: &M) -> Result<Vec<u8>, ProtoError> {
    let value = msg.to_value()?;
    let mut out = vec![0; HEADER_LEN];
    ciborium::into_writer(&value, &mut out).map_err(|e| ProtoError::Unencodable {
        reason: e.to_string(),
    })?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_ITEM {
        return Err(ProtoError::Unencodable {
            reason: format!(
                "the message is {len} bytes, more than the {MAX_ITEM} a frame may hold"
            ),
        });
    }
    // len <= MAX_ITEM, so it fits in the 4-byte prefix.
    let prefix = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out[..HEADER_LEN].copy_from_slice(&prefix);
    Ok(out)
}

/// `value` with the keys of every map, at every depth, sorted by the bytes
/// of their encoding (RFC 8949 §4.2.1).
pub(crate) fn canonical(value: Value) -> Value {
    match value {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, (Value, Value))> = entries
                .into_iter()
                .map(|(k, v)| {
                    let (k, v) = (canonical(k), canonical(v));
                    let mut bytes = Vec::new();
                    // Writing to a Vec cannot fail; an unwritable key would
                    // sort first and fail again when the map is written.
                    let _ = ciborium::into_writer(&k, &mut bytes);
                    (bytes, (k, v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, kv)| kv).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonical(*inner))),
        other => other,
    }
}

/// The length the prefix announces, once 4 bytes are there.
fn announced(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    let Some(prefix) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_ITEM => Ok(Some(len)),
        _ => Err(ProtoError::Oversized {
            len: u64::from(len),
            limit: MAX_ITEM,
        }),
    }
}

/// What ciborium found wrong, with the offset where it knows one.
fn describe(err: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match err {
        Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the item ends before its last byte".into()
        }
        Error::Io(e) => e.to_string(),
        Error::Syntax(at) => format!("invalid CBOR syntax at byte {at}"),
        Error::Semantic(Some(at), why) => format!("{why} at byte {at}"),
        Error::Semantic(None, why) => why,
        Error::RecursionLimitExceeded => "nested too deeply".into(),
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::Float(_) => "a float",
        Value::Text(_) => "a text string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Tag(..) => "a tagged item",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "an unknown item",
    }
}
