//! The Place vocabulary both ends of the relay speak: which Place, which
//! account, for how long, which cloud icon, when. Nothing here depends on
//! another module of handoff: the site side (claim, relay, outbox, daemon)
//! and the reference cloud both use it, and neither imports the other.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    /// The account `text` names, when it reads as an email address a
    /// person could have: one `@`, a local part, and a domain of at least
    /// two labels whose last is a top-level domain. A share or a takeover
    /// to `pro@example` (the `.com` forgotten) would give access to nobody
    /// and, in a takeover, lock the integrator out: it is refused before
    /// anything happens.
    ///
    /// # Errors
    /// [`NotAnEmail`], saying what is wrong.
    pub fn parse(text: &str) -> Result<AccountId, NotAnEmail> {
        let refuse = |why: &'static str| NotAnEmail {
            text: text.to_owned(),
            why,
        };
        let email = text.trim();
        if email.len() > 254 {
            return Err(refuse("longer than an email address can be"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(refuse("no @"));
        };
        if domain.contains('@') {
            return Err(refuse("more than one @"));
        }
        if local.is_empty() || local.len() > 64 {
            return Err(refuse("nothing, or too much, before the @"));
        }
        let odd = |c: char| c.is_control() || c.is_whitespace() || "\"(),:;<>[\\]".contains(c);
        if local.chars().any(odd) || local.starts_with('.') || local.ends_with('.') {
            return Err(refuse("a character an address cannot have before the @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(label_ok) {
            return Err(refuse("the part after the @ is not a domain name"));
        }
        let tld = labels[labels.len() - 1];
        let tld_ok = tld.starts_with("xn--")
            || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
        if labels.len() < 2 || !tld_ok {
            return Err(refuse(
                "the domain has no top-level domain (name@company.com, not name@company)",
            ));
        }
        Ok(AccountId::new(email))
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

/// Text that is not an email address, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not an email address (a myLutron account): {why}")]
pub struct NotAnEmail {
    pub text: String,
    pub why: &'static str,
}

/// A Place's identifier in the cloud.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct PlaceId(pub String);

impl fmt::Display for PlaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

/// Time left on a grant, as Manage Access and the Places list show it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Remaining {
    Seconds(u64),
    Unlimited,
}

/// Yellow: somebody else owns the system.
pub const ASK_HOMEOWNER: &str = "a homeowner account is established: ask the homeowner for Remote Assistance from Installer (Lutron app: Settings > Help > Remote Assistance from Installer); if they cannot be reached, email SystemSupport@Lutron.com a photo of the processor's MAC address label";

/// Grey: the project is not in the cloud.
pub const NO_REMOTE_SERVICES: &str = "remote services are disabled, so the app shows a Remote Access Code instead of the Share menu: locate the original project file and enable remote services (Tools > Project Settings, then Transfer), or factory-default the processor and remake the project file";

/// Green for an account with access.
pub const HAS_ACCESS: &str = "you have access to this Place";

/// Green for an account without access: nobody is homeowner yet.
pub const NO_HOMEOWNER_YET: &str = "you have no access yet, and no homeowner is established: \
    opening the original project file (Browse Local) or claiming the system with the \
    processor's button gives you access";

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
            Status::Yellow => ASK_HOMEOWNER,
            Status::Grey => NO_REMOTE_SERVICES,
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

/// Now, for the callers that decide (the service, the CLI): the rules
/// themselves never read a clock.
pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}
