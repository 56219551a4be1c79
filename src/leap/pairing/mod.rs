//! The button handshake of the pairing port, as two pure state machines:
//! [`PairingServer`] (the processor's side, used by the simulator) and
//! [`PairingClient`] (handoff claiming a processor). processor-protocol.md
//! §2 gives the frames; the rules around them (window, one pairing at a
//! time, failure limit) are handoff's.
//!
//! Like quinn-proto, the machines do no I/O and never read a clock: frames,
//! disconnects and the time go in, frames to send and outcomes come out,
//! and [`PairingServer::poll_timeout`] / [`PairingClient::poll_timeout`]
//! say when to call back. A thin tokio driver moves the bytes
//! ([`crate::leap::handshake`]).
//!
//! Time is a [`std::time::Instant`] passed into every call. An `Instant` is
//! monotonic by construction, so a window cannot be stretched or cut short
//! by a wall-clock step (NTP, a laptop's clock fixed on site); the tokio
//! driver converts its own instants with `into_std()`; and tests start from
//! one `Instant` and add durations, so the 180 s window takes no time at
//! all. Every input applies expiries up to its `now` first, so the outcome
//! never depends on a timer firing on time.

mod client;
mod server;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

pub use client::{ClientAction, PairingClient, PairingClientConfig, Stage};
pub use server::{
    CloseReason, ConnectionId, PairingServer, PairingServerConfig, ServerAction, ServerEvent,
    SignRequest, WindowClosed,
};

use crate::leap::message::StatusCode;

/// How long a press keeps the pairing window open, and how long a client
/// waits for it: pylutron-caseta's 180 s. (Homebridge's 30 s draws
/// complaints from installers whose processor sits in a closet.)
pub const DEFAULT_BUTTON_WINDOW: Duration = Duration::from_secs(180);

/// How long a client waits for each answer once the button is pressed
/// (pylutron-caseta's socket timeout).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed attempts that close a window, as Matter closes a commissioning
/// window.
pub const MAX_FAILED_ATTEMPTS: u32 = 20;

/// What a successful pairing yields, PEM as the processor sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCertificate {
    /// The client certificate the processor issued.
    pub certificate: String,
    /// The processor's pairing authority (or, on RadioRA 3, its chain's
    /// root); what the main port's certificate is checked against.
    pub root_certificate: String,
}

/// How a connection ended, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// End of stream between frames.
    Clean,
    /// End of stream with part of a line buffered.
    MidFrame,
    /// The connection failed (reset, TLS alert…).
    Error(String),
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Clean => Ok(()),
            Disconnect::MidFrame => f.write_str(" in the middle of a message"),
            Disconnect::Error(e) => write!(f, " ({e})"),
        }
    }
}

/// Why pairing failed, from the client's side. Each says what happened
/// and what to do, in an integrator's terms; `processor` is the caller's
/// name for it ("RadioRA 3 processor 0236e6a7 at 192.168.1.20").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    #[error(
        "nobody pressed the button on {processor} within {} — press the small button \
         on the processor and run the command again",
        human(.waited)
    )]
    ButtonNotPressed { processor: String, waited: Duration },
    #[error(
        "{processor} did not answer the certificate request within {} — it may be busy \
         or restarting; press the button and run the command again",
        human(.waited)
    )]
    NoAnswer { processor: String, waited: Duration },
    #[error(
        "{processor} sent {got} before its button was pressed, where only the button-press \
         status may come — is this the pairing port (8083) of a Lutron processor?"
    )]
    UnexpectedBeforeButton { processor: String, got: String },
    #[error("{processor} sent {got} instead of the signed certificate")]
    UnexpectedAfterRequest { processor: String, got: String },
    #[error(
        "{processor} refused the certificate request (401 Unauthorized: {message}) — the \
         button window had closed; press the button and run the command again"
    )]
    Unauthorized { processor: String, message: String },
    #[error("{processor} refused the certificate request ({status}: {message})")]
    Refused {
        processor: String,
        status: StatusCode,
        message: String,
    },
    #[error(
        "{processor} answered a request tagged '{got}', not ours ('{expected}') — another \
         program may be using this connection; run the command again"
    )]
    WrongClientTag {
        processor: String,
        expected: String,
        got: String,
    },
    #[error("{processor} sent something handoff cannot read: {reason}")]
    Malformed { processor: String, reason: String },
    #[error("{processor} closed the connection {stage}{how} — {}", .stage.hint())]
    ProcessorClosed {
        processor: String,
        stage: Stage,
        how: Disconnect,
    },
    #[error("the pairing with {processor} has already finished")]
    Finished { processor: String },
}

/// `3:00` for minutes, `10 s` for seconds, `250 ms` below that: how a
/// button window or a timeout reads in a message to an integrator.
pub fn human(d: &Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else if secs > 0 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn durations_read_like_a_stopwatch() {
        assert_eq!(human(&Duration::from_secs(180)), "3:00");
        assert_eq!(human(&Duration::from_secs(95)), "1:35");
        assert_eq!(human(&Duration::from_secs(10)), "10 s");
        assert_eq!(human(&Duration::from_millis(250)), "250 ms");
    }
}
