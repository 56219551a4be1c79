//! The outbox on disk: one redb file, one writer thread.
//!
//! Every change (appends, acks) goes through the writer thread. It takes
//! every request queued at the moment, commits them in one write
//! transaction with immediate durability, then applies them to the shared
//! [`OutboxCore`] and answers each request. So an [`Outbox::append`] that
//! returned is on disk, and many concurrent appends cost one fsync.
//!
//! Tables: `meta` (the daemon id, the next sequence number), `events`
//! (pending events by sequence number), `outcomes` (what the cloud said,
//! by sequence number) and `quarantine` (records that could not be
//! decoded at start, kept for a person to look at).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{Backoff, OutboxCore, Stats};
use super::error::OutboxError;
use super::record;
use crate::proto::{Ack, EventId, EventKind, RelayEvent};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
const QUARANTINE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("quarantine");

const DAEMON_KEY: &str = "daemon";
const NEXT_SEQ_KEY: &str = "next_seq";

/// The most requests one write transaction takes.
const MAX_GROUP: usize = 4096;

/// A record moved aside because it could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The table it was in (`events`).
    pub table: String,
    /// Its key there (the sequence number).
    pub key: u64,
    /// The bytes as they were found.
    pub bytes: Vec<u8>,
}

/// A handle on the durable outbox. Cheap to clone; every clone talks to
/// the same writer thread. The file closes when [`Outbox::close`] is
/// called or the last clone is dropped.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    daemon: String,
    path: PathBuf,
    core: Arc<Mutex<OutboxCore>>,
    requests: mpsc::Sender<Request>,
    changes: watch::Sender<u64>,
    commits: Arc<AtomicU64>,
}

enum Request {
    Append {
        kind: EventKind,
        reply: oneshot::Sender<Result<EventId, OutboxError>>,
    },
    Acks {
        acks: Vec<Ack>,
        reply: oneshot::Sender<Result<usize, OutboxError>>,
    },
    Outcome {
        seq: u64,
        reply: oneshot::Sender<Result<Option<Ack>, OutboxError>>,
    },
    Quarantined {
        reply: oneshot::Sender<Result<Vec<Quarantined>, OutboxError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.inner.path)
            .field("daemon", &self.inner.daemon)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox file at `path`, with the default
    /// retry [`Backoff`]. Blocking (after a crash redb checks the file):
    /// call it at start-up or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`OutboxError::Open`] when the file cannot be created, is not a
    /// redb file or is locked by another process. A record that does not
    /// decode is not an error: it is moved to the quarantine table with a
    /// warning.
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        Outbox::open_with(path, Backoff::default())
    }

    /// [`Outbox::open`] with the relay's retry backoff.
    ///
    /// # Errors
    /// As [`Outbox::open`].
    pub fn open_with(path: impl AsRef<Path>, backoff: Backoff) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |reason: String| OutboxError::Open {
            path: path.clone(),
            reason,
        };
        let db = Database::create(&path).map_err(|e| open_err(e.to_string()))?;
        let loaded = load(&db).map_err(|e| open_err(e.to_string()))?;
        let mut core = OutboxCore::new(loaded.daemon.clone(), loaded.next_seq, backoff);
        for (event, at) in loaded.events {
            core.restore(event, at);
        }
        let core = Arc::new(Mutex::new(core));
        let (requests, rx) = mpsc::channel(MAX_GROUP);
        let (changes, _) = watch::channel(0);
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: Some(db),
            path: path.clone(),
            core: Arc::clone(&core),
            changes: changes.clone(),
            commits: Arc::clone(&commits),
        };
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        tracing::debug!(path = %path.display(), daemon = %loaded.daemon,
            pending = lock(&core).stats(SystemTime::now()).backlog, "outbox open");
        Ok(Outbox {
            inner: Arc::new(Inner {
                daemon: loaded.daemon,
                path,
                core,
                requests,
                changes,
                commits,
            }),
        })
    }

    /// This daemon's id, generated when the file was created and kept
    /// since: the first half of every event id.
    pub fn daemon_id(&self) -> &str {
        &self.inner.daemon
    }

    /// The directory the outbox file is in: the state directory, whose
    /// credential store the relay signs claims from.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.path.parent()
    }

    /// Queues `kind` and returns its id once the event is on disk.
    ///
    /// # Errors
    /// [`OutboxError::DiskFull`] or [`OutboxError::Write`] when the commit
    /// failed (the event is not queued; earlier ones are kept),
    /// [`OutboxError::Unencodable`] when the event cannot be a relay frame
    /// (over 64 KiB, or an unknown kind), [`OutboxError::Closed`].
    pub async fn append(&self, kind: EventKind) -> Result<EventId, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Append { kind, reply }, rx).await?
    }

    /// What the cloud said about `id`: `None` while it is pending.
    ///
    /// # Errors
    /// [`OutboxError::Read`] when the stored outcome cannot be read or
    /// decoded, [`OutboxError::Closed`].
    pub async fn outcome(&self, id: &EventId) -> Result<Option<Ack>, OutboxError> {
        if id.daemon != self.inner.daemon || self.is_pending(id) {
            return Ok(None);
        }
        let (reply, rx) = oneshot::channel();
        self.request(Request::Outcome { seq: id.seq, reply }, rx)
            .await?
    }

    /// Waits until the cloud has acknowledged `id`, and returns what it
    /// said (applied, duplicate, or refused with the rule and guidance).
    /// Put a timeout around it: while the cloud is unreachable it waits.
    ///
    /// # Errors
    /// [`OutboxError::Read`] when `id` was never appended by this outbox
    /// or its outcome cannot be read, [`OutboxError::Closed`].
    pub async fn wait_outcome(&self, id: &EventId) -> Result<Ack, OutboxError> {
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.borrow_and_update();
            if !self.is_pending(id) {
                return self.outcome(id).await?.ok_or_else(|| OutboxError::Read {
                    reason: format!(
                        "no event [{}, {}] in this outbox (daemon {})",
                        id.daemon, id.seq, self.inner.daemon
                    ),
                });
            }
            changes.changed().await.map_err(|_| OutboxError::Closed)?;
        }
    }

    /// Whether `id` is queued and not yet acknowledged.
    pub fn is_pending(&self, id: &EventId) -> bool {
        lock(&self.inner.core).is_pending(id)
    }

    /// Every pending event in sequence order (after a restart: what the
    /// file held).
    pub fn pending(&self) -> Vec<RelayEvent> {
        lock(&self.inner.core).pending().collect()
    }

    /// Backlog, in-flight count, oldest pending age at `now`, failures.
    pub fn stats(&self, now: SystemTime) -> Stats {
        lock(&self.inner.core).stats(now)
    }

    /// Write transactions committed since the file was opened: with group
    /// commit, far fewer than the events appended and acknowledged.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// The records moved aside because they could not be decoded.
    ///
    /// # Errors
    /// [`OutboxError::Read`], [`OutboxError::Closed`].
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Quarantined { reply }, rx).await?
    }

    /// Closes the file once every request queued before is answered.
    /// Other clones get [`OutboxError::Closed`] afterwards.
    pub async fn close(self) {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .requests
            .send(Request::Close { reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Settles the events `acks` name, durably, and returns how many were
    /// pending. Acks of unknown or settled ids are ignored.
    pub(crate) async fn record_acks(&self, acks: Vec<Ack>) -> Result<usize, OutboxError> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Acks { acks, reply }, rx).await?
    }

    /// A receiver that changes after every commit.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut OutboxCore) -> R) -> R {
        f(&mut lock(&self.inner.core))
    }

    async fn request<T>(
        &self,
        request: Request,
        rx: oneshot::Receiver<T>,
    ) -> Result<T, OutboxError> {
        self.inner
            .requests
            .send(request)
            .await
            .map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)
    }
}

fn lock(core: &Mutex<OutboxCore>) -> MutexGuard<'_, OutboxCore> {
    // The core is left consistent between calls; a panic elsewhere does
    // not make it unusable.
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Loaded {
    daemon: String,
    next_seq: u64,
    events: Vec<(RelayEvent, SystemTime)>,
}

/// Reads the file; creates the tables and the daemon id the first time;
/// moves records that do not decode to the quarantine table. Commits only
/// when something changed, so a read-only start on a full disk works.
fn load(db: &Database) -> Result<Loaded, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut changed = false;
    let loaded = {
        let mut meta = txn.open_table(META)?;
        let mut events = txn.open_table(EVENTS)?;
        let outcomes = txn.open_table(OUTCOMES)?;
        let mut quarantine = txn.open_table(QUARANTINE)?;

        let stored_daemon = meta
            .get(DAEMON_KEY)?
            .map(|v| String::from_utf8(v.value().to_vec()));
        let daemon = match stored_daemon {
            Some(Ok(d)) if !d.is_empty() => d,
            other => {
                // Pending events keep the id they were appended with: a
                // new id would make the cloud apply them a second time.
                let from_events = events
                    .iter()?
                    .filter_map(Result::ok)
                    .find_map(|(_, v)| record::event_daemon(v.value()));
                if other.is_some() || from_events.is_some() {
                    tracing::warn!(
                        recovered = from_events.is_some(),
                        "the outbox's daemon id is missing or unreadable"
                    );
                }
                let d = from_events.unwrap_or_else(new_daemon_id);
                meta.insert(DAEMON_KEY, d.as_bytes())?;
                changed = true;
                d
            }
        };
        let stored_next = meta
            .get(NEXT_SEQ_KEY)?
            .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);

        let mut good = Vec::new();
        let mut bad = Vec::new();
        for entry in events.iter()? {
            let (key, value) = entry?;
            let (seq, bytes) = (key.value(), value.value());
            match record::decode_event(&daemon, seq, bytes) {
                Ok(event) => good.push(event),
                Err(why) => bad.push((seq, bytes.to_vec(), why)),
            }
        }
        for (seq, bytes, why) in bad {
            tracing::warn!(seq, %why, "outbox: quarantined an event record that does not decode");
            quarantine.insert(("events", seq), bytes.as_slice())?;
            events.remove(seq)?;
            changed = true;
        }
        let after = |last: Option<u64>| last.map_or(0, |s| s.saturating_add(1));
        let last_event = events.last()?.map(|(k, _)| k.value());
        let last_outcome = outcomes.last()?.map(|(k, _)| k.value());
        let last_quarantined = quarantine
            .iter()?
            .filter_map(Result::ok)
            .map(|(k, _)| k.value().1)
            .max();
        let next_seq = stored_next
            .max(after(last_event))
            .max(after(last_outcome))
            .max(after(last_quarantined));
        if next_seq != stored_next {
            meta.insert(NEXT_SEQ_KEY, next_seq.to_be_bytes().as_slice())?;
            changed = true;
        }
        Loaded {
            daemon,
            next_seq,
            events: good,
        }
    };
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(loaded)
}

/// 128 random bits, hex: unique enough that two daemons never share one.
fn new_daemon_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Bytes of free disk that appends leave for recording acks.
const HEADROOM: u64 = 256 * 1024;

/// Free bytes (for an unprivileged writer) on the file system holding
/// `path`, when the system says.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

struct Writer {
    /// `None` after a failed commit: redb must reopen the file after an
    /// I/O error, which the next batch does.
    db: Option<Database>,
    path: PathBuf,
    core: Arc<Mutex<OutboxCore>>,
    changes: watch::Sender<u64>,
    commits: Arc<AtomicU64>,
}

type AppendReply = oneshot::Sender<Result<EventId, OutboxError>>;
type AcksReply = oneshot::Sender<Result<usize, OutboxError>>;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let mut appends = Vec::new();
            let mut acks = Vec::new();
            let mut reads = Vec::new();
            let mut close = None;
            for request in batch {
                match request {
                    Request::Append { kind, reply } => appends.push((kind, reply)),
                    Request::Acks { acks: a, reply } => acks.push((a, reply)),
                    Request::Close { reply } => close = Some(reply),
                    read => reads.push(read),
                }
            }
            self.commit(appends, acks);
            for read in reads {
                self.read(read);
            }
            if let Some(reply) = close {
                drop(self.db.take());
                let _ = reply.send(());
                return;
            }
        }
    }

    fn db(&mut self) -> Result<&Database, OutboxError> {
        if self.db.is_none() {
            let db = Database::create(&self.path).map_err(OutboxError::write)?;
            tracing::info!(path = %self.path.display(), "outbox reopened after a write error");
            self.db = Some(db);
        }
        self.db.as_ref().ok_or(OutboxError::Closed)
    }

    fn commit(&mut self, appends: Vec<(EventKind, AppendReply)>, acks: Vec<(Vec<Ack>, AcksReply)>) {
        let now = SystemTime::now();
        let (daemon, mut seq) = {
            let core = lock(&self.core);
            (core.daemon().to_owned(), core.next_seq())
        };
        let mut new_events = Vec::new();
        for (kind, reply) in appends {
            let event = RelayEvent {
                id: EventId {
                    daemon: daemon.clone(),
                    seq,
                },
                kind,
            };
            match record::encode_event(&event, now) {
                Ok(bytes) => {
                    seq = seq.saturating_add(1);
                    new_events.push((event, bytes, reply));
                }
                Err(reason) => {
                    let _ = reply.send(Err(OutboxError::Unencodable { reason }));
                }
            }
        }
        // (the request it came in, the ack, its stored bytes)
        let mut settled = Vec::new();
        let mut seen = HashSet::new();
        {
            let core = lock(&self.core);
            for (index, (request, _)) in acks.iter().enumerate() {
                for ack in request {
                    if core.is_pending(&ack.id) && !seen.contains(&ack.id.seq) {
                        match record::encode_outcome(ack) {
                            Ok(bytes) => {
                                seen.insert(ack.id.seq);
                                settled.push((index, ack.clone(), bytes));
                            }
                            Err(why) => tracing::warn!(seq = ack.id.seq, %why,
                                "outbox: cannot store an ack; the event stays pending"),
                        }
                    }
                }
            }
        }
        // Never let appends take the last of the disk: recording the
        // cloud's acks needs room too (redb copies on write), and a queue
        // that cannot record acks can never drain.
        if !new_events.is_empty()
            && let Some(free) = free_bytes(&self.path)
            && free < HEADROOM
        {
            let reason = format!(
                "{free} bytes free on the disk of {}, less than the {HEADROOM} kept for recording \
                 the cloud's answers",
                self.path.display()
            );
            for (_, _, reply) in new_events.drain(..) {
                let _ = reply.send(Err(OutboxError::DiskFull {
                    reason: reason.clone(),
                }));
            }
            seq = lock(&self.core).next_seq();
        }
        if new_events.is_empty() && settled.is_empty() {
            for (_, reply) in acks {
                let _ = reply.send(Ok(0));
            }
            return;
        }

        let written = self.write(&new_events, &settled, seq);
        if let Err(err) = written {
            tracing::warn!(%err, "outbox: a commit failed");
            self.db = None;
            for (_, _, reply) in new_events {
                let _ = reply.send(Err(err.clone()));
            }
            for (_, reply) in acks {
                let _ = reply.send(Err(err.for_acks()));
            }
            return;
        }

        let mut replies = Vec::new();
        {
            let mut core = lock(&self.core);
            for (event, _, reply) in new_events {
                let id = core.append(event.kind, now);
                debug_assert_eq!(id, event.id, "only the writer appends");
                replies.push((reply, id));
            }
            for (_, ack, _) in &settled {
                core.ack(ack);
            }
        }
        self.changes.send_modify(|generation| *generation += 1);
        for (reply, id) in replies {
            let _ = reply.send(Ok(id));
        }
        for (index, (_, reply)) in acks.into_iter().enumerate() {
            let count = settled.iter().filter(|(i, _, _)| *i == index).count();
            let _ = reply.send(Ok(count));
        }
    }

    fn write(
        &mut self,
        new_events: &[(RelayEvent, Vec<u8>, AppendReply)],
        settled: &[(usize, Ack, Vec<u8>)],
        next_seq: u64,
    ) -> Result<(), OutboxError> {
        let db = self.db()?;
        let mut txn = db.begin_write().map_err(OutboxError::write)?;
        txn.set_durability(Durability::Immediate)
            .map_err(OutboxError::write)?;
        {
            let mut events = txn.open_table(EVENTS).map_err(OutboxError::write)?;
            for (event, bytes, _) in new_events {
                events
                    .insert(event.id.seq, bytes.as_slice())
                    .map_err(OutboxError::write)?;
            }
            let mut outcomes = txn.open_table(OUTCOMES).map_err(OutboxError::write)?;
            for (_, ack, bytes) in settled {
                events.remove(ack.id.seq).map_err(OutboxError::write)?;
                outcomes
                    .insert(ack.id.seq, bytes.as_slice())
                    .map_err(OutboxError::write)?;
            }
            if !new_events.is_empty() {
                let mut meta = txn.open_table(META).map_err(OutboxError::write)?;
                meta.insert(NEXT_SEQ_KEY, next_seq.to_be_bytes().as_slice())
                    .map_err(OutboxError::write)?;
            }
        }
        txn.commit().map_err(OutboxError::write)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read(&mut self, request: Request) {
        match request {
            Request::Outcome { seq, reply } => {
                let _ = reply.send(self.read_outcome(seq));
            }
            Request::Quarantined { reply } => {
                let _ = reply.send(self.read_quarantine());
            }
            _ => {}
        }
    }

    fn read_outcome(&mut self, seq: u64) -> Result<Option<Ack>, OutboxError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(OutboxError::read)?;
        let table = match txn.open_table(OUTCOMES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(OutboxError::read(e)),
        };
        let Some(value) = table.get(seq).map_err(OutboxError::read)? else {
            return Ok(None);
        };
        record::decode_outcome(value.value())
            .map(Some)
            .map_err(|why| OutboxError::Read {
                reason: format!("the outcome of event {seq} does not decode: {why}"),
            })
    }

    fn read_quarantine(&mut self) -> Result<Vec<Quarantined>, OutboxError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(OutboxError::read)?;
        let table = match txn.open_table(QUARANTINE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(OutboxError::read(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(OutboxError::read)? {
            let (key, value) = entry.map_err(OutboxError::read)?;
            let (table, key) = key.value();
            out.push(Quarantined {
                table: table.to_owned(),
                key,
                bytes: value.value().to_vec(),
            });
        }
        Ok(out)
    }
}
