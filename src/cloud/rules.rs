//! The Place rules of the vendor's article "Managing and Sharing Cloud
//! Access", as one pure function: [`apply`] takes a Place (or none), a
//! [`Command`] and `now`, and returns the new Place (or none: deleted) and
//! the [`Event`]s to relay, or a [`Refusal`] that says why and what to do.
//! No I/O, no clock, no randomness: the caller passes the time and the
//! secrets in. [`super::Places`] is the map of every Place that the store and the
//! queries ([`super::places_for`], [`super::access_list`], [`super::status_for`]) work on.
//!
//! Each rule has a test named after it (in `rules/tests/`), and the
//! property tests (`rules/proptests.rs`) run random command sequences with
//! advancing time and check the invariants after every step.
//!
//! | rule | test |
//! | --- | --- |
//! | share by email, duration from a fixed list | `share_grants_access_for_the_chosen_duration` |
//! | never beyond the sharer's remaining access | `share_cannot_exceed_sharers_remaining_access` |
//! | … except from the homeowner and unlimited grants | `homeowner_and_unlimited_grants_share_any_duration` |
//! | one active share link; a new one disables the old | `new_share_link_disables_the_old_one` |
//! | no links once a homeowner exists | `share_link_refused_once_a_homeowner_exists` |
//! | a link stops working when a homeowner claims | `share_link_stops_working_after_homeowner_claims` |
//! | redeeming a live link grants access | `redeeming_a_live_link_grants_access` |
//! | a link never outlives its creator's access | `link_grant_is_capped_by_its_creators_access` |
//! | manage access lists grants with remaining time | `access_list_shows_remaining_time` |
//! | revoke access | `revoke_removes_access` |
//! | only accounts with access manage a Place | `only_accounts_with_access_manage_a_place` |
//! | the homeowner is never revoked by others | `homeowner_cannot_be_revoked_by_others` |
//! | last person, no processor: refuse unless forced | `last_person_cannot_revoke_self_without_force` |
//! | forced: the Place is gone | `forced_last_revoke_deletes_the_place` |
//! | with a processor activated, the last may leave | `last_person_may_revoke_self_when_a_processor_is_activated` |
//! | remote services can be enabled | `remote_services_can_be_enabled_with_the_project_key` |
//! | … by the Place's creator (who holds the project file), without the key | `remote_services_can_be_enabled_by_the_creator` |
//! | … never disabled | `remote_services_cannot_be_disabled` |
//! | the creator of a grey Place holds a dormant grant: no access until enabled | `a_grey_places_creator_has_no_access_until_remote_services_are_enabled` |
//! | no Place operation without remote services | `no_place_operation_without_remote_services` |
//! | at most one homeowner | `second_claim_refused_with_remote_assistance_guidance` |
//! | a claim needs the verified button press | `claim_needs_a_verified_button_press` |
//! | … of a processor of this Place | `claim_needs_a_processor_of_the_place` |
//! | only the homeowner releases the home | `only_the_homeowner_releases_the_home` |
//! | release frees the system for a later claim | `release_frees_the_system_for_a_later_claim` |
//! | support removes a homeowner | `support_removes_a_homeowner` |
//! | project key grants access when green | `project_key_grants_access_when_green` |
//! | project key reports yellow with a homeowner | `project_key_reports_yellow_once_a_homeowner_exists` |
//! | project key reports grey without remote services | `project_key_reports_grey_without_remote_services` |
//! | the key must be this Place's | `project_key_must_match_the_place` |
//! | status as the designer's cloud icon | `status_is_the_designers_cloud_icon` |
//! | grants expire | `grants_expire` |
//! | Places list: only what the account reaches | `places_list_shows_only_reachable_places_with_remaining_time` |
//! | homeowner and pro installer are distinct roles | `homeowner_and_pro_installer_are_distinct_roles` |
//! | a Place is created once | `a_place_is_created_once` |
//! | operations need an existing Place | `place_operations_need_an_existing_place` |
//! | the claim's proof is the processor's, checked against its registered CA (forged, foreign, expired, garbage, wrong MAC, reused) | `claim_proof_is_checked_against_the_processor_ca` (`cloud::store` tests), `forged_claim_proof_is_refused`, `claim_proof_from_another_processor_is_refused`, `expired_claim_proof_is_refused` (`cloud::proof` tests), `a_claim_proof_is_spent_once`, `a_claim_with_the_wrong_mac_is_refused` |
//! | an event id is applied once, forever; a duplicate gets the original answer | `duplicate_event_ids_are_acknowledged_with_the_original_result_and_applied_once` |
//!
//! Choices where the article is silent, and why:
//! - The duration list ([`AccessDuration`]) is handoff's: the article names
//!   the dropdown, not its entries.
//! - A share link carries a duration, checked against its creator's access
//!   when generated, and its grant is cut to the creator's access at
//!   redemption, so a link is never a way around the sharing cap.
//! - Sharing to an account that already has access replaces its grant (the
//!   sharer could revoke it anyway); redeeming a link never shortens one.
//! - A claim needs a processor activated in the Place, and processors are
//!   never deactivated, so releasing the home can never strand the Place:
//!   the button can always claim it again.
//! - A forced last revoke deletes the Place: the cloud cannot know whether
//!   a link or a project file survives, and a Place nobody reaches is lost.

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Role, ShareLink, Timestamp,
};
use super::refusal::Refusal;
use crate::processor::Serial;

/// Something a person (or support, or the designer tool) asks of a Place.
///
/// Authentication is the caller's: `by` is the account the cloud layer
/// authenticated, and a claim's certificate check (X.509, against the
/// processor identity the cloud knows) happens before the rules and arrives
/// here as `press_verified`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Command {
    /// A project is started in the designer; its creator has unlimited
    /// access, dormant until remote services are on (a grey Place gives
    /// nobody access, its creator included). The id must be fresh (a GUID): a
    /// deleted Place's id is never reused, or its old links would match the
    /// new Place's.
    CreatePlace {
        place: PlaceId,
        by: AccountId,
        key: ProjectKey,
        remote_services: bool,
    },
    /// Tools > Project Settings, then Transfer: only the project file does it.
    SetRemoteServices {
        place: PlaceId,
        key: ProjectKey,
        enabled: bool,
    },
    /// The Place's creator (the account that holds the project file)
    /// enables remote services from the Places portal, without presenting
    /// the key. `enabled: false` is only ever refused: there is no way
    /// back (the designer greys the option out).
    SetRemoteServicesAsCreator {
        place: PlaceId,
        by: AccountId,
        enabled: bool,
    },
    /// The project was transferred to a processor.
    ActivateProcessor {
        place: PlaceId,
        key: ProjectKey,
        processor: Serial,
    },
    /// Browse Local: open the project file.
    PresentProjectKey {
        place: PlaceId,
        by: AccountId,
        key: ProjectKey,
    },
    /// A homeowner account claims the system with a processor's button.
    Claim {
        place: PlaceId,
        by: AccountId,
        processor: Serial,
        press_verified: bool,
    },
    /// Remove Home from Account.
    Release { place: PlaceId, by: AccountId },
    /// Lutron Tech Support removes the homeowner.
    SupportRemovesHomeowner { place: PlaceId },
    ShareAccess {
        place: PlaceId,
        by: AccountId,
        email: AccountId,
        duration: AccessDuration,
    },
    NewShareLink {
        place: PlaceId,
        by: AccountId,
        secret: LinkSecret,
        duration: AccessDuration,
    },
    RedeemLink {
        place: PlaceId,
        by: AccountId,
        link: ShareLink,
    },
    RevokeAccess {
        place: PlaceId,
        by: AccountId,
        target: AccountId,
        force: bool,
    },
}

impl Command {
    pub fn place(&self) -> &PlaceId {
        match self {
            Command::CreatePlace { place, .. }
            | Command::SetRemoteServices { place, .. }
            | Command::SetRemoteServicesAsCreator { place, .. }
            | Command::ActivateProcessor { place, .. }
            | Command::PresentProjectKey { place, .. }
            | Command::Claim { place, .. }
            | Command::Release { place, .. }
            | Command::SupportRemovesHomeowner { place }
            | Command::ShareAccess { place, .. }
            | Command::NewShareLink { place, .. }
            | Command::RedeemLink { place, .. }
            | Command::RevokeAccess { place, .. } => place,
        }
    }
}

/// What changed, for the store and the relay. A command that changes
/// nothing (enabling remote services twice) yields no event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Event {
    PlaceCreated {
        place: PlaceId,
    },
    RemoteServicesEnabled {
        place: PlaceId,
    },
    ProcessorActivated {
        place: PlaceId,
        processor: Serial,
    },
    /// A new or replaced grant, the homeowner's claim included.
    AccessGranted {
        place: PlaceId,
        account: AccountId,
        grant: Grant,
    },
    AccessRevoked {
        place: PlaceId,
        account: AccountId,
        by: AccountId,
    },
    /// Remove Home from Account, or support removing the homeowner.
    HomeReleased {
        place: PlaceId,
        account: AccountId,
        by_support: bool,
    },
    ShareLinkCreated {
        place: PlaceId,
        by: AccountId,
        number: u64,
    },
    ShareLinkDisabled {
        place: PlaceId,
        number: u64,
    },
    PlaceDeleted {
        place: PlaceId,
    },
}

/// Applies `cmd` to `place` (`None`: no such Place yet) at `now`.
///
/// Returns the Place as it now is (`None`: deleted) and the events, or
/// changes nothing.
///
/// # Errors
/// A [`Refusal`] naming the rule and the vendor's guidance.
pub fn apply(
    place: Option<&Place>,
    cmd: &Command,
    now: Timestamp,
) -> Result<(Option<Place>, Vec<Event>), Refusal> {
    let id = cmd.place().clone();
    let place = match (place, cmd) {
        (Some(_), Command::CreatePlace { .. }) => return Err(Refusal::PlaceExists { place: id }),
        (
            None,
            Command::CreatePlace {
                by,
                key,
                remote_services,
                ..
            },
        ) => {
            return Ok(create(id, by, key, *remote_services));
        }
        (None, _) => return Err(Refusal::NoSuchPlace { place: id }),
        (Some(p), _) => p,
    };
    let mut next = place.clone();
    let mut events = Vec::new();
    match cmd {
        Command::CreatePlace { .. } => unreachable!("handled above"),
        Command::SetRemoteServices { key, enabled, .. } => {
            check_key(place, key)?;
            match (place.remote_services, *enabled) {
                (true, false) => return Err(Refusal::RemoteServicesCannotBeDisabled),
                (false, true) => {
                    next.remote_services = true;
                    events.push(Event::RemoteServicesEnabled { place: id });
                }
                _ => {}
            }
        }
        Command::SetRemoteServicesAsCreator { by, enabled, .. } => {
            if !enabled {
                return Err(Refusal::RemoteServicesCannotBeDisabled);
            }
            let creator = place
                .grants
                .get(by)
                .is_some_and(|g| g.source == GrantSource::Creator);
            if !creator {
                return Err(Refusal::NotTheCreator { by: by.clone() });
            }
            if !place.remote_services {
                next.remote_services = true;
                events.push(Event::RemoteServicesEnabled { place: id });
            }
        }
        Command::ActivateProcessor { key, processor, .. } => {
            check_key(place, key)?;
            if next.processors.insert(*processor) {
                events.push(Event::ProcessorActivated {
                    place: id,
                    processor: *processor,
                });
            }
        }
        Command::PresentProjectKey { by, key, .. } => {
            check_key(place, key)?;
            check_remote_services(place)?;
            let has = place.access(by, now);
            if place.homeowner().is_some() {
                if has.is_none() {
                    return Err(Refusal::HomeownerEstablished);
                }
            } else if has.is_none_or(|g| g.expires.is_some()) {
                let grant = Grant {
                    role: Role::ProInstaller,
                    expires: None,
                    source: GrantSource::ProjectFile,
                };
                grant_to(&mut next, &mut events, by, grant);
            }
        }
        Command::Claim {
            by,
            processor,
            press_verified,
            ..
        } => {
            check_remote_services(place)?;
            if place.homeowner().is_some() {
                return Err(Refusal::AlreadyHasHomeowner);
            }
            if !press_verified {
                return Err(Refusal::UnverifiedButtonPress);
            }
            if !place.processors.contains(processor) {
                return Err(Refusal::UnknownProcessor { serial: *processor });
            }
            disable_link(&mut next, &mut events);
            let grant = Grant {
                role: Role::Homeowner,
                expires: None,
                source: GrantSource::Claim,
            };
            grant_to(&mut next, &mut events, by, grant);
        }
        Command::Release { by, .. } => {
            check_remote_services(place)?;
            if place.homeowner() != Some(by) {
                return Err(Refusal::NotHomeowner { by: by.clone() });
            }
            next.grants.remove(by);
            events.push(Event::HomeReleased {
                place: id,
                account: by.clone(),
                by_support: false,
            });
        }
        Command::SupportRemovesHomeowner { .. } => {
            let homeowner = place.homeowner().ok_or(Refusal::NoHomeowner)?;
            next.grants.remove(homeowner);
            events.push(Event::HomeReleased {
                place: id,
                account: homeowner.clone(),
                by_support: true,
            });
        }
        Command::ShareAccess {
            by,
            email,
            duration,
            ..
        } => {
            let sharer = check_access(place, by, now)?;
            if let Err(e) = AccountId::parse(email.as_str()) {
                return Err(Refusal::NotAnEmail {
                    target: email.clone(),
                    why: e.why,
                });
            }
            check_share_duration(by, sharer, *duration, now)?;
            if place.homeowner() == Some(email) {
                return Err(Refusal::TargetIsHomeowner {
                    target: email.clone(),
                });
            }
            let grant = Grant {
                role: Role::ProInstaller,
                expires: duration.expiry_from(now),
                source: GrantSource::Share { by: by.clone() },
            };
            grant_to(&mut next, &mut events, email, grant);
        }
        Command::NewShareLink {
            by,
            secret,
            duration,
            ..
        } => {
            let creator = check_access(place, by, now)?;
            if place.homeowner().is_some() {
                return Err(Refusal::HomeownerEstablished);
            }
            check_share_duration(by, creator, *duration, now)?;
            disable_link(&mut next, &mut events);
            let number = place.links_issued;
            next.links_issued += 1;
            next.share_link = Some(ActiveLink {
                link: ShareLink {
                    number,
                    secret: secret.clone(),
                },
                by: by.clone(),
                duration: *duration,
            });
            events.push(Event::ShareLinkCreated {
                place: id,
                by: by.clone(),
                number,
            });
        }
        Command::RedeemLink { by, link, .. } => {
            check_remote_services(place)?;
            let active = match &place.share_link {
                Some(active) if &active.link == link && place.homeowner().is_none() => active,
                _ => return Err(Refusal::LinkNotActive),
            };
            let creator = active.by.clone();
            let duration = active.duration;
            let creator_grant = place.access(&creator, now).ok_or(Refusal::LinkNotActive)?;
            let expires = match (duration.expiry_from(now), creator_grant.expires) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let longer_already =
                place
                    .access(by, now)
                    .is_some_and(|g| match (g.expires, expires) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(have), Some(new)) => have >= new,
                    });
            if !longer_already {
                let grant = Grant {
                    role: Role::ProInstaller,
                    expires,
                    source: GrantSource::Link { by: creator },
                };
                grant_to(&mut next, &mut events, by, grant);
            }
        }
        Command::RevokeAccess {
            by, target, force, ..
        } => {
            let deletes_place = check_revoke(place, by, target, *force, now)?;
            next.grants.remove(target);
            events.push(Event::AccessRevoked {
                place: id.clone(),
                account: target.clone(),
                by: by.clone(),
            });
            if deletes_place {
                events.push(Event::PlaceDeleted { place: id });
                return Ok((None, events));
            }
        }
    }
    Ok((Some(next), events))
}

/// Whether `by` may revoke `target`'s access (the rules of
/// [`Command::RevokeAccess`]), without applying it: `Ok(true)` when the
/// revoke, forced, deletes the Place (the last access and no processor).
/// The Place page asks this for every row of Manage Access, so it borrows
/// the Place rather than cloning it as [`apply`] does.
///
/// # Errors
/// The [`Refusal`] that [`apply`] would give.
pub fn check_revoke(
    place: &Place,
    by: &AccountId,
    target: &AccountId,
    force: bool,
    now: Timestamp,
) -> Result<bool, Refusal> {
    check_access(place, by, now)?;
    let Some(grant) = place.access(target, now) else {
        return Err(Refusal::NothingToRevoke {
            target: target.clone(),
        });
    };
    if grant.role == Role::Homeowner {
        return Err(Refusal::TargetIsHomeowner {
            target: target.clone(),
        });
    }
    // Nobody with live access would be left once `target`'s grant goes.
    let last = by == target && place.live_accounts(now).all(|a| a == target);
    if last && place.processors.is_empty() {
        if !force {
            return Err(Refusal::LastAccessWithoutProcessor);
        }
        return Ok(true);
    }
    Ok(false)
}

fn create(
    id: PlaceId,
    by: &AccountId,
    key: &ProjectKey,
    remote_services: bool,
) -> (Option<Place>, Vec<Event>) {
    let mut place = Place {
        id: id.clone(),
        remote_services,
        project_key: key.clone(),
        grants: BTreeMap::new(),
        share_link: None,
        links_issued: 0,
        processors: Default::default(),
    };
    let mut events = vec![Event::PlaceCreated { place: id }];
    let grant = Grant {
        role: Role::ProInstaller,
        expires: None,
        source: GrantSource::Creator,
    };
    if remote_services {
        grant_to(&mut place, &mut events, by, grant);
    } else {
        // Dormant: no access (and no AccessGranted event) until remote
        // services are enabled; it says who may enable them.
        place.grants.insert(by.clone(), grant);
    }
    (Some(place), events)
}

fn check_key(place: &Place, key: &ProjectKey) -> Result<(), Refusal> {
    if &place.project_key == key {
        Ok(())
    } else {
        Err(Refusal::WrongProjectKey)
    }
}

fn check_remote_services(place: &Place) -> Result<(), Refusal> {
    if place.remote_services {
        Ok(())
    } else {
        Err(Refusal::RemoteServicesDisabled {
            place: place.id.clone(),
        })
    }
}

/// Remote services first: without them the app shows a Remote Access Code,
/// whoever asks.
pub(super) fn check_access<'p>(
    place: &'p Place,
    by: &AccountId,
    now: Timestamp,
) -> Result<&'p Grant, Refusal> {
    check_remote_services(place)?;
    place.access(by, now).ok_or_else(|| Refusal::NoAccess {
        account: by.clone(),
    })
}

fn check_share_duration(
    by: &AccountId,
    sharer: &Grant,
    requested: AccessDuration,
    now: Timestamp,
) -> Result<(), Refusal> {
    let fits = match (sharer.expires, requested.expiry_from(now)) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(mine), Some(theirs)) => theirs <= mine,
    };
    if fits {
        Ok(())
    } else {
        Err(Refusal::ShareExceedsRemainingAccess {
            by: by.clone(),
            requested,
            remaining: sharer.remaining(now),
        })
    }
}

fn grant_to(place: &mut Place, events: &mut Vec<Event>, account: &AccountId, grant: Grant) {
    place.grants.insert(account.clone(), grant.clone());
    events.push(Event::AccessGranted {
        place: place.id.clone(),
        account: account.clone(),
        grant,
    });
}

fn disable_link(place: &mut Place, events: &mut Vec<Event>) {
    if let Some(old) = place.share_link.take() {
        events.push(Event::ShareLinkDisabled {
            place: place.id.clone(),
            number: old.link.number,
        });
    }
}
