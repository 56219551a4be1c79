//! The pure core against a model: a cloud that applies each id once in the
//! order it receives them, over connections that may be cut anywhere.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::core::{AckEffect, Backoff, OutboxCore};
use crate::proto::{Ack, EventId, EventKind, Outcome, RelayEvent, Released};

const DAEMON: &str = "d1";

fn kind(n: u64) -> EventKind {
    EventKind::Released(Released {
        place: Some(crate::place::PlaceId(format!("place-{}", n % 3))),
        serial: None,
    })
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn ack(id: EventId, outcome: Outcome) -> Ack {
    Ack {
        id,
        outcome,
        link: None,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append,
    Connect,
    Send(usize),
    /// The cloud reads up to n frames and answers each.
    CloudReads(usize),
    /// The daemon reads up to n acks.
    DaemonReads(usize),
    /// The connection breaks: frames and acks on the wire are lost.
    Cut(u8),
    /// A stray ack: an id never appended, another daemon's, or an old one.
    StrayAck(u64, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Append),
        1 => Just(Op::Connect),
        3 => (1usize..8).prop_map(Op::Send),
        3 => (0usize..6).prop_map(Op::CloudReads),
        3 => (0usize..6).prop_map(Op::DaemonReads),
        1 => any::<u8>().prop_map(Op::Cut),
        1 => (0u64..40, any::<bool>()).prop_map(|(s, f)| Op::StrayAck(s, f)),
    ]
}

/// The fake cloud: applies an id once, refuses every fifth, acknowledges
/// a redelivery as a duplicate.
#[derive(Default)]
struct Cloud {
    applied: Vec<u64>,
    seen: BTreeMap<u64, Outcome>,
}

impl Cloud {
    fn receive(&mut self, event: &RelayEvent) -> Ack {
        let seq = event.id.seq;
        if self.seen.contains_key(&seq) {
            return ack(event.id.clone(), Outcome::Duplicate);
        }
        let outcome = if seq % 5 == 4 {
            Outcome::Refused {
                rule: "rule".into(),
                guidance: format!("guidance {seq}"),
            }
        } else {
            self.applied.push(seq);
            Outcome::Applied
        };
        self.seen.insert(seq, outcome.clone());
        ack(event.id.clone(), outcome)
    }
}

struct World {
    core: OutboxCore,
    cloud: Cloud,
    to_cloud: VecDeque<RelayEvent>,
    to_daemon: VecDeque<Ack>,
    appended: Vec<EventId>,
    settled: BTreeMap<u64, Outcome>,
    max_in_flight: usize,
}

impl World {
    fn new(max_in_flight: usize) -> World {
        World {
            core: OutboxCore::new(DAEMON, 0, Backoff::default()),
            cloud: Cloud::default(),
            to_cloud: VecDeque::new(),
            to_daemon: VecDeque::new(),
            appended: Vec::new(),
            settled: BTreeMap::new(),
            max_in_flight,
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Append => {
                let n = self.appended.len() as u64;
                let id = self.core.append(kind(n), t0() + Duration::from_secs(n));
                assert_eq!(id.seq, n, "sequence numbers are dense from 0");
                assert_eq!(id.daemon, DAEMON);
                self.appended.push(id);
            }
            Op::Connect => {
                self.to_cloud.clear();
                self.to_daemon.clear();
                self.core.connected();
            }
            Op::Send(n) => {
                let batch = self.core.take_batch((*n).min(self.max_in_flight));
                let stats = self.core.stats(t0());
                assert!(stats.in_flight <= self.max_in_flight);
                for event in batch {
                    assert!(
                        !self.settled.contains_key(&event.id.seq),
                        "a settled event is never sent again"
                    );
                    if let Some(last) = self.to_cloud.back() {
                        assert!(last.id.seq < event.id.seq, "sent in order");
                    }
                    self.to_cloud.push_back(event);
                }
            }
            Op::CloudReads(n) => {
                for _ in 0..*n {
                    let Some(event) = self.to_cloud.pop_front() else {
                        break;
                    };
                    let answer = self.cloud.receive(&event);
                    self.to_daemon.push_back(answer);
                }
            }
            Op::DaemonReads(n) => {
                for _ in 0..*n {
                    let Some(a) = self.to_daemon.pop_front() else {
                        break;
                    };
                    let was_pending = self.core.is_pending(&a.id);
                    let effect = self.core.ack(&a);
                    if was_pending {
                        assert_eq!(effect, AckEffect::Settled);
                        self.settled.insert(a.id.seq, a.outcome.clone());
                    } else {
                        assert_eq!(effect, AckEffect::Unknown);
                    }
                }
            }
            Op::Cut(jitter) => {
                self.to_cloud.clear();
                self.to_daemon.clear();
                let backoff = Backoff::default();
                let wait = self.core.connection_lost(f64::from(*jitter) / 255.0);
                assert!(wait >= backoff.base && wait <= backoff.cap, "{wait:?}");
                assert!(self.core.take_batch(8).is_empty(), "nothing sent offline");
            }
            Op::StrayAck(seq, foreign) => {
                let daemon = if *foreign { "other" } else { DAEMON };
                let stray = ack(
                    EventId {
                        daemon: daemon.into(),
                        seq: *seq,
                    },
                    Outcome::Applied,
                );
                let pending = self.core.is_pending(&stray.id);
                if !pending {
                    let before = self.core.stats(t0());
                    assert_eq!(self.core.ack(&stray), AckEffect::Unknown);
                    assert_eq!(self.core.stats(t0()).backlog, before.backlog);
                }
                // A stray ack for a pending id is a cloud saying it applied
                // it; that is not harmless to model, so it is not sent.
            }
        }
        self.check();
    }

    fn check(&self) {
        let applied = &self.cloud.applied;
        assert!(
            applied.windows(2).all(|w| w[0] < w[1]),
            "the cloud applied out of order: {applied:?}"
        );
        let stats = self.core.stats(t0() + Duration::from_secs(10_000));
        assert_eq!(stats.backlog, self.appended.len() - self.settled.len());
        for (seq, outcome) in &self.settled {
            assert!(self.cloud.seen.contains_key(seq));
            if !matches!(outcome, Outcome::Duplicate) {
                assert_eq!(self.cloud.seen.get(seq), Some(outcome));
            }
        }
    }

    /// A reliable connection until everything is settled.
    fn drain(&mut self) {
        self.step(&Op::Connect);
        for _ in 0..10_000 {
            if self.core.stats(t0()).backlog == 0 {
                return;
            }
            self.step(&Op::Send(self.max_in_flight));
            self.step(&Op::CloudReads(usize::MAX));
            self.step(&Op::DaemonReads(usize::MAX));
        }
        panic!("the outbox did not drain");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_event_is_delivered_once_in_order(
        ops in proptest::collection::vec(op(), 0..200),
        max_in_flight in 1usize..10,
    ) {
        let mut world = World::new(max_in_flight);
        for op in &ops {
            world.step(op);
        }
        world.drain();
        // None lost: every appended id reached the cloud, and the ones it
        // applied were applied in append order, each once.
        let expected: Vec<u64> = (0..world.appended.len() as u64).filter(|s| s % 5 != 4).collect();
        prop_assert_eq!(&world.cloud.applied, &expected);
        prop_assert_eq!(world.settled.len(), world.appended.len());
        prop_assert_eq!(world.core.stats(t0()).oldest_pending_age, None);
    }

    #[test]
    fn backoff_stays_within_base_and_cap(
        base_ms in 1u64..10_000,
        cap_ms in 0u64..1_000_000,
        failures in 0u32..200,
        jitter in proptest::num::f64::ANY,
    ) {
        let backoff = Backoff {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
        };
        let wait = backoff.delay(failures, jitter);
        prop_assert!(wait >= backoff.base);
        prop_assert!(wait <= backoff.cap.max(backoff.base));
    }

    #[test]
    fn backoff_ceiling_grows_until_the_cap(failures in 1u32..40) {
        let backoff = Backoff::default();
        let top = backoff.delay(failures, 1.0);
        let next_top = backoff.delay(failures + 1, 1.0);
        prop_assert!(next_top >= top);
        prop_assert!(backoff.delay(failures, 0.0) <= top);
    }
}

#[test]
fn refused_ack_settles_the_event_with_its_guidance() {
    let mut core = OutboxCore::new(DAEMON, 0, Backoff::default());
    let id = core.append(kind(0), t0());
    core.connected();
    assert_eq!(core.take_batch(4).len(), 1);
    let refusal = ack(
        id.clone(),
        Outcome::Refused {
            rule: "homeowner-exists".into(),
            guidance: "ask the homeowner for Remote Assistance".into(),
        },
    );
    assert_eq!(core.ack(&refusal), AckEffect::Settled);
    assert!(!core.is_pending(&id));
    assert_eq!(
        core.ack(&refusal),
        AckEffect::Unknown,
        "a second ack is harmless"
    );
}

#[test]
fn backoff_doubles_then_stops_at_the_cap_and_an_ack_resets_it() {
    let backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(8),
    };
    let mut core = OutboxCore::new(DAEMON, 0, backoff);
    let tops: Vec<u64> = (0..6)
        .map(|_| core.connection_lost(1.0).as_secs())
        .collect();
    assert_eq!(tops, [1, 2, 4, 8, 8, 8]);
    let id = core.append(kind(0), t0());
    core.connected();
    core.take_batch(1);
    core.ack(&ack(id, Outcome::Applied));
    assert_eq!(core.stats(t0()).failures, 0);
    assert_eq!(core.connection_lost(1.0), Duration::from_secs(1));
}

#[test]
fn oldest_pending_age_is_that_of_the_first_unacknowledged_event() {
    let mut core = OutboxCore::new(DAEMON, 7, Backoff::default());
    let first = core.append(kind(0), t0());
    core.append(kind(1), t0() + Duration::from_secs(30));
    assert_eq!(first.seq, 7);
    let now = t0() + Duration::from_secs(100);
    assert_eq!(
        core.stats(now).oldest_pending_age,
        Some(Duration::from_secs(100))
    );
    core.ack(&ack(first, Outcome::Applied));
    assert_eq!(
        core.stats(now).oldest_pending_age,
        Some(Duration::from_secs(70))
    );
}

#[test]
fn restore_moves_the_next_sequence_number_past_restored_events() {
    let mut core = OutboxCore::new(DAEMON, 0, Backoff::default());
    let event = RelayEvent {
        id: EventId {
            daemon: DAEMON.into(),
            seq: 41,
        },
        kind: kind(0),
    };
    assert!(core.restore(event.clone(), t0()));
    assert_eq!(core.next_seq(), 42);
    let foreign = RelayEvent {
        id: EventId {
            daemon: "other".into(),
            seq: 99,
        },
        ..event
    };
    assert!(!core.restore(foreign, t0()));
    assert_eq!(core.next_seq(), 42);
}
