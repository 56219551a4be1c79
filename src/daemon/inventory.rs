//! The daemon's live inventory: what discovery knows now, shared with the
//! control socket. Discovery's [`crate::discovery::Inventory`] stays the
//! one that decides added / changed / removed; this is its mirror, kept by
//! applying those events, so clients read it without touching the browse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::metrics::DaemonCounters;
use crate::discovery::{Identity, InventoryEvent};
use crate::processor::ProcessorInfo;
use crate::proto::control::{HealthReport, RelayHealth};

/// How many changes a watching client may fall behind before it is told it
/// lagged and is disconnected: a fleet of 500 appearing at once fits.
pub const WATCH_BACKLOG: usize = 4096;

/// The inventory as clients see it, with when it last changed.
pub struct LiveInventory {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<InventoryEvent>>,
    started: Instant,
    counters: DaemonCounters,
    /// Woken when what the systemd STATUS line shows may have changed
    /// (see [`LiveInventory::changed`]).
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Boxed: a map's node holds room for eleven values, and a
    /// [`ProcessorInfo`] is a few hundred bytes.
    processors: BTreeMap<Identity, Box<ProcessorInfo>>,
    last_event: Option<Instant>,
    /// Published by the relay task; `None` while the daemon relays to no
    /// cloud.
    relay: Option<RelayHealth>,
}

/// Which facts differ, in the words discovery uses for a change.
fn differences(a: &ProcessorInfo, b: &ProcessorInfo) -> Vec<&'static str> {
    let status = |p: &ProcessorInfo| {
        (
            p.st_status.clone(),
            p.nw_status.clone(),
            p.fw_status.clone(),
            p.claim_status.clone(),
        )
    };
    [
        ("addresses", a.addresses != b.addresses),
        ("firmware", a.firmware != b.firmware),
        ("status", status(a) != status(b)),
        ("mac", a.mac != b.mac),
        ("host", a.host != b.host),
        (
            "system_type",
            (&a.systype, a.devclass) != (&b.systype, b.devclass),
        ),
        ("instance", a.instance != b.instance),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// The key discovery's inventory files a processor under (its serial, else
/// its MAC, else its instance name), so the order is the same: by id.
pub(super) fn identity(p: &ProcessorInfo) -> Identity {
    Identity::of(p, &format!("{}.{}", p.instance, p.service_type))
}

impl LiveInventory {
    pub fn new(started: Instant) -> LiveInventory {
        let (events, _) = broadcast::channel(WATCH_BACKLOG);
        LiveInventory {
            state: Mutex::default(),
            events,
            started,
            counters: DaemonCounters::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the map is
        // still a consistent map.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one change discovery reported at `now`, and tells every
    /// watcher. Returns the change as watchers saw it, if it was one.
    ///
    /// After a reload restarted the browse, discovery reports every
    /// processor again as added: one already known becomes a change when
    /// it differs and nothing when it does not, so watchers see no churn.
    pub fn apply(&self, event: InventoryEvent, now: Instant) -> Option<Arc<InventoryEvent>> {
        let mut state = self.lock();
        let event = match event {
            InventoryEvent::Added(p) => {
                match state.processors.insert(identity(&p), Box::new(p.clone())) {
                    None => InventoryEvent::Added(p),
                    Some(before) if *before == p => return None,
                    Some(before) => InventoryEvent::Changed {
                        changes: differences(&before, &p),
                        before,
                        after: Box::new(p),
                    },
                }
            }
            InventoryEvent::Changed {
                before,
                after,
                changes,
            } => {
                state.processors.insert(identity(&after), after.clone());
                InventoryEvent::Changed {
                    before,
                    after,
                    changes,
                }
            }
            InventoryEvent::Removed(p) => {
                state.processors.remove(&identity(&p))?;
                InventoryEvent::Removed(p)
            }
        };
        state.last_event = Some(now);
        self.counters.discovery_event(&event);
        let event = Arc::new(event);
        // Sent under the lock, so that a subscriber's snapshot and its
        // first event never overlap or leave a gap. No receiver is fine.
        let _ = self.events.send(event.clone());
        self.changed.notify_one();
        Some(event)
    }

    /// Who is known now.
    pub fn identities(&self) -> BTreeSet<Identity> {
        self.lock().processors.keys().cloned().collect()
    }

    /// Removes those of `stale` still known (a restarted browse did not
    /// find them again), telling watchers; returns the removals.
    pub fn expire(&self, stale: &BTreeSet<Identity>, now: Instant) -> Vec<Arc<InventoryEvent>> {
        let mut gone = Vec::new();
        for id in stale {
            let Some(p) = self.lock().processors.get(id).cloned() else {
                continue;
            };
            gone.extend(self.apply(InventoryEvent::Removed(*p), now));
        }
        gone
    }

    /// The processors now, by id.
    pub fn snapshot(&self) -> Vec<ProcessorInfo> {
        self.lock()
            .processors
            .values()
            .map(|p| (**p).clone())
            .collect()
    }

    /// The processors now, and every change after them.
    pub fn subscribe(&self) -> (Vec<ProcessorInfo>, broadcast::Receiver<Arc<InventoryEvent>>) {
        let state = self.lock();
        let rx = self.events.subscribe();
        let now = state.processors.values().map(|p| (**p).clone()).collect();
        (now, rx)
    }

    pub fn len(&self) -> usize {
        self.lock().processors.len()
    }

    /// Clients watching now.
    pub fn watchers(&self) -> usize {
        self.events.receiver_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the daemon counts for its metrics ([`super::metrics`]).
    pub fn counters(&self) -> &DaemonCounters {
        &self.counters
    }

    /// The hook for the relay: its backlog as `handoff health` shows it.
    pub fn set_relay_health(&self, relay: Option<RelayHealth>) {
        self.lock().relay = relay;
        self.changed.notify_one();
    }

    /// Returns once the inventory or the relay's health changed since the
    /// last return (at once if it did meanwhile): for the one task that
    /// shows them to systemd, which then sleeps instead of polling.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The health report as of `now`.
    pub fn health(&self, request: u64, now: Instant) -> HealthReport {
        let state = self.lock();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        HealthReport {
            request,
            processors: state.processors.len() as u64,
            uptime_ms: ms(now.saturating_duration_since(self.started)),
            last_event_ms: state
                .last_event
                .map(|at| ms(now.saturating_duration_since(at))),
            pid: std::process::id(),
            software: concat!("handoff ", env!("CARGO_PKG_VERSION")).into(),
            relay: state.relay.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::discovery::Inventory;
    use crate::processor::{Serial, ServiceRecord, TxtEntry};

    fn record(
        instance: &str,
        ty: &str,
        serial: Option<u32>,
        mac: &str,
        addr: &str,
    ) -> ServiceRecord {
        ServiceRecord {
            fullname: format!("{instance}.{ty}"),
            service_type: ty.into(),
            host: serial.map(|s| Serial(s).host_name()).unwrap_or_default(),
            port: 22,
            addresses: [addr.parse().unwrap()].into_iter().collect(),
            txt: vec![TxtEntry::new("MACADDR", mac.as_bytes())],
        }
    }

    /// Whatever discovery's inventory goes through, the mirror holds the
    /// same processors in the same order.
    #[test]
    fn the_mirror_matches_discoverys_inventory_after_every_event() {
        let lutron = "_lutron._tcp.local.";
        let leap = "_leap._tcp.local.";
        let steps: Vec<(bool, ServiceRecord)> = vec![
            (
                true,
                record("A", lutron, Some(30), "02:00:00:00:00:01", "127.0.1.1"),
            ),
            (
                true,
                record("B", lutron, Some(10), "02:00:00:00:00:02", "127.0.1.2"),
            ),
            (
                true,
                record("A", leap, Some(30), "02:00:00:00:00:01", "127.0.1.9"),
            ),
            (
                true,
                record("C", lutron, None, "02:00:00:00:00:03", "127.0.1.3"),
            ),
            (true, record("D", lutron, None, "garbage", "127.0.1.4")),
            (
                true,
                record("B", lutron, Some(10), "02:00:00:00:00:02", "127.0.2.2"),
            ),
            (
                true,
                record("A", lutron, Some(20), "02:00:00:00:00:04", "127.0.1.5"),
            ),
            (false, record("A", leap, Some(30), "", "127.0.1.1")),
            (false, record("D", lutron, None, "", "127.0.1.1")),
            (false, record("C", lutron, None, "", "127.0.1.1")),
        ];
        let t0 = Instant::now();
        let mut inventory = Inventory::new();
        let live = LiveInventory::new(t0);
        for (i, (resolved, rec)) in steps.into_iter().enumerate() {
            let events = if resolved {
                inventory.resolved(&rec.fullname, ProcessorInfo::from_record(&rec))
            } else {
                inventory.removed(&rec.fullname)
            };
            for ev in events {
                live.apply(ev, t0);
            }
            let want: Vec<ProcessorInfo> = inventory.processors().cloned().collect();
            assert_eq!(live.snapshot(), want, "after step {i}");
        }
        // Serial 30 is still known under name A, which serial 20 took over
        // (processors share names; a liveness round takes it out if silent).
        assert_eq!(live.len(), 3);
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_snapshot_then_each_later_change() {
        let t0 = Instant::now();
        let live = LiveInventory::new(t0);
        let a = ProcessorInfo::from_record(&record(
            "A",
            "_lutron._tcp.local.",
            Some(1),
            "02:00:00:00:00:01",
            "127.0.1.1",
        ));
        let b = ProcessorInfo::from_record(&record(
            "B",
            "_lutron._tcp.local.",
            Some(2),
            "02:00:00:00:00:02",
            "127.0.1.2",
        ));
        live.apply(InventoryEvent::Added(a.clone()), t0);
        let (snapshot, mut rx) = live.subscribe();
        assert_eq!(snapshot, vec![a.clone()]);
        live.apply(InventoryEvent::Added(b.clone()), t0);
        live.apply(InventoryEvent::Removed(a.clone()), t0);
        assert_eq!(*rx.recv().await.unwrap(), InventoryEvent::Added(b));
        assert_eq!(*rx.recv().await.unwrap(), InventoryEvent::Removed(a));
    }

    #[test]
    fn a_restarted_browse_adds_nothing_twice_and_expires_who_it_did_not_find() {
        let t0 = Instant::now();
        let live = LiveInventory::new(t0);
        let ty = "_lutron._tcp.local.";
        let a =
            ProcessorInfo::from_record(&record("A", ty, Some(1), "02:00:00:00:00:01", "127.0.1.1"));
        let b =
            ProcessorInfo::from_record(&record("B", ty, Some(2), "02:00:00:00:00:02", "127.0.1.2"));
        live.apply(InventoryEvent::Added(a.clone()), t0);
        live.apply(InventoryEvent::Added(b.clone()), t0);
        let before = live.identities();
        let mut rx = live.subscribe().1;
        // The new browse finds A unchanged and B at a new address.
        assert_eq!(live.apply(InventoryEvent::Added(a.clone()), t0), None);
        let moved =
            ProcessorInfo::from_record(&record("B", ty, Some(2), "02:00:00:00:00:02", "127.0.2.2"));
        let ev = live
            .apply(InventoryEvent::Added(moved.clone()), t0)
            .unwrap();
        assert!(
            matches!(&*ev, InventoryEvent::Changed { changes, after, .. } if changes == &vec!["addresses"] && **after == moved),
            "{ev:?}"
        );
        assert_eq!(*rx.try_recv().unwrap(), *ev);
        assert!(rx.try_recv().is_err(), "nothing for the unchanged one");
        // Both were found again: nothing to expire.
        let mut stale = before;
        stale.remove(&identity(&a));
        stale.remove(&identity(&moved));
        assert!(live.expire(&stale, t0).is_empty());
        let c =
            ProcessorInfo::from_record(&record("C", ty, Some(3), "02:00:00:00:00:03", "127.0.1.3"));
        live.apply(InventoryEvent::Added(c.clone()), t0);
        let stale = BTreeSet::from([identity(&c)]);
        let gone = live.expire(&stale, t0);
        assert_eq!(gone.len(), 1);
        assert_eq!(*gone[0], InventoryEvent::Removed(c));
        assert_eq!(live.snapshot(), vec![a, moved]);
    }

    #[test]
    fn health_counts_from_the_injected_clock_and_has_no_relay_yet() {
        let t0 = Instant::now();
        let live = LiveInventory::new(t0);
        let before = live.health(1, t0 + Duration::from_secs(5));
        assert_eq!(before.uptime_ms, 5000);
        assert_eq!(before.last_event_ms, None);
        assert_eq!(before.relay, None);
        let p = ProcessorInfo::from_record(&record(
            "A",
            "_lutron._tcp.local.",
            Some(1),
            "02:00:00:00:00:01",
            "127.0.1.1",
        ));
        live.apply(InventoryEvent::Added(p), t0 + Duration::from_secs(2));
        let after = live.health(2, t0 + Duration::from_secs(9));
        assert_eq!((after.request, after.processors), (2, 1));
        assert_eq!(after.last_event_ms, Some(7000));
        assert_eq!(after.uptime_ms, 9000);
    }
}
