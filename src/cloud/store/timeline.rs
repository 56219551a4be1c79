//! Every event a Place's rules applied or refused, kept per Place on both
//! backends, in the same transaction as what the event did: the portal's
//! timeline ("what did every event do, and who asked").
//!
//! Recorded by [`super::apply`], so every way in (relayed by a site box,
//! the operator CLI, the portal) leaves the same trace. A claim refused
//! before the rules (a proof that does not verify, a wrong MAC, a spent
//! proof) is recorded too, in the Place it names, when the relaying
//! account reaches that Place (`claim_in` in [`super`]).

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::CloudStore;
use super::redb::RedbStore;
use crate::cloud::CloudError;
use crate::cloud::model::{AccountId, PlaceId, Timestamp};

/// (Place, sequence within the Place) → [`TimelineEntry`].
const TIMELINE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("place_timeline");

/// One event of a Place, as its timeline shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    /// Who asked (for a command without an account, such as a project
    /// transfer, `project file`).
    pub account: AccountId,
    /// The site box (daemon) that relayed it; `None`: the operator CLI or
    /// the portal.
    pub site_box: Option<String>,
    /// What was asked, in words.
    pub what: String,
    /// `None`: applied; else the refusal's rule and why.
    pub refused: Option<(String, String)>,
}

pub(super) fn redb_record(
    txn: &WriteTransaction,
    place: &PlaceId,
    entry: &TimelineEntry,
) -> Result<(), CloudError> {
    let mut table = txn.open_table(TIMELINE)?;
    let next = table
        .range((place.0.as_str(), 0)..=(place.0.as_str(), u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1 + 1);
    let mut bytes = Vec::new();
    ciborium::into_writer(entry, &mut bytes)
        .map_err(|e| CloudError::Failed(format!("cannot encode a timeline entry: {e}")))?;
    table.insert((place.0.as_str(), next), bytes.as_slice())?;
    Ok(())
}

pub(super) async fn pg_record(
    tx: &deadpool_postgres::Transaction<'_>,
    place: &PlaceId,
    entry: &TimelineEntry,
) -> Result<(), CloudError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO place_events (place, at, account, site_box, what, rule, why)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(pg("recording a Place event"))?;
    let (rule, why) = entry.refused.clone().unzip();
    tx.execute(
        &stmt,
        &[
            &place.0,
            &(entry.at.0 as i64),
            &entry.account.as_str(),
            &entry.site_box,
            &entry.what,
            &rule,
            &why,
        ],
    )
    .await
    .map_err(pg("recording a Place event"))?;
    Ok(())
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> CloudError {
    move |source| CloudError::Database {
        context: context.into(),
        source,
    }
}

impl CloudStore {
    /// The newest `limit` events of `place`, newest first, and how many it
    /// has in all.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn timeline(
        &self,
        place: &PlaceId,
        limit: usize,
    ) -> Result<(Vec<TimelineEntry>, u64), CloudError> {
        self.timeline_page(place, 0, limit)
    }

    /// The events of `place` newest first, the newest `skip` passed over,
    /// at most `limit` of them; and how many it has in all.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn timeline_page(
        &self,
        place: &PlaceId,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<TimelineEntry>, u64), CloudError> {
        match self {
            CloudStore::Redb(s) => {
                let Some(table) = redb_timeline(s)? else {
                    return Ok((Vec::new(), 0));
                };
                let all = (place.0.as_str(), 0)..=(place.0.as_str(), u64::MAX);
                // Sequences within a Place have no gaps: the newest is
                // total - 1, and the page ends `skip` below it.
                let Some(newest) = table.range(all)?.next_back().transpose()? else {
                    return Ok((Vec::new(), 0));
                };
                let total = newest.0.value().1 + 1;
                let Some(top) = (skip as u64)
                    .checked_add(1)
                    .and_then(|n| total.checked_sub(n))
                else {
                    return Ok((Vec::new(), total));
                };
                let mut entries = Vec::new();
                for row in table
                    .range((place.0.as_str(), 0)..=(place.0.as_str(), top))?
                    .rev()
                    .take(limit)
                {
                    entries.push(decode(place, row?.1.value())?);
                }
                Ok((entries, total))
            }
            CloudStore::Postgres(s) => s.block(|| {
                s.transaction(async |t, _| {
                    let total: i64 =
                        t.tx.query_one(
                            "SELECT count(*) FROM place_events WHERE place = $1",
                            &[&place.0],
                        )
                        .await
                        .map_err(pg("counting a Place's events"))?
                        .get(0);
                    let rows =
                        t.tx.query(
                            "SELECT at, account, site_box, what, rule, why FROM place_events
                             WHERE place = $1 ORDER BY id DESC OFFSET $3 LIMIT $2",
                            &[
                                &place.0,
                                &(limit as i64),
                                &(skip.min(i64::MAX as usize) as i64),
                            ],
                        )
                        .await
                        .map_err(pg("reading a Place's events"))?;
                    let entries = rows
                        .iter()
                        .map(|r| TimelineEntry {
                            at: Timestamp(r.get::<_, i64>(0) as u64),
                            account: AccountId::new(r.get::<_, &str>(1)),
                            site_box: r.get(2),
                            what: r.get(3),
                            refused: r.get::<_, Option<String>>(4).map(|rule| {
                                (rule, r.get::<_, Option<String>>(5).unwrap_or_default())
                            }),
                        })
                        .collect();
                    Ok((entries, total as u64))
                })
            }),
        }
    }
}

/// When a site box last relayed an event of a Place, and which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub site_box: String,
    pub at: Timestamp,
}

impl CloudStore {
    /// The last contact from a site box of each of `places` that had one.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails.
    pub fn last_contacts(
        &self,
        places: &[&PlaceId],
    ) -> Result<HashMap<PlaceId, Contact>, CloudError> {
        let mut out = HashMap::new();
        match self {
            CloudStore::Redb(s) => {
                let Some(table) = redb_timeline(s)? else {
                    return Ok(out);
                };
                for place in places {
                    let range =
                        table.range((place.0.as_str(), 0)..=(place.0.as_str(), u64::MAX))?;
                    for row in range.rev() {
                        let entry = decode(place, row?.1.value())?;
                        if let Some(site_box) = entry.site_box {
                            out.insert(
                                (*place).clone(),
                                Contact {
                                    site_box,
                                    at: entry.at,
                                },
                            );
                            break;
                        }
                    }
                }
                Ok(out)
            }
            CloudStore::Postgres(s) => {
                let ids: Vec<&str> = places.iter().map(|p| p.0.as_str()).collect();
                s.block(|| {
                    s.transaction(async |t, _| {
                        let rows =
                            t.tx.query(
                                "SELECT DISTINCT ON (place) place, site_box, at FROM place_events
                                 WHERE place = ANY($1) AND site_box IS NOT NULL
                                 ORDER BY place, id DESC",
                                &[&ids],
                            )
                            .await
                            .map_err(pg("reading the last site-box contacts"))?;
                        Ok(rows
                            .iter()
                            .map(|r| {
                                (
                                    PlaceId(r.get(0)),
                                    Contact {
                                        site_box: r.get(1),
                                        at: Timestamp(r.get::<_, i64>(2) as u64),
                                    },
                                )
                            })
                            .collect())
                    })
                })
            }
        }
    }
}

/// Every Place's timeline, for `cloud copy`: oldest first within a Place.
pub(super) fn redb_all(
    txn: &redb::ReadTransaction,
) -> Result<Vec<(PlaceId, TimelineEntry)>, CloudError> {
    let table = match txn.open_table(TIMELINE) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut all = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let place = PlaceId(key.value().0.to_owned());
        let entry = decode(&place, value.value())?;
        all.push((place, entry));
    }
    Ok(all)
}

type TimelineTable = redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>;

/// The timeline table for reading; `None` before the first event.
fn redb_timeline(s: &RedbStore) -> Result<Option<TimelineTable>, CloudError> {
    let txn =
        s.db.begin_read()
            .map_err(|e| CloudError::store(s.path(), e))?;
    match txn.open_table(TIMELINE) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn decode(place: &PlaceId, bytes: &[u8]) -> Result<TimelineEntry, CloudError> {
    ciborium::from_reader(bytes).map_err(|e| CloudError::Corrupt {
        table: "place_timeline",
        key: place.0.clone(),
        reason: e.to_string(),
    })
}
