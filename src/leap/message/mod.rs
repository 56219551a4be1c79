//! The frames of both processor ports, typed, byte-faithful to
//! processor-protocol.md §2–3: fields are written in the order the
//! reference shows them, and unknown fields are ignored on read so that a
//! newer firmware's additions do not break handoff.

mod main_port;
mod pairing_port;
mod status;

pub use main_port::{
    Communique, CommuniqueType, Header, LEGACY_PING_URL, PING_BODY_TYPE, PING_URL,
};
pub use pairing_port::{
    CONTENT_TYPE_EXCEPTION, CONTENT_TYPE_SIGNING_RESULT, CONTENT_TYPE_STATUS, CSR_CLIENT_TAG,
    CsrParameters, DEFAULT_DEVICE_UID, PHYSICAL_ACCESS, PairingFrame, PairingHeader,
    UNAUTHORIZED_MESSAGE,
};
pub use status::StatusCode;

/// Why a JSON object is not the message it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("'{0}' is not a LEAP status code (expected e.g. \"200 OK\")")]
    StatusCode(String),
    #[error("malformed {what} frame: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("not a pairing frame handoff knows: {summary}")]
    UnknownFrame { summary: String },
}
