//! The relay against the real cloud, with faults: `handoff relay` killed
//! with SIGKILL at random points while it delivers 1,000 events, and the
//! cloud itself killed and restarted mid-stream. At the end the cloud has
//! applied every event exactly once and the outbox is empty.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use handoff::cloud::{AccessDuration, PlaceId};
use handoff::outbox::Outbox;
use handoff::proto::{Ack, EventKind, Outcome, RelayEvent, RelayMessage, ShareAccess};

use common::{Cloud, TempDir, handoff, handoff_bin};

const EVENTS: usize = 1000;
const OWNER: &str = "designer@example.com";

fn addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

lan_test! {
    fn relay_and_cloud_killed_at_random_points_deliver_every_event_once() {
        let dir = TempDir::new("relay-cloud");
        let data = dir.path("cloud");
        let state = dir.path("state");
        let (data_s, state_s) = (data.to_str().unwrap(), state.to_str().unwrap());
        lake_and_site(&dir, &data, &state);
        // 1,000 events queued while the cloud was out of reach.
        queue_shares(&state, 0, EVENTS);

        let mut cloud = Cloud::start(&data, addr());
        let relay = || {
            Command::new(handoff_bin())
                .args(["--state-dir", state_s, "relay", "--cloud", &addr().to_string(), "--timeout", "60s"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut kills = 0;
        for round in 0..10 {
            let mut child = relay();
            std::thread::sleep(Duration::from_millis(30 + fastrand::u64(..250)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
            if round % 3 == 1 {
                // The cloud dies too, mid-stream, and comes back.
                cloud.kill9();
                cloud = Cloud::start(&data, addr());
            }
        }
        let last = Command::new(handoff_bin())
            .args(["--state-dir", state_s, "relay", "--cloud", &addr().to_string(), "--timeout", "60s", "--json"])
            .output()
            .unwrap();
        assert_eq!(last.status.code(), Some(0), "{}", String::from_utf8_lossy(&last.stderr));
        assert!(kills > 0, "no relay was killed mid-stream: the test proved nothing");

        let stats = handoff(&["cloud", "--data", data_s, "stats", "--json"]).json();
        assert_eq!(stats["events"], EVENTS as u64, "each event recorded once: {stats}");
        let place = handoff(&["cloud", "--data", data_s, "place", "show", "lake", "--json"]).json();
        assert_eq!(place["access"].as_array().unwrap().len(), EVENTS + 1, "none lost");
        let relay = handoff(&["--state-dir", state_s, "status", "--relay", "--json"]).json();
        assert_eq!(relay["relay"]["backlog"], 0);
        drop(cloud);
    }
}

/// Place `lake` (by OWNER) in the redb store `data`, and a site enrolled
/// for OWNER with its bundle in `state`.
fn lake_and_site(dir: &TempDir, data: &std::path::Path, state: &std::path::Path) {
    let data_s = data.to_str().unwrap();
    let run = handoff(&[
        "cloud",
        "--data",
        data_s,
        "place",
        "create",
        "--id",
        "lake",
        "--as",
        OWNER,
        "--remote-services",
        "--project-file",
        dir.path("p.json").to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = handoff(&[
        "cloud",
        "--data",
        data_s,
        "enroll",
        "--name",
        "site",
        "--account",
        OWNER,
        "--out",
        state.join("cloud-identity").to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

fn queue_shares(state: &std::path::Path, from: usize, to: usize) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let outbox = Outbox::open(state.join(handoff::outbox::FILE_NAME)).unwrap();
            for i in from..to {
                outbox
                    .append(EventKind::ShareAccess(ShareAccess {
                        place: PlaceId("lake".into()),
                        email: format!("pro{i}@example.com"),
                        duration: AccessDuration::SevenDays,
                    }))
                    .await
                    .unwrap();
            }
            outbox.close().await;
        });
}

lan_test! {
    /// `--cloud A,B`: node A answers first; once A is gone (SIGKILL) and a
    /// standby node B serves the same store, the relay moves to B by
    /// itself and says so; every event is applied once, none is lost.
    fn relay_fails_over_to_the_next_cloud_node() {
        let dir = TempDir::new("relay-failover");
        let data = dir.path("cloud");
        let state = dir.path("state");
        let (data_s, state_s) = (data.to_str().unwrap(), state.to_str().unwrap());
        lake_and_site(&dir, &data, &state);
        let (a, b): (SocketAddr, SocketAddr) =
            ("127.0.0.1:4433".parse().unwrap(), "127.0.0.2:4433".parse().unwrap());
        let nodes = format!("{a},{b}");
        let relay = || handoff(&["--state-dir", state_s, "relay", "--cloud", &nodes, "--timeout", "30s", "--json"]);

        let mut node_a = Cloud::start(&data, a);
        queue_shares(&state, 0, 20);
        let first = relay();
        assert_eq!(first.code, Some(0), "{}", first.stderr);
        assert_eq!((first.json()["applied"].as_u64(), first.json()["cloud"].as_str()), (Some(20), Some("127.0.0.1:4433")));

        node_a.kill9();
        let node_b = Cloud::start(&data, b);
        queue_shares(&state, 20, 50);
        let second = relay();
        assert_eq!(second.code, Some(0), "{}", second.stderr);
        let report = second.json();
        assert_eq!(report["applied"], 30, "{report}");
        assert_eq!(report["cloud"], "127.0.0.2:4433", "the report names the node that answered: {report}");

        // Both gone: the error names every node, and the events wait.
        drop(node_b);
        queue_shares(&state, 50, 51);
        let third = handoff(&["--state-dir", state_s, "relay", "--cloud", &nodes, "--timeout", "3s", "--json"]);
        assert_eq!(third.code, Some(4), "{}", third.stderr);
        let error = third.json()["last_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("127.0.0.1:4433") && error.contains("127.0.0.2:4433"), "{error}");

        let stats = handoff(&["cloud", "--data", data_s, "stats", "--json"]).json();
        assert_eq!(stats["events"], 50, "each event recorded once: {stats}");
    }
}

lan_test! {
    /// The Place service at the size: 64 site boxes relay to two
    /// `cloud serve` nodes on one PostgreSQL database, each naming the
    /// nodes in a random order (`--cloud A,B` or `B,A`). Their events fall
    /// on 4 shared Places: shares for 1 day, 7 days or 1 year, and new
    /// links, from the homeowner's sites and from 8 pros' sites (each pro
    /// has 30 days). Node A is SIGKILLed while they stream: the sites on A
    /// move to B by themselves. Afterwards:
    /// - every event is applied exactly once (the database's count is
    ///   what was sent);
    /// - at most one homeowner per Place; of each Place's links only the
    ///   one numbered last is active;
    /// - no grant reaches beyond its sharer's access (and the pros' 1-year
    ///   shares were refused);
    /// - each event, sent again, gets its original answer (a duplicate of
    ///   what was applied, with the same link; the same refusal).
    fn sixty_four_sites_relaying_to_two_postgres_nodes_keep_every_place_rule() {
        const SITES: usize = 64;
        const PER_SITE: usize = 10;
        const PLACES: usize = 4;
        const PROS: usize = 8;
        let url = common::postgres::fresh_database(common::migrate);
        let db = common::postgres::database_name(&url).to_owned();
        let sql = |q: &str| common::postgres::cluster(common::migrate).psql_in(&db, q);
        let dir = TempDir::new("two-nodes");
        let data = dir.path("cloud");
        let data_s = data.to_str().unwrap();
        let cloud = |args: &[&str]| {
            let mut all = vec!["cloud", "--data", data_s, "--database", &url];
            all.extend(args);
            let run = handoff(&all);
            assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        };
        let pro = |k: usize| format!("pro{k}@example.com");
        for p in 0..PLACES {
            let project = dir.path(&format!("p{p}.json"));
            cloud(&["place", "create", "--id", &format!("lake{p}"), "--as", OWNER, "--remote-services",
                "--project-file", project.to_str().unwrap()]);
            for k in 0..PROS {
                cloud(&["share", &format!("lake{p}"), "--as", OWNER, "--to", &pro(k), "--for", "30d"]);
            }
        }
        let durations = [AccessDuration::OneDay, AccessDuration::SevenDays, AccessDuration::OneYear];
        let rt = common::runtime();
        let mut sent: Vec<(PathBuf, Vec<RelayEvent>)> = Vec::new();
        for s in 0..SITES {
            let state = dir.path(&format!("site-{s}"));
            let account = if s % 4 == 0 { OWNER.to_owned() } else { pro(s % PROS) };
            cloud(&["enroll", "--name", &format!("site-{s}"), "--account", &account, "--out",
                state.join("cloud-identity").to_str().unwrap()]);
            let events = rt.block_on(async {
                let outbox = Outbox::open(state.join(handoff::outbox::FILE_NAME)).unwrap();
                let mut events = Vec::new();
                for i in 0..PER_SITE {
                    let place = PlaceId(format!("lake{}", (s + i) % PLACES));
                    let kind = if i % 5 == 4 {
                        EventKind::NewShareLink(handoff::proto::NewShareLink { place, duration: AccessDuration::SevenDays })
                    } else {
                        let duration = durations[i % durations.len()];
                        EventKind::ShareAccess(ShareAccess { place, email: format!("guest{s}-{i}@example.com"), duration })
                    };
                    let id = outbox.append(kind.clone()).await.unwrap();
                    events.push(RelayEvent { id, kind });
                }
                outbox.close().await;
                events
            });
            sent.push((state, events));
        }
        let (a, b): (SocketAddr, SocketAddr) =
            ("127.0.0.1:4433".parse().unwrap(), "127.0.0.2:4433".parse().unwrap());
        let mut node_a = Cloud::start_on(&data, Some(&url), a);
        let node_b = Cloud::start_on(&data, Some(&url), b);
        let applied = || -> usize { sql("SELECT count(*) FROM events").parse().unwrap() };

        let relays: Vec<_> = sent.iter().map(|(state, _)| {
            let nodes = if fastrand::bool() { format!("{a},{b}") } else { format!("{b},{a}") };
            Command::new(handoff_bin())
                .args(["--state-dir", state.to_str().unwrap(), "relay", "--cloud", &nodes, "--timeout", "300s", "--json"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        }).collect();
        // Kill A once events flow, before they are all in.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while applied() == 0 {
            assert!(std::time::Instant::now() < deadline, "no event was applied in 120 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        node_a.kill9();
        let at_kill = applied();
        assert!(at_kill < SITES * PER_SITE, "every event was in before node A died: the test proved nothing");

        for (s, relay) in relays.into_iter().enumerate() {
            let out = relay.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            // 3: all delivered, some refused (the pros' 1-year shares).
            let refusals = if s % 4 == 0 { 0 } else { 3 };
            assert_eq!(out.status.code(), Some(refusals), "site {s}: {stderr}");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["backlog"], 0, "site {s}: {report}");
            assert_eq!(report["delivered"], PER_SITE, "site {s}: {report}");
        }
        assert_eq!(applied(), SITES * PER_SITE, "each event applied once (node A died at {at_kill})");

        assert_eq!(sql("SELECT count(*) FROM (SELECT place FROM grants WHERE role = 'homeowner' \
            GROUP BY place HAVING count(*) > 1) AS two"), "0", "a Place with two homeowners");
        assert_eq!(sql("SELECT count(*) FROM places WHERE links_issued > 0 \
            AND link_number IS DISTINCT FROM links_issued - 1"), "0", "a Place whose active link is not its last");
        assert_eq!(sql("SELECT sum(links_issued) FROM places"), sql("SELECT count(*) FROM events WHERE link_number IS NOT NULL"),
            "each link generated is an applied event");
        assert_eq!(sql("SELECT count(*) FROM grants g JOIN grants s ON s.place = g.place AND s.account = g.source_by \
            WHERE g.source = 'share' AND s.expires IS NOT NULL AND (g.expires IS NULL OR g.expires > s.expires)"), "0",
            "a grant beyond its sharer's access");
        let pro_shares: usize = sql("SELECT count(*) FROM grants WHERE source = 'share' AND source_by LIKE 'pro%'").parse().unwrap();
        let refused: usize = sql("SELECT count(*) FROM events WHERE rule = 'share_cannot_exceed_sharers_remaining_access'").parse().unwrap();
        assert!(pro_shares > 0 && refused > 0, "the pros' shares within their access land ({pro_shares}) and beyond it are refused ({refused})");

        // Every event again, through B: its original answer.
        let same = |ack: &Ack| match &ack.outcome {
            Outcome::Applied | Outcome::Duplicate => (None, ack.link.clone()),
            Outcome::Refused { rule, .. } => (Some(rule.clone()), ack.link.clone()),
        };
        rt.block_on(async {
            for (state, events) in &sent {
                let outbox = Outbox::open(state.join(handoff::outbox::FILE_NAME)).unwrap();
                let mut conn = common::relay_conn::Conn::open(b, &state.join("cloud-identity")).await.unwrap();
                conn.hello().await;
                conn.send(&events.iter().cloned().map(RelayMessage::Event).collect::<Vec<_>>()).await;
                for event in events {
                    let first = outbox.outcome(&event.id).await.unwrap().expect("an answer was kept");
                    let again = match conn.recv().await {
                        Some(RelayMessage::Ack(ack)) => ack,
                        other => panic!("{:?}: expected an ack, got {other:?}", event.id),
                    };
                    assert_eq!(again.id, event.id);
                    assert_ne!(again.outcome, Outcome::Applied, "{:?} applied twice", event.id);
                    assert_eq!(same(&again), same(&first), "{:?}: not its original answer", event.id);
                }
                outbox.close().await;
            }
        });
        assert_eq!(applied(), SITES * PER_SITE);
        drop(node_b);
    }
}

lan_test! {
    /// With nothing queued the relay does not contact the cloud, and so
    /// says nothing of what the cloud did (it used to report "the cloud at
    /// ADDR applied 0 queued events" of a cloud that was not even up).
    fn relay_with_nothing_queued_says_so_and_claims_no_contact() {
        let dir = TempDir::new("relay-empty");
        let state = dir.path("state");
        let run = handoff(&["cloud", "--data", dir.path("cloud").to_str().unwrap(), "enroll", "--name", "site",
            "--account", OWNER, "--out", state.join("cloud-identity").to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let run = handoff(&["--state-dir", state.to_str().unwrap(), "relay", "--cloud", "127.0.0.9:4433", "--timeout", "3s"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.stdout.trim(), "nothing is queued: no event waits for the cloud (127.0.0.9:4433 was not contacted)");
    }
}
