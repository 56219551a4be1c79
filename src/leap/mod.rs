//! The processor-side wire protocol (LEAP), as real processors and clients
//! speak it: processor-protocol.md §2 (pairing, TCP 8083) and §3 (main
//! session, TCP 8081). Documented for integrators in `proto/processor.md`.
//!
//! Layers, from the bytes up:
//! - [`codec`]: one JSON object per line; pure.
//! - [`message`]: the frames themselves, typed; pure.
//! - [`pairing`]: the button handshake as two state machines (processor
//!   and client); pure, time passed in.
//! - [`connection`]: a stream plus a buffer, reading and writing whole
//!   frames. TLS is the caller's business.
//! - [`handshake`]: the tokio driver of the pairing client.
//!
//! Only the last two do I/O.

pub mod codec;
pub mod connection;
pub mod handshake;
pub mod message;
pub mod pairing;

#[cfg(test)]
mod vectors;

pub use codec::{CodecError, JsonObject, LineCodec, MAX_LINE};
pub use connection::{Connection, ConnectionError};
pub use handshake::{pair, pair_reporting};
pub use message::{
    Communique, CommuniqueType, CsrParameters, MessageError, PairingFrame, StatusCode,
};

/// Any failure of this module, for callers that handle them alike; each
/// layer's own enum says more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeapError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Pairing(#[from] pairing::PairingError),
}
