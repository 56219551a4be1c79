use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use std::path::Path;

use super::*;
use crate::cloud::{AccessDuration, ProjectKey, Role};
use crate::cloud::{CloudError, Status};
use crate::identity::{CertificateAuthority, KeyAlgorithm, PrivateKey, sign_client_csr};
use crate::proto::{Claimed, EventId, NewShareLink, RedeemLink, Released, ShareAccess};
use crate::proto::{Outcome, error_code};

pub(crate) const NOW: Timestamp = Timestamp(1_800_000_000);

/// The backends every test here runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Redb,
    Postgres,
}

#[path = "../../../tests/common/postgres.rs"]
pub(crate) mod cluster;

/// Brings a test database to the schema (the cluster's template).
pub(crate) fn migrate(url: &str) {
    PgStore::connect(url).unwrap();
}

impl Backend {
    /// A store in `dir` (redb) or a fresh database, or `url` again; and
    /// the database's URL, to open it again.
    fn open(self, dir: &Path, url: Option<&str>) -> (CloudStore, Option<String>) {
        match self {
            Backend::Redb => (CloudStore::open(&dir.join("data")).unwrap(), None),
            Backend::Postgres => {
                let url = url.map_or_else(|| cluster::fresh_database(migrate), str::to_owned);
                (CloudStore::open_chosen(dir, Some(&url)).unwrap(), Some(url))
            }
        }
    }
}

/// Each test named runs once on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_redb {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Redb)
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Postgres)
            })*
        }
    };
}

on_both_backends!(
    a_claim_with_the_processors_proof_makes_the_claimant_homeowner,
    claim_proof_is_checked_against_the_processor_ca,
    a_claim_proof_is_spent_once,
    a_claim_with_the_wrong_mac_is_refused,
    duplicate_event_ids_are_acknowledged_with_the_original_result_and_applied_once,
    a_new_share_link_comes_back_in_the_ack_and_again_on_a_duplicate,
    status_by_serial_or_mac_is_the_cloud_icon_and_unknown_processors_get_an_error,
    the_store_keeps_everything_across_a_reopen_and_a_second_handle,
    a_deleted_places_id_is_never_reused,
    a_places_timeline_keeps_every_applied_and_refused_event_with_its_site_box,
    a_processor_keeps_what_the_site_box_that_relayed_for_it_last_reported,
    a_grey_places_creator_grant_is_stored_dormant_and_wakes_when_the_creator_enables,
);
pub(crate) const SERIAL: Serial = Serial(0x0123_4567);
pub(crate) const MAC: Mac = Mac([0x02, 0x4c, 0x01, 0x23, 0x45, 0x67]);

pub(crate) struct Fixture {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) store: CloudStore,
    pub(crate) ca: CertificateAuthority,
    pub(crate) place: PlaceId,
}

pub(crate) fn owner() -> AccountId {
    AccountId::new("designer@example.com")
}

pub(crate) fn site() -> AccountId {
    AccountId::new("site-box@example.com")
}

/// A Place with remote services on and one processor activated.
pub(crate) fn fixture(b: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = b.open(dir.path(), None).0;
    let ca = CertificateAuthority::processor_ca(MAC).unwrap();
    let place = PlaceId("lake-house".into());
    let key = ProjectKey("k".into());
    store
        .create_place(
            &Command::CreatePlace {
                place: place.clone(),
                by: owner(),
                key,
                remote_services: true,
            },
            Some(ProcessorRecord {
                place: place.clone(),
                serial: SERIAL,
                mac: MAC.0,
                ca_der: ca.certificate_der().to_vec(),
            }),
            NOW,
        )
        .unwrap()
        .unwrap();
    Fixture {
        _dir: dir,
        store,
        ca,
        place,
    }
}

/// A claim certificate the processor CA `ca` signed, and its key.
pub(crate) struct Proof {
    key: PrivateKey,
    pub(crate) der: Vec<u8>,
}

pub(crate) fn proof(ca: &CertificateAuthority) -> Proof {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pem = sign_client_csr(&key.csr_pem("handoff").unwrap(), ca).unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec();
    Proof { key, der }
}

/// Event `seq`: `proof`'s claim, signed with its key for `account`, as the
/// relay sends it.
pub(crate) fn claimed_by(account: &AccountId, seq: u64, proof: &Proof) -> RelayEvent {
    let mut e = event(seq, claimed(proof.der.clone()));
    let signed =
        crate::proto::possession::signed_bytes(&e.id, account.as_str(), SERIAL, &proof.der);
    if let EventKind::Claimed(c) = &mut e.kind {
        c.possession = Some(proof.key.sign(&signed).unwrap());
    }
    e
}

pub(crate) fn event(seq: u64, kind: EventKind) -> RelayEvent {
    RelayEvent {
        id: EventId {
            daemon: "d1".into(),
            seq,
        },
        kind,
    }
}

pub(crate) fn claimed(proof: Vec<u8>) -> EventKind {
    EventKind::Claimed(Claimed {
        place: None,
        serial: SERIAL,
        mac: MAC,
        proof,
        at: NOW,
        possession: None,
        model: None,
        firmware: None,
    })
}

fn outcome(reply: &Reply) -> &Outcome {
    match reply {
        Reply::Ack(ack) => &ack.outcome,
        Reply::Error(e) => panic!("an error frame: {e:?}"),
    }
}

fn rule(reply: &Reply) -> &str {
    match outcome(reply) {
        Outcome::Refused { rule, .. } => rule,
        other => panic!("not refused: {other:?}"),
    }
}

fn a_claim_with_the_processors_proof_makes_the_claimant_homeowner(b: Backend) {
    let f = fixture(b);
    let replies = f
        .store
        .relay(&site(), &[claimed_by(&site(), 1, &proof(&f.ca))], NOW)
        .unwrap();
    assert_eq!(outcome(&replies[0]), &Outcome::Applied);
    let place = f.store.place(&f.place).unwrap().unwrap();
    assert_eq!(place.homeowner(), Some(&site()));
}

fn claim_proof_is_checked_against_the_processor_ca(b: Backend) {
    let f = fixture(b);
    let foreign = CertificateAuthority::processor_ca(Mac([2, 0x4c, 9, 9, 9, 9])).unwrap();
    let replies = f
        .store
        .relay(&site(), &[claimed_by(&site(), 1, &proof(&foreign))], NOW)
        .unwrap();
    assert_eq!(
        rule(&replies[0]),
        "claim_proof_is_checked_against_the_processor_ca"
    );
    let garbage = f
        .store
        .relay(&site(), &[event(2, claimed(b"garbage".to_vec()))], NOW)
        .unwrap();
    assert_eq!(
        rule(&garbage[0]),
        "claim_proof_is_checked_against_the_processor_ca"
    );
    let place = f.store.place(&f.place).unwrap().unwrap();
    assert_eq!(place.homeowner(), None, "nothing applied");
}

fn a_claim_proof_is_spent_once(b: Backend) {
    let f = fixture(b);
    let proof = proof(&f.ca);
    let first = f
        .store
        .relay(&site(), &[claimed_by(&site(), 1, &proof)], NOW)
        .unwrap();
    assert_eq!(outcome(&first[0]), &Outcome::Applied);
    let released = f
        .store
        .relay(
            &site(),
            &[event(
                2,
                EventKind::Released(Released {
                    place: Some(f.place.clone()),
                    serial: None,
                }),
            )],
            NOW,
        )
        .unwrap();
    assert_eq!(outcome(&released[0]), &Outcome::Applied);
    // The same proof under a new event id, by another account, even one
    // that holds the key (signed for its own event and account).
    let thief = AccountId::new("thief@example.com");
    let replay = f
        .store
        .relay(&thief, &[claimed_by(&thief, 3, &proof)], NOW)
        .unwrap();
    assert_eq!(
        rule(&replay[0]),
        "claim_proof_is_checked_against_the_processor_ca"
    );
}

fn a_claim_with_the_wrong_mac_is_refused(b: Backend) {
    let f = fixture(b);
    let mut kind = claimed(proof(&f.ca).der);
    if let EventKind::Claimed(c) = &mut kind {
        c.mac = Mac([2, 0x4c, 0, 0, 0, 1]);
    }
    let replies = f
        .store
        .relay(&site(), &[event(1, kind.clone())], NOW)
        .unwrap();
    assert_eq!(
        rule(&replies[0]),
        "claim_proof_is_checked_against_the_processor_ca"
    );
    // The site box's account has no access to the Place: its timeline
    // gets nothing (a stranger writes nowhere it cannot read).
    let (_, before) = f.store.timeline(&f.place, 100).unwrap();
    assert_eq!(before, 2, "create and activate only");
    // Relayed by an account with access, the refusal decided before the
    // rules is in the Place's timeline, with its rule and site box.
    let replies = f.store.relay(&owner(), &[event(2, kind)], NOW).unwrap();
    assert_eq!(
        rule(&replies[0]),
        "claim_proof_is_checked_against_the_processor_ca"
    );
    let (entries, total) = f.store.timeline(&f.place, 100).unwrap();
    assert_eq!(total, 3, "{entries:#?}");
    assert_eq!(entries[0].account, owner());
    assert_eq!(entries[0].site_box.as_deref(), Some("d1"));
    assert_eq!(
        entries[0].what,
        format!("claim with processor {}'s button", SERIAL)
    );
    let (said, why) = entries[0].refused.clone().expect("refused");
    assert_eq!(said, "claim_proof_is_checked_against_the_processor_ca");
    assert!(
        why.contains("the claim says 02:4c:00:00:00:01") || why.contains("MAC"),
        "{why}"
    );
}

/// A relayed share of `place` with `email` for 7 days.
fn share_for_a_week(place: &PlaceId, email: &str) -> EventKind {
    EventKind::ShareAccess(ShareAccess {
        place: place.clone(),
        email: email.into(),
        duration: AccessDuration::SevenDays,
    })
}

fn duplicate_event_ids_are_acknowledged_with_the_original_result_and_applied_once(b: Backend) {
    let f = fixture(b);
    let share = |email: &str| share_for_a_week(&f.place, email);
    let first = f
        .store
        .relay(&owner(), &[event(1, share("pro@example.com"))], NOW)
        .unwrap();
    assert_eq!(outcome(&first[0]), &Outcome::Applied);
    // The same id, even with another body, is the same event: not applied.
    let again = f
        .store
        .relay(
            &owner(),
            &[event(1, share("other@example.com"))],
            Timestamp(NOW.0 + 86_400 * 60),
        )
        .unwrap();
    assert_eq!(outcome(&again[0]), &Outcome::Duplicate);
    let place = f.store.place(&f.place).unwrap().unwrap();
    assert!(
        place
            .grants
            .contains_key(&AccountId::new("pro@example.com"))
    );
    assert!(
        !place
            .grants
            .contains_key(&AccountId::new("other@example.com"))
    );
    // A refused event stays refused with the same rule when sent again.
    let refused = f
        .store
        .relay(
            &AccountId::new("nobody@example.com"),
            &[event(9, share("x@example.com"))],
            NOW,
        )
        .unwrap();
    let again = f
        .store
        .relay(
            &AccountId::new("nobody@example.com"),
            &[event(9, share("x@example.com"))],
            NOW,
        )
        .unwrap();
    assert_eq!(rule(&refused[0]), rule(&again[0]));
    assert_eq!(f.store.event_count().unwrap(), 2);
}

fn a_new_share_link_comes_back_in_the_ack_and_again_on_a_duplicate(b: Backend) {
    let f = fixture(b);
    let new = EventKind::NewShareLink(NewShareLink {
        place: f.place.clone(),
        duration: AccessDuration::OneDay,
    });
    let first = f
        .store
        .relay(&owner(), &[event(1, new.clone())], NOW)
        .unwrap();
    let Reply::Ack(ack) = &first[0] else { panic!() };
    let link = ack.link.clone().expect("the link");
    assert_eq!(link.secret.len(), 32);
    let dup = f.store.relay(&owner(), &[event(1, new)], NOW).unwrap();
    let Reply::Ack(dup) = &dup[0] else { panic!() };
    assert_eq!(dup.outcome, Outcome::Duplicate);
    assert_eq!(dup.link.as_ref(), Some(&link));
    let redeem = f
        .store
        .relay(
            &AccountId::new("pro@example.com"),
            &[event(
                2,
                EventKind::RedeemLink(RedeemLink {
                    place: f.place.clone(),
                    link,
                }),
            )],
            NOW,
        )
        .unwrap();
    assert_eq!(outcome(&redeem[0]), &Outcome::Applied);
    let place = f.store.place(&f.place).unwrap().unwrap();
    assert_eq!(
        place.grants[&AccountId::new("pro@example.com")].role,
        Role::ProInstaller
    );
}

fn status_by_serial_or_mac_is_the_cloud_icon_and_unknown_processors_get_an_error(b: Backend) {
    let f = fixture(b);
    let by_serial = StatusQuery::BySerial {
        query: 1,
        serial: SERIAL,
    };
    let st = f.store.status(&site(), &by_serial, NOW).unwrap().unwrap();
    assert_eq!((st.status, st.place.clone()), (Status::Green, None));
    f.store
        .relay(&owner(), &[claimed_by(&owner(), 1, &proof(&f.ca))], NOW)
        .unwrap();
    let st = f
        .store
        .status(&site(), &StatusQuery::ByMac { query: 2, mac: MAC }, NOW)
        .unwrap()
        .unwrap();
    assert_eq!(st.status, Status::Yellow);
    assert_eq!(st.query, 2);
    let st = f.store.status(&owner(), &by_serial, NOW).unwrap().unwrap();
    assert_eq!(
        (st.status, st.place),
        (Status::Green, Some(f.place.clone()))
    );
    let unknown = StatusQuery::BySerial {
        query: 3,
        serial: Serial(7),
    };
    let err = f.store.status(&site(), &unknown, NOW).unwrap().unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.query),
        (error_code::UNKNOWN_PROCESSOR, Some(3))
    );
}

fn the_store_keeps_everything_across_a_reopen_and_a_second_handle(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = b.open(dir.path(), None);
    {
        store
            .execute(
                &Command::CreatePlace {
                    place: PlaceId("p".into()),
                    by: owner(),
                    key: ProjectKey("k".into()),
                    remote_services: false,
                },
                NOW,
            )
            .unwrap()
            .unwrap();
    }
    drop(store);
    let store = b.open(dir.path(), url.as_deref()).0;
    // The operator CLI opens the file while the server holds it.
    let second = b.open(dir.path(), url.as_deref()).0;
    assert!(store.place(&PlaceId("p".into())).unwrap().is_some());
    second
        .execute(
            &Command::SetRemoteServices {
                place: PlaceId("p".into()),
                key: ProjectKey("k".into()),
                enabled: true,
            },
            NOW,
        )
        .unwrap()
        .unwrap();
    assert!(
        store
            .place(&PlaceId("p".into()))
            .unwrap()
            .unwrap()
            .remote_services
    );
}

/// A grey Place keeps its creator (so the portal can show it to them and
/// let them enable remote services) but the grant acts as no access:
/// not in the status a site box asks for, not in the access list; the
/// Places list read finds it only for the creator, and it survives a
/// reopen. Enabling (by the creator, without the key) wakes it.
fn a_grey_places_creator_grant_is_stored_dormant_and_wakes_when_the_creator_enables(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = b.open(dir.path(), None);
    let id = PlaceId("grey".into());
    let ca = CertificateAuthority::processor_ca(MAC).unwrap();
    store
        .create_place(
            &Command::CreatePlace {
                place: id.clone(),
                by: owner(),
                key: ProjectKey("k".into()),
                remote_services: false,
            },
            Some(ProcessorRecord {
                place: id.clone(),
                serial: SERIAL,
                mac: MAC.0,
                ca_der: ca.certificate_der().to_vec(),
            }),
            NOW,
        )
        .unwrap()
        .unwrap();
    drop(store);
    let store = b.open(dir.path(), url.as_deref()).0;
    let place = store.place(&id).unwrap().unwrap();
    assert!(place.is_waiting_creator(&owner()), "{place:?}");
    assert!(place.access(&owner(), NOW).is_none());
    let json = crate::cloud::views::place_json(&place, &[], &Default::default(), NOW);
    assert_eq!(json["access"], serde_json::json!([]), "{json}");
    assert_eq!(json["waiting_creator"], owner().as_str());
    let (listed, total) = store.account_places(&owner(), NOW, 0, 10).unwrap();
    assert_eq!((listed.len(), total), (1, 1));
    assert_eq!(store.account_places(&site(), NOW, 0, 10).unwrap().1, 0);
    let by_serial = StatusQuery::BySerial {
        query: 1,
        serial: SERIAL,
    };
    let st = store.status(&owner(), &by_serial, NOW).unwrap().unwrap();
    assert_eq!(
        (st.status, st.place, st.access),
        (Status::Grey, None, Some(false))
    );
    let enable = |by: AccountId| Command::SetRemoteServicesAsCreator {
        place: id.clone(),
        by,
        enabled: true,
    };
    assert_eq!(
        store
            .execute(&enable(site()), NOW)
            .unwrap()
            .unwrap_err()
            .rule(),
        "remote_services_can_be_enabled_by_the_creator"
    );
    assert!(!store.place(&id).unwrap().unwrap().remote_services);
    store.execute(&enable(owner()), NOW).unwrap().unwrap();
    assert_eq!(store.execute(&enable(owner()), NOW).unwrap(), Ok(vec![]));
    let st = store.status(&owner(), &by_serial, NOW).unwrap().unwrap();
    assert_eq!(
        (st.status, st.place, st.access),
        (Status::Green, Some(id.clone()), Some(true))
    );
    let place = store.place(&id).unwrap().unwrap();
    assert!(place.access(&owner(), NOW).is_some());
}

fn a_deleted_places_id_is_never_reused(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = b.open(dir.path(), None).0;
    let create = Command::CreatePlace {
        place: PlaceId("p".into()),
        by: owner(),
        key: ProjectKey("k".into()),
        remote_services: true,
    };
    store.execute(&create, NOW).unwrap().unwrap();
    store
        .execute(
            &Command::RevokeAccess {
                place: PlaceId("p".into()),
                by: owner(),
                target: owner(),
                force: true,
            },
            NOW,
        )
        .unwrap()
        .unwrap();
    assert!(store.place(&PlaceId("p".into())).unwrap().is_none());
    let again = store.execute(&create, NOW).unwrap();
    assert!(matches!(again, Err(Refusal::PlaceExists { .. })));
}

#[test]
fn a_corrupt_record_is_reported_not_a_panic() {
    let f = fixture(Backend::Redb);
    {
        let CloudStore::Redb(redb) = &f.store else {
            unreachable!()
        };
        let txn = redb.db.begin_write().unwrap();
        txn.open_table(super::redb::PLACES)
            .unwrap()
            .insert("lake-house", &b"\xff\x00garbage"[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let err = f.store.place(&f.place).unwrap_err();
    assert!(
        matches!(
            err,
            CloudError::Corrupt {
                table: "places",
                ..
            }
        ),
        "{err}"
    );
    // Other Places and operations are unaffected by one bad record.
    let other = f
        .store
        .execute(
            &Command::CreatePlace {
                place: PlaceId("other".into()),
                by: owner(),
                key: ProjectKey("k".into()),
                remote_services: true,
            },
            NOW,
        )
        .unwrap();
    assert!(other.is_ok());
}

fn share(f: &Fixture, email: &str) -> Command {
    Command::ShareAccess {
        place: f.place.clone(),
        by: owner(),
        email: AccountId::new(email),
        duration: AccessDuration::ThirtyDays,
    }
}

/// redb keeps one record per grant, and an event reads only the grants
/// its rule needs: with one grant record unreadable, every other account's
/// events still apply; only a read of the whole Place meets it.
#[test]
fn an_event_on_redb_reads_only_the_grants_its_rule_needs() {
    let f = fixture(Backend::Redb);
    for i in 0..50 {
        let done = f
            .store
            .execute(&share(&f, &format!("pro{i}@example.com")), NOW);
        assert!(done.unwrap().is_ok());
    }
    {
        let CloudStore::Redb(redb) = &f.store else {
            unreachable!()
        };
        let txn = redb.db.begin_write().unwrap();
        let grants: ::redb::TableDefinition<(&str, &str), &[u8]> =
            ::redb::TableDefinition::new("grants");
        txn.open_table(grants)
            .unwrap()
            .insert(("lake-house", "pro7@example.com"), &b"\xff\x00garbage"[..])
            .unwrap();
        txn.commit().unwrap();
    }
    // A share to a new account, by the owner: reads the owner's and the
    // new account's grants, not pro7's.
    let done = f.store.execute(&share(&f, "new@example.com"), NOW).unwrap();
    assert!(done.is_ok(), "{done:?}");
    let revoke = Command::RevokeAccess {
        place: f.place.clone(),
        by: owner(),
        target: AccountId::new("pro3@example.com"),
        force: false,
    };
    assert!(f.store.execute(&revoke, NOW).unwrap().is_ok());
    // The whole Place is what meets the bad record.
    let err = f.store.place(&f.place).unwrap_err();
    assert!(
        matches!(err, CloudError::Corrupt { table: "grants", ref key, .. } if key == "lake-house/pro7@example.com"),
        "{err}"
    );
}

/// A file written with one record per Place (every grant inside) is
/// converted when opened: every Place reads back the same, and the old
/// table is gone.
#[test]
fn a_redb_file_of_whole_place_records_is_converted_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut place = {
        let f = fixture(Backend::Redb);
        for email in ["a@example.com", "b@example.com"] {
            assert!(f.store.execute(&share(&f, email), NOW).unwrap().is_ok());
        }
        f.store.place(&f.place).unwrap().unwrap()
    };
    place.id = PlaceId("old-house".into());
    {
        // What the old layout wrote.
        crate::identity::files::ensure_private_dir(&data).unwrap();
        let db = ::redb::Database::create(data.join(super::redb::STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        let whole: ::redb::TableDefinition<&str, &[u8]> = ::redb::TableDefinition::new("places");
        let mut bytes = Vec::new();
        ciborium::into_writer(&place, &mut bytes).unwrap();
        txn.open_table(whole)
            .unwrap()
            .insert("old-house", bytes.as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = CloudStore::open(&data).unwrap();
    assert_eq!(store.place(&place.id).unwrap().as_ref(), Some(&place));
    assert_eq!(store.places().unwrap().iter().count(), 1);
    assert_eq!(place.grants.len(), 3);
    drop(store);
    let db = ::redb::Database::open(data.join(super::redb::STORE_FILE)).unwrap();
    let txn = ::redb::ReadableDatabase::begin_read(&db).unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| ::redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(!names.contains(&"places".to_owned()), "{names:?}");
    // Opening again converts nothing and loses nothing.
    drop(txn);
    drop(db);
    let store = CloudStore::open(&data).unwrap();
    assert_eq!(store.place(&place.id).unwrap().as_ref(), Some(&place));
}
mod by_account;
mod daemons;
mod link_secrets;
fn a_places_timeline_keeps_every_applied_and_refused_event_with_its_site_box(b: Backend) {
    let f = fixture(b);
    let share = |email: &str| share_for_a_week(&f.place, email);
    let nobody = AccountId::new("nobody@example.com");
    let pro = AccountId::new("pro@example.com");
    f.store
        .relay(&owner(), &[event(1, share(pro.as_str()))], NOW)
        .unwrap();
    // A duplicate is the same event: not a second entry.
    f.store
        .relay(&owner(), &[event(1, share(pro.as_str()))], NOW)
        .unwrap();
    let refused = f
        .store
        .relay(&nobody, &[event(2, share("x@example.com"))], NOW)
        .unwrap();
    let link = f
        .store
        .relay(
            &owner(),
            &[event(
                3,
                EventKind::NewShareLink(NewShareLink {
                    place: f.place.clone(),
                    duration: AccessDuration::OneDay,
                }),
            )],
            NOW,
        )
        .unwrap();
    let Reply::Ack(Ack {
        link: Some(issued), ..
    }) = &link[0]
    else {
        panic!("no link: {link:?}")
    };
    let later = Timestamp(NOW.0 + 60);
    f.store
        .execute(
            &Command::RevokeAccess {
                place: f.place.clone(),
                by: owner(),
                target: pro.clone(),
                force: false,
            },
            later,
        )
        .unwrap()
        .unwrap();
    // About no Place: nowhere to record it.
    let nowhere = PlaceId("nowhere".into());
    f.store
        .execute(
            &Command::Release {
                place: nowhere.clone(),
                by: owner(),
            },
            NOW,
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(f.store.timeline(&nowhere, 10).unwrap(), (vec![], 0));

    let (all, total) = f.store.timeline(&f.place, 100).unwrap();
    assert_eq!(total, 6, "{all:#?}");
    let whats: Vec<&str> = all.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "revoke pro@example.com",
            "generate a share link (1 day)",
            "share with x@example.com for 7 days",
            "share with pro@example.com for 7 days",
            "activate processor 19088743 (project transfer)",
            "create the Place (remote services on)",
        ]
    );
    // The operator's revoke: no site box, the later time (PostgreSQL
    // stamps its own clock).
    assert_eq!(all[0].site_box, None);
    if let Backend::Redb = b {
        assert_eq!(all[0].at, later);
    }
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at), "{all:#?}");
    assert_eq!(all[0].account, owner());
    // The refused share: who asked, through which site box, and the rule
    // that spoke, as the relay's ack said it.
    assert_eq!(all[2].account, nobody);
    assert_eq!(all[2].site_box.as_deref(), Some("d1"));
    assert_eq!(
        all[2].refused.as_ref().map(|(rule, _)| rule.as_str()),
        Some(rule(&refused[0]))
    );
    assert!(all.iter().filter(|e| e.refused.is_some()).count() == 1);
    // Never the link's secret.
    assert!(
        all.iter()
            .all(|e| !format!("{e:?}").contains(&issued.secret)),
        "{all:#?}"
    );
    // The last contact from a site box: the newest relayed event.
    let contacts = f.store.last_contacts(&[&f.place, &nowhere]).unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[&f.place].site_box, "d1");
    assert_eq!(contacts[&f.place].at, all[1].at);
    // The newest first, as many as asked, and the count of all.
    let (two, total) = f.store.timeline(&f.place, 2).unwrap();
    assert_eq!((two.as_slice(), total), (&all[..2], 6));
}

fn a_processor_keeps_what_the_site_box_that_relayed_for_it_last_reported(b: Backend) {
    let f = fixture(b);
    let none = f.store.processor_reports(&[SERIAL]).unwrap();
    assert!(none.is_empty(), "not reported yet: {none:?}");
    // A claim another account's site box cannot prove writes nothing.
    let thief = AccountId::new("thief@example.com");
    let mut forged = event(1, claimed(b"garbage".to_vec()));
    if let EventKind::Claimed(c) = &mut forged.kind {
        c.model = Some("Forged".into());
    }
    let refused = f.store.relay(&thief, &[forged], NOW).unwrap();
    assert!(matches!(outcome(&refused[0]), Outcome::Refused { .. }));
    assert!(f.store.processor_reports(&[SERIAL]).unwrap().is_empty());
    // The claim reports the model and firmware, one of them hostile.
    let mut claim = claimed_by(&site(), 2, &proof(&f.ca));
    if let EventKind::Claimed(c) = &mut claim.kind {
        c.model = Some("RadioRA 3 Processor".into());
        c.firmware = Some("26.00\x1b[2J".into());
    }
    let applied = f.store.relay(&site(), &[claim], NOW).unwrap();
    assert_eq!(outcome(&applied[0]), &Outcome::Applied);
    // When: as the Place's timeline has the event (PostgreSQL applies a
    // relayed batch at the database's clock, redb at the given one).
    let applied_at = |store: &CloudStore| store.timeline(&f.place, 1).unwrap().0[0].at;
    let report = &f.store.processor_reports(&[SERIAL]).unwrap()[&SERIAL];
    assert_eq!(
        (report.site_box.as_str(), report.at),
        ("d1", applied_at(&f.store))
    );
    let identity = report.identity.clone().unwrap();
    assert_eq!((identity.site_box.as_str(), identity.at), ("d1", report.at));
    assert_eq!(identity.model.as_deref(), Some("RadioRA 3 Processor"));
    assert_eq!(identity.firmware, None, "control characters are dropped");
    // An older daemon releases it later, by serial, reporting nothing,
    // through a connection whose certificate names the site "old-box":
    // that name, not the outbox's id, is who relayed, in the timeline too.
    let later = NOW.plus(60);
    let release = RelayEvent {
        id: EventId {
            daemon: "9f0c4e1d".into(),
            seq: 1,
        },
        kind: EventKind::Released(Released {
            place: None,
            serial: Some(SERIAL),
        }),
    };
    let applied = f
        .store
        .relay_from(&site(), Some("old-box"), &[release], later)
        .unwrap();
    assert_eq!(outcome(&applied[0]), &Outcome::Applied);
    let newest = f.store.timeline(&f.place, 1).unwrap().0.remove(0);
    assert_eq!(newest.site_box.as_deref(), Some("old-box"), "{newest:?}");
    let report = &f.store.processor_reports(&[SERIAL, Serial(1)]).unwrap()[&SERIAL];
    assert_eq!(
        (report.site_box.as_str(), report.at),
        ("old-box", applied_at(&f.store))
    );
    assert_eq!(
        report.identity,
        Some(identity),
        "kept, with who said it and when"
    );
}
