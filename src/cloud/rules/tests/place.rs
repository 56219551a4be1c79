//! Remote services, homeowner claims and release, the project file, and
//! the Place itself.

use super::*;
use crate::cloud::rules::{AccessDuration, Command, Event, ProjectKey, Refusal, Role};
use crate::cloud::{Places, Remaining, Status, places_for, status_for};

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

fn enable_as(by: &AccountId, enabled: bool) -> Command {
    Command::SetRemoteServicesAsCreator {
        place: home(),
        by: by.clone(),
        enabled,
    }
}

#[test]
fn remote_services_can_be_enabled_by_the_creator() {
    let mut places = Places::default();
    run(&mut places, &create(false), T0);
    // Someone else (a forged request: the portal answers 404 before the
    // rules) is refused by name, and nothing changes.
    assert_eq!(
        refused(&mut places, &enable_as(&pro(), true), T0),
        Refusal::NotTheCreator { by: pro() }
    );
    assert_eq!(
        refused(&mut places, &enable_as(&pro(), true), T0).rule(),
        "remote_services_can_be_enabled_by_the_creator"
    );
    // The creator, without the key: its dormant grant wakes up.
    let events = run(&mut places, &enable_as(&designer(), true), T0);
    assert_eq!(events, vec![Event::RemoteServicesEnabled { place: home() }]);
    assert!(has_access(&places, &designer(), T0));
    let p = places.get(&home()).expect("place");
    assert_eq!(status_for(p, &designer(), T0), Status::Green);
    assert_eq!(places_for(&places, &designer(), T0).len(), 1);
    // Twice: a no-op, not an error.
    assert!(run(&mut places, &enable_as(&designer(), true), T0).is_empty());
    // The key's way stays, and it too is a no-op now.
    assert!(run(&mut places, &enable(true), T0).is_empty());
    // Still nobody else; and never back.
    assert_eq!(
        refused(&mut places, &enable_as(&pro(), true), T0),
        Refusal::NotTheCreator { by: pro() }
    );
    for by in [designer(), pro()] {
        assert_eq!(
            refused(&mut places, &enable_as(&by, false), T0),
            Refusal::RemoteServicesCannotBeDisabled
        );
    }
}

#[test]
fn a_grey_places_creator_has_no_access_until_remote_services_are_enabled() {
    let mut places = Places::default();
    let events = run(&mut places, &create(false), T0);
    // No AccessGranted: nobody was given access.
    assert_eq!(events, vec![Event::PlaceCreated { place: home() }]);
    let p = places.get(&home()).expect("place");
    assert!(p.is_waiting_creator(&designer()));
    assert!(!p.is_waiting_creator(&pro()));
    assert_eq!(p.waiting_creator(), Some(&designer()));
    assert!(p.access(&designer(), T0).is_none());
    assert_eq!(p.live_accounts(T0).count(), 0);
    assert_eq!(status_for(p, &designer(), T0), Status::Grey);
    assert!(places_for(&places, &designer(), T0).is_empty());
    assert!(crate::cloud::access_list(p, &designer(), T0).is_err());
    // Even asking to disable a grey Place is refused: there is no off switch.
    assert_eq!(
        refused(&mut places, &enable_as(&designer(), false), T0),
        Refusal::RemoteServicesCannotBeDisabled
    );
    // The project file's way enables it too, and the creator is in.
    run(&mut places, &enable(true), T0);
    let p = places.get(&home()).expect("place");
    assert!(!p.is_waiting_creator(&designer()));
    assert!(p.access(&designer(), T0).is_some());
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
    let table = include_str!("../../rules.rs");
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
