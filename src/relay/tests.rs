//! The relay against a fake cloud over `tokio::io::duplex`: the cloud
//! applies each id once, counts, and misbehaves as each test asks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::{Connector, RelayConfig, RelayStatus, read_message, run, status_channel};
use crate::outbox::{Backoff, Outbox};
use crate::place::PlaceId;
use crate::proto::{
    self, Ack, ErrorFrame, EventId, EventKind, FrameConnection, HelloAck, Outcome, RelayMessage,
    Released,
};
use crate::shutdown::{ShutdownTrigger, shutdown_channel};

/// What one connection of the fake cloud does.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Acks every event.
    Serve,
    /// Applies `apply` events of this connection, acks only the first
    /// `ack` of them, then drops the connection.
    DropAfter { apply: usize, ack: usize },
    /// Answers hello, then sends bytes that are no frame.
    Garbage,
    /// Answers the first event with an error frame.
    ErrorFrame,
    /// Reads and never answers an event.
    Silent,
    /// Answers hello with an "unsupported-version" error frame.
    RefuseHello,
    /// Answers event 0 with "unknown-event" (as a cloud that does not know
    /// its kind), and acks the others.
    UnknownFirst,
}

#[derive(Default)]
struct CloudState {
    /// How many times each id was applied.
    applied: BTreeMap<EventId, usize>,
    /// The order of first application.
    order: Vec<EventId>,
    duplicates: usize,
    /// seq → the refusal to answer.
    refuse: BTreeMap<u64, (String, String)>,
}

#[derive(Clone, Default)]
struct FakeCloud {
    state: Arc<Mutex<CloudState>>,
    connections: Arc<AtomicUsize>,
}

impl FakeCloud {
    /// A connector whose n-th connection behaves as `plan(n)`.
    fn connector(&self, plan: fn(usize) -> Behaviour) -> impl Connector + use<> {
        let cloud = self.clone();
        move || {
            let cloud = cloud.clone();
            async move {
                let n = cloud.connections.fetch_add(1, Ordering::SeqCst);
                let (daemon_end, cloud_end) = tokio::io::duplex(16 * 1024);
                tokio::spawn(async move { cloud.serve(cloud_end, plan(n)).await });
                Ok(daemon_end)
            }
        }
    }

    async fn serve(self, stream: DuplexStream, behaviour: Behaviour) {
        let (rd, mut wr) = tokio::io::split(stream);
        let mut reader = FrameConnection::new(rd);
        match read_message(&mut reader).await {
            Ok(RelayMessage::Hello(hello)) => assert_eq!(hello.versions, [1]),
            other => panic!("expected hello, got {other:?}"),
        }
        if let Behaviour::RefuseHello = behaviour {
            let frame = ErrorFrame {
                code: "unsupported-version".into(),
                reason: "this cloud speaks version 2 only".into(),
                id: None,
                query: None,
            };
            send(&mut wr, RelayMessage::Error(frame)).await;
            return;
        }
        send(&mut wr, RelayMessage::HelloAck(HelloAck { version: 1 })).await;
        if let Behaviour::Garbage = behaviour {
            let _ = wr.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).await;
            // Hold the connection until the daemon drops it.
            while read_message(&mut reader).await.is_ok() {}
            return;
        }
        let mut seen = 0;
        while let Ok(msg) = read_message(&mut reader).await {
            let RelayMessage::Event(event) = msg else {
                panic!("expected an event, got {msg:?}");
            };
            seen += 1;
            match behaviour {
                Behaviour::Silent => continue,
                Behaviour::ErrorFrame => {
                    let frame = ErrorFrame {
                        code: "internal".into(),
                        reason: "the fake cloud is having a bad day".into(),
                        id: Some(event.id.clone()),
                        query: None,
                    };
                    send(&mut wr, RelayMessage::Error(frame)).await;
                    while read_message(&mut reader).await.is_ok() {}
                    return;
                }
                _ => {}
            }
            if let Behaviour::UnknownFirst = behaviour
                && event.id.seq == 0
            {
                let frame = ErrorFrame {
                    code: "unknown-event".into(),
                    reason: "no event kind \"released\" here".into(),
                    id: Some(event.id.clone()),
                    query: None,
                };
                send(&mut wr, RelayMessage::Error(frame)).await;
                continue;
            }
            let ack = self.apply(&event.id);
            if let Behaviour::DropAfter { apply, ack: acked } = behaviour
                && seen > acked
            {
                if seen >= apply {
                    return;
                }
                continue;
            }
            send(&mut wr, RelayMessage::Ack(ack)).await;
        }
    }

    fn apply(&self, id: &EventId) -> Ack {
        let mut state = self.state.lock().unwrap();
        let count = state.applied.entry(id.clone()).or_insert(0);
        let outcome = if *count > 0 {
            state.duplicates += 1;
            Outcome::Duplicate
        } else {
            *count += 1;
            state.order.push(id.clone());
            match state.refuse.get(&id.seq) {
                Some((rule, guidance)) => Outcome::Refused {
                    rule: rule.clone(),
                    guidance: guidance.clone(),
                },
                None => Outcome::Applied,
            }
        };
        Ack {
            id: id.clone(),
            outcome,
            link: None,
        }
    }
}

async fn send<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, msg: RelayMessage) {
    let frame = proto::encode(&msg).unwrap();
    let _ = wr.write_all(&frame).await;
}

fn released(n: usize) -> EventKind {
    EventKind::Released(Released {
        place: Some(PlaceId(format!("place-{}", n % 4))),
        serial: None,
    })
}

fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
    }
}

fn config(max_in_flight: usize) -> RelayConfig {
    RelayConfig {
        max_in_flight,
        jitter_seed: Some(7),
        ..RelayConfig::default()
    }
}

struct Running {
    stop: ShutdownTrigger,
    status: watch::Receiver<RelayStatus>,
    task: tokio::task::JoinHandle<()>,
}

fn start(outbox: &Outbox, connector: impl Connector + 'static, config: RelayConfig) -> Running {
    let (stop, shutdown) = shutdown_channel();
    let (status_tx, status) = status_channel(outbox);
    let task = tokio::spawn(run(outbox.clone(), connector, config, shutdown, status_tx));
    Running { stop, status, task }
}

impl Running {
    /// Waits (a hang guard, not a timing assertion) for `f` to hold.
    async fn until(&mut self, what: &str, f: impl FnMut(&RelayStatus) -> bool) -> RelayStatus {
        let got =
            match tokio::time::timeout(Duration::from_secs(120), self.status.wait_for(f)).await {
                Ok(Ok(s)) => Some(s.clone()),
                _ => None,
            };
        got.unwrap_or_else(|| {
            panic!(
                "never reached: {what}; last status {:?}",
                *self.status.borrow()
            )
        })
    }

    async fn stop(self) {
        self.stop.fire();
        self.task.await.unwrap();
    }
}

async fn outbox_in(dir: &tempfile::TempDir) -> Outbox {
    Outbox::open_with(dir.path().join("outbox.redb"), fast_backoff()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_event_in_order_including_ones_appended_while_connected() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let mut ids = Vec::new();
    for n in 0..150 {
        ids.push(outbox.append(released(n)).await.unwrap());
    }
    let cloud = FakeCloud::default();
    let mut relay = start(&outbox, cloud.connector(|_| Behaviour::Serve), config(16));
    relay
        .until("the first 150 acknowledged", |s| s.acknowledged == 150)
        .await;
    for n in 150..300 {
        ids.push(outbox.append(released(n)).await.unwrap());
    }
    let status = relay
        .until("all 300 acknowledged", |s| {
            s.acknowledged == 300 && s.backlog == 0
        })
        .await;
    assert!(status.connected);
    assert_eq!(status.last_error, None);
    relay.stop().await;

    {
        let state = cloud.state.lock().unwrap();
        assert_eq!(state.order, ids, "applied in append order");
        assert!(state.applied.values().all(|&n| n == 1));
        assert_eq!(state.duplicates, 0);
        assert_eq!(cloud.connections.load(Ordering::SeqCst), 1);
    }
    for id in &ids {
        assert_eq!(
            outbox.outcome(id).await.unwrap().unwrap().outcome,
            Outcome::Applied
        );
    }
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reopened_and_redeliveries_are_not_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let mut ids = Vec::new();
    for n in 0..100 {
        ids.push(outbox.append(released(n)).await.unwrap());
    }
    let cloud = FakeCloud::default();
    let plan = |n| match n {
        0 => Behaviour::DropAfter { apply: 9, ack: 4 },
        1 => Behaviour::DropAfter { apply: 8, ack: 0 },
        2 => Behaviour::DropAfter { apply: 33, ack: 30 },
        _ => Behaviour::Serve,
    };
    let mut relay = start(&outbox, cloud.connector(plan), config(8));
    let status = relay.until("all acknowledged", |s| s.backlog == 0).await;
    assert!(status.last_error.is_some(), "the drops were reported");
    relay.stop().await;
    // For the metrics: every lost connection counted once, the
    // redeliveries' acks as duplicates.
    let connections = cloud.connections.load(Ordering::SeqCst) as u64;
    assert_eq!(status.reconnects, connections - 1, "{status:?}");
    let a = status.answered;
    assert!(
        a.duplicate > 0 && a.applied + a.duplicate >= 100 && a.refused == 0,
        "{a:?}"
    );

    {
        let state = cloud.state.lock().unwrap();
        assert_eq!(state.order, ids, "every event applied, in order");
        for (id, count) in &state.applied {
            assert_eq!(*count, 1, "{id:?} applied {count} times");
        }
        assert!(state.duplicates > 0, "the lost acks led to redeliveries");
        assert!(cloud.connections.load(Ordering::SeqCst) >= 4);
    }
    // A redelivered event's outcome is the duplicate ack, since the first
    // ack never arrived; it is settled either way.
    for id in &ids {
        assert!(outbox.outcome(id).await.unwrap().is_some(), "{id:?}");
    }
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_cloud_makes_the_relay_back_off_and_report_it() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let id = outbox.append(released(0)).await.unwrap();
    let cloud = FakeCloud::default();
    let mut relay = start(&outbox, cloud.connector(|_| Behaviour::Garbage), config(8));
    let status = relay
        .until("three failures", |_| {
            cloud.connections.load(Ordering::SeqCst) >= 3
        })
        .await;
    let status = if status.last_error.is_none() {
        relay
            .until("an error reported", |s| s.last_error.is_some())
            .await
    } else {
        status
    };
    let error = status.last_error.unwrap();
    assert!(error.contains("cannot be read"), "{error}");
    assert!(
        outbox.stats(std::time::SystemTime::now()).failures >= 2,
        "backing off"
    );
    assert!(outbox.is_pending(&id), "nothing settles without an ack");
    assert_eq!(status.backlog, 1);
    relay.stop().await;
    assert!(cloud.state.lock().unwrap().applied.is_empty());
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_frame_is_reported_and_the_event_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let id = outbox.append(released(0)).await.unwrap();
    let cloud = FakeCloud::default();
    let plan = |n| {
        if n < 2 {
            Behaviour::ErrorFrame
        } else {
            Behaviour::Serve
        }
    };
    let mut relay = start(&outbox, cloud.connector(plan), config(8));
    let status = relay.until("delivered", |s| s.backlog == 0).await;
    let error = status.last_error.unwrap();
    assert!(
        error.contains("internal") && error.contains("bad day"),
        "{error}"
    );
    relay.stop().await;
    assert_eq!(cloud.state.lock().unwrap().order, vec![id]);
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_the_command_that_caused_it() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let cloud = FakeCloud::default();
    cloud.state.lock().unwrap().refuse.insert(
        1,
        (
            "homeowner-exists".into(),
            "ask the homeowner for Remote Assistance".into(),
        ),
    );
    let mut relay = start(&outbox, cloud.connector(|_| Behaviour::Serve), config(8));
    let fine = outbox.append(released(0)).await.unwrap();
    let refused = outbox.append(released(1)).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(120), outbox.wait_outcome(&refused))
        .await
        .expect("the refusal arrives")
        .unwrap();
    assert_eq!(
        waited.outcome,
        Outcome::Refused {
            rule: "homeowner-exists".into(),
            guidance: "ask the homeowner for Remote Assistance".into(),
        }
    );
    assert_eq!(
        outbox.wait_outcome(&fine).await.unwrap().outcome,
        Outcome::Applied
    );
    let status = relay
        .until("both counted", |s| {
            s.answered.applied + s.answered.refused == 2
        })
        .await;
    let counted = super::Answered {
        applied: 1,
        duplicate: 0,
        refused: 1,
    };
    assert_eq!(status.answered, counted);
    relay.stop().await;
    outbox.close().await;

    let outbox = outbox_in(&dir).await;
    assert!(matches!(
        outbox.outcome(&refused).await.unwrap().unwrap().outcome,
        Outcome::Refused { .. }
    ));
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_events_in_flight_keeps_them_pending() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(outbox.append(released(n)).await.unwrap());
    }
    let cloud = FakeCloud::default();
    let mut relay = start(&outbox, cloud.connector(|_| Behaviour::Silent), config(8));
    relay.until("events in flight", |s| s.in_flight == 8).await;
    relay.stop().await;
    assert_eq!(outbox.stats(std::time::SystemTime::now()).in_flight, 0);
    outbox.close().await;

    let outbox = outbox_in(&dir).await;
    let pending: Vec<EventId> = outbox.pending().into_iter().map(|e| e.id).collect();
    assert_eq!(pending, ids);
    // And a later run delivers them.
    let cloud = FakeCloud::default();
    let mut relay = start(&outbox, cloud.connector(|_| Behaviour::Serve), config(8));
    relay
        .until("delivered after restart", |s| s.backlog == 0)
        .await;
    relay.stop().await;
    assert_eq!(cloud.state.lock().unwrap().order, ids);
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cloud_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    outbox.append(released(0)).await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let connector = move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Err::<DuplexStream, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "refused",
            ))
        }
    };
    let mut relay = start(&outbox, connector, config(8));
    let status = relay
        .until("a few attempts", |s| {
            s.retry_in.is_some() && attempts.load(Ordering::SeqCst) >= 4
        })
        .await;
    assert!(!status.connected);
    assert!(status.last_error.unwrap().contains("cannot connect"));
    let wait = status.retry_in.unwrap();
    assert!(
        wait >= fast_backoff().base && wait <= fast_backoff().cap,
        "{wait:?}"
    );
    relay.stop().await;
    assert_eq!(outbox.stats(std::time::SystemTime::now()).backlog, 1);
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_that_never_acks_is_given_up_and_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let id = outbox.append(released(0)).await.unwrap();
    let cloud = FakeCloud::default();
    let plan = |n| {
        if n == 0 {
            Behaviour::Silent
        } else {
            Behaviour::Serve
        }
    };
    let config = RelayConfig {
        ack_timeout: Duration::from_millis(50),
        ..config(8)
    };
    let mut relay = start(&outbox, cloud.connector(plan), config);
    let status = relay.until("delivered", |s| s.backlog == 0).await;
    let error = status.last_error.unwrap();
    assert!(error.contains("waiting for acks"), "{error}");
    relay.stop().await;
    assert_eq!(cloud.state.lock().unwrap().order, vec![id]);
    assert_eq!(cloud.connections.load(Ordering::SeqCst), 2);
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_is_reported_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    outbox.append(released(0)).await.unwrap();
    let cloud = FakeCloud::default();
    let mut relay = start(
        &outbox,
        cloud.connector(|_| Behaviour::RefuseHello),
        config(8),
    );
    let status = relay
        .until("the refusal reported", |s| s.last_error.is_some())
        .await;
    let error = status.last_error.unwrap();
    assert!(
        error.contains("unsupported-version") && error.contains("version 2 only"),
        "{error}"
    );
    assert!(!status.connected);
    relay.stop().await;
    assert!(cloud.state.lock().unwrap().applied.is_empty());
    assert_eq!(outbox.stats(std::time::SystemTime::now()).backlog, 1);
    outbox.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_cloud_does_not_know_is_refused_and_does_not_block_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_in(&dir).await;
    let unknown = outbox.append(released(0)).await.unwrap();
    let next = outbox.append(released(1)).await.unwrap();
    let cloud = FakeCloud::default();
    let mut relay = start(
        &outbox,
        cloud.connector(|_| Behaviour::UnknownFirst),
        config(8),
    );
    let status = relay.until("both settled", |s| s.backlog == 0).await;
    assert_eq!(status.last_error, None, "the connection stayed up");
    relay.stop().await;
    let outcome = outbox.outcome(&unknown).await.unwrap().unwrap().outcome;
    let Outcome::Refused { rule, guidance } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(rule, "unknown-event");
    assert!(guidance.contains("released"), "{guidance}");
    assert_eq!(cloud.state.lock().unwrap().order, vec![next]);
    assert_eq!(cloud.connections.load(Ordering::SeqCst), 1);
    outbox.close().await;
}
