//! The outbox as a pure state machine: which events are pending, which are
//! on the wire, what to send next and how long to wait after a failure.
//!
//! Time and randomness come in as arguments (`at`, `jitter`), so the
//! property tests drive it through thousands of interleavings in
//! microseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::proto::{Ack, EventId, EventKind, RelayEvent};

/// Capped exponential backoff with jitter.
///
/// After `n` consecutive failures the wait is drawn from
/// `[max(base, c / 2), c]` where `c = min(cap, base · 2^(n-1))`, so it is
/// always within `[base, cap]`, grows until the cap, and is spread by the
/// jitter so that many daemons do not reconnect in step after the cloud
/// restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The shortest wait, and the first one's ceiling.
    pub base: Duration,
    /// The longest wait. A cap below `base` counts as `base`.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (0 counts as 1), with
    /// `jitter` in `[0, 1]` choosing where in the window (out of range or
    /// NaN is clamped).
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let cap = self.cap.max(self.base);
        let doublings = failures.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1 << doublings).min(cap);
        let floor = (ceiling / 2).max(self.base);
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        floor + (ceiling - floor).mul_f64(jitter)
    }
}

/// What an ack did to the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckEffect {
    /// The event was pending; it is settled now and its outcome is final.
    Settled,
    /// No pending event has this id (acknowledged before, never appended,
    /// or another daemon's): nothing changed.
    Unknown,
}

/// The numbers `handoff status --relay` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events appended and not yet acknowledged.
    pub backlog: usize,
    /// Of those, how many are sent on the current connection and await
    /// their ack.
    pub in_flight: usize,
    /// How long ago the oldest unacknowledged event was appended.
    pub oldest_pending_age: Option<Duration>,
    /// Consecutive failed connections since the last ack.
    pub failures: u32,
}

#[derive(Clone, Debug)]
struct Pending {
    kind: EventKind,
    appended_at: SystemTime,
}

/// The outbox's state: pending events in sequence order, the connection's
/// send cursor, and the failure count that sets the next retry's wait.
///
/// Invariants: every pending event has a sequence number below
/// [`OutboxCore::next_seq`]; in-flight events are pending ones at or below
/// the cursor; nothing is in flight while disconnected.
#[derive(Clone, Debug)]
pub struct OutboxCore {
    daemon: String,
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    in_flight: BTreeSet<u64>,
    /// The highest sequence number sent on this connection.
    cursor: Option<u64>,
    connected: bool,
    failures: u32,
    backoff: Backoff,
}

impl OutboxCore {
    /// An empty outbox for daemon `daemon` whose next event gets `next_seq`.
    pub fn new(daemon: impl Into<String>, next_seq: u64, backoff: Backoff) -> OutboxCore {
        OutboxCore {
            daemon: daemon.into(),
            next_seq,
            pending: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            cursor: None,
            connected: false,
            failures: 0,
            backoff,
        }
    }

    /// The daemon id every event id carries.
    pub fn daemon(&self) -> &str {
        &self.daemon
    }

    /// The sequence number the next [`OutboxCore::append`] assigns.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queues `kind` as the next event and returns its id.
    pub fn append(&mut self, kind: EventKind, at: SystemTime) -> EventId {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.pending.insert(
            seq,
            Pending {
                kind,
                appended_at: at,
            },
        );
        self.id(seq)
    }

    /// Puts back an event read from disk after a restart. Ids of another
    /// daemon are refused (returns false); the next sequence number moves
    /// past the event's.
    pub fn restore(&mut self, event: RelayEvent, appended_at: SystemTime) -> bool {
        if event.id.daemon != self.daemon {
            return false;
        }
        let seq = event.id.seq;
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
        self.pending.insert(
            seq,
            Pending {
                kind: event.kind,
                appended_at,
            },
        );
        true
    }

    /// Whether `id` is appended and not yet acknowledged.
    pub fn is_pending(&self, id: &EventId) -> bool {
        id.daemon == self.daemon && self.pending.contains_key(&id.seq)
    }

    /// Every pending event, in sequence order.
    pub fn pending(&self) -> impl Iterator<Item = RelayEvent> + '_ {
        self.pending.iter().map(|(seq, p)| RelayEvent {
            id: self.id(*seq),
            kind: p.kind.clone(),
        })
    }

    /// A connection is up (the cloud answered hello): sending starts again
    /// from the oldest pending event.
    pub fn connected(&mut self) {
        self.connected = true;
        self.cursor = None;
        self.in_flight.clear();
    }

    /// The connection is gone, or never came up: whatever was in flight
    /// will be sent again on the next one. Returns how long to wait before
    /// trying again (`jitter` in `[0, 1]`, from the caller's source).
    pub fn connection_lost(&mut self, jitter: f64) -> Duration {
        self.disconnected();
        self.failures = self.failures.saturating_add(1);
        self.backoff.delay(self.failures, jitter)
    }

    /// The connection was closed on purpose (shutdown): in-flight events
    /// are pending again, and the failure count is left alone.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.cursor = None;
        self.in_flight.clear();
    }

    /// The next events to send, in order, so that at most `max_in_flight`
    /// await their ack. Empty while disconnected.
    pub fn take_batch(&mut self, max_in_flight: usize) -> Vec<RelayEvent> {
        if !self.connected {
            return Vec::new();
        }
        let room = max_in_flight.saturating_sub(self.in_flight.len());
        let start = self.cursor.map_or(0, |c| c.saturating_add(1));
        let batch: Vec<u64> = self
            .pending
            .range(start..)
            .take(room)
            .map(|(seq, _)| *seq)
            .collect();
        if let Some(last) = batch.last() {
            self.cursor = Some(*last);
        }
        self.in_flight.extend(batch.iter().copied());
        batch
            .into_iter()
            .filter_map(|seq| {
                self.pending.get(&seq).map(|p| RelayEvent {
                    id: self.id(seq),
                    kind: p.kind.clone(),
                })
            })
            .collect()
    }

    /// Settles the event `ack` names, whatever its outcome (a refusal is
    /// final too: sending it again would be refused again). An ack for an
    /// unknown, already settled or foreign id changes nothing. An ack that
    /// settles an event counts as progress and resets the backoff.
    pub fn ack(&mut self, ack: &Ack) -> AckEffect {
        if !self.is_pending(&ack.id) {
            return AckEffect::Unknown;
        }
        self.pending.remove(&ack.id.seq);
        self.in_flight.remove(&ack.id.seq);
        self.failures = 0;
        AckEffect::Settled
    }

    /// Backlog, in-flight count and the oldest pending event's age at `now`
    /// (the first in sequence order: events are appended in time order).
    pub fn stats(&self, now: SystemTime) -> Stats {
        Stats {
            backlog: self.pending.len(),
            in_flight: self.in_flight.len(),
            oldest_pending_age: self
                .pending
                .values()
                .next()
                .map(|p| p.appended_at)
                .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO)),
            failures: self.failures,
        }
    }

    fn id(&self, seq: u64) -> EventId {
        EventId {
            daemon: self.daemon.clone(),
            seq,
        }
    }
}
