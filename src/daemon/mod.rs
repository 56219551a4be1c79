//! The site daemon: one task tree under an injected shutdown (rathole's
//! shape). Discovery runs continuously and feeds a [`LiveInventory`]; the
//! control socket serves it to the CLI; systemd hears READY, STATUS and
//! watchdog pings.
//!
//! ```text
//! run(settings, shutdown, reloads)
//!  ├─ discovery task   Discovery::next → LiveInventory::apply (+ broadcast)
//!  ├─ control server   accept (bounded) → one task per connection
//!  └─ systemd task     STATUS on inventory change, WATCHDOG=1
//! ```
//!
//! The settings are a plain [`DaemonSettings`], filled by `handoff daemon`
//! from the [`config`] file and its flags. A reload (SIGHUP) sends new
//! settings on the `reloads` channel; the inventory is kept across it.
//!
//! With a cloud configured, the relay runs too and owns the outbox:
//! commands hand their events over the socket (`queue`), and the backlog
//! shows in `handoff health` and the STATUS line. Claims and releases are
//! performed by the daemon on request ([`work`]): the processor comes from
//! the live inventory, the button countdown is streamed to the client.

pub mod client;
pub mod config;
pub mod inventory;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod server;
pub mod socket;
pub mod spare_key;
pub mod work;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use crate::proto::FrameIoError;
pub use client::{ControlClient, WatchStream, connect, connect_first};
pub use inventory::LiveInventory;
pub use socket::{client_socket_paths, default_runtime_dir, socket_path};

use crate::discovery::{
    DEFAULT_LIVENESS, Discovery, DiscoveryError, DiscoveryOptions, Identity, InventoryEvent,
    MIN_LIVENESS,
};
use crate::lan::LanError;
use crate::shutdown::{Shutdown, shutdown_channel};

/// What the daemon needs to run: the configuration file, with the
/// command line's flags over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Interface allow-list; empty: every multicast-capable interface but
    /// loopback and container bridges (see [`crate::lan::choose_interfaces`]).
    pub interfaces: Vec<String>,
    /// A processor that stops answering is removed within this bound.
    pub liveness: Duration,
    /// Where the daemon keeps its state (and its lock).
    pub state_dir: PathBuf,
    /// Where the control socket is made.
    pub runtime_dir: PathBuf,
    /// Control clients served at once; more get an error frame "busy".
    pub max_connections: usize,
    /// How long a graceful stop may take before the remaining tasks are
    /// aborted.
    pub stop_within: Duration,
    /// The cloud to relay to (`host:port`) and the identity bundle's
    /// directory; `None`: no relay, the outbox is left to the commands.
    pub cloud: Option<(crate::relay::address::CloudAddresses, PathBuf)>,
    /// What claims performed for clients use.
    pub claim: work::ClaimSettings,
    /// Where the metrics go.
    pub metrics: metrics::MetricsSettings,
}

impl DaemonSettings {
    /// Defaults for everything but the two directories.
    pub fn new(state_dir: PathBuf, runtime_dir: PathBuf) -> DaemonSettings {
        let pairing_identity = state_dir.join(crate::identity::PAIRING_IDENTITY_DIR);
        DaemonSettings {
            interfaces: Vec::new(),
            liveness: DEFAULT_LIVENESS,
            state_dir,
            runtime_dir,
            max_connections: 64,
            stop_within: Duration::from_secs(5),
            cloud: None,
            claim: work::ClaimSettings {
                pairing_identity,
                button_timeout: crate::leap::pairing::DEFAULT_BUTTON_WINDOW,
                act_group: None,
            },
            metrics: metrics::MetricsSettings::default(),
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.runtime_dir)
    }
}

/// How a reload went: the settings that wait for a restart of the
/// daemon (empty: all applied), or why the new settings were refused (the
/// running ones are kept).
pub type ReloadResult = Result<Vec<String>, String>;

/// Who waits to hear how a reload went.
pub type ReloadReply = oneshot::Sender<ReloadResult>;

/// New settings for a running daemon: read again from the configuration
/// (SIGHUP, `handoff reload`), or refused while reading.
#[derive(Debug)]
pub struct Reload {
    pub settings: Result<DaemonSettings, String>,
    pub reply: Option<ReloadReply>,
}

impl From<DaemonSettings> for Reload {
    fn from(settings: DaemonSettings) -> Reload {
        Reload {
            settings: Ok(settings),
            reply: None,
        }
    }
}

/// Errors of the daemon and of its clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another handoff daemon uses this state directory (it holds {}); stop it first",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "another handoff daemon answers on {}; stop it first, or give this one another --runtime-dir",
        path.display()
    )]
    AlreadyRunning { path: PathBuf },
    #[error("{} exists and is not a socket; move it away (handoff never deletes it)", path.display())]
    NotASocket { path: PathBuf },
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Lan(#[from] LanError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("{0}")]
    Setting(String),
    #[error("the daemon's {task} stopped unexpectedly")]
    TaskEnded { task: &'static str },
    #[error("talking to the daemon at {}: {source}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: FrameIoError,
    },
    #[error("the daemon refused: {reason} ({code})")]
    Refused { code: String, reason: String },
    #[error("the daemon sent an unexpected \"{kind}\" message")]
    Unexpected { kind: String },
    #[error("the daemon at {} closed the connection; is it stopping?", path.display())]
    Closed { path: PathBuf },
    #[error("the daemon at {} does not answer", path.display())]
    NoAnswer { path: PathBuf },
}

impl DaemonError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
        let context = context.into();
        move |source| DaemonError::Io { context, source }
    }
}

/// Runs the daemon until `shutdown` fires (or a part of it fails), then
/// stops within [`DaemonSettings::stop_within`] and removes its socket.
/// `reloads` brings new settings; `reread`, when given, is where a control
/// client's `reload` asks for the configuration to be read again (whoever
/// holds the other end reads it and answers on `reloads`).
///
/// # Errors
/// Before READY: the state directory is locked by another daemon, another
/// daemon answers on the socket, no usable interface, mDNS cannot start.
/// After: discovery stopped (the mDNS thread died).
pub async fn run(
    mut settings: DaemonSettings,
    mut shutdown: Shutdown,
    mut reloads: mpsc::Receiver<Reload>,
    reread: Option<mpsc::Sender<ReloadReply>>,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    check(&settings)?;
    let lock = lock::lock_state_dir(&settings.state_dir)?;
    let all = crate::lan::interfaces()?;
    let interfaces = crate::lan::choose_interfaces(&all, &settings.interfaces)?;
    let (listener, socket_file) = socket::bind(&settings.socket_path()).await?;
    let metrics_listener = match settings.metrics.listen {
        Some(addr) => Some(crate::metrics::MetricsListener::bind_loopback(addr).await?),
        None => None,
    };
    let mut discovery = Discovery::start(DiscoveryOptions {
        interfaces: interfaces.clone(),
        liveness: Some(settings.liveness),
    })?;

    let live = Arc::new(LiveInventory::new(started));
    discovery.count_reverifications_in(live.counters().reverifications.clone());
    // The relay owns the outbox while the daemon runs; commands hand their
    // events over the control socket.
    let relay = match &settings.cloud {
        None => None,
        Some((address, identity)) => {
            let link = crate::relay::link::CloudLink::new(address, identity)
                .map_err(DaemonError::Setting)?;
            let path = settings.state_dir.join(crate::outbox::FILE_NAME);
            let outbox = crate::outbox::Outbox::open(&path)
                .map_err(|e| DaemonError::Setting(format!("the outbox {}: {e}", path.display())))?;
            Some((link, outbox))
        }
    };
    // Fired by the caller's shutdown, or by a part that fails.
    let (trigger, tasks_shutdown) = shutdown_channel();
    // Each task says which it is when it ends: before the shutdown, any
    // end is a failure worth naming.
    let mut tasks: JoinSet<(&'static str, Result<(), DaemonError>)> = JoinSet::new();
    let (restart, restarts) = mpsc::channel(4);
    tasks.spawn({
        let (live, shutdown) = (live.clone(), tasks_shutdown.clone());
        async move {
            let ended = run_discovery(discovery, live, restarts, shutdown).await;
            ("discovery", ended)
        }
    });
    if let Some((link, outbox)) = &relay {
        tasks.spawn(run_relay(
            link.clone(),
            outbox.clone(),
            live.clone(),
            tasks_shutdown.clone(),
        ));
    }
    let work = Arc::new(work::Work::new(
        settings.state_dir.clone(),
        settings.claim.clone(),
        live.clone(),
        relay.clone(),
        reread,
    ));
    work.keep_key_ready();
    tasks.spawn({
        let (live, shutdown) = (live.clone(), tasks_shutdown.clone());
        let max = settings.max_connections;
        let work = work.clone();
        async move {
            server::serve(listener, live, work, max, shutdown).await;
            ("control socket", Ok(()))
        }
    });
    metrics::spawn(
        &settings.metrics,
        metrics_listener,
        metrics::registry(live.clone()),
        &tasks_shutdown,
        &mut tasks,
    );
    if let Some((link, outbox)) = &relay {
        // On the first STATUS line already, not once the relay reports.
        let stats = outbox.stats(std::time::SystemTime::now());
        let before = crate::relay::RelayStatus {
            backlog: stats.backlog,
            oldest_pending_age: stats.oldest_pending_age,
            ..crate::relay::RelayStatus::default()
        };
        publish_relay(&live, link, &before);
    }
    notify::ready(&live);
    // The watchdog pings start after READY: one before it confuses systemd
    // (and the test that checks the order), as a busy machine showed.
    tasks.spawn({
        let (live, shutdown) = (live.clone(), tasks_shutdown);
        async move {
            notify::keep_systemd_informed(live, shutdown).await;
            ("systemd notifier", Ok(()))
        }
    });
    tracing::info!(
        socket = %socket_file.path().display(),
        interfaces = %interfaces.join(","),
        liveness_s = settings.liveness.as_secs(),
        lock = %lock.path.display(),
        "daemon ready"
    );

    let outcome = loop {
        tokio::select! {
            _ = shutdown.wait() => {
                tracing::info!("daemon stopping");
                break Ok(());
            }
            Some(new) = reloads.recv() => {
                let result = match new.settings {
                    Ok(settings_now) => reload(&mut settings, settings_now, &live, &work, &restart),
                    Err(why) => {
                        tracing::error!(error = %why, "reload refused; keeping the running settings: {why}");
                        Err(why)
                    }
                };
                if let Some(reply) = new.reply {
                    let _ = reply.send(result);
                }
            }
            Some(ended) = tasks.join_next() => {
                break Err(match ended {
                    Ok((_, Err(e))) => e,
                    Ok((task, Ok(()))) => DaemonError::TaskEnded { task },
                    Err(_) => DaemonError::TaskEnded { task: "a task (it panicked)" },
                });
            }
        }
    };
    notify::stopping();
    trigger.fire();
    let drained = tokio::time::timeout(settings.stop_within, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            within_ms = settings.stop_within.as_millis() as u64,
            "daemon tasks did not stop in time; aborting them"
        );
        tasks.shutdown().await;
    }
    if let Some((_, outbox)) = relay {
        outbox.close().await;
    }
    drop(socket_file);
    drop(lock);
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "daemon failed");
    }
    outcome
}

fn check(settings: &DaemonSettings) -> Result<(), DaemonError> {
    if settings.liveness < MIN_LIVENESS {
        return Err(DaemonError::Setting(format!(
            "the liveness bound must be at least {}: each check gives processors a third of it to answer",
            humantime::format_duration(MIN_LIVENESS)
        )));
    }
    if let Some(path) = &settings.metrics.textfile {
        crate::metrics::check_textfile_path(path)?;
    }
    if let Some(addr) = settings.metrics.listen {
        crate::metrics::check_loopback(addr)?;
    }
    if settings.max_connections == 0 {
        return Err(DaemonError::Setting(
            "the daemon must serve at least one control connection".into(),
        ));
    }
    Ok(())
}

/// Applies what can change live (interfaces and liveness restart the
/// browse; the stop bound) and says what waits for a restart of the
/// daemon. The inventory is kept either way.
fn reload(
    current: &mut DaemonSettings,
    new: DaemonSettings,
    live: &LiveInventory,
    work: &work::Work,
    restart: &mpsc::Sender<DiscoveryOptions>,
) -> ReloadResult {
    notify::reloading();
    if let Err(e) = check(&new) {
        tracing::error!(error = %e, "reload refused; keeping the running settings: {e}");
        notify::ready(live);
        return Err(e.to_string());
    }
    if new.interfaces != current.interfaces || new.liveness != current.liveness {
        let chosen = crate::lan::interfaces()
            .and_then(|all| crate::lan::choose_interfaces(&all, &new.interfaces));
        match chosen {
            Ok(interfaces) => {
                let options = DiscoveryOptions {
                    interfaces,
                    liveness: Some(new.liveness),
                };
                if restart.try_send(options).is_ok() {
                    current.interfaces = new.interfaces.clone();
                    current.liveness = new.liveness;
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "reload refused: keeping the running interfaces and liveness"
                );
                notify::ready(live);
                return Err(e.to_string());
            }
        }
    }
    current.stop_within = new.stop_within;
    if new.claim != current.claim {
        work.set_claim_settings(new.claim.clone());
        current.claim = new.claim.clone();
    }
    let mut later = Vec::new();
    if new.state_dir != current.state_dir {
        later.push("state directory");
    }
    if new.runtime_dir != current.runtime_dir {
        later.push("runtime directory");
    }
    if new.max_connections != current.max_connections {
        later.push("max connections");
    }
    if new.cloud != current.cloud {
        later.push("cloud");
    }
    if new.metrics != current.metrics {
        later.push("metrics");
    }
    if later.is_empty() {
        tracing::info!(
            processors = live.len(),
            "reload: settings applied, inventory kept"
        );
    } else {
        tracing::warn!(
            processors = live.len(),
            waiting = %later.join(", "),
            "reload: these settings take effect at the next restart; inventory kept"
        );
    }
    notify::ready(live);
    Ok(later.into_iter().map(str::to_owned).collect())
}

/// Until shutdown: discovery's events into the live inventory. New
/// options (a reload that changed the interfaces or the liveness bound)
/// restart the browse; the inventory is kept, and whoever the new browse
/// has not found again within the liveness bound is removed.
async fn run_discovery(
    mut discovery: Discovery,
    live: Arc<LiveInventory>,
    mut restarts: mpsc::Receiver<DiscoveryOptions>,
    mut shutdown: Shutdown,
) -> Result<(), DaemonError> {
    // After a restart: who is still to be found again, and until when.
    let mut unconfirmed: Option<(Instant, BTreeSet<Identity>)> = None;
    loop {
        let sweep_at = unconfirmed.as_ref().map(|(at, _)| *at);
        let event = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            Some(options) = restarts.recv() => {
                let liveness = options.liveness.unwrap_or(DEFAULT_LIVENESS);
                match Discovery::start(options.clone()) {
                    Ok(new) => {
                        // The old browse stops when dropped, without
                        // reporting anyone removed.
                        discovery = new;
                        discovery.count_reverifications_in(live.counters().reverifications.clone());
                        unconfirmed = Some((Instant::now() + liveness, live.identities()));
                        tracing::info!(
                            interfaces = %options.interfaces.join(","),
                            liveness_s = liveness.as_secs(),
                            "reload: browsing with the new settings, inventory kept"
                        );
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "reload: cannot browse with the new settings; keeping the old browse"
                    ),
                }
                continue;
            }
            _ = sleep_until_opt(sweep_at) => {
                if let Some((_, stale)) = unconfirmed.take() {
                    for gone in live.expire(&stale, Instant::now()) {
                        log_event(&gone);
                    }
                }
                continue;
            }
            event = discovery.next() => event?,
        };
        if let Some((_, stale)) = unconfirmed.as_mut() {
            stale.remove(&inventory::identity(event.processor()));
        }
        if let Some(applied) = live.apply(event, Instant::now()) {
            log_event(&applied);
        }
    }
}

/// The relay, until shutdown: the outbox to the cloud, its backlog into
/// the live inventory's health (and so into `handoff health` and the
/// systemd STATUS line).
async fn run_relay(
    link: crate::relay::link::CloudLink,
    outbox: crate::outbox::Outbox,
    live: Arc<LiveInventory>,
    mut shutdown: Shutdown,
) -> (&'static str, Result<(), DaemonError>) {
    let (status, mut watch) = crate::relay::status_channel(&outbox);
    live.counters().watch_relay(watch.clone());
    let publish = |s: &crate::relay::RelayStatus| publish_relay(&live, &link, s);
    publish(&watch.borrow());
    tracing::info!(cloud = %link.addresses(), site = %link.site, account = %link.account, "relay started");
    let relay = tokio::spawn(crate::relay::run(
        outbox,
        link.connector(),
        crate::relay::RelayConfig {
            claim_account: Some(link.account.clone()),
            ..crate::relay::RelayConfig::default()
        },
        shutdown.clone(),
        status,
    ));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            changed = watch.changed() => {
                if changed.is_err() {
                    break;
                }
                publish(&watch.borrow_and_update());
            }
        }
    }
    // The relay listens on the same shutdown; once it fired (or the relay
    // ended by itself) there is only its end to wait for.
    let _ = relay.await;
    ("relay", Ok(()))
}

/// The relay's backlog and connection into the live inventory's health
/// (and so into `handoff health` and the STATUS line).
fn publish_relay(
    live: &LiveInventory,
    link: &crate::relay::link::CloudLink,
    s: &crate::relay::RelayStatus,
) {
    live.set_relay_health(Some(crate::proto::control::RelayHealth {
        backlog: s.backlog as u64,
        oldest_unsent_ms: s
            .oldest_pending_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        cloud: Some(link.address()),
        account: Some(link.account.clone()),
        connected: Some(s.connected),
        last_error: s.last_error.clone(),
        last_error_code: s.last_error_code.clone(),
    }));
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One line per inventory change, with the processor's id and MAC as
/// fields.
fn log_event(event: &InventoryEvent) {
    let p = event.processor();
    let id = p.id().unwrap_or_else(|| "-".into());
    let mac = p.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    let addresses: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
    match event {
        InventoryEvent::Added(_) => tracing::info!(
            id = %id, mac = %mac, product = %p.product(), addresses = %addresses.join(","),
            "processor added"
        ),
        InventoryEvent::Changed { changes, .. } => tracing::info!(
            id = %id, mac = %mac, changes = %changes.join(","), addresses = %addresses.join(","),
            "processor changed"
        ),
        InventoryEvent::Removed(_) => tracing::info!(id = %id, mac = %mac, "processor removed"),
    }
}
