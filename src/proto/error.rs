//! The one error type of [`super`]: why a frame could not be read or
//! written.

use super::relay::error_code;

/// Why a relay or control frame could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The length prefix announces more than the cap. Nothing after it can
    /// be trusted to start a frame: see [`ProtoError::is_fatal`].
    #[error(
        "received a frame announcing {len} bytes, more than the {limit} a frame may hold; \
         the stream cannot be read further"
    )]
    Oversized { len: u64, limit: usize },
    /// [`super::decode`] was handed fewer bytes than the frame announces.
    #[error("received a truncated frame: {have} of {need} bytes")]
    Truncated { need: usize, have: usize },
    #[error("received an empty frame (length 0): a frame holds one CBOR map")]
    Empty,
    #[error("received bytes that are not CBOR ({reason})")]
    NotCbor { reason: String },
    #[error("received {count} bytes after the CBOR item: a frame holds exactly one item")]
    TrailingBytes { count: usize },
    #[error("received CBOR that is not a map (it is {found}): a message is a map")]
    NotAMap { found: &'static str },
    #[error("received a map without a text \"k\" naming the message kind")]
    MissingKind,
    #[error("received a \"{kind}\" message that does not fit the schema: {reason}")]
    Invalid { kind: String, reason: String },
    /// Our own message could not be written; a bug, never the peer's fault.
    #[error("cannot send a frame: {reason}")]
    Unencodable { reason: String },
}

impl ProtoError {
    /// Whether the stream is unusable after this error. Only an oversized
    /// prefix is: every other error consumes exactly one frame, so the
    /// server answers it with an error frame and reads on.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ProtoError::Oversized { .. })
    }

    /// The code an error frame answering this carries (see
    /// [`super::error_code`]).
    pub fn code(&self) -> &'static str {
        match self {
            ProtoError::Oversized { .. } => error_code::TOO_LARGE,
            ProtoError::Unencodable { .. } => error_code::INTERNAL,
            _ => error_code::MALFORMED,
        }
    }
}
