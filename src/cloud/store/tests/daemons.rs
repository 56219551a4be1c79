//! Enrolled daemons: revocation and last contact, on both backends.

use super::{Backend, NOW, owner, site};
use crate::cloud::CloudError;
use crate::cloud::model::Timestamp;
use crate::cloud::store::DaemonRecord;

on_both_backends!(
    a_revoked_daemon_stays_revoked_and_its_name_cannot_be_enrolled_again,
    a_revocation_by_a_second_handle_is_seen_by_the_first,
);

fn a_revoked_daemon_stays_revoked_and_its_name_cannot_be_enrolled_again(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = b.open(dir.path(), None).0;
    store
        .add_daemon(&DaemonRecord::enrolled("lake", owner(), NOW))
        .unwrap();
    store
        .add_daemon(&DaemonRecord::enrolled("barn", site(), NOW))
        .unwrap();
    assert_eq!(store.revoke_daemon("nobody", NOW).unwrap(), None);

    // Seen: the contact is recorded, nobody is revoked.
    let later = Timestamp(NOW.0 + 60);
    let names = ["lake".to_owned(), "barn".to_owned(), "demo".to_owned()];
    assert!(store.daemons_seen(&names, later).unwrap().is_empty());
    let lake = store.revoke_daemon("lake", Timestamp(NOW.0 + 100)).unwrap();
    let lake = lake.expect("lake is enrolled");
    assert!(lake.changed, "the first revoke changes the record");
    let lake = lake.record;
    assert_eq!(lake.revoked_at, Some(Timestamp(NOW.0 + 100)));
    assert_eq!(lake.last_contact, Some(later));
    // A second revoke keeps the first time and says it changed nothing.
    let again = store.revoke_daemon("lake", Timestamp(NOW.0 + 200)).unwrap();
    let again = again.expect("lake is enrolled");
    assert!(!again.changed, "lake was revoked already");
    assert_eq!(again.record.revoked_at, Some(Timestamp(NOW.0 + 100)));

    assert_eq!(store.revoked_daemons().unwrap(), ["lake"]);
    // A revoked daemon is reported, and its contact is no longer recorded.
    let seen = store.daemons_seen(&names, Timestamp(NOW.0 + 300)).unwrap();
    assert_eq!(seen, ["lake"]);
    let all = store.daemons().unwrap();
    let by = |n: &str| all.iter().find(|d| d.name == n).unwrap().clone();
    assert_eq!(by("lake").last_contact, Some(later));
    assert_eq!(by("barn").last_contact, Some(Timestamp(NOW.0 + 300)));
    assert_eq!(by("barn").revoked_at, None);

    // Enrolling the name again would un-revoke its certificates: refused.
    let e = store
        .add_daemon(&DaemonRecord::enrolled("lake", owner(), later))
        .unwrap_err();
    assert!(
        matches!(e, CloudError::RevokedName { ref name } if name == "lake"),
        "{e}"
    );
    assert_eq!(by("lake"), store.daemons().unwrap()[1]);
    // An unrevoked name may be enrolled again (a new bundle for a box).
    store
        .add_daemon(&DaemonRecord::enrolled("barn", site(), later))
        .unwrap();
}

/// What `cloud serve` relies on: the operator's revoke, from another
/// handle (another process, another node), is what its next poll reads.
fn a_revocation_by_a_second_handle_is_seen_by_the_first(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (serving, url) = b.open(dir.path(), None);
    serving
        .add_daemon(&DaemonRecord::enrolled("lake", owner(), NOW))
        .unwrap();
    assert!(serving.revoked_daemons().unwrap().is_empty());
    let operator = b.open(dir.path(), url.as_deref()).0;
    operator.revoke_daemon("lake", NOW).unwrap().unwrap();
    assert_eq!(serving.revoked_daemons().unwrap(), ["lake"]);
}
