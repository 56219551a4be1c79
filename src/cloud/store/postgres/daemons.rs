//! Revoking enrolled daemons, and when each was last seen, on PostgreSQL.

use tokio_postgres::Row;

use super::{PgStore, db};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, Timestamp};
use crate::cloud::store::{DaemonRecord, Revocation};

/// The columns [`record`] reads, in its order.
pub(super) const COLUMNS: &str = "name, account, enrolled_at, revoked_at, last_contact";

pub(super) fn record(row: &Row) -> DaemonRecord {
    let time = |i: usize| row.get::<_, Option<i64>>(i).map(|t| Timestamp(t as u64));
    DaemonRecord {
        name: row.get(0),
        account: AccountId::new(row.get::<_, &str>(1)),
        enrolled_at: Timestamp(row.get::<_, i64>(2) as u64),
        revoked_at: time(3),
        last_contact: time(4),
    }
}

impl PgStore {
    pub(in crate::cloud::store) fn revoke_daemon(
        &self,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<Revocation>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                // Only a daemon not revoked yet changes: a second revoke
                // keeps the first time, and says it changed nothing.
                let row =
                    t.tx.query_opt(
                        &format!(
                            "UPDATE daemons SET revoked_at = $2
                             WHERE name = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
                        ),
                        &[&name, &(now.0 as i64)],
                    )
                    .await
                    .map_err(db("revoking a daemon"))?;
                if let Some(row) = row {
                    return Ok(Some(Revocation {
                        record: record(&row),
                        changed: true,
                    }));
                }
                let row =
                    t.tx.query_opt(
                        &format!("SELECT {COLUMNS} FROM daemons WHERE name = $1"),
                        &[&name],
                    )
                    .await
                    .map_err(db("revoking a daemon"))?;
                Ok(row.as_ref().map(|row| Revocation {
                    record: record(row),
                    changed: false,
                }))
            })
        })
    }

    pub(in crate::cloud::store) fn revoked_daemons(&self) -> Result<Vec<String>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                let rows =
                    t.tx.query(
                        "SELECT name FROM daemons WHERE revoked_at IS NOT NULL ORDER BY name",
                        &[],
                    )
                    .await
                    .map_err(db("listing revoked daemons"))?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
        })
    }

    pub(in crate::cloud::store) fn daemons_seen(
        &self,
        names: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>, CloudError> {
        self.block(|| {
            self.transaction(async |t, _| {
                t.tx.execute(
                    "UPDATE daemons SET last_contact = $2
                     WHERE name = ANY($1) AND revoked_at IS NULL",
                    &[&names, &(now.0 as i64)],
                )
                .await
                .map_err(db("recording when daemons were seen"))?;
                let rows =
                    t.tx.query(
                        "SELECT name FROM daemons WHERE name = ANY($1) AND revoked_at IS NOT NULL
                         ORDER BY name",
                        &[&names],
                    )
                    .await
                    .map_err(db("reading revoked daemons"))?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
        })
    }
}
