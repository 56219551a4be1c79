//! The embedded backend: one redb file in the data directory.
//!
//! Every operation is one write transaction, committed with redb's
//! immediate durability (fsync) before anyone is told it happened: a
//! kill -9 loses nothing that was acknowledged. The file is opened in
//! redb's multi-writer mode, so the operator CLI works on it while
//! `handoff cloud serve` runs; nothing is cached in memory between
//! transactions. A Place is one record: the rules get all of it, and an
//! operation rewrites it whole.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DaemonRecord, PlaceTxn, ProcessorRecord, Reply, StoredResult};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, LinkSecret, Place, PlaceId, Timestamp};
use crate::cloud::refusal::Refusal;
use crate::cloud::rules::{Command, Event};
use crate::processor::{Mac, Serial};
use crate::proto::{ErrorFrame, EventId, PlaceStatus, RelayEvent, StatusQuery};

/// The file name inside the data directory.
pub const STORE_FILE: &str = "cloud.redb";

pub(super) const PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("places");
/// Ids of deleted Places: never reused, or old links would match.
const DELETED: TableDefinition<&str, u64> = TableDefinition::new("deleted_places");
const PROCESSORS: TableDefinition<u32, &[u8]> = TableDefinition::new("processors");
/// (account, daemon, seq) → the stored result of that event.
const EVENTS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("events");
/// (processor serial, certificate serial) → when the proof was spent.
const SPENT_PROOFS: TableDefinition<(u32, &[u8]), u64> = TableDefinition::new("spent_proofs");
/// Enrolled daemons by name.
const DAEMONS: TableDefinition<&str, &[u8]> = TableDefinition::new("daemons");

/// The store over one redb file.
#[derive(Debug)]
pub struct RedbStore {
    pub(super) db: Database,
    path: PathBuf,
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
        place: &PlaceId,
        _accounts: &[&AccountId],
        _one_other_live: bool,
        _now: Timestamp,
    ) -> Result<Option<Place>, CloudError> {
        let places = self.0.open_table(PLACES)?;
        let value = places.get(place.0.as_str())?;
        value
            .map(|v| decode("places", &place.0, v.value()))
            .transpose()
    }

    async fn save_place(
        &mut self,
        _before: Option<&Place>,
        next: Option<&Place>,
        id: &PlaceId,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let mut places = self.0.open_table(PLACES)?;
        match next {
            Some(place) => {
                let bytes = encode(place)?;
                places.insert(id.0.as_str(), bytes.as_slice())?;
            }
            None => {
                places.remove(id.0.as_str())?;
                self.0.open_table(DELETED)?.insert(id.0.as_str(), now.0)?;
            }
        }
        Ok(())
    }

    fn link_for_rules(&self, secret: &LinkSecret) -> LinkSecret {
        secret.clone()
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
        let store = RedbStore { db, path };
        // Create every table once, so readers never meet a missing one.
        store.write(|txn| {
            txn.open_table(PLACES)?;
            txn.open_table(DELETED)?;
            txn.open_table(PROCESSORS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(SPENT_PROOFS)?;
            txn.open_table(DAEMONS)?;
            Ok(())
        })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        account: &AccountId,
        events: &[RelayEvent],
        secrets: &[Option<String>],
        now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        self.write(|txn| {
            let mut txn = RedbTxn(txn);
            events
                .iter()
                .zip(secrets)
                .map(|(event, secret)| {
                    complete(super::relay_event(
                        &mut txn,
                        account,
                        event,
                        secret.as_deref(),
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
                account,
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
        let table = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let value = table.get(id.0.as_str()).map_err(|e| self.err(e))?;
        value
            .map(|v| decode("places", &id.0, v.value()))
            .transpose()
    }

    pub(super) fn places(&self) -> Result<Vec<Place>, CloudError> {
        self.all(PLACES, "places", |k| k.to_owned())
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
            places: self.all_in(&txn, PLACES, "places", |k| k.to_owned())?,
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
