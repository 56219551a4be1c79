//! Finding processors: an mDNS browse of the processor service types, TXT
//! records interpreted into [`ProcessorInfo`], and an [`Inventory`] that
//! says what was added, changed or removed.
//!
//! A processor that loses power sends no goodbye, and its SRV record lives
//! 120 s in every cache. With a liveness bound set, [`Discovery`] asks the
//! whole LAN once per round, with one question per service type, and
//! notes who answered; only the few that did not are asked again one by
//! one (and dropped when they still do not answer), so a vanished
//! processor is reported within the bound while a quiet LAN costs one
//! packet and its answers per round, not a question per processor.
//!
//! Most rounds ask a legacy question (RFC 6762 §6.7, from an ephemeral
//! port): every processor answers it by unicast, to this browse's own
//! socket, so mdns-sd's daemon, which re-reads its whole cache for every
//! packet it gets, never sees the burst. Every 80–90 s the round is
//! asked by multicast instead, so that mdns-sd's cache hears the answers
//! and never ages into per-name refresh queries of its own.

mod inventory;
mod listen;
mod unicast;

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use inventory::{Identity, Inventory, InventoryEvent, InventoryEventJson};
pub use listen::Via;
pub use unicast::{UnicastResponse, query_host, read_response};

use crate::lan::LanError;
use crate::processor::{ProcessorInfo, ServiceRecord, TxtEntry};

/// The DNS-SD service types processors advertise: `_lutron._tcp` today,
/// `_leap._tcp` on older Caséta firmware.
pub const SERVICE_TYPES: [&str; 2] = ["_lutron._tcp.local.", "_leap._tcp.local."];

/// Default bound on noticing a processor that vanished without a goodbye.
pub const DEFAULT_LIVENESS: Duration = Duration::from_secs(30);

/// Errors of discovery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error(transparent)]
    Lan(#[from] LanError),
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error("the mDNS daemon stopped unexpectedly")]
    Stopped,
    #[error("unicast DNS-SD query to {host}: {reason}")]
    Unicast { host: String, reason: String },
}

/// How to browse.
#[derive(Clone, Debug)]
pub struct DiscoveryOptions {
    /// Interface names to use (already chosen, see [`crate::lan::choose_interfaces`]).
    pub interfaces: Vec<String>,
    /// Report a processor removed when it stops answering for this long.
    /// `None` leaves it to record expiry (120 s), fine for a one-shot look.
    pub liveness: Option<Duration>,
}

/// A running browse and the inventory it feeds.
pub struct Discovery {
    daemon: ServiceDaemon,
    events: mpsc::UnboundedReceiver<ServiceEvent>,
    events_tx: mpsc::UnboundedSender<ServiceEvent>,
    inventory: Inventory,
    pending: VecDeque<InventoryEvent>,
    liveness: Option<Duration>,
    next_check: Option<Instant>,
    /// When this round's question stops waiting for answers (see
    /// [`Discovery::start_round`]).
    window_at: Option<Instant>,
    /// Names still to ask one by one in this liveness round, and when to
    /// ask the next few (see [`Discovery::verify_some`]).
    to_verify: VecDeque<String>,
    verify_at: Option<Instant>,
    verify_pace: Duration,
    /// When to re-read mdns-sd's view of every service (see [`Discovery::rebrowse`]).
    refresh_at: Option<Instant>,
    /// Complete records as single answer packets carry them (see [`listen`]).
    direct: mpsc::UnboundedReceiver<(Via, Vec<listen::Heard>)>,
    /// The listeners' tasks, ended with the browse (they would otherwise
    /// hold their sockets until the next packet came).
    listeners: Vec<tokio::task::JoinHandle<()>>,
    /// The listener's socket and the interfaces it sends a round's
    /// question out of; `None` when it could not open (every name is then
    /// asked one by one, as mdns-sd does it).
    asker: Option<(Arc<UdpSocket>, Vec<listen::Outlet>)>,
    /// The socket that asks legacy questions, and the id they carry;
    /// `None` when it could not open or processors do not answer it.
    legacy: Option<(Arc<UdpSocket>, u16)>,
    /// Set when a legacy answer read as a sighting found nobody: the
    /// asker then reads every next answer in full ([`listen::Bursts`]).
    reread: Arc<AtomicBool>,
    /// Whether this round's question was a legacy one, how many answers
    /// it got, and how many legacy rounds in a row got none.
    round_legacy: bool,
    round_answers: usize,
    silent_legacy_rounds: u32,
    /// When a round last asked by multicast (see [`CACHE_REFRESH`]).
    refreshed_at: Option<Instant>,
    /// Liveness questions sent (the round's and the one-by-one re-asks),
    /// for the metrics.
    questions_sent: u64,
    /// Names asked again one by one because they did not answer a round:
    /// the daemon's `handoff_liveness_reverifications_total` (see
    /// [`Discovery::count_reverifications_in`]).
    reverified: Arc<AtomicU64>,
}

/// How many inventory changes the queue keeps room for once drained.
const PENDING_ROOM: usize = 16;

/// RFC 6762 §10.2: records displaced by a cache-flush announcement linger
/// one second; look again just after.
const FLUSH_GRACE: Duration = Duration::from_millis(1500);

impl Discovery {
    /// Starts browsing on the given interfaces (IPv4). Must run inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`DiscoveryError::Mdns`] when the mDNS daemon cannot start.
    pub fn start(options: DiscoveryOptions) -> Result<Discovery, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        restrict_interfaces(&daemon, &options.interfaces)?;
        daemon.set_ip_check_interval(IP_CHECK_INTERVAL_SECS)?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (direct_tx, direct) = mpsc::unbounded_channel();
        let now = Instant::now();
        let next_check = options.liveness.map(|l| Instant::now() + check_every(l));
        let mut discovery = Discovery {
            daemon,
            events,
            events_tx,
            inventory: Inventory::new(),
            pending: VecDeque::new(),
            liveness: options.liveness,
            next_check,
            window_at: None,
            to_verify: VecDeque::new(),
            verify_at: None,
            verify_pace: Duration::ZERO,
            refresh_at: None,
            direct,
            listeners: Vec::new(),
            asker: None,
            legacy: None,
            round_legacy: false,
            round_answers: 0,
            silent_legacy_rounds: 0,
            refreshed_at: Some(now),
            questions_sent: 0,
            reverified: Arc::default(),
            reread: Arc::default(),
        };
        match listen::open(&options.interfaces) {
            Ok((sock, outlets)) => {
                let sock = Arc::new(sock);
                let task = listen::run(sock.clone(), outlets.clone(), direct_tx.clone());
                discovery.listeners.push(tokio::spawn(task));
                discovery.asker = Some((sock, outlets));
            }
            // mdns-sd's events still work; only processors sharing an
            // instance name are then seen less well.
            Err(e) => tracing::warn!("cannot listen to mDNS answers directly: {e}"),
        }
        match listen::open_asker() {
            Ok(sock) => {
                let sock = Arc::new(sock);
                let id = fastrand::u16(1..);
                let task = listen::run_asker(sock.clone(), id, discovery.reread.clone(), direct_tx);
                discovery.listeners.push(tokio::spawn(task));
                discovery.legacy = Some((sock, id));
            }
            Err(e) => tracing::debug!("cannot ask legacy mDNS questions: {e}"),
        }
        discovery.browse()?;
        // A first legacy question, beside mdns-sd's: its answers come at
        // once, undelayed (RFC 6762 §6.7) and to a socket with room for
        // the whole burst.
        discovery.ask_legacy(&SERVICE_TYPES);
        Ok(discovery)
    }

    /// Asks a legacy question for every instance of these types; whether
    /// it went out.
    fn ask_legacy(&mut self, types: &[&str]) -> bool {
        let (Some((sock, id)), Some((_, outlets))) = (&self.legacy, &self.asker) else {
            return false;
        };
        let Some(query) = listen::round_query(types, *id) else {
            return false;
        };
        let sent = listen::ask(sock, outlets, &query, true);
        self.questions_sent += sent as u64;
        sent > 0
    }

    /// Starts (or restarts) the browse of every service type. mdns-sd keeps
    /// one listener per type, so a restart replaces the old one (whose
    /// forwarding task then ends) and first replays every service resolved
    /// in its cache, as it is now.
    fn browse(&self) -> Result<(), DiscoveryError> {
        for ty in SERVICE_TYPES {
            let rx = self.daemon.browse(ty)?;
            let tx = self.events_tx.clone();
            tokio::spawn(async move {
                while let Ok(ev) = rx.recv_async().await {
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    }

    /// Waits for the next inventory change.
    ///
    /// # Errors
    /// [`DiscoveryError::Stopped`] if the mDNS daemon thread died.
    pub async fn next(&mut self) -> Result<InventoryEvent, DiscoveryError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            // Drained: the room a burst took (the fleet's 500 additions at
            // startup, 150 KB) is not kept for ever.
            if self.pending.capacity() > PENDING_ROOM {
                self.pending.shrink_to(PENDING_ROOM);
            }
            let (check, refresh) = (self.next_check, self.refresh_at);
            let (window, verify) = (self.window_at, self.verify_at);
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.apply(ev),
                    None => return Err(DiscoveryError::Stopped),
                },
                Some((via, heard)) = self.direct.recv() => {
                    for heard in heard {
                        self.heard(via, heard);
                    }
                }
                _ = sleep_until_opt(check) => self.start_round(),
                _ = sleep_until_opt(window) => self.close_window(),
                _ = sleep_until_opt(verify) => self.verify_some()?,
                _ = sleep_until_opt(refresh) => {
                    self.refresh_at = None;
                    self.browse()?;
                }
            }
        }
    }

    /// The processors known now, by id.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Liveness questions sent since the start: one per round and
    /// interface, plus one per processor that did not answer it.
    pub fn questions_sent(&self) -> u64 {
        self.questions_sent
    }

    /// Counts each name asked again by itself (it did not answer a round)
    /// in `counter`, which outlives this browse: a reload's new browse
    /// goes on counting where the old one stopped.
    pub fn count_reverifications_in(&mut self, counter: Arc<AtomicU64>) {
        self.reverified = counter;
    }

    fn apply(&mut self, ev: ServiceEvent) {
        let changes = match ev {
            ServiceEvent::ServiceResolved(resolved) => {
                let record = record_of(&resolved);
                let info = ProcessorInfo::from_record(&record);
                self.inventory.resolved(&record.fullname, info)
            }
            ServiceEvent::ServiceRemoved(_, fullname) => self.inventory.removed(&fullname),
            _ => Vec::new(),
        };
        self.note(changes);
    }

    /// What one answer packet said, heard on a chosen interface or in
    /// answer to this browse's own question. A processor already known
    /// under the name that answers the round's legacy question is only
    /// marked seen: the round is about who is there, and what changed is
    /// announced (and read again by the multicast rounds).
    fn heard(&mut self, via: Via, heard: listen::Heard) {
        match heard {
            listen::Heard::Record(record) => {
                if via == Via::Asked {
                    self.round_answers += 1;
                    if self.inventory.sighted(&record.fullname, &record.host) {
                        return;
                    }
                }
                let info = ProcessorInfo::from_record(&record);
                let changes = self.inventory.confirmed(&record.fullname, info);
                self.note(changes);
            }
            listen::Heard::Srv { fullname, host } => {
                let found = self.inventory.sighted(&fullname, &host);
                if via == Via::Asked {
                    self.round_answers += 1;
                    // A memo of the asker's, or a partial answer: either
                    // way, the next answers are read in full.
                    if !found {
                        self.reread.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Logs and queues inventory changes.
    fn note(&mut self, changes: Vec<InventoryEvent>) {
        for change in &changes {
            log_change(change);
            // mdns-sd reports a new address at once but says nothing when
            // the displaced one is flushed a second later (it has no event
            // for a lost address), so look again once it must be gone.
            if let InventoryEvent::Changed { before, after, .. } = change
                && after.addresses.len() > 1
                && !after.addresses.is_subset(&before.addresses)
            {
                let at = Instant::now() + FLUSH_GRACE;
                self.refresh_at = Some(self.refresh_at.map_or(at, |r| r.max(at)));
            }
        }
        self.pending.extend(changes);
    }

    /// Starts a liveness round: one question per service type to the whole
    /// LAN, which every processor answers with its records; each answer is
    /// noted as a sighting. The question is a legacy one (answered to this
    /// browse alone) unless mdns-sd's cache is due to hear the answers
    /// (see [`CACHE_REFRESH`]), or processors stopped answering legacy
    /// questions: then it is multicast (RFC 6762 §5.2). Those that did not
    /// answer when the window closes are asked one by one (see
    /// [`Discovery::close_window`]).
    fn start_round(&mut self) {
        let Some(liveness) = self.liveness else {
            self.next_check = None;
            return;
        };
        let expired = self.inventory.liveness_round();
        self.note(expired);
        self.next_check = Some(Instant::now() + check_every(liveness));
        if self.inventory.is_empty() {
            return;
        }
        let types: Vec<&str> = SERVICE_TYPES
            .into_iter()
            .filter(|ty| self.inventory.instance_names().any(|n| is_of_type(n, ty)))
            .collect();
        let now = Instant::now();
        let refresh_due = self
            .refreshed_at
            .is_none_or(|at| multicast_due(now.duration_since(at), check_every(liveness)));
        self.round_answers = 0;
        self.round_legacy = !refresh_due && self.ask_legacy(&types);
        if !self.round_legacy {
            self.refreshed_at = Some(now);
            if let (Some((sock, interfaces)), Some(query)) =
                (&self.asker, listen::round_query(&types, 0))
            {
                let sent = listen::ask(sock, interfaces, &query, false);
                self.questions_sent += sent as u64;
            }
        }
        self.window_at = Some(Instant::now() + answer_window(liveness));
    }

    /// The round's question has had its time: every name whose processor
    /// did not answer it is asked by itself, with mdns-sd's check (RFC
    /// 6762 §10.4), which flushes the record and reports it removed when
    /// that gets no answer either. An answer lost in a burst is therefore
    /// a second question, never a false removal.
    ///
    /// The asks are spread over a few seconds, a few at a time: when many
    /// are silent at once (the listener could not open, or a switch
    /// dropped the burst), 500 questions at once bring 500 answers at once,
    /// more than mdns-sd's socket buffer holds (processor-protocol.md §5).
    fn close_window(&mut self) {
        self.window_at = None;
        let Some(liveness) = self.liveness else {
            return;
        };
        self.note_legacy_answers();
        self.to_verify = self.inventory.unheard_names().map(String::from).collect();
        if self.to_verify.is_empty() {
            return;
        }
        tracing::debug!(
            names = self.to_verify.len(),
            "no answer to the round's question: asking these one by one"
        );
        let batches = self.to_verify.len().div_ceil(VERIFY_BATCH).max(1);
        self.verify_pace = (check_every(liveness) / 4) / u32::try_from(batches).unwrap_or(u32::MAX);
        self.verify_at = Some(Instant::now());
    }

    /// A legacy round nobody answered is followed by a multicast one; after
    /// [`MAX_SILENT_LEGACY_ROUNDS`] in a row, the processors here do not
    /// answer legacy questions (or none is left), and every round is
    /// multicast from then on.
    fn note_legacy_answers(&mut self) {
        if !self.round_legacy {
            return;
        }
        if self.round_answers > 0 {
            self.silent_legacy_rounds = 0;
            return;
        }
        self.refreshed_at = None;
        self.silent_legacy_rounds += 1;
        if self.silent_legacy_rounds >= MAX_SILENT_LEGACY_ROUNDS && self.legacy.take().is_some() {
            tracing::debug!("no answer to legacy questions: asking every round by multicast");
        }
    }

    /// Asks the next few names of the round.
    fn verify_some(&mut self) -> Result<(), DiscoveryError> {
        let Some(liveness) = self.liveness else {
            self.verify_at = None;
            return Ok(());
        };
        let every = check_every(liveness);
        for _ in 0..VERIFY_BATCH {
            let Some(name) = self.to_verify.pop_front() else {
                break;
            };
            match self.daemon.verify(name.clone(), every) {
                // The daemon's command queue is full: try this one later.
                Err(mdns_sd::Error::Again) => {
                    self.to_verify.push_front(name);
                    break;
                }
                other => other?,
            }
            self.questions_sent += 1;
            self.reverified.fetch_add(1, Ordering::Relaxed);
        }
        self.verify_at = if self.to_verify.is_empty() {
            None
        } else {
            Some(Instant::now() + self.verify_pace.max(Duration::from_millis(5)))
        };
        Ok(())
    }
}

/// How long mdns-sd's cache may go without hearing the answers: it asks
/// again by itself, name by name, for a record at 80 % of its TTL (96 s
/// for the 120 s SRV and address records). A round asks by multicast when
/// the next one would come later than this (every 80–90 s with a round every
/// 10 s); the answers take at most the round's window (2 s).
const CACHE_REFRESH: Duration = Duration::from_secs(90);

/// How often mdns-sd looks for addresses that came or went on the
/// interfaces (its default is 5 s). Each look is a wake-up of its thread,
/// which then re-reads its whole cache: at the default, a quarter of its
/// wake-ups with 500 processors at rest (12 of 53 a minute, by strace).
/// An address a DHCP lease brings is used at most this late.
const IP_CHECK_INTERVAL_SECS: u32 = 30;

/// Whether a round, `since` the last multicast one and `every` before the
/// next, must ask by multicast: it is the last that still comes before
/// [`CACHE_REFRESH`].
fn multicast_due(since: Duration, every: Duration) -> bool {
    since + every > CACHE_REFRESH
}

/// Legacy rounds in a row without any answer before the rounds go back to
/// multicast for good.
const MAX_SILENT_LEGACY_ROUNDS: u32 = 2;

/// Names asked together in a liveness round.
const VERIFY_BATCH: usize = 10;

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in self.listeners.drain(..) {
            task.abort();
        }
        let _ = self.daemon.shutdown();
    }
}

/// The shortest liveness bound that works: a responder multicasts a record
/// at most once a second (RFC 6762 §6), so an ask needs about two seconds
/// to be answered for sure. Measured: with a 1 s window, live processors
/// were dropped and re-added.
pub const MIN_LIVENESS: Duration = Duration::from_secs(6);

/// The liveness cadence: a round every third of the bound; its question
/// waits [`answer_window`] for answers; the silent then get a third of the
/// bound to answer mdns-sd's own check, asked within a quarter of a
/// round. A processor silent from just after one round's answer is gone
/// by 1/3 + 1/6 + 1/12 + 1/3 of the bound, within it.
fn check_every(liveness: Duration) -> Duration {
    (liveness / 3).max(MIN_LIVENESS / 3)
}

/// How long a round's question waits for answers before the silent are
/// asked one by one: responders answer a shared question within 20–120 ms
/// (RFC 6762 §6) and a burst of 500 within about 100 ms; two seconds
/// leave room for a loaded machine, and a sixth of the bound keeps the
/// whole check within it.
fn answer_window(liveness: Duration) -> Duration {
    Duration::from_secs(2).min(liveness.max(MIN_LIVENESS) / 6)
}

/// Whether an instance's full name is of the service type.
fn is_of_type(fullname: &str, ty: &str) -> bool {
    fullname.len() > ty.len()
        && fullname.is_char_boundary(fullname.len() - ty.len())
        && fullname[fullname.len() - ty.len()..].eq_ignore_ascii_case(ty)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Restricts an mDNS daemon to the chosen interfaces, IPv4 only.
///
/// mdns-sd joins the multicast group on every interface when it starts,
/// before any of this takes effect (see processor-protocol.md §5); what it
/// sends and answers afterwards stays on these interfaces.
pub fn restrict_interfaces(daemon: &ServiceDaemon, names: &[String]) -> mdns_sd::Result<()> {
    daemon.disable_interface(IfKind::All)?;
    let kinds: Vec<IfKind> = names.iter().map(|n| IfKind::Name(n.clone())).collect();
    daemon.enable_interface(kinds)?;
    daemon.disable_interface(IfKind::IPv6)?;
    Ok(())
}

fn record_of(r: &mdns_sd::ResolvedService) -> ServiceRecord {
    ServiceRecord {
        fullname: r.fullname.clone(),
        service_type: r.ty_domain.clone(),
        host: r.host.clone(),
        port: r.port,
        addresses: r.addresses.iter().map(|a| a.to_ip_addr()).collect(),
        txt: r
            .txt_properties
            .iter()
            .map(|p| TxtEntry {
                key: p.key().to_string(),
                value: p.val().map(<[u8]>::to_vec),
            })
            .collect(),
    }
}

fn log_change(change: &InventoryEvent) {
    let p = change.processor();
    let id = p.id().unwrap_or_else(|| "-".into());
    let mac = p.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    tracing::debug!(id = %id, mac = %mac, event = change.kind(), "inventory");
    if let InventoryEvent::Added(p) = change {
        for w in &p.warnings {
            tracing::warn!(id = %id, mac = %mac, "{w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mdns-sd asks again by itself, name by name, for a record at 96 s
    /// (80 % of 120 s): the multicast round must come before that, but as
    /// rarely as it can (each one wakes mdns-sd for the whole burst).
    #[test]
    fn the_multicast_round_is_the_last_before_mdns_sd_would_refresh() {
        let s = Duration::from_secs;
        let multicast_at = |every: Duration| {
            (1..)
                .map(|k| every * k)
                .find(|&since| multicast_due(since, every))
                .unwrap()
        };
        // The default 30 s liveness: a round every 10 s.
        assert_eq!(multicast_at(check_every(DEFAULT_LIVENESS)), s(90));
        assert!(multicast_due(s(80) + Duration::from_millis(3), s(10)));
        // Every round bound, from the shortest liveness to one round a
        // minute: never later than 90 s (answers within 2 s), never
        // sooner than a round before that.
        for every in [s(2), s(7), s(10), s(29), s(31), s(45), s(59)] {
            let at = multicast_at(every);
            assert!(at <= s(90), "{every:?}: {at:?}");
            assert!(at + every > s(90), "{every:?}: {at:?} is too soon");
        }
    }
}
