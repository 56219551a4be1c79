//! The TLS servers of a simulated fleet: each processor listens on its own
//! address, on the pairing port (8083) and the main port (8081), as
//! separate processors on a LAN would. All of 127.0.0.0/8 is local, so each
//! simulated processor can bind its own address.
//!
//! Identities: the fleet's pairing authority (kept under the state
//! directory, so clients can keep the exported pairing identity) issues
//! every processor's pairing-port certificate. Each processor has its own
//! CA, Caséta-style (`CN=SmartBridge<MAC>`), made at start: its name is
//! fixed by the MAC, but its key is fresh each run, so certificates issued
//! by an earlier run of the simulator do not open a later one's main port.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::SimProcessor;
use super::control::Buttons;
use super::house::House;
use super::live_house::HouseSlot;
use super::main_server::serve_main_connection_until;
use super::pairing_server::{PairingPort, PairingPortOptions};
use crate::identity::{
    CertificateAuthority, IdentityError, PairingAuthority, SimProcessorIdentity,
};
use crate::processor::Serial;
use crate::tls::{self, TlsError};

pub use crate::leap::{MAIN_PORT, PAIRING_PORT};

/// Connections each port of each processor serves at once; more wait in
/// the kernel's backlog.
pub const MAX_CONNECTIONS_PER_PORT: usize = 32;

/// Requests a main-port connection is answered under
/// [`Fault::DropsMidRead`]: the identity, the project, the areas, and a
/// few of the first area's.
const DROP_AFTER_REQUESTS: usize = 6;

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the fleet's servers could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("processor {serial}: {source}")]
    Identity {
        serial: Serial,
        source: IdentityError,
    },
    #[error("processor {serial}: {source}")]
    Tls { serial: Serial, source: TlsError },
    #[error("cannot listen on {addr}: {source} — {}", bind_hint(.source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no simulated processor has serial {0}")]
    UnknownProcessor(Serial),
}

/// What to do when a processor's address cannot be listened on: in use
/// (another simulator), or not this network's at all (a LAN address typed
/// for `--first-ip`).
fn bind_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrNotAvailable {
        "that address is not on this network: simulated processors use addresses of the \
         private network they run in (127.0.0.0/8 on its loopback, the default); pick one \
         with --first-ip"
    } else {
        "is another simulator running on these addresses? Use --first-ip to pick others"
    }
}

/// A way every processor of the fleet misbehaves, so that tests can show
/// what a client does with an impostor or a processor that changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// The pairing port answers with the pairing identity's own certificate
    /// and key (the exported client identity), as anyone holding that
    /// shared identity could.
    ImpostorPairing,
    /// The processor's CA names another MAC (`SmartBridge<MAC>` with the
    /// last byte flipped) than the one it advertises and reports.
    NamesOtherMac,
    /// The main port refuses every client certificate (TLS alert 42), as a
    /// processor whose pairings were removed refuses the credentials it
    /// issued before; its own key and CA stay, so a client's pin still
    /// matches. New pairings are refused on the main port too.
    ForgetsClients,
    /// The main port closes each connection after answering a few
    /// requests (6), as a processor that reboots or loses its link in the
    /// middle of a client's read.
    DropsMidRead,
    /// The advertisement carries control characters (ESC, BEL, newline) in
    /// its instance name, its host name and a TXT key, as a hostile device
    /// on the LAN could, to rewrite a terminal or forge log lines.
    HostileNames,
}

/// How the fleet's servers behave.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Press each processor's button this long after a client starts
    /// waiting on its pairing port.
    pub auto_press: Option<Duration>,
    /// How long a press keeps the window open (`None`: 180 s).
    pub button_window: Option<Duration>,
    /// Where each processor keeps its CA and main-port identity across
    /// runs (`None`: new ones every run, as after a factory reset).
    pub state_dir: Option<std::path::PathBuf>,
    /// Every processor's house (`--house FILE`); `None`: each its own,
    /// generated from its serial.
    pub house: Option<Arc<House>>,
    /// Misbehave as this (`None`: as a real processor).
    pub fault: Option<Fault>,
}

/// One processor's running ports.
struct ProcessorPorts {
    processor: SimProcessor,
    pairing: PairingPort,
    house: Arc<HouseSlot>,
}

/// The running servers of a fleet. Dropping it stops them.
pub struct FleetServers {
    ports: Vec<ProcessorPorts>,
    tasks: JoinSet<()>,
}

impl FleetServers {
    /// Binds both ports of every processor and starts serving.
    ///
    /// # Errors
    /// [`ServerError::Bind`] if an address is taken; [`ServerError::Identity`]
    /// / [`ServerError::Tls`] if a certificate cannot be made.
    pub async fn start(
        fleet: &[SimProcessor],
        authority: &PairingAuthority,
        options: ServerOptions,
    ) -> Result<FleetServers, ServerError> {
        FleetServers::start_with_progress(fleet, authority, options, |_| {}).await
    }

    /// [`FleetServers::start`], calling `progress` with the number of
    /// processors ready after each one (a large fleet takes a while: each
    /// processor's keys are made on its first run).
    ///
    /// # Errors
    /// As [`FleetServers::start`].
    pub async fn start_with_progress(
        fleet: &[SimProcessor],
        authority: &PairingAuthority,
        options: ServerOptions,
        mut progress: impl FnMut(usize),
    ) -> Result<FleetServers, ServerError> {
        let mut servers = FleetServers {
            ports: Vec::with_capacity(fleet.len()),
            tasks: JoinSet::new(),
        };
        let authority_pem = authority.authority().certificate_pem().to_owned();
        for p in fleet {
            let serial = p.serial;
            let identity = |source| ServerError::Identity { serial, source };
            let tls_error = |source| ServerError::Tls { serial, source };
            let name = p.host_name();
            let mut ca_mac = p.mac;
            if options.fault == Some(Fault::NamesOtherMac) {
                ca_mac.0[5] ^= 1;
            }
            let (ca, main_identity) = match &options.state_dir {
                Some(dir) => {
                    let kept = SimProcessorIdentity::load_or_create(dir, p.serial, ca_mac, &name)
                        .map_err(identity)?;
                    (kept.ca, kept.main)
                }
                None => {
                    let ca = CertificateAuthority::processor_ca(ca_mac).map_err(identity)?;
                    let key = crate::identity::PrivateKey::generate(
                        crate::identity::KeyAlgorithm::EcdsaP256,
                    )
                    .map_err(identity)?;
                    let main = ca.issue(&name, key).map_err(identity)?;
                    (ca, main)
                }
            };
            let ca = Arc::new(ca);
            let pairing_identity = match options.fault {
                Some(Fault::ImpostorPairing) => authority.client_copy().map_err(identity)?,
                _ => authority.issue_server_identity(&name).map_err(identity)?,
            };
            let pairing_tls =
                tls::pairing_server_config(&pairing_identity, &authority_pem).map_err(tls_error)?;
            let main_tls = match options.fault {
                Some(Fault::ForgetsClients) => {
                    // Clients must chain to a CA that signed none of them.
                    let other = CertificateAuthority::processor_ca(ca_mac).map_err(identity)?;
                    tls::main_server_config(&main_identity, other.certificate_pem())
                }
                _ => tls::main_server_config(&main_identity, ca.certificate_pem()),
            }
            .map_err(tls_error)?;

            let ip = IpAddr::V4(p.address);
            let pairing_listener = bind(SocketAddr::new(ip, PAIRING_PORT)).await?;
            let main_listener = bind(SocketAddr::new(ip, MAIN_PORT)).await?;

            let pairing = PairingPort::start(
                p.clone(),
                ca.clone(),
                PairingPortOptions {
                    auto_press: options.auto_press,
                    button_window: options.button_window,
                },
                &mut servers.tasks,
            );
            let port = pairing.clone();
            let processor = Arc::new(p.clone());
            let house = Arc::new(HouseSlot::new(p.clone(), options.house.clone()));
            let main_house = house.clone();
            let requests =
                (options.fault == Some(Fault::DropsMidRead)).then_some(DROP_AFTER_REQUESTS);
            servers.tasks.spawn(accept_loop(
                pairing_listener,
                TlsAcceptor::from(pairing_tls),
                processor.clone(),
                move |stream, _processor| {
                    let port = port.clone();
                    async move { port.serve(stream).await }
                },
            ));
            servers.tasks.spawn(accept_loop(
                main_listener,
                TlsAcceptor::from(main_tls),
                processor,
                move |stream, processor| {
                    let house = main_house.clone();
                    async move {
                        serve_main_connection_until(stream, &processor, house.live(), requests)
                            .await;
                    }
                },
            ));
            servers.ports.push(ProcessorPorts {
                processor: p.clone(),
                pairing,
                house,
            });
            progress(servers.ports.len());
        }
        Ok(servers)
    }

    /// Presses the button of the processor with this serial.
    ///
    /// # Errors
    /// [`ServerError::UnknownProcessor`] if the fleet has none.
    pub fn press(&self, serial: Serial) -> Result<(), ServerError> {
        let port = self
            .ports
            .iter()
            .find(|p| p.processor.serial == serial)
            .ok_or(ServerError::UnknownProcessor(serial))?;
        port.pairing.press();
        Ok(())
    }

    /// Presses every processor's button.
    pub fn press_all(&self) {
        for port in &self.ports {
            port.pairing.press();
        }
    }

    /// The fleet's buttons, for the control socket.
    pub fn buttons(&self) -> Buttons {
        Buttons::new(
            self.ports
                .iter()
                .map(|p| (p.processor.clone(), p.pairing.clone(), p.house.clone()))
                .collect(),
        )
    }

    /// Stops every listener and connection.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Accepts connections, at most [`MAX_CONNECTIONS_PER_PORT`] at once, each
/// in its own task after its TLS handshake. A failing connection is
/// logged and ends alone; accept errors (out of descriptors…) back off.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    processor: Arc<SimProcessor>,
    serve: F,
) where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>, Arc<SimProcessor>) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_PORT));
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                // Frames are small and each its own write: no Nagle delay.
                let _ = accepted.0.set_nodelay(true);
                accepted
            }
            Err(e) => {
                tracing::warn!(
                    id = %processor.serial.id(), serial = %processor.serial, mac = %processor.mac, port,
                    "accept failed: {e}; retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let processor = processor.clone();
        let serve = serve.clone();
        // The handshake runs in the connection's task, so a slow client
        // does not hold up the next one.
        connections.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve(stream, processor).await,
                Ok(Err(e)) => tracing::info!(
                    id = %processor.serial.id(), serial = %processor.serial, mac = %processor.mac, port, %peer,
                    "TLS handshake failed: {e}"
                ),
                Err(_) => tracing::info!(
                    id = %processor.serial.id(), serial = %processor.serial, mac = %processor.mac, port, %peer,
                    "TLS handshake timed out"
                ),
            }
        });
    }
}
