//! The site client: how a command on a site reaches the cloud.
//!
//! One policy, decided here and nowhere else:
//! - a cloud named on the command line (`--cloud ADDR`) is that cloud: this
//!   process appends its events to its own outbox and delivers them over a
//!   one-off link, and asks statuses directly;
//! - otherwise a running daemon that relays (a site box) gets the events
//!   over its control socket and asks the cloud as its enrolled account;
//! - otherwise there is no cloud, and the caller says so: an event is never
//!   queued for whoever relays next.
//!
//! The daemon is the other end of the second path: it uses the same link
//! ([`CloudLink::place_status`]) and outbox directly, never this module.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::daemon::{DaemonError, connect_first};
use crate::outbox::{self, Outbox};
use crate::processor::{Mac, Serial};
use crate::proto::control::{RelayHealth, error_code};
use crate::proto::{EventId, EventKind, PlaceStatus};
use crate::relay::Relayed;
use crate::relay::link::{CloudLink, deliver_and_wait};

/// Why the cloud could not be reached as asked. Sentences for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("{0}")]
    Failed(String),
}

/// How this process reaches the cloud.
#[derive(Clone, Debug)]
pub enum SiteClient {
    /// This process: its own outbox in `state_dir` and a one-off link.
    Direct { link: CloudLink, state_dir: PathBuf },
    /// A running daemon that relays, over its control socket.
    Daemon {
        socket: PathBuf,
        cloud: String,
        account: String,
    },
}

impl SiteClient {
    /// `explicit` (the command's `--cloud` link) wins; without it, the first
    /// daemon on `sockets` that relays; `None` when neither exists.
    ///
    /// # Errors
    /// A daemon that answers but cannot be asked.
    pub async fn choose(
        explicit: Option<CloudLink>,
        state_dir: &Path,
        sockets: &[PathBuf],
    ) -> Result<Option<SiteClient>, SiteError> {
        if let Some(link) = explicit {
            return Ok(Some(SiteClient::Direct {
                link,
                state_dir: state_dir.to_owned(),
            }));
        }
        Ok(relaying_daemon(sockets)
            .await?
            .map(|(socket, relay)| SiteClient::Daemon {
                socket,
                cloud: relay.cloud.unwrap_or_else(|| "the daemon's cloud".into()),
                account: relay
                    .account
                    .unwrap_or_else(|| "the daemon's account".into()),
            }))
    }

    /// The cloud's address (host:port), for messages.
    pub fn cloud(&self) -> String {
        match self {
            SiteClient::Direct { link, .. } => link.address(),
            SiteClient::Daemon { cloud, .. } => cloud.clone(),
        }
    }

    /// The account the cloud acts for.
    pub fn account(&self) -> &str {
        match self {
            SiteClient::Direct { link, .. } => &link.account,
            SiteClient::Daemon { account, .. } => account,
        }
    }

    /// Sends `kinds` (durable in an outbox before anything else) and waits
    /// up to `wait` for the cloud's answers.
    ///
    /// # Errors
    /// The outbox cannot be written (nothing was queued), or the daemon
    /// refused or went away.
    pub async fn send(
        &self,
        kinds: Vec<EventKind>,
        wait: Duration,
    ) -> Result<Vec<(EventId, Relayed)>, SiteError> {
        match self {
            SiteClient::Direct { link, state_dir } => {
                let outbox = open_outbox(state_dir)?;
                let mut ids = Vec::with_capacity(kinds.len());
                for kind in kinds {
                    match outbox.append(kind).await {
                        Ok(id) => ids.push(id),
                        Err(e) => {
                            outbox.close().await;
                            return Err(SiteError::Failed(format!("cannot queue the event: {e}")));
                        }
                    }
                }
                let (acks, last_error) = deliver_and_wait(&outbox, link, &ids, wait).await;
                outbox.close().await;
                Ok(ids
                    .into_iter()
                    .zip(acks)
                    .map(|(id, ack)| (id, answered(ack, last_error.as_deref(), link)))
                    .collect())
            }
            SiteClient::Daemon { socket, .. } => {
                let mut client = self.daemon().await?;
                let mut results = Vec::with_capacity(kinds.len());
                for kind in kinds {
                    let q = client.queue(kind, wait).await?;
                    results.push((q.cloud.id.clone(), Relayed::from_daemon(&q.cloud, socket)));
                }
                Ok(results)
            }
        }
    }

    /// What became of an event sent earlier: its recorded answer, or
    /// another wait of up to `wait` for the cloud.
    ///
    /// # Errors
    /// As [`SiteClient::send`].
    pub async fn settle(&self, id: &EventId, wait: Duration) -> Result<Relayed, SiteError> {
        match self {
            SiteClient::Direct { link, state_dir } => {
                let outbox = open_outbox(state_dir)?;
                let relayed = match outbox.outcome(id).await {
                    Ok(Some(ack)) => Relayed::from_ack(ack),
                    _ => {
                        let (mut acks, last_error) =
                            deliver_and_wait(&outbox, link, std::slice::from_ref(id), wait).await;
                        answered(acks.pop().flatten(), last_error.as_deref(), link)
                    }
                };
                outbox.close().await;
                Ok(relayed)
            }
            SiteClient::Daemon { socket, .. } => {
                let q = self.daemon().await?.outcome(id.clone(), wait).await?;
                Ok(Relayed::from_daemon(&q.cloud, socket))
            }
        }
    }

    /// The cloud's answer about one processor, as [`SiteClient::account`].
    ///
    /// # Errors
    /// The processor is named by neither serial nor MAC, the cloud does not
    /// know it or cannot be reached.
    pub async fn status(
        &self,
        serial: Option<Serial>,
        mac: Option<Mac>,
        wait: Duration,
    ) -> Result<PlaceStatus, SiteError> {
        match self {
            SiteClient::Direct { link, .. } => link
                .place_status(serial, mac, wait)
                .await
                .map_err(SiteError::Failed),
            SiteClient::Daemon { .. } => {
                let named = match (serial, mac) {
                    (Some(serial), _) => serial.0.to_string(),
                    (None, Some(mac)) => mac.to_string(),
                    (None, None) => {
                        return Err(SiteError::Failed(
                            crate::relay::link::NEITHER_SERIAL_NOR_MAC.into(),
                        ));
                    }
                };
                let report =
                    self.daemon()
                        .await?
                        .status(&named, wait)
                        .await
                        .map_err(|e| match e {
                            DaemonError::Refused { reason, .. } => SiteError::Failed(reason),
                            other => other.into(),
                        })?;
                Ok(report.into_place_status().0)
            }
        }
    }

    async fn daemon(
        &self,
    ) -> Result<crate::daemon::ControlClient<tokio::net::UnixStream>, SiteError> {
        let SiteClient::Daemon { socket, .. } = self else {
            return Err(SiteError::Failed("not a daemon".into()));
        };
        match connect_first(std::slice::from_ref(socket)).await? {
            Some((client, _)) => Ok(client),
            None => Err(SiteError::Failed(format!(
                "the daemon at {} stopped; pass --cloud ADDR to reach the cloud directly",
                socket.display()
            ))),
        }
    }
}

/// The first daemon on `sockets` that runs a relay, with what it says of
/// it; `None` when none answers or it relays to no cloud.
///
/// # Errors
/// A daemon that answers but cannot be asked.
pub async fn relaying_daemon(
    sockets: &[PathBuf],
) -> Result<Option<(PathBuf, RelayHealth)>, SiteError> {
    let Some((mut client, socket)) = connect_first(sockets).await? else {
        return Ok(None);
    };
    match client.health().await {
        Ok(report) => Ok(report.relay.map(|relay| (socket, relay))),
        Err(DaemonError::Refused { code, .. }) if code == error_code::UNKNOWN_KIND => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An ack, or why there is none yet.
fn answered(ack: Option<crate::proto::Ack>, last_error: Option<&str>, link: &CloudLink) -> Relayed {
    ack.map_or_else(
        || Relayed::Queued {
            reason: last_error.map_or_else(
                || format!("no answer from {} in time", link.address()),
                str::to_owned,
            ),
        },
        Relayed::from_ack,
    )
}

/// Opens the outbox under `state_dir` (made 0700 when new; an existing
/// state directory is the user's to choose).
///
/// # Errors
/// [`SiteError`] naming the file.
pub fn open_outbox(state_dir: &Path) -> Result<Outbox, SiteError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| SiteError::Failed(format!("creating {}: {e}", state_dir.display())))?;
    let path = state_dir.join(outbox::FILE_NAME);
    Outbox::open(&path)
        .map_err(|e| SiteError::Failed(format!("the outbox {}: {e}", path.display())))
}

/// The relay's backlog: from a daemon that relays (it owns the outbox),
/// else from the outbox in `state_dir`.
///
/// # Errors
/// The outbox cannot be opened.
pub async fn backlog(
    state_dir: &Path,
    sockets: &[PathBuf],
) -> Result<(usize, Option<Duration>), SiteError> {
    if let Ok(Some((_, relay))) = relaying_daemon(sockets).await {
        return Ok((
            usize::try_from(relay.backlog).unwrap_or(usize::MAX),
            relay.oldest_unsent_ms.map(Duration::from_millis),
        ));
    }
    let outbox = open_outbox(state_dir)?;
    let stats = outbox.stats(SystemTime::now());
    outbox.close().await;
    Ok((stats.backlog, stats.oldest_pending_age))
}
