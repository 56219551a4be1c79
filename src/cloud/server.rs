//! `handoff cloud serve`: the relay protocol's server.
//!
//! TLS 1.3 with mutual authentication: a daemon shows the identity
//! `handoff cloud enroll` issued, and the account its certificate names is
//! who every event acts for. Then, per connection (proto/relay.cddl):
//! hello → hello-ack; events and status queries in any order. Events that
//! arrive together are applied in one store transaction (one fsync for
//! the lot) and acknowledged in order, each only after that commit.
//!
//! Bad input closes that connection, never another: an oversized prefix,
//! a frame that does not decode, anything before hello, or a peer that
//! stalls the handshake gets an error frame (when the TLS session is up)
//! and the connection ends. An unknown message kind gets an error frame
//! and the connection goes on.
//!
//! Revocation (`handoff cloud daemon revoke`): right after the TLS
//! handshake, before a frame is read, a store transaction checks that the
//! certificate's site name is not revoked (and records the contact); a
//! revoked one gets a `revoked` error frame in place of hello-ack, and the
//! connection ends. It is checked there rather than in rustls's
//! client-certificate verifier because that verifier is synchronous and
//! the store (PostgreSQL) is not: a lookup there would stall the runtime
//! thread in every handshake. An open connection ends with the same frame
//! once the poll of [`super::revocations`] sees its name revoked; batches
//! it sent before are applied and stay applied.
//!
//! Connections are bounded: past
//! `max_connections` the server stops accepting until one ends, so a flood
//! waits in the kernel's backlog instead of eating memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::authority::names_of;
use super::model::AccountId;
use super::revocations::{Connected, Revocations};
use super::store::{CloudStore, Reply};
use super::{CloudError, now};
use crate::proto::{
    ErrorFrame, FrameConnection, FrameIoError, HelloAck, PROTOCOL_VERSION, ProtoError, RelayEvent,
    RelayMessage, error_code,
};
use crate::shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};

/// Limits of the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a TLS handshake and the hello may take.
    pub handshake_timeout: Duration,
    /// A connection with nothing to say for this long is closed.
    pub idle_timeout: Duration,
    /// Most events applied in one transaction.
    pub max_batch: usize,
    /// How often the store is read for revoked daemons, whose open
    /// connections are then closed.
    pub revocation_poll: Duration,
    /// How often the store records that the connected daemons are still
    /// there (their last contact).
    pub seen_every: Duration,
    /// Where events, batches, connections and handshake failures are
    /// counted (shared with the portal and the `--metrics` listener).
    pub metrics: Arc<super::metrics::CloudMetrics>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_batch: 1024,
            revocation_poll: Duration::from_millis(500),
            seen_every: Duration::from_secs(60),
            metrics: Arc::default(),
        }
    }
}

/// Serves `listener` until `shutdown` fires; connections in flight
/// finish their current batch and close.
///
/// # Errors
/// [`CloudError::Io`] if accepting fails for good.
pub async fn serve(
    listener: TcpListener,
    store: Arc<CloudStore>,
    tls: Arc<ServerConfig>,
    options: ServerOptions,
    mut shutdown: Shutdown,
) -> Result<(), CloudError> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let revocations = Revocations::start(
        store.clone(),
        options.revocation_poll,
        options.seen_every,
        shutdown.clone(),
    );
    let options = Arc::new(options);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(()),
            },
            () = shutdown.wait() => return Ok(()),
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.wait() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let store = store.clone();
        let options = options.clone();
        let shutdown = shutdown.clone();
        let revocations = revocations.clone();
        tokio::spawn(async move {
            let served = connection(tcp, peer, acceptor, store, &revocations, &options, shutdown);
            if let Err(reason) = served.await {
                tracing::info!(%peer, %reason, "relay connection closed");
            }
            drop(permit);
        });
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    store: Arc<CloudStore>,
    revocations: &Revocations,
    options: &ServerOptions,
    shutdown: Shutdown,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let failed = |reason| options.metrics.tls_handshake_failed(reason);
    let tls = tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp))
        .await
        .inspect_err(|_| failed("timeout"))
        .map_err(|_| "the TLS handshake took too long".to_string())?
        .inspect_err(|e| failed(super::metrics::handshake_failure_reason(e)))
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let (site, account) = {
        let (_, session) = tls.get_ref();
        let cert = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or("no client certificate")?;
        let (site, account) =
            names_of(cert.as_ref()).ok_or("the client certificate names no site or account")?;
        (site, account)
    };
    let connected = match revocations.admit(&store, &site).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(())) => {
            tracing::warn!(%peer, %site, %account, "a revoked daemon was refused");
            // Refused right after the handshake: counted with the
            // handshakes that failed, as `revoked`.
            failed("revoked");
            return refuse_before_hello(tls, options, error_code::REVOKED, revoked_reason(&site))
                .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot check whether a daemon is revoked");
            let reason = format!("the cloud cannot read its store: {e}");
            return refuse_before_hello(tls, options, error_code::INTERNAL, reason).await;
        }
    };
    tracing::info!(%peer, %site, %account, "daemon connected");
    let _counted = options.metrics.daemon_connected();
    Session {
        conn: FrameConnection::new(tls),
        store,
        account,
        site: Some(site),
        options,
        shutdown,
        revoked: Some(connected),
    }
    .run()
    .await
}

fn revoked_reason(site: &str) -> String {
    format!(
        "the cloud's operator revoked this site box's identity ('{site}'): it is refused from \
         now on; enroll the site box again under another name"
    )
}

/// Reads the daemon's hello (so that the answer is not lost to a reset
/// of a connection closed with unread data), answers it with an error
/// frame and ends the connection. Nothing it sent is applied.
async fn refuse_before_hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    options: &ServerOptions,
    code: &str,
    reason: String,
) -> Result<(), String> {
    let mut conn = FrameConnection::<S>::new(stream);
    let _ =
        tokio::time::timeout(options.handshake_timeout, conn.read_frame::<RelayMessage>()).await;
    let error = RelayMessage::Error(ErrorFrame {
        code: code.into(),
        reason: reason.clone(),
        id: None,
        query: None,
    });
    if conn.queue_frame(&error).is_ok() {
        let _ = conn.flush_frames().await;
    }
    let _ = conn.shutdown().await;
    Err(reason)
}

/// Serves one already-authenticated connection (any byte stream) for
/// `account`: the protocol after the TLS handshake. The TLS server uses
/// it per connection; benchmarks and tests use it over in-memory pipes.
///
/// # Errors
/// Why the connection ended, for the log.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    store: Arc<CloudStore>,
    account: AccountId,
    options: &ServerOptions,
    shutdown: Shutdown,
) -> Result<(), String> {
    Session {
        conn: FrameConnection::new(stream),
        store,
        account,
        site: None,
        options,
        shutdown,
        revoked: None,
    }
    .run()
    .await
}

struct Session<'a, S> {
    conn: FrameConnection<S>,
    store: Arc<CloudStore>,
    account: AccountId,
    /// The site name its certificate carries, when it came through the
    /// TLS server: who relayed, for the processors' reports.
    site: Option<String>,
    options: &'a ServerOptions,
    shutdown: Shutdown,
    /// The daemon's admission, when it came through the TLS server.
    revoked: Option<Connected>,
}

/// Resolves when the connection's daemon is revoked; never without one.
async fn revocation(connected: &mut Option<Connected>) -> String {
    match connected {
        Some(c) => {
            c.revoked().await;
            revoked_reason(c.name())
        }
        None => std::future::pending().await,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    async fn run(mut self) -> Result<(), String> {
        // Hello first.
        let first = tokio::time::timeout(self.options.handshake_timeout, self.read_message())
            .await
            .map_err(|_| "no hello in time".to_string())??;
        let Some(first) = first else {
            return Ok(());
        };
        match first {
            RelayMessage::Hello(hello) if hello.versions.contains(&PROTOCOL_VERSION) => {
                self.send(&[RelayMessage::HelloAck(HelloAck {
                    version: PROTOCOL_VERSION,
                })])
                .await?;
            }
            RelayMessage::Hello(hello) => {
                return self
                    .close_with(
                        error_code::UNSUPPORTED_VERSION,
                        format!(
                            "this cloud speaks relay version {PROTOCOL_VERSION}, the daemon {:?}",
                            hello.versions
                        ),
                    )
                    .await;
            }
            other => {
                return self
                    .close_with(
                        error_code::HELLO_FIRST,
                        format!("\"{}\" before hello", other.kind()),
                    )
                    .await;
            }
        }
        let mut shutdown = self.shutdown.clone();
        let mut revoked = self.revoked.take();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(self.options.idle_timeout, self.read_message()) => next,
                () = shutdown.wait() => return Ok(()),
                reason = revocation(&mut revoked) => {
                    return self.close_with(error_code::REVOKED, reason).await;
                }
            };
            let message = match next {
                Err(_) => return Err("idle for too long".into()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(message))) => message,
            };
            // Gather the events already buffered behind this one, so that
            // they share a transaction.
            let mut events = Vec::new();
            let mut after = None;
            match message {
                RelayMessage::Event(event) => events.push(event),
                other => after = Some(other),
            }
            while after.is_none() && events.len() < self.options.max_batch {
                match self.conn.try_read_frame() {
                    Ok(Some(RelayMessage::Event(event))) => events.push(event),
                    Ok(Some(other)) => after = Some(other),
                    Ok(None) => break,
                    // Nothing after an oversized prefix is a frame: apply
                    // what came before it, then close.
                    Err(e) if e.is_fatal() => {
                        self.apply(events).await?;
                        return self.refuse_frame(&e).await;
                    }
                    Err(e) => {
                        self.refuse_frame(&e).await?;
                        return Err(e.to_string());
                    }
                }
            }
            self.apply(events).await?;
            if let Some(message) = after {
                self.answer(message).await?;
            }
        }
    }

    async fn apply(&mut self, events: Vec<RelayEvent>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let account = self.account.clone();
        let site = self.site.clone();
        let batch = events.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            store.relay_from(&account, site.as_deref(), &batch, now())
        })
        .await;
        if let Ok(Ok(replies)) = &result {
            self.options.metrics.batch(events.len(), started.elapsed());
            for reply in replies {
                if let Reply::Ack(ack) = reply {
                    self.options.metrics.event(&ack.outcome);
                }
            }
        }
        let replies: Vec<RelayMessage> = match result {
            Ok(Ok(replies)) => replies
                .into_iter()
                .map(|reply| match reply {
                    Reply::Ack(ack) => RelayMessage::Ack(ack),
                    Reply::Error(e) => RelayMessage::Error(e),
                })
                .collect(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot apply relayed events");
                // Nothing of the batch was applied; the daemon resends it.
                let code = match e {
                    CloudError::Busy { .. } => error_code::BUSY,
                    _ => error_code::INTERNAL,
                };
                events
                    .iter()
                    .map(|event| {
                        RelayMessage::Error(ErrorFrame {
                            code: code.into(),
                            reason: format!("the cloud could not store the event: {e}"),
                            id: Some(event.id.clone()),
                            query: None,
                        })
                    })
                    .collect()
            }
            Err(e) => return Err(format!("the store task failed: {e}")),
        };
        self.send(&replies).await
    }

    async fn answer(&mut self, message: RelayMessage) -> Result<(), String> {
        let reply = match message {
            RelayMessage::StatusQuery(query) => {
                let store = self.store.clone();
                let account = self.account.clone();
                let result =
                    tokio::task::spawn_blocking(move || store.status(&account, &query, now()))
                        .await
                        .map_err(|e| format!("the store task failed: {e}"))?;
                match result {
                    Ok(Ok(status)) => RelayMessage::PlaceStatus(status),
                    Ok(Err(error)) => RelayMessage::Error(error),
                    Err(e) => RelayMessage::Error(ErrorFrame {
                        code: error_code::INTERNAL.into(),
                        reason: format!("the cloud could not read its store: {e}"),
                        id: None,
                        query: None,
                    }),
                }
            }
            RelayMessage::Unknown { kind } => RelayMessage::Error(ErrorFrame {
                code: error_code::UNKNOWN_KIND.into(),
                reason: format!("this cloud does not know the message kind \"{kind}\""),
                id: None,
                query: None,
            }),
            other => RelayMessage::Error(ErrorFrame {
                code: error_code::MALFORMED.into(),
                reason: format!("a daemon does not send \"{}\" to the cloud", other.kind()),
                id: None,
                query: None,
            }),
        };
        self.send(&[reply]).await
    }

    /// The next message; `None` when the daemon closed between frames.
    /// Bytes that are no frame get an error frame and end the connection.
    async fn read_message(&mut self) -> Result<Option<RelayMessage>, String> {
        match self.conn.read_frame().await {
            Ok(message) => Ok(message),
            Err(FrameIoError::Io(e)) => Err(format!("read failed: {e}")),
            Err(FrameIoError::Frame(ProtoError::Truncated { have, .. })) => Err(format!(
                "the daemon closed the connection in the middle of a frame ({have} bytes)"
            )),
            Err(FrameIoError::Frame(e)) if e.is_fatal() => {
                let _ = self.refuse_frame(&e).await;
                Err(e.to_string())
            }
            Err(FrameIoError::Frame(e)) => {
                self.refuse_frame(&e).await?;
                Err(e.to_string())
            }
        }
    }

    async fn refuse_frame(&mut self, e: &ProtoError) -> Result<(), String> {
        let frame = RelayMessage::Error(ErrorFrame::for_decode_error(e));
        self.send(&[frame]).await?;
        let _ = self.conn.shutdown().await;
        Err(e.to_string())
    }

    async fn close_with(&mut self, code: &str, reason: String) -> Result<(), String> {
        self.send(&[RelayMessage::Error(ErrorFrame {
            code: code.into(),
            reason: reason.clone(),
            id: None,
            query: None,
        })])
        .await?;
        let _ = self.conn.shutdown().await;
        Err(reason)
    }

    async fn send(&mut self, messages: &[RelayMessage]) -> Result<(), String> {
        for message in messages {
            self.conn.queue_frame(message).map_err(|e| e.to_string())?;
        }
        self.conn
            .flush_frames()
            .await
            .map_err(|e| format!("write failed: {e}"))
    }
}

/// A running server on its own task: for tests, the demo and `cloud serve`.
#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), CloudError>>,
}

impl RunningServer {
    /// Binds `listen` and serves `store` with a fresh certificate from the
    /// cloud CA in `data_dir`.
    ///
    /// # Errors
    /// [`CloudError`] when the CA, the TLS configuration or the socket
    /// fails.
    pub async fn start(
        data_dir: &std::path::Path,
        store: Arc<CloudStore>,
        listen: SocketAddr,
        options: ServerOptions,
    ) -> Result<RunningServer, CloudError> {
        let authority = super::authority::CloudAuthority::load_or_create(data_dir)?;
        let identity = authority.server_identity()?;
        let tls = crate::tls::cloud_server_config(&identity, authority.certificate_pem())?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(CloudError::io(format!("listening on {listen}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(CloudError::io("reading the listening address"))?;
        let (stop, stopped) = shutdown_channel();
        let task = tokio::spawn(serve(listener, store, tls, options, stopped));
        Ok(RunningServer {
            local_addr,
            stop,
            task,
        })
    }

    /// Stops accepting, lets connections finish their batch, and waits.
    pub async fn stop(self) {
        self.stop.fire();
        let _ = self.task.await;
    }
}
