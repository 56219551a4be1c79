//! `cloud copy`'s writing side: a whole dump in one transaction.

use super::{PgStore, db};
use crate::cloud::CloudError;
use crate::cloud::store::PlaceTxn;

impl PgStore {
    /// Writes a whole [`crate::cloud::store::copy::Dump`] in one transaction, into a
    /// database that holds no Place, processor or event yet.
    pub(in crate::cloud::store) fn import(
        &self,
        dump: &crate::cloud::store::copy::Dump,
    ) -> Result<(), CloudError> {
        self.block(|| {
            self.transaction(async |t, now| {
                let row =
                    t.tx.query_one(
                        "SELECT (SELECT count(*) FROM places) + (SELECT count(*) FROM processors)
                              + (SELECT count(*) FROM events)
                              + (SELECT count(*) FROM deleted_places)",
                        &[],
                    )
                    .await
                    .map_err(db("checking the target is empty"))?;
                if row.get::<_, i64>(0) > 0 {
                    return Err(CloudError::Failed(format!(
                        "{} already holds a cloud: copy into an empty database",
                        self.target
                    )));
                }
                for place in &dump.places {
                    t.save_place(None, Some(place), &place.id, now).await?;
                }
                for record in &dump.processors {
                    t.put_processor(record).await?;
                }
                for (id, at) in &dump.deleted_places {
                    t.tx.execute(
                        "INSERT INTO deleted_places (id, deleted_at) VALUES ($1, $2)",
                        &[&id.0, &(at.0 as i64)],
                    )
                    .await
                    .map_err(db("copying deleted Places"))?;
                }
                for (place, entry) in &dump.timeline {
                    t.record(place, entry).await?;
                }
                for report in &dump.reports {
                    t.put_processor_report(report).await?;
                }
                for (serial, key, at) in &dump.spent_proofs {
                    t.spend(*serial, key, *at).await?;
                }
                for e in &dump.events {
                    let id = crate::proto::EventId {
                        daemon: e.daemon.clone(),
                        seq: e.seq,
                    };
                    t.put_event(&e.account, &id, &e.result, now).await?;
                }
                for d in &dump.daemons {
                    t.tx.execute(
                        "INSERT INTO daemons (name, account, enrolled_at, revoked_at, last_contact)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &d.name,
                            &d.account.as_str(),
                            &(d.enrolled_at.0 as i64),
                            &d.revoked_at.map(|t| t.0 as i64),
                            &d.last_contact.map(|t| t.0 as i64),
                        ],
                    )
                    .await
                    .map_err(db("copying daemons"))?;
                }
                Ok(())
            })
        })
    }
}
