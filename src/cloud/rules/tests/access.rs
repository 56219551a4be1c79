//! Sharing by email, share links, Manage Access and expiry.

use super::*;
use crate::cloud::rules::{AccessDuration, Command, Event, Refusal, Role};
use crate::cloud::{PlaceAccess, access_list, places_for};

#[test]
fn share_grants_access_for_the_chosen_duration() {
    for duration in AccessDuration::ALL {
        let mut places = place(true);
        run(&mut places, &share(&designer(), &pro(), duration), T0);
        let expected = match duration.seconds() {
            Some(s) => Remaining::Seconds(s),
            None => Remaining::Unlimited,
        };
        assert_eq!(remaining(&places, &pro(), T0), Some(expected), "{duration}");
    }
}

#[test]
fn share_goes_to_an_email_address() {
    for (typo, why) in [
        ("pro@example", "top-level domain"),
        ("pro.example.com", "no @"),
        ("pro@@example.com", "more than one @"),
        ("pro@example..com", "not a domain name"),
        ("pro name@example.com", "before the @"),
    ] {
        let mut places = place(true);
        let refusal = refused(
            &mut places,
            &share(&designer(), &acct(typo), AccessDuration::SevenDays),
            T0,
        );
        assert_eq!(refusal.rule(), "share_goes_to_an_email_address", "{typo}");
        assert!(refusal.to_string().contains(why), "{typo}: {refusal}");
        assert_eq!(
            remaining(&places, &acct(typo), T0),
            None,
            "{typo}: no grant"
        );
    }
    // Addresses people have: subdomains, plus tags, IDN and punycode.
    for fine in [
        "pro+site@mail.example.co.uk",
        "o'brien@example.com",
        "pro@bücher.de",
        "pro@example.xn--p1ai",
    ] {
        let mut places = place(true);
        run(
            &mut places,
            &share(&designer(), &acct(fine), AccessDuration::SevenDays),
            T0,
        );
        assert!(remaining(&places, &acct(fine), T0).is_some(), "{fine}");
    }
}

#[test]
fn share_cannot_exceed_sharers_remaining_access() {
    let mut places = place(true);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::SevenDays),
        T0,
    );
    let later = T0.plus(4 * DAY);
    let other = acct("other@pro.example");
    let refusal = refused(
        &mut places,
        &share(&pro(), &other, AccessDuration::SevenDays),
        later,
    );
    assert_eq!(
        refusal,
        Refusal::ShareExceedsRemainingAccess {
            by: pro(),
            requested: AccessDuration::SevenDays,
            remaining: Remaining::Seconds(3 * DAY),
        }
    );
    assert!(
        refusal
            .to_string()
            .contains("longer than you currently have")
    );
    refused(
        &mut places,
        &share(&pro(), &other, AccessDuration::Unlimited),
        later,
    );
    run(
        &mut places,
        &share(&pro(), &other, AccessDuration::OneDay),
        later,
    );
}

#[test]
fn homeowner_and_unlimited_grants_share_any_duration() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    run(
        &mut places,
        &share(&owner(), &pro(), AccessDuration::Unlimited),
        T0,
    );
    let other = acct("other@pro.example");
    run(
        &mut places,
        &share(&pro(), &other, AccessDuration::Unlimited),
        T0,
    );
    assert_eq!(
        remaining(&places, &other, T0.plus(9999 * DAY)),
        Some(Remaining::Unlimited)
    );
}

#[test]
fn new_share_link_disables_the_old_one() {
    let mut places = place(true);
    run(
        &mut places,
        &new_link(&designer(), "first", AccessDuration::OneYear),
        T0,
    );
    let events = run(
        &mut places,
        &new_link(&designer(), "second", AccessDuration::OneYear),
        T0,
    );
    assert!(events.contains(&Event::ShareLinkDisabled {
        place: home(),
        number: 0
    }));
    let refusal = refused(&mut places, &redeem(&pro(), 0, "first"), T0);
    assert_eq!(refusal, Refusal::LinkNotActive);
    // Reusing the old secret makes a new link, not the old one again.
    run(
        &mut places,
        &new_link(&designer(), "first", AccessDuration::OneYear),
        T0,
    );
    refused(&mut places, &redeem(&pro(), 0, "first"), T0);
    run(&mut places, &redeem(&pro(), 2, "first"), T0);
}

#[test]
fn share_link_refused_once_a_homeowner_exists() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let refusal = refused(
        &mut places,
        &new_link(&owner(), "s", AccessDuration::OneDay),
        T0,
    );
    assert_eq!(refusal, Refusal::HomeownerEstablished);
    assert!(
        refusal
            .to_string()
            .contains("Remote Assistance from Installer")
    );
}

#[test]
fn share_link_stops_working_after_homeowner_claims() {
    let mut places = place(true);
    run(
        &mut places,
        &new_link(&designer(), "s", AccessDuration::OneYear),
        T0,
    );
    run(&mut places, &claim(&owner()), T0);
    assert_eq!(
        refused(&mut places, &redeem(&pro(), 0, "s"), T0),
        Refusal::LinkNotActive
    );
    // Nor after the home is released again: the claim disabled it for good.
    run(&mut places, &release(&owner()), T0);
    assert_eq!(
        refused(&mut places, &redeem(&pro(), 0, "s"), T0),
        Refusal::LinkNotActive
    );
}

#[test]
fn redeeming_a_live_link_grants_access() {
    let mut places = place(true);
    run(
        &mut places,
        &new_link(&designer(), "s", AccessDuration::SevenDays),
        T0,
    );
    let events = run(&mut places, &redeem(&pro(), 0, "s"), T0);
    assert!(
        matches!(events.as_slice(), [Event::AccessGranted { account, .. }] if *account == pro())
    );
    assert_eq!(
        remaining(&places, &pro(), T0),
        Some(Remaining::Seconds(7 * DAY))
    );
    // A link serves many: a second person redeems it too.
    run(&mut places, &redeem(&owner(), 0, "s"), T0);
    assert!(has_access(&places, &owner(), T0));
    assert_eq!(
        refused(&mut places, &redeem(&pro(), 0, "wrong"), T0),
        Refusal::LinkNotActive
    );
}

#[test]
fn link_grant_is_capped_by_its_creators_access() {
    let mut places = place(true);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::SevenDays),
        T0,
    );
    run(
        &mut places,
        &new_link(&pro(), "s", AccessDuration::SevenDays),
        T0,
    );
    let later = T0.plus(5 * DAY);
    let other = acct("other@pro.example");
    run(&mut places, &redeem(&other, 0, "s"), later);
    assert_eq!(
        remaining(&places, &other, later),
        Some(Remaining::Seconds(2 * DAY))
    );
    // Once the creator's access is gone the link grants nothing.
    let third = acct("third@pro.example");
    assert_eq!(
        refused(&mut places, &redeem(&third, 0, "s"), T0.plus(7 * DAY)),
        Refusal::LinkNotActive
    );
}

#[test]
fn access_list_shows_remaining_time() {
    let mut places = place(true);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::ThirtyDays),
        T0,
    );
    let p = places.get(&home()).expect("place");
    let list = access_list(p, &designer(), T0.plus(DAY)).expect("listed");
    let lines: Vec<_> = list
        .iter()
        .map(|e| (e.account.clone(), e.remaining))
        .collect();
    assert_eq!(
        lines,
        vec![
            (designer(), Remaining::Unlimited),
            (pro(), Remaining::Seconds(29 * DAY)),
        ]
    );
    let stranger = acct("stranger@example.com");
    assert_eq!(
        access_list(p, &stranger, T0),
        Err(Refusal::NoAccess { account: stranger })
    );
}

#[test]
fn revoke_removes_access() {
    let mut places = place(false);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::Unlimited),
        T0,
    );
    let events = run(&mut places, &revoke(&pro(), &designer(), false), T0);
    assert_eq!(
        events,
        vec![Event::AccessRevoked {
            place: home(),
            account: designer(),
            by: pro()
        }]
    );
    assert!(!has_access(&places, &designer(), T0));
    assert!(matches!(
        refused(&mut places, &revoke(&pro(), &designer(), false), T0),
        Refusal::NothingToRevoke { .. }
    ));
}

#[test]
fn only_accounts_with_access_manage_a_place() {
    let mut places = place(true);
    let stranger = acct("stranger@example.com");
    for cmd in [
        share(&stranger, &pro(), AccessDuration::OneDay),
        new_link(&stranger, "s", AccessDuration::OneDay),
        revoke(&stranger, &designer(), false),
    ] {
        assert_eq!(
            refused(&mut places, &cmd, T0),
            Refusal::NoAccess {
                account: stranger.clone()
            }
        );
    }
}

#[test]
fn homeowner_cannot_be_revoked_by_others() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let refusal = refused(&mut places, &revoke(&designer(), &owner(), true), T0);
    assert_eq!(refusal, Refusal::TargetIsHomeowner { target: owner() });
    assert!(refusal.to_string().contains("Lutron Tech Support"));
    // Nor replaced by a share.
    refused(
        &mut places,
        &share(&designer(), &owner(), AccessDuration::OneDay),
        T0,
    );
    // The homeowner removes themselves with Remove Home from Account.
    run(&mut places, &release(&owner()), T0);
    assert!(!has_access(&places, &owner(), T0));
}

#[test]
fn last_person_cannot_revoke_self_without_force() {
    let mut places = place(false);
    let refusal = refused(&mut places, &revoke(&designer(), &designer(), false), T0);
    assert_eq!(refusal, Refusal::LastAccessWithoutProcessor);
    assert!(refusal.to_string().contains("unrecoverable"));
    // An expired grant is nobody: the designer is still the last.
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::OneDay),
        T0,
    );
    refused(
        &mut places,
        &revoke(&designer(), &designer(), false),
        T0.plus(DAY),
    );
    // With someone else left, leaving is fine.
    run(&mut places, &revoke(&designer(), &designer(), false), T0);
}

#[test]
fn forced_last_revoke_deletes_the_place() {
    let mut places = place(false);
    let events = run(&mut places, &revoke(&designer(), &designer(), true), T0);
    assert_eq!(events.last(), Some(&Event::PlaceDeleted { place: home() }));
    assert!(places.get(&home()).is_none());
    assert!(matches!(
        refused(&mut places, &present(&designer(), key()), T0),
        Refusal::NoSuchPlace { .. }
    ));
}

#[test]
fn last_person_may_revoke_self_when_a_processor_is_activated() {
    let mut places = place(true);
    run(&mut places, &revoke(&designer(), &designer(), false), T0);
    assert!(places.get(&home()).is_some());
    // The button still recovers the system.
    run(&mut places, &claim(&owner()), T0);
}

#[test]
fn grants_expire() {
    let mut places = place(true);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::OneDay),
        T0,
    );
    assert!(has_access(&places, &pro(), T0.plus(DAY - 1)));
    assert!(!has_access(&places, &pro(), T0.plus(DAY)));
    assert!(matches!(
        refused(
            &mut places,
            &share(&pro(), &owner(), AccessDuration::OneDay),
            T0.plus(DAY)
        ),
        Refusal::NoAccess { .. }
    ));
}

#[test]
fn places_list_shows_only_reachable_places_with_remaining_time() {
    let mut places = place(true);
    run(
        &mut places,
        &share(&designer(), &pro(), AccessDuration::SevenDays),
        T0,
    );
    run(
        &mut places,
        &Command::CreatePlace {
            place: PlaceId("dark".into()),
            by: pro(),
            key: ProjectKey("k2".into()),
            remote_services: false,
        },
        T0,
    );
    let list = places_for(&places, &pro(), T0.plus(DAY));
    assert_eq!(
        list,
        vec![PlaceAccess {
            place: home(),
            role: Role::ProInstaller,
            remaining: Remaining::Seconds(6 * DAY),
        }]
    );
    assert!(places_for(&places, &pro(), T0.plus(7 * DAY)).is_empty());
}
