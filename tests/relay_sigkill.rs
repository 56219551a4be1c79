//! Issue 5's fault test: the relay process killed with SIGKILL at random
//! points while it delivers 1,000 events, restarted each time: at the
//! fake cloud, every event arrives, under the id it was appended with,
//! and none is applied twice.
//!
//! The cloud runs in this process on a Unix socket (no network needed);
//! the relay runs in a child: this test binary re-run with an env var.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff::cloud::PlaceId;
use handoff::outbox::{Backoff, Outbox};
use handoff::proto::{self, Ack, EventId, EventKind, HelloAck, Outcome, RelayMessage, Released};
use handoff::relay::{self, RelayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const CHILD_ENV: &str = "HANDOFF_RELAY_SIGKILL_CHILD";
const EVENTS: usize = 1000;

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
    }
}

/// Not a test on its own: the relay process of
/// `relay_killed_at_random_points_delivers_every_event_once`. Relays the
/// outbox in DIR to the cloud socket in DIR until the backlog is empty.
#[tokio::test]
#[ignore = "helper: run by relay_killed_at_random_points_delivers_every_event_once"]
async fn relay_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let outbox = Outbox::open_with(dir.join("outbox.redb"), backoff()).unwrap();
    let socket = dir.join("cloud.sock");
    let connector = move || UnixStream::connect(socket.clone());
    let (stop, shutdown) = handoff::shutdown::shutdown_channel();
    let (status_tx, mut status) = relay::status_channel(&outbox);
    let config = RelayConfig {
        max_in_flight: 32,
        jitter_seed: Some(u64::from(std::process::id())),
        ..RelayConfig::default()
    };
    let task = tokio::spawn(relay::run(
        outbox.clone(),
        connector,
        config,
        shutdown,
        status_tx,
    ));
    status.wait_for(|s| s.backlog == 0).await.unwrap();
    stop.fire();
    task.await.unwrap();
    outbox.close().await;
}

#[derive(Default)]
struct Cloud {
    /// id → (times applied, what it said)
    applied: BTreeMap<EventId, (usize, String)>,
    duplicates: usize,
}

async fn serve(listener: UnixListener, cloud: Arc<Mutex<Cloud>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(connection(stream, Arc::clone(&cloud)));
    }
}

async fn connection(stream: UnixStream, cloud: Arc<Mutex<Cloud>>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        while let Some(len) = proto::check(&buf).unwrap() {
            let msg = proto::decode(&buf[..len]).unwrap();
            buf.drain(..len);
            let reply = match msg {
                RelayMessage::Hello(_) => RelayMessage::HelloAck(HelloAck { version: 1 }),
                RelayMessage::Event(ev) => {
                    let EventKind::Released(r) = &ev.kind else {
                        panic!("unexpected event {ev:?}");
                    };
                    let mut cloud = cloud.lock().unwrap();
                    let entry = cloud
                        .applied
                        .entry(ev.id.clone())
                        .or_insert((0, r.place.clone().unwrap_or_default().0));
                    assert_eq!(
                        Some(entry.1.clone()),
                        r.place.clone().map(|p| p.0),
                        "one id, two events"
                    );
                    let outcome = if entry.0 == 0 {
                        entry.0 = 1;
                        Outcome::Applied
                    } else {
                        cloud.duplicates += 1;
                        Outcome::Duplicate
                    };
                    RelayMessage::Ack(Ack {
                        id: ev.id,
                        outcome,
                        link: None,
                    })
                }
                other => panic!("unexpected {other:?}"),
            };
            out.extend_from_slice(&proto::encode(&reply).unwrap());
        }
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            return;
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn applied(cloud: &Mutex<Cloud>) -> usize {
    cloud.lock().unwrap().applied.len()
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["relay_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_at_random_points_delivers_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("outbox.redb")).unwrap();
    let mut appended = BTreeMap::new();
    for n in 0..EVENTS {
        let place = format!("place-{n}");
        let kind = EventKind::Released(Released {
            place: Some(PlaceId(place.clone())),
            serial: None,
        });
        appended.insert(outbox.append(kind).await.unwrap(), place);
    }
    outbox.close().await;

    let cloud = Arc::new(Mutex::new(Cloud::default()));
    let listener = UnixListener::bind(dir.path().join("cloud.sock")).unwrap();
    let server = tokio::spawn(serve(listener, Arc::clone(&cloud)));

    let mut rng = fastrand::Rng::with_seed(0x5e1f);
    let mut kills = 0;
    let finished = loop {
        assert!(kills < 200, "the relay never finished");
        let mut child = spawn_child(dir.path());
        let target = applied(&cloud) + rng.usize(1..120);
        // A hang guard, not a timing assertion.
        let mut waited = Duration::ZERO;
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if applied(&cloud) >= target {
                break None;
            }
            assert!(waited < Duration::from_secs(120), "the relay stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
            waited += Duration::from_millis(2);
        };
        match exited {
            Some(status) => break status,
            None => {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
    };
    assert!(finished.success(), "the last relay run failed: {finished}");
    server.abort();

    {
        let cloud = cloud.lock().unwrap();
        let at_cloud: BTreeMap<EventId, String> = cloud
            .applied
            .iter()
            .map(|(id, (count, place))| {
                assert_eq!(*count, 1, "{id:?} applied {count} times");
                (id.clone(), place.clone())
            })
            .collect();
        assert_eq!(at_cloud, appended, "every event, under its own id, once");
        assert!(kills >= 3, "only {kills} kills: the test did not test much");
        println!(
            "{kills} kills, {} events applied once, {} redeliveries acknowledged as duplicates",
            at_cloud.len(),
            cloud.duplicates
        );
    }

    let outbox = Outbox::open(dir.path().join("outbox.redb")).unwrap();
    assert!(
        outbox.pending().is_empty(),
        "the outbox knows they are delivered"
    );
    outbox.close().await;
}
