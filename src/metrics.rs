//! Prometheus metrics: how a process's one [`Registry`] leaves it.
//!
//! The daemon ([`crate::daemon::metrics`]) and the Place service
//! ([`crate::cloud::metrics`]) each build one registry from the state
//! they already keep; this module only encodes it, in the Prometheus text
//! format (0.0.4) that both the node exporter's textfile collector and a
//! scrape read:
//! - [`write_textfile`] / [`keep_textfile`]: a `.prom` file replaced
//!   atomically (the collector never sees half of one), mode 0644 whatever
//!   the umask, so the node exporter's user can read it;
//! - [`MetricsListener`]: `GET /metrics` over plain HTTP. The site daemon
//!   only binds loopback ([`MetricsListener::bind_loopback`]): its metrics
//!   name the site's processors, and a site box's LAN is not a place to
//!   publish them.
//!
//! It depends on nothing in the crate but [`crate::atomic_file`] and
//! [`crate::shutdown`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::atomic_file::{self, Readers};
use crate::shutdown::Shutdown;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Errors of the metrics' outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    #[error(
        "the metrics listener must be on loopback (127.0.0.1 or [::1]), not {0}: the metrics \
         name this site's processors; let the node exporter's textfile collector or a local \
         agent publish them"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the metrics file {}: {source}", path.display())]
    Textfile {
        path: PathBuf,
        #[source]
        source: atomic_file::AtomicFileError,
    },
    #[error("the metrics file {} must end in .prom (the textfile collector reads only those)", .0.display())]
    NotProm(PathBuf),
}

/// A registry of `metrics`, each always declared (`# HELP`, `# TYPE`),
/// even while a family has no label set yet: `Registry::register` leaves
/// an empty family out, and a dashboard or an alert then cannot tell
/// "none yet" from "not exported".
pub fn registry_of(metrics: Vec<Box<dyn Collector>>) -> Registry {
    let mut registry = Registry::default();
    for metric in metrics {
        registry.register_collector(metric);
    }
    registry
}

/// `metric` under `name`, for [`registry_of`].
pub fn declared<M>(name: &'static str, help: &'static str, metric: M) -> Box<dyn Collector>
where
    M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static,
{
    Box::new(Declared { name, help, metric })
}

#[derive(Debug)]
struct Declared<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static> Collector for Declared<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(m)
    }
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String does not fail; a collector's own error would
    // leave a truncated exposition, which a parser then refuses.
    if let Err(e) = prometheus_text::encode(&mut text, registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    text
}

/// Checks that `path` can be a textfile collector's file (it ends in
/// `.prom`).
///
/// # Errors
/// [`MetricsError::NotProm`].
pub fn check_textfile_path(path: &Path) -> Result<(), MetricsError> {
    if path.extension().is_some_and(|e| e == "prom") && path.file_stem().is_some() {
        Ok(())
    } else {
        Err(MetricsError::NotProm(path.to_owned()))
    }
}

/// Replaces `path` with the registry's exposition, atomically, mode 0644.
///
/// # Errors
/// [`MetricsError::Textfile`]: the directory is missing or not writable,
/// the disk is full; the old file is left as it was.
pub fn write_textfile(path: &Path, registry: &Registry) -> Result<(), MetricsError> {
    atomic_file::write(path, encode(registry).as_bytes(), Readers::Everyone).map_err(|source| {
        MetricsError::Textfile {
            path: path.to_owned(),
            source,
        }
    })
}

/// Writes the textfile now and every `interval` until `shutdown`, then
/// once more (the last values of a stopping process). A failed write is
/// logged, once until a write succeeds again, and retried next interval.
pub async fn keep_textfile(
    path: PathBuf,
    interval: Duration,
    registry: Arc<Registry>,
    mut shutdown: Shutdown,
) {
    let mut failing = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = shutdown.wait() => true,
        };
        match write_textfile(&path, &registry) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(path = %path.display(), "metrics file written again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot write the metrics file; retrying every interval: {e}");
            }
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}

/// A bound metrics listener, not serving yet.
pub struct MetricsListener {
    listener: TcpListener,
    pub local_addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr`, which must be a loopback address (the site daemon's
    /// rule).
    ///
    /// # Errors
    /// [`MetricsError::NotLoopback`], [`MetricsError::Bind`].
    pub async fn bind_loopback(addr: SocketAddr) -> Result<MetricsListener, MetricsError> {
        check_loopback(addr)?;
        MetricsListener::bind(addr).await
    }

    /// Binds `addr`, any address (the Place service's nodes are scraped
    /// across their network).
    ///
    /// # Errors
    /// [`MetricsError::Bind`].
    pub async fn bind(addr: SocketAddr) -> Result<MetricsListener, MetricsError> {
        let bind_err = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(MetricsListener {
            listener,
            local_addr,
        })
    }

    /// Serves `GET /metrics` (anything else: 404) until `shutdown`.
    pub async fn serve(self, registry: Arc<Registry>, mut shutdown: Shutdown) {
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let registry = registry.clone();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            encode(&registry),
                        )
                    }
                }),
            )
            .fallback(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    "metrics are at /metrics\n",
                )
            });
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    }
}

/// Refuses an address off loopback.
///
/// # Errors
/// [`MetricsError::NotLoopback`].
pub fn check_loopback(addr: SocketAddr) -> Result<(), MetricsError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(MetricsError::NotLoopback(addr))
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn a_listener_off_loopback_is_refused_with_the_reason() {
        for addr in ["0.0.0.0:9721", "192.0.2.7:9721", "[::]:9721"] {
            let e = check_loopback(addr.parse().unwrap()).unwrap_err();
            assert!(e.to_string().contains("must be on loopback"), "{e}");
        }
        for addr in ["127.0.0.1:9721", "127.0.1.5:0", "[::1]:9721"] {
            check_loopback(addr.parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_textfile_must_end_in_prom() {
        assert!(check_textfile_path(Path::new("/x/handoff.prom")).is_ok());
        for bad in ["/x/handoff", "/x/handoff.txt", "/x/.prom"] {
            assert!(check_textfile_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_readable_by_everyone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.prom");
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("handoff_test", "A test counter", counter.clone());
        write_textfile(&path, &registry).unwrap();
        counter.inc();
        write_textfile(&path, &registry).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("handoff_test_total 1\n"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A missing directory is an error naming the file; nothing written.
        let e = write_textfile(&dir.path().join("no/such.prom"), &registry).unwrap_err();
        assert!(e.to_string().contains("no/such.prom"), "{e}");
    }
}
