//! An account's Places (the portal's `/`, `cloud place list --as`) are
//! read from its own grants: on redb through `grants_by_account`, the
//! grants' keys turned round, which every change of a grant keeps in step
//! and which a file written without it gets when opened.

use std::path::Path;

use ::redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, NOW, SERIAL, claimed_by, event, fixture, owner, proof, site};
use crate::cloud::model::{AccessDuration, AccountId, PlaceId, ProjectKey, Timestamp};
use crate::cloud::rules::Command;
use crate::cloud::store::{CloudStore, Reply};
use crate::proto::{EventKind, Outcome, Released, ShareAccess};

on_both_backends!(an_account_reaches_its_places_after_share_revoke_expiry_and_release);

const GRANTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("grants");
const BY_ACCOUNT: TableDefinition<(&str, &str), ()> = TableDefinition::new("grants_by_account");

const PRO: &str = "pro@example.com";
const TEMP: &str = "temp@example.com";

/// The Places `account` reaches at `at` (first page of 100), and how many.
fn reached(store: &CloudStore, account: &str, at: Timestamp) -> (Vec<String>, usize) {
    let (places, total) = store
        .account_places(&AccountId::new(account), at, 0, 100)
        .unwrap();
    (places.into_iter().map(|p| p.id.0).collect(), total)
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Every key of `table`, as (account, Place): `grants` has them the
/// other way round.
fn keys<V: ::redb::Value + 'static>(
    txn: &::redb::ReadTransaction,
    table: TableDefinition<(&str, &str), V>,
) -> Vec<(String, String)> {
    let turned = table.to_string() == GRANTS.to_string();
    let mut keys: Vec<(String, String)> = txn
        .open_table(table)
        .unwrap()
        .iter()
        .unwrap()
        .map(|entry| {
            let (key, _) = entry.unwrap();
            let (a, b) = key.value();
            let (a, b) = (a.to_owned(), b.to_owned());
            if turned { (b, a) } else { (a, b) }
        })
        .collect();
    keys.sort();
    keys
}

/// On redb: the index holds exactly the grants' keys, turned round.
fn assert_index_matches_grants(store: &CloudStore, step: &str) {
    let CloudStore::Redb(redb) = store else {
        return;
    };
    let txn = redb.db.begin_read().unwrap();
    assert_eq!(keys(&txn, BY_ACCOUNT), keys(&txn, GRANTS), "after {step}");
}

fn applied(replies: &[Reply]) {
    match &replies[0] {
        Reply::Ack(ack) => assert_eq!(ack.outcome, Outcome::Applied),
        Reply::Error(e) => panic!("{e:?}"),
    }
}

fn create(store: &CloudStore, place: &str, now: Timestamp) {
    store
        .execute(
            &Command::CreatePlace {
                place: PlaceId(place.into()),
                by: owner(),
                key: ProjectKey("k".into()),
                remote_services: true,
            },
            now,
        )
        .unwrap()
        .unwrap();
}

fn share(place: &str, to: &str, duration: AccessDuration) -> Command {
    Command::ShareAccess {
        place: PlaceId(place.into()),
        by: owner(),
        email: AccountId::new(to),
        duration,
    }
}

fn revoke(place: &str, target: AccountId) -> Command {
    Command::RevokeAccess {
        place: PlaceId(place.into()),
        by: owner(),
        target,
        force: true,
    }
}

/// Every way a grant is written or removed, through the rules (directly,
/// as the operator CLI and the portal do, and relayed): after each, the
/// accounts reach what their grants say, and redb's index matches.
fn an_account_reaches_its_places_after_share_revoke_expiry_and_release(b: Backend) {
    let f = fixture(b);
    // PostgreSQL's transactions take the database's clock, not the `now`
    // passed: the reads here are at the time the changes were made.
    let now = crate::cloud::now();
    let s = &f.store;
    let check = |step: &str| assert_index_matches_grants(s, step);
    create(s, "cabin", now);
    check("creating a Place");
    assert_eq!(
        reached(s, owner().as_str(), now),
        (ids(&["cabin", "lake-house"]), 2)
    );
    let (page, total) = s.account_places(&owner(), now, 1, 1).unwrap();
    assert_eq!((page[0].id.0.as_str(), total), ("lake-house", 2));
    assert_eq!(reached(s, PRO, now), (vec![], 0));

    let thirty = AccessDuration::ThirtyDays;
    s.execute(&share("lake-house", PRO, thirty), now)
        .unwrap()
        .unwrap();
    let relayed = EventKind::ShareAccess(ShareAccess {
        place: PlaceId("cabin".into()),
        email: PRO.into(),
        duration: thirty,
    });
    applied(&s.relay(&owner(), &[event(1, relayed)], now).unwrap());
    check("shares");
    assert_eq!(reached(s, PRO, now), (ids(&["cabin", "lake-house"]), 2));

    // A grant that expired is kept, and reaches nothing.
    let one_day = AccessDuration::OneDay;
    s.execute(&share("lake-house", TEMP, one_day), now)
        .unwrap()
        .unwrap();
    check("a share for a day");
    assert_eq!(reached(s, TEMP, now), (ids(&["lake-house"]), 1));
    let later = now.plus(2 * 86_400);
    assert_eq!(reached(s, TEMP, later), (vec![], 0));
    assert_eq!(reached(s, PRO, later).1, 2);

    applied(
        &s.relay(&site(), &[claimed_by(&site(), 2, &proof(&f.ca))], now)
            .unwrap(),
    );
    check("a claim");
    assert_eq!(reached(s, site().as_str(), now), (ids(&["lake-house"]), 1));
    // Remove Home from Account, naming the processor only.
    let release = EventKind::Released(Released {
        place: None,
        serial: Some(SERIAL),
    });
    applied(&s.relay(&site(), &[event(3, release)], now).unwrap());
    check("a release");
    assert_eq!(reached(s, site().as_str(), now), (vec![], 0));

    s.execute(&revoke("cabin", AccountId::new(PRO)), now)
        .unwrap()
        .unwrap();
    check("a revoke");
    assert_eq!(reached(s, PRO, now), (ids(&["lake-house"]), 1));
    // The last access revoked, forced: the Place is deleted, grants and all.
    s.execute(&revoke("cabin", owner()), now).unwrap().unwrap();
    check("a Place deleted");
    assert_eq!(reached(s, owner().as_str(), now), (ids(&["lake-house"]), 1));
}

/// Opens the redb file in `data` bare, to do what another build would.
fn bare(data: &Path, change: impl FnOnce(&::redb::WriteTransaction)) {
    let db = ::redb::Database::open(data.join(crate::cloud::store::redb::STORE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    change(&txn);
    txn.commit().unwrap();
}

/// A file written before the index (no `grants_by_account`), or written
/// to by such a build afterwards (a grant without its row), is indexed
/// again when opened, and its accounts reach all their Places.
#[test]
fn a_redb_file_without_the_index_by_account_gets_it_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = CloudStore::open(&data).unwrap();
        for place in ["p1", "p2", "p3"] {
            create(&store, place, NOW);
        }
        for place in ["p1", "p3"] {
            let cmd = share(place, PRO, AccessDuration::Unlimited);
            store.execute(&cmd, NOW).unwrap().unwrap();
        }
    }
    bare(&data, |txn| {
        assert!(txn.delete_table(BY_ACCOUNT).unwrap());
    });
    let store = CloudStore::open(&data).unwrap();
    assert_index_matches_grants(&store, "opening a file without the index");
    assert_eq!(reached(&store, PRO, NOW), (ids(&["p1", "p3"]), 2));
    assert_eq!(reached(&store, owner().as_str(), NOW).1, 3);
    drop(store);

    bare(&data, |txn| {
        txn.open_table(BY_ACCOUNT)
            .unwrap()
            .remove((PRO, "p3"))
            .unwrap();
    });
    let store = CloudStore::open(&data).unwrap();
    assert_index_matches_grants(&store, "opening a file with a row missing");
    assert_eq!(reached(&store, PRO, NOW), (ids(&["p1", "p3"]), 2));
}
