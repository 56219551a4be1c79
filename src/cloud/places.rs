//! What the cloud holds and what it shows: every Place keyed by id, and the
//! read-only views of the article (Manage Access, the Places list, the
//! designer's cloud icon). Like [`super::rules`], pure: time comes in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AccountId, GrantSource, Place, PlaceId, Remaining, Role, Status, Timestamp};
use super::refusal::Refusal;
use super::rules::{Command, Event, apply, check_access};

/// Every Place the cloud holds, keyed by id.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Places {
    places: BTreeMap<PlaceId, Place>,
}

impl Places {
    /// The map of these Places, keyed by their ids.
    pub fn from_places(places: impl IntoIterator<Item = Place>) -> Places {
        Places {
            places: places.into_iter().map(|p| (p.id.clone(), p)).collect(),
        }
    }

    pub fn get(&self, id: &PlaceId) -> Option<&Place> {
        self.places.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Place> {
        self.places.values()
    }

    /// [`apply`] to the command's Place, keeping the outcome; on a refusal
    /// nothing changes.
    ///
    /// # Errors
    /// The [`Refusal`] of [`apply`].
    pub fn apply(&mut self, cmd: &Command, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        let id = cmd.place();
        let (next, events) = apply(self.places.get(id), cmd, now)?;
        match next {
            Some(place) => {
                self.places.insert(id.clone(), place);
            }
            None => {
                self.places.remove(id);
            }
        }
        Ok(events)
    }
}

/// One line of Manage Access.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AccessEntry {
    pub account: AccountId,
    pub role: Role,
    pub remaining: Remaining,
    pub source: GrantSource,
}

/// Manage Access: who has access to `place` now and for how long, as `by`
/// sees it.
///
/// # Errors
/// [`Refusal::RemoteServicesDisabled`], or [`Refusal::NoAccess`] when `by`
/// has none.
pub fn access_list(
    place: &Place,
    by: &AccountId,
    now: Timestamp,
) -> Result<Vec<AccessEntry>, Refusal> {
    check_access(place, by, now)?;
    Ok(place
        .grants
        .iter()
        .filter(|(_, g)| g.is_live(now))
        .map(|(account, g)| AccessEntry {
            account: account.clone(),
            role: g.role,
            remaining: g.remaining(now),
            source: g.source.clone(),
        })
        .collect())
}

/// One line of an account's Places list.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PlaceAccess {
    pub place: PlaceId,
    pub role: Role,
    pub remaining: Remaining,
}

/// The Places list: what `account` reaches now, with the time left.
/// Projects without remote services never show up, as the article says.
pub fn places_for(places: &Places, account: &AccountId, now: Timestamp) -> Vec<PlaceAccess> {
    places
        .iter()
        .filter_map(|p| {
            p.access(account, now).map(|g| PlaceAccess {
                place: p.id.clone(),
                role: g.role,
                remaining: g.remaining(now),
            })
        })
        .collect()
}

/// What holds for `account` at `place`, and what to do: the sentence that
/// goes with [`status_for`]. Green alone does not say whether the account
/// has access (no homeowner yet is green for everyone), so the sentence
/// does, and never tells a stranger "you have access".
pub fn guidance_for(place: &Place, account: &AccountId, now: Timestamp) -> &'static str {
    match status_for(place, account, now) {
        Status::Grey => super::refusal::NO_REMOTE_SERVICES,
        Status::Yellow => super::refusal::ASK_HOMEOWNER,
        Status::Green if place.access(account, now).is_some() => crate::place::HAS_ACCESS,
        Status::Green => crate::place::NO_HOMEOWNER_YET,
    }
}

/// The cloud icon `account` sees when it opens `place`'s project file:
/// grey without remote services; green when it has access or opening the
/// file would grant it (no homeowner yet); yellow when a homeowner is
/// established and it lacks access.
pub fn status_for(place: &Place, account: &AccountId, now: Timestamp) -> Status {
    if !place.remote_services {
        Status::Grey
    } else if place.access(account, now).is_some() || place.homeowner().is_none() {
        Status::Green
    } else {
        Status::Yellow
    }
}
