//! The CBOR messages of the relay protocol (daemon → cloud access layer),
//! mirroring `proto/relay.cddl`.
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
//! Not here yet: `control.cddl` (the daemon's Unix socket), the redb store,
//! the TLS server and the relay client.

mod error;
pub mod frame;
pub mod relay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
mod wire;

pub use error::ProtoError;
pub use frame::{HEADER_LEN, MAX_ITEM, check, decode, encode};
pub use relay::{
    Ack, Claimed, ErrorFrame, EventId, EventKind, Hello, HelloAck, IssuedLink, NewShareLink,
    Outcome, PROTOCOL_VERSION, PlaceStatus, RedeemLink, RelayEvent, RelayMessage, Released,
    RevokeAccess, ShareAccess, StatusQuery, error_code,
};
