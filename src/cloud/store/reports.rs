//! What site boxes said of each processor, on both backends: which site
//! box last relayed an applied event for it and when, and the model and
//! firmware a site box reported with a claim (`proto/relay.cddl`,
//! `"model"` and `"fw"`). The portal's processor table reads it.
//!
//! These are the site box's claims, not proven facts: the portal shows
//! them as "reported by SITE-BOX at TIME". Only an applied event counts (a
//! claim whose button press was proven, a release by the homeowner), so
//! a site box without standing in the Place cannot write here. Written by
//! [`super::relay_event`] in the event's own transaction.
//!
//! redb: one table, `processor_reports`, absent from older files until
//! the first report (a missing table reads as "not reported yet": there is
//! nothing to convert). PostgreSQL: `migrations/0006_processor_reports.sql`.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::postgres::db;
use super::redb::table_if_any;
use super::{CloudStore, ProcessorRecord};
use crate::cloud::CloudError;
use crate::cloud::model::PlaceId;
use crate::cloud::model::Timestamp;
use crate::processor::Serial;

/// Processor serial → [`ProcessorReport`].
const REPORTS: TableDefinition<u32, &[u8]> = TableDefinition::new("processor_reports");

/// What the cloud last heard about one processor from a site box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorReport {
    pub serial: Serial,
    /// The site box (daemon) that last relayed an applied event for it.
    pub site_box: String,
    /// When the cloud applied that event (the cloud's clock).
    pub at: Timestamp,
    /// The model and firmware last reported, and by whom; `None` until a
    /// site box reports them (older daemons never do).
    pub identity: Option<ReportedIdentity>,
}

/// The model and firmware one site box reported, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedIdentity {
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub site_box: String,
    pub at: Timestamp,
}

impl ProcessorReport {
    /// The report after `site_box` relayed an applied event for `serial`
    /// at `now`, saying `model` and `firmware` (as sent; each checked with
    /// [`crate::processor::field_text`]). A value that fails the check is
    /// dropped, and why is returned for the log; an event that reports
    /// neither keeps the identity reported before, with its own reporter
    /// and time.
    pub fn after(
        before: Option<ProcessorReport>,
        serial: Serial,
        site_box: &str,
        reported: (Option<&str>, Option<&str>),
        now: Timestamp,
    ) -> (ProcessorReport, Vec<String>) {
        let mut dropped = Vec::new();
        let mut check = |what: &str, value: Option<&str>| {
            let value = value?;
            match crate::processor::field_text(value.as_bytes()) {
                Ok(text) => Some(text.to_owned()),
                Err(why) => {
                    dropped.push(format!(
                        "the {what} site box {} reported for processor {serial} {why}; dropped",
                        crate::processor::printable(site_box)
                    ));
                    None
                }
            }
        };
        let model = check("model", reported.0);
        let firmware = check("firmware", reported.1);
        let identity = if model.is_none() && firmware.is_none() {
            before.and_then(|b| b.identity)
        } else {
            Some(ReportedIdentity {
                model,
                firmware,
                site_box: site_box.to_owned(),
                at: now,
            })
        };
        let report = ProcessorReport {
            serial,
            site_box: site_box.to_owned(),
            at: now,
            identity,
        };
        (report, dropped)
    }
}

fn encode(report: &ProcessorReport) -> Result<Vec<u8>, CloudError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(report, &mut bytes)
        .map_err(|e| CloudError::Failed(format!("cannot encode a processor report: {e}")))?;
    Ok(bytes)
}

fn decode(serial: u32, bytes: &[u8]) -> Result<ProcessorReport, CloudError> {
    ciborium::from_reader(bytes).map_err(|e| CloudError::Corrupt {
        table: "processor_reports",
        key: serial.to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn redb_get(
    txn: &WriteTransaction,
    serial: Serial,
) -> Result<Option<ProcessorReport>, CloudError> {
    let table = txn.open_table(REPORTS)?;
    let value = table.get(serial.0)?;
    value.map(|v| decode(serial.0, v.value())).transpose()
}

pub(super) fn redb_put(txn: &WriteTransaction, report: &ProcessorReport) -> Result<(), CloudError> {
    txn.open_table(REPORTS)?
        .insert(report.serial.0, encode(report)?.as_slice())?;
    Ok(())
}

/// Every report, for `cloud copy`, in serial order.
pub(super) fn redb_all(txn: &redb::ReadTransaction) -> Result<Vec<ProcessorReport>, CloudError> {
    let Some(table) = table_if_any(txn, REPORTS)? else {
        return Ok(Vec::new());
    };
    let mut all = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        all.push(decode(key.value(), value.value())?);
    }
    Ok(all)
}

const PG_COLUMNS: &str = "serial, site_box, at, model, firmware, reported_by, reported_at";

fn pg_row(row: &tokio_postgres::Row) -> ProcessorReport {
    let reported_by: Option<String> = row.get(5);
    ProcessorReport {
        serial: Serial(row.get::<_, i64>(0) as u32),
        site_box: row.get(1),
        at: Timestamp(row.get::<_, i64>(2) as u64),
        identity: reported_by.map(|site_box| ReportedIdentity {
            model: row.get(3),
            firmware: row.get(4),
            site_box,
            at: Timestamp(row.get::<_, Option<i64>>(6).unwrap_or_default() as u64),
        }),
    }
}

pub(super) async fn pg_get(
    tx: &deadpool_postgres::Transaction<'_>,
    serial: Serial,
) -> Result<Option<ProcessorReport>, CloudError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {PG_COLUMNS} FROM processor_reports WHERE serial = $1"
        ))
        .await
        .map_err(db("reading a processor report"))?;
    let row = tx
        .query_opt(&stmt, &[&i64::from(serial.0)])
        .await
        .map_err(db("reading a processor report"))?;
    Ok(row.as_ref().map(pg_row))
}

pub(super) async fn pg_put(
    tx: &deadpool_postgres::Transaction<'_>,
    report: &ProcessorReport,
) -> Result<(), CloudError> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO processor_reports ({PG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (serial) DO UPDATE SET site_box = $2, at = $3, model = $4,
                 firmware = $5, reported_by = $6, reported_at = $7"
        ))
        .await
        .map_err(db("keeping a processor report"))?;
    let identity = report.identity.as_ref();
    tx.execute(
        &stmt,
        &[
            &i64::from(report.serial.0),
            &report.site_box,
            &(report.at.0 as i64),
            &identity.and_then(|i| i.model.clone()),
            &identity.and_then(|i| i.firmware.clone()),
            &identity.map(|i| i.site_box.clone()),
            &identity.map(|i| i.at.0 as i64),
        ],
    )
    .await
    .map_err(db("keeping a processor report"))?;
    Ok(())
}

impl CloudStore {
    /// The processors of `place`, and the reports of those that have one.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn place_processors(
        &self,
        place: &PlaceId,
    ) -> Result<(Vec<ProcessorRecord>, HashMap<Serial, ProcessorReport>), CloudError> {
        let mut processors = self.processors()?;
        processors.retain(|p| p.place == *place);
        let serials: Vec<_> = processors.iter().map(|p| p.serial).collect();
        Ok((processors, self.processor_reports(&serials)?))
    }

    /// The reports of each of `serials` that has one.
    ///
    /// # Errors
    /// [`CloudError`] when the store fails or a record is corrupt.
    pub fn processor_reports(
        &self,
        serials: &[Serial],
    ) -> Result<HashMap<Serial, ProcessorReport>, CloudError> {
        let mut out = HashMap::new();
        match self {
            CloudStore::Redb(s) => {
                let txn =
                    s.db.begin_read()
                        .map_err(|e| CloudError::store(s.path(), e))?;
                let Some(table) = table_if_any(&txn, REPORTS)? else {
                    return Ok(out);
                };
                for serial in serials {
                    if let Some(v) = table.get(serial.0)? {
                        out.insert(*serial, decode(serial.0, v.value())?);
                    }
                }
                Ok(out)
            }
            CloudStore::Postgres(s) => {
                let keys: Vec<i64> = serials.iter().map(|s| i64::from(s.0)).collect();
                s.block(|| {
                    s.transaction(async |t, _| {
                        let rows =
                            t.tx.query(
                                &format!(
                                    "SELECT {PG_COLUMNS} FROM processor_reports
                                     WHERE serial = ANY($1)"
                                ),
                                &[&keys],
                            )
                            .await
                            .map_err(db("reading processor reports"))?;
                        for row in &rows {
                            let report = pg_row(row);
                            out.insert(report.serial, report);
                        }
                        Ok(std::mem::take(&mut out))
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(
        before: Option<ProcessorReport>,
        by: &str,
        r: (Option<&str>, Option<&str>),
        at: u64,
    ) -> (ProcessorReport, Vec<String>) {
        ProcessorReport::after(before, Serial(7), by, r, Timestamp(at))
    }

    #[test]
    fn a_report_keeps_the_last_site_box_and_the_last_identity_reported() {
        let (first, dropped) = reported(
            None,
            "lake-box",
            (Some("RadioRA 3 Processor"), Some("26.00.14f000")),
            100,
        );
        assert!(dropped.is_empty());
        let identity = first.identity.clone().unwrap();
        assert_eq!(identity.model.as_deref(), Some("RadioRA 3 Processor"));
        assert_eq!(identity.firmware.as_deref(), Some("26.00.14f000"));
        assert_eq!(
            (identity.site_box.as_str(), identity.at),
            ("lake-box", Timestamp(100))
        );
        // An older daemon relays later and reports nothing: the contact is
        // its, the identity stays the first box's, with its time.
        let (second, _) = reported(Some(first), "old-box", (None, None), 200);
        assert_eq!(
            (second.site_box.as_str(), second.at),
            ("old-box", Timestamp(200))
        );
        assert_eq!(second.identity, Some(identity));
        // A new report replaces it whole.
        let (third, _) = reported(Some(second), "new-box", (None, Some("27.0")), 300);
        let identity = third.identity.unwrap();
        assert_eq!(
            (identity.model, identity.firmware.as_deref()),
            (None, Some("27.0"))
        );
        assert_eq!(identity.site_box, "new-box");
    }

    #[test]
    fn an_oversized_or_control_character_report_is_dropped_and_said() {
        let long = "x".repeat(65);
        let (report, dropped) = reported(
            None,
            "evil\x1b[2Jbox",
            (Some(long.as_str()), Some("1.0\r\nSet-Cookie: a=b")),
            100,
        );
        assert_eq!(report.identity, None, "{report:?}");
        assert_eq!(
            report.site_box, "evil\x1b[2Jbox",
            "the contact is still kept"
        );
        assert_eq!(
            dropped,
            vec![
                "the model site box evil\\u{1b}[2Jbox reported for processor 7 is 65 bytes \
                 long (at most 64 expected); dropped"
                    .to_owned(),
                "the firmware site box evil\\u{1b}[2Jbox reported for processor 7 contains \
                 control characters; dropped"
                    .to_owned(),
            ]
        );
        // One good field of two is kept.
        let (report, dropped) = reported(None, "b", (Some(""), Some("26.1")), 100);
        assert_eq!(dropped.len(), 1);
        let identity = report.identity.unwrap();
        assert_eq!(
            (identity.model, identity.firmware.as_deref()),
            (None, Some("26.1"))
        );
    }
}
