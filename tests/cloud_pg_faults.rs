//! The Place service on PostgreSQL when the database misbehaves. Each test
//! has a PostgreSQL cluster of its own (`common::postgres::Private`), as
//! it stops, restarts or reconfigures it:
//!
//! - the database goes away in the middle of a batch;
//! - it is stopped with `pg_ctl stop -m immediate` mid-stream and started
//!   again;
//! - a node stalls mid-batch, the daemon resends to another node and goes
//!   on, and then the stalled batch wakes up;
//! - TLS to the database over TCP (in the test's private network).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use handoff::cloud::{AccessDuration, PlaceId};
use handoff::proto::{
    EventId, EventKind, Outcome, RelayEvent, RelayMessage, RevokeAccess, ShareAccess,
};

use common::postgres::{Cluster, Private};
use common::relay_conn::Conn;
use common::{Cloud, OWNER, TempDir, handoff, runtime, setup_on};

const PLACE: &str = "lake-house";

fn node_a() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

fn node_b() -> SocketAddr {
    "127.0.0.2:4433".parse().unwrap()
}

/// A test's own cluster with a fresh database set up by [`setup_on`].
struct Site {
    pg: Private,
    url: String,
    db: String,
    data: PathBuf,
    bundle: PathBuf,
    _dir: TempDir,
}

fn site(pg: Private, tag: &str) -> Site {
    let url = pg.cluster.fresh_database();
    let db = common::postgres::database_name(&url).to_owned();
    let dir = TempDir::new(tag);
    let (data, bundle, _) = setup_on(&dir, Some(&url));
    Site {
        pg,
        url,
        db,
        data,
        bundle,
        _dir: dir,
    }
}

fn event(seq: u64, kind: EventKind) -> RelayMessage {
    RelayMessage::Event(RelayEvent {
        id: EventId {
            daemon: "site-1".into(),
            seq,
        },
        kind,
    })
}

fn pro(n: u64) -> String {
    format!("pro{n}@example.com")
}

/// Event `seq` of site-1: a 7-day share to pro`seq`.
fn share(seq: u64) -> RelayMessage {
    share_to(seq, &pro(seq))
}

fn share_to(seq: u64, email: &str) -> RelayMessage {
    event(
        seq,
        EventKind::ShareAccess(ShareAccess {
            place: PlaceId(PLACE.into()),
            email: email.into(),
            duration: AccessDuration::SevenDays,
        }),
    )
}

/// Opens a relay connection to `addr` and says hello.
async fn connect(addr: SocketAddr, bundle: &Path) -> Conn {
    let mut conn = Conn::open(addr, bundle).await.expect("connect to the node");
    conn.hello().await;
    conn
}

/// The next `n` answers: (seq, Some(outcome)) for an ack, (seq, None) for
/// an error frame about that event.
async fn answers(conn: &mut Conn, n: usize) -> Vec<(u64, Option<Outcome>)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match conn.recv().await {
            Some(RelayMessage::Ack(ack)) => (ack.id.seq, Some(ack.outcome)),
            Some(RelayMessage::Error(e)) => {
                (e.id.expect("an error frame names its event").seq, None)
            }
            other => panic!("expected an answer, got {other:?}"),
        });
    }
    out
}

fn count(cluster: &Cluster, db: &str, sql: &str) -> u64 {
    cluster.psql_in(db, sql).parse().unwrap()
}

/// Sessions of `db` waiting for a lock.
const LOCK_WAITERS: &str = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";

/// Holds, in an open transaction of its own, an uncommitted grant of
/// `email` on the Place: a node's transaction that writes that grant
/// waits for it (mid-batch, if it is not its batch's first event).
fn hold_grant(cluster: &Cluster, db: &str, email: &str) -> std::process::Child {
    let mut session = cluster.session(db);
    writeln!(
        session.stdin.as_mut().unwrap(),
        "BEGIN; INSERT INTO grants (place, account, role, expires, source, source_by) \
         VALUES ('{PLACE}', '{email}', 'pro-installer', NULL, 'share', '{OWNER}');"
    )
    .unwrap();
    cluster.wait_until(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
                  AND datname = current_database() AND query LIKE '%{email}%'"
        ),
        "1",
    );
    session
}

lan_test! {
    /// The database goes away while a node is in the middle of a batch:
    /// the node answers an error frame for each of its events (it does
    /// not die), nothing of the batch was applied, and once the database
    /// is back the same events, resent, are each applied (not one is a
    /// duplicate: none was half-applied).
    fn a_database_that_goes_away_mid_batch_applies_nothing_of_it_and_the_resend_lands() {
        const EVENTS: u64 = 20;
        let Site { pg, url, db, data, bundle, _dir: _keep } = site(Private::on_socket(common::migrate), "pg-away");
        let _node = Cloud::start_on(&data, Some(&url), node_a());
        // The batch's 10th share waits for this lock, after 9 applied in
        // its transaction.
        let mut holder = hold_grant(&pg.cluster, &db, &pro(10));
        let rt = runtime();
        rt.block_on(async {
            let mut conn = connect(node_a(), &bundle).await;
            conn.send(&(1..=EVENTS).map(share).collect::<Vec<_>>()).await;
            pg.cluster.wait_until(&db, LOCK_WAITERS, "1");
            pg.stop_immediate();
            let got = answers(&mut conn, EVENTS as usize).await;
            assert!(got.iter().all(|(_, outcome)| outcome.is_none()), "every event got an error frame: {got:?}");
            let seqs: BTreeSet<u64> = got.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(seqs, (1..=EVENTS).collect(), "each event answered");
        });
        let _ = holder.kill();
        let _ = holder.wait();
        pg.start_again();
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM events"), 0, "no event of the batch was recorded");
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM grants"), 1, "no share of the batch landed: only the owner's grant");
        rt.block_on(async {
            // What the relay does after an error frame: reconnect, resend.
            let mut conn = connect(node_a(), &bundle).await;
            conn.send(&(1..=EVENTS).map(share).collect::<Vec<_>>()).await;
            let got = answers(&mut conn, EVENTS as usize).await;
            assert!(got.iter().all(|(_, o)| *o == Some(Outcome::Applied)), "{got:?}");
        });
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM events"), EVENTS);
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM grants"), EVENTS + 1);
    }
}

lan_test! {
    /// PostgreSQL stopped with `pg_ctl stop -m immediate` (every backend
    /// killed, no checkpoint) three times while a daemon streams 300
    /// events, and started again: every event acknowledged before a stop
    /// is in the database after it, the stream finishes, each event is
    /// applied once, and sent again each is a duplicate.
    fn postgres_stopped_immediately_mid_stream_loses_nothing_acknowledged() {
        const EVENTS: u64 = 300;
        let Site { pg, url, db, data, bundle, _dir: _keep } = site(Private::on_socket(common::migrate), "pg-immediate");
        let _node = Cloud::start_on(&data, Some(&url), node_a());
        let rt = runtime();
        let mut acked = BTreeSet::new();
        for round in 0..4u64 {
            let stop_at = (acked.len() as u64 + 40).min(EVENTS - 1);
            let errors = std::thread::scope(|s| {
                let stopper = (round < 3).then(|| {
                    s.spawn(|| {
                        pg.cluster.wait_until(&db, &format!("SELECT count(*) >= {stop_at} FROM events"), "t");
                        pg.stop_immediate();
                    })
                });
                let errors = rt.block_on(async {
                    let mut conn = connect(node_a(), &bundle).await;
                    let mut errors = 0;
                    let pending: Vec<u64> = (1..=EVENTS).filter(|s| !acked.contains(s)).collect();
                    for chunk in pending.chunks(16) {
                        conn.send(&chunk.iter().map(|s| share(*s)).collect::<Vec<_>>()).await;
                        for (seq, outcome) in answers(&mut conn, chunk.len()).await {
                            match outcome {
                                Some(_) => {
                                    acked.insert(seq);
                                }
                                None => errors += 1,
                            }
                        }
                        if errors > 0 {
                            break;
                        }
                    }
                    errors
                });
                if let Some(stopper) = stopper {
                    stopper.join().unwrap();
                }
                errors
            });
            if round < 3 {
                assert!(errors > 0, "round {round}: the stop did not land mid-stream");
                pg.start_again();
                let stored: BTreeSet<u64> = pg
                    .cluster
                    .psql_in(&db, "SELECT seq FROM events")
                    .lines()
                    .map(|l| l.parse().unwrap())
                    .collect();
                let lost: Vec<_> = acked.difference(&stored).collect();
                assert!(lost.is_empty(), "round {round}: acknowledged, then lost: {lost:?}");
            }
        }
        assert_eq!(acked.len() as u64, EVENTS, "every event acknowledged in the end");
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM events"), EVENTS);
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM grants"), EVENTS + 1);
        rt.block_on(async {
            let mut conn = connect(node_a(), &bundle).await;
            conn.send(&(1..=EVENTS).map(share).collect::<Vec<_>>()).await;
            let got = answers(&mut conn, EVENTS as usize).await;
            assert!(got.iter().all(|(_, o)| *o == Some(Outcome::Duplicate)), "{got:?}");
        });
    }
}

lan_test! {
    /// One daemon's events stay in order across nodes. Node A takes the
    /// daemon's batch [share pro1] and stalls in the middle of its
    /// transaction (its database session is stopped while it waits for a
    /// lock). The daemon gives up on A and resends to node B, which
    /// applies [share pro1, revoke pro1] and answers. Then A's session
    /// wakes up with its old batch: it must not apply the share again
    /// after the revoke. A's answer is the duplicate of the first, pro1
    /// has no access, each event is recorded once, and they were
    /// committed in the daemon's order.
    fn a_stalled_node_waking_up_never_applies_an_earlier_event_after_a_later_one() {
        let pg = Private::start(common::migrate, &["track_commit_timestamp = on".into()], "local all all trust\n");
        let Site { pg, url, db, data, bundle, _dir: _keep } = site(pg, "pg-order");
        let _a = Cloud::start_on(&data, Some(&url), node_a());
        let _b = Cloud::start_on(&data, Some(&url), node_b());
        let revoke = event(
            2,
            EventKind::RevokeAccess(RevokeAccess { place: PlaceId(PLACE.into()), email: pro(1), force: false }),
        );
        let mut holder = hold_grant(&pg.cluster, &db, &pro(1));
        let rt = runtime();
        rt.block_on(async {
            let mut to_a = connect(node_a(), &bundle).await;
            to_a.send(&[share(1)]).await;
            // A's transaction has read (no such event yet) and waits to
            // write pro1's grant: stop its session right there.
            pg.cluster.wait_until(&db, LOCK_WAITERS, "1");
            let pid: i32 = pg
                .cluster
                .psql_in(&db, &LOCK_WAITERS.replace("count(*)", "pid"))
                .parse()
                .unwrap();
            let backend = nix::unistd::Pid::from_raw(pid);
            nix::sys::signal::kill(backend, nix::sys::signal::Signal::SIGSTOP).unwrap();
            // The lock goes; A's session stays stopped.
            writeln!(holder.stdin.as_mut().unwrap(), "ROLLBACK;").unwrap();
            drop(holder.stdin.take());
            holder.wait().unwrap();

            // The daemon resends from its oldest unacknowledged event to B.
            let mut to_b = connect(node_b(), &bundle).await;
            to_b.send(&[share(1), revoke.clone()]).await;
            let got = answers(&mut to_b, 2).await;
            assert_eq!(got, vec![(1, Some(Outcome::Applied)), (2, Some(Outcome::Applied))]);

            // A wakes up with its old batch.
            nix::sys::signal::kill(backend, nix::sys::signal::Signal::SIGCONT).unwrap();
            let got = answers(&mut to_a, 1).await;
            assert_eq!(got, vec![(1, Some(Outcome::Duplicate))], "A answers its old event as the duplicate it now is");
        });
        assert_eq!(
            pg.cluster.psql_in(&db, &format!("SELECT count(*) FROM grants WHERE account = '{}'", pro(1))),
            "0",
            "the share was applied again after the revoke"
        );
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM events"), 2, "each event recorded once");
        assert_eq!(
            pg.cluster.psql_in(&db, "SELECT string_agg(seq::text, ',' ORDER BY pg_xact_commit_timestamp(xmin), seq) FROM events"),
            "1,2",
            "committed in the daemon's order"
        );
    }
}

lan_test! {
    /// TLS to the database over TCP, with a CA the test makes. The
    /// cluster accepts TCP only over TLS (`hostssl`), so a connection
    /// that works is a TLS one. `verify-full` needs the name in the URL
    /// to be the certificate's; `verify-ca` checks the chain only; a
    /// wrong CA, a missing CA file or plain TCP is one clear line and
    /// exit code 1.
    fn the_database_over_tls_is_verified_against_the_given_ca() {
        let dir = TempDir::new("pg-tls");
        let certs = dir.path("certs");
        std::fs::create_dir_all(&certs).unwrap();
        let (ca_pem, ca_issuer) = make_ca("database CA");
        let (wrong_ca_pem, _) = make_ca("another CA");
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca_issuer)
            .unwrap();
        std::fs::write(certs.join("server.crt"), server.pem()).unwrap();
        std::fs::write(certs.join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(certs.join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(certs.join("wrong-ca.pem"), &wrong_ca_pem).unwrap();
        give_to_postgres(&dir.0, &certs);
        let settings = [
            "listen_addresses = '127.0.0.1'".to_owned(),
            "port = 5432".to_owned(),
            "ssl = on".to_owned(),
            format!("ssl_cert_file = '{}'", certs.join("server.crt").display()),
            format!("ssl_key_file = '{}'", certs.join("server.key").display()),
        ];
        let pg = Private::start(common::migrate, &settings, "local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
        pg.cluster.psql("CREATE DATABASE overtls");
        let ca = certs.join("ca.pem");
        let url = |host: &str, mode: &str, root: &Path| {
            format!("postgresql://postgres@{host}:5432/overtls?sslmode={mode}&sslrootcert={}", root.display())
        };
        let migrate = |url: &str| handoff(&["cloud", "migrate", "--database", url]);

        let run = migrate(&url("127.0.0.1", "verify-full", &ca));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("schema version"), "{}", run.stdout);
        // A Place written and read over TLS.
        let data = dir.path("cloud");
        let tls_url = url("127.0.0.1", "verify-full", &ca);
        let run = handoff(&["cloud", "--data", data.to_str().unwrap(), "--database", &tls_url, "place", "create", "--id", PLACE, "--as", OWNER, "--remote-services", "--project-file", dir.path("p.json").to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(pg.cluster.psql_in("overtls", "SELECT id FROM places"), PLACE);
        // localhost is not in the certificate: verify-ca takes it, verify-full does not.
        let run = migrate(&url("localhost", "verify-ca", &ca));
        assert_eq!(run.code, Some(0), "{}", run.stderr);

        for (url, says) in [
            (url("localhost", "verify-full", &ca), "not valid for name"),
            (url("127.0.0.1", "verify-full", &certs.join("wrong-ca.pem")), "UnknownIssuer"),
            (url("127.0.0.1", "require", &certs.join("wrong-ca.pem")), "UnknownIssuer"),
            (url("127.0.0.1", "verify-full", &certs.join("missing.pem")), "sslrootcert="),
            ("postgresql://postgres@127.0.0.1:5432/overtls".to_owned(), "no encryption"),
        ] {
            let run = migrate(&url);
            assert_eq!(run.code, Some(1), "{url}: {}", run.stderr);
            assert!(run.stderr.contains(says), "{url}: {}", run.stderr);
            assert_eq!(run.stderr.trim().lines().count(), 1, "{url}: {}", run.stderr);
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
    }
}

/// A self-signed CA named `name`: its PEM and its issuer.
fn make_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// As root the cluster runs as `postgres`, which must read the
/// certificate and own its key (0600).
fn give_to_postgres(top: &Path, certs: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        certs.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if nix::unistd::geteuid().is_root() {
        for path in [top, certs] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let status = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(certs)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

lan_test! {
    /// The real `handoff relay` delivering 600 queued events to a node
    /// whose PostgreSQL is stopped (`-m immediate`) mid-stream and started
    /// again a second later: the node answers the batches in flight with
    /// error frames, the relay keeps them queued and resends, and finishes
    /// on its own (exit 0, backlog 0). Afterwards the database holds every
    /// event exactly once.
    fn handoff_relay_resends_what_a_node_could_not_store_when_its_database_went_away() {
        const EVENTS: usize = 600;
        let Site { pg, url, db, data, _dir: dir, .. } = site(Private::on_socket(common::migrate), "relay-db-away");
        let state = dir.path("state");
        let mut enroll = common::cloud_args(data.to_str().unwrap(), Some(&url));
        let identity = state.join("cloud-identity");
        enroll.extend(["enroll", "--name", "site-2", "--account", OWNER, "--out", identity.to_str().unwrap()]);
        let run = handoff(&enroll);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        queue_shares(&state, EVENTS);
        let _node = Cloud::start_on(&data, Some(&url), node_a());

        let relay = std::process::Command::new(common::handoff_bin())
            .args(["--state-dir", state.to_str().unwrap(), "relay", "--cloud", &node_a().to_string(),
                "--timeout", "300s", "--json"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pg.cluster.wait_until(&db, "SELECT count(*) >= 100 FROM events", "t");
        pg.stop_immediate();
        let stopped_at: u64 = {
            // Not a timed assertion: the database stays down a while, so
            // that batches meet it down.
            std::thread::sleep(std::time::Duration::from_secs(1));
            pg.start_again();
            count(&pg.cluster, &db, "SELECT count(*) FROM events")
        };
        let out = relay.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["applied"], EVENTS as u64, "{report}");
        assert_eq!(report["backlog"], 0, "{report}");
        assert!((stopped_at as usize) < EVENTS, "the stop landed after the stream: {stopped_at}");
        assert!(
            stderr.contains("the cloud could not store the event"),
            "the relay never met a node without its database:\n{stderr}"
        );
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM events") as usize, EVENTS);
        // Each event's share landed: every pro has a grant.
        assert_eq!(
            count(&pg.cluster, &db, "SELECT count(*) FROM grants WHERE account LIKE 'pro%'") as usize,
            EVENTS
        );
        assert_eq!(count(&pg.cluster, &db, "SELECT count(*) FROM grants") as usize, EVENTS + 1);
        // Nothing is left to send.
        let again = handoff(&["--state-dir", state.to_str().unwrap(), "relay", "--cloud", &node_a().to_string(),
            "--timeout", "10s", "--json"]);
        assert_eq!(again.code, Some(0), "{}", again.stderr);
        assert_eq!(again.json()["delivered"], 0);
    }
}

/// `n` shares to pro0… pro`n-1`, queued in `state`'s outbox as the daemon
/// queues them while the cloud is out of reach.
fn queue_shares(state: &Path, n: usize) {
    runtime().block_on(async {
        let outbox = handoff::outbox::Outbox::open(state.join(handoff::outbox::FILE_NAME)).unwrap();
        for i in 0..n {
            outbox
                .append(EventKind::ShareAccess(ShareAccess {
                    place: PlaceId(PLACE.into()),
                    email: pro(i as u64),
                    duration: AccessDuration::SevenDays,
                }))
                .await
                .unwrap();
        }
        outbox.close().await;
    });
}
