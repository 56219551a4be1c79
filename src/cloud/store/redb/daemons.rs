//! Revoking enrolled daemons, and when each was last seen, on redb.

use redb::{ReadableTable, Table};

use super::{DAEMONS, RedbStore, decode, encode};
use crate::cloud::CloudError;
use crate::cloud::model::Timestamp;
use crate::cloud::store::{DaemonRecord, Revocation};

/// [`CloudError::RevokedName`] if `name` is enrolled and revoked.
pub(super) fn refuse_revoked(table: &Table<&str, &[u8]>, name: &str) -> Result<(), CloudError> {
    match get(table, name)? {
        Some(old) if old.revoked_at.is_some() => Err(CloudError::RevokedName { name: name.into() }),
        _ => Ok(()),
    }
}

fn get(table: &Table<&str, &[u8]>, name: &str) -> Result<Option<DaemonRecord>, CloudError> {
    let value = table.get(name)?;
    value
        .map(|v| decode("daemons", name, v.value()))
        .transpose()
}

fn put(table: &mut Table<&str, &[u8]>, record: &DaemonRecord) -> Result<(), CloudError> {
    let bytes = encode(record)?;
    table.insert(record.name.as_str(), bytes.as_slice())?;
    Ok(())
}

impl RedbStore {
    pub(in crate::cloud::store) fn revoke_daemon(
        &self,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<Revocation>, CloudError> {
        self.write(|txn| {
            let mut table = txn.open_table(DAEMONS)?;
            let Some(mut record) = get(&table, name)? else {
                return Ok(None);
            };
            let changed = record.revoked_at.is_none();
            if changed {
                record.revoked_at = Some(now);
                put(&mut table, &record)?;
            }
            Ok(Some(Revocation { record, changed }))
        })
    }

    pub(in crate::cloud::store) fn revoked_daemons(&self) -> Result<Vec<String>, CloudError> {
        let all: Vec<DaemonRecord> = self.daemons()?;
        Ok(all
            .into_iter()
            .filter(|d| d.revoked_at.is_some())
            .map(|d| d.name)
            .collect())
    }

    pub(in crate::cloud::store) fn daemons_seen(
        &self,
        names: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>, CloudError> {
        self.write(|txn| {
            let mut table = txn.open_table(DAEMONS)?;
            let mut revoked = Vec::new();
            for name in names {
                match get(&table, name)? {
                    Some(record) if record.revoked_at.is_some() => revoked.push(name.clone()),
                    Some(mut record) => {
                        record.last_contact = Some(now);
                        put(&mut table, &record)?;
                    }
                    None => {}
                }
            }
            Ok(revoked)
        })
    }
}
