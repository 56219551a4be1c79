//! The simulated processor: its mDNS advertisement, its pairing port with
//! a virtual button ([`pairing_server`]) and its main port
//! ([`main_server`]). One mDNS responder serves the whole fleet, each
//! processor with its own host name and its own address in 127.0.0.0/8, as
//! separate processors on a LAN would; [`FleetServers`] runs every
//! processor's two TLS ports on that address, and [`ControlSocket`] lets
//! `handoff sim press` reach their buttons.

mod control;
mod fleet;
mod generated_house;
pub mod house;
mod house_routes;
#[cfg(test)]
mod house_vectors;
pub mod legacy;
pub mod live_house;
pub mod main_routes;
pub mod main_server;
pub mod pairing_server;
mod servers;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, ServiceDaemon, ServiceInfo, TxtProperty};

pub use control::{
    Buttons, CONTROL_SOCKET, ControlError, ControlSocket, house, press, press_from_terminal,
    press_keypad, set_occupancy,
};
pub use fleet::{FleetError, FleetSpec, SERVICE_TYPE, SRV_PORT, SimProcessor, build_fleet};
pub use house::{House, HouseError, house_text};
pub use legacy::{LegacyError, LegacyResponder};
pub use live_house::{HouseSlot, LiveHouse};
pub use pairing_server::{PairingPort, PairingPortOptions};
pub use servers::{
    Fault, FleetServers, MAIN_PORT, MAX_CONNECTIONS_PER_PORT, PAIRING_PORT, ServerError,
    ServerOptions,
};

use crate::discovery::restrict_interfaces;
use crate::processor::ServiceRecord;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Lan(#[from] crate::lan::LanError),
    #[error(transparent)]
    Servers(#[from] ServerError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("the simulator's pairing authority: {0}")]
    Authority(#[from] crate::identity::IdentityError),
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    #[error(
        "refusing to advertise simulated processors here: this network namespace has {0}; \
         multicast would reach a real LAN. Run inside a private network \
         (handoff lan -- handoff sim …), or pass --really-advertise"
    )]
    NotPrivate(String),
    #[error(
        "{pending} of {total} simulated processors were not announced within {waited:?} (mDNS probing did not finish)"
    )]
    NotAnnounced {
        pending: usize,
        total: usize,
        waited: Duration,
    },
}

/// How long probing may take before [`Advertiser::start`] gives up: about
/// a second is normal; a big fleet on a busy machine takes longer.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fleet being advertised. Dropping it without [`Advertiser::stop`]
/// vanishes silently, like a processor that loses power.
pub struct Advertiser {
    daemon: ServiceDaemon,
    /// The names registered, as given (mdns-sd keys its services by them
    /// even after probing renamed one).
    fullnames: Vec<String>,
    records: Vec<ServiceRecord>,
    /// Answers legacy queries from each processor's own address (see
    /// [`legacy`]); stops with the advertiser.
    _legacy: LegacyResponder,
}

impl Advertiser {
    /// Registers every processor of the fleet on the given interfaces.
    ///
    /// `probe` runs RFC 6762 probing first, as real responders do (about a
    /// second before the first announcement); tests that are not about
    /// probing turn it off. With probing, this returns once every processor
    /// is announced, under the name probing left it (a name another
    /// responder holds gets ` (2)`): see [`Advertiser::records`].
    ///
    /// Legacy queries (RFC 6762 §6.7) are answered by [`LegacyResponder`],
    /// from each processor's own address, not by mdns-sd: call it within
    /// a tokio runtime.
    ///
    /// # Errors
    /// [`SimError::Mdns`] when the mDNS daemon fails;
    /// [`SimError::NotAnnounced`] when probing does not finish in time;
    /// [`SimError::Legacy`] when a processor's port 5353 cannot be bound.
    pub fn start(
        fleet: &[SimProcessor],
        interfaces: &[String],
        probe: bool,
    ) -> Result<Advertiser, SimError> {
        let filter = legacy::MdnsSocketsFilter::before()?;
        let daemon = ServiceDaemon::new()?;
        restrict_interfaces(&daemon, interfaces)?;
        // Its sockets are open once its thread answers.
        let _ = daemon.status()?.recv_timeout(Duration::from_secs(5));
        match filter.apply() {
            Ok(0) => tracing::warn!(
                "mDNS's socket not found: legacy queries are also answered from the interface's address"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{e}: legacy queries are also answered from the interface's address")
            }
        }
        let announcements = if probe {
            Some(watch_announcements(&daemon)?)
        } else {
            None
        };
        let mut fullnames = Vec::with_capacity(fleet.len());
        for p in fleet {
            let props: Vec<TxtProperty> = p
                .txt()
                .into_iter()
                .map(|e| TxtProperty::from((e.key, e.value.unwrap_or_default())))
                .collect();
            let mut info = ServiceInfo::new(
                SERVICE_TYPE,
                &p.instance,
                &p.host_name(),
                std::net::IpAddr::V4(p.address),
                SRV_PORT,
                props,
            )?;
            info.set_requires_probe(probe);
            fullnames.push(info.get_fullname().to_string());
            register_with_backpressure(&daemon, info)?;
        }
        let mut records: Vec<ServiceRecord> = fleet.iter().map(SimProcessor::record).collect();
        if let Some(events) = announcements {
            let renamed = wait_announced(&events, &fullnames, ANNOUNCE_TIMEOUT)?;
            for record in &mut records {
                if let Some(new) = renamed.get(&record.fullname.to_lowercase()) {
                    record.fullname = new.clone();
                }
                // Two processors with one serial: the second host is
                // `Lutron-<id>-2.local.`, and discovery will say so.
                if let Some(new) = renamed.get(&record.host.to_lowercase()) {
                    record.host = new.clone();
                }
            }
        }
        let legacy = LegacyResponder::start(
            records.iter().cloned().zip(fleet.iter().map(|p| p.address)),
            interfaces,
        );
        let legacy = match legacy {
            Ok(legacy) => legacy,
            Err(e) => {
                let _ = daemon.shutdown();
                return Err(e.into());
            }
        };
        Ok(Advertiser {
            daemon,
            fullnames,
            records,
            _legacy: legacy,
        })
    }

    /// What each processor of the fleet is advertised as, in fleet order,
    /// with the instance name it holds on the network.
    pub fn records(&self) -> &[ServiceRecord] {
        &self.records
    }

    /// Says goodbye (TTL 0 records) for every processor, then stops.
    pub fn stop(self, timeout: Duration) {
        let mut pending = Vec::new();
        for name in &self.fullnames {
            loop {
                match self.daemon.unregister(name) {
                    Ok(rx) => {
                        pending.push(rx);
                        break;
                    }
                    Err(mdns_sd::Error::Again) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => {
                        tracing::warn!("goodbye for {name} not sent: {e}");
                        break;
                    }
                }
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        for rx in pending {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let _ = rx.recv_timeout(left);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }

    /// Stops without goodbyes, as a processor that loses power does.
    pub fn vanish(self) {
        let _ = self.daemon.shutdown();
    }
}

/// The daemon's events, drained by a thread: mdns-sd drops events when a
/// monitor's 100-event channel is full, and registering a big fleet makes
/// more than that.
fn watch_announcements(
    daemon: &ServiceDaemon,
) -> Result<std::sync::mpsc::Receiver<DaemonEvent>, SimError> {
    let monitor = daemon.monitor()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(ev) = monitor.recv() {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Waits until every registered service is announced; returns each name
/// (instance or host) that probing changed, by its lowercase original.
fn wait_announced(
    events: &std::sync::mpsc::Receiver<DaemonEvent>,
    registered: &[String],
    timeout: Duration,
) -> Result<HashMap<String, String>, SimError> {
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut announced: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + timeout;
    loop {
        let pending = registered
            .iter()
            .filter(|name| {
                let name = name.to_lowercase();
                let now = renamed.get(&name).map(|n| n.to_lowercase()).unwrap_or(name);
                !announced.contains(&now)
            })
            .count();
        if pending == 0 {
            return Ok(renamed);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(DaemonEvent::NameChange(change)) => {
                if change.original.to_lowercase().starts_with("lutron-") {
                    // The host name is the serial's: another processor
                    // here has this one's serial.
                    tracing::warn!(
                        "another processor on this network already has the host name {} (the \
                         same serial: two simulators started with the same --seed?); advertising \
                         as {}, and clients will see one processor at two addresses",
                        change.original,
                        change.new_name
                    );
                } else {
                    tracing::info!(
                        "{} is taken; advertising as {}",
                        change.original,
                        change.new_name
                    );
                }
                renamed.insert(change.original.to_lowercase(), change.new_name);
            }
            Ok(DaemonEvent::Announce(fullname, _)) => {
                announced.insert(fullname.to_lowercase());
            }
            Ok(_) => {}
            Err(_) => {
                return Err(SimError::NotAnnounced {
                    pending,
                    total: registered.len(),
                    waited: timeout,
                });
            }
        }
    }
}

/// mdns-sd's command queue holds 100 commands; a 1,000-processor fleet
/// waits for it to drain rather than failing.
fn register_with_backpressure(daemon: &ServiceDaemon, info: ServiceInfo) -> Result<(), SimError> {
    loop {
        match daemon.register(info.clone()) {
            Err(mdns_sd::Error::Again) => std::thread::sleep(Duration::from_millis(5)),
            other => return Ok(other?),
        }
    }
}

/// Refuses to go on unless this network namespace is private (see
/// [`crate::lan::is_private`]).
pub fn check_private_network() -> Result<(), SimError> {
    let all = crate::lan::interfaces()?;
    if crate::lan::is_private(&all) {
        return Ok(());
    }
    let why = match all.iter().find(|i| !i.loopback) {
        Some(i) => format!("interface {}", i.name),
        None => "a loopback without multicast".into(),
    };
    Err(SimError::NotPrivate(why))
}
