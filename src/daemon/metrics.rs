//! The site daemon's Prometheus metrics: one [`Registry`] per daemon,
//! read from the state the daemon keeps anyway, so that a scrape and
//! `handoff health --json` never disagree.
//!
//! | metric | type | source |
//! | --- | --- | --- |
//! | `handoff_processors{product}` | gauge | the live inventory (health's `processors` is their sum) |
//! | `handoff_discovery_events_total{change}` | counter | each added / changed / removed the inventory applied |
//! | `handoff_liveness_reverifications_total` | counter | names discovery asked again by themselves |
//! | `handoff_claims_total{outcome}` | counter | claims performed for control clients |
//! | `handoff_takeovers_total{outcome}` | counter | takeovers performed for control clients |
//! | `handoff_relay_backlog_events` | gauge | health's `relay.backlog` |
//! | `handoff_relay_oldest_unsent_seconds` | gauge | health's `relay.oldest-ms` (0 when nothing waits) |
//! | `handoff_relay_connected` | gauge | the relay's connection is up |
//! | `handoff_relayed_events_total{outcome}` | counter | acks from the cloud: applied, duplicate, refused |
//! | `handoff_relay_reconnects_total` | counter | connections lost or not made, each retried |
//!
//! The relay's metrics are present only while the daemon relays to a
//! cloud, as health's `relay` is. Counters start at zero with the process,
//! as Prometheus expects.

use std::fmt::Error as FmtError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{DaemonError, LiveInventory};
use crate::discovery::InventoryEvent;
use crate::metrics::MetricsListener;
use crate::proto::control::{ControlError, Done};
use crate::relay::RelayStatus;
use crate::shutdown::Shutdown;

/// Where the daemon's metrics go (the configuration's `[metrics]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The node exporter's textfile (`*.prom`), replaced every
    /// `interval`; `None`: no file.
    pub textfile: Option<PathBuf>,
    pub interval: Duration,
    /// A loopback address to serve `GET /metrics` on; `None`: no listener.
    pub listen: Option<SocketAddr>,
}

/// How often the textfile is written when the configuration does not say.
pub const DEFAULT_TEXTFILE_INTERVAL: Duration = Duration::from_secs(15);

impl Default for MetricsSettings {
    fn default() -> MetricsSettings {
        MetricsSettings {
            textfile: None,
            interval: DEFAULT_TEXTFILE_INTERVAL,
            listen: None,
        }
    }
}

/// The daemon's tasks that publish `registry`: the textfile writer and
/// the listener (already bound), each as configured.
pub(super) fn spawn(
    settings: &MetricsSettings,
    listener: Option<MetricsListener>,
    registry: Registry,
    shutdown: &Shutdown,
    tasks: &mut JoinSet<(&'static str, Result<(), DaemonError>)>,
) {
    let registry = Arc::new(registry);
    if let Some(path) = settings.textfile.clone() {
        let (registry, shutdown, every) = (registry.clone(), shutdown.clone(), settings.interval);
        tracing::info!(path = %path.display(), every_s = every.as_secs_f64(), "metrics: writing the textfile");
        tasks.spawn(async move {
            crate::metrics::keep_textfile(path, every, registry, shutdown).await;
            ("metrics textfile writer", Ok(()))
        });
    }
    if let Some(listener) = listener {
        tracing::info!(address = %listener.local_addr, "metrics: serving /metrics");
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            listener.serve(registry, shutdown).await;
            ("metrics listener", Ok(()))
        });
    }
}

/// One label, as the families here have.
type Label = [(&'static str, String); 1];

/// The daemon's counters, kept by the [`LiveInventory`] so that every
/// part that changes state can count without another handle.
#[derive(Debug, Default)]
pub struct DaemonCounters {
    discovery_events: Family<Label, Counter>,
    claims: Family<Label, Counter>,
    takeovers: Family<Label, Counter>,
    /// Shared with each browse ([`crate::discovery::Discovery::count_reverifications_in`]).
    pub reverifications: Arc<AtomicU64>,
    /// The relay's own status, read at each scrape.
    relay: Mutex<Option<watch::Receiver<RelayStatus>>>,
}

impl DaemonCounters {
    /// One inventory change, as the inventory applied it.
    pub fn discovery_event(&self, event: &InventoryEvent) {
        let change = match event {
            InventoryEvent::Added(_) => "added",
            InventoryEvent::Changed { .. } => "changed",
            InventoryEvent::Removed(_) => "removed",
        };
        self.discovery_events
            .get_or_create(&[("change", change.into())])
            .inc();
    }

    /// How a claim for a control client ended: `claimed`, or the cloud's
    /// `refused` / `queued` for a homeowner claim, or the error code.
    pub fn claim(&self, result: &Result<Done, ControlError>) {
        let outcome = match result {
            Ok(done) => match &done.cloud {
                Some(cloud) if cloud.result != "applied" => cloud.result.clone(),
                _ => "claimed".into(),
            },
            Err(e) => e.code.clone(),
        };
        self.claims.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// How a takeover for a control client ended: its result (`done`,
    /// `refused`, `not-applicable`…), or the error code.
    pub fn takeover(&self, result: &Result<Done, ControlError>) {
        let outcome = match result {
            Ok(done) => done
                .takeover
                .as_ref()
                .map_or_else(|| "done".into(), |t| t.result.clone()),
            Err(e) => e.code.clone(),
        };
        self.takeovers.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// The relay's status channel, read at each scrape from now on.
    pub fn watch_relay(&self, status: watch::Receiver<RelayStatus>) {
        *self.relay.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    fn relay_status(&self) -> Option<RelayStatus> {
        let relay = self.relay.lock().unwrap_or_else(|e| e.into_inner());
        relay.as_ref().map(|r| r.borrow().clone())
    }
}

/// The daemon's registry: the counters `live` keeps, and what is read
/// from `live` at each scrape.
pub fn registry(live: Arc<LiveInventory>) -> Registry {
    use crate::metrics::declared;
    let counters = live.counters();
    crate::metrics::registry_of(vec![
        declared(
            "handoff_discovery_events",
            "Inventory changes applied, by change (added, changed, removed)",
            counters.discovery_events.clone(),
        ),
        declared(
            "handoff_claims",
            "Claims performed for control clients, by outcome (claimed; refused or queued by the cloud; else the error code)",
            counters.claims.clone(),
        ),
        declared(
            "handoff_takeovers",
            "Takeovers performed for control clients, by outcome (done, refused, not-applicable, nothing-to-do, interrupted, cancelled; else the error code)",
            counters.takeovers.clone(),
        ),
        Box::new(DaemonState { live }),
    ])
}

/// What a scrape reads from the live state.
struct DaemonState {
    live: Arc<LiveInventory>,
}

impl std::fmt::Debug for DaemonState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonState").finish_non_exhaustive()
    }
}

impl Collector for DaemonState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), FmtError> {
        let mut by_product = std::collections::BTreeMap::<String, i64>::new();
        for p in self.live.snapshot() {
            *by_product.entry(p.product()).or_default() += 1;
        }
        let mut m = encoder.encode_descriptor(
            "handoff_processors",
            "Processors in the inventory, by product",
            None,
            MetricType::Gauge,
        )?;
        for (product, n) in by_product {
            ConstGauge::new(n).encode(m.encode_family(&[("product", product)])?)?;
        }

        let reverified = self.live.counters().reverifications.load(Ordering::Relaxed);
        ConstCounter::new(reverified).encode(encoder.encode_descriptor(
            "handoff_liveness_reverifications",
            "Processors asked again by themselves because they did not answer a liveness round",
            None,
            MetricType::Counter,
        )?)?;

        // The same report `handoff health` sends.
        let health = self.live.health(0, Instant::now());
        let relay = health.relay.as_ref();
        let status = self.live.counters().relay_status();
        let mut gauge = |name, help, value: Option<f64>| -> Result<(), FmtError> {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            value.map_or(Ok(()), |v| ConstGauge::new(v).encode(m))
        };
        gauge(
            "handoff_relay_backlog_events",
            "Events in the outbox the cloud has not acknowledged yet",
            relay.map(|r| r.backlog as f64),
        )?;
        gauge(
            "handoff_relay_oldest_unsent_seconds",
            "Age of the oldest event not yet acknowledged by the cloud (0 when none waits)",
            relay.map(|r| r.oldest_unsent_ms.unwrap_or(0) as f64 / 1000.0),
        )?;
        gauge(
            "handoff_relay_connected",
            "1 while the relay's connection to the cloud is up",
            status.as_ref().map(|s| f64::from(u8::from(s.connected))),
        )?;
        let mut m = encoder.encode_descriptor(
            "handoff_relayed_events",
            "Acknowledgements from the cloud, by outcome (applied, duplicate, refused)",
            None,
            MetricType::Counter,
        )?;
        if let Some(s) = &status {
            let a = s.answered;
            for (outcome, n) in [
                ("applied", a.applied),
                ("duplicate", a.duplicate),
                ("refused", a.refused),
            ] {
                ConstCounter::new(n).encode(m.encode_family(&[("outcome", outcome)])?)?;
            }
        }
        let m = encoder.encode_descriptor(
            "handoff_relay_reconnects",
            "Connections to the cloud lost or not made, each followed by a reconnect",
            None,
            MetricType::Counter,
        )?;
        if let Some(s) = &status {
            ConstCounter::new(s.reconnects).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{CloudResult, TakeoverResult, error_code};

    fn done(cloud: Option<&str>, takeover: Option<&str>) -> Result<Done, ControlError> {
        Ok(Done {
            request: 1,
            claimed: None,
            released: None,
            takeover: takeover.map(|result| TakeoverResult {
                result: result.into(),
                ..TakeoverResult::default()
            }),
            cloud: cloud.map(|result| CloudResult {
                id: ("d".to_owned(), 1).into(),
                result: result.into(),
                rule: None,
                why: None,
                link: None,
            }),
        })
    }

    /// Each way a claim or a takeover ends is its own series, and the
    /// whole exposition names them as the README says.
    #[test]
    fn claims_and_takeovers_are_counted_by_how_they_ended() {
        let live = Arc::new(LiveInventory::new(Instant::now()));
        let c = live.counters();
        c.claim(&done(None, None)); // pair only
        c.claim(&done(Some("applied"), None));
        c.claim(&done(Some("queued"), None));
        c.claim(&done(Some("refused"), None));
        c.claim(&Err(ControlError::new(error_code::BUSY, "busy", Some(1))));
        c.takeover(&done(None, Some("done")));
        c.takeover(&done(None, Some("not-applicable")));
        c.takeover(&Err(ControlError::new(error_code::FAILED, "no", Some(1))));
        let text = crate::metrics::encode(&registry(live));
        for line in [
            "handoff_claims_total{outcome=\"claimed\"} 2",
            "handoff_claims_total{outcome=\"queued\"} 1",
            "handoff_claims_total{outcome=\"refused\"} 1",
            "handoff_claims_total{outcome=\"busy\"} 1",
            "handoff_takeovers_total{outcome=\"done\"} 1",
            "handoff_takeovers_total{outcome=\"not-applicable\"} 1",
            "handoff_takeovers_total{outcome=\"failed\"} 1",
            // No relay: declared, no sample.
            "# TYPE handoff_relay_backlog_events gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("\nhandoff_relay_backlog_events "), "{text}");
    }
}
