//! The procedure (the shell around the core) through a fake backend: an
//! in-memory cloud and outbox that outlive a run, the credential store and
//! the record in a temporary state directory, and an interruption
//! scripted at any call of a run.

use std::cell::Cell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{MAC, PRO, SERIAL, SITE, plan};
use crate::claim::takeover::{
    ButtonStep, TakeoverBackend, TakeoverEnd, TakeoverPlan, record_path, stored_outcome, takeover,
};
use crate::claim::{ClaimOutcome, ClaimRecord};
use crate::identity::CredentialStore;
use crate::place::{PlaceId, Status};
use crate::processor::{Mac, Serial};
use crate::proto::{EventId, EventKind, PlaceStatus};
use crate::relay::Relayed;

const PLACE: &str = "lake-house";
const CLOUD: &str = "fake:4433";

/// A certificate as far as the claim event reads it (PEM of some DER).
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

/// What outlives a run: the cloud, the outbox, the button's presses.
#[derive(Debug, Default)]
struct World {
    /// Remote services off.
    grey: bool,
    homeowner: Option<String>,
    /// Accounts with access besides the homeowner.
    access: Vec<String>,
    refuse_share: bool,
    /// Every event appended, with the cloud's answer once delivered.
    outbox: Vec<(EventId, EventKind, Option<Relayed>)>,
    presses: u32,
}

impl World {
    fn claims_relayed(&self) -> usize {
        self.count(|e| matches!(e, EventKind::Claimed(_)))
    }

    fn count(&self, kind: impl Fn(&EventKind) -> bool) -> usize {
        self.outbox.iter().filter(|(_, e, _)| kind(e)).count()
    }

    fn append(&mut self, event: EventKind) -> EventId {
        let id = EventId {
            daemon: "fake".into(),
            seq: self.outbox.len() as u64 + 1,
        };
        self.outbox.push((id.clone(), event, None));
        id
    }

    /// The link delivers everything queued, in order, before it answers
    /// anything else.
    fn deliver(&mut self) {
        for i in 0..self.outbox.len() {
            if self.outbox[i].2.is_none() {
                let answer = self.apply(&self.outbox[i].1.clone());
                self.outbox[i].2 = Some(answer);
            }
        }
    }

    fn has_access(&self, account: &str) -> bool {
        self.homeowner.as_deref() == Some(account) || self.access.iter().any(|a| a == account)
    }

    /// The Place rules this test needs, as the site's account acts.
    fn apply(&mut self, event: &EventKind) -> Relayed {
        let refused = |rule: &str| Relayed::Refused {
            rule: rule.into(),
            guidance: format!("the fake cloud refuses: {rule}"),
        };
        match event {
            EventKind::Claimed(_) if self.homeowner.is_some() => refused("one-homeowner"),
            EventKind::Claimed(_) => {
                self.homeowner = Some(SITE.into());
                Relayed::Applied(None)
            }
            EventKind::ShareAccess(_) if self.refuse_share => refused("share-refused"),
            EventKind::ShareAccess(s) if self.has_access(SITE) && s.place.0 == PLACE => {
                self.access.push(s.email.clone());
                Relayed::Applied(None)
            }
            EventKind::Released(_) if self.homeowner.as_deref() == Some(SITE) => {
                self.homeowner = None;
                Relayed::Applied(None)
            }
            other => refused(&format!("unexpected {other:?}")),
        }
    }

    fn status(&self) -> PlaceStatus {
        let status = if self.grey {
            Status::Grey
        } else if self.homeowner.as_ref().is_some_and(|h| h != SITE) {
            Status::Yellow
        } else {
            Status::Green
        };
        let access = self.has_access(SITE);
        PlaceStatus {
            query: 1,
            status,
            guidance: format!("{status} guidance"),
            serial: SERIAL,
            mac: MAC,
            place: (access && status == Status::Green).then(|| PlaceId(PLACE.into())),
            access: Some(access),
        }
    }
}

/// How a run is interrupted at one of its backend calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interruption {
    /// The call fails before it does anything (a kill, a lost link).
    Fail,
    /// The call does its work, then the run dies: the button step has
    /// stored the credential (and, as the daemon does, queued its claim).
    /// Elsewhere the same as `Fail`.
    AfterWork,
    /// The cloud goes away from this call on, for the rest of the run.
    Outage,
    /// The caller gives up from this call on.
    Cancel,
}

const INTERRUPTIONS: [Interruption; 4] = [
    Interruption::Fail,
    Interruption::AfterWork,
    Interruption::Outage,
    Interruption::Cancel,
];

/// One run's backend.
struct FakeBackend<'a> {
    world: &'a mut World,
    state_dir: PathBuf,
    /// Claims as the daemon does: stores and queues in one step.
    daemon: bool,
    /// The call (counting every backend call, `cancelled` too) that is
    /// interrupted, and how.
    at: Option<(usize, Interruption)>,
    calls: Cell<usize>,
    down: Cell<bool>,
    cancel: Cell<bool>,
    steps: Vec<String>,
}

impl FakeBackend<'_> {
    /// Counts a call: how it is interrupted, if it is.
    fn call(&self) -> Option<Interruption> {
        let n = self.calls.replace(self.calls.get() + 1);
        let hit = self.at.and_then(|(at, how)| (at == n).then_some(how));
        match hit {
            Some(Interruption::Outage) => self.down.set(true),
            Some(Interruption::Cancel) => self.cancel.set(true),
            _ => {}
        }
        hit
    }

    fn killed(hit: Option<Interruption>) -> Result<(), String> {
        match hit {
            Some(Interruption::Fail | Interruption::AfterWork) => Err("killed".into()),
            _ => Ok(()),
        }
    }

    /// The cloud's answer to an appended event, or `Queued` while it is
    /// down.
    fn answer_of(&mut self, id: &EventId) -> Result<Relayed, String> {
        if self.down.get() {
            return Ok(Relayed::Queued {
                reason: "the fake cloud is down".into(),
            });
        }
        self.world.deliver();
        let (_, _, answer) = self
            .world
            .outbox
            .iter()
            .find(|(e, _, _)| e == id)
            .ok_or_else(|| format!("no event {id:?} in the outbox"))?;
        answer
            .clone()
            .ok_or_else(|| "delivered, yet unanswered".into())
    }

    /// What the button step stores: `claim.json` and a certificate.
    fn store_credential(&self) -> ClaimOutcome {
        let dir = CredentialStore::new(&self.state_dir).dir(SERIAL);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), CERT_PEM).unwrap();
        let record = ClaimRecord {
            serial: SERIAL,
            id: SERIAL.id(),
            mac: Some(MAC),
            address: IpAddr::from([127, 0, 1, 1]),
            product: "RadioRA 3 processor".into(),
            device_uid: "uid".into(),
            model: None,
            firmware: None,
        };
        record.save(&dir).unwrap();
        stored_outcome(record, dir)
    }
}

impl TakeoverBackend for FakeBackend<'_> {
    async fn status(
        &mut self,
        serial: Serial,
        mac: Option<Mac>,
    ) -> Result<(PlaceStatus, String), String> {
        assert_eq!((serial, mac), (SERIAL, Some(MAC)));
        Self::killed(self.call())?;
        if self.down.get() {
            return Err("the fake cloud does not answer".into());
        }
        self.world.deliver();
        Ok((self.world.status(), SITE.into()))
    }

    async fn relay(&mut self, event: EventKind) -> Result<(EventId, Relayed), String> {
        Self::killed(self.call())?;
        let id = self.world.append(event);
        Ok((id.clone(), self.answer_of(&id)?))
    }

    async fn settle(&mut self, id: &EventId) -> Result<Relayed, String> {
        Self::killed(self.call())?;
        self.answer_of(id)
    }

    async fn claim(&mut self, serial: Serial) -> Result<ButtonStep, String> {
        assert_eq!(serial, SERIAL);
        let hit = self.call();
        match hit {
            Some(Interruption::Fail) => return Err("killed before the press".into()),
            Some(Interruption::Cancel) => return Ok(ButtonStep::Cancelled),
            _ => {}
        }
        self.world.presses += 1;
        if CredentialStore::new(&self.state_dir)
            .dir(SERIAL)
            .join("claim.json")
            .exists()
        {
            return Err("a second press: this processor is claimed already".into());
        }
        let outcome = self.store_credential();
        if !self.daemon {
            if hit == Some(Interruption::AfterWork) {
                return Err("killed after the press".into());
            }
            return Ok(ButtonStep::Stored(Box::new(outcome)));
        }
        let id = self.world.append(outcome.event()?);
        if hit == Some(Interruption::AfterWork) {
            return Err("killed after the press".into());
        }
        let relayed = self.answer_of(&id)?;
        Ok(ButtonStep::Queued {
            outcome: Box::new(outcome),
            id,
            relayed,
        })
    }

    fn credentials_dir(&self) -> &Path {
        &self.state_dir
    }

    fn cloud(&self) -> String {
        CLOUD.into()
    }

    fn cancelled(&self) -> bool {
        self.call();
        self.cancel.get()
    }

    fn step(&mut self, text: &str) {
        self.steps.push(text.to_owned());
    }
}

/// A state directory for one scenario, in memory where there is one
/// (every record save is an fsync).
fn state_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    match tempfile::tempdir_in(shm) {
        Ok(dir) if shm.is_dir() => dir,
        _ => tempfile::tempdir().unwrap(),
    }
}

/// One run of the procedure; its end and its progress lines.
fn run_plan(
    world: &mut World,
    dir: &Path,
    plan: &TakeoverPlan,
    daemon: bool,
    at: Option<(usize, Interruption)>,
) -> (Result<TakeoverEnd, String>, Vec<String>) {
    let mut backend = FakeBackend {
        world,
        state_dir: dir.to_owned(),
        daemon,
        at,
        calls: Cell::new(0),
        down: Cell::new(false),
        cancel: Cell::new(false),
        steps: Vec::new(),
    };
    let end = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(takeover(dir, plan, &mut backend));
    (end, backend.steps)
}

fn run(
    world: &mut World,
    dir: &Path,
    daemon: bool,
    at: Option<(usize, Interruption)>,
) -> (Result<TakeoverEnd, String>, Vec<String>) {
    run_plan(world, dir, &plan(), daemon, at)
}

fn record_exists(dir: &Path) -> bool {
    record_path(dir, SERIAL).exists()
}

/// Runs interrupted as `interruptions` says (a run the interruption
/// misses may finish), then uninterrupted until one finishes: it finishes
/// on the first, the button was pressed once, `claimed` relayed once, and
/// a further run refuses.
fn interrupted_then_finished(daemon: bool, interruptions: &[(usize, Interruption)]) {
    let dir = state_dir();
    let mut world = World::default();
    let mut history = Vec::new();
    let mut finished = false;
    for &at in interruptions {
        let (end, steps) = run(&mut world, dir.path(), daemon, Some(at));
        finished = matches!(end, Ok(TakeoverEnd::Done { .. }));
        history.push((Some(at), end, steps));
        assert!(
            world.presses <= 1 && world.claims_relayed() <= 1,
            "daemon {daemon}: {history:#?}\n{world:#?}"
        );
        if finished {
            break;
        }
    }
    if !finished {
        let (end, steps) = run(&mut world, dir.path(), daemon, None);
        let done = matches!(end, Ok(TakeoverEnd::Done { .. }));
        history.push((None, end, steps));
        assert!(done, "daemon {daemon}: {history:#?}\n{world:#?}");
    }
    let context = format!("daemon {daemon}: {history:#?}\n{world:#?}");
    assert_eq!(world.presses, 1, "{context}");
    assert_eq!(world.claims_relayed(), 1, "{context}");
    assert_eq!(
        world.count(|e| matches!(e, EventKind::Released(_))),
        1,
        "{context}"
    );
    assert_eq!(world.homeowner, None, "{context}");
    assert_eq!(world.access, [PRO], "{context}");
    let (again, _) = run(&mut world, dir.path(), daemon, None);
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.contains("already finished")),
        "{again:?}"
    );
}

/// Every single interruption, and every pair of them, at every call of a
/// run, with the command line's button step and the daemon's.
#[test]
fn every_interruption_resumes_with_one_press_and_one_claim() {
    // An uninterrupted run makes nine calls; a resumed one fewer.
    let points: Vec<(usize, Interruption)> = (0..10)
        .flat_map(|n| INTERRUPTIONS.map(|how| (n, how)))
        .collect();
    for daemon in [false, true] {
        interrupted_then_finished(daemon, &[]);
        for &first in &points {
            interrupted_then_finished(daemon, &[first]);
            for &second in &points {
                interrupted_then_finished(daemon, &[first, second]);
            }
        }
    }
}

#[test]
fn resumes_after_the_status() {
    // Killed at the button, before the press: nothing to resume, so the
    // record goes, and the next run starts over.
    let dir = state_dir();
    let mut world = World::default();
    let (end, _) = run(&mut world, dir.path(), false, Some((2, Interruption::Fail)));
    assert_eq!(end, Err("killed before the press".into()));
    assert!(!record_exists(dir.path()));
    let (end, _) = run(&mut world, dir.path(), false, None);
    assert!(matches!(end, Ok(TakeoverEnd::Done { .. })), "{end:?}");
    assert_eq!((world.presses, world.claims_relayed()), (1, 1));
}

#[test]
fn resumes_after_the_claim_was_stored_but_not_queued() {
    let dir = state_dir();
    let mut world = World::default();
    let (end, _) = run(
        &mut world,
        dir.path(),
        false,
        Some((2, Interruption::AfterWork)),
    );
    assert_eq!(end, Err("killed after the press".into()));
    assert!(record_exists(dir.path()), "kept: a credential was stored");
    assert_eq!(world.claims_relayed(), 0);
    let (end, steps) = run(&mut world, dir.path(), false, None);
    assert!(matches!(end, Ok(TakeoverEnd::Done { .. })), "{end:?}");
    assert!(
        steps
            .iter()
            .any(|s| s.contains("was paired during this takeover")),
        "{steps:#?}"
    );
    assert_eq!((world.presses, world.claims_relayed()), (1, 1));
}

/// The cloud goes down at call `at`: the run ends interrupted at `step`,
/// and the next finishes without pressing or appending again.
fn resumes_after_unanswered(daemon: bool, at: usize, step: &str) {
    let dir = state_dir();
    let mut world = World::default();
    let (end, _) = run(
        &mut world,
        dir.path(),
        daemon,
        Some((at, Interruption::Outage)),
    );
    assert!(
        matches!(&end, Ok(TakeoverEnd::Interrupted { step: s, .. }) if s == step),
        "{end:?}"
    );
    let appended = world.outbox.len();
    let (end, _) = run(&mut world, dir.path(), daemon, None);
    assert!(matches!(end, Ok(TakeoverEnd::Done { .. })), "{end:?}");
    assert_eq!((world.presses, world.claims_relayed()), (1, 1));
    // Settled, not appended again: only the steps after it append.
    let later = match step {
        "claim" => 2,
        "share" => 1,
        _ => 0,
    };
    assert_eq!(world.outbox.len(), appended + later, "{:#?}", world.outbox);
}

const RELEASE: &str = "release (Remove Home from Account)";

#[test]
fn resumes_after_the_claim_was_queued_unanswered() {
    resumes_after_unanswered(false, 3, "claim");
    // The daemon queues the claim in the button step.
    resumes_after_unanswered(true, 2, "claim");
}

#[test]
fn resumes_after_the_share_was_queued_unanswered() {
    resumes_after_unanswered(false, 6, "share");
    resumes_after_unanswered(true, 5, "share");
}

#[test]
fn resumes_after_the_release_was_queued_unanswered() {
    resumes_after_unanswered(false, 8, RELEASE);
    resumes_after_unanswered(true, 7, RELEASE);
}

#[test]
fn refusals_end_as_the_article_says_and_leave_no_record() {
    let cases = [
        (
            World {
                homeowner: Some("owner@example.com".into()),
                ..World::default()
            },
            "yellow",
        ),
        (
            World {
                grey: true,
                ..World::default()
            },
            "grey",
        ),
        (
            World {
                access: vec![SITE.into()],
                ..World::default()
            },
            "nothing to do",
        ),
    ];
    for (mut world, what) in cases {
        let dir = state_dir();
        let (end, _) = run(&mut world, dir.path(), false, None);
        let expected = match what {
            "yellow" => matches!(
                end,
                Ok(TakeoverEnd::NotApplicable {
                    status: Status::Yellow,
                    ..
                })
            ),
            "grey" => matches!(
                end,
                Ok(TakeoverEnd::NotApplicable {
                    status: Status::Grey,
                    ..
                })
            ),
            _ => {
                end == Ok(TakeoverEnd::NothingToDo {
                    place: PLACE.into(),
                    account: SITE.into(),
                })
            }
        };
        assert!(expected, "{what}: {end:?}");
        assert_eq!(world.presses, 0, "{what}");
        assert!(!record_exists(dir.path()), "{what}");
    }
}

#[test]
fn a_refused_share_ends_refused_and_keeps_the_record() {
    let dir = state_dir();
    let mut world = World {
        refuse_share: true,
        ..World::default()
    };
    let (end, _) = run(&mut world, dir.path(), false, None);
    assert_eq!(
        end,
        Ok(TakeoverEnd::Refused {
            step: "share".into(),
            rule: "share-refused".into(),
            guidance: "the fake cloud refuses: share-refused".into(),
        })
    );
    assert!(record_exists(dir.path()));
}

#[test]
fn a_cancelled_or_failed_button_step_leaves_no_record() {
    for how in [Interruption::Cancel, Interruption::Fail] {
        let dir = state_dir();
        let mut world = World::default();
        let (end, _) = run(&mut world, dir.path(), false, Some((2, how)));
        match how {
            Interruption::Cancel => assert_eq!(end, Ok(TakeoverEnd::Cancelled)),
            _ => assert!(end.is_err(), "{end:?}"),
        }
        assert!(!record_exists(dir.path()), "{how:?}");
        // So another account may be given the takeover.
        let other = TakeoverPlan {
            share_to: "other@example.com".into(),
            ..plan()
        };
        let (end, _) = run_plan(&mut world, dir.path(), &other, false, None);
        assert!(matches!(end, Ok(TakeoverEnd::Done { .. })), "{end:?}");
    }
}

#[test]
fn a_finished_takeover_refuses_to_run_again() {
    let dir = state_dir();
    let mut world = World::default();
    let (end, _) = run(&mut world, dir.path(), false, None);
    assert!(matches!(end, Ok(TakeoverEnd::Done { .. })), "{end:?}");
    let (again, steps) = run(&mut world, dir.path(), false, None);
    let path = record_path(dir.path(), SERIAL);
    assert_eq!(
        again,
        Err(format!(
            "a takeover of {} already finished (see {}); remove that file to take it over again",
            SERIAL.0,
            path.display()
        ))
    );
    assert!(steps.is_empty(), "{steps:?}");
    assert_eq!(world.presses, 1);
}

#[test]
fn a_different_share_to_refuses() {
    let dir = state_dir();
    let mut world = World::default();
    let (end, _) = run(
        &mut world,
        dir.path(),
        false,
        Some((6, Interruption::Outage)),
    );
    assert!(
        matches!(end, Ok(TakeoverEnd::Interrupted { .. })),
        "{end:?}"
    );
    let before = std::fs::read(record_path(dir.path(), SERIAL)).unwrap();
    let other = TakeoverPlan {
        share_to: "other@example.com".into(),
        ..plan()
    };
    let (end, _) = run_plan(&mut world, dir.path(), &other, false, None);
    assert!(
        end.as_ref()
            .is_err_and(|e| e.contains("shares to pro@example.com")),
        "{end:?}"
    );
    assert_eq!(
        std::fs::read(record_path(dir.path(), SERIAL)).unwrap(),
        before,
        "the record is left as it was"
    );
}

#[test]
fn the_claim_report_names_the_backends_cloud() {
    let dir = state_dir();
    let mut world = World::default();
    let (_, steps) = run(&mut world, dir.path(), false, None);
    assert!(
        steps.contains(
            &"the cloud at fake:4433 recorded site@example.com as the temporary homeowner".into()
        ),
        "{steps:#?}"
    );
}

#[test]
fn a_damaged_record_is_reported_not_overwritten() {
    let dir = state_dir();
    let path = record_path(dir.path(), SERIAL);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{not json").unwrap();
    let mut world = World::default();
    let (end, _) = run(&mut world, dir.path(), false, None);
    assert!(
        end.as_ref()
            .is_err_and(|e| e.starts_with(&format!("{} is damaged", path.display()))
                && e.ends_with("; remove it to start the takeover over")),
        "{end:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    assert_eq!(world.presses, 0);
}
