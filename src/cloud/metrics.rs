//! The Place service's Prometheus metrics (`handoff cloud serve --metrics
//! ADDR`): one [`CloudMetrics`] per process, shared by the relay server
//! and the portal, and one [`Registry`] over it and the store.
//!
//! | metric | type | counted where |
//! | --- | --- | --- |
//! | `handoff_cloud_events_total{outcome}` | counter | each relayed event's ack: applied, duplicate, refused |
//! | `handoff_cloud_refusals_total{rule}` | counter | the refused ones, by the rule that refused them |
//! | `handoff_cloud_batch_events` | histogram | events applied in one store transaction |
//! | `handoff_cloud_transaction_seconds` | histogram | how long that transaction took |
//! | `handoff_cloud_serialization_retries_total` | counter | PostgreSQL transactions retried after a serialization failure (0 on redb) |
//! | `handoff_cloud_connected_daemons` | gauge | relay connections past the TLS handshake |
//! | `handoff_cloud_tls_handshake_failures_total{reason}` | counter | relay handshakes that failed: timeout, no-certificate, bad-certificate, revoked, incompatible, alert, protocol, io |
//! | `handoff_portal_request_seconds{route,method,status}` | histogram | each portal request (route as declared, e.g. `/places/{id}`; `unmatched` for the rest) |

use std::fmt::Error as FmtError;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::store::CloudStore;
use crate::proto::Outcome;

type Label = [(&'static str, String); 1];
type RequestLabels = [(&'static str, String); 3];

/// Every count the Place service keeps for its metrics.
#[derive(Debug)]
pub struct CloudMetrics {
    events: Family<Label, Counter>,
    refusals: Family<Label, Counter>,
    batch_events: Histogram,
    transaction_seconds: Histogram,
    connected_daemons: Gauge,
    tls_failures: Family<Label, Counter>,
    portal_requests: Family<RequestLabels, Histogram>,
}

impl Default for CloudMetrics {
    fn default() -> CloudMetrics {
        CloudMetrics {
            events: Family::default(),
            refusals: Family::default(),
            // 1 … 1024: the server's largest batch.
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 0.5 ms … ~4 s.
            transaction_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            connected_daemons: Gauge::default(),
            tls_failures: Family::default(),
            portal_requests: Family::new_with_constructor(|| {
                // 1 ms … ~8 s.
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
        }
    }
}

impl CloudMetrics {
    /// One relayed event's outcome.
    pub fn event(&self, outcome: &Outcome) {
        let name = match outcome {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Refused { rule, .. } => {
                self.refusals.get_or_create(&[("rule", rule.clone())]).inc();
                "refused"
            }
        };
        self.events.get_or_create(&[("outcome", name.into())]).inc();
    }

    /// One store transaction of `events` relayed events.
    pub fn batch(&self, events: usize, took: std::time::Duration) {
        self.batch_events.observe(events as f64);
        self.transaction_seconds.observe(took.as_secs_f64());
    }

    /// A relay TLS handshake that failed, with [`handshake_failure_reason`].
    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_failures
            .get_or_create(&[("reason", reason.into())])
            .inc();
    }

    /// A daemon is connected until the guard is dropped.
    pub fn daemon_connected(&self) -> ConnectedDaemon {
        self.connected_daemons.inc();
        ConnectedDaemon(self.connected_daemons.clone())
    }

    /// One portal request.
    pub fn portal_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        took: std::time::Duration,
    ) {
        self.portal_requests
            .get_or_create(&[
                ("route", route.into()),
                ("method", method.into()),
                ("status", status.to_string()),
            ])
            .observe(took.as_secs_f64());
    }

    /// The registry a `--metrics` listener serves: these counts, and the
    /// store's serialization retries read at each scrape.
    pub fn registry(self: &Arc<Self>, store: Arc<CloudStore>) -> Registry {
        use crate::metrics::declared;
        crate::metrics::registry_of(vec![
            declared(
                "handoff_cloud_events",
                "Relayed events acknowledged, by outcome (applied, duplicate, refused)",
                self.events.clone(),
            ),
            declared(
                "handoff_cloud_refusals",
                "Relayed events refused, by the rule that refused them",
                self.refusals.clone(),
            ),
            declared(
                "handoff_cloud_batch_events",
                "Relayed events applied in one store transaction",
                self.batch_events.clone(),
            ),
            declared(
                "handoff_cloud_transaction_seconds",
                "Time to apply one batch of relayed events in the store",
                self.transaction_seconds.clone(),
            ),
            declared(
                "handoff_cloud_connected_daemons",
                "Site daemons connected to the relay now (past the TLS handshake)",
                self.connected_daemons.clone(),
            ),
            declared(
                "handoff_cloud_tls_handshake_failures",
                "Relay TLS handshakes that failed, by reason",
                self.tls_failures.clone(),
            ),
            declared(
                "handoff_portal_request_seconds",
                "Portal requests and their latency, by route, method and status",
                self.portal_requests.clone(),
            ),
            Box::new(StoreState(store)),
        ])
    }
}

/// Counts one connected daemon while it lives.
#[derive(Debug)]
pub struct ConnectedDaemon(Gauge);

impl Drop for ConnectedDaemon {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Why a relay TLS handshake failed, in a few words fit for a label.
pub fn handshake_failure_reason(e: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) else {
        return "io";
    };
    match tls {
        E::NoCertificatesPresented => "no-certificate",
        E::InvalidCertificate(rustls::CertificateError::Revoked) => "revoked",
        E::InvalidCertificate(_) => "bad-certificate",
        E::PeerIncompatible(_) => "incompatible",
        E::AlertReceived(_) => "alert",
        _ => "protocol",
    }
}

/// What a scrape reads from the store.
struct StoreState(Arc<CloudStore>);

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState").finish_non_exhaustive()
    }
}

impl Collector for StoreState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), FmtError> {
        ConstCounter::new(self.0.serialization_retries()).encode(encoder.encode_descriptor(
            "handoff_cloud_serialization_retries",
            "Store transactions retried after a serialization failure (PostgreSQL; 0 on redb)",
            None,
            MetricType::Counter,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_handshake_is_named_by_what_rustls_said() {
        let tls = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cases = [
            (
                tls(rustls::Error::NoCertificatesPresented),
                "no-certificate",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                )),
                "revoked",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
                "bad-certificate",
            ),
            (tls(rustls::Error::General("x".into())), "protocol"),
            (std::io::ErrorKind::ConnectionReset.into(), "io"),
        ];
        for (e, want) in cases {
            assert_eq!(handshake_failure_reason(&e), want, "{e}");
        }
    }
}
