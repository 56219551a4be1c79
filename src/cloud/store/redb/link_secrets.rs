//! Files written before share-link secrets were forgotten: converted when
//! opened, once, in the open's transaction.
//!
//! Before, a Place's row held its active link's secret and a relayed
//! NewShareLink's answer held the secret it handed out. Now the row holds
//! the secret's digest ([`link_digest`]) and the answer the link's number
//! only (the secret is derived again, [`crate::cloud::store::LinkKey`]).
//! A marker in `meta` says the file is converted.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Deserialize;

use super::{EVENTS, PLACES, PlaceRow, decode, encode};
use crate::cloud::CloudError;
use crate::cloud::model::LinkSecret;
use crate::cloud::store::{StoredResult, link_digest};

/// Facts about the file itself.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Present: no row or event of this file holds a link secret.
const FORGOTTEN: &str = "link_secrets_forgotten";

/// An event's stored result as it was written before.
#[derive(Deserialize)]
enum OldResult {
    Applied { link: Option<(u64, String)> },
    Refused(serde::de::IgnoredAny),
}

/// Digests every Place's link secret and drops every secret from the
/// events' answers, unless this file was converted already. Returns how
/// many records were rewritten.
pub(super) fn forget(txn: &WriteTransaction) -> Result<usize, CloudError> {
    let mut meta = txn.open_table(META)?;
    if meta.get(FORGOTTEN)?.is_some() {
        return Ok(0);
    }
    let mut rewritten = 0;
    let mut rows = txn.open_table(PLACES)?;
    let mut changed = Vec::new();
    for entry in rows.iter()? {
        let (k, v) = entry?;
        let mut row: PlaceRow = decode("places", k.value(), v.value())?;
        if let Some(link) = &mut row.share_link {
            link.link.secret = LinkSecret(link_digest(&link.link.secret));
            changed.push((k.value().to_owned(), encode(&row)?));
        }
    }
    for (id, bytes) in &changed {
        rows.insert(id.as_str(), bytes.as_slice())?;
    }
    rewritten += changed.len();
    let mut events = txn.open_table(EVENTS)?;
    let mut changed = Vec::new();
    for entry in events.iter()? {
        let (k, v) = entry?;
        let (account, daemon, seq) = k.value();
        let key = format!("{account}/{daemon}/{seq}");
        // Only an applied event with a link is written differently now.
        if let OldResult::Applied {
            link: Some((number, _secret)),
        } = decode("events", &key, v.value())?
        {
            let now = StoredResult::Applied { link: Some(number) };
            changed.push(((account.to_owned(), daemon.to_owned(), seq), encode(&now)?));
        }
    }
    for ((account, daemon, seq), bytes) in &changed {
        events.insert((account.as_str(), daemon.as_str(), *seq), bytes.as_slice())?;
    }
    rewritten += changed.len();
    meta.insert(FORGOTTEN, 1)?;
    Ok(rewritten)
}
