//! The CBOR messages of the relay protocol (daemon → cloud access layer),
//! mirroring `proto/relay.cddl`, and of the control protocol (CLI →
//! daemon), mirroring `proto/control.cddl`.
//!
//! Two halves, in the manner of mini-redis's `frame.rs`:
//! - [`relay`]: the messages as Rust types, and their mapping to and from
//!   one CBOR map per message;
//! - [`frame`]: the pure frame codec. [`check`] says whether a whole frame
//!   is buffered, [`decode`] turns one frame into a [`RelayMessage`],
//!   [`encode`] writes one. No I/O, no clock, no panic on any input.
//!
//! A frame is a 4-byte big-endian length then one CBOR item of at most
//! [`MAX_ITEM`] bytes. Encoding is deterministic (RFC 8949 §4.2.1 core
//! deterministic encoding: shortest integers and lengths, definite lengths,
//! map keys sorted by the bytes of their encoding), so a decoded vector
//! re-encodes byte for byte; see [`frame`] for what that means for keys.
//!
//! [`control`] holds the messages of `control.cddl` (the daemon's Unix
//! socket), framed by the same codec.
//!
//! [`connection`] is the one place frames meet a byte stream: the control
//! socket's both ends, the relay client and the cloud's relay server all
//! read and write through a [`FrameConnection`].

pub mod connection;
pub mod control;
mod error;
pub mod frame;
pub mod possession;
pub mod relay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vector_files;
#[cfg(test)]
mod vectors;
mod wire;

pub use connection::{FrameConnection, FrameIoError};
pub use error::ProtoError;
pub use frame::{
    FrameMessage, HEADER_LEN, MAX_ITEM, check, decode, decode_as, encode, encode_message,
};
pub use relay::{
    Ack, Claimed, ErrorFrame, EventId, EventKind, Hello, HelloAck, IssuedLink, NewShareLink,
    Outcome, PROTOCOL_VERSION, PlaceStatus, RedeemLink, RelayEvent, RelayMessage, Released,
    RevokeAccess, ShareAccess, StatusQuery, error_code,
};
