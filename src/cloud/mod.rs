//! The reference cloud access layer: where each site's Place lives.
//!
//! - [`rules`]: the vendor's rules for sharing, links, manage access,
//!   homeowner claims and remote services, as a pure function of
//!   (Place, command, now);
//! - [`proof`]: the claim proof, checked against the processor CA
//!   registered for the Place;
//! - [`store`]: every Place, processor and relayed event in one redb file,
//!   one transaction per operation;
//! - [`authority`]: the cloud's own CA and the daemon identities it issues
//!   (`handoff cloud enroll`);
//! - [`server`]: the relay protocol's TLS server (`handoff cloud serve`);

pub mod authority;
mod model;
pub mod places;
pub mod proof;
mod refusal;
pub mod rules;
pub mod server;
pub mod store;

use std::path::{Path, PathBuf};

pub use model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Remaining, Role, ShareLink, Status, Timestamp,
};
pub use places::{
    AccessEntry, PlaceAccess, Places, access_list, guidance_for, places_for, status_for,
};
pub use refusal::Refusal;
pub use rules::{Command, Event, apply};
pub use store::{CloudStore, ProcessorRecord};

/// What can go wrong in the cloud layer other than a rule's refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    #[error("the cloud store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error(
        "the cloud store's {table} record {key} is unreadable ({reason}); it was left as it is"
    )]
    Corrupt {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Failed(String),
}

impl CloudError {
    pub(crate) fn store(path: &Path, e: impl Into<redb::Error>) -> CloudError {
        CloudError::Store {
            path: path.to_owned(),
            source: Box::new(e.into()),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CloudError {
        let context = context.into();
        move |source| CloudError::Io { context, source }
    }
}

pub use crate::place::now;
