//! What the Places portal ([`crate::portal`]) keeps in the cloud's store,
//! on both backends: one-time sign-in links and sessions.
//!
//! Both are kept as the SHA-256 of their secret ([`super::link_digest`]),
//! never the secret: a copy of the store or the database signs no one in.
//! Each operation is one transaction, so a sign-in link is used once even
//! when two `cloud serve` nodes on one database are asked at once (the
//! PostgreSQL transaction is SERIALIZABLE; redb's writers take turns).
//! Rows past their expiry are swept when a new one is written.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::postgres::PgStore;
use super::redb::RedbStore;
use super::{CloudStore, link_digest};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, LinkSecret, Timestamp};

/// digest → [`SignInRecord`].
const SIGN_IN: TableDefinition<&str, &[u8]> = TableDefinition::new("portal_sign_in");
/// digest → [`SessionRecord`].
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("portal_sessions");

/// An issued sign-in link, as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SignInRecord {
    account: AccountId,
    expires: Timestamp,
    used: bool,
}

/// A session, as kept: who is signed in, until when, and the CSRF token
/// every form of this session must carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account: AccountId,
    pub expires: Timestamp,
    pub csrf: String,
}

/// What presenting a sign-in link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// The link was live and is now spent: sign `account` in.
    Accepted(AccountId),
    /// Already used once.
    Used,
    Expired,
    /// Never issued by this cloud (or swept long after it expired).
    Unknown,
}

fn digest(secret: &str) -> String {
    link_digest(&LinkSecret(secret.to_owned()))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CloudError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| CloudError::Failed(format!("cannot encode a portal record: {e}")))?;
    Ok(out)
}

fn decode<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, CloudError> {
    ciborium::from_reader(bytes).map_err(|e| CloudError::Corrupt {
        table,
        key: "(a digest)".into(),
        reason: e.to_string(),
    })
}

impl CloudStore {
    /// Keeps a sign-in link for `account`, live until `expires`.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn put_sign_in(
        &self,
        secret: &str,
        account: &AccountId,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let record = SignInRecord {
            account: account.clone(),
            expires,
            used: false,
        };
        match self {
            CloudStore::Redb(s) => {
                redb_put(s, SIGN_IN, &digest(secret), &encode(&record)?, now, |b| {
                    decode::<SignInRecord>("portal_sign_in", b).map(|r| r.expires)
                })
            }
            CloudStore::Postgres(s) => pg_put_sign_in(s, &digest(secret), &record, now),
        }
    }

    /// Spends a sign-in link: [`SignIn::Accepted`] once, never again.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn use_sign_in(&self, secret: &str, now: Timestamp) -> Result<SignIn, CloudError> {
        let key = digest(secret);
        match self {
            CloudStore::Redb(s) => {
                let txn =
                    s.db.begin_write()
                        .map_err(|e| CloudError::store(s.path(), e))?;
                let outcome = {
                    let mut table = txn.open_table(SIGN_IN)?;
                    let found = table
                        .get(key.as_str())?
                        .map(|v| decode::<SignInRecord>("portal_sign_in", v.value()))
                        .transpose()?;
                    match found {
                        None => SignIn::Unknown,
                        Some(r) if r.used => SignIn::Used,
                        Some(r) if now >= r.expires => SignIn::Expired,
                        Some(mut r) => {
                            r.used = true;
                            table.insert(key.as_str(), encode(&r)?.as_slice())?;
                            SignIn::Accepted(r.account)
                        }
                    }
                };
                txn.commit().map_err(|e| CloudError::store(s.path(), e))?;
                Ok(outcome)
            }
            CloudStore::Postgres(s) => pg_use_sign_in(s, &key, now),
        }
    }

    /// Keeps a session under the digest of `secret`.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn put_session(
        &self,
        secret: &str,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        match self {
            CloudStore::Redb(s) => {
                redb_put(s, SESSIONS, &digest(secret), &encode(record)?, now, |b| {
                    decode::<SessionRecord>("portal_sessions", b).map(|r| r.expires)
                })
            }
            CloudStore::Postgres(s) => pg_put_session(s, &digest(secret), record, now),
        }
    }

    /// The live session `secret` opens, if any.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn session(
        &self,
        secret: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, CloudError> {
        let key = digest(secret);
        let found = match self {
            CloudStore::Redb(s) => {
                let txn =
                    s.db.begin_read()
                        .map_err(|e| CloudError::store(s.path(), e))?;
                let table = match txn.open_table(SESSIONS) {
                    Ok(table) => table,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                table
                    .get(key.as_str())?
                    .map(|v| decode::<SessionRecord>("portal_sessions", v.value()))
                    .transpose()?
            }
            CloudStore::Postgres(s) => pg_session(s, &key)?,
        };
        Ok(found.filter(|r| now < r.expires))
    }

    /// Ends the session `secret` opens (sign-out).
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn end_session(&self, secret: &str) -> Result<(), CloudError> {
        let key = digest(secret);
        match self {
            CloudStore::Redb(s) => {
                let txn =
                    s.db.begin_write()
                        .map_err(|e| CloudError::store(s.path(), e))?;
                txn.open_table(SESSIONS)?.remove(key.as_str())?;
                txn.commit().map_err(|e| CloudError::store(s.path(), e))
            }
            CloudStore::Postgres(s) => s.block(|| {
                s.transaction(async |t, _| {
                    t.tx.execute("DELETE FROM sessions WHERE secret_sha256 = $1", &[&key])
                        .await
                        .map_err(pg("ending a session"))?;
                    Ok(())
                })
            }),
        }
    }
}

/// Inserts `bytes` under `key` in `table` and sweeps the rows that
/// expired a day ago or more (`expires_of` reads a row's expiry).
fn redb_put(
    s: &RedbStore,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    bytes: &[u8],
    now: Timestamp,
    expires_of: impl Fn(&[u8]) -> Result<Timestamp, CloudError>,
) -> Result<(), CloudError> {
    let txn =
        s.db.begin_write()
            .map_err(|e| CloudError::store(s.path(), e))?;
    {
        let mut t = txn.open_table(table)?;
        let mut stale = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            // A used or expired link is kept a day, so that presenting it
            // again says "used" or "expired" rather than "unknown".
            if expires_of(v.value())?.plus(SWEEP_AFTER) <= now {
                stale.push(k.value().to_owned());
            }
        }
        for k in stale {
            t.remove(k.as_str())?;
        }
        t.insert(key, bytes)?;
    }
    txn.commit().map_err(|e| CloudError::store(s.path(), e))
}

/// How long an expired row is kept before it is swept.
const SWEEP_AFTER: u64 = 24 * 3600;

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> CloudError {
    move |source| CloudError::Database {
        context: context.into(),
        source,
    }
}

fn pg_put_sign_in(
    s: &PgStore,
    key: &str,
    record: &SignInRecord,
    now: Timestamp,
) -> Result<(), CloudError> {
    let stale = now.0.saturating_sub(SWEEP_AFTER) as i64;
    s.block(|| {
        s.transaction(async |t, _| {
            t.tx.execute("DELETE FROM sign_in_links WHERE expires <= $1", &[&stale])
                .await
                .map_err(pg("sweeping sign-in links"))?;
            t.tx.execute(
                "INSERT INTO sign_in_links (secret_sha256, account, expires) VALUES ($1, $2, $3)",
                &[&key, &record.account.as_str(), &(record.expires.0 as i64)],
            )
            .await
            .map_err(pg("keeping a sign-in link"))?;
            Ok(())
        })
    })
}

fn pg_use_sign_in(s: &PgStore, key: &str, now: Timestamp) -> Result<SignIn, CloudError> {
    s.block(|| {
        s.transaction(async |t, _| {
            let row =
                t.tx.query_opt(
                    "SELECT account, expires, used_at FROM sign_in_links WHERE secret_sha256 = $1",
                    &[&key],
                )
                .await
                .map_err(pg("reading a sign-in link"))?;
            let Some(row) = row else {
                return Ok(SignIn::Unknown);
            };
            let account: String = row.get(0);
            let expires: i64 = row.get(1);
            let used: Option<i64> = row.get(2);
            if used.is_some() {
                return Ok(SignIn::Used);
            }
            if now.0 as i64 >= expires {
                return Ok(SignIn::Expired);
            }
            t.tx.execute(
                "UPDATE sign_in_links SET used_at = $2 WHERE secret_sha256 = $1",
                &[&key, &(now.0 as i64)],
            )
            .await
            .map_err(pg("spending a sign-in link"))?;
            Ok(SignIn::Accepted(AccountId::new(&account)))
        })
    })
}

fn pg_put_session(
    s: &PgStore,
    key: &str,
    record: &SessionRecord,
    now: Timestamp,
) -> Result<(), CloudError> {
    let stale = now.0 as i64;
    s.block(|| {
        s.transaction(async |t, _| {
            t.tx.execute("DELETE FROM sessions WHERE expires <= $1", &[&stale])
                .await
                .map_err(pg("sweeping sessions"))?;
            t.tx.execute(
                "INSERT INTO sessions (secret_sha256, account, expires, csrf) VALUES ($1, $2, $3, $4)",
                &[&key, &record.account.as_str(), &(record.expires.0 as i64), &record.csrf],
            )
            .await
            .map_err(pg("keeping a session"))?;
            Ok(())
        })
    })
}

fn pg_session(s: &PgStore, key: &str) -> Result<Option<SessionRecord>, CloudError> {
    s.block(|| {
        s.transaction(async |t, _| {
            let row =
                t.tx.query_opt(
                    "SELECT account, expires, csrf FROM sessions WHERE secret_sha256 = $1",
                    &[&key],
                )
                .await
                .map_err(pg("reading a session"))?;
            Ok(row.map(|row| SessionRecord {
                account: AccountId::new(row.get::<_, &str>(0)),
                expires: Timestamp(row.get::<_, i64>(1) as u64),
                csrf: row.get(2),
            }))
        })
    })
}
