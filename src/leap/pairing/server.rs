//! The processor's side of the handshake.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{DEFAULT_BUTTON_WINDOW, MAX_FAILED_ATTEMPTS, SignedCertificate};
use crate::leap::codec::{CodecError, JsonObject};
use crate::leap::message::{CsrParameters, PairingFrame};

/// A connection to the pairing port, named by the driver. The driver
/// numbers connections in the order they arrive: when a press finds
/// several clients waiting, the lowest id (the first to come) gets it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnectionId(pub u64);

/// The processor's pairing rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairingServerConfig {
    /// How long a press keeps the window open.
    pub window: Duration,
    /// Failed attempts that close the window.
    pub max_failures: u32,
}

impl Default for PairingServerConfig {
    fn default() -> Self {
        PairingServerConfig {
            window: DEFAULT_BUTTON_WINDOW,
            max_failures: MAX_FAILED_ATTEMPTS,
        }
    }
}

/// A CSR the processor accepted and the driver must have signed. The
/// machine treats PEM as opaque; the signer enforces what a certificate
/// may be (CA:FALSE, key usage) and refuses the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignRequest {
    pub conn: ConnectionId,
    pub parameters: CsrParameters,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerAction {
    /// Write this frame to this connection, in its own write.
    Send {
        conn: ConnectionId,
        frame: PairingFrame,
    },
    /// Sign this CSR and report with [`PairingServer::signing_done`].
    Sign(SignRequest),
    /// Close this connection once what was sent before is written.
    Close {
        conn: ConnectionId,
        reason: CloseReason,
    },
    /// Something to log or show.
    Report(ServerEvent),
}

/// Why the processor closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// At most one pairing is in flight per processor.
    AnotherPairingInFlight,
    /// The certificate was delivered.
    Paired,
    /// The client sent a line too long to skip; nothing after it can be
    /// trusted to start a frame.
    UnreadableStream,
}

/// Why a window closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowClosed {
    Expired,
    TooManyFailures,
}

/// Things worth a log line.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    WindowOpened {
        closes_at: Instant,
    },
    WindowClosed(WindowClosed),
    /// An attempt failed inside a window; `failures` counts them.
    AttemptFailed {
        conn: ConnectionId,
        failures: u32,
        why: String,
    },
    Paired {
        conn: ConnectionId,
        display_name: String,
    },
}

#[derive(Clone, Copy, Debug)]
struct Window {
    closes_at: Instant,
    failures: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Peer {
    /// Connected, has been sent nothing.
    Waiting,
    /// Sent the PhysicalAccess frame; may send its CSR.
    Granted,
    /// Its CSR is with the signer.
    Signing {
        client_tag: Option<String>,
        display_name: String,
    },
    /// Was granted, but the window closed before it sent a CSR.
    Lapsed,
}

/// The pairing port of one processor.
///
/// Invariants: at most one peer is in flight (granted or signing), and it
/// is [`PairingServer::in_flight`]; peers wait only while no window is open
/// and none is in flight.
#[derive(Debug)]
pub struct PairingServer {
    config: PairingServerConfig,
    window: Option<Window>,
    peers: BTreeMap<ConnectionId, Peer>,
    in_flight: Option<ConnectionId>,
}

impl PairingServer {
    pub fn new(config: PairingServerConfig) -> PairingServer {
        PairingServer {
            config,
            window: None,
            peers: BTreeMap::new(),
            in_flight: None,
        }
    }

    /// When the open window closes, if one is open.
    pub fn window_closes_at(&self) -> Option<Instant> {
        self.window.map(|w| w.closes_at)
    }

    /// Failed attempts in the open window.
    pub fn failures(&self) -> u32 {
        self.window.map_or(0, |w| w.failures)
    }

    /// The connection whose pairing is in flight.
    pub fn in_flight(&self) -> Option<ConnectionId> {
        self.in_flight
    }

    /// When to call [`PairingServer::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.window_closes_at()
    }

    /// Applies expiries up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        out
    }

    /// A client connected. It is sent nothing until the button is pressed;
    /// during an open window it is granted at once, unless another pairing
    /// is in flight, in which case it is refused.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnectionId) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        if self.peers.contains_key(&conn) {
            return out;
        }
        if self.in_flight.is_some() {
            out.push(ServerAction::Close {
                conn,
                reason: CloseReason::AnotherPairingInFlight,
            });
            return out;
        }
        self.peers.insert(conn, Peer::Waiting);
        if self.window.is_some() {
            self.grant(conn, &mut out);
        }
        out
    }

    /// The button was pressed: opens the window (or restarts it, with a
    /// fresh failure count: a press is a new proof of presence) and grants
    /// the first waiting client.
    pub fn press_button(&mut self, now: Instant) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        let closes_at = now + self.config.window;
        self.window = Some(Window {
            closes_at,
            failures: 0,
        });
        out.push(ServerAction::Report(ServerEvent::WindowOpened {
            closes_at,
        }));
        if self.in_flight.is_none() {
            let first = self.peers.keys().next().copied();
            if let Some(conn) = first {
                self.grant(conn, &mut out);
            }
        }
        out
    }

    /// A frame arrived from `conn`.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        object: JsonObject,
    ) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        let Some(peer) = self.peers.get(&conn).cloned() else {
            return out;
        };
        let tag = header_client_tag(&object);
        let frame = match PairingFrame::from_object(object) {
            Ok(frame) => frame,
            Err(e) => {
                self.reject(conn, tag, e.to_string(), &mut out);
                return out;
            }
        };
        let PairingFrame::CsrRequest {
            client_tag,
            parameters,
        } = frame
        else {
            let why = format!(
                "a client may send only a CSR here, not {}",
                frame.describe()
            );
            self.reject(conn, tag, why, &mut out);
            return out;
        };
        match peer {
            Peer::Granted if self.window.is_some() => {
                self.peers.insert(
                    conn,
                    Peer::Signing {
                        client_tag,
                        display_name: parameters.display_name.clone(),
                    },
                );
                out.push(ServerAction::Sign(SignRequest { conn, parameters }));
            }
            Peer::Signing { .. } => {
                let why = "a certificate request from this client is already being signed";
                self.reject(conn, client_tag, why.into(), &mut out);
            }
            _ => out.push(ServerAction::Send {
                conn,
                frame: PairingFrame::unauthorized(client_tag),
            }),
        }
        out
    }

    /// A line from `conn` could not be read as JSON. It is answered like a
    /// bad request, unless it was too long to skip: then the connection is
    /// closed.
    pub fn handle_malformed(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        error: &CodecError,
    ) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        if !self.peers.contains_key(&conn) {
            return out;
        }
        if error.is_fatal() {
            self.count_failure(conn, error.to_string(), &mut out);
            self.forget(conn);
            out.push(ServerAction::Close {
                conn,
                reason: CloseReason::UnreadableStream,
            });
        } else {
            self.reject(conn, None, error.to_string(), &mut out);
        }
        out
    }

    /// The signer's answer for `conn`: the certificate, or why it refused.
    /// Dropped if the client left meanwhile. A CSR accepted inside the
    /// window is answered even if the window closed while it was signed.
    pub fn signing_done(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        result: Result<SignedCertificate, String>,
    ) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        let Some(Peer::Signing {
            client_tag,
            display_name,
        }) = self.peers.get(&conn).cloned()
        else {
            return out;
        };
        match result {
            Ok(signed) => {
                out.push(ServerAction::Send {
                    conn,
                    frame: PairingFrame::signing_result(
                        client_tag,
                        signed.certificate,
                        signed.root_certificate,
                    ),
                });
                out.push(ServerAction::Report(ServerEvent::Paired {
                    conn,
                    display_name,
                }));
                self.forget(conn);
                out.push(ServerAction::Close {
                    conn,
                    reason: CloseReason::Paired,
                });
            }
            Err(why) => {
                let next = if self.window.is_some() {
                    Peer::Granted
                } else {
                    Peer::Lapsed
                };
                self.peers.insert(conn, next);
                if self.in_flight == Some(conn) && self.window.is_none() {
                    self.in_flight = None;
                }
                let why = format!("the certificate request was refused: {why}");
                self.reject(conn, client_tag, why, &mut out);
            }
        }
        out
    }

    /// `conn` is gone.
    pub fn handle_close(&mut self, now: Instant, conn: ConnectionId) -> Vec<ServerAction> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        self.forget(conn);
        out
    }

    fn grant(&mut self, conn: ConnectionId, out: &mut Vec<ServerAction>) {
        self.peers.insert(conn, Peer::Granted);
        self.in_flight = Some(conn);
        out.push(ServerAction::Send {
            conn,
            frame: PairingFrame::physical_access(),
        });
        // One pairing in flight: whoever else waits is told now, not left
        // hanging until its own deadline.
        let others: Vec<ConnectionId> =
            self.peers.keys().filter(|&&c| c != conn).copied().collect();
        for other in others {
            self.peers.remove(&other);
            out.push(ServerAction::Close {
                conn: other,
                reason: CloseReason::AnotherPairingInFlight,
            });
        }
    }

    /// Answers a bad request with `400 BadRequest` and counts it.
    fn reject(
        &mut self,
        conn: ConnectionId,
        client_tag: Option<String>,
        why: String,
        out: &mut Vec<ServerAction>,
    ) {
        out.push(ServerAction::Send {
            conn,
            frame: PairingFrame::bad_request(client_tag, why.clone()),
        });
        self.count_failure(conn, why, out);
    }

    /// Counts a failed attempt against the open window, closing it at the
    /// limit. Outside a window there is nothing to protect.
    fn count_failure(&mut self, conn: ConnectionId, why: String, out: &mut Vec<ServerAction>) {
        let Some(window) = &mut self.window else {
            return;
        };
        window.failures += 1;
        let failures = window.failures;
        out.push(ServerAction::Report(ServerEvent::AttemptFailed {
            conn,
            failures,
            why,
        }));
        if failures >= self.config.max_failures {
            self.close_window(WindowClosed::TooManyFailures, out);
        }
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<ServerAction>) {
        if self.window.is_some_and(|w| now >= w.closes_at) {
            self.close_window(WindowClosed::Expired, out);
        }
    }

    /// Closes the window. A granted client that has not sent its CSR
    /// lapses (its CSR will get the 401); one being signed finishes.
    fn close_window(&mut self, why: WindowClosed, out: &mut Vec<ServerAction>) {
        self.window = None;
        out.push(ServerAction::Report(ServerEvent::WindowClosed(why)));
        if let Some(conn) = self.in_flight
            && self.peers.get(&conn) == Some(&Peer::Granted)
        {
            self.peers.insert(conn, Peer::Lapsed);
            self.in_flight = None;
        }
    }

    fn forget(&mut self, conn: ConnectionId) {
        self.peers.remove(&conn);
        if self.in_flight == Some(conn) {
            self.in_flight = None;
        }
    }
}

/// The `ClientTag` of a frame too broken to parse, to echo in the answer.
fn header_client_tag(object: &JsonObject) -> Option<String> {
    object
        .get("Header")?
        .get("ClientTag")?
        .as_str()
        .map(str::to_owned)
}
