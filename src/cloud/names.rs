//! The names the cloud hands out and the ones it takes from an operator:
//! the Place ids it mints, and the site name and account a daemon is
//! enrolled under.
//!
//! A site name becomes a directory (`DATA/daemons/NAME`) and a certificate
//! subject, and an account is a myLutron email; checking them here, before
//! anything is written, keeps a bad name from leaving half a bundle behind.

use super::CloudError;
use super::model::{AccountId, PlaceId};
use super::store::fresh_secret;

/// A fresh random Place id: `place-` and 12 hex digits (48 random bits).
///
/// # Errors
/// [`CloudError::Failed`] when there is no randomness.
pub fn mint_place_id() -> Result<PlaceId, CloudError> {
    let secret = fresh_secret()?;
    Ok(PlaceId(format!("place-{}", &secret[..12])))
}

/// Whether `name` can name an enrolled site: not blank, and nothing that
/// would make it a path (`/`) or cut it short (NUL).
///
/// # Errors
/// [`CloudError::BadSiteName`].
pub fn check_site_name(name: &str) -> Result<(), CloudError> {
    if name.trim().is_empty() || name.contains(['/', '\0']) {
        return Err(CloudError::BadSiteName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The myLutron account `email` names, for enrolling a daemon: it must at
/// least look like an email address.
///
/// # Errors
/// [`CloudError::NotAnEmail`].
pub fn account_for_enrolment(email: &str) -> Result<AccountId, CloudError> {
    AccountId::parse(email).map_err(|e| CloudError::NotAnEmail {
        text: email.to_owned(),
        why: e.why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_place_id_is_place_and_twelve_hex_digits_and_fresh() {
        let a = mint_place_id().unwrap();
        let b = mint_place_id().unwrap();
        for id in [&a, &b] {
            let hex = id.0.strip_prefix("place-").expect(&id.0);
            assert_eq!(hex.len(), 12, "{id}");
            assert!(
                hex.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{id}"
            );
        }
        assert_ne!(a, b);
    }

    #[test]
    fn a_site_name_is_not_blank_and_not_a_path() {
        for good in ["lake-house", "Lake House 2", "ü"] {
            check_site_name(good).expect(good);
        }
        for bad in ["", "   ", "a/b", "/", "a\0b"] {
            let e = check_site_name(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("'{bad}' cannot be a site name: use letters, digits, spaces or dashes")
            );
        }
    }

    #[test]
    fn an_enrolment_account_is_an_email_and_is_normalised() {
        assert_eq!(
            account_for_enrolment(" Tech@Example.com ").unwrap(),
            AccountId::new("tech@example.com")
        );
        for (bad, why) in [
            ("", "no @"),
            ("tech", "no @"),
            ("tech.example.com", "no @"),
            ("tech@example", "the domain has no top-level domain"),
        ] {
            let e = account_for_enrolment(bad).expect_err(bad);
            assert!(
                e.to_string().starts_with(&format!(
                    "'{bad}' is not an email address (the myLutron account): {why}"
                )),
                "{e}"
            );
        }
    }
}
