//! One test per rule, named as in the table of [`super`].

use super::*;
use crate::cloud::{PlaceAccess, Places, Remaining, Status, access_list, places_for, status_for};

pub(super) const T0: Timestamp = Timestamp(1_700_000_000);
pub(super) const DAY: u64 = 24 * 60 * 60;
pub(super) const PROCESSOR: Serial = Serial(0x0236_e6a7);

pub(super) fn acct(email: &str) -> AccountId {
    AccountId::new(email)
}

pub(super) fn home() -> PlaceId {
    PlaceId("home".into())
}

pub(super) fn key() -> ProjectKey {
    ProjectKey("project-key".into())
}

fn designer() -> AccountId {
    acct("designer@pro.example")
}

fn pro() -> AccountId {
    acct("pro@pro.example")
}

fn owner() -> AccountId {
    acct("owner@home.example")
}

fn create(remote_services: bool) -> Command {
    Command::CreatePlace {
        place: home(),
        by: designer(),
        key: key(),
        remote_services,
    }
}

fn activate() -> Command {
    Command::ActivateProcessor {
        place: home(),
        key: key(),
        processor: PROCESSOR,
    }
}

fn share(by: &AccountId, email: &AccountId, duration: AccessDuration) -> Command {
    Command::ShareAccess {
        place: home(),
        by: by.clone(),
        email: email.clone(),
        duration,
    }
}

fn new_link(by: &AccountId, secret: &str, duration: AccessDuration) -> Command {
    Command::NewShareLink {
        place: home(),
        by: by.clone(),
        secret: LinkSecret(secret.into()),
        duration,
    }
}

fn redeem(by: &AccountId, number: u64, secret: &str) -> Command {
    Command::RedeemLink {
        place: home(),
        by: by.clone(),
        link: ShareLink {
            number,
            secret: LinkSecret(secret.into()),
        },
    }
}

fn revoke(by: &AccountId, target: &AccountId, force: bool) -> Command {
    Command::RevokeAccess {
        place: home(),
        by: by.clone(),
        target: target.clone(),
        force,
    }
}

fn claim(by: &AccountId) -> Command {
    Command::Claim {
        place: home(),
        by: by.clone(),
        processor: PROCESSOR,
        press_verified: true,
    }
}

fn release(by: &AccountId) -> Command {
    Command::Release {
        place: home(),
        by: by.clone(),
    }
}

fn present(by: &AccountId, key: ProjectKey) -> Command {
    Command::PresentProjectKey {
        place: home(),
        by: by.clone(),
        key,
    }
}

fn enable(enabled: bool) -> Command {
    Command::SetRemoteServices {
        place: home(),
        key: key(),
        enabled,
    }
}

/// A Place with remote services on, the designer's unlimited access and
/// (if asked) one activated processor.
fn place(with_processor: bool) -> Places {
    let mut places = Places::default();
    run(&mut places, &create(true), T0);
    if with_processor {
        run(&mut places, &activate(), T0);
    }
    places
}

fn run(places: &mut Places, cmd: &Command, now: Timestamp) -> Vec<Event> {
    match places.apply(cmd, now) {
        Ok(events) => events,
        Err(refusal) => panic!("{cmd:?} refused: {refusal}"),
    }
}

/// Runs a command that must be refused, and checks that it changed nothing.
fn refused(places: &mut Places, cmd: &Command, now: Timestamp) -> Refusal {
    let before = places.clone();
    let refusal = places.apply(cmd, now).expect_err("must be refused");
    assert_eq!(*places, before, "a refusal changes nothing");
    refusal
}

fn has_access(places: &Places, who: &AccountId, now: Timestamp) -> bool {
    places
        .get(&home())
        .is_some_and(|p| p.access(who, now).is_some())
}

fn remaining(places: &Places, who: &AccountId, now: Timestamp) -> Option<Remaining> {
    places
        .get(&home())
        .and_then(|p| p.access(who, now))
        .map(|g| g.remaining(now))
}

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
fn remote_services_can_be_enabled_with_the_project_key() {
    let mut places = Places::default();
    run(&mut places, &create(false), T0);
    assert_eq!(
        refused(
            &mut places,
            &Command::SetRemoteServices {
                place: home(),
                key: ProjectKey("nope".into()),
                enabled: true
            },
            T0
        ),
        Refusal::WrongProjectKey
    );
    let events = run(&mut places, &enable(true), T0);
    assert_eq!(events, vec![Event::RemoteServicesEnabled { place: home() }]);
    assert!(
        run(&mut places, &enable(true), T0).is_empty(),
        "enabling twice changes nothing"
    );
    run(&mut places, &present(&designer(), key()), T0);
    assert!(has_access(&places, &designer(), T0));
}

#[test]
fn remote_services_cannot_be_disabled() {
    let mut places = place(true);
    let refusal = refused(&mut places, &enable(false), T0);
    assert_eq!(refusal, Refusal::RemoteServicesCannotBeDisabled);
    assert!(places.get(&home()).is_some_and(|p| p.remote_services));
}

#[test]
fn no_place_operation_without_remote_services() {
    let mut places = Places::default();
    run(&mut places, &create(false), T0);
    run(&mut places, &activate(), T0);
    for cmd in [
        share(&designer(), &pro(), AccessDuration::OneDay),
        new_link(&designer(), "s", AccessDuration::OneDay),
        redeem(&pro(), 0, "s"),
        revoke(&designer(), &designer(), true),
        claim(&owner()),
        release(&owner()),
        present(&designer(), key()),
    ] {
        let refusal = refused(&mut places, &cmd, T0);
        assert_eq!(
            refusal,
            Refusal::RemoteServicesDisabled { place: home() },
            "{cmd:?}"
        );
        assert!(refusal.to_string().contains("Remote Access Code"));
        assert!(
            refusal
                .to_string()
                .contains("factory-default the processor")
        );
    }
    let p = places.get(&home()).expect("place");
    assert_eq!(status_for(p, &designer(), T0), Status::Grey);
    assert!(places_for(&places, &designer(), T0).is_empty());
}

#[test]
fn second_claim_refused_with_remote_assistance_guidance() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let refusal = refused(
        &mut places,
        &claim(&acct("integrator-home@example.com")),
        T0,
    );
    assert_eq!(refusal, Refusal::AlreadyHasHomeowner);
    assert!(
        refusal
            .to_string()
            .contains("already has a homeowner — ask them for Remote Assistance from Installer")
    );
}

#[test]
fn claim_needs_a_verified_button_press() {
    let mut places = place(true);
    let cmd = Command::Claim {
        place: home(),
        by: owner(),
        processor: PROCESSOR,
        press_verified: false,
    };
    assert_eq!(
        refused(&mut places, &cmd, T0),
        Refusal::UnverifiedButtonPress
    );
}

#[test]
fn claim_needs_a_processor_of_the_place() {
    let mut places = place(false);
    assert_eq!(
        refused(&mut places, &claim(&owner()), T0),
        Refusal::UnknownProcessor { serial: PROCESSOR }
    );
}

#[test]
fn only_the_homeowner_releases_the_home() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    assert_eq!(
        refused(&mut places, &release(&designer()), T0),
        Refusal::NotHomeowner { by: designer() }
    );
}

#[test]
fn release_frees_the_system_for_a_later_claim() {
    // The takeover: claim as a temporary homeowner, share to the pro
    // account, release; the real homeowner claims later.
    let mut places = place(true);
    let temporary = acct("integrator-home@example.com");
    run(&mut places, &claim(&temporary), T0);
    run(
        &mut places,
        &share(&temporary, &pro(), AccessDuration::Unlimited),
        T0,
    );
    let events = run(&mut places, &release(&temporary), T0);
    assert_eq!(
        events,
        vec![Event::HomeReleased {
            place: home(),
            account: temporary.clone(),
            by_support: false
        }]
    );
    assert!(!has_access(&places, &temporary, T0));
    assert!(has_access(&places, &pro(), T0), "the pro keeps the share");
    run(&mut places, &claim(&owner()), T0.plus(DAY));
    assert_eq!(
        places.get(&home()).and_then(|p| p.homeowner()),
        Some(&owner())
    );
}

#[test]
fn support_removes_a_homeowner() {
    let mut places = place(true);
    let support = Command::SupportRemovesHomeowner { place: home() };
    assert_eq!(refused(&mut places, &support, T0), Refusal::NoHomeowner);
    run(&mut places, &claim(&owner()), T0);
    run(&mut places, &support, T0);
    assert_eq!(places.get(&home()).and_then(|p| p.homeowner()), None);
}

#[test]
fn project_key_grants_access_when_green() {
    let mut places = place(true);
    let p = places.get(&home()).expect("place");
    assert_eq!(status_for(p, &pro(), T0), Status::Green);
    run(&mut places, &present(&pro(), key()), T0);
    assert_eq!(remaining(&places, &pro(), T0), Some(Remaining::Unlimited));
}

#[test]
fn project_key_reports_yellow_once_a_homeowner_exists() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let p = places.get(&home()).expect("place");
    assert_eq!(status_for(p, &pro(), T0), Status::Yellow);
    let refusal = refused(&mut places, &present(&pro(), key()), T0);
    assert_eq!(refusal, Refusal::HomeownerEstablished);
    assert!(
        refusal
            .to_string()
            .contains("Remote Assistance from Installer")
    );
    // Whoever already has access stays green.
    assert!(run(&mut places, &present(&designer(), key()), T0).is_empty());
}

#[test]
fn project_key_reports_grey_without_remote_services() {
    let mut places = Places::default();
    run(&mut places, &create(false), T0);
    assert_eq!(
        refused(&mut places, &present(&pro(), key()), T0),
        Refusal::RemoteServicesDisabled { place: home() }
    );
}

#[test]
fn project_key_must_match_the_place() {
    let mut places = place(true);
    let refusal = refused(
        &mut places,
        &present(&pro(), ProjectKey("other".into())),
        T0,
    );
    assert_eq!(refusal, Refusal::WrongProjectKey);
}

#[test]
fn status_is_the_designers_cloud_icon() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let p = places.get(&home()).expect("place");
    assert_eq!(status_for(p, &designer(), T0), Status::Green);
    assert_eq!(status_for(p, &pro(), T0), Status::Yellow);
    assert!(
        Status::Yellow
            .guidance()
            .contains("Remote Assistance from Installer")
    );
    assert!(
        Status::Grey
            .guidance()
            .contains("locate the original project file")
    );
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

#[test]
fn homeowner_and_pro_installer_are_distinct_roles() {
    let mut places = place(true);
    run(&mut places, &claim(&owner()), T0);
    let roles: Vec<_> = places_for(&places, &owner(), T0)
        .into_iter()
        .chain(places_for(&places, &designer(), T0))
        .map(|a| a.role)
        .collect();
    assert_eq!(roles, vec![Role::Homeowner, Role::ProInstaller]);
}

#[test]
fn a_place_is_created_once() {
    let mut places = place(true);
    assert_eq!(
        refused(&mut places, &create(true), T0),
        Refusal::PlaceExists { place: home() }
    );
}

#[test]
fn place_operations_need_an_existing_place() {
    let mut places = Places::default();
    assert_eq!(
        refused(&mut places, &claim(&owner()), T0),
        Refusal::NoSuchPlace { place: home() }
    );
}

#[test]
fn every_refusal_names_a_rule_of_the_table() {
    let table = include_str!("../rules.rs");
    for refusal in [
        Refusal::LinkNotActive,
        Refusal::AlreadyHasHomeowner,
        Refusal::HomeownerEstablished,
        Refusal::LastAccessWithoutProcessor,
        Refusal::RemoteServicesCannotBeDisabled,
        Refusal::WrongProjectKey,
        Refusal::NoHomeowner,
        Refusal::UnverifiedButtonPress,
        Refusal::NoAccess { account: pro() },
        Refusal::NotHomeowner { by: pro() },
        Refusal::TargetIsHomeowner { target: pro() },
        Refusal::NothingToRevoke { target: pro() },
        Refusal::UnknownProcessor { serial: PROCESSOR },
        Refusal::NoSuchPlace { place: home() },
        Refusal::PlaceExists { place: home() },
        Refusal::RemoteServicesDisabled { place: home() },
        Refusal::ShareExceedsRemainingAccess {
            by: pro(),
            requested: AccessDuration::OneDay,
            remaining: Remaining::Seconds(1),
        },
    ] {
        let name = format!("`{}`", refusal.rule());
        assert!(table.contains(&name), "{name} is not in the rule table");
        assert!(!refusal.guidance().is_empty());
    }
}
