//! The relay client: delivers the [`Outbox`]'s events to the cloud access
//! layer and records what the cloud said.
//!
//! [`run`] is one tokio task. It opens a connection with a [`Connector`]
//! (any byte stream: TLS in production, `tokio::io::duplex` in tests),
//! sends `hello`, expects `hello-ack`, then sends pending events in order,
//! up to [`RelayConfig::max_in_flight`] unacknowledged at a time, and
//! hands every ack to the outbox, which commits it before the event counts
//! as delivered. When the connection fails, the peer closes it, sends a
//! frame that does not decode, an error frame or anything but an ack, it
//! reconnects after the outbox's capped, jittered backoff and sends again
//! from the oldest unacknowledged event; the cloud applies an id once, so
//! a redelivery is harmless. It never decides an event's fate by itself:
//! only an ack settles one, or an `unknown-event` error naming the event
//! (kept as a refusal with rule `unknown-event`, so that one event a cloud
//! cannot read does not hold back every later one).
//!
//! Its state (connected, backlog, last error) is published on a
//! [`watch`] channel; it stops when its [`Shutdown`] fires.
//!
//! A command (`handoff claim`, `release`) that queues an event and reports
//! the cloud's answer, or "queued" when the cloud is out of reach:
//!
//! ```no_run
//! # async fn example(
//! #     state: &std::path::Path,
//! #     kind: handoff::proto::EventKind,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use handoff::outbox::{self, Outbox};
//! use handoff::relay::{self, RelayConfig};
//!
//! let outbox = Outbox::open(state.join(outbox::FILE_NAME))?;
//! let id = outbox.append(kind).await?; // durable from here on
//! let (stop, shutdown) = handoff::shutdown::shutdown_channel();
//! let (status, _status) = relay::status_channel(&outbox);
//! // In production: dial TCP and do the mutual-TLS handshake here.
//! let connect = || tokio::net::TcpStream::connect("127.0.0.1:4443");
//! let task = tokio::spawn(relay::run(
//!     outbox.clone(), connect, RelayConfig::default(), shutdown, status,
//! ));
//! match tokio::time::timeout(Duration::from_secs(10), outbox.wait_outcome(&id)).await {
//!     Ok(ack) => println!("the cloud answered: {:?}", ack?.outcome),
//!     Err(_) => println!("queued, will be relayed"),
//! }
//! stop.fire();
//! task.await?;
//! outbox.close().await;
//! # Ok(())
//! # }
//! ```

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relayed {
    Applied(Option<crate::proto::IssuedLink>),
    Refused {
        rule: String,
        guidance: String,
    },
    /// Durable in the outbox, not answered yet.
    Queued {
        reason: String,
    },
}

impl Relayed {
    pub fn json(&self) -> serde_json::Value {
        match self {
            Relayed::Applied(link) => {
                serde_json::json!({"result": "applied", "link": link.as_ref().map(|l| format!("{}:{}", l.number, l.secret))})
            }
            Relayed::Refused { rule, guidance } => {
                serde_json::json!({"result": "refused", "rule": rule, "why": guidance})
            }
            Relayed::Queued { reason } => serde_json::json!({"result": "queued", "why": reason}),
        }
    }
}

impl Relayed {
    /// What the cloud said of an event in a daemon's outbox.
    pub fn from_cloud(cloud: &crate::proto::control::CloudResult) -> Relayed {
        match cloud.result.as_str() {
            "applied" => Relayed::Applied(cloud.link.clone()),
            "refused" => Relayed::Refused {
                rule: cloud.rule.clone().unwrap_or_default(),
                guidance: cloud.why.clone().unwrap_or_default(),
            },
            _ => Relayed::Queued {
                reason: cloud
                    .why
                    .clone()
                    .unwrap_or_else(|| "no answer from the cloud yet".into()),
            },
        }
    }

    /// What a daemon said of an event it queued, for a command.
    pub fn from_daemon(
        cloud: &crate::proto::control::CloudResult,
        daemon: &std::path::Path,
    ) -> Relayed {
        match Relayed::from_cloud(cloud) {
            Relayed::Queued { reason } => Relayed::Queued {
                reason: format!("handed to the daemon at {}: {reason}", daemon.display()),
            },
            other => other,
        }
    }
}

impl Relayed {
    /// What the cloud's acknowledgement says.
    pub fn from_ack(ack: crate::proto::Ack) -> Relayed {
        match ack.outcome {
            crate::proto::Outcome::Applied | crate::proto::Outcome::Duplicate => {
                Relayed::Applied(ack.link)
            }
            crate::proto::Outcome::Refused { rule, guidance } => {
                Relayed::Refused { rule, guidance }
            }
        }
    }
}

pub mod address;
pub mod link;
mod possession;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::outbox::{Outbox, OutboxError};
use crate::proto::{
    self, ErrorFrame, FrameConnection, FrameIoError, Hello, HelloAck, PROTOCOL_VERSION, ProtoError,
    RelayMessage, error_code,
};
use crate::shutdown::Shutdown;

/// Opens a connection to the cloud. Implemented for every
/// `FnMut() -> impl Future<Output = io::Result<S>>`, so a closure that
/// dials TCP and does the TLS handshake is a connector.
pub trait Connector: Send {
    /// The byte stream: a TLS stream, a Unix socket, a duplex pipe.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// A new connection, handshake done (TLS included), ready for `hello`.
    fn connect(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl<F, Fut, S> Connector for F
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = S;

    fn connect(&mut self) -> impl Future<Output = io::Result<S>> + Send {
        self()
    }
}

/// How the relay behaves. The retry backoff is the outbox's
/// ([`Outbox::open_with`]), because the pure core decides it.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Events sent and not yet acknowledged, at most. 1 is stop-and-wait.
    pub max_in_flight: usize,
    /// Limit for opening a connection and for the hello exchange.
    pub connect_timeout: Duration,
    /// With events in flight, a connection that brings no frame for this
    /// long is given up and reopened.
    pub ack_timeout: Duration,
    /// Sent in `hello` for the cloud's logs.
    pub software: String,
    /// Seed of the backoff jitter; `None` seeds from the OS. Tests fix it.
    pub jitter_seed: Option<u64>,
    /// The account the link authenticates as: with it, each `claimed`
    /// event is signed as it leaves with its certificate's key, read from
    /// the credential store beside the outbox ([`possession`]). `None`
    /// sends claims as queued (tests of the relay alone).
    pub claim_account: Option<String>,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            max_in_flight: 256,
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            software: concat!("handoff/", env!("CARGO_PKG_VERSION")).into(),
            jitter_seed: None,
            claim_account: None,
        }
    }
}

/// What the relay is doing, for `handoff status --relay` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayStatus {
    /// Whether a connection is up (hello answered).
    pub connected: bool,
    /// Events not yet acknowledged.
    pub backlog: usize,
    /// Of those, sent on this connection.
    pub in_flight: usize,
    /// How long ago the oldest unacknowledged event was appended.
    pub oldest_pending_age: Option<Duration>,
    /// Events settled by an ack since the relay started.
    pub acknowledged: u64,
    /// Why the last connection ended, if one did. Kept after reconnecting.
    pub last_error: Option<String>,
    /// The code of the cloud's error frame that ended it, when one did
    /// (`revoked`: this site box's identity will not be let in again).
    pub last_error_code: Option<String>,
    /// While waiting to reconnect: how long the wait is.
    pub retry_in: Option<Duration>,
    /// The cloud's answers since the relay started, by outcome (every
    /// ack counts, a redelivery's `duplicate` too).
    pub answered: Answered,
    /// Connections lost, or not made, since the relay started: each is
    /// followed by a reconnect after the backoff.
    pub reconnects: u64,
}

/// Acks received, by the outcome the cloud gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answered {
    pub applied: u64,
    pub duplicate: u64,
    pub refused: u64,
}

impl Answered {
    fn count(&mut self, outcome: &proto::Outcome) {
        match outcome {
            proto::Outcome::Applied => self.applied += 1,
            proto::Outcome::Duplicate => self.duplicate += 1,
            proto::Outcome::Refused { .. } => self.refused += 1,
        }
    }
}

/// A status channel that starts from `outbox`'s backlog, for [`run`]
/// (a `RelayStatus::default()` would show an empty backlog until the relay
/// task first runs).
pub fn status_channel(
    outbox: &Outbox,
) -> (watch::Sender<RelayStatus>, watch::Receiver<RelayStatus>) {
    let stats = outbox.stats(SystemTime::now());
    watch::channel(RelayStatus {
        backlog: stats.backlog,
        oldest_pending_age: stats.oldest_pending_age,
        ..RelayStatus::default()
    })
}

/// Why a connection to the cloud ended. The relay retries after every
/// one; they are reported, never returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("cannot connect to the cloud: {0}")]
    Connect(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("the connection to the cloud failed: {0}")]
    Io(String),
    #[error("the cloud closed the connection")]
    Closed,
    #[error("the cloud sent a frame that cannot be read: {0}")]
    Garbage(ProtoError),
    #[error("the cloud sent a \"{kind}\" message where it should not")]
    Unexpected { kind: String },
    #[error("the cloud refused the handshake: {0}")]
    Handshake(String),
    #[error("the cloud reported an error ({code}): {reason}")]
    Peer { code: String, reason: String },
    #[error("cannot record what the cloud said: {0}")]
    Outbox(OutboxError),
    /// One of our own frames cannot be written: a bug.
    #[error("cannot write a relay frame: {0}")]
    Encode(ProtoError),
}

/// Delivers `outbox`'s events through connections from `connector` until
/// `shutdown` turns true (or its sender is dropped), publishing its state
/// on `status`. Returns with every unacknowledged event still pending in
/// the outbox, for the next run.
pub async fn run<C: Connector>(
    outbox: Outbox,
    mut connector: C,
    config: RelayConfig,
    mut shutdown: Shutdown,
    status: watch::Sender<RelayStatus>,
) {
    let mut rng = config
        .jitter_seed
        .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let mut alarm = BacklogAlarm::default();
    refresh(&outbox, &status, &mut alarm);
    loop {
        if shutdown.fired() {
            break;
        }
        let err = tokio::select! {
            err = session(&outbox, &mut connector, &config, &status, &mut alarm) => err,
            () = shutdown.wait() => break,
        };
        let delay = outbox.with_core(|core| core.connection_lost(rng.f64()));
        tracing::warn!(error = %err, retry_in = ?delay, "relay: connection to the cloud lost");
        status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(err.to_string());
            s.last_error_code = match &err {
                RelayError::Peer { code, .. } => Some(code.clone()),
                _ => None,
            };
            s.retry_in = Some(delay);
            s.reconnects += 1;
        });
        refresh(&outbox, &status, &mut alarm);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => break,
        }
        status.send_modify(|s| s.retry_in = None);
    }
    outbox.with_core(|core| core.disconnected());
    status.send_modify(|s| {
        s.connected = false;
        s.retry_in = None;
    });
    refresh(&outbox, &status, &mut alarm);
}

/// One connection, from dialing to its failure.
async fn session<C: Connector>(
    outbox: &Outbox,
    connector: &mut C,
    config: &RelayConfig,
    status: &watch::Sender<RelayStatus>,
    alarm: &mut BacklogAlarm,
) -> RelayError {
    match deliver(outbox, connector, config, status, alarm).await {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

async fn deliver<C: Connector>(
    outbox: &Outbox,
    connector: &mut C,
    config: &RelayConfig,
    status: &watch::Sender<RelayStatus>,
    alarm: &mut BacklogAlarm,
) -> Result<Infallible, RelayError> {
    let stream = tokio::time::timeout(config.connect_timeout, connector.connect())
        .await
        .map_err(|_| RelayError::Timeout("connecting to the cloud"))?
        .map_err(|e| RelayError::Connect(e.to_string()))?;
    let (mut reader, mut writer) = FrameConnection::new(stream).split();
    handshake(&mut reader, &mut writer, config).await?;
    outbox.with_core(|core| core.connected());
    status.send_modify(|s| {
        s.connected = true;
        s.retry_in = None;
    });
    tracing::info!("relay: connected to the cloud");

    let mut changes = outbox.changes();
    let mut needs_flush = false;
    let mut last_heard = Instant::now();
    loop {
        if !writer.has_pending() {
            changes.borrow_and_update();
            let (was_idle, batch) = outbox.with_core(|core| {
                let idle = core.stats(SystemTime::now()).in_flight == 0;
                (idle, core.take_batch(config.max_in_flight))
            });
            if !batch.is_empty() {
                if was_idle {
                    last_heard = Instant::now();
                }
                for mut event in batch {
                    if let (Some(account), Some(dir)) = (&config.claim_account, outbox.dir()) {
                        possession::seal(&mut event, account, dir);
                    }
                    writer
                        .queue_frame(&RelayMessage::Event(event))
                        .map_err(RelayError::Encode)?;
                }
                refresh(outbox, status, alarm);
            }
        }
        let in_flight = outbox.with_core(|core| core.stats(SystemTime::now()).in_flight > 0);
        let sending = writer.has_pending();
        tokio::select! {
            msg = read_message(&mut reader) => {
                last_heard = Instant::now();
                let mut acks = vec![expect_ack(msg?)?];
                while let Some(more) = reader.try_read_frame().map_err(RelayError::Garbage)? {
                    acks.push(expect_ack(more)?);
                }
                status.send_modify(|s| acks.iter().for_each(|a| s.answered.count(&a.outcome)));
                let settled = outbox.record_acks(acks).await.map_err(RelayError::Outbox)?;
                status.send_modify(|s| s.acknowledged += settled as u64);
                refresh(outbox, status, alarm);
            }
            r = writer.write_some(), if sending || needs_flush => {
                match r.map_err(|e| RelayError::Io(e.to_string()))? {
                    Some(0) => return Err(RelayError::Closed),
                    Some(_) => needs_flush = true,
                    None => needs_flush = false,
                }
            }
            r = changes.changed(), if !sending && !needs_flush => {
                r.map_err(|_| RelayError::Outbox(OutboxError::Closed))?;
            }
            () = tokio::time::sleep_until(last_heard + config.ack_timeout), if in_flight => {
                return Err(RelayError::Timeout("waiting for acks from the cloud"));
            }
        }
    }
}

/// The cloud's next message; the end of its stream is
/// [`RelayError::Closed`]. Cancel safe, as [`FrameConnection::read_frame`].
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut FrameConnection<R>,
) -> Result<RelayMessage, RelayError> {
    match reader.read_frame().await {
        Ok(Some(msg)) => Ok(msg),
        Ok(None) => Err(RelayError::Closed),
        Err(FrameIoError::Frame(e)) => Err(RelayError::Garbage(e)),
        Err(FrameIoError::Io(e)) => Err(RelayError::Io(e.to_string())),
    }
}

async fn handshake<R, W>(
    reader: &mut FrameConnection<R>,
    writer: &mut FrameConnection<W>,
    config: &RelayConfig,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer
        .queue_frame(&RelayMessage::Hello(Hello {
            versions: vec![PROTOCOL_VERSION],
            software: Some(config.software.clone()),
        }))
        .map_err(RelayError::Encode)?;
    let exchange = async {
        writer
            .flush_frames()
            .await
            .map_err(|e| RelayError::Io(e.to_string()))?;
        read_message(reader).await
    };
    let answer = tokio::time::timeout(config.connect_timeout, exchange)
        .await
        .map_err(|_| RelayError::Timeout("waiting for the cloud's hello-ack"))??;
    match answer {
        RelayMessage::HelloAck(HelloAck { version }) if version == PROTOCOL_VERSION => Ok(()),
        RelayMessage::HelloAck(HelloAck { version }) => Err(RelayError::Handshake(format!(
            "it chose protocol version {version}; this daemon speaks {PROTOCOL_VERSION}"
        ))),
        RelayMessage::Error(e) => Err(RelayError::Peer {
            code: e.code,
            reason: e.reason,
        }),
        other => Err(RelayError::Unexpected {
            kind: other.kind().to_owned(),
        }),
    }
}

/// The ack a frame carries. An `unknown-event` error about one event
/// counts as that event's refusal (rule `unknown-event`): the cloud will
/// never apply it, and retrying it would hold back every later event.
/// Any other error frame ends the connection.
fn expect_ack(msg: RelayMessage) -> Result<proto::Ack, RelayError> {
    match msg {
        RelayMessage::Ack(ack) => Ok(ack),
        RelayMessage::Error(ErrorFrame {
            code,
            reason,
            id: Some(id),
            ..
        }) if code == error_code::UNKNOWN_EVENT => {
            tracing::warn!(seq = id.seq, %reason, "relay: the cloud does not know this event kind");
            Ok(proto::Ack {
                id,
                outcome: proto::Outcome::Refused {
                    rule: code,
                    guidance: reason,
                },
                link: None,
            })
        }
        RelayMessage::Error(e) => Err(RelayError::Peer {
            code: e.code,
            reason: e.reason,
        }),
        other => Err(RelayError::Unexpected {
            kind: other.kind().to_owned(),
        }),
    }
}

/// Logs when the backlog passes 100, 1 000, 10 000… events, and again
/// when it has come back down.
#[derive(Debug)]
struct BacklogAlarm {
    next: usize,
}

impl Default for BacklogAlarm {
    fn default() -> BacklogAlarm {
        BacklogAlarm { next: 100 }
    }
}

fn refresh(outbox: &Outbox, status: &watch::Sender<RelayStatus>, alarm: &mut BacklogAlarm) {
    let stats = outbox.stats(SystemTime::now());
    if stats.backlog >= alarm.next {
        tracing::warn!(backlog = stats.backlog, oldest = ?stats.oldest_pending_age,
            "relay: the backlog of events to deliver is growing");
        alarm.next = alarm.next.saturating_mul(10);
    } else if alarm.next > 100 && stats.backlog < alarm.next / 100 {
        tracing::info!(backlog = stats.backlog, "relay: the backlog has come down");
        alarm.next /= 10;
    }
    status.send_if_modified(|s| {
        let changed = s.backlog != stats.backlog
            || s.in_flight != stats.in_flight
            || s.oldest_pending_age != stats.oldest_pending_age;
        s.backlog = stats.backlog;
        s.in_flight = stats.in_flight;
        s.oldest_pending_age = stats.oldest_pending_age;
        changed
    });
}
