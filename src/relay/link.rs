//! The daemon's side of the wire to the cloud: dial TCP, mutual TLS 1.3
//! with the enrolled identity, and what the commands do with it — relay
//! queued events now and wait a little for their answers, or ask the
//! status of a processor's Place.
//!
//! A link may name several nodes of one Place service. A connection goes
//! to the node that answered last; when it cannot be reached (TCP or TLS
//! fails), the next is tried, each once per attempt, and the one that
//! answers becomes the link's node for every later connection. Which node
//! applies an event does not matter: they share one database, and an
//! event id is applied once whichever node sees it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::address::{CloudAddress, CloudAddresses};
use super::{RelayConfig, RelayError, read_message, status_channel};
use crate::identity::daemon::DaemonIdentity;
use crate::outbox::Outbox;
use crate::proto::{
    Ack, ErrorFrame, EventId, FrameConnection, Hello, PROTOCOL_VERSION, PlaceStatus, RelayMessage,
    StatusQuery,
};
use crate::shutdown::shutdown_channel;

/// Where the cloud is and who we are to it. Clones share the node in use.
#[derive(Clone)]
pub struct CloudLink {
    addresses: Arc<CloudAddresses>,
    /// Index into `addresses` of the node that answered last.
    current: Arc<AtomicUsize>,
    pub site: String,
    pub account: String,
    config: Arc<ClientConfig>,
}

/// How long one node may take to accept TCP and finish TLS before the next
/// is tried, when there is a next: a node that drops packets must not use
/// up the caller's whole connect timeout.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

impl std::fmt::Debug for CloudLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudLink")
            .field("addresses", &self.addresses.to_string())
            .field("current", &self.address())
            .field("site", &self.site)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The default place of the enrolled identity bundle under the state
/// directory (the configuration's `[cloud] identity` default too).
pub const IDENTITY_DIR: &str = "cloud-identity";

impl CloudLink {
    /// Reads the identity bundle in `identity_dir`.
    ///
    /// # Errors
    /// A message naming the bundle and what to do.
    pub fn new(addresses: &CloudAddresses, identity_dir: &Path) -> Result<CloudLink, String> {
        let identity = DaemonIdentity::load(identity_dir).map_err(|e| {
            format!(
                "cannot use the cloud identity in {}: {e}",
                identity_dir.display()
            )
        })?;
        let config = crate::tls::cloud_client_config(&identity.identity, &identity.cloud_ca_pem)
            .map_err(|e| format!("the cloud identity in {}: {e}", identity_dir.display()))?;
        Ok(CloudLink {
            addresses: Arc::new(addresses.clone()),
            current: Arc::new(AtomicUsize::new(0)),
            site: identity.site,
            account: identity.account.as_str().to_owned(),
            config,
        })
    }

    /// From `--cloud` and `--cloud-identity` (default
    /// `STATE_DIR/cloud-identity`): `None` when no cloud is configured.
    ///
    /// # Errors
    /// As [`CloudLink::new`].
    pub fn from_flags(
        address: Option<&CloudAddresses>,
        identity_dir: Option<&Path>,
        state_dir: &Path,
    ) -> Result<Option<CloudLink>, String> {
        let Some(address) = address else {
            return Ok(None);
        };
        let dir: PathBuf =
            identity_dir.map_or_else(|| state_dir.join(IDENTITY_DIR), Path::to_owned);
        CloudLink::new(address, &dir).map(Some)
    }

    /// The node in use (`host:port`): the one that answered last, else
    /// the first. What messages name.
    pub fn address(&self) -> String {
        let list = self.addresses.as_slice();
        list[self.current.load(Ordering::Relaxed) % list.len()].to_string()
    }

    /// Every node, in the order given.
    pub fn addresses(&self) -> &CloudAddresses {
        &self.addresses
    }

    /// A connection with the TLS handshake done: to the node in use, else
    /// to the next that answers.
    ///
    /// # Errors
    /// The I/O or TLS failure; with several nodes, each node's, named.
    pub async fn connect(&self) -> io::Result<TlsStream<TcpStream>> {
        let list = self.addresses.as_slice();
        if let [only] = list {
            return self.connect_to(only).await;
        }
        let start = self.current.load(Ordering::Relaxed) % list.len();
        let mut failures = Vec::with_capacity(list.len());
        for step in 0..list.len() {
            let i = (start + step) % list.len();
            let node = &list[i];
            let attempt = tokio::time::timeout(NODE_CONNECT_TIMEOUT, self.connect_to(node)).await;
            match attempt {
                Ok(Ok(stream)) => {
                    if i != start {
                        tracing::warn!(
                            from = %list[start], to = %node,
                            "cloud node unreachable; failed over to the next"
                        );
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(stream);
                }
                Ok(Err(e)) => failures.push(format!("{node}: {e}")),
                Err(_) => failures.push(format!(
                    "{node}: no TLS session within {}s",
                    NODE_CONNECT_TIMEOUT.as_secs()
                )),
            }
        }
        Err(io::Error::other(format!(
            "no cloud node answered ({})",
            failures.join("; ")
        )))
    }

    async fn connect_to(&self, node: &CloudAddress) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((node.host.as_str(), node.port)).await?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(crate::tls::CLOUD_SERVER_NAME)
            .map_err(|e| io::Error::other(e.to_string()))?
            .to_owned();
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }

    /// A [`super::Connector`] for [`super::run`].
    pub fn connector(
        &self,
    ) -> impl FnMut() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = io::Result<TlsStream<TcpStream>>> + Send>,
    > + Send
    + 'static {
        let link = self.clone();
        move || {
            let link = link.clone();
            Box::pin(async move { link.connect().await })
        }
    }

    /// The Place status of the processor `serial` (else `mac`) names, as
    /// this link's account sees it; errors are sentences naming the cloud.
    ///
    /// # Errors
    /// Neither is known, the cloud does not know the processor, or it
    /// cannot be reached.
    pub async fn place_status(
        &self,
        serial: Option<crate::processor::Serial>,
        mac: Option<crate::processor::Mac>,
        limit: Duration,
    ) -> Result<PlaceStatus, String> {
        let query = match (serial, mac) {
            (Some(serial), _) => StatusQuery::BySerial { query: 1, serial },
            (None, Some(mac)) => StatusQuery::ByMac { query: 1, mac },
            (None, None) => return Err(NEITHER_SERIAL_NOR_MAC.into()),
        };
        match self.status(query, limit).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(error)) => Err(format!(
                "the cloud at {} does not know this processor: {}",
                self.address(),
                error.reason
            )),
            Err(e) => Err(format!("cannot ask the cloud at {}: {e}", self.addresses)),
        }
    }

    /// Asks the cloud the Place status of one processor.
    ///
    /// # Errors
    /// [`RelayError`] when the cloud cannot be reached or answers badly;
    /// `Ok(Err(frame))` when it answers with an error (e.g. an unknown
    /// processor).
    pub async fn status(
        &self,
        query: StatusQuery,
        limit: Duration,
    ) -> Result<Result<PlaceStatus, ErrorFrame>, RelayError> {
        tokio::time::timeout(limit, self.status_inner(query))
            .await
            .map_err(|_| RelayError::Timeout("asking the cloud"))?
    }

    async fn status_inner(
        &self,
        query: StatusQuery,
    ) -> Result<Result<PlaceStatus, ErrorFrame>, RelayError> {
        let stream = self
            .connect()
            .await
            .map_err(|e| RelayError::Connect(e.to_string()))?;
        let mut frames = FrameConnection::new(stream);
        frames
            .queue_frame(&RelayMessage::Hello(Hello {
                versions: vec![PROTOCOL_VERSION],
                software: Some(RelayConfig::default().software),
            }))
            .and_then(|()| frames.queue_frame(&RelayMessage::StatusQuery(query)))
            .map_err(RelayError::Encode)?;
        frames
            .flush_frames()
            .await
            .map_err(|e| RelayError::Io(e.to_string()))?;
        match read_message(&mut frames).await? {
            RelayMessage::HelloAck(_) => {}
            RelayMessage::Error(e) => return Err(RelayError::Handshake(e.reason)),
            other => {
                return Err(RelayError::Unexpected {
                    kind: other.kind().into(),
                });
            }
        }
        match read_message(&mut frames).await? {
            RelayMessage::PlaceStatus(status) => Ok(Ok(status)),
            RelayMessage::Error(e) => Ok(Err(e)),
            other => Err(RelayError::Unexpected {
                kind: other.kind().into(),
            }),
        }
    }
}

/// A processor the cloud cannot be asked about.
pub const NEITHER_SERIAL_NOR_MAC: &str =
    "the processor advertises neither a serial nor a MAC address";

/// Relays everything queued in `outbox` (oldest first) and waits up to
/// `wait` for the answers to `ids`. An id without an answer in time stays
/// queued: the daemon, or the next command, delivers it.
///
/// Returns each id's ack (if any) and the relay's last error (if the
/// cloud could not be reached).
pub async fn deliver_and_wait(
    outbox: &Outbox,
    link: &CloudLink,
    ids: &[EventId],
    wait: Duration,
) -> (Vec<Option<Ack>>, Option<String>) {
    let (stop, shutdown) = shutdown_channel();
    let (status, watch) = status_channel(outbox);
    let task = tokio::spawn(super::run(
        outbox.clone(),
        link.connector(),
        RelayConfig {
            connect_timeout: wait.min(Duration::from_secs(10)),
            claim_account: Some(link.account.clone()),
            ..RelayConfig::default()
        },
        shutdown,
        status,
    ));
    let mut acks = Vec::with_capacity(ids.len());
    let deadline = tokio::time::Instant::now() + wait;
    for id in ids {
        let ack = tokio::time::timeout_at(deadline, outbox.wait_outcome(id))
            .await
            .ok()
            .and_then(Result::ok);
        acks.push(ack);
    }
    stop.fire();
    let _ = task.await;
    let last_error = watch.borrow().last_error.clone();
    (acks, last_error)
}
