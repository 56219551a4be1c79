//! The grants by account: `grants` is keyed by Place then account, so an
//! account's Places (the portal's `/`, `cloud place list --as`) would be
//! a pass over every grant of the cloud. `grants_by_account` holds the
//! same keys the other way round, (account, Place) → (), written in the
//! transaction that writes or removes the grant: [`Grants`] is the only
//! writer of either table.
//!
//! A file written before the index, or by a build that did not keep it,
//! gets it built when opened, in the open's transaction: the two tables'
//! lengths (which redb keeps, so comparing them reads no record) differ.

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

use super::{GRANTS, encode, prefixed};
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, Grant, PlaceId};

/// (account, Place id) → (): one row per row of [`GRANTS`].
pub(super) const BY_ACCOUNT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("grants_by_account");

/// The grant tables of one write transaction, written together.
pub(super) struct Grants<'txn> {
    pub(super) grants: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    by_account: Table<'txn, (&'static str, &'static str), ()>,
}

impl<'txn> Grants<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Grants<'txn>, CloudError> {
        Ok(Grants {
            grants: txn.open_table(GRANTS)?,
            by_account: txn.open_table(BY_ACCOUNT)?,
        })
    }

    pub(super) fn put(
        &mut self,
        place: &PlaceId,
        account: &AccountId,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let (place, account) = (place.0.as_str(), account.as_str());
        self.grants
            .insert((place, account), encode(grant)?.as_slice())?;
        self.by_account.insert((account, place), ())?;
        Ok(())
    }

    pub(super) fn remove(&mut self, place: &PlaceId, account: &str) -> Result<(), CloudError> {
        self.grants.remove((place.0.as_str(), account))?;
        self.by_account.remove((account, place.0.as_str()))?;
        Ok(())
    }

    /// Removes every grant of `place`.
    pub(super) fn remove_place(&mut self, place: &PlaceId) -> Result<(), CloudError> {
        let accounts: Vec<String> = self
            .grants
            .range(prefixed(&place.0))?
            .map(|entry| entry.map(|(k, _)| k.value().1.to_owned()))
            .collect::<Result<_, _>>()?;
        for account in &accounts {
            self.remove(place, account)?;
        }
        Ok(())
    }
}

/// Builds the index from [`GRANTS`] unless it has as many rows; returns
/// how many it holds when it was built, else 0.
pub(super) fn build(txn: &WriteTransaction) -> Result<usize, CloudError> {
    let grants = txn.open_table(GRANTS)?;
    if txn.open_table(BY_ACCOUNT)?.len()? == grants.len()? {
        return Ok(0);
    }
    txn.delete_table(BY_ACCOUNT)?;
    let mut by_account = txn.open_table(BY_ACCOUNT)?;
    for entry in grants.iter()? {
        let (k, _) = entry?;
        let (place, account) = k.value();
        by_account.insert((account, place), ())?;
    }
    Ok(by_account.len()? as usize)
}

/// The Places `account` has a grant in, live or not, in id order.
pub(super) fn places_of(
    table: &impl ReadableTable<(&'static str, &'static str), ()>,
    account: &AccountId,
) -> Result<Vec<PlaceId>, CloudError> {
    table
        .range(prefixed(account.as_str()))?
        .map(|entry| entry.map(|(k, _)| PlaceId(k.value().1.to_owned())))
        .collect::<Result<_, _>>()
        .map_err(CloudError::from)
}
