//! `handoff cloud copy`: a site's cloud moved from its redb file into
//! PostgreSQL, whole, in one transaction: every Place with its grants and
//! link, every processor, daemon, spent proof, deleted Place id and event
//! result (so a daemon that resends an old event still gets its answer),
//! every Place's timeline, and what site boxes reported of each processor.

use super::{DaemonRecord, EventRecord, PgStore, ProcessorRecord, RedbStore};
use crate::cloud::CloudError;
use crate::cloud::model::{Place, PlaceId, Timestamp};
use crate::processor::Serial;

/// Everything a store holds, read in one transaction.
#[derive(Debug, Default)]
pub struct Dump {
    pub places: Vec<Place>,
    pub processors: Vec<ProcessorRecord>,
    pub daemons: Vec<DaemonRecord>,
    pub deleted_places: Vec<(PlaceId, Timestamp)>,
    pub spent_proofs: Vec<(Serial, Vec<u8>, Timestamp)>,
    pub events: Vec<EventRecord>,
    /// Each Place's timeline, oldest first within a Place.
    pub timeline: Vec<(PlaceId, super::timeline::TimelineEntry)>,
    /// What site boxes said of each processor.
    pub reports: Vec<super::reports::ProcessorReport>,
}

/// What was copied, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub places: usize,
    pub grants: usize,
    pub processors: usize,
    pub daemons: usize,
    pub deleted_places: usize,
    pub spent_proofs: usize,
    pub events: usize,
    pub timeline: usize,
    pub reports: usize,
}

/// Copies `from` into `to`, which must hold no Place, processor or event
/// yet (a copy is a move, not a merge).
///
/// # Errors
/// [`CloudError`] when either store fails or `to` is not empty; then
/// nothing was written to `to`.
pub fn copy(from: &RedbStore, to: &PgStore) -> Result<Copied, CloudError> {
    let dump = from.dump()?;
    let copied = Copied {
        places: dump.places.len(),
        grants: dump.places.iter().map(|p| p.grants.len()).sum(),
        processors: dump.processors.len(),
        daemons: dump.daemons.len(),
        deleted_places: dump.deleted_places.len(),
        spent_proofs: dump.spent_proofs.len(),
        events: dump.events.len(),
        timeline: dump.timeline.len(),
        reports: dump.reports.len(),
    };
    to.import(&dump)?;
    Ok(copied)
}
