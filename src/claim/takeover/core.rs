//! The takeover's decisions, without I/O: from the record an earlier run
//! left, the plan, and the answers to its questions so far, what to do
//! next and how the record changes.
//!
//! Like the pairing machines ([`crate::leap::pairing`]), it reads no file
//! and no clock and awaits nothing: [`TakeoverCore::next`] takes `now` and
//! returns one [`Action`]; an action that asks something (the status, the
//! button, a relay…) is answered with [`TakeoverCore::answer`] before the
//! next call. The shell ([`super::takeover`]) loads and saves the record,
//! looks at the credential store, and calls the backend, so every path
//! through the procedure (each refusal, each resumption) is a unit test
//! that takes microseconds.
//!
//! | rule | test (`takeover/tests`) |
//! | --- | --- |
//! | yellow or grey: the method does not apply | `yellow_ends_not_applicable`, `grey_ends_not_applicable` |
//! | green with access: nothing to do | `green_with_access_ends_nothing_to_do` |
//! | a step the cloud refused ends the takeover | `a_refused_step_ends_refused` |
//! | a step the cloud did not answer: run again | `an_unanswered_step_ends_interrupted` |
//! | a queued claim is settled, never claimed again | `a_queued_claim_is_settled_not_pressed_again` |
//! | a credential stored during this takeover is relayed, no second press | `a_credential_stored_by_an_interrupted_run_is_relayed_without_a_press` |
//! | a claim that landed after the run stopped is learnt from the status | `a_claim_that_landed_later_is_learnt_from_the_status` |
//! | a cancelled or failed button step with nothing stored leaves no record | `a_cancelled_button_step_discards_an_untouched_record`, `a_failed_button_step_with_nothing_stored_discards_the_record` |
//! | a finished takeover does not run again | `a_finished_takeover_refuses_to_run_again` |
//! | an unfinished takeover to another account refuses | `a_different_share_to_refuses` |
//! | cancelled between steps: interrupted, the record kept | `cancelling_between_steps_keeps_what_is_recorded` |
//! | the share's end is counted from `now` | `a_takeover_claims_shares_and_releases_in_order` |
//! | the record's file keeps its format | `the_record_keeps_its_format` |
//! | any interruption resumes; one press, one `claimed` (the shell with a fake backend) | `every_interruption_resumes_with_one_press_and_one_claim` |

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ButtonStep, TakeoverEnd, TakeoverPlan};
use crate::claim::ClaimOutcome;
use crate::place::{AccessDuration, PlaceId, Status, Timestamp};
use crate::proto::{EventId, EventKind, PlaceStatus, Released, ShareAccess};
use crate::relay::Relayed;

/// Where an interrupted takeover stands: `STATE_DIR/takeover/<serial>.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    pub share_to: String,
    pub duration: String,
    /// When the button step began (seconds since the epoch): a credential
    /// written after it is this takeover's, even if the run died before
    /// queueing the claim.
    pub claim_started: Option<u64>,
    pub claimed: Option<EventId>,
    pub place: Option<String>,
    pub shared: Option<EventId>,
    pub released: Option<EventId>,
    pub done: bool,
}

impl Record {
    /// Whether a run changed nothing worth resuming (no event queued, no
    /// Place learnt): a cancelled or failed button step leaves nothing to
    /// resume, and a stale record would refuse a takeover to another
    /// account.
    fn untouched(&self) -> bool {
        self.claimed.is_none()
            && self.place.is_none()
            && self.shared.is_none()
            && self.released.is_none()
            && !self.done
    }
}

/// The three events a takeover relays, each once: the record keeps each
/// one's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Claimed,
    Shared,
    Released,
}

impl Slot {
    /// The step's name in an [`TakeoverEnd::Refused`] or
    /// [`TakeoverEnd::Interrupted`].
    fn step(self) -> &'static str {
        match self {
            Slot::Claimed => "claim",
            Slot::Shared => "share",
            Slot::Released => RELEASE_STEP,
        }
    }

    fn of(self, record: &mut Record) -> &mut Option<EventId> {
        match self {
            Slot::Claimed => &mut record.claimed,
            Slot::Shared => &mut record.shared,
            Slot::Released => &mut record.released,
        }
    }
}

const RELEASE_STEP: &str = "release (Remove Home from Account)";

/// An event to relay: the claim's is built by the shell (it reads the
/// certificate the processor signed), the others are complete.
#[derive(Clone, Debug)]
pub(super) enum Outgoing {
    Claim(Box<ClaimOutcome>),
    Event(EventKind),
}

/// What the shell does next.
#[derive(Clone, Debug)]
pub(super) enum Action {
    /// One line of progress for people.
    Report(String),
    /// Write [`TakeoverCore::record`] (atomically) to the record's path.
    Save,
    /// Remove the record's file: nothing in it is worth resuming.
    Discard,
    /// Ask the cloud the processor's status: answer [`Answer::Status`].
    AskStatus,
    /// Whether the caller gave up: answer [`Answer::Cancelled`].
    CheckCancelled,
    /// Look for this processor's credential written at `since` or later
    /// (an interrupted button step of this takeover): answer
    /// [`Answer::EarlierClaim`].
    FindEarlierClaim { since: u64 },
    /// The button step: answer [`Answer::Button`] or
    /// [`Answer::ButtonFailed`].
    PressButton,
    /// Append `event` to an outbox and wait a while for the cloud: answer
    /// [`Answer::Relayed`].
    Relay(Outgoing),
    /// What became of the event appended earlier as this id: answer
    /// [`Answer::Settled`].
    Settle(EventId),
    /// The takeover is over; every later call returns the same.
    End(Result<TakeoverEnd, String>),
}

/// What the shell learnt doing an [`Action`].
#[derive(Debug)]
pub(super) enum Answer {
    Status {
        status: PlaceStatus,
        /// The account asking, as the cloud names it.
        account: String,
    },
    Cancelled(bool),
    EarlierClaim(Option<Box<ClaimOutcome>>),
    Button(ButtonStep),
    /// The button step failed; `stored`: a credential was written anyway
    /// (then the record stays, to relay it on the next run).
    ButtonFailed {
        error: String,
        stored: bool,
    },
    Relayed {
        id: EventId,
        relayed: Relayed,
    },
    Settled(Relayed),
}

/// Where the procedure stands between two calls.
#[derive(Debug)]
enum Stage {
    /// Asked the status to see whether the method applies.
    Applicability,
    /// About to claim, or to find the claim an earlier run made.
    Claim,
    AwaitEarlierClaim,
    /// Asked whether the caller gave up before `next`.
    AwaitCancelled(Next),
    AwaitButton,
    AwaitRelay(Slot),
    AwaitSettle(Slot),
    /// Asked the status to learn the Place after the claim.
    PlaceAfterClaim,
    Ended(Result<TakeoverEnd, String>),
}

/// The step a cancellation check comes before.
#[derive(Clone, Copy, Debug)]
enum Next {
    Button,
    Share,
    Release,
}

/// The takeover of one processor, as a machine (see the module docs).
#[derive(Debug)]
pub(super) struct TakeoverCore {
    plan: TakeoverPlan,
    record: Record,
    /// The cloud the events go to, for messages.
    cloud: String,
    /// The account acting, once the cloud named it.
    account: String,
    stage: Stage,
    answer: Option<Answer>,
    actions: VecDeque<Action>,
}

impl TakeoverCore {
    /// Starts (or continues, from `loaded`) the takeover `plan` describes;
    /// `path` names the record in messages, `cloud` the cloud in reports.
    pub fn new(
        plan: TakeoverPlan,
        loaded: Option<Record>,
        path: PathBuf,
        cloud: String,
    ) -> TakeoverCore {
        let serial = plan.serial;
        let mut actions = VecDeque::new();
        let record = match loaded {
            Some(r) if r.done => {
                let end = Err(format!(
                    "a takeover of {serial} already finished (see {}); remove that file to take \
                     it over again",
                    path.display()
                ));
                return TakeoverCore::ended(plan, r, cloud, end);
            }
            Some(r) => {
                actions.push_back(Action::Report(format!(
                    "continuing the takeover recorded in {}",
                    path.display()
                )));
                r
            }
            None => Record {
                share_to: plan.share_to.clone(),
                duration: plan.duration.code().to_owned(),
                ..Record::default()
            },
        };
        if record.share_to != plan.share_to {
            let end = Err(format!(
                "an unfinished takeover of {serial} shares to {}; finish it with that address, or \
                 remove {}",
                record.share_to,
                path.display()
            ));
            return TakeoverCore::ended(plan, record, cloud, end);
        }
        // 1. Does the method apply? Not asked once a claim is queued.
        let stage = if record.claimed.is_none() {
            actions.push_back(Action::AskStatus);
            Stage::Applicability
        } else {
            Stage::Claim
        };
        TakeoverCore {
            plan,
            record,
            cloud,
            // Until the cloud names it (a resumed run may not ask before it
            // reports).
            account: "the site's account".to_owned(),
            stage,
            answer: None,
            actions,
        }
    }

    fn ended(
        plan: TakeoverPlan,
        record: Record,
        cloud: String,
        end: Result<TakeoverEnd, String>,
    ) -> TakeoverCore {
        TakeoverCore {
            plan,
            record,
            cloud,
            account: String::new(),
            stage: Stage::Ended(end),
            answer: None,
            actions: VecDeque::new(),
        }
    }

    /// The record as it stands (what [`Action::Save`] writes).
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The answer to the last action that asked something.
    pub fn answer(&mut self, answer: Answer) {
        self.answer = Some(answer);
    }

    /// What to do next. `now` is the time a button step begins at and a
    /// share's end is counted from.
    pub fn next(&mut self, now: Timestamp) -> Action {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return action;
            }
            self.advance(now);
        }
    }

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn end(&mut self, end: Result<TakeoverEnd, String>) {
        self.stage = Stage::Ended(end);
    }

    fn save(&mut self) {
        self.push(Action::Save);
    }

    /// Removes the record if nothing in it is worth resuming.
    fn discard_if_untouched(&mut self) {
        if self.record.untouched() {
            self.push(Action::Discard);
        }
    }

    /// Moves on from the current stage; always queues an action or ends.
    fn advance(&mut self, now: Timestamp) {
        let stage = std::mem::replace(&mut self.stage, Stage::Claim);
        if let Stage::Ended(end) = &stage {
            self.push(Action::End(end.clone()));
            self.stage = stage;
            return;
        }
        if let Stage::Claim = stage {
            return self.claim();
        }
        let Some(answer) = self.answer.take() else {
            return self.end(Err(format!(
                "the takeover was driven on without an answer ({stage:?})"
            )));
        };
        match (stage, answer) {
            (Stage::Applicability, Answer::Status { status, account }) => {
                self.applicability(status, account);
            }
            (Stage::AwaitEarlierClaim, Answer::EarlierClaim(Some(outcome))) => {
                self.push(Action::Report(format!(
                    "claim: {} was paired during this takeover (the run stopped before queueing \
                     it); relaying that claim, no second button press",
                    outcome.id
                )));
                self.relay(Slot::Claimed, Outgoing::Claim(outcome));
            }
            (Stage::AwaitEarlierClaim, Answer::EarlierClaim(None)) => {
                self.check_cancelled(Next::Button);
            }
            (Stage::AwaitCancelled(next), Answer::Cancelled(cancelled)) => {
                self.cancelled_before(next, cancelled, now);
            }
            (Stage::AwaitButton, Answer::Button(step)) => self.button(step),
            (Stage::AwaitButton, Answer::ButtonFailed { error, stored }) => {
                // Nothing stored (the button step stores last): nothing to
                // resume, so no record to block another takeover.
                if !stored {
                    self.discard_if_untouched();
                }
                self.end(Err(error));
            }
            (Stage::AwaitRelay(slot), Answer::Relayed { id, relayed }) => {
                *slot.of(&mut self.record) = Some(id);
                self.save();
                self.answered(slot, relayed, now);
            }
            (Stage::AwaitSettle(slot), Answer::Settled(relayed)) => {
                self.answered(slot, relayed, now);
            }
            (Stage::PlaceAfterClaim, Answer::Status { status, account }) => {
                self.account = account;
                let Some(place) = status.place else {
                    return self.end(Err(format!(
                        "the cloud does not show {} the Place after the claim ({}); run again",
                        self.account, status.status
                    )));
                };
                self.record.place = Some(place.0);
                self.save();
                self.share();
            }
            (stage, answer) => self.end(Err(format!(
                "the takeover was answered {answer:?} while it waited for {stage:?}"
            ))),
        }
    }

    /// Step 1: yellow and grey end it, green with access has nothing to
    /// do, green without a homeowner goes on.
    fn applicability(&mut self, st: PlaceStatus, account: String) {
        self.account = account;
        match (st.status, st.place) {
            (Status::Yellow | Status::Grey, _) => {
                return self.end(Ok(TakeoverEnd::NotApplicable {
                    status: st.status,
                    guidance: st.guidance,
                    serial: st.serial,
                    mac: st.mac,
                }));
            }
            (Status::Green, Some(place)) if self.record.claim_started.is_some() => {
                // An earlier run's claim (queued by a daemon after that run
                // stopped) already landed.
                self.push(Action::Report(format!(
                    "claim: an earlier run's claim gave {} Place {place}",
                    self.account
                )));
                self.record.place = Some(place.0);
            }
            (Status::Green, Some(place)) => {
                return self.end(Ok(TakeoverEnd::NothingToDo {
                    place: place.0,
                    account: self.account.clone(),
                }));
            }
            (Status::Green, None) => {
                self.push(Action::Report(format!(
                    "green: no homeowner yet, so {} can claim it",
                    self.account
                )));
            }
        }
        self.save();
        self.stage = Stage::Claim;
    }

    /// Step 2: claim with the button, unless an earlier run did.
    fn claim(&mut self) {
        if let Some(id) = self.record.claimed.clone() {
            self.push(Action::Report(
                "claim: done before, checking the cloud recorded it".into(),
            ));
            self.push(Action::Settle(id));
            self.stage = Stage::AwaitSettle(Slot::Claimed);
        } else if self.record.place.is_some() {
            self.claimed();
        } else if let Some(since) = self.record.claim_started {
            self.push(Action::FindEarlierClaim { since });
            self.stage = Stage::AwaitEarlierClaim;
        } else {
            self.check_cancelled(Next::Button);
        }
    }

    fn check_cancelled(&mut self, next: Next) {
        self.push(Action::CheckCancelled);
        self.stage = Stage::AwaitCancelled(next);
    }

    fn cancelled_before(&mut self, next: Next, cancelled: bool, now: Timestamp) {
        match (next, cancelled) {
            (Next::Button, true) => {
                self.discard_if_untouched();
                self.end(Ok(TakeoverEnd::Cancelled));
            }
            (Next::Button, false) => {
                self.record.claim_started = Some(now.0);
                self.save();
                self.push(Action::PressButton);
                self.stage = Stage::AwaitButton;
            }
            (Next::Share, true) => self.end(Ok(interrupted_by_caller("share"))),
            (Next::Share, false) => self.share(),
            (Next::Release, true) => self.end(Ok(interrupted_by_caller(RELEASE_STEP))),
            (Next::Release, false) => self.release(),
        }
    }

    fn button(&mut self, step: ButtonStep) {
        let serial = self.plan.serial;
        match step {
            ButtonStep::Cancelled => {
                self.discard_if_untouched();
                self.end(Ok(TakeoverEnd::Cancelled));
            }
            ButtonStep::Stored(outcome) => {
                self.push(Action::Report(format!(
                    "claimed {} (serial {}) with its button",
                    outcome.id, serial.0
                )));
                self.relay(Slot::Claimed, Outgoing::Claim(outcome));
            }
            ButtonStep::Queued {
                outcome,
                id,
                relayed,
            } => {
                self.push(Action::Report(format!(
                    "claimed {} (serial {}) with its button; the credential is in {}",
                    outcome.id,
                    serial.0,
                    outcome.credential_dir.display()
                )));
                self.record.claimed = Some(id);
                self.save();
                self.stopped_or(Slot::Claimed, relayed, |core| core.claimed());
            }
        }
    }

    /// Appends `event` unless an earlier run did (then settles it).
    fn relay(&mut self, slot: Slot, event: Outgoing) {
        if let Some(id) = slot.of(&mut self.record).clone() {
            self.push(Action::Settle(id));
            self.stage = Stage::AwaitSettle(slot);
        } else {
            self.push(Action::Relay(event));
            self.stage = Stage::AwaitRelay(slot);
        }
    }

    /// What the cloud said of the event in `slot`.
    fn answered(&mut self, slot: Slot, relayed: Relayed, now: Timestamp) {
        match slot {
            Slot::Claimed => self.stopped_or(slot, relayed, |core| core.claimed()),
            Slot::Shared => self.stopped_or(slot, relayed, |core| {
                let (place, share_to, duration) = core.share_terms();
                core.push(Action::Report(format!(
                    "shared Place {place} with {share_to} for {duration}"
                )));
                core.check_cancelled(Next::Release);
            }),
            Slot::Released => self.stopped_or(slot, relayed, |core| core.done(now)),
        }
    }

    /// Ends the takeover if the cloud did not apply the step, else goes on.
    fn stopped_or(&mut self, slot: Slot, relayed: Relayed, then: impl FnOnce(&mut TakeoverCore)) {
        match relayed {
            Relayed::Applied(_) => then(self),
            Relayed::Refused { rule, guidance } => self.end(Ok(TakeoverEnd::Refused {
                step: slot.step().into(),
                rule,
                guidance,
            })),
            Relayed::Queued { reason } => self.end(Ok(TakeoverEnd::Interrupted {
                step: slot.step().into(),
                reason,
            })),
        }
    }

    /// The claim is in the cloud.
    fn claimed(&mut self) {
        self.push(Action::Report(format!(
            "the cloud at {} recorded {} as the temporary homeowner",
            self.cloud, self.account
        )));
        self.check_cancelled(Next::Share);
    }

    /// The Place (once known), the account and the duration of the share.
    fn share_terms(&self) -> (String, String, AccessDuration) {
        let duration =
            AccessDuration::from_code(&self.record.duration).unwrap_or(self.plan.duration);
        (
            self.record.place.clone().unwrap_or_default(),
            self.record.share_to.clone(),
            duration,
        )
    }

    /// Step 3: share the Place with the pro account, once the Place is
    /// known.
    fn share(&mut self) {
        if self.record.place.is_none() {
            self.push(Action::AskStatus);
            self.stage = Stage::PlaceAfterClaim;
            return;
        }
        let (place, email, duration) = self.share_terms();
        let event = EventKind::ShareAccess(ShareAccess {
            place: PlaceId(place),
            email,
            duration,
        });
        self.relay(Slot::Shared, Outgoing::Event(event));
    }

    /// Step 4: Remove Home from Account.
    fn release(&mut self) {
        let (place, _, _) = self.share_terms();
        let event = EventKind::Released(Released {
            place: Some(PlaceId(place)),
            serial: Some(self.plan.serial),
        });
        self.relay(Slot::Released, Outgoing::Event(event));
    }

    fn done(&mut self, now: Timestamp) {
        self.record.done = true;
        self.save();
        let (place, share_to, duration) = self.share_terms();
        let until = duration.seconds().map(|s| {
            let at = UNIX_EPOCH + Duration::from_secs(now.plus(s).0);
            humantime::format_rfc3339_seconds(at).to_string()
        });
        self.end(Ok(TakeoverEnd::Done {
            place,
            serial: self.plan.serial,
            share_to,
            duration,
            until,
            account: self.account.clone(),
        }));
    }
}

fn interrupted_by_caller(step: &str) -> TakeoverEnd {
    TakeoverEnd::Interrupted {
        step: step.into(),
        reason: "cancelled; the steps so far are recorded".into(),
    }
}
