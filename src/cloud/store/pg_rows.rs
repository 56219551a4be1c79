//! The PostgreSQL store's rows and the rules' nouns, both ways: a Place is
//! a `places` row, its grants and its processors; a grant's role and
//! source are short words (the names in migrations/0001_places.sql).

use tokio_postgres::Row;

use crate::cloud::CloudError;
use crate::cloud::model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Role, ShareLink, Timestamp,
};
use crate::processor::Serial;

use super::{ProcessorRecord, StoredResult};

/// The columns of `places` [`place_row`] reads, in its order.
pub(super) const PLACE_COLUMNS: &str = "id, remote_services, project_key, links_issued, \
     link_number, link_by, link_duration, link_secret_sha256";

/// The columns of `grants` [`grant_row`] reads, in its order.
pub(super) const GRANT_COLUMNS: &str = "account, role, expires, source, source_by";

/// A Place from its `places` row, without grants or processors yet.
pub(super) fn place_row(row: &Row) -> Result<Place, CloudError> {
    let id: String = row.get(0);
    let number: Option<i64> = row.get(4);
    let share_link = match number {
        None => None,
        Some(number) => {
            let by: Option<String> = row.get(5);
            let duration: Option<String> = row.get(6);
            let digest: Option<String> = row.get(7);
            let (Some(by), Some(duration), Some(digest)) = (by, duration, digest) else {
                return Err(corrupt("places", &id, "a share link without its terms"));
            };
            Some(ActiveLink {
                link: ShareLink {
                    number: number as u64,
                    secret: LinkSecret(digest),
                },
                by: AccountId::new(&by),
                duration: duration_from(&duration).ok_or_else(|| {
                    corrupt("places", &id, &format!("unknown duration {duration}"))
                })?,
            })
        }
    };
    Ok(Place {
        id: PlaceId(id),
        remote_services: row.get(1),
        project_key: ProjectKey(row.get(2)),
        grants: Default::default(),
        share_link,
        links_issued: row.get::<_, i64>(3) as u64,
        processors: Default::default(),
    })
}

/// (account, grant) from a `grants` row.
pub(super) fn grant_row(place: &PlaceId, row: &Row) -> Result<(AccountId, Grant), CloudError> {
    let account: String = row.get(0);
    let role: String = row.get(1);
    let source: String = row.get(3);
    let by: Option<String> = row.get(4);
    let bad = |what: &str| corrupt("grants", &format!("{place}/{account}"), what);
    let role = match role.as_str() {
        "homeowner" => Role::Homeowner,
        "pro-installer" => Role::ProInstaller,
        other => return Err(bad(&format!("unknown role {other}"))),
    };
    let source = match (source.as_str(), by) {
        ("creator", _) => GrantSource::Creator,
        ("project-file", _) => GrantSource::ProjectFile,
        ("claim", _) => GrantSource::Claim,
        ("share", Some(by)) => GrantSource::Share {
            by: AccountId::new(&by),
        },
        ("link", Some(by)) => GrantSource::Link {
            by: AccountId::new(&by),
        },
        (other, _) => return Err(bad(&format!("unknown source {other}"))),
    };
    let expires: Option<i64> = row.get(2);
    Ok((
        AccountId::new(&account),
        Grant {
            role,
            expires: expires.map(|e| Timestamp(e as u64)),
            source,
        },
    ))
}

/// A grant's columns after (place, account): role, expires, source,
/// source_by.
pub(super) fn grant_columns(
    grant: &Grant,
) -> (&'static str, Option<i64>, &'static str, Option<&str>) {
    let role = match grant.role {
        Role::Homeowner => "homeowner",
        Role::ProInstaller => "pro-installer",
    };
    let (source, by) = match &grant.source {
        GrantSource::Creator => ("creator", None),
        GrantSource::ProjectFile => ("project-file", None),
        GrantSource::Claim => ("claim", None),
        GrantSource::Share { by } => ("share", Some(by.as_str())),
        GrantSource::Link { by } => ("link", Some(by.as_str())),
    };
    (role, grant.expires.map(|e| e.0 as i64), source, by)
}

pub(super) fn duration_text(duration: AccessDuration) -> String {
    duration.to_string()
}

fn duration_from(text: &str) -> Option<AccessDuration> {
    [
        AccessDuration::OneDay,
        AccessDuration::SevenDays,
        AccessDuration::ThirtyDays,
        AccessDuration::OneYear,
        AccessDuration::Unlimited,
    ]
    .into_iter()
    .find(|d| d.to_string() == text)
}

pub(super) fn processor_row(serial: i64, row: &Row) -> Result<ProcessorRecord, CloudError> {
    let mac: Vec<u8> = row.get(1);
    let mac: [u8; 6] = mac
        .try_into()
        .map_err(|_| corrupt("processors", &serial.to_string(), "a MAC not 6 bytes long"))?;
    Ok(ProcessorRecord {
        place: PlaceId(row.get(0)),
        serial: Serial(serial as u32),
        mac,
        ca_der: row.get(2),
    })
}

/// A stored event result from (outcome, rule, why, link_number).
pub(super) fn result_row(key: &str, row: &Row) -> Result<StoredResult, CloudError> {
    let outcome: String = row.get(0);
    match outcome.as_str() {
        "applied" => Ok(StoredResult::Applied {
            link: row.get::<_, Option<i64>>(3).map(|n| n as u64),
        }),
        "refused" => Ok(StoredResult::Refused {
            rule: row.get::<_, Option<String>>(1).unwrap_or_default(),
            why: row.get::<_, Option<String>>(2).unwrap_or_default(),
        }),
        other => Err(corrupt("events", key, &format!("unknown outcome {other}"))),
    }
}

/// (outcome, rule, why, link_number) of a stored result.
pub(super) fn result_columns(
    result: &StoredResult,
) -> (&'static str, Option<&str>, Option<&str>, Option<i64>) {
    match result {
        StoredResult::Applied { link } => ("applied", None, None, link.map(|n| n as i64)),
        StoredResult::Refused { rule, why } => {
            ("refused", Some(rule.as_str()), Some(why.as_str()), None)
        }
    }
}

fn corrupt(table: &'static str, key: &str, reason: &str) -> CloudError {
    CloudError::Corrupt {
        table,
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}
