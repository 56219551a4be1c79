//! No share-link secret is kept: Places hold its digest, a relayed
//! NewShareLink's answer its number, and a duplicate (on any node with the
//! same CA) gets the secret derived again.

use super::{Backend, NOW, cluster, event, owner};
use crate::cloud::authority::CloudAuthority;
use crate::cloud::model::{AccessDuration, AccountId, LinkSecret, PlaceId, ProjectKey};
use crate::cloud::rules::Command;
use crate::cloud::share_link::new_share_link;
use crate::cloud::store::{CloudStore, Reply, StoredResult, link_digest};
use crate::proto::{EventKind, IssuedLink, NewShareLink, Outcome, RedeemLink};

on_both_backends!(no_link_secret_is_in_the_store_after_links_were_made);

fn create(store: &CloudStore, place: &PlaceId) {
    store
        .execute(
            &Command::CreatePlace {
                place: place.clone(),
                by: owner(),
                key: ProjectKey("k".into()),
                remote_services: true,
            },
            NOW,
        )
        .unwrap()
        .unwrap();
}

fn new_link(place: &PlaceId, seq: u64) -> crate::proto::RelayEvent {
    event(
        seq,
        EventKind::NewShareLink(NewShareLink {
            place: place.clone(),
            duration: AccessDuration::OneDay,
        }),
    )
}

/// The link an ack handed out.
fn issued(replies: &[Reply]) -> (Outcome, IssuedLink) {
    match &replies[0] {
        Reply::Ack(ack) => (ack.outcome.clone(), ack.link.clone().expect("a link")),
        Reply::Error(e) => panic!("{e:?}"),
    }
}

/// `account` redeems `link` on `place` through `store`: the outcome.
fn redeem(
    store: &CloudStore,
    account: &str,
    seq: u64,
    place: &PlaceId,
    link: &IssuedLink,
) -> Outcome {
    let replies = store
        .relay(
            &AccountId::new(account),
            &[event(
                seq,
                EventKind::RedeemLink(RedeemLink {
                    place: place.clone(),
                    link: link.clone(),
                }),
            )],
            NOW,
        )
        .unwrap();
    match &replies[0] {
        Reply::Ack(ack) => ack.outcome.clone(),
        Reply::Error(e) => panic!("{e:?}"),
    }
}

/// Everything the store holds, as bytes to search: the redb file, or
/// every row of every table of the database as text.
fn everything(store: &CloudStore, url: Option<&str>) -> Vec<u8> {
    match (store, url) {
        (CloudStore::Redb(s), _) => std::fs::read(s.path()).unwrap(),
        (CloudStore::Postgres(_), Some(url)) => {
            let c = cluster::cluster(super::migrate);
            let db = cluster::database_name(url);
            let tables = c.psql_in(
                db,
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            );
            let mut all = String::new();
            for table in tables.lines().filter(|t| !t.is_empty()) {
                all.push_str(&c.psql_in(db, &format!("SELECT t::text FROM {table} t")));
            }
            all.into_bytes()
        }
        (CloudStore::Postgres(_), None) => unreachable!("a database has a URL"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A relayed link and an operator's link: neither secret is anywhere in
/// the store (the hex as handed out, or its 16 bytes), each Place holds
/// the digest, and the relayed one still redeems and is handed out again
/// to a duplicate.
fn no_link_secret_is_in_the_store_after_links_were_made(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = b.open(dir.path(), None);
    let relayed_place = PlaceId("relayed".into());
    let operator_place = PlaceId("operator".into());
    create(&store, &relayed_place);
    create(&store, &operator_place);

    let (outcome, relayed) = issued(
        &store
            .relay(&owner(), &[new_link(&relayed_place, 1)], NOW)
            .unwrap(),
    );
    assert_eq!(outcome, Outcome::Applied);
    let operator = new_share_link(
        &store,
        &operator_place,
        &owner(),
        AccessDuration::OneDay,
        NOW,
    )
    .unwrap()
    .unwrap();
    let (again, duplicate) = issued(
        &store
            .relay(&owner(), &[new_link(&relayed_place, 1)], NOW)
            .unwrap(),
    );
    assert_eq!(again, Outcome::Duplicate);
    assert_eq!(duplicate, relayed, "a duplicate gets the same link");
    assert_eq!(
        redeem(&store, "pro@example.com", 2, &relayed_place, &relayed),
        Outcome::Applied
    );

    let held = everything(&store, url.as_deref());
    for secret in [&relayed.secret, &operator.secret.0] {
        let raw = crate::hex::decode(secret).unwrap();
        assert!(
            !contains(&held, secret.as_bytes()),
            "the secret {secret} is stored"
        );
        assert!(
            !contains(&held, &raw),
            "the secret {secret} is stored as bytes"
        );
        // What is there instead: the digest (the search sees the Places).
        let digest = link_digest(&LinkSecret(secret.clone()));
        assert!(contains(&held, digest.as_bytes()), "no digest of {secret}");
    }
    // The event's answer keeps the number only.
    let events = store.events().unwrap();
    let answers: Vec<&StoredResult> = events.iter().map(|e| &e.result).collect();
    assert!(
        answers.contains(&&StoredResult::Applied {
            link: Some(relayed.number)
        }),
        "{answers:?}"
    );
}

/// A copy of `from`'s CA in a new data directory, as every node of one
/// service gets one.
fn copy_of_ca(from: &std::path::Path, to: &std::path::Path) {
    for file in ["ca.pem", "ca.key"] {
        let bytes = std::fs::read(from.join("ca").join(file)).unwrap();
        crate::identity::files::ensure_private_dir(to).unwrap();
        crate::identity::files::ensure_private_dir(&to.join("ca")).unwrap();
        crate::identity::files::write_private(&to.join("ca"), file, &bytes).unwrap();
    }
}

/// Two nodes with copies of one CA: a NewShareLink the daemon sends again
/// to the other node gets the same secret back, which redeems there. A
/// node with another CA derives another secret, which does not redeem:
/// the secret comes from the CA, not from the database.
#[test]
fn a_duplicate_new_share_link_on_the_other_node_gets_the_same_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    CloudAuthority::load_or_create(&a_dir).unwrap();
    copy_of_ca(&a_dir, &b_dir);
    CloudAuthority::load_or_create(&c_dir).unwrap();
    let url = cluster::fresh_database(super::migrate);
    let [a, b, c] =
        [&a_dir, &b_dir, &c_dir].map(|d| CloudStore::open_chosen(d, Some(&url)).unwrap());
    let place = PlaceId("p".into());
    create(&a, &place);

    let (outcome, first) = issued(&a.relay(&owner(), &[new_link(&place, 1)], NOW).unwrap());
    assert_eq!(outcome, Outcome::Applied);
    let (outcome, on_b) = issued(&b.relay(&owner(), &[new_link(&place, 1)], NOW).unwrap());
    assert_eq!(outcome, Outcome::Duplicate);
    assert_eq!(on_b, first, "the same link from the other node");

    let (outcome, on_c) = issued(&c.relay(&owner(), &[new_link(&place, 1)], NOW).unwrap());
    assert_eq!(outcome, Outcome::Duplicate);
    assert_eq!(on_c.number, first.number);
    assert_ne!(on_c.secret, first.secret, "another CA, another secret");
    assert!(matches!(
        redeem(&c, "thief@example.com", 2, &place, &on_c),
        Outcome::Refused { .. }
    ));
    assert_eq!(
        redeem(&b, "pro@example.com", 3, &place, &on_b),
        Outcome::Applied
    );
    assert_eq!(
        a.event_count().unwrap(),
        3,
        "the duplicates were not applied again"
    );
}

/// A redb file from before: a Place's row with its link's secret and an
/// event's answer with the secret it handed out. Opened, the row holds
/// the digest (the old link still redeems), the answer the number only;
/// opening again changes nothing (the digest is not digested again).
#[test]
fn a_redb_file_holding_link_secrets_is_converted_when_opened() {
    use ciborium::Value;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let place = PlaceId("old".into());
    let old_secret = "00112233445566778899aabbccddeeff";
    let file = data.join(crate::cloud::store::STORE_FILE);
    {
        let store = CloudStore::open(&data).unwrap();
        create(&store, &place);
        let link = store.relay(&owner(), &[new_link(&place, 1)], NOW).unwrap();
        assert_eq!(issued(&link).1.number, 0);
    }
    {
        // Write both records as the old build did, and drop the marker.
        let db = ::redb::Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        let rows_def: ::redb::TableDefinition<&str, &[u8]> =
            ::redb::TableDefinition::new("place_rows");
        let events_def: ::redb::TableDefinition<(&str, &str, u64), &[u8]> =
            ::redb::TableDefinition::new("events");
        {
            let mut rows = txn.open_table(rows_def).unwrap();
            let bytes = ::redb::ReadableTable::get(&rows, "old")
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let mut row: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
            set_text(&mut row, &["share_link", "link", "secret"], old_secret);
            let mut out = Vec::new();
            ciborium::into_writer(&row, &mut out).unwrap();
            rows.insert("old", out.as_slice()).unwrap();
            let old_answer = Value::Map(vec![(
                Value::Text("Applied".into()),
                Value::Map(vec![(
                    Value::Text("link".into()),
                    Value::Array(vec![
                        Value::Integer(0.into()),
                        Value::Text(old_secret.into()),
                    ]),
                )]),
            )]);
            let mut out = Vec::new();
            ciborium::into_writer(&old_answer, &mut out).unwrap();
            let mut events = txn.open_table(events_def).unwrap();
            events
                .insert((owner().as_str(), "d1", 1), out.as_slice())
                .unwrap();
        }
        assert!(
            txn.delete_table(::redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap()
        );
        txn.commit().unwrap();
    }
    for _ in 0..2 {
        let store = CloudStore::open(&data).unwrap();
        let held = store.place(&place).unwrap().unwrap().share_link.unwrap();
        assert_eq!(
            held.link.secret.0,
            link_digest(&LinkSecret(old_secret.into()))
        );
        let answers: Vec<StoredResult> = store
            .events()
            .unwrap()
            .into_iter()
            .map(|e| e.result)
            .collect();
        assert_eq!(answers, [StoredResult::Applied { link: Some(0) }]);
    }
    let store = CloudStore::open(&data).unwrap();
    let old = IssuedLink {
        number: 0,
        secret: old_secret.into(),
    };
    assert_eq!(
        redeem(&store, "pro@example.com", 2, &place, &old),
        Outcome::Applied
    );
}

/// Sets the text at `path` (map keys) inside `value`.
fn set_text(value: &mut ciborium::Value, path: &[&str], text: &str) {
    let mut at = value;
    for key in path {
        let ciborium::Value::Map(entries) = at else {
            panic!("not a map at {key}")
        };
        at = entries
            .iter_mut()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key}"));
    }
    *at = ciborium::Value::Text(text.into());
}
