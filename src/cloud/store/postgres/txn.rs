//! How one PostgreSQL transaction reads and writes for the operations:
//! only the rows an event is about.

use super::{PgTxn, db};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, Place, PlaceId, Timestamp};
use crate::cloud::store::pg_rows::{self, GRANT_COLUMNS};
use crate::cloud::store::{PlaceTxn, ProcessorRecord, StoredResult};
use crate::processor::{Mac, Serial};
use crate::proto::EventId;

/// The grants of the accounts `$2` and the homeowner's in Place `$1`
/// ([`PlaceTxn::place_for`]).
pub(super) fn grants_for_rules() -> String {
    format!(
        "SELECT {GRANT_COLUMNS} FROM unnest($2::text[]) AS wanted (who)
             CROSS JOIN LATERAL (SELECT {GRANT_COLUMNS} FROM grants
                 WHERE place = $1 AND account = wanted.who LIMIT 1) AS g
         UNION
         SELECT {GRANT_COLUMNS} FROM grants WHERE place = $1 AND role = 'homeowner'"
    )
}

impl PlaceTxn for PgTxn<'_> {
    async fn is_deleted(&mut self, place: &PlaceId) -> Result<bool, CloudError> {
        let stmt = self
            .tx
            .prepare_cached("SELECT 1 FROM deleted_places WHERE id = $1")
            .await
            .map_err(db("reading deleted Places"))?;
        let row = self
            .tx
            .query_opt(&stmt, &[&place.0])
            .await
            .map_err(db("reading deleted Places"))?;
        Ok(row.is_some())
    }

    async fn place_for(
        &mut self,
        id: &PlaceId,
        accounts: &[&AccountId],
        one_other_live: bool,
        now: Timestamp,
    ) -> Result<Option<Place>, CloudError> {
        let Some(mut place) = self.place_row(id).await? else {
            return Ok(None);
        };
        let mut wanted: Vec<&str> = accounts.iter().map(|a| a.as_str()).collect();
        let creator = place.share_link.as_ref().map(|l| l.by.clone());
        if let Some(creator) = &creator {
            wanted.push(creator.as_str());
        }
        // The grants of the accounts named, and the homeowner's (indexed):
        // never the Place's whole list. Each account is one lookup of the
        // whole primary key (LATERAL … LIMIT 1 is never flattened into a
        // join): `account = ANY($2)` let a planner without statistics (a
        // Place filled since the last ANALYZE) scan every grant of the
        // Place and filter, which bench/cloud measured (56 pages per
        // event at 1,000 grants; 37 with this, at any size).
        self.add_grants(&mut place, &grants_for_rules(), &[&id.0, &wanted])
            .await?;
        if one_other_live {
            let loaded: Vec<String> = place.grants.keys().map(|a| a.as_str().to_owned()).collect();
            let sql = format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE place = $1 AND NOT account = ANY($2)
                 AND (expires IS NULL OR expires > $3) LIMIT 1"
            );
            self.add_grants(&mut place, &sql, &[&id.0, &loaded, &(now.0 as i64)])
                .await?;
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
        let Some(next) = next else {
            // The grants and processor links go with it (ON DELETE CASCADE).
            self.tx
                .execute("DELETE FROM places WHERE id = $1", &[&id.0])
                .await
                .map_err(db("deleting a Place"))?;
            self.tx
                .execute(
                    "INSERT INTO deleted_places (id, deleted_at) VALUES ($1, $2)",
                    &[&id.0, &(now.0 as i64)],
                )
                .await
                .map_err(db("deleting a Place"))?;
            return Ok(());
        };
        let row_changed = before.is_none_or(|b| {
            b.remote_services != next.remote_services
                || b.project_key != next.project_key
                || b.links_issued != next.links_issued
                || b.share_link != next.share_link
        });
        if row_changed {
            self.write_place_row(next).await?;
        }
        let empty = Default::default();
        let old_grants = before.map_or(&empty, |b| &b.grants);
        for (account, grant) in &next.grants {
            if old_grants.get(account) != Some(grant) {
                self.upsert_grant(id, account, grant).await?;
            }
        }
        for account in old_grants.keys().filter(|a| !next.grants.contains_key(*a)) {
            let stmt = self
                .tx
                .prepare_cached("DELETE FROM grants WHERE place = $1 AND account = $2")
                .await
                .map_err(db("revoking a grant"))?;
            self.tx
                .execute(&stmt, &[&id.0, &account.as_str()])
                .await
                .map_err(db("revoking a grant"))?;
        }
        let old_processors = before.map(|b| &b.processors);
        for serial in &next.processors {
            if old_processors.is_none_or(|p| !p.contains(serial)) {
                self.tx
                    .execute(
                        "INSERT INTO place_processors (place, serial) VALUES ($1, $2)",
                        &[&id.0, &i64::from(serial.0)],
                    )
                    .await
                    .map_err(db("activating a processor"))?;
            }
        }
        Ok(())
    }

    async fn processor(&mut self, serial: Serial) -> Result<Option<ProcessorRecord>, CloudError> {
        let stmt = self
            .tx
            .prepare_cached("SELECT place, mac, ca_der FROM processors WHERE serial = $1")
            .await
            .map_err(db("reading a processor"))?;
        let serial = i64::from(serial.0);
        let row = self
            .tx
            .query_opt(&stmt, &[&serial])
            .await
            .map_err(db("reading a processor"))?;
        row.map(|row| pg_rows::processor_row(serial, &row))
            .transpose()
    }

    async fn processor_by_mac(&mut self, mac: Mac) -> Result<Option<ProcessorRecord>, CloudError> {
        let row = self
            .tx
            .query_opt(
                "SELECT place, mac, ca_der, serial FROM processors WHERE mac = $1
                 ORDER BY serial LIMIT 1",
                &[&mac.0.as_slice()],
            )
            .await
            .map_err(db("reading a processor"))?;
        row.map(|row| pg_rows::processor_row(row.get(3), &row))
            .transpose()
    }

    async fn put_processor(&mut self, record: &ProcessorRecord) -> Result<(), CloudError> {
        self.tx
            .execute(
                "INSERT INTO processors (serial, place, mac, ca_der) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (serial) DO UPDATE SET place = $2, mac = $3, ca_der = $4",
                &[
                    &i64::from(record.serial.0),
                    &record.place.0,
                    &record.mac.as_slice(),
                    &record.ca_der,
                ],
            )
            .await
            .map_err(db("registering a processor"))?;
        Ok(())
    }

    async fn is_spent(&mut self, serial: Serial, key: &[u8]) -> Result<bool, CloudError> {
        let row = self
            .tx
            .query_opt(
                "SELECT 1 FROM spent_proofs WHERE serial = $1 AND proof_key = $2",
                &[&i64::from(serial.0), &key],
            )
            .await
            .map_err(db("reading spent proofs"))?;
        Ok(row.is_some())
    }

    async fn spend(
        &mut self,
        serial: Serial,
        key: &[u8],
        now: Timestamp,
    ) -> Result<(), CloudError> {
        self.tx
            .execute(
                "INSERT INTO spent_proofs (serial, proof_key, spent_at) VALUES ($1, $2, $3)",
                &[&i64::from(serial.0), &key, &(now.0 as i64)],
            )
            .await
            .map_err(db("spending a proof"))?;
        Ok(())
    }

    async fn event(
        &mut self,
        account: &AccountId,
        id: &EventId,
    ) -> Result<Option<StoredResult>, CloudError> {
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT outcome, rule, why, link_number FROM events
                 WHERE account = $1 AND daemon = $2 AND seq = $3",
            )
            .await
            .map_err(db("reading an event"))?;
        let row = self
            .tx
            .query_opt(&stmt, &[&account.as_str(), &id.daemon, &(id.seq as i64)])
            .await
            .map_err(db("reading an event"))?;
        row.map(|row| pg_rows::result_row(&format!("{id:?}"), &row))
            .transpose()
    }

    async fn put_event(
        &mut self,
        account: &AccountId,
        id: &EventId,
        result: &StoredResult,
        now: Timestamp,
    ) -> Result<(), CloudError> {
        let (outcome, rule, why, number) = pg_rows::result_columns(result);
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO events (account, daemon, seq, outcome, rule, why, link_number,
                     applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(db("storing an event"))?;
        self.tx
            .execute(
                &stmt,
                &[
                    &account.as_str(),
                    &id.daemon,
                    &(id.seq as i64),
                    &outcome,
                    &rule,
                    &why,
                    &number,
                    &(now.0 as i64),
                ],
            )
            .await
            .map_err(db("storing an event"))?;
        Ok(())
    }

    async fn record(
        &mut self,
        place: &PlaceId,
        entry: &crate::cloud::store::timeline::TimelineEntry,
    ) -> Result<(), CloudError> {
        crate::cloud::store::timeline::pg_record(&self.tx, place, entry).await
    }

    async fn processor_report(
        &mut self,
        serial: Serial,
    ) -> Result<Option<crate::cloud::store::reports::ProcessorReport>, CloudError> {
        crate::cloud::store::reports::pg_get(&self.tx, serial).await
    }

    async fn put_processor_report(
        &mut self,
        report: &crate::cloud::store::reports::ProcessorReport,
    ) -> Result<(), CloudError> {
        crate::cloud::store::reports::pg_put(&self.tx, report).await
    }
}

impl PgTxn<'_> {
    /// Inserts or updates the `places` row; the share link's secret is
    /// its digest already ([`crate::cloud::store::apply_from`]).
    async fn write_place_row(&mut self, next: &Place) -> Result<(), CloudError> {
        let link = next.share_link.as_ref();
        let digest = link.map(|l| l.link.secret.0.as_str());
        let number = link.map(|l| l.link.number as i64);
        let by = link.map(|l| l.by.as_str());
        let duration = link.map(|l| pg_rows::duration_text(l.duration));
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO places (id, remote_services, project_key, links_issued,
                     link_number, link_by, link_duration, link_secret_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET remote_services = $2, project_key = $3,
                     links_issued = $4, link_number = $5, link_by = $6, link_duration = $7,
                     link_secret_sha256 = $8",
            )
            .await
            .map_err(db("writing a Place"))?;
        self.tx
            .execute(
                &stmt,
                &[
                    &next.id.0,
                    &next.remote_services,
                    &next.project_key.0,
                    &(next.links_issued as i64),
                    &number,
                    &by,
                    &duration,
                    &digest,
                ],
            )
            .await
            .map_err(db("writing a Place"))?;
        Ok(())
    }
}
