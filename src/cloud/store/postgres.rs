//! The PostgreSQL backend: any number of `cloud serve` nodes and operator
//! commands on one database.
//!
//! - Every operation is one SERIALIZABLE transaction. A serialization
//!   failure (SQLSTATE 40001, or a deadlock, 40P01; at any statement or at
//!   COMMIT) reruns the whole operation with a capped, jittered backoff;
//!   after [`MAX_TRIES`] it fails with [`CloudError::Busy`] (the relay
//!   answers `busy`, and the daemon resends later). The operations do
//!   nothing but read and write the transaction, so a rerun is safe; a
//!   relayed link's secret is derived from the event's id, not drawn.
//! - An event reads only the rows the rules need ([`super::PlaceTxn::place_for`])
//!   and writes only the rows that changed, so its cost does not grow
//!   with the Place's grants.
//! - Expiry is decided by the database's clock: `now()` of the
//!   transaction, so nodes with skewed clocks agree.
//! - The schema is versioned ([`migrate`]): every connection applies what
//!   is missing, and refuses a database newer than this build.
//!
//! The store's methods are synchronous, like the redb backend's: each
//! runs its transaction on the store's own runtime from a scoped thread,
//! so it can be called from async code (the CLI) and from blocking tasks
//! (the server) alike.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use super::link_key::{LinkKey, LinkKeys};
use super::pg_rows::{self, GRANT_COLUMNS, PLACE_COLUMNS};
use super::{DaemonRecord, EventRecord, PlaceTxn, ProcessorRecord, Reply};
use crate::cloud::model::{AccountId, Place, PlaceId, Timestamp};
use crate::cloud::refusal::Refusal;
use crate::cloud::rules::{Command, Event};
use crate::cloud::{CloudError, ProjectKey};
use crate::processor::Serial;
use crate::proto::{ErrorFrame, PlaceStatus, RelayEvent, StatusQuery};

/// How many times a transaction runs before the caller is told `busy`.
pub const MAX_TRIES: u32 = 16;
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// The migrations, in order; the last one's number is the schema this
/// build speaks.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../migrations/0001_places.sql")),
    (2, include_str!("../../../migrations/0002_portal.sql")),
    (
        3,
        include_str!("../../../migrations/0003_daemon_contact.sql"),
    ),
    (4, include_str!("../../../migrations/0004_timeline.sql")),
    (
        5,
        include_str!("../../../migrations/0005_no_link_secrets.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/0006_processor_reports.sql"),
    ),
    (7, include_str!("../../../migrations/0007_portal_forms.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Any number fits: only one migration runs at a time on a database.
const MIGRATION_LOCK: i64 = 0x68_616e_646f_6666; // "handoff"

/// The store over a PostgreSQL database.
pub struct PgStore {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
    retries: AtomicU64,
    target: String,
    links: LinkKeys,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropped from async code too (the CLI): never wait here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One transaction, as the operations see it.
pub(crate) struct PgTxn<'a> {
    pub(super) tx: deadpool_postgres::Transaction<'a>,
}

impl CloudError {
    /// A conflict another try may not have: SQLSTATE 40001 or 40P01.
    fn is_serialization_failure(&self) -> bool {
        match self {
            CloudError::Database { source, .. } => source.code().is_some_and(|c| {
                *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
            }),
            _ => false,
        }
    }
}

pub(super) fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> CloudError {
    move |source| CloudError::Database {
        context: context.into(),
        source,
    }
}

fn pool_error(target: &str, e: deadpool_postgres::PoolError) -> CloudError {
    match e {
        deadpool_postgres::PoolError::Backend(source) => CloudError::Database {
            context: format!("cannot reach {target}"),
            source,
        },
        other => CloudError::Failed(format!("cannot reach the cloud database {target}: {other}")),
    }
}

impl PgStore {
    /// Connects to `url` (libpq style: `postgresql://user:pw@host/db`,
    /// `postgresql://user@/db?host=/run/postgresql`, or `host=… dbname=…`)
    /// and migrates the database to this build's schema.
    ///
    /// # Errors
    /// [`CloudError`] when the URL is not one, asks for TLS without a CA
    /// ([`tls`]), the database cannot be reached, refuses the login or
    /// shows a certificate the CA did not sign, or is newer than this
    /// build ([`CloudError::SchemaTooNew`]).
    pub fn connect(url: &str) -> Result<PgStore, CloudError> {
        let (url, wanted) = tls::split(url)?;
        let mut config =
            tokio_postgres::Config::from_str(&url).map_err(db("the --database URL"))?;
        // SERIALIZABLE takes a predicate lock on a whole table for a
        // sequential scan, which the planner picks for small tables: then
        // transactions on different Places conflict with each other. An
        // index scan locks only what it read (PostgreSQL's manual,
        // "Serializable Isolation Level", on reducing serialization
        // failures).
        let options = format!(
            "{} -c enable_seqscan=off",
            config.get_options().unwrap_or("")
        );
        config.options(options.trim());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let target = describe(&config);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match wanted {
            tls::Wanted::Plain => Manager::from_config(config, NoTls, manager_config),
            tls::Wanted::Tls { root, check_name } => Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls::client_config(
                    &root, check_name,
                )?),
                manager_config,
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| CloudError::Failed(format!("the cloud database pool: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("handoff-pg")
            .enable_all()
            .build()
            .map_err(CloudError::io("cannot start the database runtime"))?;
        let store = PgStore {
            pool,
            runtime: Some(runtime),
            retries: AtomicU64::new(0),
            target,
            links: LinkKeys::default(),
        };
        store.block(|| store.migrate())?;
        Ok(store)
    }

    /// Share-link secrets of relayed events derived from the CA in a data
    /// directory ([`LinkKey`]); without it this store relays no batch.
    pub(super) fn with_link_keys(mut self, links: LinkKeys) -> PgStore {
        self.links = links;
        self
    }

    pub(super) fn link_keys(&self) -> &LinkKeys {
        &self.links
    }

    /// The database, for people (no password).
    pub fn describe(&self) -> &str {
        &self.target
    }

    pub fn serialization_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `op`'s future to its end on the store's runtime, from a
    /// scoped thread: blocking the caller is what a sync method does, and
    /// a runtime cannot be entered from inside another's task.
    pub(super) fn block<F, Fut, T>(&self, op: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        let Some(runtime) = &self.runtime else {
            unreachable!("the runtime lives until the store is dropped")
        };
        std::thread::scope(|s| match s.spawn(|| runtime.block_on(op())).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`]; returns (was, is).
    async fn migrate(&self) -> Result<(i32, i32), CloudError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| pool_error(&self.target, e))?;
        // Up to date: nothing to lock or create (a node's role may have
        // no right to change the schema, only its rows).
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(db("reading the schema version"))?
            .get(0);
        if exists {
            let is: i32 = client
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    &[],
                )
                .await
                .map_err(db("reading the schema version"))?
                .get(0);
            if is == SCHEMA_VERSION {
                return Ok((is, is));
            }
        }
        let tx = client.transaction().await.map_err(db("migrating"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db("migrating"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db("migrating"))?;
        let was: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(db("migrating"))?
            .get(0);
        if was > SCHEMA_VERSION {
            return Err(CloudError::SchemaTooNew {
                found: was,
                known: SCHEMA_VERSION,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > was) {
            tx.batch_execute(sql).await.map_err(db("migrating"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(db("migrating"))?;
        }
        tx.commit().await.map_err(db("migrating"))?;
        Ok((was, SCHEMA_VERSION))
    }

    /// `handoff cloud migrate`: what [`PgStore::connect`] did, told.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn schema_version(&self) -> Result<i32, CloudError> {
        self.block(|| async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| pool_error(&self.target, e))?;
            let row = client
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations",
                    &[],
                )
                .await
                .map_err(db("reading the schema version"))?;
            Ok(row.get(0))
        })
    }

    /// Runs `body` in one SERIALIZABLE transaction, rerun on a
    /// serialization failure (see the module's doc).
    pub(super) async fn transaction<T>(
        &self,
        mut body: impl AsyncFnMut(&mut PgTxn<'_>, Timestamp) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| pool_error(&self.target, e))?;
        let mut backoff = FIRST_BACKOFF;
        for _ in 0..MAX_TRIES {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .await
                .map_err(db("starting a transaction"))?;
            let mut txn = PgTxn { tx };
            let out = match txn.db_now().await {
                Ok(now) => body(&mut txn, now).await,
                Err(e) => Err(e),
            };
            let out = match out {
                Ok(out) => txn
                    .tx
                    .commit()
                    .await
                    .map(|()| out)
                    .map_err(db("committing")),
                // Dropping the transaction rolls it back.
                Err(e) => Err(e),
            };
            match out {
                Err(e) if e.is_serialization_failure() => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let jitter = fastrand::u64(0..=backoff.as_micros() as u64);
                    tokio::time::sleep(backoff / 2 + Duration::from_micros(jitter / 2)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                out => return out,
            }
        }
        Err(CloudError::Busy { tries: MAX_TRIES })
    }

    pub(super) fn execute(
        &self,
        cmd: &Command,
        _now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.block(|| self.transaction(async |t, now| super::apply(t, cmd, now).await))
    }

    pub(super) fn create_place(
        &self,
        cmd: &Command,
        processor: Option<&ProcessorRecord>,
        _now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.block(|| {
            self.transaction(async |t, now| super::create_place(t, cmd, processor, now).await)
        })
    }

    pub(super) fn activate_processor(
        &self,
        record: &ProcessorRecord,
        key: &ProjectKey,
        _now: Timestamp,
    ) -> Result<Result<Vec<Event>, Refusal>, CloudError> {
        self.block(|| self.transaction(async |t, now| super::activate(t, record, key, now).await))
    }

    pub(super) fn relay(
        &self,
        (account, site): (&AccountId, Option<&str>),
        events: &[RelayEvent],
        key: &LinkKey,
        _now: Timestamp,
    ) -> Result<Vec<Reply>, CloudError> {
        self.block(|| {
            self.transaction(async |t, now| {
                let mut replies = Vec::with_capacity(events.len());
                for event in events {
                    replies.push(super::relay_event(t, (account, site), event, key, now).await?);
                }
                Ok(replies)
            })
        })
    }

    pub(super) fn claim(
        &self,
        account: &AccountId,
        claim: &crate::proto::Claimed,
        _now: Timestamp,
    ) -> Result<Result<(), Refusal>, CloudError> {
        self.block(|| {
            self.transaction(async |t, now| {
                let operator = (account, None);
                super::claim_in(t, operator, claim, super::Possession::Operator, now).await
            })
        })
    }

    pub(super) fn status(
        &self,
        account: &AccountId,
        query: &StatusQuery,
        _now: Timestamp,
    ) -> Result<Result<PlaceStatus, ErrorFrame>, CloudError> {
        self.block(|| {
            self.transaction(async |t, now| super::status_in(t, account, query, now).await)
        })
    }

    pub(super) fn place(&self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        self.block(|| self.transaction(async |t, _| t.whole_place(id).await))
    }

    pub(super) fn places(&self) -> Result<Vec<Place>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let ids =
                    t.tx.query("SELECT id FROM places ORDER BY id", &[])
                        .await
                        .map_err(db("listing Places"))?;
                let mut out = Vec::with_capacity(ids.len());
                for row in ids {
                    let id = PlaceId(row.get(0));
                    out.extend(t.whole_place(&id).await?);
                }
                Ok(out)
            })
        })
    }

    /// The Places `account` has a live grant in, in id order: `skip`
    /// passed over, at most `take` read whole; and how many in all.
    pub(super) fn account_places(
        &self,
        account: &AccountId,
        now: Timestamp,
        skip: usize,
        take: usize,
    ) -> Result<(Vec<Place>, usize), CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let live = "FROM grants WHERE account = $1 AND (expires IS NULL OR expires > $2)";
                let (who, at) = (account.as_str(), now.0 as i64);
                let total: i64 =
                    t.tx.query_one(&format!("SELECT count(*) {live}"), &[&who, &at])
                        .await
                        .map_err(db("counting an account's Places"))?
                        .get(0);
                let ids =
                    t.tx.query(
                        &format!("SELECT place {live} ORDER BY place OFFSET $3 LIMIT $4"),
                        &[
                            &who,
                            &at,
                            &(skip as i64),
                            &(take.min(i64::MAX as usize) as i64),
                        ],
                    )
                    .await
                    .map_err(db("listing an account's Places"))?;
                let mut out = Vec::with_capacity(ids.len());
                for row in ids {
                    out.extend(t.whole_place(&PlaceId(row.get(0))).await?);
                }
                Ok((out, total as usize))
            })
        })
    }

    pub(super) fn processor(&self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        self.block(|| self.transaction(async |t, _| t.processor(serial).await))
    }

    pub(super) fn processors(&self) -> Result<Vec<ProcessorRecord>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let rows =
                    t.tx.query(
                        "SELECT place, mac, ca_der, serial FROM processors ORDER BY serial",
                        &[],
                    )
                    .await
                    .map_err(db("listing processors"))?;
                rows.iter()
                    .map(|row| pg_rows::processor_row(row.get(3), row))
                    .collect()
            })
        })
    }

    pub(super) fn add_daemon(&self, record: &DaemonRecord) -> Result<(), CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                // A revoked name stays revoked: its certificates are refused.
                let written =
                    t.tx.execute(
                        "INSERT INTO daemons (name, account, enrolled_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET account = $2, enrolled_at = $3,
                         last_contact = NULL
                     WHERE daemons.revoked_at IS NULL",
                        &[
                            &record.name,
                            &record.account.as_str(),
                            &(record.enrolled_at.0 as i64),
                        ],
                    )
                    .await
                    .map_err(db("enrolling a daemon"))?;
                if written == 0 {
                    return Err(CloudError::RevokedName {
                        name: record.name.clone(),
                    });
                }
                Ok(())
            })
        })
    }

    pub(super) fn daemons(&self) -> Result<Vec<DaemonRecord>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let rows =
                    t.tx.query(
                        &format!("SELECT {} FROM daemons ORDER BY name", daemons::COLUMNS),
                        &[],
                    )
                    .await
                    .map_err(db("listing daemons"))?;
                Ok(rows.iter().map(daemons::record).collect())
            })
        })
    }

    pub(super) fn event_count(&self) -> Result<u64, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let row =
                    t.tx.query_one("SELECT count(*) FROM events", &[])
                        .await
                        .map_err(db("counting events"))?;
                Ok(row.get::<_, i64>(0) as u64)
            })
        })
    }

    pub(super) fn events(&self) -> Result<Vec<EventRecord>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let rows =
                    t.tx.query(
                        "SELECT outcome, rule, why, link_number, account, daemon, seq \
                         FROM events ORDER BY account, daemon, seq",
                        &[],
                    )
                    .await
                    .map_err(db("listing events"))?;
                rows.iter()
                    .map(|row| {
                        let (account, daemon, seq): (String, String, i64) =
                            (row.get(4), row.get(5), row.get(6));
                        Ok(EventRecord {
                            result: pg_rows::result_row(&format!("{account}/{daemon}/{seq}"), row)?,
                            account: AccountId::new(&account),
                            daemon,
                            seq: seq as u64,
                        })
                    })
                    .collect()
            })
        })
    }
}

/// host(s) and database, for messages: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "{} on {}{}",
        config.get_dbname().unwrap_or("(default database)"),
        if hosts.is_empty() {
            "the default socket".to_owned()
        } else {
            hosts.join(",")
        },
        config
            .get_user()
            .map(|u| format!(" as {u}"))
            .unwrap_or_default()
    )
}

impl PgTxn<'_> {
    /// The database's clock, in the rules' seconds.
    async fn db_now(&mut self) -> Result<Timestamp, CloudError> {
        let row = self
            .tx
            .query_one("SELECT extract(epoch FROM now())::bigint", &[])
            .await
            .map_err(db("reading the clock"))?;
        Ok(Timestamp(row.get::<_, i64>(0).max(0) as u64))
    }

    async fn place_row(&mut self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        let sql = format!("SELECT {PLACE_COLUMNS} FROM places WHERE id = $1");
        let stmt = self
            .tx
            .prepare_cached(&sql)
            .await
            .map_err(db("reading a Place"))?;
        let row = self
            .tx
            .query_opt(&stmt, &[&id.0])
            .await
            .map_err(db("reading a Place"))?;
        let Some(row) = row else { return Ok(None) };
        let mut place = pg_rows::place_row(&row)?;
        let stmt = self
            .tx
            .prepare_cached("SELECT serial FROM place_processors WHERE place = $1")
            .await
            .map_err(db("reading a Place"))?;
        for row in self
            .tx
            .query(&stmt, &[&id.0])
            .await
            .map_err(db("reading a Place"))?
        {
            place.processors.insert(Serial(row.get::<_, i64>(0) as u32));
        }
        Ok(Some(place))
    }

    async fn add_grants(
        &mut self,
        place: &mut Place,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), CloudError> {
        let stmt = self
            .tx
            .prepare_cached(sql)
            .await
            .map_err(db("reading grants"))?;
        for row in self
            .tx
            .query(&stmt, params)
            .await
            .map_err(db("reading grants"))?
        {
            let (account, grant) = pg_rows::grant_row(&place.id, &row)?;
            place.grants.insert(account, grant);
        }
        Ok(())
    }

    /// The Place with every grant (the reads of the operator and `copy`).
    async fn whole_place(&mut self, id: &PlaceId) -> Result<Option<Place>, CloudError> {
        let Some(mut place) = self.place_row(id).await? else {
            return Ok(None);
        };
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE place = $1");
        self.add_grants(&mut place, &sql, &[&id.0]).await?;
        Ok(Some(place))
    }

    async fn upsert_grant(
        &mut self,
        place: &PlaceId,
        account: &AccountId,
        grant: &crate::cloud::Grant,
    ) -> Result<(), CloudError> {
        let (role, expires, source, by) = pg_rows::grant_columns(grant);
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO grants (place, account, role, expires, source, source_by)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (place, account) DO UPDATE SET role = $3, expires = $4,
                     source = $5, source_by = $6",
            )
            .await
            .map_err(db("writing a grant"))?;
        self.tx
            .execute(
                &stmt,
                &[&place.0, &account.as_str(), &role, &expires, &source, &by],
            )
            .await
            .map_err(db("writing a grant"))?;
        Ok(())
    }
}

mod daemons;
mod import;
mod tls;
mod txn;

#[cfg(test)]
mod tests;
