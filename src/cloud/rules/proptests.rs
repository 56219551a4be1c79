//! Random command sequences with advancing time, checking the issue's
//! invariants after every step, refused or not:
//! - at most one homeowner;
//! - no grant outlives its sharer's access at grant time;
//! - a disabled or post-claim link never grants;
//! - remote services never go from on to off;
//!
//! and that a refusal changes nothing and no grant exists without remote
//! services.
//!
//! The universe is small on purpose (four accounts, two processors, two
//! link secrets, one Place id) so that random commands collide: the same
//! person claims twice, a stale link is redeemed, the last person leaves.

use proptest::prelude::*;
use proptest::sample::select;

use super::tests::{DAY, T0, acct, home, key};
use super::*;
use crate::cloud::{Places, Timestamp};

fn account() -> impl Strategy<Value = AccountId> {
    select(vec![
        "a@x.example",
        "b@x.example",
        "c@x.example",
        "d@x.example",
    ])
    .prop_map(acct)
}

fn project_key() -> impl Strategy<Value = ProjectKey> {
    prop_oneof![4 => Just(key()), 1 => Just(ProjectKey("wrong".into()))]
}

fn duration() -> impl Strategy<Value = AccessDuration> {
    select(AccessDuration::ALL.to_vec())
}

fn processor() -> impl Strategy<Value = Serial> {
    select(vec![Serial(1), Serial(2)])
}

fn secret() -> impl Strategy<Value = LinkSecret> {
    select(vec!["s1", "s2"]).prop_map(|s| LinkSecret(s.into()))
}

fn command() -> impl Strategy<Value = Command> {
    let place = home;
    prop_oneof![
        1 => (account(), any::<bool>()).prop_map(move |(by, remote_services)| Command::CreatePlace {
            place: place(), by, key: key(), remote_services,
        }),
        1 => (project_key(), any::<bool>()).prop_map(move |(key, enabled)| {
            Command::SetRemoteServices { place: place(), key, enabled }
        }),
        1 => (account(), any::<bool>()).prop_map(move |(by, enabled)| {
            Command::SetRemoteServicesAsCreator { place: place(), by, enabled }
        }),
        1 => (project_key(), processor()).prop_map(move |(key, processor)| {
            Command::ActivateProcessor { place: place(), key, processor }
        }),
        2 => (account(), project_key()).prop_map(move |(by, key)| {
            Command::PresentProjectKey { place: place(), by, key }
        }),
        2 => (account(), processor(), prop::bool::weighted(0.9)).prop_map(
            move |(by, processor, press_verified)| Command::Claim {
                place: place(), by, processor, press_verified,
            }
        ),
        1 => account().prop_map(move |by| Command::Release { place: place(), by }),
        1 => Just(Command::SupportRemovesHomeowner { place: place() }),
        4 => (account(), account(), duration()).prop_map(move |(by, email, duration)| {
            Command::ShareAccess { place: place(), by, email, duration }
        }),
        3 => (account(), secret(), duration()).prop_map(move |(by, secret, duration)| {
            Command::NewShareLink { place: place(), by, secret, duration }
        }),
        4 => (account(), 0..4u64, secret()).prop_map(move |(by, number, secret)| {
            Command::RedeemLink { place: place(), by, link: ShareLink { number, secret } }
        }),
        2 => (account(), account(), prop::bool::weighted(0.2)).prop_map(
            move |(by, target, force)| Command::RevokeAccess { place: place(), by, target, force }
        ),
    ]
}

fn elapsed() -> impl Strategy<Value = u64> {
    select(vec![0, 3600, DAY, 3 * DAY, 10 * DAY, 400 * DAY])
}

/// What the test itself remembers about links, independently of the rules.
#[derive(Default)]
struct LinkHistory {
    live: Option<ShareLink>,
    dead: Vec<ShareLink>,
}

impl LinkHistory {
    fn kill_live(&mut self) {
        if let Some(link) = self.live.take() {
            self.dead.push(link);
        }
    }
}

fn expiry_le(grant: Option<Timestamp>, sharer: Option<Timestamp>) -> bool {
    match (grant, sharer) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(g), Some(s)) => g <= s,
    }
}

fn check_step(
    before: &Places,
    after: &Places,
    cmd: &Command,
    outcome: &Result<Vec<Event>, Refusal>,
    now: Timestamp,
    links: &mut LinkHistory,
) -> Result<(), TestCaseError> {
    let pre = before.get(&home());
    let post = after.get(&home());
    let events = match outcome {
        Err(_) => {
            prop_assert_eq!(before, after, "a refusal changed the state");
            &Vec::new()
        }
        Ok(events) => events,
    };

    // The Place page's dry run of a revoke says what applying it did.
    if let (
        Some(p),
        Command::RevokeAccess {
            by, target, force, ..
        },
    ) = (pre, cmd)
    {
        let checked = super::check_revoke(p, by, target, *force, now);
        match (&checked, outcome) {
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (Ok(deletes), Ok(events)) => prop_assert_eq!(
                *deletes,
                events
                    .iter()
                    .any(|e| matches!(e, Event::PlaceDeleted { .. }))
            ),
            _ => prop_assert!(
                false,
                "check_revoke said {:?}, applying {:?}",
                checked,
                outcome
            ),
        }
    }

    if let Some(p) = post {
        let homeowners = p
            .grants
            .values()
            .filter(|g| g.role == Role::Homeowner)
            .count();
        prop_assert!(homeowners <= 1, "{} homeowners after {:?}", homeowners, cmd);
        // Nobody can come by a grant while the project is not in the
        // cloud: its creator's is the only one, dormant, giving no access.
        prop_assert!(
            p.remote_services
                || (p.grants.len() <= 1
                    && p.grants.values().all(|g| g.source == GrantSource::Creator)),
            "grants without remote services"
        );
        prop_assert!(
            p.remote_services || p.live_accounts(now).next().is_none(),
            "access without remote services"
        );
    }

    if let (Some(pre), Some(post)) = (pre, post) {
        prop_assert!(
            !pre.remote_services || post.remote_services,
            "remote services went off after {:?}",
            cmd
        );
    }

    for event in events {
        let Event::AccessGranted { grant, .. } = event else {
            continue;
        };
        let sharer = match &grant.source {
            GrantSource::Share { by } | GrantSource::Link { by } => by,
            _ => continue,
        };
        let sharer_grant = pre.and_then(|p| p.access(sharer, now));
        prop_assert!(
            sharer_grant.is_some(),
            "{} shared without access: {:?}",
            sharer,
            cmd
        );
        if let Some(s) = sharer_grant {
            prop_assert!(
                expiry_le(grant.expires, s.expires),
                "grant {:?} outlives its sharer's {:?} after {:?}",
                grant.expires,
                s.expires,
                cmd
            );
        }
    }

    if let Command::RedeemLink { link, .. } = cmd {
        let granted = events
            .iter()
            .any(|e| matches!(e, Event::AccessGranted { .. }));
        let homeowner = pre.is_some_and(|p| p.homeowner().is_some());
        prop_assert!(
            !(granted && (links.dead.contains(link) || homeowner)),
            "a disabled or post-claim link granted access: {:?}",
            link
        );
    }

    // Keep the test's own link history.
    if outcome.is_ok() {
        match cmd {
            Command::NewShareLink { secret, .. } => {
                links.kill_live();
                let number = events.iter().find_map(|e| match e {
                    Event::ShareLinkCreated { number, .. } => Some(*number),
                    _ => None,
                });
                links.live = number.map(|number| ShareLink {
                    number,
                    secret: secret.clone(),
                });
            }
            Command::Claim { .. } => links.kill_live(),
            _ => {}
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::PlaceDeleted { .. }))
        {
            links.kill_live();
        }
        // A Place created anew is another project: its links start again
        // (callers never reuse a deleted Place's id, see `Command::CreatePlace`).
        if events
            .iter()
            .any(|e| matches!(e, Event::PlaceCreated { .. }))
        {
            *links = LinkHistory::default();
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_over_random_command_sequences(
        remote_services in any::<bool>(),
        steps in prop::collection::vec((command(), elapsed()), 1..60),
    ) {
        let mut places = Places::default();
        let mut links = LinkHistory::default();
        let mut now = T0;
        let create = Command::CreatePlace {
            place: home(),
            by: acct("a@x.example"),
            key: key(),
            remote_services,
        };
        places.apply(&create, now).expect("a fresh Place");
        for (cmd, dt) in steps {
            now = now.plus(dt);
            let before = places.clone();
            let outcome = places.apply(&cmd, now);
            check_step(&before, &places, &cmd, &outcome, now, &mut links)?;
        }
    }
}
