//! The reference cloud access layer: where each site's Place lives.
//!
//! - [`rules`]: the vendor's rules for sharing, links, manage access,
//!   homeowner claims and remote services, as a pure function of
//!   (Place, command, now);
//! - [`proof`]: the claim proof, checked against the processor CA
//!   registered for the Place;
//! - [`store`]: every Place, processor and relayed event, in one redb file
//!   or a PostgreSQL database, one transaction per operation;
//! - [`authority`]: the cloud's own CA and the daemon identities it issues
//!   (`handoff cloud enroll`);
//! - [`server`]: the relay protocol's TLS server (`handoff cloud serve`),
//!   which closes a revoked daemon's connections (`revocations`);
//! - [`project_file`], [`share_link`], [`names`]: what the operator's
//!   commands read and hand out — the project file, a share link's text,
//!   minted Place ids and checked site names and accounts — so that the
//!   command line only parses and prints;
//! - [`certificate_file`]: the PEM files an operator names (a processor's
//!   CA, a claim proof).

pub mod authority;
pub mod certificate_file;
pub mod metrics;
mod model;
pub mod names;
pub mod places;
pub mod project_file;
pub mod proof;
mod refusal;
mod relayed;
mod revocations;
pub mod rules;
pub mod server;
pub mod share_link;
pub mod store;
pub mod views;

use std::path::{Path, PathBuf};

pub use model::{
    AccessDuration, AccountId, ActiveLink, Grant, GrantSource, LinkSecret, Place, PlaceId,
    ProjectKey, Remaining, Role, ShareLink, Status, Timestamp,
};
pub use names::{account_for_enrolment, check_site_name, mint_place_id};
pub use places::{
    AccessEntry, PlaceAccess, Places, access_list, guidance_for, places_for, status_for,
};
pub use project_file::ProjectFile;
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
    #[error("the cloud database ({context}): {}", database_error(source))]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the cloud database's schema is version {found}, newer than this handoff's ({known}): \
         run a handoff at least as new as the one that migrated it"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error(
        "the cloud database is busy: the transaction conflicted with others {tries} times; \
         nothing was applied, send it again"
    )]
    Busy { tries: u32 },
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
    #[error("'{text}' is not a share link: it looks like NUMBER:SECRET")]
    NotAShareLink { text: String },
    #[error("{} is not a handoff project file: {reason}", path.display())]
    NotAProjectFile { path: PathBuf, reason: String },
    #[error("{} exists: a project file is written once (pick another path)", path.display())]
    ProjectFileExists { path: PathBuf },
    #[error("{} holds no PEM certificate: {reason}", path.display())]
    NoPemCertificate { path: PathBuf, reason: String },
    #[error("'{name}' cannot be a site name: use letters, digits, spaces or dashes")]
    BadSiteName { name: String },
    #[error("'{text}' is not an email address (the myLutron account): {why}")]
    NotAnEmail { text: String, why: &'static str },
    #[error(
        "the site name '{name}' was revoked: its certificates stay refused, so it cannot be \
         enrolled again (enroll the site box under another name)"
    )]
    RevokedName { name: String },
    #[error("no daemon is enrolled as '{name}' (`handoff cloud daemon list` shows who is)")]
    NoSuchDaemon { name: String },
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

/// A PostgreSQL error as one line: the server's own message when it sent
/// one (tokio-postgres shows only "db error"), else the causes in order.
fn database_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}
