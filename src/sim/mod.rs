//! The simulated processor: for now, its mDNS advertisement. One mDNS
//! responder serves the whole fleet, each processor with its own host name
//! and its own address in 127.0.0.0/8, as separate processors on a LAN would.

mod fleet;

use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo, TxtProperty};

pub use fleet::{FleetError, FleetSpec, SERVICE_TYPE, SRV_PORT, SimProcessor, build_fleet};

use crate::discovery::restrict_interfaces;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Lan(#[from] crate::lan::LanError),
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error(
        "refusing to advertise simulated processors here: this network namespace has {0}; \
         multicast would reach a real LAN. Run inside a private network \
         (../shared/bin/lan handoff sim …), or pass --really-advertise"
    )]
    NotPrivate(String),
}

/// A fleet being advertised. Dropping it without [`Advertiser::stop`]
/// vanishes silently, like a processor that loses power.
pub struct Advertiser {
    daemon: ServiceDaemon,
    fullnames: Vec<String>,
}

impl Advertiser {
    /// Registers every processor of the fleet on the given interfaces.
    ///
    /// `probe` runs RFC 6762 probing first, as real responders do (about a
    /// second before the first announcement); tests that are not about
    /// probing turn it off.
    pub fn start(
        fleet: &[SimProcessor],
        interfaces: &[String],
        probe: bool,
    ) -> Result<Advertiser, SimError> {
        let daemon = ServiceDaemon::new()?;
        restrict_interfaces(&daemon, interfaces)?;
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
        Ok(Advertiser { daemon, fullnames })
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
