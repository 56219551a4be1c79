//! The embedded backend: one redb file in the data directory.
//!
//! Every operation is one write transaction, committed with redb's
//! immediate durability (fsync) before anyone is told it happened: a
//! kill -9 loses nothing that was acknowledged. The file is opened in
//! redb's multi-writer mode, so the operator CLI works on it while
//! `handoff cloud serve` runs; nothing is cached in memory between
//! transactions.
//!
//! A Place is a small row (`place_rows`: its options, share link,
//! processors and who its homeowner is) and one record per grant
//! (`grants`, keyed by Place and account), as on PostgreSQL: an event
//! reads the grants its rule needs and writes the ones that changed, so
//! its cost does not grow with the Place's grants. Files written before
//! this layout (one `places` record holding every grant) are converted
//! when opened, in one transaction. The same keys turned round,
//! (account, Place), are an index ([`by_account`]): an account's Places
//! are read without a pass over every grant of the cloud.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::link_key::{LinkKey, LinkKeys};
use super::{DaemonRecord, PlaceTxn, ProcessorRecord, Reply, StoredResult};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, ActiveLink, Grant, Place, PlaceId, ProjectKey, Timestamp};
use crate::cloud::refusal::Refusal;
use crate::cloud::rules::{Command, Event};
use crate::processor::{Mac, Serial};
use crate::proto::{ErrorFrame, EventId, PlaceStatus, RelayEvent, StatusQuery};

/// The file name inside the data directory.
pub const STORE_FILE: &str = "cloud.redb";

/// Place id → its [`PlaceRow`].
pub(super) const PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("place_rows");
/// (Place id, account) → that account's [`Grant`] in the Place; written
/// only through [`by_account::Grants`], which keeps the index by account.
const GRANTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("grants");
/// The layout before `place_rows` and `grants`: Place id → the whole
/// Place. Converted and dropped at open.
const WHOLE_PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("places");
/// Ids of deleted Places: never reused, or old links would match.
const DELETED: TableDefinition<&str, u64> = TableDefinition::new("deleted_places");
const PROCESSORS: TableDefinition<u32, &[u8]> = TableDefinition::new("processors");
/// (account, daemon, seq) → the stored result of that event.
const EVENTS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("events");
/// (processor serial, certificate serial) → when the proof was spent.
const SPENT_PROOFS: TableDefinition<(u32, &[u8]), u64> = TableDefinition::new("spent_proofs");
mod by_account;
mod daemons;
mod link_secrets;

/// Enrolled daemons by name.
const DAEMONS: TableDefinition<&str, &[u8]> = TableDefinition::new("daemons");

/// A Place without its grants, as `place_rows` keeps it.
#[derive(PartialEq, Serialize, Deserialize)]
struct PlaceRow {
    remote_services: bool,
    project_key: ProjectKey,
    share_link: Option<ActiveLink>,
    links_issued: u64,
    processors: BTreeSet<Serial>,
    /// The account whose grant is the homeowner's, so that the rules get
    /// it without a scan.
    homeowner: Option<AccountId>,
}

impl PlaceRow {
    fn of(place: &Place) -> PlaceRow {
        PlaceRow {
            remote_services: place.remote_services,
            project_key: place.project_key.clone(),
            share_link: place.share_link.clone(),
            links_issued: place.links_issued,
            processors: place.processors.clone(),
            homeowner: place.homeowner().cloned(),
        }
    }

    fn into_place(self, id: &PlaceId) -> Place {
        Place {
            id: id.clone(),
            remote_services: self.remote_services,
            project_key: self.project_key,
            grants: Default::default(),
            share_link: self.share_link,
            links_issued: self.links_issued,
            processors: self.processors,
        }
    }
}

/// The keys whose first part is `first` in a table keyed by two strings
/// (a Place's grants, an account's Places): every second part sorts
/// after "" and, as valid UTF-8, before U+10FFFF.
fn prefixed(first: &str) -> std::ops::RangeInclusive<(&str, &str)> {
    (first, "")..=(first, "\u{10FFFF}")
}

fn read_row(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &PlaceId,
) -> Result<Option<PlaceRow>, CloudError> {
    let value = table.get(id.0.as_str())?;
    value
        .map(|v| decode("places", &id.0, v.value()))
        .transpose()
}

fn read_grant(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: &PlaceId,
    account: &str,
) -> Result<Option<Grant>, CloudError> {
    let value = table.get((id.0.as_str(), account))?;
    value
        .map(|v| decode("grants", &format!("{}/{account}", id.0), v.value()))
        .transpose()
}

/// The whole Place `id`: its row and every grant.
fn read_place(
    rows: &impl ReadableTable<&'static str, &'static [u8]>,
    grants: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: &PlaceId,
) -> Result<Option<Place>, CloudError> {
    let Some(row) = read_row(rows, id)? else {
        return Ok(None);
    };
    let mut place = row.into_place(id);
    for entry in grants.range(prefixed(&id.0))? {
        let (k, v) = entry?;
        let (_, account) = k.value();
        let grant = decode("grants", &format!("{}/{account}", id.0), v.value())?;
        place.grants.insert(AccountId::new(account), grant);
    }
    Ok(Some(place))
}

/// Converts a file of the old layout (one record per Place, every grant
/// in it) to rows and grants, then drops the old table. Idempotent: a
/// file without the old table is left alone.
fn convert_whole_places(txn: &WriteTransaction) -> Result<usize, CloudError> {
    let old = txn.list_tables()?.any(|t| t.name() == WHOLE_PLACES.name());
    if !old {
        return Ok(0);
    }
    let mut places = Vec::new();
    {
        let table = txn.open_table(WHOLE_PLACES)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let place: Place = decode("places", k.value(), v.value())?;
            places.push(place);
        }
    }
    let mut rows = txn.open_table(PLACES)?;
    let mut grants = by_account::Grants::open(txn)?;
    for place in &places {
        rows.insert(
            place.id.0.as_str(),
            encode(&PlaceRow::of(place))?.as_slice(),
        )?;
        for (account, grant) in &place.grants {
            grants.put(&place.id, account, grant)?;
        }
    }
    drop((rows, grants));
    txn.delete_table(WHOLE_PLACES)?;
    Ok(places.len())
}

/// The store over one redb file.
#[derive(Debug)]
pub struct RedbStore {
    pub(super) db: Database,
    path: PathBuf,
    links: LinkKeys,
}

/// Runs a store operation over a redb transaction to its end. redb never
/// waits, so the future is complete at its first poll; the operations are
/// async only because PostgreSQL's are ([`PlaceTxn`]).
pub(crate) fn complete<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a redb transaction never waits"),
    }
}

/// One write transaction, as the operations see it.
struct RedbTxn<'a>(&'a WriteTransaction);

impl PlaceTxn for RedbTxn<'_> {
    async fn is_deleted(&mut self, place: &PlaceId) -> Result<bool, CloudError> {
        Ok(self.0.open_table(DELETED)?.get(place.0.as_str())?.is_some())
    }

    async fn place_for(
        &mut self,
        id: &PlaceId,
        accounts: &[&AccountId],
        one_other_live: bool,
        now: Timestamp,
    ) -> Result<Option<Place>, CloudError> {
        let rows = self.0.open_table(PLACES)?;
        let Some(row) = read_row(&rows, id)? else {
            return Ok(None);
        };
        // The grants of the accounts named, the homeowner's and the share
        // link's creator's: never the Place's whole list.
        let mut wanted: Vec<AccountId> = accounts.iter().map(|a| (*a).clone()).collect();
        wanted.extend(row.homeowner.clone());
        wanted.extend(row.share_link.as_ref().map(|l| l.by.clone()));
        let mut place = row.into_place(id);
        let grants = self.0.open_table(GRANTS)?;
        for account in wanted {
            if !place.grants.contains_key(&account)
                && let Some(grant) = read_grant(&grants, id, account.as_str())?
            {
                place.grants.insert(account, grant);
            }
        }
        if one_other_live {
            let mut other = None;
            for entry in grants.range(prefixed(&id.0))? {
                let (k, v) = entry?;
                let (_, account) = k.value();
                let account = AccountId::new(account);
                if place.grants.contains_key(&account) {
                    continue;
                }
                let grant: Grant = decode("grants", &format!("{}/{account}", id.0), v.value())?;
                if grant.is_live(now) {
                    other = Some((account, grant));
                    break;
                }
            }
            place.grants.extend(other);
        }
        Ok(Some(place))
    }

    async fn save_place(
        &mut self,
        before: Option<&Place>,
        next: Option<&Place>,
        id: &PlaceId,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let mut rows = self.0.open_table(PLACES)?;
        let mut grants = by_account::Grants::open(self.0)?;
        let Some(next) = next else {
            rows.remove(id.0.as_str())?;
            grants.remove_place(id)?;
            self.0.open_table(DELETED)?.insert(id.0.as_str(), now.0)?;
            return Ok(());
        };
        // Only what differs from what `place_for` gave is written: a grant
        // it did not load is in neither, and stays as it is.
        // The row is written when it changed (most events only add or
        // change a grant), as on PostgreSQL.
        let row = PlaceRow::of(next);
        if before.is_none_or(|b| PlaceRow::of(b) != row) {
            rows.insert(id.0.as_str(), encode(&row)?.as_slice())?;
        }
        let empty = Default::default();
        let old = before.map_or(&empty, |b| &b.grants);
        for (account, grant) in &next.grants {
            if old.get(account) != Some(grant) {
                grants.put(id, account, grant)?;
            }
        }
        for account in old.keys().filter(|a| !next.grants.contains_key(*a)) {
            grants.remove(id, account.as_str())?;
        }
        Ok(())
    }

    async fn processor(&mut self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        let table = self.0.open_table(PROCESSORS)?;
        let value = table.get(serial.0)?;
        value
            .map(|v| decode("processors", &serial.to_string(), v.value()))
            .transpose()
    }

    async fn processor_by_mac(&mut self, mac: Mac) -> Result<Option<ProcessorRecord>, CloudError> {
        let table = self.0.open_table(PROCESSORS)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let record: ProcessorRecord = decode("processors", &k.value().to_string(), v.value())?;
            if record.mac == mac.0 {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    async fn put_processor(&mut self, record: &ProcessorRecord) -> Result<(), CloudError> {
        let bytes = encode(record)?;
        self.0
            .open_table(PROCESSORS)?
            .insert(record.serial.0, bytes.as_slice())?;
        Ok(())
    }

    async fn is_spent(&mut self, serial: Serial, key: &[u8]) -> Result<bool, CloudError> {
        Ok(self
            .0
            .open_table(SPENT_PROOFS)?
            .get((serial.0, key))?
            .is_some())
    }

    async fn spend(
        &mut self,
        serial: Serial,
        key: &[u8],
        now: Timestamp,
    ) -> Result<(), CloudError> {
        self.0
            .open_table(SPENT_PROOFS)?
            .insert((serial.0, key), now.0)?;
        Ok(())
    }

    async fn event(
        &mut self,
        account: &AccountId,
        id: &EventId,
    ) -> Result<Option<StoredResult>, CloudError> {
        let events = self.0.open_table(EVENTS)?;
        let value = events.get((account.as_str(), id.daemon.as_str(), id.seq))?;
        value
            .map(|v| decode("events", &format!("{id:?}"), v.value()))
            .transpose()
    }

    async fn put_event(
        &mut self,
        account: &AccountId,
        id: &EventId,
        result: &StoredResult,
        _now: Timestamp,
    ) -> Result<(), CloudError> {
        let bytes = encode(result)?;
        self.0.open_table(EVENTS)?.insert(
            (account.as_str(), id.daemon.as_str(), id.seq),
            bytes.as_slice(),
        )?;
        Ok(())
    }
    async fn record(
        &mut self,
        place: &PlaceId,
        entry: &super::timeline::TimelineEntry,
    ) -> Result<(), CloudError> {
        super::timeline::redb_record(self.0, place, entry)
    }

    async fn processor_report(
        &mut self,
        serial: Serial,
    ) -> Result<Option<super::reports::ProcessorReport>, CloudError> {
        super::reports::redb_get(self.0, serial)
    }

    async fn put_processor_report(
        &mut self,
        report: &super::reports::ProcessorReport,
    ) -> Result<(), CloudError> {
        super::reports::redb_put(self.0, report)
    }
}

impl RedbStore {
    /// Opens (or creates) `dir/cloud.redb`; `dir` is created 0700.
    ///
    /// # Errors
    /// [`CloudError::Io`] or [`CloudError::Store`].
    pub fn open(dir: &Path) -> Result<RedbStore, CloudError> {
        crate::identity::files::ensure_private_dir(dir).map_err(CloudError::Identity)?;
        let path = dir.join(STORE_FILE);
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| CloudError::store(&path, e))?;
        let store = RedbStore {
            db,
            path,
            links: LinkKeys::in_dir(dir),
        };
        // Create every table once, so readers never meet a missing one.
        let converted = store.write(|txn| {
            let converted = convert_whole_places(txn)?;
            let indexed = by_account::build(txn)?;
            if indexed > 0 {
                tracing::info!(grants = indexed, "grants indexed by account");
            }
            let forgotten = link_secrets::forget(txn)?;
            if forgotten > 0 {
                tracing::info!(
                    records = forgotten,
                    "share-link secrets removed from the store"
                );
            }
            txn.open_table(PLACES)?;
            txn.open_table(GRANTS)?;
            txn.open_table(by_account::BY_ACCOUNT)?;
            txn.open_table(DELETED)?;
            txn.open_table(PROCESSORS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(SPENT_PROOFS)?;
            txn.open_table(DAEMONS)?;
            Ok(converted)
        })?;
        if converted > 0 {
            tracing::info!(
                places = converted,
                path = %store.path.display(),
                "converted the store to one record per grant"
            );
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn link_keys(&self) -> &LinkKeys {
        &self.links
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| CloudError::store(&self.path, e))?;
        let out = f(&txn)?;
        txn.commit().map_err(|e| CloudError::store(&self.path, e))?;
        Ok(out)
    }

    pub(super) fn execute(
        &self,
        cmd: &Command,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| complete(super::apply(&mut RedbTxn(txn), cmd, now)))
    }

    /// [`Self::execute`] after `first` in the same transaction; `None`
    /// (nothing done) when `first` says no.
    pub(super) fn execute_after(
        &self,
        cmd: &Command,
        now: Timestamp,
        first: impl FnOnce(&WriteTransaction) -> Result<bool, CloudError>,
    ) -> Result<Option<Result<Vec<Event>, Refusal>>, CloudError> {
        self.write(|txn| {
            if !first(txn)? {
                return Ok(None);
            }
            complete(super::apply(&mut RedbTxn(txn), cmd, now)).map(Some)
        })
    }

    pub(super) fn create_place(
        &self,
        cmd: &Command,
        processor: Option<&ProcessorRecord>,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| complete(super::create_place(&mut RedbTxn(txn), cmd, processor, now)))
    }

    pub(super) fn activate_processor(
        &self,
        record: &ProcessorRecord,
        key: &crate::cloud::ProjectKey,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| complete(super::activate(&mut RedbTxn(txn), record, key, now)))
    }

    pub(super) fn relay(
        &self,
        (account, site): (&AccountId, Option<&str>),
        events: &[RelayEvent],
        key: &LinkKey,
        now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        self.write(|txn| {
            let mut txn = RedbTxn(txn);
            events
                .iter()
                .map(|event| {
                    complete(super::relay_event(
                        &mut txn,
                        (account, site),
                        event,
                        key,
                        now,
                    ))
                })
                .collect()
        })
    }

    pub(super) fn claim(
        &self,
        account: &AccountId,
        claim: &crate::proto::Claimed,
        now: Timestamp,
    ) -> Result<Result<(), Refusal>, CloudError> {
        self.write(|txn| {
            complete(super::claim_in(
                &mut RedbTxn(txn),
                (account, None),
                claim,
                super::Possession::Operator,
                now,
            ))
        })
    }

    /// A status read, in a write transaction that is aborted (the
    /// operations read through one kind of transaction).
    pub(super) fn status(
        &self,
        account: &AccountId,
        query: &StatusQuery,
        now: Timestamp,
    ) -> Result<Result<PlaceStatus, ErrorFrame>, CloudError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let out = complete(super::status_in(&mut RedbTxn(&txn), account, query, now));
        txn.abort().map_err(|e| self.err(e))?;
        out
    }

    pub(super) fn place(&self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        let txn = self.read()?;
        let rows = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let grants = txn.open_table(GRANTS).map_err(|e| self.err(e))?;
        read_place(&rows, &grants, id)
    }

    pub(super) fn places(&self) -> Result<Vec<Place>, CloudError> {
        self.places_in(&self.read()?)
    }

    /// Every Place, whole, in id order: the rows, then one pass over the
    /// grants (both tables are in Place order).
    fn places_in(&self, txn: &redb::ReadTransaction) -> Result<Vec<Place>, CloudError> {
        let rows = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let mut places = Vec::new();
        for entry in rows.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let id = PlaceId(k.value().to_owned());
            let row: PlaceRow = decode("places", &id.0, v.value())?;
            places.push(row.into_place(&id));
        }
        let grants = txn.open_table(GRANTS).map_err(|e| self.err(e))?;
        let mut at = 0;
        for entry in grants.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (place, account) = k.value();
            while at < places.len() && places[at].id.0.as_str() < place {
                at += 1;
            }
            let key = format!("{place}/{account}");
            let grant: Grant = decode("grants", &key, v.value())?;
            match places.get_mut(at).filter(|p| p.id.0 == place) {
                Some(p) => {
                    p.grants.insert(AccountId::new(account), grant);
                }
                None => {
                    return Err(CloudError::Corrupt {
                        table: "grants",
                        key,
                        reason: "a grant of a Place that does not exist".into(),
                    });
                }
            }
        }
        Ok(places)
    }

    /// The Places `account` has a live grant in, in id order: `skip`
    /// of them passed over, at most `take` read whole; and how many there
    /// are in all. Reads this account's keys in the index by account and
    /// its grant in each of those Places, never another account's.
    pub(super) fn account_places(
        &self,
        account: &AccountId,
        now: Timestamp,
        skip: usize,
        take: usize,
    ) -> Result<(Vec<Place>, usize), CloudError> {
        let txn = self.read()?;
        let rows = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let grants = txn.open_table(GRANTS).map_err(|e| self.err(e))?;
        let index = txn
            .open_table(by_account::BY_ACCOUNT)
            .map_err(|e| self.err(e))?;
        let mut live = Vec::new();
        for id in by_account::places_of(&index, account)? {
            if read_grant(&grants, &id, account.as_str())?.is_some_and(|g| g.is_live(now)) {
                live.push(id);
            }
        }
        let mut places = Vec::new();
        for id in live.iter().skip(skip).take(take) {
            places.extend(read_place(&rows, &grants, id)?);
        }
        Ok((places, live.len()))
    }

    pub(super) fn processor(&self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(PROCESSORS).map_err(|e| self.err(e))?;
        let value = table.get(serial.0).map_err(|e| self.err(e))?;
        value
            .map(|v| decode("processors", &serial.to_string(), v.value()))
            .transpose()
    }

    pub(super) fn processors(&self) -> Result<Vec<ProcessorRecord>, CloudError> {
        self.all(PROCESSORS, "processors", |k| k.to_string())
    }

    pub(super) fn add_daemon(&self, record: &DaemonRecord) -> Result<(), CloudError> {
        let bytes = encode(record)?;
        self.write(|txn| {
            let mut table = txn.open_table(DAEMONS)?;
            daemons::refuse_revoked(&table, &record.name)?;
            table.insert(record.name.as_str(), bytes.as_slice())?;
            Ok(())
        })
    }

    pub(super) fn daemons(&self) -> Result<Vec<DaemonRecord>, CloudError> {
        self.all(DAEMONS, "daemons", |k| k.to_owned())
    }

    pub(super) fn event_count(&self) -> Result<u64, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// Everything, read in one transaction (for `cloud copy`).
    pub(super) fn dump(&self) -> Result<super::copy::Dump, CloudError> {
        let txn = self.read()?;
        let mut dump = super::copy::Dump {
            places: self.places_in(&txn)?,
            processors: self.all_in(&txn, PROCESSORS, "processors", |k| k.to_string())?,
            daemons: self.all_in(&txn, DAEMONS, "daemons", |k| k.to_owned())?,
            ..Default::default()
        };
        let deleted = txn.open_table(DELETED).map_err(|e| self.err(e))?;
        for entry in deleted.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            dump.deleted_places
                .push((PlaceId(k.value().to_owned()), Timestamp(v.value())));
        }
        let spent = txn.open_table(SPENT_PROOFS).map_err(|e| self.err(e))?;
        for entry in spent.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (serial, key) = k.value();
            dump.spent_proofs
                .push((Serial(serial), key.to_vec(), Timestamp(v.value())));
        }
        let events = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        for entry in events.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let (account, daemon, seq) = k.value();
            let key = format!("{account}/{daemon}/{seq}");
            dump.events.push(super::EventRecord {
                account: AccountId::new(account),
                daemon: daemon.to_owned(),
                seq,
                result: decode("events", &key, v.value())?,
            });
        }
        dump.timeline = super::timeline::redb_all(&txn)?;
        dump.reports = super::reports::redb_all(&txn)?;
        Ok(dump)
    }

    /// Every record of a table whose values are CBOR, in key order.
    fn all<K: redb::Key + 'static, T: DeserializeOwned>(
        &self,
        table: TableDefinition<K, &[u8]>,
        name: &'static str,
        key: impl Fn(K::SelfType<'_>) -> String,
    ) -> Result<Vec<T>, CloudError> {
        self.all_in(&self.read()?, table, name, key)
    }

    fn all_in<K: redb::Key + 'static, T: DeserializeOwned>(
        &self,
        txn: &redb::ReadTransaction,
        table: TableDefinition<K, &[u8]>,
        name: &'static str,
        key: impl Fn(K::SelfType<'_>) -> String,
    ) -> Result<Vec<T>, CloudError> {
        let table = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            out.push(decode(name, &key(k.value()), v.value())?);
        }
        Ok(out)
    }

    fn read(&self) -> Result<redb::ReadTransaction, CloudError> {
        self.db.begin_read().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> CloudError {
        CloudError::store(&self.path, e)
    }
}

impl From<redb::TableError> for CloudError {
    fn from(e: redb::TableError) -> CloudError {
        CloudError::Store {
            path: PathBuf::new(),
            source: Box::new(e.into()),
        }
    }
}

impl From<redb::StorageError> for CloudError {
    fn from(e: redb::StorageError) -> CloudError {
        CloudError::Store {
            path: PathBuf::new(),
            source: Box::new(e.into()),
        }
    }
}

/// `table` for reading, or `None` in a file written before it existed
/// (redb creates a table with its first write).
pub(super) fn table_if_any<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, CloudError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CloudError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| CloudError::Failed(format!("cannot encode a record: {e}")))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, CloudError> {
    ciborium::from_reader(bytes).map_err(|e| CloudError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}
