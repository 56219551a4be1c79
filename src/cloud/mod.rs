//! The reference cloud access layer: where each site's Place lives.
//!
//! For now this is the pure core, [`rules`]: the vendor's rules for sharing,
//! links, manage access, homeowner claims and remote services, as a
//! function of (Place, command, now). The store and the TLS server that
//! DESIGN.md describes will wrap it without changing it.

mod model;
mod refusal;
pub mod rules;

pub use model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Remaining, Role, ShareLink, Status, Timestamp,
};
pub use refusal::Refusal;
pub use rules::{
    AccessEntry, Command, Event, PlaceAccess, Places, access_list, apply, places_for, status_for,
};
