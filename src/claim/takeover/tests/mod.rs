//! The takeover's core driven directly (answers in, actions out, a fixed
//! `now`), and the procedure through a fake backend ([`procedure`]).

mod procedure;

use std::net::IpAddr;
use std::path::PathBuf;

use super::core::{Action, Answer, Outgoing, Record, TakeoverCore};
use super::{ButtonStep, TakeoverEnd, TakeoverPlan};
use crate::claim::ClaimOutcome;
use crate::place::{AccessDuration, PlaceId, Status, Timestamp};
use crate::processor::{Mac, Serial};
use crate::proto::{EventId, EventKind, PlaceStatus};
use crate::relay::Relayed;

const SERIAL: Serial = Serial(0x0236_e6a7);
const MAC: Mac = Mac([0x90, 0x70, 0x65, 0x12, 0x34, 0x56]);
const SITE: &str = "site@example.com";
const PRO: &str = "pro@example.com";
const CLOUD: &str = "cloud.example:4433";
/// 2026-12-03T12:00:00Z.
const NOW: Timestamp = Timestamp(1_796_299_200);

fn plan() -> TakeoverPlan {
    TakeoverPlan {
        serial: SERIAL,
        mac: Some(MAC),
        share_to: PRO.into(),
        duration: AccessDuration::SevenDays,
    }
}

fn path() -> PathBuf {
    PathBuf::from("/state/takeover/37152423.json")
}

fn core(loaded: Option<Record>) -> TakeoverCore {
    TakeoverCore::new(plan(), loaded, path(), CLOUD.into())
}

fn fresh() -> Record {
    Record {
        share_to: PRO.into(),
        duration: "7d".into(),
        ..Record::default()
    }
}

fn id(seq: u64) -> EventId {
    EventId {
        daemon: "site".into(),
        seq,
    }
}

fn status(status: Status, place: Option<&str>) -> Answer {
    Answer::Status {
        status: PlaceStatus {
            query: 1,
            status,
            guidance: format!("guidance for {status}"),
            serial: SERIAL,
            mac: MAC,
            place: place.map(|p| PlaceId(p.into())),
            access: None,
        },
        account: SITE.into(),
    }
}

fn outcome() -> Box<ClaimOutcome> {
    Box::new(ClaimOutcome {
        id: SERIAL.id(),
        serial: SERIAL,
        mac: Some(MAC),
        address: IpAddr::from([127, 0, 1, 1]),
        product: "RadioRA 3 processor".into(),
        device_uid: "uid".into(),
        ca_sha256: None,
        credential_dir: PathBuf::from("/state/credentials/37152423"),
        files: Vec::new(),
        exported: Vec::new(),
        model: None,
        firmware: None,
    })
}

fn applied() -> Relayed {
    Relayed::Applied(None)
}

fn queued() -> Relayed {
    Relayed::Queued {
        reason: "no answer from the cloud yet".into(),
    }
}

/// An action in a word or two, so a test reads as the procedure's script.
fn describe(action: &Action) -> String {
    match action {
        Action::Report(text) => format!("report: {text}"),
        Action::Save => "save".into(),
        Action::Discard => "discard".into(),
        Action::AskStatus => "ask status".into(),
        Action::CheckCancelled => "cancelled?".into(),
        Action::FindEarlierClaim { since } => format!("find a credential since {since}"),
        Action::PressButton => "press".into(),
        Action::Relay(Outgoing::Claim(o)) => format!("relay claimed {}", o.id),
        Action::Relay(Outgoing::Event(EventKind::ShareAccess(s))) => {
            format!(
                "relay share {} {} {}",
                s.place.0,
                s.email,
                s.duration.code()
            )
        }
        Action::Relay(Outgoing::Event(EventKind::Released(r))) => format!(
            "relay released {}",
            r.place.as_ref().map_or("-", |p| p.0.as_str())
        ),
        Action::Relay(Outgoing::Event(other)) => format!("relay {other:?}"),
        Action::Settle(id) => format!("settle {}", id.seq),
        Action::End(end) => format!("end {end:?}"),
    }
}

/// The actions up to the next one that asks something (or the end),
/// described.
fn until_asked(core: &mut TakeoverCore) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let action = core.next(NOW);
        let asks = !matches!(action, Action::Report(_) | Action::Save | Action::Discard);
        seen.push(describe(&action));
        if asks {
            return seen;
        }
    }
}

/// Answers, then the actions up to the next question.
fn then(core: &mut TakeoverCore, answer: Answer) -> Vec<String> {
    core.answer(answer);
    until_asked(core)
}

fn end(core: &mut TakeoverCore) -> Result<TakeoverEnd, String> {
    match core.next(NOW) {
        Action::End(end) => end,
        other => panic!("expected the end, got {}", describe(&other)),
    }
}

#[test]
fn yellow_ends_not_applicable() {
    let mut c = core(None);
    assert_eq!(until_asked(&mut c), ["ask status"]);
    c.answer(status(Status::Yellow, None));
    assert_eq!(
        end(&mut c),
        Ok(TakeoverEnd::NotApplicable {
            status: Status::Yellow,
            guidance: "guidance for yellow".into(),
            serial: SERIAL,
            mac: MAC,
        })
    );
    // Nothing saved: nothing to resume.
    assert_eq!(c.record(), &fresh());
}

#[test]
fn grey_ends_not_applicable() {
    let mut c = core(None);
    until_asked(&mut c);
    c.answer(status(Status::Grey, None));
    assert!(matches!(
        end(&mut c),
        Ok(TakeoverEnd::NotApplicable {
            status: Status::Grey,
            ..
        })
    ));
}

#[test]
fn green_with_access_ends_nothing_to_do() {
    let mut c = core(None);
    until_asked(&mut c);
    c.answer(status(Status::Green, Some("lake-house")));
    assert_eq!(
        end(&mut c),
        Ok(TakeoverEnd::NothingToDo {
            place: "lake-house".into(),
            account: SITE.into(),
        })
    );
    // The end stays the end.
    assert!(matches!(end(&mut c), Ok(TakeoverEnd::NothingToDo { .. })));
}

/// The whole procedure, uninterrupted: the script every other test departs
/// from.
#[test]
fn a_takeover_claims_shares_and_releases_in_order() {
    let mut c = core(None);
    assert_eq!(until_asked(&mut c), ["ask status"]);
    assert_eq!(
        then(&mut c, status(Status::Green, None)),
        [
            "report: green: no homeowner yet, so site@example.com can claim it",
            "save",
            "cancelled?",
        ]
    );
    assert_eq!(then(&mut c, Answer::Cancelled(false)), ["save", "press"]);
    assert_eq!(
        c.record().claim_started,
        Some(NOW.0),
        "the button began now"
    );
    assert_eq!(
        then(&mut c, Answer::Button(ButtonStep::Stored(outcome()))),
        [
            "report: claimed 0236e6a7 (serial 37152423) with its button",
            "relay claimed 0236e6a7",
        ]
    );
    assert_eq!(
        then(
            &mut c,
            Answer::Relayed {
                id: id(1),
                relayed: applied()
            }
        ),
        [
            "save",
            "report: the cloud at cloud.example:4433 recorded site@example.com as the temporary \
             homeowner",
            "cancelled?",
        ]
    );
    assert_eq!(c.record().claimed, Some(id(1)));
    assert_eq!(then(&mut c, Answer::Cancelled(false)), ["ask status"]);
    assert_eq!(
        then(&mut c, status(Status::Green, Some("lake-house"))),
        ["save", "relay share lake-house pro@example.com 7d"]
    );
    assert_eq!(c.record().place.as_deref(), Some("lake-house"));
    assert_eq!(
        then(
            &mut c,
            Answer::Relayed {
                id: id(2),
                relayed: applied()
            }
        ),
        [
            "save",
            "report: shared Place lake-house with pro@example.com for 7 days",
            "cancelled?",
        ]
    );
    assert_eq!(
        then(&mut c, Answer::Cancelled(false)),
        ["relay released lake-house"]
    );
    c.answer(Answer::Relayed {
        id: id(3),
        relayed: applied(),
    });
    // The release's id, then the end.
    assert_eq!(describe(&c.next(NOW)), "save");
    assert_eq!(describe(&c.next(NOW)), "save");
    assert!(c.record().done);
    assert_eq!(
        end(&mut c),
        Ok(TakeoverEnd::Done {
            place: "lake-house".into(),
            serial: SERIAL,
            share_to: PRO.into(),
            duration: AccessDuration::SevenDays,
            // Seven days from `now`, not from the clock.
            until: Some("2026-12-10T12:00:00Z".into()),
            account: SITE.into(),
        })
    );
}

#[test]
fn a_refused_step_ends_refused() {
    let refused = || Relayed::Refused {
        rule: "claim-needs-button".into(),
        guidance: "press the button".into(),
    };
    let mut c = core(None);
    until_asked(&mut c);
    then(&mut c, status(Status::Green, None));
    then(&mut c, Answer::Cancelled(false));
    then(&mut c, Answer::Button(ButtonStep::Stored(outcome())));
    assert_eq!(
        then(
            &mut c,
            Answer::Relayed {
                id: id(1),
                relayed: refused()
            }
        ),
        [
            "save",
            "end Ok(Refused { step: \"claim\", rule: \"claim-needs-button\", guidance: \"press \
             the button\" })"
        ]
    );

    // The share, refused, from a record that got that far.
    let mut c = core(Some(Record {
        claimed: Some(id(1)),
        place: Some("lake-house".into()),
        shared: Some(id(2)),
        ..fresh()
    }));
    until_asked(&mut c);
    then(&mut c, Answer::Settled(applied()));
    then(&mut c, Answer::Cancelled(false));
    c.answer(Answer::Settled(refused()));
    assert_eq!(
        end(&mut c),
        Ok(TakeoverEnd::Refused {
            step: "share".into(),
            rule: "claim-needs-button".into(),
            guidance: "press the button".into(),
        })
    );
}

#[test]
fn an_unanswered_step_ends_interrupted() {
    for (record, step) in [
        (
            Record {
                claimed: Some(id(1)),
                ..fresh()
            },
            "claim",
        ),
        (
            Record {
                claimed: Some(id(1)),
                place: Some("lake-house".into()),
                shared: Some(id(2)),
                ..fresh()
            },
            "share",
        ),
        (
            Record {
                claimed: Some(id(1)),
                place: Some("lake-house".into()),
                shared: Some(id(2)),
                released: Some(id(3)),
                ..fresh()
            },
            "release (Remove Home from Account)",
        ),
    ] {
        let mut c = core(Some(record.clone()));
        let mut asked = until_asked(&mut c);
        // Settle what was queued before this step; `applied` until the
        // step itself, which the cloud has not answered.
        loop {
            let last = asked.last().cloned().unwrap_or_default();
            let answer = if last == "cancelled?" {
                Answer::Cancelled(false)
            } else if last == format!("settle {}", step_seq(step)) {
                Answer::Settled(queued())
            } else {
                Answer::Settled(applied())
            };
            if last.starts_with("end") {
                break;
            }
            asked = then(&mut c, answer);
        }
        assert_eq!(
            asked.last().map(String::as_str),
            Some(
                format!(
                    "end Ok(Interrupted {{ step: {step:?}, reason: \"no answer from the cloud \
                     yet\" }})"
                )
                .as_str()
            ),
            "{step}"
        );
        assert_eq!(c.record(), &record, "settling changes nothing recorded");
    }
}

fn step_seq(step: &str) -> u64 {
    match step {
        "claim" => 1,
        "share" => 2,
        _ => 3,
    }
}

#[test]
fn a_queued_claim_is_settled_not_pressed_again() {
    let mut c = core(Some(Record {
        claim_started: Some(NOW.0 - 60),
        claimed: Some(id(7)),
        ..fresh()
    }));
    assert_eq!(
        until_asked(&mut c),
        [
            "report: continuing the takeover recorded in /state/takeover/37152423.json",
            "report: claim: done before, checking the cloud recorded it",
            "settle 7",
        ]
    );
    assert_eq!(
        then(&mut c, Answer::Settled(applied())),
        [
            // Not asked yet: the account is not named.
            "report: the cloud at cloud.example:4433 recorded the site's account as the \
             temporary homeowner",
            "cancelled?",
        ]
    );
}

#[test]
fn a_credential_stored_by_an_interrupted_run_is_relayed_without_a_press() {
    let started = NOW.0 - 60;
    let mut c = core(Some(Record {
        claim_started: Some(started),
        ..fresh()
    }));
    until_asked(&mut c);
    assert_eq!(
        then(&mut c, status(Status::Green, None)),
        [
            "report: green: no homeowner yet, so site@example.com can claim it",
            "save",
            &format!("find a credential since {started}"),
        ]
    );
    assert_eq!(
        then(&mut c, Answer::EarlierClaim(Some(outcome()))),
        [
            "report: claim: 0236e6a7 was paired during this takeover (the run stopped before \
             queueing it); relaying that claim, no second button press",
            "relay claimed 0236e6a7",
        ]
    );

    // None found: the button, from a fresh start time.
    let mut c = core(Some(Record {
        claim_started: Some(started),
        ..fresh()
    }));
    until_asked(&mut c);
    then(&mut c, status(Status::Green, None));
    assert_eq!(then(&mut c, Answer::EarlierClaim(None)), ["cancelled?"]);
    assert_eq!(then(&mut c, Answer::Cancelled(false)), ["save", "press"]);
    assert_eq!(c.record().claim_started, Some(NOW.0));
}

#[test]
fn a_claim_that_landed_later_is_learnt_from_the_status() {
    let mut c = core(Some(Record {
        claim_started: Some(NOW.0 - 60),
        ..fresh()
    }));
    until_asked(&mut c);
    assert_eq!(
        then(&mut c, status(Status::Green, Some("lake-house"))),
        [
            "report: claim: an earlier run's claim gave site@example.com Place lake-house",
            "save",
            "report: the cloud at cloud.example:4433 recorded site@example.com as the temporary \
             homeowner",
            "cancelled?",
        ]
    );
    assert_eq!(c.record().place.as_deref(), Some("lake-house"));
    assert_eq!(
        then(&mut c, Answer::Cancelled(false)),
        ["relay share lake-house pro@example.com 7d"]
    );
}

#[test]
fn a_cancelled_button_step_discards_an_untouched_record() {
    // Cancelled before the button…
    let mut c = core(None);
    until_asked(&mut c);
    then(&mut c, status(Status::Green, None));
    assert_eq!(
        then(&mut c, Answer::Cancelled(true)),
        ["discard", "end Ok(Cancelled)"]
    );
    // …or during it.
    let mut c = core(None);
    until_asked(&mut c);
    then(&mut c, status(Status::Green, None));
    then(&mut c, Answer::Cancelled(false));
    assert_eq!(
        then(&mut c, Answer::Button(ButtonStep::Cancelled)),
        ["discard", "end Ok(Cancelled)"]
    );
}

#[test]
fn a_failed_button_step_with_nothing_stored_discards_the_record() {
    let failed = |stored| {
        let mut c = core(None);
        until_asked(&mut c);
        then(&mut c, status(Status::Green, None));
        then(&mut c, Answer::Cancelled(false));
        then(
            &mut c,
            Answer::ButtonFailed {
                error: "nobody pressed the button".into(),
                stored,
            },
        )
    };
    assert_eq!(
        failed(false),
        ["discard", "end Err(\"nobody pressed the button\")"]
    );
    // A credential was stored: the record stays, to relay it next time.
    assert_eq!(failed(true), ["end Err(\"nobody pressed the button\")"]);
}

#[test]
fn cancelling_between_steps_keeps_what_is_recorded() {
    let mut c = core(Some(Record {
        claimed: Some(id(1)),
        place: Some("lake-house".into()),
        ..fresh()
    }));
    until_asked(&mut c);
    assert_eq!(
        then(&mut c, Answer::Settled(applied())).last().cloned(),
        Some("cancelled?".to_owned())
    );
    assert_eq!(
        then(&mut c, Answer::Cancelled(true)),
        [
            "end Ok(Interrupted { step: \"share\", reason: \"cancelled; the steps so far are \
          recorded\" })"
        ]
    );
}

#[test]
fn a_finished_takeover_refuses_to_run_again() {
    let mut c = core(Some(Record {
        done: true,
        ..fresh()
    }));
    assert_eq!(
        end(&mut c),
        Err(
            "a takeover of 37152423 already finished (see /state/takeover/37152423.json); \
             remove that file to take it over again"
                .into()
        )
    );
}

#[test]
fn a_different_share_to_refuses() {
    let mut c = core(Some(Record {
        share_to: "other@example.com".into(),
        ..fresh()
    }));
    assert_eq!(
        end(&mut c),
        Err(
            "an unfinished takeover of 37152423 shares to other@example.com; finish it with \
             that address, or remove /state/takeover/37152423.json"
                .into()
        )
    );
}

#[test]
fn no_place_after_the_claim_is_an_error_to_run_again() {
    let mut c = core(Some(Record {
        claimed: Some(id(1)),
        ..fresh()
    }));
    until_asked(&mut c);
    then(&mut c, Answer::Settled(applied()));
    assert_eq!(then(&mut c, Answer::Cancelled(false)), ["ask status"]);
    assert_eq!(
        then(&mut c, status(Status::Green, None)),
        [
            "end Err(\"the cloud does not show site@example.com the Place after the claim \
          (green); run again\")"
        ]
    );
}

#[test]
fn a_wrong_answer_ends_with_an_error_not_a_panic() {
    let mut c = core(None);
    until_asked(&mut c);
    let asked = then(&mut c, Answer::Cancelled(false));
    assert!(
        asked[0].starts_with("end Err(\"the takeover was answered"),
        "{asked:?}"
    );
    // And no answer at all.
    let mut c = core(None);
    until_asked(&mut c);
    assert!(until_asked(&mut c)[0].starts_with("end Err(\"the takeover was driven on"));
}

/// The record's file is read by earlier and later builds: its keys stay.
#[test]
fn the_record_keeps_its_format() {
    let record = Record {
        claim_started: Some(5),
        claimed: Some(id(1)),
        place: Some("lake-house".into()),
        ..fresh()
    };
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        serde_json::json!({
            "share_to": PRO,
            "duration": "7d",
            "claim_started": 5,
            "claimed": ["site", 1],
            "place": "lake-house",
            "shared": null,
            "released": null,
            "done": false,
        })
    );
}
