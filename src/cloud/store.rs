//! The cloud's storage: one redb file holding every Place, the processors
//! registered to them, and the result of every relayed event.
//!
//! Every operation is one write transaction that reads what it needs,
//! runs the pure rules and writes the outcome, committed with redb's
//! immediate durability (fsync) before anyone is told it happened: a
//! kill -9 loses nothing that was acknowledged. The file is opened in
//! redb's multi-writer mode, so the operator CLI works on it while
//! `handoff cloud serve` runs; nothing is cached in memory between
//! transactions.
//!
//! Relayed events are remembered by id forever, with their result, so a
//! daemon that was offline for weeks and sends an event again gets the
//! original answer and nothing is applied twice.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::model::{AccountId, Place, PlaceId, Status, Timestamp};
use super::proof;
use super::refusal::Refusal;
use super::relayed::{CheckedClaim, Possession, place_command};
use super::rules::{self, Command, Event};
use super::{CloudError, places::status_for};
use crate::processor::{Mac, Serial};
use crate::proto::{
    Ack, ErrorFrame, EventKind, IssuedLink, Outcome, PlaceStatus, RelayEvent, StatusQuery,
    error_code,
};

const PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("places");
/// Ids of deleted Places: never reused, or old links would match.
const DELETED: TableDefinition<&str, u64> = TableDefinition::new("deleted_places");
const PROCESSORS: TableDefinition<u32, &[u8]> = TableDefinition::new("processors");
/// (account, daemon, seq) → the stored result of that event.
const EVENTS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("events");
/// (processor serial, certificate serial) → when the proof was spent.
const SPENT_PROOFS: TableDefinition<(u32, &[u8]), u64> = TableDefinition::new("spent_proofs");
/// Enrolled daemons by name.
const DAEMONS: TableDefinition<&str, &[u8]> = TableDefinition::new("daemons");

/// The file name inside the data directory.
pub const STORE_FILE: &str = "cloud.redb";

/// A processor as the cloud knows it: which Place it belongs to and the CA
/// that signs its claim proofs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorRecord {
    pub place: PlaceId,
    pub serial: Serial,
    pub mac: [u8; 6],
    /// DER of the processor CA (the `RootCertificate` it hands out).
    pub ca_der: Vec<u8>,
}

impl ProcessorRecord {
    pub fn mac(&self) -> Mac {
        Mac(self.mac)
    }
}

/// A daemon identity issued by `cloud enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub name: String,
    pub account: AccountId,
    pub enrolled_at: Timestamp,
}

/// An event's result as stored: what a duplicate gets again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum StoredResult {
    Applied { link: Option<(u64, String)> },
    Refused { rule: String, why: String },
}

impl StoredResult {
    /// The ack for `id`: a refusal as stored, an applied event as
    /// `applied` (the first time) or `duplicate` (every time after), with
    /// its link.
    fn ack(self, id: &crate::proto::EventId, applied: Outcome) -> Ack {
        match self {
            StoredResult::Applied { link } => Ack {
                id: id.clone(),
                outcome: applied,
                link: link.map(|(number, secret)| IssuedLink { number, secret }),
            },
            StoredResult::Refused { rule, why } => Ack {
                id: id.clone(),
                outcome: Outcome::Refused {
                    rule,
                    guidance: why,
                },
                link: None,
            },
        }
    }
}

/// The store over one redb file.
#[derive(Debug)]
pub struct CloudStore {
    db: Database,
    path: PathBuf,
}

/// What one relayed frame gets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ack(Ack),
    Error(ErrorFrame),
}

impl CloudStore {
    /// Opens (or creates) `dir/cloud.redb`; `dir` is created 0700.
    ///
    /// # Errors
    /// [`CloudError::Io`] or [`CloudError::Store`].
    pub fn open(dir: &Path) -> Result<CloudStore, CloudError> {
        crate::identity::files::ensure_private_dir(dir).map_err(CloudError::Identity)?;
        let path = dir.join(STORE_FILE);
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| CloudError::store(&path, e))?;
        let store = CloudStore { db, path };
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

    /// Applies one command of the rules (the operator CLI's way in).
    /// `Ok(Err(refusal))`: the rules said no and nothing changed.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn execute(
        &self,
        cmd: &Command,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| apply_in(txn, cmd, now))
    }

    /// Creates a Place and, optionally, activates its first processor in
    /// the same transaction.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn create_place(
        &self,
        cmd: &Command,
        processor: Option<ProcessorRecord>,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| {
            let mut events = match apply_in(txn, cmd, now)? {
                Ok(events) => events,
                Err(refusal) => return Ok(Err(refusal)),
            };
            if let (Some(record), Command::CreatePlace { key, .. }) = (processor, cmd) {
                match activate_in(txn, record, key, now)? {
                    Ok(more) => events.extend(more),
                    Err(refusal) => return Err(CloudError::Refused(refusal)),
                }
            }
            Ok(Ok(events))
        })
        .or_else(|e| match e {
            // The transaction was dropped: nothing was created.
            CloudError::Refused(refusal) => Ok(Err(refusal)),
            e => Err(e),
        })
    }

    /// Activates a processor in its Place (the project was transferred to
    /// it): registers its CA for claim proofs.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn activate_processor(
        &self,
        record: ProcessorRecord,
        key: &super::ProjectKey,
        now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.write(|txn| activate_in(txn, record, key, now))
    }

    /// Relays a batch of events for `account`, in one transaction: one
    /// fsync for the batch, and either all their results are kept or none
    /// (a crash before the commit means none was acknowledged either).
    ///
    /// # Errors
    /// [`CloudError`] when the store fails; the caller answers every event
    /// of the batch with an `internal` error frame.
    pub fn relay(
        &self,
        account: &AccountId,
        events: &[RelayEvent],
        now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        self.write(|txn| {
            events
                .iter()
                .map(|event| relay_in(txn, account, event, now))
                .collect()
        })
    }

    /// A homeowner claim with its proof, outside the relay (the operator
    /// CLI on the cloud's host): checked as a relayed Claimed event, but
    /// for the proof of possession, which needs an event id and a sender
    /// (see [`Possession::Operator`]).
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn claim(
        &self,
        account: &AccountId,
        claim: &crate::proto::Claimed,
        now: Timestamp,
    ) -> Result<Result<(), Refusal>, CloudError> {
        self.write(|txn| claim_in(txn, account, claim, Possession::Operator, now))
    }

    /// The cloud icon for the processor `query` names, as `account` sees
    /// it.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn status(
        &self,
        account: &AccountId,
        query: &StatusQuery,
        now: Timestamp,
    ) -> Result<Result<PlaceStatus, ErrorFrame>, CloudError> {
        let (q, record) = match *query {
            StatusQuery::BySerial { query, serial } => (query, self.processor(serial)?),
            StatusQuery::ByMac { query, mac } => (query, self.processor_by_mac(mac)?),
        };
        let Some(record) = record else {
            return Ok(Err(ErrorFrame {
                code: error_code::UNKNOWN_PROCESSOR.into(),
                reason: "no Place in this cloud has that processor: the project was never \
                         transferred to it with remote services on, or it was factory-defaulted"
                    .into(),
                id: None,
                query: Some(q),
            }));
        };
        let place = self.place(&record.place)?;
        let (status, guidance, may_know) = match &place {
            Some(p) => (
                status_for(p, account, now),
                super::places::guidance_for(p, account, now),
                p.access(account, now).is_some(),
            ),
            // A Place deleted by a forced last revoke: nobody reaches it.
            None => (Status::Grey, Status::Grey.guidance(), false),
        };
        Ok(Ok(PlaceStatus {
            query: q,
            status,
            guidance: guidance.into(),
            serial: record.serial,
            mac: record.mac(),
            place: may_know.then(|| record.place.clone()),
            access: Some(may_know),
        }))
    }

    /// # Errors
    /// [`CloudError`] when the store fails or the record is corrupt.
    pub fn place(&self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let value = table.get(id.0.as_str()).map_err(|e| self.err(e))?;
        value
            .map(|v| decode("places", &id.0, v.value()))
            .transpose()
    }

    /// Every Place, in id order.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn places(&self) -> Result<super::Places, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(PLACES).map_err(|e| self.err(e))?;
        let mut places = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            places.push(decode::<Place>("places", k.value(), v.value())?);
        }
        Ok(super::Places::from_places(places))
    }

    /// # Errors
    /// [`CloudError`] when the store fails or the record is corrupt.
    pub fn processor(&self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(PROCESSORS).map_err(|e| self.err(e))?;
        let value = table.get(serial.0).map_err(|e| self.err(e))?;
        value
            .map(|v| decode("processors", &serial.to_string(), v.value()))
            .transpose()
    }

    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn processors(&self) -> Result<Vec<ProcessorRecord>, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(PROCESSORS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            out.push(decode("processors", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    fn processor_by_mac(&self, mac: Mac) -> Result<Option<ProcessorRecord>, CloudError> {
        Ok(self.processors()?.into_iter().find(|p| p.mac == mac.0))
    }

    /// Records an enrolled daemon.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn add_daemon(&self, record: &DaemonRecord) -> Result<(), CloudError> {
        let bytes = encode(record)?;
        self.write(|txn| {
            let mut table = txn.open_table(DAEMONS)?;
            table.insert(record.name.as_str(), bytes.as_slice())?;
            Ok(())
        })
    }

    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(DAEMONS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            out.push(decode("daemons", k.value(), v.value())?);
        }
        Ok(out)
    }

    /// How many relayed events the cloud has applied or refused.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn event_count(&self) -> Result<u64, CloudError> {
        let txn = self.read()?;
        let table = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
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

/// Applies `cmd` inside `txn`: read the Place, run the rules, write the
/// outcome back (or delete it, remembering its id).
fn apply_in(
    txn: &WriteTransaction,
    cmd: &Command,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    let id = cmd.place().0.clone();
    let mut places = txn.open_table(PLACES)?;
    let mut deleted = txn.open_table(DELETED)?;
    if matches!(cmd, Command::CreatePlace { .. }) && deleted.get(id.as_str())?.is_some() {
        return Ok(Err(Refusal::PlaceExists { place: PlaceId(id) }));
    }
    let current: Option<Place> = match places.get(id.as_str())? {
        Some(v) => Some(decode("places", &id, v.value())?),
        None => None,
    };
    let (next, events) = match rules::apply(current.as_ref(), cmd, now) {
        Ok(outcome) => outcome,
        Err(refusal) => return Ok(Err(refusal)),
    };
    match next {
        Some(place) => {
            let bytes = encode(&place)?;
            places.insert(id.as_str(), bytes.as_slice())?;
        }
        None => {
            places.remove(id.as_str())?;
            deleted.insert(id.as_str(), now.0)?;
        }
    }
    Ok(Ok(events))
}

fn activate_in(
    txn: &WriteTransaction,
    record: ProcessorRecord,
    key: &super::ProjectKey,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    // The CA must be a CA certificate, or no claim could ever be proven.
    proof::check_authority(&record.ca_der)
        .map_err(|e| CloudError::Failed(format!("processor {}: {e}", record.serial)))?;
    let processors = txn.open_table(PROCESSORS)?;
    if let Some(existing) = processors.get(record.serial.0)? {
        let existing: ProcessorRecord =
            decode("processors", &record.serial.to_string(), existing.value())?;
        if existing.place != record.place {
            return Err(CloudError::Failed(format!(
                "processor {} is activated in Place {}: a processor belongs to one Place \
                 (factory-default it to move it)",
                record.serial, existing.place
            )));
        }
    }
    drop(processors);
    let cmd = Command::ActivateProcessor {
        place: record.place.clone(),
        key: key.clone(),
        processor: record.serial,
    };
    let events = match apply_in(txn, &cmd, now)? {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let bytes = encode(&record)?;
    let mut processors = txn.open_table(PROCESSORS)?;
    processors.insert(record.serial.0, bytes.as_slice())?;
    Ok(Ok(events))
}

/// One relayed event inside the batch's transaction.
fn relay_in(
    txn: &WriteTransaction,
    account: &AccountId,
    event: &RelayEvent,
    now: Timestamp,
) -> Result<Reply, CloudError> {
    let key = (account.as_str(), event.id.daemon.as_str(), event.id.seq);
    {
        let events = txn.open_table(EVENTS)?;
        if let Some(stored) = events.get(key)? {
            let stored: StoredResult =
                decode("events", &format!("{:?}", event.id), stored.value())?;
            return Ok(Reply::Ack(stored.ack(&event.id, Outcome::Duplicate)));
        }
    }
    let mut link = None;
    let result = match &event.kind {
        EventKind::Unknown { kind } => {
            // Not stored: a later build may know it.
            return Ok(Reply::Error(ErrorFrame {
                code: error_code::UNKNOWN_EVENT.into(),
                reason: format!("this cloud does not know the event kind \"{kind}\""),
                id: Some(event.id.clone()),
                query: None,
            }));
        }
        EventKind::Claimed(claim) => {
            claim_in(txn, account, claim, Possession::Relayed(&event.id), now)?
        }
        EventKind::Released(e) => match released_place(txn, e)? {
            Err(refusal) => Err(refusal),
            Ok(place) => apply_in(
                txn,
                &Command::Release {
                    place,
                    by: account.clone(),
                },
                now,
            )?
            .map(|_| ()),
        },
        EventKind::ShareAccess(_)
        | EventKind::NewShareLink(_)
        | EventKind::RedeemLink(_)
        | EventKind::RevokeAccess(_) => {
            let secret = match &event.kind {
                EventKind::NewShareLink(_) => Some(fresh_secret()?),
                _ => None,
            };
            match place_command(account, &event.kind, secret.clone()) {
                None => Ok(()),
                Some(cmd) => apply_in(txn, &cmd, now)?.map(|events| {
                    link = events.iter().find_map(|ev| match (ev, &secret) {
                        (Event::ShareLinkCreated { number, .. }, Some(secret)) => {
                            Some((*number, secret.clone()))
                        }
                        _ => None,
                    });
                }),
            }
        }
    };
    let stored = match &result {
        Ok(()) => StoredResult::Applied { link: link.clone() },
        Err(refusal) => StoredResult::Refused {
            rule: refusal.rule().into(),
            why: refusal.to_string(),
        },
    };
    let bytes = encode(&stored)?;
    txn.open_table(EVENTS)?.insert(key, bytes.as_slice())?;
    Ok(Reply::Ack(stored.ack(&event.id, Outcome::Applied)))
}

/// The Place a Released event names, directly or by its processor.
fn released_place(
    txn: &WriteTransaction,
    e: &crate::proto::Released,
) -> Result<Result<PlaceId, Refusal>, CloudError> {
    if let Some(place) = &e.place {
        return Ok(Ok(place.clone()));
    }
    let Some(serial) = e.serial else {
        return Ok(Err(Refusal::NoSuchPlace {
            place: PlaceId(String::new()),
        }));
    };
    let processors = txn.open_table(PROCESSORS)?;
    Ok(match processors.get(serial.0)? {
        Some(v) => {
            Ok(decode::<ProcessorRecord>("processors", &serial.to_string(), v.value())?.place)
        }
        None => Err(Refusal::UnknownProcessor { serial }),
    })
}

/// A homeowner claim with its proof, inside `txn`; the proof is spent if
/// the claim is applied.
fn claim_in(
    txn: &WriteTransaction,
    account: &AccountId,
    claim: &crate::proto::Claimed,
    possession: Possession<'_>,
    now: Timestamp,
) -> Result<Result<(), Refusal>, CloudError> {
    let (cmd, proof) = match check_claim(txn, account, claim, possession, now)? {
        Ok(checked) => checked,
        Err(refusal) => return Ok(Err(refusal)),
    };
    Ok(match (apply_in(txn, &cmd, now)?, proof) {
        (Err(Refusal::UnverifiedButtonPress), Err(e)) => Err(Refusal::BadClaimProof {
            reason: e.to_string(),
        }),
        (Err(refusal), _) => Err(refusal),
        (Ok(_), Ok(spent_key)) => {
            let mut spent = txn.open_table(SPENT_PROOFS)?;
            spent.insert((claim.serial.0, spent_key.as_slice()), now.0)?;
            Ok(())
        }
        (Ok(_), Err(_)) => Err(Refusal::UnverifiedButtonPress),
    })
}

/// [`super::relayed::check_claim`] with the processor's record and the
/// spent proofs read from `txn`.
fn check_claim(
    txn: &WriteTransaction,
    account: &AccountId,
    claim: &crate::proto::Claimed,
    possession: Possession<'_>,
    now: Timestamp,
) -> Result<Result<CheckedClaim, Refusal>, CloudError> {
    let processors = txn.open_table(PROCESSORS)?;
    let record = match processors.get(claim.serial.0)? {
        Some(v) => Some(decode::<ProcessorRecord>(
            "processors",
            &claim.serial.to_string(),
            v.value(),
        )?),
        None => None,
    };
    let spent = txn.open_table(SPENT_PROOFS)?;
    let mut lookup_error = None;
    let checked =
        super::relayed::check_claim(record.as_ref(), account, claim, possession, now, |key| {
            match spent.get((claim.serial.0, key)) {
                Ok(found) => found.is_some(),
                Err(e) => {
                    lookup_error = Some(e);
                    true
                }
            }
        });
    if let Some(e) = lookup_error {
        return Err(e.into());
    }
    Ok(checked)
}

/// A share link's secret: 128 random bits, hex.
pub(crate) fn fresh_secret() -> Result<String, CloudError> {
    let mut bytes = [0u8; 16];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CloudError::Failed("no randomness for a link secret".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
