//! The reference cloud as a service: `handoff cloud serve` with enrolled
//! daemons over mutual TLS, bad frames, and a kill -9 in the middle of a
//! stream. Each test runs in its own private network (it listens and
//! connects on loopback).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use handoff::cloud::AccessDuration;
use handoff::proto::{
    EventId, EventKind, Hello, Outcome, RelayEvent, RelayMessage, ShareAccess, StatusQuery,
};

use common::relay_conn::Conn;
use common::{Cloud, TempDir, handoff, handoff_bin, runtime};

use common::{OWNER, cloud_args, setup_on};

/// A data directory with a Place owned by OWNER and a daemon enrolled for
/// OWNER; returns (data dir, bundle dir, place id).
fn setup(dir: &TempDir) -> (PathBuf, PathBuf, String) {
    setup_on(dir, None)
}

fn share(place: &str, seq: u64) -> RelayMessage {
    RelayMessage::Event(RelayEvent {
        id: EventId {
            daemon: "site-1".into(),
            seq,
        },
        kind: EventKind::ShareAccess(ShareAccess {
            place: handoff::cloud::PlaceId(place.into()),
            email: format!("pro{seq}@example.com"),
            duration: AccessDuration::SevenDays,
        }),
    })
}

fn error_code(m: Option<RelayMessage>) -> String {
    match m {
        Some(RelayMessage::Error(e)) => e.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

lan_test! {
    fn a_client_without_an_identity_from_this_cloud_is_refused_in_the_handshake() {
        let dir = TempDir::new("cloud-tls");
        let (data, _bundle, _) = setup(&dir);
        // A bundle from another cloud: a CA this one never trusted.
        let foreign = dir.path("foreign-bundle");
        let run = handoff(&[
            "cloud", "--data", dir.path("other-cloud").to_str().unwrap(), "enroll",
            "--name", "intruder", "--account", OWNER, "--out", foreign.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let cloud = Cloud::start(&data, addr());
        runtime().block_on(async {
            // The cloud's certificate does not chain to the foreign CA
            // either, so the client gives up first, or the server refuses
            // the client certificate; either way no protocol byte passes.
            match Conn::open(cloud.addr, &foreign).await {
                Err(_) => {}
                Ok(mut conn) => {
                    conn.send(&[RelayMessage::Hello(Hello { versions: vec![1], software: None })]).await;
                    assert_eq!(conn.recv().await, None, "no hello-ack for a stranger");
                }
            }
        });
        // And nothing was stored for it.
        let show = handoff(&["cloud", "--data", data.to_str().unwrap(), "place", "show", "lake-house", "--json"]);
        assert_eq!(show.json()["access"].as_array().unwrap().len(), 1);
    }
}

lan_test! {
    fn bad_frames_close_only_their_own_connection_with_a_reason() {
        let dir = TempDir::new("cloud-frames");
        let (data, bundle, place) = setup(&dir);
        let cloud = Cloud::start(&data, addr());
        runtime().block_on(async {
            let mut good = Conn::open(cloud.addr, &bundle).await.unwrap();
            good.hello().await;

            // Garbage inside a well-formed length prefix.
            let mut garbage = Conn::open(cloud.addr, &bundle).await.unwrap();
            garbage.hello().await;
            garbage.send_raw(&[0, 0, 0, 5, 0xff, 0xfe, 0x00, 0x13, 0x37]).await;
            assert_eq!(error_code(garbage.recv().await), "malformed");
            assert_eq!(garbage.recv().await, None, "then the connection closes");

            // A prefix announcing 4 GiB: refused before any body is read.
            let mut huge = Conn::open(cloud.addr, &bundle).await.unwrap();
            huge.hello().await;
            huge.send_raw(&[0xff, 0xff, 0xff, 0xff, 0xa1]).await;
            assert_eq!(error_code(huge.recv().await), "too-large");
            assert_eq!(huge.recv().await, None);

            // Anything before hello.
            let mut rude = Conn::open(cloud.addr, &bundle).await.unwrap();
            rude.send(&[share(&place, 99)]).await;
            assert_eq!(error_code(rude.recv().await), "hello-first");
            assert_eq!(rude.recv().await, None);

            // A frame cut short by the peer going away harms no one.
            let mut cut = Conn::open(cloud.addr, &bundle).await.unwrap();
            cut.hello().await;
            cut.send_raw(&[0, 0, 1, 0, 0xa1, 0x61]).await;
            drop(cut);

            // An unknown kind: an error frame, and the connection goes on.
            let unknown = ciborium::Value::Map(vec![(
                ciborium::Value::Text("k".into()),
                ciborium::Value::Text("frobnicate".into()),
            )]);
            let mut body = Vec::new();
            ciborium::into_writer(&unknown, &mut body).unwrap();
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend(body);
            good.send_raw(&frame).await;
            assert_eq!(error_code(good.recv().await), "unknown-kind");

            // The good connection still works: an event is applied.
            good.send(&[share(&place, 1)]).await;
            match good.recv().await {
                Some(RelayMessage::Ack(ack)) => assert_eq!(ack.outcome, Outcome::Applied),
                other => panic!("expected an ack, got {other:?}"),
            }
            // And a status query for a processor nobody registered.
            good.send(&[RelayMessage::StatusQuery(StatusQuery::BySerial {
                query: 7,
                serial: handoff::processor::Serial(12345),
            })])
            .await;
            match good.recv().await {
                Some(RelayMessage::Error(e)) => {
                    assert_eq!((e.code.as_str(), e.query), ("unknown-processor", Some(7)));
                }
                other => panic!("expected an error frame, got {other:?}"),
            }
        });
    }
}

lan_test! {
    fn the_cloud_keeps_every_acknowledged_event_across_kill_9() {
        keeps_every_acknowledged_event_across_kill_9(None);
    }
}

lan_test! {
    fn the_cloud_on_postgres_keeps_every_acknowledged_event_across_kill_9() {
        let url = common::postgres::fresh_database(common::migrate);
        keeps_every_acknowledged_event_across_kill_9(Some(&url));
    }
}

/// Four rounds of pipelined events, the server killed with SIGKILL in
/// the middle of three: every event acknowledged in the end, each applied
/// once, and each a duplicate when sent again.
fn keeps_every_acknowledged_event_across_kill_9(database: Option<&str>) {
    const EVENTS: u64 = 300;
    let dir = TempDir::new("cloud-kill");
    let (data, bundle, place) = setup_on(&dir, database);
    let mut acked = std::collections::BTreeSet::new();
    let rt = runtime();
    for round in 0..4u64 {
        let mut cloud = Cloud::start_on(&data, database, addr());
        let kill_after = 20 + fastrand::u64(..60);
        rt.block_on(async {
            let mut conn = Conn::open(cloud.addr, &bundle).await.unwrap();
            conn.hello().await;
            // Pipeline everything not yet acknowledged, in batches.
            let pending: Vec<u64> = (1..=EVENTS).filter(|s| !acked.contains(s)).collect();
            for chunk in pending.chunks(16) {
                let batch: Vec<RelayMessage> = chunk.iter().map(|s| share(&place, *s)).collect();
                conn.send(&batch).await;
                for _ in chunk {
                    match conn.recv().await {
                        Some(RelayMessage::Ack(ack)) => {
                            assert!(
                                matches!(ack.outcome, Outcome::Applied | Outcome::Duplicate),
                                "{ack:?}"
                            );
                            acked.insert(ack.id.seq);
                        }
                        other => panic!("round {round}: expected an ack, got {other:?}"),
                    }
                }
                if round < 3 && acked.len() as u64 >= kill_after * (round + 1) {
                    break;
                }
            }
        });
        if round < 3 {
            // Mid-stream, no goodbye, with more events in flight.
            rt.block_on(async {
                if let Ok(mut conn) = Conn::open(cloud.addr, &bundle).await {
                    conn.hello().await;
                    let rest: Vec<RelayMessage> = (1..=EVENTS).map(|s| share(&place, s)).collect();
                    conn.send(&rest).await;
                }
            });
            cloud.kill9();
        }
    }
    assert_eq!(
        acked.len() as u64,
        EVENTS,
        "every event acknowledged in the end"
    );
    // Every acknowledged share is there, exactly once.
    let mut show = cloud_args(data.to_str().unwrap(), database);
    show.extend(["place", "show", &place, "--json"]);
    let show = handoff(&show);
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    let access = show.json()["access"].as_array().unwrap().clone();
    let pros: std::collections::BTreeSet<String> = access
        .iter()
        .map(|a| a["account"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("pro"))
        .collect();
    assert_eq!(pros.len() as u64, EVENTS);
    assert_eq!(
        access.len() as u64,
        EVENTS + 1,
        "the owner and one grant per event"
    );
    // Every id, sent again, is a duplicate: each was applied once, and
    // the cloud remembers it across the kills.
    let cloud = Cloud::start_on(&data, database, addr());
    rt.block_on(async {
        let mut conn = Conn::open(cloud.addr, &bundle).await.unwrap();
        conn.hello().await;
        let all: Vec<RelayMessage> = (1..=EVENTS).map(|s| share(&place, s)).collect();
        conn.send(&all).await;
        for _ in 1..=EVENTS {
            match conn.recv().await {
                Some(RelayMessage::Ack(ack)) => {
                    assert_eq!(ack.outcome, Outcome::Duplicate, "event {}", ack.id.seq);
                }
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    });
}

lan_test! {
    fn the_readme_operator_walkthrough_runs() {
        // The script the README shows: a Place created, shared, linked,
        // claimed with the processor's proof and released.
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cloud-walkthrough.sh");
        let bin_dir = Path::new(handoff_bin()).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let dir = TempDir::new("walkthrough");
        let out = Command::new("bash")
            .arg(script)
            .current_dir(&dir.0)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
        for line in [
            "shared Place lake-house with pro@example.com for 30 days",
            "tech@example.com now has access to Place lake-house",
            "home@example.com claimed Place lake-house as its homeowner",
            "yellow: a homeowner account is established",
            "Place lake-house has no homeowner now: it can be claimed again",
            // Green for a stranger after the release: what holds for them.
            "green: you have no access yet, and no homeowner is established",
        ] {
            assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}\n{stderr}");
        }
        assert!(stderr.contains("rule: new_share_link_disables_the_old_one"), "{stderr}");
    }
}

lan_test! {
    fn many_daemons_at_once_are_all_served_and_a_full_server_makes_them_wait() {
        let dir = TempDir::new("cloud-many");
        let (data, bundle, place) = setup(&dir);
        // Room for 8 connections at a time: the other 56 wait in the
        // listen backlog and are served as the first ones leave.
        let child = Command::new(handoff_bin())
            .args(["cloud", "--data", data.to_str().unwrap(), "serve", "--listen", "127.0.0.1:4433",
                   "--max-connections", "8"])
            .stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null())
            .spawn().unwrap();
        let _cloud = common::ChildGuard(child);
        common::wait_for_port(addr());
        runtime().block_on(async {
            let mut tasks = Vec::new();
            for d in 0..64u64 {
                let bundle = bundle.clone();
                let place = place.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = Conn::open(addr(), &bundle).await.unwrap();
                    conn.hello().await;
                    let events: Vec<RelayMessage> =
                        (0..10).map(|i| share(&place, d * 100 + i)).collect();
                    conn.send(&events).await;
                    let mut applied = 0;
                    for _ in 0..10 {
                        match conn.recv().await {
                            Some(RelayMessage::Ack(ack)) if ack.outcome == Outcome::Applied => applied += 1,
                            other => panic!("daemon {d}: {other:?}"),
                        }
                    }
                    applied
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            assert_eq!(total, 640);
        });
        let stats = handoff(&["cloud", "--data", data.to_str().unwrap(), "stats", "--json"]).json();
        assert_eq!(stats["events"], 640);
    }
}

lan_test! {
    /// Under systemd (handoff-cloud.service, Type=notify) the node says
    /// READY only once it accepts connections, and STOPPING on SIGTERM.
    fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
        let dir = TempDir::new("cloud-notify");
        let (data, _, _) = setup(&dir);
        let notify_path = dir.path("notify.sock");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        // Generous: this binary's other tests (40 processes at once on
        // PostgreSQL) can starve a starting node of CPU for a while. The
        // SIGTERM below follows READY at once, as systemd's stop may: it
        // once came before serve listened for it, and killed it.
        notify.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let log = dir.path("serve.log");
        let child = Command::new(handoff_bin())
            .args(["cloud", "--data", data.to_str().unwrap(), "serve", "--listen", &addr().to_string()])
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut child = common::ChildGuard(child);
        let recv = || {
            let mut buf = [0u8; 512];
            let n = notify.recv(&mut buf).unwrap_or_else(|e| {
                panic!("no notification ({e}); serve said: {}", std::fs::read_to_string(&log).unwrap_or_default())
            });
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let ready = recv();
        assert!(ready.contains("READY=1\n"), "{ready}");
        assert!(ready.contains("STATUS=serving the relay on 127.0.0.1:4433"), "{ready}");
        assert!(std::net::TcpStream::connect(addr()).is_ok(), "READY came before the listener");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(recv().contains("STOPPING=1"));
        assert!(child.0.wait().unwrap().success());
    }
}

/// `handoff cloud ARGS… --database URL --data DATA`.
fn on_database(url: &str, data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(handoff_bin());
    cmd.arg("cloud")
        .args(["--database", url, "--data"])
        .arg(data)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn created_on_database(dir: &TempDir) -> String {
    let url = common::postgres::fresh_database(common::migrate);
    let data = dir.path("cloud");
    let run = on_database(
        &url,
        &data,
        &[
            "place",
            "create",
            "--as",
            OWNER,
            "--remote-services",
            "--project-file",
            dir.path("project.json").to_str().unwrap(),
            "--id",
            "lake-house",
        ],
    )
    .output()
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    url
}

/// 40 operators run `link new` on one Place at once, each its own process
/// and connection: every one succeeds (conflicts are rerun), the links are
/// numbered 0..40 once each, and only the last one numbered works.
#[test]
fn forty_link_new_at_once_on_postgres_all_succeed_and_only_the_last_is_active() {
    let dir = TempDir::new("pg-links");
    let url = created_on_database(&dir);
    let data = dir.path("cloud");
    let children: Vec<_> = (0..40)
        .map(|_| {
            on_database(&url, &data, &["link", "new", "lake-house", "--as", OWNER])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut links: Vec<(u64, String)> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let (n, _) = text.trim().split_once(':').expect("NUMBER:SECRET");
            (n.parse().unwrap(), text.trim().to_owned())
        })
        .collect();
    links.sort();
    let numbers: Vec<u64> = links.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (0..40).collect::<Vec<_>>());
    let redeem = |link: &str, who: &str| {
        on_database(
            &url,
            &data,
            &["link", "redeem", "lake-house", link, "--as", who],
        )
        .output()
        .unwrap()
        .status
        .code()
    };
    assert_eq!(
        redeem(&links[38].1, "early@example.com"),
        Some(3),
        "disabled"
    );
    assert_eq!(redeem(&links[39].1, "late@example.com"), Some(0), "active");
}

/// 20 shares to different accounts at once, each its own process: all
/// land, none lost to a conflict.
#[test]
fn twenty_concurrent_shares_on_postgres_all_land() {
    let dir = TempDir::new("pg-shares");
    let url = created_on_database(&dir);
    let data = dir.path("cloud");
    let children: Vec<_> = (0..20)
        .map(|i| {
            let to = format!("pro-{i}@example.com");
            on_database(
                &url,
                &data,
                &[
                    "share",
                    "lake-house",
                    "--as",
                    OWNER,
                    "--to",
                    &to,
                    "--for",
                    "1d",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = on_database(
        &url,
        &data,
        &["access", "list", "lake-house", "--as", OWNER, "--json"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["access"].as_array().unwrap().len(), 21, "{list}");
}

/// An unreachable database: one line saying which, exit code 1, no panic.
#[test]
fn an_unreachable_database_is_one_clear_line_and_exit_1() {
    let dir = TempDir::new("pg-nowhere");
    let out = on_database(
        "postgresql://postgres@/handoff?host=/nonexistent/socket-dir",
        &dir.path("cloud"),
        &["stats"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach handoff on /nonexistent/socket-dir"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

lan_test! {
    fn a_revoked_daemon_is_shut_out_and_what_it_sent_before_stays_applied() {
        revoked_daemon_is_shut_out(None);
    }
}

lan_test! {
    fn a_revoked_daemon_is_shut_out_on_postgres_too() {
        let url = common::postgres::fresh_database(common::migrate);
        revoked_daemon_is_shut_out(Some(&url));
    }
}

/// `cloud daemon list|revoke` run by the operator while `cloud serve`
/// runs: the open connection gets a `revoked` frame and ends, a new one is
/// refused before hello-ack, `handoff relay` says why, and the event sent
/// before stays applied.
fn revoked_daemon_is_shut_out(database: Option<&str>) {
    let dir = TempDir::new("cloud-revoke");
    let (data, bundle, place) = setup_on(&dir, database);
    let data_s = data.to_str().unwrap();
    let operator = |args: &[&str]| {
        let mut all = cloud_args(data_s, database);
        all.extend(args);
        handoff(&all)
    };
    let cloud = Cloud::start_on(&data, database, addr());
    let rt = runtime();
    let mut conn = rt.block_on(async {
        let mut conn = Conn::open(cloud.addr, &bundle).await.expect("enrolled");
        conn.hello().await;
        conn.send(&[share(&place, 1)]).await;
        match conn.recv().await {
            Some(RelayMessage::Ack(ack)) => assert_eq!(ack.outcome, Outcome::Applied),
            other => panic!("expected an ack, got {other:?}"),
        }
        conn
    });

    let list = operator(&["daemon", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let daemons = list.json();
    let site = &daemons[0];
    assert_eq!(daemons.as_array().unwrap().len(), 1, "{daemons}");
    assert_eq!(site["name"], "site-1");
    assert_eq!(site["account"], OWNER);
    assert!(site["enrolled_at"].as_u64().is_some(), "{site}");
    assert!(
        site["last_contact"].as_u64().is_some(),
        "the connection is its contact: {site}"
    );
    assert_eq!(
        (&site["revoked"], &site["revoked_at"]),
        (&serde_json::json!(false), &serde_json::Value::Null)
    );
    let human = operator(&["daemon", "list"]);
    assert!(
        human.stdout.starts_with("NAME") && human.stdout.contains("site-1"),
        "{}",
        human.stdout
    );

    let revoke = operator(&["daemon", "revoke", "site-1"]);
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    assert!(
        revoke.stdout.starts_with("revoked site-1"),
        "{}",
        revoke.stdout
    );

    rt.block_on(async {
        // The open connection: a `revoked` frame, then the end. The wait
        // is generous (a loaded machine); the poll is every half second.
        let first = conn.recv_within(Duration::from_secs(60)).await;
        let then = conn.recv_within(Duration::from_secs(60)).await;
        assert_eq!(error_code(first), "revoked");
        assert_eq!(then, None);
        // A new connection: TLS passes (the CA issued it), then the same
        // frame in place of hello-ack, and nothing it sends is applied.
        let mut again = Conn::open(cloud.addr, &bundle).await.expect("TLS");
        again
            .send(&[
                RelayMessage::Hello(Hello {
                    versions: vec![1],
                    software: None,
                }),
                share(&place, 2),
            ])
            .await;
        match again.recv().await {
            Some(RelayMessage::Error(e)) => {
                assert_eq!(e.code, "revoked");
                assert!(
                    e.reason
                        .contains("revoked this site box's identity ('site-1')"),
                    "{}",
                    e.reason
                );
            }
            other => panic!("expected a revoked frame, got {other:?}"),
        }
        assert_eq!(again.recv().await, None);
    });

    // The daemon's side: `handoff relay` says the identity was revoked.
    let state = dir.path("site-state");
    std::fs::create_dir(&state).unwrap();
    rt.block_on(async {
        let outbox = handoff::outbox::Outbox::open(state.join(handoff::outbox::FILE_NAME)).unwrap();
        outbox
            .append(match share(&place, 3) {
                RelayMessage::Event(e) => e.kind,
                _ => unreachable!(),
            })
            .await
            .unwrap();
        outbox.close().await;
    });
    let relay = handoff(&[
        "--state-dir",
        state.to_str().unwrap(),
        "relay",
        "--cloud",
        &cloud.addr.to_string(),
        "--cloud-identity",
        bundle.to_str().unwrap(),
        "--timeout",
        "3s",
    ]);
    assert_eq!(relay.code, Some(4), "{}\n{}", relay.stdout, relay.stderr);
    assert!(
        relay
            .stderr
            .contains("(revoked): the cloud's operator revoked this site box's identity"),
        "{}",
        relay.stderr
    );

    // What it sent before stays applied; nothing after was.
    let access = operator(&["access", "list", &place, "--as", OWNER, "--json"]).stdout;
    assert!(access.contains("pro1@example.com"), "{access}");
    assert!(
        !access.contains("pro2@example.com") && !access.contains("pro3@example.com"),
        "{access}"
    );

    let listed = operator(&["daemon", "list", "--json"]).json();
    assert_eq!(listed[0]["revoked"], true);
    assert!(listed[0]["revoked_at"].as_u64().is_some(), "{listed}");

    let again = operator(&["daemon", "revoke", "site-1"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stdout.starts_with("was already revoked site-1"),
        "{}",
        again.stdout
    );

    // Mistakes: a data directory without a store, an unknown name, a
    // revoked name enrolled again.
    if database.is_none() {
        let typo = dir.path("clod");
        let run = handoff(&["cloud", "--data", typo.to_str().unwrap(), "daemon", "list"]);
        assert_eq!(run.code, Some(1), "{}", run.stdout);
        assert!(
            run.stderr.contains("holds no cloud store"),
            "{}",
            run.stderr
        );
        assert!(!typo.exists(), "nothing is made for a typo");
    }
    let unknown = operator(&["daemon", "revoke", "site-9"]);
    assert_eq!(unknown.code, Some(1));
    assert_eq!(
        unknown.stderr.trim(),
        "error: no daemon is enrolled as 'site-9' (`handoff cloud daemon list` shows who is)"
    );
    let out = dir.path("bundle-again");
    let again = operator(&[
        "enroll",
        "--name",
        "site-1",
        "--account",
        OWNER,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("'site-1' was revoked"),
        "{}",
        again.stderr
    );
    assert!(!out.exists(), "nothing is written for a refused enrolment");
}

/// Two revokes in the same second: the second still says it was already
/// revoked (it is read from the record, not from the time). No network:
/// operator commands only.
#[test]
fn a_second_revoke_at_once_says_it_was_already_revoked() {
    let dir = TempDir::new("cloud-revoke-twice");
    let (data, _, _) = setup(&dir);
    let data = data.to_str().unwrap();
    let revoke = || handoff(&["cloud", "--data", data, "daemon", "revoke", "site-1"]);
    let (first, second) = (revoke(), revoke());
    assert_eq!(
        (first.code, second.code),
        (Some(0), Some(0)),
        "{}",
        second.stderr
    );
    assert!(
        first.stdout.starts_with("revoked site-1"),
        "{}",
        first.stdout
    );
    assert!(
        second.stdout.starts_with("was already revoked site-1"),
        "{}",
        second.stdout
    );
}

/// A site name acts for one account, and a bundle on disk is never
/// overwritten: enrolling `site-1` for another account, or into a
/// directory that holds a bundle, is refused and changes nothing; the same
/// account again gets a new bundle and is told the old one stays valid.
/// No network: operator commands only.
#[test]
fn enrolling_a_name_again_keeps_its_account_and_never_overwrites_a_bundle() {
    let dir = TempDir::new("cloud-enroll-again");
    let (data, bundle, _) = setup(&dir);
    let data = data.to_str().unwrap();
    let enroll = |account: &str, out: &Path| {
        handoff(&[
            "cloud",
            "--data",
            data,
            "enroll",
            "--name",
            "site-1",
            "--account",
            account,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let listed = || handoff(&["cloud", "--data", data, "daemon", "list", "--json"]).stdout;
    let before = listed();
    let cert = std::fs::read(bundle.join("cert.pem")).unwrap();

    let other = dir.path("other-account");
    let run = enroll("someone@example.com", &other);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("'site-1' is enrolled for"),
        "{}",
        run.stderr
    );
    assert!(
        !other.exists(),
        "nothing is written for a refused enrolment"
    );

    let run = enroll(OWNER, &bundle);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("already holds an identity bundle"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(bundle.join("cert.pem")).unwrap(),
        cert,
        "the bundle is untouched"
    );
    assert_eq!(listed(), before);

    let second = dir.path("second-bundle");
    let run = enroll(OWNER, &second);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("that bundle stays valid too"),
        "{}",
        run.stderr
    );
    assert!(second.join("cert.pem").exists());
}

/// `place list --as` names the Places the account reaches (it reads that
/// account's grants only), each with its time left: not another
/// account's, not a Place whose remote services are off. No network:
/// operator commands only.
#[test]
fn place_list_as_an_account_names_only_the_places_it_reaches() {
    let dir = TempDir::new("cloud-place-list-as");
    let (data, _, _) = setup(&dir);
    let data = data.to_str().unwrap();
    let create = |id: &str, by: &str, remote: bool| {
        let project = dir.path(&format!("{id}.json"));
        let mut args = vec!["cloud", "--data", data, "place", "create", "--as", by];
        args.extend(["--project-file", project.to_str().unwrap(), "--id", id]);
        if remote {
            args.push("--remote-services");
        }
        let run = handoff(&args);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    };
    let other = "other@example.com";
    create("cabin", other, true);
    create("shed", other, true);
    create("grey", OWNER, false);
    let run = handoff(&[
        "cloud", "--data", data, "share", "cabin", "--as", other, "--to", OWNER, "--for", "7d",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let list = |account: &str| {
        let run = handoff(&[
            "cloud", "--data", data, "place", "list", "--as", account, "--json",
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["place"].as_str().unwrap().to_owned(),
                    p["remaining_s"].is_null(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(OWNER),
        [("cabin".to_owned(), false), ("lake-house".to_owned(), true)]
    );
    assert_eq!(
        list(other),
        [("cabin".to_owned(), true), ("shed".to_owned(), true)]
    );
    assert_eq!(list("nobody@example.com"), []);
}
