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
//! - [`main_client`]: the client of the main port.
//!
//! Only the last three do I/O, over any stream: TLS is the caller's.

pub mod codec;
pub mod connection;
pub mod handshake;
pub mod main_client;
pub mod message;
pub mod pairing;

#[cfg(test)]
mod vectors;

pub use codec::{CodecError, JsonObject, LineCodec, MAX_LINE};
pub use connection::{Connection, ConnectionError};
pub use handshake::{pair, pair_reporting};
pub use main_client::{MainClient, MainClientError, THIS_DEVICE_URL, ThisDevice};
pub use message::{
    Communique, CommuniqueType, CsrParameters, MessageError, PairingFrame, StatusCode,
};

/// The pairing port, where the button is pressed and a CSR signed.
pub const PAIRING_PORT: u16 = 8083;
/// The main port, where a paired client speaks LEAP with mutual TLS.
pub const MAIN_PORT: u16 = 8081;

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
    #[error(transparent)]
    MainClient(#[from] MainClientError),
}
