//! Who is signed in: one-time sign-in links, sessions, their cookies, the
//! sign-in rate limits, and the clock they all read.
//!
//! A sign-in link and a session are 128 random bits each, kept in the
//! store only as their SHA-256 ([`crate::cloud::store::portal`]). The
//! session cookie is `HttpOnly; Secure; SameSite=Strict` (no `Secure`
//! only when the portal serves plain HTTP on loopback behind a proxy).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cloud::{AccountId, Timestamp};

/// How long a sign-in link works: the 15 minutes.
pub const SIGN_IN_VALIDITY: u64 = 15 * 60;
/// How long a session lasts before signing in again.
pub const SESSION_LIFETIME: u64 = 12 * 3600;
pub const SESSION_COOKIE: &str = "handoff_session";
/// The cookie that carries the CSRF token of the forms shown before
/// signing in (double submit: the form must repeat it).
pub const PRE_SESSION_COOKIE: &str = "handoff_presession";

/// The portal's clock: the system's, plus an offset a test moves forward
/// (a sign-in link's 15 minutes are tested without waiting them).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead: Arc<AtomicU64>,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        crate::place::now().plus(self.ahead.load(Ordering::Relaxed))
    }

    /// Moves this clock `seconds` ahead of the system's.
    pub fn advance(&self, seconds: u64) {
        self.ahead.fetch_add(seconds, Ordering::Relaxed);
    }
}

/// The value of cookie `name` in a `Cookie` header, if it is there.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for `name`, alive `max_age` seconds (0: delete).
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly;{} SameSite=Strict",
        if secure { " Secure;" } else { "" }
    )
}

/// Where to go after signing in: a path on this site, or `/`. A redirect
/// parameter that could leave the site (`//host`, `/\host`, a scheme, a
/// control character) is dropped.
pub fn local_target(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Sign-in requests allowed per window, per email address and per client.
const PER_ADDRESS: usize = 5;
const PER_CLIENT: usize = 20;
const WINDOW: u64 = 15 * 60;
/// Past this many tracked keys, the ones with nothing in the window go.
const MAX_TRACKED: usize = 10_000;

/// Sign-in request counts, in memory: a restart forgets them, and each
/// `cloud serve` node counts its own (good enough against a mail flood
/// from one client; not a global quota).
#[derive(Debug, Default)]
pub struct SignInLimits {
    by_address: HashMap<String, Vec<u64>>,
    by_client: HashMap<IpAddr, Vec<u64>>,
}

/// Which limit a refused sign-in request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    Address,
    Client,
}

impl SignInLimits {
    /// Counts a sign-in request for `account` from `client` at `now`, or
    /// says which limit it is over (and then counts nothing).
    pub fn admit(
        &mut self,
        account: &AccountId,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<(), Limited> {
        let since = now.0.saturating_sub(WINDOW);
        let address = self
            .by_address
            .entry(account.as_str().to_owned())
            .or_default();
        address.retain(|t| *t > since);
        if address.len() >= PER_ADDRESS {
            return Err(Limited::Address);
        }
        let from = self.by_client.entry(client).or_default();
        from.retain(|t| *t > since);
        if from.len() >= PER_CLIENT {
            return Err(Limited::Client);
        }
        from.push(now.0);
        if let Some(address) = self.by_address.get_mut(account.as_str()) {
            address.push(now.0);
        }
        if self.by_address.len() + self.by_client.len() > MAX_TRACKED {
            self.by_address
                .retain(|_, ts| ts.iter().any(|t| *t > since));
            self.by_client.retain(|_, ts| ts.iter().any(|t| *t > since));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_parameter_never_leaves_the_site() {
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "evil",
            "",
            "/a\r\nLocation: //x",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_target(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_target(None), "/");
        assert_eq!(local_target(Some("/places/p1")), "/places/p1");
    }

    #[test]
    fn sign_in_requests_are_limited_per_address_and_per_client() {
        let mut limits = SignInLimits::default();
        let now = Timestamp(1_800_000_000);
        let a = AccountId::new("a@example.com");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..PER_ADDRESS {
            limits.admit(&a, ip, now).unwrap();
        }
        assert_eq!(limits.admit(&a, ip, now), Err(Limited::Address));
        // The window passes.
        limits.admit(&a, ip, now.plus(WINDOW + 1)).unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for n in 0..PER_CLIENT {
            let b = AccountId::new(&format!("b{n}@example.com"));
            limits.admit(&b, other, now).unwrap();
        }
        let c = AccountId::new("c@example.com");
        assert_eq!(limits.admit(&c, other, now), Err(Limited::Client));
    }

    #[test]
    fn a_cookie_is_found_by_its_exact_name() {
        let header = Some("x_handoff_session=no; handoff_session=yes; other=1");
        assert_eq!(cookie(header, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(Some("handoff_session="), SESSION_COOKIE), None);
        assert_eq!(cookie(None, SESSION_COOKIE), None);
    }
}
