//! The reference cloud access layer: where each site's Place lives.
//!
//! For now this is the pure core, [`rules`]: the vendor's rules for sharing,
//! links, manage access, homeowner claims and remote services, as a
//! function of (Place, command, now). The store and the TLS server that
//! DESIGN.md describes will wrap it without changing it.

mod model;
mod places;
mod refusal;
pub mod rules;

pub use model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Remaining, Role, ShareLink, Status, Timestamp,
};
pub use places::{AccessEntry, PlaceAccess, Places, access_list, places_for, status_for};
pub use refusal::Refusal;
pub use rules::{Command, Event, apply};
