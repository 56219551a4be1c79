//! What only the PostgreSQL backend has: a schema version, logins,
//! several nodes on one database, and `cloud copy` into it. (Every
//! operation's behaviour is `store::tests`, run on both backends.)

use std::collections::BTreeSet;

use super::*;
use crate::cloud::AccessDuration;
use crate::cloud::store::CloudStore;
use crate::cloud::store::tests::{
    Backend, MAC, SERIAL, claimed_by, cluster, event, fixture, migrate, owner, proof, site,
};
use crate::proto::{
    EventKind, NewShareLink, Outcome, RedeemLink, Released, RevokeAccess, ShareAccess,
};

#[test]
fn a_database_newer_than_this_build_is_refused_with_what_to_do() {
    let url = cluster::fresh_database(migrate);
    let c = cluster::cluster(migrate);
    c.psql_in(
        cluster::database_name(&url),
        "INSERT INTO schema_migrations (version) VALUES (99)",
    );
    let err = PgStore::connect(&url).unwrap_err();
    assert!(
        matches!(err, CloudError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this handoff"), "{err}");
}

#[test]
fn an_unreachable_database_and_a_wrong_password_are_one_clear_error() {
    let c = cluster::cluster(migrate);
    let nowhere = PgStore::connect("postgresql://postgres@/x?host=/nonexistent/socket-dir")
        .unwrap_err()
        .to_string();
    assert!(
        nowhere.contains("cannot reach x on /nonexistent/socket-dir"),
        "{nowhere}"
    );
    let url = cluster::fresh_database(migrate);
    let db = cluster::database_name(&url);
    let wrong = PgStore::connect(&c.url_as(db, cluster::PASSWORD_ROLE, "wrong"))
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    assert!(
        !wrong.contains("wrong"),
        "the password is never shown: {wrong}"
    );
    // The right one gets in: the refusal was the password's.
    PgStore::connect(&c.url_as(db, cluster::PASSWORD_ROLE, cluster::PASSWORD)).unwrap();
    // TLS without saying whom to trust is refused before any connection.
    let tls = PgStore::connect(&format!("{url}&sslmode=require")).unwrap_err();
    assert!(tls.to_string().contains("sslrootcert=FILE"), "{tls}");
}

/// Two nodes on one database, each relaying batches that all touch one
/// Place (a share and a new link each): they conflict, PostgreSQL refuses
/// some commits, the store reruns them, and in the end every event was
/// applied exactly once.
#[test]
fn conflicting_batches_from_two_nodes_are_each_applied_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = cluster::fresh_database(migrate);
    let nodes = [
        CloudStore::open_chosen(dir.path(), Some(&url)).unwrap(),
        CloudStore::open_chosen(dir.path(), Some(&url)).unwrap(),
    ];
    let place = PlaceId("p".into());
    nodes[0]
        .execute(
            &Command::CreatePlace {
                place: place.clone(),
                by: owner(),
                key: ProjectKey("k".into()),
                remote_services: true,
            },
            Timestamp(0),
        )
        .unwrap()
        .unwrap();
    const BATCHES: u64 = 15;
    let mut busy = 0;
    let replies: Vec<Vec<Reply>> = std::thread::scope(|s| {
        let workers: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let place = place.clone();
                s.spawn(move || {
                    let mut all = Vec::new();
                    let mut busy = 0;
                    for b in 0..BATCHES {
                        let seq = b * 2;
                        let batch = [
                            event(
                                seq,
                                EventKind::ShareAccess(ShareAccess {
                                    place: place.clone(),
                                    email: format!("pro-{n}-{b}@example.com"),
                                    duration: AccessDuration::SevenDays,
                                }),
                            ),
                            event(
                                seq + 1,
                                EventKind::NewShareLink(NewShareLink {
                                    place: place.clone(),
                                    duration: AccessDuration::OneDay,
                                }),
                            ),
                        ]
                        .map(|mut e| {
                            e.id.daemon = format!("node-{n}");
                            e
                        });
                        // As the daemon does after a `busy` frame: again.
                        loop {
                            match node.relay(&owner(), &batch, Timestamp(0)) {
                                Ok(replies) => break all.extend(replies),
                                Err(CloudError::Busy { .. }) => busy += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    (all, busy)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                let (all, b) = w.join().unwrap();
                busy += b;
                all
            })
            .collect()
    });
    let retries: u64 = nodes.iter().map(|n| n.serialization_retries()).sum();
    eprintln!("serialization retries: {retries}, busy batches: {busy}");
    for reply in replies.iter().flatten() {
        let Reply::Ack(ack) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(ack.outcome, Outcome::Applied, "{ack:?}");
    }
    let sent = 2 * 2 * BATCHES;
    assert_eq!(nodes[1].event_count().unwrap(), sent);
    let p = nodes[0].place(&place).unwrap().unwrap();
    assert_eq!(p.grants.len() as u64, 1 + 2 * BATCHES, "every share landed");
    assert_eq!(p.links_issued, 2 * BATCHES, "every link was numbered once");
    let numbers: BTreeSet<u64> = replies
        .iter()
        .flatten()
        .filter_map(|r| match r {
            Reply::Ack(ack) => ack.link.as_ref().map(|l| l.number),
            Reply::Error(_) => None,
        })
        .collect();
    assert_eq!(numbers, (0..2 * BATCHES).collect(), "no number given twice");
    assert_eq!(
        p.share_link.unwrap().link.number,
        2 * BATCHES - 1,
        "the last is active"
    );
}

/// A redb store with a bit of everything, copied; then both answer every
/// read alike (both keep a Place's link as its digest), and a node on the
/// copy with the same data directory (the same CA) answers a duplicate
/// NewShareLink with the same secret.
#[test]
fn cloud_copy_moves_everything_and_both_stores_answer_alike() {
    let f = fixture(Backend::Redb);
    let from = &f.store;
    let relay = |who: &AccountId, seq: u64, kind: EventKind| {
        from.relay(who, &[event(seq, kind)], crate::cloud::now())
            .unwrap()
    };
    // A homeowner came and went (their proof is spent; their site box
    // reported the processor's model and firmware)…
    let mut claim = claimed_by(&site(), 4, &proof(&f.ca));
    if let EventKind::Claimed(c) = &mut claim.kind {
        c.model = Some("RadioRA 3 Processor".into());
        c.firmware = Some("26.00.14f000".into());
    }
    from.relay(&site(), &[claim], crate::cloud::now()).unwrap();
    relay(
        &site(),
        5,
        EventKind::Released(Released {
            place: Some(f.place.clone()),
            serial: None,
        }),
    );
    relay(
        &owner(),
        1,
        EventKind::ShareAccess(ShareAccess {
            place: f.place.clone(),
            email: "pro@example.com".into(),
            duration: AccessDuration::ThirtyDays,
        }),
    );
    let link = relay(
        &owner(),
        2,
        EventKind::NewShareLink(NewShareLink {
            place: f.place.clone(),
            duration: AccessDuration::OneDay,
        }),
    );
    let Reply::Ack(ack) = &link[0] else { panic!() };
    let link = ack.link.clone().unwrap();
    relay(
        &AccountId::new("guest@example.com"),
        3,
        EventKind::RedeemLink(RedeemLink {
            place: f.place.clone(),
            link: link.clone(),
        }),
    );
    relay(
        &owner(),
        6,
        EventKind::RevokeAccess(RevokeAccess {
            place: f.place.clone(),
            email: "nobody@example.com".into(),
            force: false,
        }),
    );
    let gone = Command::CreatePlace {
        place: PlaceId("gone".into()),
        by: owner(),
        key: ProjectKey("k".into()),
        remote_services: true,
    };
    from.execute(&gone, crate::cloud::now()).unwrap().unwrap();
    from.execute(
        &Command::RevokeAccess {
            place: PlaceId("gone".into()),
            by: owner(),
            target: owner(),
            force: true,
        },
        crate::cloud::now(),
    )
    .unwrap()
    .unwrap();
    from.add_daemon(&crate::cloud::store::DaemonRecord::enrolled(
        "lake",
        owner(),
        Timestamp(7),
    ))
    .unwrap();

    let url = cluster::empty_database(migrate);
    let to_pg = PgStore::connect(&url).unwrap();
    let CloudStore::Redb(redb) = from else {
        unreachable!()
    };
    let copied = crate::cloud::store::copy::copy(redb, &to_pg).unwrap();
    assert_eq!(
        (
            copied.places,
            copied.events,
            copied.spent_proofs,
            copied.reports
        ),
        (1, 6, 1, 1)
    );
    drop(to_pg);
    let to = CloudStore::open_chosen(&f._dir.path().join("data"), Some(&url)).unwrap();

    // Both hold a link's digest, never its secret: copied as it is.
    let places = |s: &CloudStore| s.places().unwrap().iter().cloned().collect::<Vec<_>>();
    assert_eq!(places(from), places(&to));
    assert_eq!(from.processors().unwrap(), to.processors().unwrap());
    let reports = from.processor_reports(&[SERIAL]).unwrap();
    assert!(reports[&SERIAL].identity.is_some(), "{reports:?}");
    assert_eq!(reports, to.processor_reports(&[SERIAL]).unwrap());
    assert_eq!(from.daemons().unwrap(), to.daemons().unwrap());
    assert_eq!(from.events().unwrap(), to.events().unwrap());
    assert_eq!(from.event_count().unwrap(), to.event_count().unwrap());
    // Every Place's timeline, the deleted one's too.
    for place in [f.place.clone(), PlaceId("gone".into())] {
        let (entries, total) = from.timeline(&place, 100).unwrap();
        assert!(total > 0, "{place}");
        assert_eq!((entries, total), to.timeline(&place, 100).unwrap());
    }
    let now = crate::cloud::now();
    for account in [owner(), site(), AccountId::new("guest@example.com")] {
        for query in [
            StatusQuery::BySerial {
                query: 1,
                serial: SERIAL,
            },
            StatusQuery::ByMac { query: 2, mac: MAC },
        ] {
            assert_eq!(
                from.status(&account, &query, now).unwrap(),
                to.status(&account, &query, now).unwrap()
            );
        }
    }
    // Every event sent again gets the same answer from both.
    for e in from.events().unwrap() {
        let again = event(
            e.seq,
            EventKind::ShareAccess(ShareAccess {
                place: f.place.clone(),
                email: "x@example.com".into(),
                duration: AccessDuration::OneDay,
            }),
        );
        assert_eq!(
            from.relay(&e.account, std::slice::from_ref(&again), now)
                .unwrap(),
            to.relay(&e.account, &[again], now).unwrap()
        );
    }
    // The link still works on the copy (it is matched by digest), and
    // the deleted Place's id stays taken.
    let redeemed = to
        .relay(
            &AccountId::new("late@example.com"),
            &[event(
                9,
                EventKind::RedeemLink(RedeemLink {
                    place: f.place.clone(),
                    link: link.clone(),
                }),
            )],
            now,
        )
        .unwrap();
    let Reply::Ack(ack) = &redeemed[0] else {
        panic!()
    };
    assert_eq!(ack.outcome, Outcome::Applied, "{ack:?}");
    assert!(matches!(
        to.execute(&gone, now).unwrap(),
        Err(Refusal::PlaceExists { .. })
    ));
    // Copying again into a database that holds a cloud is refused.
    let CloudStore::Postgres(pg) = &to else {
        unreachable!()
    };
    let again = crate::cloud::store::copy::copy(redb, pg).unwrap_err();
    assert!(
        again.to_string().contains("already holds a cloud"),
        "{again}"
    );
}

/// The grants an event's rules need are read by key whatever the planner
/// knows: on a Place of 2,000 grants inserted since the last ANALYZE (no
/// statistics, as after a burst of shares), the read filters out no grant
/// and touches a handful of pages. `account = ANY($2)` let the planner
/// scan the Place's grants (bench/cloud: 56 pages per event at 1,000
/// grants before, 37 after, at any size).
#[test]
fn the_grants_an_event_needs_are_read_by_key_on_a_place_without_statistics() {
    let url = cluster::fresh_database(migrate);
    let c = cluster::cluster(migrate);
    let db = cluster::database_name(&url);
    let plan = c.psql_in(
        db,
        &format!(
            "INSERT INTO places VALUES ('p', true, 'k', 0, NULL, NULL, NULL, NULL);
             INSERT INTO grants SELECT 'p', 'g' || i || '@example.com', 'pro-installer',
                 NULL, 'share', 'o@example.com' FROM generate_series(1, 2000) i;
             SET enable_seqscan = off;
             PREPARE q (text, text[]) AS {};
             EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)
                 EXECUTE q ('p', ARRAY['g7@example.com', 'new@example.com']);",
            super::txn::grants_for_rules()
        ),
    );
    assert!(!plan.contains("Rows Removed by Filter"), "{plan}");
    let pages: u64 = plan
        .split("shared hit=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no buffer count in {plan}"));
    // 7 by key; 16 by `account = ANY($2)`.
    assert!(pages <= 10, "{pages} pages for two grants:\n{plan}");
}
