//! What the Places portal ([`crate::portal`]) keeps in the cloud's store,
//! on both backends: one-time sign-in links, sessions, and the nonces of
//! the forms sent (each kept in the transaction of what its form did).
//!
//! Both are kept as the SHA-256 of their secret ([`super::link_digest`]),
//! never the secret: a copy of the store or the database signs no one in.
//! Each operation is one transaction, so a sign-in link is used once even
//! when two `cloud serve` nodes on one database are asked at once (the
//! PostgreSQL transaction is SERIALIZABLE; redb's writers take turns).
//! Rows past their expiry are swept when a new one is written.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::postgres::PgStore;
use super::redb::RedbStore;
use super::{CloudStore, link_digest};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, LinkSecret, Place, Timestamp};
use crate::cloud::refusal::Refusal;
use crate::cloud::rules::{Command, Event};

/// digest → [`SignInRecord`].
const SIGN_IN: TableDefinition<&str, &[u8]> = TableDefinition::new("portal_sign_in");
/// digest → [`SessionRecord`].
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("portal_sessions");
/// (session digest, form nonce) → the session's expiry.
const USED_FORMS: TableDefinition<(&str, &str), u64> = TableDefinition::new("portal_used_forms");

/// A form of a portal session, as sent: the session's secret (its
/// digest is kept, never the secret), the form's nonce, and when the
/// session ends.
#[derive(Clone, Copy, Debug)]
pub struct SentForm<'a> {
    pub session: &'a str,
    pub nonce: &'a str,
    pub expires: Timestamp,
}

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
    /// The one-shot message of this session's last POST, for the page it
    /// redirects to (the portal's JSON; [`CloudStore::take_flash`]).
    #[serde(default)]
    pub flash: Option<String>,
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

/// `text` sealed under a session's `secret` with AES-256-GCM (aws-lc-rs):
/// the key is HKDF-SHA-256 of (salt, secret) for a fresh salt, so the store
/// holds nothing that opens it without the browser's cookie
/// (`v2:SALT:CIPHERTEXT+TAG`, hex).
fn seal(secret: &str, text: &str) -> Result<String, CloudError> {
    let salt = super::fresh_secret()?;
    let mut sealed = text.as_bytes().to_vec();
    flash_key(secret, &salt)
        .and_then(|key| {
            let nonce = Nonce::assume_unique_for_key([0; NONCE_LEN]);
            key.seal_in_place_append_tag(nonce, Aad::empty(), &mut sealed)
                .ok()
        })
        .ok_or_else(|| CloudError::Failed("cannot seal a portal message".into()))?;
    Ok(format!("v2:{salt}:{}", crate::hex::encode(&sealed)))
}

/// The text [`seal`] sealed under `secret`; `None` when it was sealed
/// under another secret, altered, or is not a sealed message.
fn unseal(secret: &str, sealed: &str) -> Option<String> {
    let mut parts = sealed.split(':');
    let (Some("v2"), Some(salt), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let mut bytes = crate::hex::decode(body)?;
    let nonce = Nonce::assume_unique_for_key([0; NONCE_LEN]);
    let text = flash_key(secret, salt)?
        .open_in_place(nonce, Aad::empty(), &mut bytes)
        .ok()?;
    String::from_utf8(text.to_vec()).ok()
}

/// The AES-256-GCM key of a flash sealed under `secret` with `salt`: one
/// key per seal (the salt is fresh), so a fixed nonce is never reused.
fn flash_key(secret: &str, salt: &str) -> Option<LessSafeKey> {
    let hkdf = super::link_key::suite().hkdf_provider;
    let expander = hkdf.extract_from_secret(Some(salt.as_bytes()), secret.as_bytes());
    let okm = expander.expand_block(&[b"handoff portal flash v2"]);
    // HKDF-SHA-256's block is the 32 bytes AES-256 takes.
    UnboundKey::new(&AES_256_GCM, okm.as_ref())
        .ok()
        .map(LessSafeKey::new)
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
            CloudStore::Redb(s) => redb_write(s, |txn| {
                let mut table = txn.open_table(SIGN_IN)?;
                let found = table
                    .get(key.as_str())?
                    .map(|v| decode::<SignInRecord>("portal_sign_in", v.value()))
                    .transpose()?;
                Ok(match found {
                    None => SignIn::Unknown,
                    Some(r) if r.used => SignIn::Used,
                    Some(r) if now >= r.expires => SignIn::Expired,
                    Some(mut r) => {
                        r.used = true;
                        table.insert(key.as_str(), encode(&r)?.as_slice())?;
                        SignIn::Accepted(r.account)
                    }
                })
            }),
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
                })?;
                redb_write(s, |txn| {
                    let mut table = txn.open_table(USED_FORMS)?;
                    table.retain(|_, expires| expires > now.0)?;
                    Ok(())
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
            CloudStore::Redb(s) => redb_write(s, |txn| {
                txn.open_table(SESSIONS)?.remove(key.as_str())?;
                Ok(())
            }),
            CloudStore::Postgres(s) => pg_run(
                s,
                &[(
                    "ending a session",
                    "DELETE FROM sessions WHERE secret_sha256 = $1",
                    &[&key],
                )],
            )
            .map(drop),
        }
    }

    /// Sets (or with `None` clears) the one-shot message of the session
    /// `secret` opens, and answers the message it had. The message is kept
    /// sealed under `secret`, which only the browser holds (the store
    /// keys the session by its digest): a new share link's URL in it is
    /// a secret that no row or byte of the store holds.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn swap_flash(
        &self,
        secret: &str,
        flash: Option<&str>,
    ) -> Result<Option<String>, CloudError> {
        let key = digest(secret);
        let flash = flash.map(|text| seal(secret, text)).transpose()?;
        let flash = flash.as_deref();
        let was = match self {
            CloudStore::Redb(s) => redb_write(s, |txn| {
                let mut table = txn.open_table(SESSIONS)?;
                let found = table
                    .get(key.as_str())?
                    .map(|v| decode::<SessionRecord>("portal_sessions", v.value()))
                    .transpose()?;
                let Some(mut record) = found else {
                    return Ok(None);
                };
                let was = std::mem::replace(&mut record.flash, flash.map(str::to_owned));
                table.insert(key.as_str(), encode(&record)?.as_slice())?;
                Ok(was)
            }),
            CloudStore::Postgres(s) => {
                let rows = pg_run(
                    s,
                    &[(
                        "keeping a session's message",
                        "WITH was AS (SELECT flash FROM sessions WHERE secret_sha256 = $1 FOR UPDATE),
                              set AS (UPDATE sessions SET flash = $2 WHERE secret_sha256 = $1)
                         SELECT flash FROM was",
                        &[&key, &flash],
                    )],
                )?;
                Ok(rows.first().and_then(|r| r.get(0)))
            }
        }?;
        Ok(was.and_then(|sealed: String| unseal(secret, &sealed)))
    }

    /// [`CloudStore::execute`] for a form of a portal session: the form's
    /// nonce is kept as sent in the same transaction as what it does. A
    /// store failure leaves neither, so the form can be sent again; a form
    /// sent twice (a refresh, the back button) acts once: `Ok(None)`, and
    /// nothing was done. A refusal by the rules keeps the nonce (sending
    /// the form again is refused again). Nonces are kept until the
    /// session's end (`form.expires`), when the form cannot be sent anyway.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn execute_form(
        &self,
        cmd: &Command,
        now: Timestamp,
        form: Option<&SentForm<'_>>,
    ) -> Result<Option<Result<Vec<Event>, Refusal>>, CloudError> {
        let Some(form) = form else {
            return self.execute(cmd, now).map(Some);
        };
        let key = digest(form.session);
        match self {
            CloudStore::Redb(s) => s.execute_after(cmd, now, |txn| {
                let mut table = txn.open_table(USED_FORMS)?;
                Ok(table
                    .insert((key.as_str(), form.nonce), form.expires.0)?
                    .is_none())
            }),
            CloudStore::Postgres(s) => s.block(|| {
                s.transaction(async |t, now| {
                    let kept = t
                        .tx
                        .query(
                            "INSERT INTO used_forms (session_sha256, nonce, expires) VALUES ($1, $2, $3)
                             ON CONFLICT DO NOTHING RETURNING nonce",
                            &[&key, &form.nonce, &(form.expires.0 as i64)],
                        )
                        .await
                        .map_err(pg("keeping a sent form"))?;
                    if kept.is_empty() {
                        return Ok(None);
                    }
                    super::apply(t, cmd, now).await.map(Some)
                })
            }),
        }
    }

    /// The Places `account` reaches at `now`, in id order: `skip` passed
    /// over and at most `take` read (the Places list's page), and how
    /// many it reaches in all. Reads only this account's grants and the
    /// page's Places, not the whole cloud.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn account_places(
        &self,
        account: &AccountId,
        now: Timestamp,
        skip: usize,
        take: usize,
    ) -> Result<(Vec<Place>, usize), CloudError> {
        match self {
            CloudStore::Redb(s) => s.account_places(account, now, skip, take),
            CloudStore::Postgres(s) => s.account_places(account, now, skip, take),
        }
    }
}

/// One write transaction on redb, committed when `body` succeeds.
fn redb_write<T>(
    s: &RedbStore,
    body: impl FnOnce(&redb::WriteTransaction) -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    let txn =
        s.db.begin_write()
            .map_err(|e| CloudError::store(s.path(), e))?;
    let out = body(&txn)?;
    txn.commit().map_err(|e| CloudError::store(s.path(), e))?;
    Ok(out)
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
    redb_write(s, |txn| {
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
        Ok(())
    })
}

/// How long an expired row is kept before it is swept.
const SWEEP_AFTER: u64 = 24 * 3600;

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> CloudError {
    move |source| CloudError::Database {
        context: context.into(),
        source,
    }
}

type Params<'a> = [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// The shape of every portal operation on PostgreSQL: `statements` run
/// in order in one SERIALIZABLE transaction (retried as every store
/// transaction is), and the rows the last one returned.
fn pg_run(
    s: &PgStore,
    statements: &[(&'static str, &str, &Params<'_>)],
) -> Result<Vec<tokio_postgres::Row>, CloudError> {
    s.block(|| {
        s.transaction(async |t, _| {
            let mut rows = Vec::new();
            for (context, sql, params) in statements {
                rows = t.tx.query(*sql, params).await.map_err(pg(context))?;
            }
            Ok(rows)
        })
    })
}

fn pg_put_sign_in(
    s: &PgStore,
    key: &str,
    record: &SignInRecord,
    now: Timestamp,
) -> Result<(), CloudError> {
    let stale = now.0.saturating_sub(SWEEP_AFTER) as i64;
    let (account, expires) = (record.account.as_str(), record.expires.0 as i64);
    pg_run(
        s,
        &[
            (
                "sweeping sign-in links",
                "DELETE FROM sign_in_links WHERE expires <= $1",
                &[&stale],
            ),
            (
                "keeping a sign-in link",
                "INSERT INTO sign_in_links (secret_sha256, account, expires) VALUES ($1, $2, $3)",
                &[&key, &account, &expires],
            ),
        ],
    )
    .map(drop)
}

fn pg_use_sign_in(s: &PgStore, key: &str, now: Timestamp) -> Result<SignIn, CloudError> {
    // One statement: the link as it was, and spent if it was live.
    let rows = pg_run(
        s,
        &[(
            "spending a sign-in link",
            "WITH was AS (SELECT account, expires, used_at FROM sign_in_links
                          WHERE secret_sha256 = $1 FOR UPDATE),
                  spent AS (UPDATE sign_in_links SET used_at = $2
                            WHERE secret_sha256 = $1 AND used_at IS NULL AND expires > $2)
             SELECT account, expires, used_at FROM was",
            &[&key, &(now.0 as i64)],
        )],
    )?;
    let Some(row) = rows.first() else {
        return Ok(SignIn::Unknown);
    };
    let expires: i64 = row.get(1);
    Ok(if row.get::<_, Option<i64>>(2).is_some() {
        SignIn::Used
    } else if now.0 as i64 >= expires {
        SignIn::Expired
    } else {
        SignIn::Accepted(AccountId::new(row.get::<_, &str>(0)))
    })
}

fn pg_put_session(
    s: &PgStore,
    key: &str,
    record: &SessionRecord,
    now: Timestamp,
) -> Result<(), CloudError> {
    let (account, expires) = (record.account.as_str(), record.expires.0 as i64);
    pg_run(
        s,
        &[
            (
                "sweeping sessions",
                "DELETE FROM sessions WHERE expires <= $1",
                &[&(now.0 as i64)],
            ),
            (
                "sweeping used forms",
                "DELETE FROM used_forms WHERE expires <= $1",
                &[&(now.0 as i64)],
            ),
            (
                "keeping a session",
                "INSERT INTO sessions (secret_sha256, account, expires, csrf, flash)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&key, &account, &expires, &record.csrf, &record.flash],
            ),
        ],
    )
    .map(drop)
}

fn pg_session(s: &PgStore, key: &str) -> Result<Option<SessionRecord>, CloudError> {
    let rows = pg_run(
        s,
        &[(
            "reading a session",
            "SELECT account, expires, csrf, flash FROM sessions WHERE secret_sha256 = $1",
            &[&key],
        )],
    )?;
    Ok(rows.first().map(|row| SessionRecord {
        account: AccountId::new(row.get::<_, &str>(0)),
        expires: Timestamp(row.get::<_, i64>(1) as u64),
        csrf: row.get(2),
        flash: row.get(3),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_opens_only_under_its_sessions_secret_and_unaltered() {
        let text = r#"{"link":"https://x/links/3?secret=00112233445566778899aabbccddeeff"}"#;
        let sealed = seal("session-a", text).unwrap();
        assert!(!sealed.contains("00112233"), "{sealed}");
        assert_eq!(unseal("session-a", &sealed).as_deref(), Some(text));
        assert_eq!(unseal("session-b", &sealed), None);
        assert_ne!(
            seal("session-a", text).unwrap(),
            sealed,
            "a fresh salt each time"
        );
        // A flipped bit of the salt, the ciphertext or the tag: none.
        let parts: Vec<&str> = sealed.split(':').collect();
        assert_eq!(parts.len(), 3, "{sealed}");
        let body = parts[2];
        let tag_flipped = format!(
            "{}{}",
            &body[..body.len() - 1],
            if body.ends_with('0') { '1' } else { '0' }
        );
        assert_eq!(
            unseal("session-a", &format!("v2:{}:{tag_flipped}", parts[1])),
            None,
            "the tag"
        );
        for at in 1..3 {
            let mut altered = parts.clone();
            let flipped = format!(
                "{}{}",
                if altered[at].starts_with('0') {
                    '1'
                } else {
                    '0'
                },
                &altered[at][1..]
            );
            altered[at] = &flipped;
            assert_eq!(unseal("session-a", &altered.join(":")), None, "part {at}");
        }
        for junk in [
            "",
            "v1",
            "v1:a:b:c:d",
            r#"{"message":"plain"}"#,
            "v1:s:zz:t",
            "v2",
            "v2:a:b:c",
            "v2:s:zz",
            "v2:s:",
        ] {
            assert_eq!(unseal("session-a", junk), None, "{junk}");
        }
        // Long messages (a refusal's guidance, a long Place id) too.
        let long = "é".repeat(5000);
        assert_eq!(
            unseal("k", &seal("k", &long).unwrap()).as_deref(),
            Some(long.as_str())
        );
    }
}
