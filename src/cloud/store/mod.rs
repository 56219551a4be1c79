//! The cloud's storage: every Place, the processors registered to them,
//! the enrolled daemons and the result of every relayed event, in one of
//! two backends behind one [`CloudStore`]:
//!
//! - [`redb`](self::redb): one embedded file in the data directory, the
//!   default (a laptop, the demo, one node);
//! - [`postgres`](self::postgres): a PostgreSQL database (`--database
//!   URL`), for any number of `cloud serve` nodes on one database.
//!
//! What an operation does is written once, here, over [`PlaceTxn`]: read
//! what the rules need, run the pure rules ([`super::rules`]) and the
//! claim-proof checks ([`super::relayed`]), write the outcome. A backend
//! only says how a transaction reads and writes. Every operation is one
//! transaction, committed durably before anyone is told it happened.
//!
//! Relayed events are remembered by id forever, with their result, so a
//! daemon that was offline for weeks and sends an event again gets the
//! original answer and nothing is applied twice.

pub mod copy;
mod link_key;
mod pg_rows;
pub mod portal;
pub mod postgres;
pub mod redb;
pub mod reports;
pub mod timeline;

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{AccountId, LinkSecret, Place, PlaceId, Status, Timestamp};
use super::places::status_for;
use super::refusal::Refusal;
use super::relayed::{Possession, place_command};
use super::rules::{self, Command, Event};
use super::{CloudError, proof};
use crate::processor::{Mac, Serial};
use crate::proto::{
    Ack, ErrorFrame, EventKind, IssuedLink, Outcome, PlaceStatus, RelayEvent, StatusQuery,
    error_code,
};

pub use link_key::LinkKey;
use link_key::LinkKeys;
pub use postgres::PgStore;
pub use redb::{RedbStore, STORE_FILE};

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

/// A daemon identity issued by `cloud enroll`. Its name is the `CN` of
/// the certificate it was issued, and unique: a revoked name refuses every
/// certificate that carries it, and cannot be enrolled again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub name: String,
    pub account: AccountId,
    pub enrolled_at: Timestamp,
    /// When `cloud daemon revoke` shut it out; `None` while it may connect.
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    /// When it last connected (or was last seen connected by a node).
    #[serde(default)]
    pub last_contact: Option<Timestamp>,
}

impl DaemonRecord {
    /// A daemon just enrolled: not revoked, never seen.
    pub fn enrolled(name: &str, account: AccountId, at: Timestamp) -> DaemonRecord {
        DaemonRecord {
            name: name.to_owned(),
            account,
            enrolled_at: at,
            revoked_at: None,
            last_contact: None,
        }
    }
}

/// What `revoke_daemon` did: the daemon's record afterwards, and whether
/// this call revoked it (`false`: it was revoked before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub record: DaemonRecord,
    pub changed: bool,
}

/// An event's result as stored: what a duplicate gets again. A link an
/// event made is kept as its number: its secret is derived again
/// ([`LinkKey`]), never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredResult {
    Applied { link: Option<u64> },
    Refused { rule: String, why: String },
}

impl StoredResult {
    /// The ack for `account`'s event `id`: a refusal as stored, an applied
    /// event as `applied` (the first time) or `duplicate` (every time
    /// after), with its link.
    fn ack(
        self,
        account: &AccountId,
        id: &crate::proto::EventId,
        applied: Outcome,
        key: &LinkKey,
    ) -> Ack {
        match self {
            StoredResult::Applied { link } => Ack {
                id: id.clone(),
                outcome: applied,
                link: link.map(|number| IssuedLink {
                    number,
                    secret: key.secret_for(account, id).0,
                }),
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

/// One stored event result with its key, as `cloud copy` moves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub account: AccountId,
    pub daemon: String,
    pub seq: u64,
    pub result: StoredResult,
}

/// What one relayed frame gets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ack(Ack),
    Error(ErrorFrame),
}

/// What one transaction of a backend can read and write. The operations
/// ([`apply`], [`relay_event`], …) are written once over it.
///
/// The methods are async because PostgreSQL's are; the redb backend's
/// never wait (see [`redb::complete`]).
pub(crate) trait PlaceTxn {
    async fn is_deleted(&mut self, place: &PlaceId) -> Result<bool, CloudError>;
    /// The Place with at least what [`rules::apply`] needs for a command
    /// by and about `accounts`: their grants, the homeowner's, the share
    /// link's creator's, and (`one_other_live`) one more live grant, which
    /// is all "is anyone else left" asks. Both backends return no more
    /// (one record per grant). The share link's secret is its digest
    /// ([`link_digest`]).
    async fn place_for(
        &mut self,
        place: &PlaceId,
        accounts: &[&AccountId],
        one_other_live: bool,
        now: Timestamp,
    ) -> Result<Option<Place>, CloudError>;
    /// Writes `next` where `before` was (both as [`Self::place_for`] gave
    /// them: only what differs is written), or deletes the Place and
    /// remembers its id. A share link's secret is already its digest.
    async fn save_place(
        &mut self,
        before: Option<&Place>,
        next: Option<&Place>,
        id: &PlaceId,
        now: Timestamp,
    ) -> Result<(), CloudError>;
    async fn processor(&mut self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError>;
    async fn processor_by_mac(&mut self, mac: Mac) -> Result<Option<ProcessorRecord>, CloudError>;
    async fn put_processor(&mut self, record: &ProcessorRecord) -> Result<(), CloudError>;
    async fn is_spent(&mut self, serial: Serial, key: &[u8]) -> Result<bool, CloudError>;
    async fn spend(&mut self, serial: Serial, key: &[u8], now: Timestamp)
    -> Result<(), CloudError>;
    async fn event(
        &mut self,
        account: &AccountId,
        id: &crate::proto::EventId,
    ) -> Result<Option<StoredResult>, CloudError>;
    async fn put_event(
        &mut self,
        account: &AccountId,
        id: &crate::proto::EventId,
        result: &StoredResult,
        now: Timestamp,
    ) -> Result<(), CloudError>;
    /// Adds `entry` to `place`'s timeline.
    async fn record(
        &mut self,
        place: &PlaceId,
        entry: &timeline::TimelineEntry,
    ) -> Result<(), CloudError>;
    async fn processor_report(
        &mut self,
        serial: Serial,
    ) -> Result<Option<reports::ProcessorReport>, CloudError>;
    async fn put_processor_report(
        &mut self,
        report: &reports::ProcessorReport,
    ) -> Result<(), CloudError>;
}

/// The accounts a command is by and about: whose grants the rules read.
fn accounts_of(cmd: &Command) -> Vec<&AccountId> {
    match cmd {
        Command::CreatePlace { by, .. }
        | Command::PresentProjectKey { by, .. }
        | Command::Claim { by, .. }
        | Command::Release { by, .. }
        | Command::SetRemoteServicesAsCreator { by, .. }
        | Command::NewShareLink { by, .. }
        | Command::RedeemLink { by, .. } => vec![by],
        Command::ShareAccess { by, email, .. } => vec![by, email],
        Command::RevokeAccess { by, target, .. } => vec![by, target],
        Command::SetRemoteServices { .. }
        | Command::ActivateProcessor { .. }
        | Command::SupportRemovesHomeowner { .. } => vec![],
    }
}

/// Who acts in a command that names no account.
fn no_account(cmd: &Command) -> &'static str {
    match cmd {
        Command::SupportRemovesHomeowner { .. } => "support",
        _ => "project file",
    }
}

/// Applies `cmd` inside `txn`: read what the rules need, run them, write
/// the outcome back (or delete the Place, remembering its id).
pub(crate) async fn apply<T: PlaceTxn>(
    txn: &mut T,
    cmd: &Command,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    apply_from(txn, cmd, None, now).await
}

/// [`apply`] for an event `site_box` relayed (`None`: the operator or the
/// portal); the Place's timeline records it, applied or refused.
pub(crate) async fn apply_from<T: PlaceTxn>(
    txn: &mut T,
    cmd: &Command,
    site_box: Option<&str>,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    let id = cmd.place().clone();
    if matches!(cmd, Command::CreatePlace { .. }) && txn.is_deleted(&id).await? {
        return Ok(Err(Refusal::PlaceExists { place: id }));
    }
    // "Is anyone else left" is only asked by a self-revoke.
    let one_other = matches!(cmd, Command::RevokeAccess { by, target, .. } if by == target);
    let current = txn
        .place_for(&id, &accounts_of(cmd), one_other, now)
        .await?;
    // A Place holds its link's digest, never the secret: the rules see
    // the digest of a new link and of a presented one.
    let hashed;
    let cmd = match cmd {
        Command::RedeemLink { place, by, link } => {
            hashed = Command::RedeemLink {
                place: place.clone(),
                by: by.clone(),
                link: super::ShareLink {
                    number: link.number,
                    secret: LinkSecret(link_digest(&link.secret)),
                },
            };
            &hashed
        }
        Command::NewShareLink {
            place,
            by,
            secret,
            duration,
        } => {
            hashed = Command::NewShareLink {
                place: place.clone(),
                by: by.clone(),
                secret: LinkSecret(link_digest(secret)),
                duration: *duration,
            };
            &hashed
        }
        other => other,
    };
    let outcome = rules::apply(current.as_ref(), cmd, now);
    // A command about no Place (an unknown id) has no timeline to go to.
    if current.is_some() || matches!(outcome, Ok((Some(_), _))) {
        let entry = timeline::TimelineEntry {
            at: now,
            account: accounts_of(cmd)
                .first()
                .map_or_else(|| AccountId::new(no_account(cmd)), |a| (*a).clone()),
            site_box: site_box.map(str::to_owned),
            what: super::views::command_text(cmd),
            refused: outcome
                .as_ref()
                .err()
                .map(|r| (r.rule().to_owned(), r.to_string())),
        };
        txn.record(&id, &entry).await?;
    }
    let (next, events) = match outcome {
        Ok(outcome) => outcome,
        Err(refusal) => return Ok(Err(refusal)),
    };
    txn.save_place(current.as_ref(), next.as_ref(), &id, now)
        .await?;
    Ok(Ok(events))
}

/// Creates a Place and, optionally, activates its first processor in the
/// same transaction. A refused activation is a [`CloudError::Refused`], so
/// that the caller drops the transaction and nothing is created.
pub(crate) async fn create_place<T: PlaceTxn>(
    txn: &mut T,
    cmd: &Command,
    processor: Option<&ProcessorRecord>,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    let mut events = match apply(txn, cmd, now).await? {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let (Some(record), Command::CreatePlace { key, .. }) = (processor, cmd) {
        match activate(txn, record, key, now).await? {
            Ok(more) => events.extend(more),
            Err(refusal) => return Err(CloudError::Refused(refusal)),
        }
    }
    Ok(Ok(events))
}

/// Activates a processor in its Place: registers its CA for claim proofs.
pub(crate) async fn activate<T: PlaceTxn>(
    txn: &mut T,
    record: &ProcessorRecord,
    key: &super::ProjectKey,
    now: Timestamp,
) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
    // The CA must be a CA certificate, or no claim could ever be proven.
    proof::check_authority(&record.ca_der)
        .map_err(|e| CloudError::Failed(format!("processor {}: {e}", record.serial)))?;
    if let Some(existing) = txn.processor(record.serial).await?
        && existing.place != record.place
    {
        return Err(CloudError::Failed(format!(
            "processor {} is activated in Place {}: a processor belongs to one Place \
             (factory-default it to move it)",
            record.serial, existing.place
        )));
    }
    let cmd = Command::ActivateProcessor {
        place: record.place.clone(),
        key: key.clone(),
        processor: record.serial,
    };
    let events = match apply(txn, &cmd, now).await? {
        Ok(events) => events,
        Err(refusal) => return Ok(Err(refusal)),
    };
    txn.put_processor(record).await?;
    Ok(Ok(events))
}

/// One relayed event inside the batch's transaction, sent for `account`
/// by the site box named `site` (its certificate's site name, when
/// known). A NewShareLink's secret is derived from `key` and the event's
/// id ([`LinkKey`]): the same on a rerun of the transaction and for a
/// duplicate on any node.
pub(crate) async fn relay_event<T: PlaceTxn>(
    txn: &mut T,
    (account, site): (&AccountId, Option<&str>),
    event: &RelayEvent,
    key: &LinkKey,
    now: Timestamp,
) -> Result<Reply, CloudError> {
    if let Some(stored) = txn.event(account, &event.id).await? {
        return Ok(Reply::Ack(stored.ack(
            account,
            &event.id,
            Outcome::Duplicate,
            key,
        )));
    }
    // Who relayed, as the timeline and the processors' reports name it.
    let site_box = site.unwrap_or(&event.id.daemon);
    let mut link = None;
    // A release that names only its serial finds its Place by the
    // processor: the record, kept for `report_contact`.
    let mut released = None;
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
            let possession = Possession::Relayed(&event.id);
            claim_in(txn, (account, Some(site_box)), claim, possession, now).await?
        }
        EventKind::Released(e) => match released_place(txn, e).await? {
            Err(refusal) => Err(refusal),
            Ok((place, record)) => {
                released = record;
                let cmd = Command::Release {
                    place,
                    by: account.clone(),
                };
                apply_from(txn, &cmd, Some(site_box), now)
                    .await?
                    .map(|_| ())
            }
        },
        kind => {
            let secret = matches!(kind, EventKind::NewShareLink(_))
                .then(|| key.secret_for(account, &event.id).0);
            match place_command(account, kind, secret) {
                None => Ok(()),
                Some(cmd) => apply_from(txn, &cmd, Some(site_box), now)
                    .await?
                    .map(|events| {
                        link = events.iter().find_map(|ev| match ev {
                            Event::ShareLinkCreated { number, .. } => Some(*number),
                            _ => None,
                        });
                    }),
            }
        }
    };
    if result.is_ok() {
        report_contact(txn, site_box, event, released, now).await?;
    }
    let stored = match &result {
        Ok(()) => StoredResult::Applied { link },
        Err(refusal) => StoredResult::Refused {
            rule: refusal.rule().into(),
            why: refusal.to_string(),
        },
    };
    txn.put_event(account, &event.id, &stored, now).await?;
    Ok(Reply::Ack(stored.ack(
        account,
        &event.id,
        Outcome::Applied,
        key,
    )))
}

/// Keeps what an applied event says of its processor: the site box that
/// relayed it (`site_box`), when, and the model and firmware a claim
/// reports ([`reports`]). A release names its processor only by serial,
/// which must be of the Place released; `released` is its record when
/// [`released_place`] read it already.
async fn report_contact<T: PlaceTxn>(
    txn: &mut T,
    site_box: &str,
    event: &RelayEvent,
    released: Option<ProcessorRecord>,
    now: Timestamp,
) -> Result<(), CloudError> {
    let (serial, reported) = match &event.kind {
        EventKind::Claimed(c) => (c.serial, (c.model.as_deref(), c.firmware.as_deref())),
        EventKind::Released(e) => {
            let Some(serial) = e.serial else {
                return Ok(());
            };
            let record = match released {
                Some(record) => Some(record),
                None => txn.processor(serial).await?,
            };
            let of_place = record.is_some_and(|r| e.place.as_ref().is_none_or(|p| *p == r.place));
            if !of_place {
                return Ok(());
            }
            (serial, (None, None))
        }
        _ => return Ok(()),
    };
    let before = txn.processor_report(serial).await?;
    let (report, dropped) =
        reports::ProcessorReport::after(before, serial, site_box, reported, now);
    for why in dropped {
        tracing::warn!("{why}");
    }
    txn.put_processor_report(&report).await
}

/// The Place a Released event names, directly or by its processor; and
/// the processor's record when it was read to find the Place.
async fn released_place<T: PlaceTxn>(
    txn: &mut T,
    e: &crate::proto::Released,
) -> Result<Result<(PlaceId, Option<ProcessorRecord>), Refusal>, CloudError> {
    if let Some(place) = &e.place {
        return Ok(Ok((place.clone(), None)));
    }
    let Some(serial) = e.serial else {
        return Ok(Err(Refusal::NoSuchPlace {
            place: PlaceId(String::new()),
        }));
    };
    Ok(match txn.processor(serial).await? {
        Some(record) => Ok((record.place.clone(), Some(record))),
        None => Err(Refusal::UnknownProcessor { serial }),
    })
}

/// A homeowner claim with its proof, inside `txn`: checked by
/// [`super::relayed::check_claim`]; the proof is spent if the claim is
/// applied.
pub(crate) async fn claim_in<T: PlaceTxn>(
    txn: &mut T,
    (account, site_box): (&AccountId, Option<&str>),
    claim: &crate::proto::Claimed,
    possession: Possession<'_>,
    now: Timestamp,
) -> Result<Result<(), Refusal>, CloudError> {
    let record = txn.processor(claim.serial).await?;
    // The pure check asks whether the proof was spent; the lookup is
    // async, so it is made first, for the proof's key if it has one.
    let key = record.as_ref().and_then(|r| {
        proof::verify(&[&claim.proof], &r.ca_der, now)
            .ok()
            .map(|facts| facts.spent_key().to_vec())
    });
    let spent = match &key {
        Some(key) => txn.is_spent(claim.serial, key).await?,
        None => false,
    };
    let (cmd, proof) =
        match super::relayed::check_claim(record.as_ref(), account, claim, possession, now, |_| {
            spent
        }) {
            Ok(checked) => checked,
            Err(refusal) => {
                let named = claim.place.as_ref().or(record.as_ref().map(|r| &r.place));
                record_refused_claim(txn, named, account, claim, site_box, &refusal, now).await?;
                return Ok(Err(refusal));
            }
        };
    Ok(match (apply_from(txn, &cmd, site_box, now).await?, proof) {
        (Err(Refusal::UnverifiedButtonPress), Err(e)) => Err(Refusal::BadClaimProof {
            reason: e.to_string(),
        }),
        (Err(refusal), _) => Err(refusal),
        (Ok(_), Ok(spent_key)) => {
            txn.spend(claim.serial, &spent_key, now).await?;
            Ok(())
        }
        (Ok(_), Err(_)) => Err(Refusal::UnverifiedButtonPress),
    })
}

/// A claim refused before the rules (a proof that does not verify, a
/// wrong MAC, a spent proof, a processor of another Place) goes into the
/// timeline of the Place it names, as the rules' refusals do, but only
/// when that Place exists and `account` (the site box's) reaches it:
/// nothing is written about, or to, a Place the account cannot see.
async fn record_refused_claim<T: PlaceTxn>(
    txn: &mut T,
    named: Option<&PlaceId>,
    account: &AccountId,
    claim: &crate::proto::Claimed,
    site_box: Option<&str>,
    refusal: &Refusal,
    now: Timestamp,
) -> Result<(), CloudError> {
    let Some(id) = named else {
        return Ok(());
    };
    let reached = txn
        .place_for(id, &[account], false, now)
        .await?
        .is_some_and(|p| p.access(account, now).is_some());
    if !reached {
        return Ok(());
    }
    let asked = Command::Claim {
        place: id.clone(),
        by: account.clone(),
        processor: claim.serial,
        press_verified: false,
    };
    let entry = timeline::TimelineEntry {
        at: now,
        account: account.clone(),
        site_box: site_box.map(str::to_owned),
        what: super::views::command_text(&asked),
        refused: Some((refusal.rule().to_owned(), refusal.to_string())),
    };
    txn.record(id, &entry).await
}

/// The cloud icon for the processor `query` names, as `account` sees it.
pub(crate) async fn status_in<T: PlaceTxn>(
    txn: &mut T,
    account: &AccountId,
    query: &StatusQuery,
    now: Timestamp,
) -> Result<Result<PlaceStatus, ErrorFrame>, CloudError> {
    let (q, record) = match *query {
        StatusQuery::BySerial { query, serial } => (query, txn.processor(serial).await?),
        StatusQuery::ByMac { query, mac } => (query, txn.processor_by_mac(mac).await?),
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
    let place = txn.place_for(&record.place, &[account], false, now).await?;
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

/// A share link's secret: 128 random bits, hex.
pub(crate) fn fresh_secret() -> Result<String, CloudError> {
    let mut bytes = [0u8; 16];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CloudError::Failed("no randomness for a link secret".into()))?;
    Ok(crate::hex::encode(&bytes))
}

/// SHA-256 of a share link's secret, hex: what both stores keep instead of
/// the secret, so that reading the database grants nothing.
pub(crate) fn link_digest(secret: &LinkSecret) -> String {
    let hash = link_key::suite()
        .common
        .hash_provider
        .hash(secret.0.as_bytes());
    crate::hex::encode(hash.as_ref())
}

/// The store: the embedded redb file (the default) or a PostgreSQL
/// database. Every method is one transaction.
#[derive(Debug)]
pub enum CloudStore {
    Redb(RedbStore),
    Postgres(PgStore),
}

/// Dispatches a method to the backend: both take the same arguments.
macro_rules! each {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            CloudStore::Redb(s) => s.$method($($arg),*),
            CloudStore::Postgres(s) => s.$method($($arg),*),
        }
    };
}

impl CloudStore {
    /// Opens (or creates) the redb store `dir/cloud.redb`; `dir` is created
    /// 0700.
    ///
    /// # Errors
    /// [`CloudError::Io`] or [`CloudError::Store`].
    pub fn open(dir: &Path) -> Result<CloudStore, CloudError> {
        RedbStore::open(dir).map(CloudStore::Redb)
    }

    /// The PostgreSQL store at `url` (libpq style), migrated to this
    /// build's schema; or the redb store in `dir` without a URL.
    ///
    /// # Errors
    /// [`CloudError`] when the database cannot be reached, refuses the
    /// login, or has a schema newer than this build.
    pub fn open_chosen(dir: &Path, database: Option<&str>) -> Result<CloudStore, CloudError> {
        match database {
            Some(url) => PgStore::connect(url)
                .map(|s| s.with_link_keys(LinkKeys::in_dir(dir)))
                .map(CloudStore::Postgres),
            None => CloudStore::open(dir),
        }
    }

    /// Where the data is, for people: the redb file or the database.
    pub fn describe(&self) -> String {
        match self {
            CloudStore::Redb(s) => format!("data in {}", s.path().display()),
            CloudStore::Postgres(s) => format!("database {}", s.describe()),
        }
    }

    /// The redb file, for the redb store.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CloudStore::Redb(s) => Some(s.path()),
            CloudStore::Postgres(_) => None,
        }
    }

    /// How many transactions were rerun after a serialization failure
    /// (always 0 on redb, whose writers take turns).
    pub fn serialization_retries(&self) -> u64 {
        match self {
            CloudStore::Redb(_) => 0,
            CloudStore::Postgres(s) => s.serialization_retries(),
        }
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
        each!(self.execute(cmd, now))
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
        let created = each!(self.create_place(cmd, processor.as_ref(), now));
        created.or_else(|e| match e {
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
        each!(self.activate_processor(&record, key, now))
    }

    /// Relays a batch of events for `account`, in one transaction: either
    /// all their results are kept or none (a crash before the commit means
    /// none was acknowledged either).
    ///
    /// # Errors
    /// [`CloudError`] when the store fails; the caller answers every event
    /// of the batch with an error frame ([`CloudError::Busy`]: `busy`).
    pub fn relay(
        &self,
        account: &AccountId,
        events: &[RelayEvent],
        now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        self.relay_from(account, None, events, now)
    }

    /// [`Self::relay`] for the site box whose certificate names the site
    /// `site` (`None`: not known; the events' daemon id stands for it).
    ///
    /// # Errors
    /// As [`Self::relay`].
    pub fn relay_from(
        &self,
        account: &AccountId,
        site: Option<&str>,
        events: &[RelayEvent],
        now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        let key = match self {
            CloudStore::Redb(s) => s.link_keys(),
            CloudStore::Postgres(s) => s.link_keys(),
        }
        .get()?;
        each!(self.relay((account, site), events, key, now))
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
        each!(self.claim(account, claim, now))
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
        each!(self.status(account, query, now))
    }

    /// # Errors
    /// [`CloudError`] when the store fails or the record is corrupt.
    pub fn place(&self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        each!(self.place(id))
    }

    /// Every Place, in id order.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn places(&self) -> Result<super::Places, CloudError> {
        each!(self.places()).map(super::Places::from_places)
    }

    /// # Errors
    /// [`CloudError`] when the store fails or the record is corrupt.
    pub fn processor(&self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        each!(self.processor(serial))
    }

    /// Every processor, in serial order.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn processors(&self) -> Result<Vec<ProcessorRecord>, CloudError> {
        each!(self.processors())
    }

    /// Records an enrolled daemon.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn add_daemon(&self, record: &DaemonRecord) -> Result<(), CloudError> {
        each!(self.add_daemon(record))
    }

    /// Every enrolled daemon, in name order.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, CloudError> {
        each!(self.daemons())
    }

    /// Revokes the daemon `name` at `now` (a second revoke keeps the
    /// first time, and says it changed nothing). `None`: no daemon has
    /// that name.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or the record is corrupt.
    pub fn revoke_daemon(
        &self,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<Revocation>, CloudError> {
        each!(self.revoke_daemon(name, now))
    }

    /// The names of every revoked daemon: what `cloud serve` polls to close
    /// their connections.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn revoked_daemons(&self) -> Result<Vec<String>, CloudError> {
        each!(self.revoked_daemons())
    }

    /// Records that the daemons `names` are connected at `now`, in one
    /// transaction, and returns those of them that are revoked (they are
    /// not touched). A name without a record (a bundle issued without
    /// `cloud enroll`, as the demo does) is neither.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn daemons_seen(
        &self,
        names: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>, CloudError> {
        each!(self.daemons_seen(names, now))
    }

    /// Every stored event result, in key order (for `cloud copy` and its
    /// check).
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn events(&self) -> Result<Vec<EventRecord>, CloudError> {
        match self {
            CloudStore::Redb(s) => s.dump().map(|d| d.events),
            CloudStore::Postgres(s) => s.events(),
        }
    }

    /// How many relayed events the cloud has applied or refused.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn event_count(&self) -> Result<u64, CloudError> {
        each!(self.event_count())
    }
}

#[cfg(test)]
mod tests;
