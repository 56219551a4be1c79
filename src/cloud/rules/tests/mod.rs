//! One test per rule, named as in the table of [`super`]: sharing, links
//! and manage access in `access.rs`; remote services, claims, the project
//! file and the Places in `place.rs`. The helpers here build commands.

mod access;
mod place;

use super::*;
use crate::cloud::{Places, Remaining};

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
