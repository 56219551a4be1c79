//! A share link as people pass it on: `NUMBER:SECRET`, what `cloud link
//! new` prints and `cloud link redeem` reads.
//!
//! One printer ([`fmt::Display`]) and one parser ([`FromStr`]), so that
//! whatever is handed out reads back as the same link. `Debug` stays
//! redacted (the secret grants access); `Display` is the handed-out form
//! and carries it.

use std::fmt;
use std::str::FromStr;

use super::CloudError;
use super::model::{AccessDuration, AccountId, LinkSecret, PlaceId, ShareLink, Timestamp};
use super::refusal::Refusal;
use super::rules::{Command, Event};
use super::store::{CloudStore, fresh_secret};

impl fmt::Display for ShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.number, self.secret.0)
    }
}

impl FromStr for ShareLink {
    type Err = CloudError;

    /// Reads `NUMBER:SECRET`: a decimal link number that fits in 64 bits,
    /// a colon, and a secret that is not empty (it may hold colons).
    fn from_str(text: &str) -> Result<ShareLink, CloudError> {
        let not_a_link = || CloudError::NotAShareLink {
            text: text.to_owned(),
        };
        let (number, secret) = text.split_once(':').ok_or_else(not_a_link)?;
        let number = number.parse::<u64>().map_err(|_| not_a_link())?;
        if secret.is_empty() {
            return Err(not_a_link());
        }
        Ok(ShareLink {
            number,
            secret: LinkSecret(secret.to_owned()),
        })
    }
}

/// Generates `place`'s share link for `by` (disabling the old one): a fresh
/// secret, and the number the rules assign.
///
/// # Errors
/// [`CloudError`] when the store or the randomness fails; the inner
/// [`Refusal`] when a rule refuses.
pub fn new_share_link(
    store: &CloudStore,
    place: &PlaceId,
    by: &AccountId,
    duration: AccessDuration,
    now: Timestamp,
) -> Result<Result<ShareLink, Refusal>, CloudError> {
    let (cmd, secret) = new_link_command(place, by, duration)?;
    Ok(store
        .execute(&cmd, now)?
        .map(|events| issued_link(&events, secret)))
}

/// The command that generates `place`'s share link for `by`, with a fresh
/// secret; [`issued_link`] reads the link it made from its events.
///
/// # Errors
/// [`CloudError`] when the randomness fails.
pub fn new_link_command(
    place: &PlaceId,
    by: &AccountId,
    duration: AccessDuration,
) -> Result<(Command, LinkSecret), CloudError> {
    let secret = LinkSecret(fresh_secret()?);
    let cmd = Command::NewShareLink {
        place: place.clone(),
        by: by.clone(),
        secret: secret.clone(),
        duration,
    };
    Ok((cmd, secret))
}

/// The link that `events` report created, with the secret the caller chose.
/// Without such an event the number reads 0, as the command line always
/// printed it.
pub fn issued_link(events: &[Event], secret: LinkSecret) -> ShareLink {
    let number = events
        .iter()
        .find_map(|e| match e {
            Event::ShareLinkCreated { number, .. } => Some(*number),
            _ => None,
        })
        .unwrap_or_default();
    ShareLink { number, secret }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(number: u64, secret: &str) -> ShareLink {
        ShareLink {
            number,
            secret: LinkSecret(secret.into()),
        }
    }

    #[test]
    fn a_printed_link_reads_back_as_the_same_link() {
        for l in [link(0, "a"), link(7, "0f3c9e"), link(u64::MAX, "x:y")] {
            let text = l.to_string();
            assert_eq!(text.parse::<ShareLink>().expect(&text), l);
        }
        assert_eq!(link(3, "abc").to_string(), "3:abc");
    }

    #[test]
    fn the_secret_is_everything_after_the_first_colon() {
        assert_eq!("12:ab:cd".parse::<ShareLink>().unwrap(), link(12, "ab:cd"));
    }

    #[test]
    fn what_is_not_number_colon_secret_is_not_a_share_link() {
        for bad in [
            "",
            ":",
            "12",
            "12abc",
            ":abc",
            "x:abc",
            "-1:abc",
            " 1:abc",
            "1.5:abc",
            "18446744073709551616:abc",
            "99999999999999999999999:abc",
            "12:",
        ] {
            match bad.parse::<ShareLink>() {
                Err(e @ CloudError::NotAShareLink { .. }) => assert_eq!(
                    e.to_string(),
                    format!("'{bad}' is not a share link: it looks like NUMBER:SECRET")
                ),
                other => panic!("{bad:?} read as {other:?}"),
            }
        }
    }

    #[test]
    fn the_issued_link_carries_the_number_the_rules_assigned() {
        let secret = LinkSecret("s".into());
        let events = [
            Event::ShareLinkDisabled {
                place: PlaceId("p".into()),
                number: 1,
            },
            Event::ShareLinkCreated {
                place: PlaceId("p".into()),
                by: AccountId::new("a@example.com"),
                number: 2,
            },
        ];
        assert_eq!(issued_link(&events, secret.clone()), link(2, "s"));
        assert_eq!(issued_link(&[], secret), link(0, "s"));
    }

    #[test]
    fn a_new_link_printed_and_read_back_is_redeemed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CloudStore::open(&dir.path().join("data")).unwrap();
        let now = Timestamp(1_800_000_000);
        let (place, owner) = (PlaceId("p".into()), AccountId::new("o@example.com"));
        store
            .execute(
                &Command::CreatePlace {
                    place: place.clone(),
                    by: owner.clone(),
                    key: crate::cloud::ProjectKey("k".into()),
                    remote_services: true,
                },
                now,
            )
            .unwrap()
            .unwrap();
        let first = new_share_link(&store, &place, &owner, AccessDuration::SevenDays, now)
            .unwrap()
            .unwrap();
        let second = new_share_link(&store, &place, &owner, AccessDuration::SevenDays, now)
            .unwrap()
            .unwrap();
        assert!(second.number > first.number && second.secret != first.secret);
        let redeem = |link: &str| {
            store.execute(
                &Command::RedeemLink {
                    place: place.clone(),
                    by: AccountId::new("tech@example.com"),
                    link: link.parse().unwrap(),
                },
                now,
            )
        };
        assert!(redeem(&first.to_string()).unwrap().is_err(), "the old link");
        assert!(redeem(&second.to_string()).unwrap().is_ok());
        let stranger = AccountId::new("x@example.com");
        assert!(
            new_share_link(&store, &place, &stranger, AccessDuration::SevenDays, now)
                .unwrap()
                .is_err()
        );
    }
}
