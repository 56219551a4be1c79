//! The nouns of the Place rules: who, which Place, when, for how long.
//!
//! Everything derives serde because the cloud layer stores Places in its
//! embedded store and carries them in CBOR; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::processor::Serial;

/// Seconds since the Unix epoch. The rules never read a clock: the caller
/// passes `now` in, so tests move time by adding seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self` plus `seconds`, saturating: an absurd duration must not wrap
    /// into an expiry in the past.
    pub fn plus(self, seconds: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds))
    }
}

const DAY: u64 = 24 * 60 * 60;

/// A myLutron account, named by its email address, which is how the
/// article says access is shared ("obtain the myLutron email address").
///
/// Emails are compared case-insensitively and without surrounding spaces,
/// so that `Pro@Example.com ` and `pro@example.com` are one account.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct AccountId(String);

impl AccountId {
    pub fn new(email: &str) -> AccountId {
        AccountId(email.trim().to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Place's identifier in the cloud.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct PlaceId(pub String);

impl fmt::Display for PlaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secret a project file carries that ties it to its Place: holding
/// the file (Browse Local) is what presenting this key stands for.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProjectKey(pub String);

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A key in a log line would grant access to whoever reads the log.
        f.write_str("ProjectKey(..)")
    }
}

/// The random part of a share link, chosen by the caller (the rules have no
/// randomness, as they have no clock).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkSecret(pub String);

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// A share link as handed out: the Place's link number plus the secret.
///
/// The number is assigned by the rules and only ever grows, so a disabled
/// link never matches again even if a caller reuses a secret.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ShareLink {
    pub number: u64,
    pub secret: LinkSecret,
}

/// The Place's live share link and its terms.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ActiveLink {
    pub link: ShareLink,
    /// Who generated it: a redeemed grant never outlives their access.
    pub by: AccountId,
    pub duration: AccessDuration,
}

/// The Access Duration dropdown. The article names the dropdown but not its
/// entries; these are the choices handoff offers, and a share is always one
/// of them, never an arbitrary number of seconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum AccessDuration {
    OneDay,
    SevenDays,
    ThirtyDays,
    OneYear,
    Unlimited,
}

impl AccessDuration {
    pub const ALL: [AccessDuration; 5] = [
        AccessDuration::OneDay,
        AccessDuration::SevenDays,
        AccessDuration::ThirtyDays,
        AccessDuration::OneYear,
        AccessDuration::Unlimited,
    ];

    /// Seconds, or `None` for unlimited.
    pub fn seconds(self) -> Option<u64> {
        match self {
            AccessDuration::OneDay => Some(DAY),
            AccessDuration::SevenDays => Some(7 * DAY),
            AccessDuration::ThirtyDays => Some(30 * DAY),
            AccessDuration::OneYear => Some(365 * DAY),
            AccessDuration::Unlimited => None,
        }
    }

    /// The short name on the wire and on the command line: `1d`, `7d`,
    /// `30d`, `1y`, `unlimited`.
    pub fn code(self) -> &'static str {
        match self {
            AccessDuration::OneDay => "1d",
            AccessDuration::SevenDays => "7d",
            AccessDuration::ThirtyDays => "30d",
            AccessDuration::OneYear => "1y",
            AccessDuration::Unlimited => "unlimited",
        }
    }

    /// The duration [`Self::code`] names.
    pub fn from_code(code: &str) -> Option<AccessDuration> {
        AccessDuration::ALL.into_iter().find(|d| d.code() == code)
    }

    /// When access granted at `now` for this long ends (`None`: never).
    pub fn expiry_from(self, now: Timestamp) -> Option<Timestamp> {
        self.seconds().map(|s| now.plus(s))
    }
}

impl fmt::Display for AccessDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessDuration::OneDay => "1 day",
            AccessDuration::SevenDays => "7 days",
            AccessDuration::ThirtyDays => "30 days",
            AccessDuration::OneYear => "1 year",
            AccessDuration::Unlimited => "unlimited",
        })
    }
}

/// The article's two kinds of people: the homeowner (Homeowner Mode of the
/// app, claimed with the button) and the pro installer (everyone given
/// access by a share, a link or the project file).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Role {
    Homeowner,
    ProInstaller,
}

/// How a grant came about; kept so that "no grant outlives its sharer"
/// can be checked and so that the access list can say who shared.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum GrantSource {
    /// The account that created the Place with remote services on.
    Creator,
    /// The project file was presented (Browse Local, green cloud).
    ProjectFile,
    /// The button press of a homeowner claim.
    Claim,
    /// Shared by email by this account.
    Share { by: AccountId },
    /// Redeemed a share link generated by this account.
    Link { by: AccountId },
}

/// One account's access to one Place.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    /// `None`: unlimited. Access ends at this instant (`now >= expires`
    /// means no access).
    pub expires: Option<Timestamp>,
    pub source: GrantSource,
}

impl Grant {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    pub fn remaining(&self, now: Timestamp) -> Remaining {
        match self.expires {
            None => Remaining::Unlimited,
            Some(e) => Remaining::Seconds(e.0.saturating_sub(now.0)),
        }
    }
}

/// Time left on a grant, as Manage Access and the Places list show it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Remaining {
    Seconds(u64),
    Unlimited,
}

/// A project in the cloud.
///
/// The homeowner is not a separate field: it is the grant whose role is
/// [`Role::Homeowner`], so there is one source of truth and "at most one
/// homeowner" is a property of the grants that tests can count.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Place {
    pub id: PlaceId,
    /// Once true, never false again (the Designer option greys out).
    pub remote_services: bool,
    pub project_key: ProjectKey,
    /// Every grant, live or expired; an expired grant is kept until it is
    /// replaced or revoked but gives no access.
    pub grants: BTreeMap<AccountId, Grant>,
    /// The one active share link, if any.
    pub share_link: Option<ActiveLink>,
    /// How many links this Place has ever issued: the next link's number.
    pub links_issued: u64,
    /// Processors activated in this Place: a claim needs one, and while
    /// there is one the system can still be claimed with its button.
    pub processors: BTreeSet<Serial>,
}

impl Place {
    /// The homeowner, if one is established (a claim makes the grant
    /// unlimited, so it never expires).
    pub fn homeowner(&self) -> Option<&AccountId> {
        self.grants
            .iter()
            .find(|(_, g)| g.role == Role::Homeowner)
            .map(|(a, _)| a)
    }

    /// `account`'s live grant, if it has access at `now`. Without remote
    /// services nobody reaches the Place, whatever the grants say.
    pub fn access(&self, account: &AccountId, now: Timestamp) -> Option<&Grant> {
        if !self.remote_services {
            return None;
        }
        self.grants.get(account).filter(|g| g.is_live(now))
    }

    /// Accounts with live access at `now`.
    pub fn live_accounts(&self, now: Timestamp) -> impl Iterator<Item = &AccountId> {
        self.grants
            .iter()
            .filter(move |(_, g)| self.remote_services && g.is_live(now))
            .map(|(a, _)| a)
    }
}

/// The designer's cloud icon for a project file.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Status {
    /// You have access, or opening the project file gives it to you.
    Green,
    /// A homeowner account is established and you lack access.
    Yellow,
    /// Remote services are disabled.
    Grey,
}

impl Status {
    /// What the integrator should do, in the vendor's words.
    pub fn guidance(self) -> &'static str {
        match self {
            // Without the account, green cannot say more: see
            // `places::guidance_for`, which the cloud answers with.
            Status::Green => {
                "you have access, or no homeowner is established and opening the project file \
                 or a claim with the button gives it"
            }
            Status::Yellow => super::refusal::ASK_HOMEOWNER,
            Status::Grey => super::refusal::NO_REMOTE_SERVICES,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Green => "green",
            Status::Yellow => "yellow",
            Status::Grey => "grey",
        })
    }
}
