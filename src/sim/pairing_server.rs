//! A simulated processor's pairing port (8083): the tokio driver of
//! [`PairingServer`]. One actor task per processor owns the state machine,
//! its timers and the virtual button; each connection's task only moves
//! frames between its TLS stream and the actor. Signing runs on the
//! blocking pool, since an RSA CSR takes milliseconds to verify.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::SimProcessor;
use crate::identity::{CertificateAuthority, sign_client_csr};
use crate::leap::codec::{CodecError, JsonObject};
use crate::leap::connection::{Connection, ConnectionError};
use crate::leap::message::PairingFrame;
use crate::leap::pairing::{
    CloseReason, ConnectionId, PairingServer, PairingServerConfig, ServerAction, ServerEvent,
    SignRequest, SignedCertificate,
};

/// How a pairing port behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairingPortOptions {
    /// Press the button this long after a client starts waiting.
    pub auto_press: Option<Duration>,
    /// How long a press keeps the window open (`None`: the default 180 s).
    pub button_window: Option<Duration>,
}

/// Why a pairing connection ended badly; logged, never fatal to the fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairingPortError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("the processor's pairing task has stopped")]
    Stopped,
}

/// What the actor hears.
enum Event {
    Connect {
        conn: ConnectionId,
        outbox: UnboundedSender<Outgoing>,
    },
    Frame {
        conn: ConnectionId,
        object: JsonObject,
    },
    Malformed {
        conn: ConnectionId,
        error: CodecError,
    },
    Closed {
        conn: ConnectionId,
    },
    Press,
    Signed {
        conn: ConnectionId,
        result: Result<SignedCertificate, String>,
    },
}

/// What a connection's task is told to do, in order.
enum Outgoing {
    Frame(PairingFrame),
    Close(CloseReason),
}

/// A handle on one processor's pairing port; cheap to clone.
#[derive(Clone)]
pub struct PairingPort {
    events: UnboundedSender<Event>,
    next_id: Arc<AtomicU64>,
    processor: Arc<SimProcessor>,
}

impl PairingPort {
    /// Starts the processor's pairing actor in `tasks`.
    pub fn start(
        processor: SimProcessor,
        ca: Arc<CertificateAuthority>,
        options: PairingPortOptions,
        tasks: &mut JoinSet<()>,
    ) -> PairingPort {
        let (events, inbox) = unbounded_channel();
        let mut config = PairingServerConfig::default();
        if let Some(window) = options.button_window {
            config.window = window;
        }
        let processor = Arc::new(processor);
        let actor = Actor {
            server: PairingServer::new(config),
            outboxes: HashMap::new(),
            press_at: None,
            auto_press: options.auto_press,
            ca,
            processor: processor.clone(),
            events: events.clone(),
        };
        tasks.spawn(actor.run(inbox));
        PairingPort {
            events,
            next_id: Arc::new(AtomicU64::new(1)),
            processor,
        }
    }

    /// Presses the processor's button.
    pub fn press(&self) {
        let _ = self.events.send(Event::Press);
    }

    /// Serves one TLS-authenticated connection until it ends; logs how it
    /// ended.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) {
        let conn = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = self.drive(conn, stream).await {
            tracing::info!(
                id = %self.processor.serial.id(), serial = %self.processor.serial, mac = %self.processor.mac, conn = conn.0,
                "pairing connection failed: {e}"
            );
        }
        let _ = self.events.send(Event::Closed { conn });
    }

    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: ConnectionId,
        stream: S,
    ) -> Result<(), PairingPortError> {
        let (outbox, mut orders) = unbounded_channel();
        self.events
            .send(Event::Connect { conn, outbox })
            .map_err(|_| PairingPortError::Stopped)?;
        let mut connection = Connection::new(stream);
        // After an oversized line nothing more can be read; the actor's
        // Close follows.
        let mut reading = true;
        loop {
            tokio::select! {
                read = connection.read_frame(), if reading => {
                    let event = match read {
                        Ok(Some(object)) => Event::Frame { conn, object },
                        Ok(None) => return Ok(()),
                        Err(ConnectionError::Codec(error)) => {
                            reading = !error.is_fatal();
                            Event::Malformed { conn, error }
                        }
                        Err(e) => return Err(e.into()),
                    };
                    self.events.send(event).map_err(|_| PairingPortError::Stopped)?;
                }
                order = orders.recv() => match order {
                    Some(Outgoing::Frame(frame)) => connection.write_frame(&frame).await?,
                    Some(Outgoing::Close(reason)) => {
                        tracing::debug!(
                            serial = %self.processor.serial, conn = conn.0,
                            "closing pairing connection: {reason:?}"
                        );
                        let _ = connection.shutdown().await;
                        return Ok(());
                    }
                    None => return Err(PairingPortError::Stopped),
                },
            }
        }
    }
}

/// Owns the state machine of one processor.
struct Actor {
    server: PairingServer,
    outboxes: HashMap<ConnectionId, UnboundedSender<Outgoing>>,
    /// When the auto-press fires.
    press_at: Option<Instant>,
    auto_press: Option<Duration>,
    ca: Arc<CertificateAuthority>,
    processor: Arc<SimProcessor>,
    /// For signing results to come back.
    events: UnboundedSender<Event>,
}

impl Actor {
    async fn run(mut self, mut inbox: UnboundedReceiver<Event>) {
        loop {
            let timer = self.server.poll_timeout().map(Instant::from_std);
            let deadline = match (timer, self.press_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let event = tokio::select! {
                event = inbox.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    let now = Instant::now();
                    let actions = if self.press_at.is_some_and(|t| t <= now) {
                        self.press_at = None;
                        tracing::info!(serial = %self.processor.serial, "auto-press");
                        self.server.press_button(now.into_std())
                    } else {
                        self.server.handle_timeout(now.into_std())
                    };
                    self.execute(actions);
                    continue;
                }
            };
            let actions = self.handle(event);
            self.execute(actions);
        }
    }

    fn handle(&mut self, event: Event) -> Vec<ServerAction> {
        let now = Instant::now();
        let std_now = now.into_std();
        match event {
            Event::Connect { conn, outbox } => {
                self.outboxes.insert(conn, outbox);
                if let Some(delay) = self.auto_press
                    && self.server.window_closes_at().is_none()
                    && self.server.in_flight().is_none()
                    && self.press_at.is_none()
                {
                    self.press_at = Some(now + delay);
                }
                self.server.handle_connect(std_now, conn)
            }
            Event::Frame { conn, object } => self.server.handle_frame(std_now, conn, object),
            Event::Malformed { conn, error } => self.server.handle_malformed(std_now, conn, &error),
            Event::Closed { conn } => {
                self.outboxes.remove(&conn);
                self.server.handle_close(std_now, conn)
            }
            Event::Press => self.server.press_button(std_now),
            Event::Signed { conn, result } => self.server.signing_done(std_now, conn, result),
        }
    }

    fn execute(&mut self, actions: Vec<ServerAction>) {
        for action in actions {
            match action {
                ServerAction::Send { conn, frame } => self.order(conn, Outgoing::Frame(frame)),
                ServerAction::Close { conn, reason } => self.order(conn, Outgoing::Close(reason)),
                ServerAction::Sign(request) => self.sign(request),
                ServerAction::Report(event) => self.report(event),
            }
        }
    }

    fn order(&self, conn: ConnectionId, order: Outgoing) {
        if let Some(outbox) = self.outboxes.get(&conn) {
            // A connection gone meanwhile reports Closed; nothing to do.
            let _ = outbox.send(order);
        }
    }

    fn sign(&self, request: SignRequest) {
        let ca = self.ca.clone();
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let result = sign_client_csr(&request.parameters.csr, &ca)
                .map(|certificate| SignedCertificate {
                    certificate,
                    root_certificate: ca.certificate_pem().to_owned(),
                })
                .map_err(|e| e.to_string());
            let _ = events.send(Event::Signed {
                conn: request.conn,
                result,
            });
        });
    }

    fn report(&self, event: ServerEvent) {
        let (id, serial, mac) = (
            self.processor.serial.id(),
            self.processor.serial,
            self.processor.mac,
        );
        match event {
            ServerEvent::WindowOpened { closes_at } => {
                let open_for = closes_at.saturating_duration_since(Instant::now().into_std());
                tracing::info!(%id, %serial, %mac, "button pressed; pairing open for {open_for:?}");
            }
            ServerEvent::WindowClosed(why) => {
                tracing::info!(%id, %serial, %mac, "pairing window closed: {why:?}");
            }
            ServerEvent::AttemptFailed {
                conn,
                failures,
                why,
            } => {
                tracing::info!(%id, %serial, %mac, conn = conn.0, failures, "pairing attempt failed: {why}");
            }
            ServerEvent::Paired { conn, display_name } => {
                tracing::info!(%id, %serial, %mac, conn = conn.0, "paired with '{display_name}'");
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{DuplexStream, duplex};

    use super::*;
    use crate::identity::{KeyAlgorithm, PrivateKey};
    use crate::leap::message::{CsrParameters, StatusCode};
    use crate::processor::{Mac, Serial, SystemType};

    fn processor() -> SimProcessor {
        SimProcessor {
            serial: Serial(12_345_678),
            mac: Mac([0x02, 0x4c, 0, 0xbc, 0x61, 0x4e]),
            address: std::net::Ipv4Addr::new(127, 0, 1, 1),
            system_type: SystemType::CasetaSmartBridge,
            instance: "Lutron Status".into(),
            hostile_names: false,
        }
    }

    fn start(
        auto_press: Option<Duration>,
    ) -> (PairingPort, Arc<CertificateAuthority>, JoinSet<()>) {
        let mut tasks = JoinSet::new();
        let ca = Arc::new(CertificateAuthority::processor_ca(processor().mac).unwrap());
        let options = PairingPortOptions {
            auto_press,
            button_window: None,
        };
        let port = PairingPort::start(processor(), ca.clone(), options, &mut tasks);
        (port, ca, tasks)
    }

    fn connect(port: &PairingPort) -> Connection<DuplexStream> {
        let (ours, theirs) = duplex(64 * 1024);
        let port = port.clone();
        tokio::spawn(async move { port.serve(theirs).await });
        Connection::new(ours)
    }

    fn csr_frame() -> PairingFrame {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let csr = key.csr_pem("test client").unwrap();
        PairingFrame::csr_request("get-cert", CsrParameters::admin(csr, "test client"))
    }

    async fn next(conn: &mut Connection<DuplexStream>) -> PairingFrame {
        let object = tokio::time::timeout(Duration::from_secs(5), conn.read_frame())
            .await
            .expect("a frame in time")
            .unwrap()
            .expect("a frame, not the end");
        PairingFrame::from_object(object).unwrap()
    }

    #[tokio::test]
    async fn a_press_grants_the_waiting_client_and_its_csr_is_signed_by_the_processor_ca() {
        let (port, ca, _tasks) = start(None);
        let mut conn = connect(&port);
        tokio::task::yield_now().await;
        port.press();
        assert!(next(&mut conn).await.is_physical_access());
        conn.write_frame(&csr_frame()).await.unwrap();
        let PairingFrame::SigningResult {
            certificate,
            root_certificate,
            ..
        } = next(&mut conn).await
        else {
            panic!("not a signing result")
        };
        assert_eq!(root_certificate, ca.certificate_pem());
        assert!(certificate.starts_with("-----BEGIN CERTIFICATE"));
        assert!(
            conn.read_frame().await.unwrap().is_none(),
            "closed after pairing"
        );
    }

    #[tokio::test]
    async fn a_csr_before_the_press_gets_401() {
        let (port, _ca, _tasks) = start(None);
        let mut conn = connect(&port);
        conn.write_frame(&csr_frame()).await.unwrap();
        let PairingFrame::Exception { status_code, .. } = next(&mut conn).await else {
            panic!("not an exception")
        };
        assert_eq!(status_code, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn auto_press_fires_after_the_delay_once_a_client_waits() {
        let (port, _ca, _tasks) = start(Some(Duration::from_millis(150)));
        let started = Instant::now();
        let mut conn = connect(&port);
        assert!(next(&mut conn).await.is_physical_access());
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
