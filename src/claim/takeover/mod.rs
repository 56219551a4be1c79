//! The takeover: the vendor article's last resort, in one safe procedure.
//!
//! 1. Ask the cloud the processor's status, and stop where the article
//!    says the method does not apply: yellow (a homeowner exists: ask for
//!    Remote Assistance), grey (no remote services: find the project file
//!    or factory-default), or green with access already (nothing to do).
//! 2. Claim with the button and relay Claimed with the proof.
//! 3. Share the Place with the pro account for the chosen duration.
//! 4. Remove Home from Account, so the real homeowner can claim later.
//!
//! Every step is recorded in `STATE_DIR/takeover/<serial>.json` (written
//! atomically) before and after it runs, and every event is durable in an
//! outbox before it is sent. Running it again after an interruption (Ctrl-C,
//! a cloud outage, a kill) continues where it stopped and never claims
//! twice.
//!
//! The decisions are a pure core (`core.rs`: the record, the plan and the
//! answers so far in, the next step out, `now` passed in); [`takeover`] is
//! the shell that does them: the record's file, the credential store, the
//! clock, and the calls below.
//!
//! The procedure is the same wherever it runs; what differs is reached
//! through a [`TakeoverBackend`]: the command line (its own outbox, its
//! `--cloud`, its pairing identity) or the daemon (its outbox and link,
//! its inventory and pairing identity; a control client's `takeover`).

mod core;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use self::core::{Action, Answer, Outgoing, Record, TakeoverCore};
use super::{ClaimOutcome, ClaimRecord, credential_files};
use crate::identity::CredentialStore;
use crate::place::{AccessDuration, Status};
use crate::processor::{Mac, Serial};
use crate::proto::control::TakeoverResult;
use crate::proto::{EventId, EventKind, PlaceStatus};
use crate::relay::Relayed;

/// What to take over, and for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakeoverPlan {
    pub serial: Serial,
    /// When known: the cloud is asked by serial either way.
    pub mac: Option<Mac>,
    /// The pro account that keeps access, normalized (`AccountId`).
    pub share_to: String,
    pub duration: AccessDuration,
}

/// The button step's result.
#[derive(Debug)]
pub enum ButtonStep {
    /// The credential is stored; its `claimed` event is for the procedure
    /// to relay.
    Stored(Box<ClaimOutcome>),
    /// The backend stored the credential and queued the event itself (the
    /// daemon does both in one step): its id and what the cloud said.
    Queued {
        outcome: Box<ClaimOutcome>,
        id: EventId,
        relayed: Relayed,
    },
    /// Cancelled before anything was stored.
    Cancelled,
}

/// What the procedure needs from where it runs. Errors are sentences for
/// the integrator.
pub trait TakeoverBackend: Send {
    /// The processor's Place as the cloud sees it, and the account asking.
    fn status(
        &mut self,
        serial: Serial,
        mac: Option<Mac>,
    ) -> impl Future<Output = Result<(PlaceStatus, String), String>> + Send;

    /// Appends `event` to an outbox (durable before this returns) and
    /// waits a while for the cloud.
    fn relay(
        &mut self,
        event: EventKind,
    ) -> impl Future<Output = Result<(EventId, Relayed), String>> + Send;

    /// What became of an event appended earlier: its recorded answer, or
    /// another wait for the cloud.
    fn settle(&mut self, id: &EventId) -> impl Future<Output = Result<Relayed, String>> + Send;

    /// The button step: pair with the processor and store the credential.
    fn claim(&mut self, serial: Serial) -> impl Future<Output = Result<ButtonStep, String>> + Send;

    /// Where credentials are kept (to find one an interrupted run stored).
    fn credentials_dir(&self) -> &Path;

    /// The cloud the events go to (host:port), for messages: every report
    /// of a cloud's answer names it.
    fn cloud(&self) -> String;

    /// Whether the caller gave up: checked between steps.
    fn cancelled(&self) -> bool {
        false
    }

    /// One line of progress for people.
    fn step(&mut self, text: &str);
}

/// How a takeover ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeoverEnd {
    /// The method does not apply: yellow or grey, with the guidance.
    NotApplicable {
        status: Status,
        guidance: String,
        serial: Serial,
        mac: Mac,
    },
    /// The account has access already.
    NothingToDo { place: String, account: String },
    /// The cloud refused a step; the vendor's rule says why.
    Refused {
        step: String,
        rule: String,
        guidance: String,
    },
    /// A step is queued but the cloud has not answered: run it again.
    Interrupted { step: String, reason: String },
    /// Given up before the claim stored anything.
    Cancelled,
    Done {
        place: String,
        serial: Serial,
        share_to: String,
        duration: AccessDuration,
        /// RFC 3339, `None` for unlimited.
        until: Option<String>,
        /// The account whose temporary homeownership was released.
        account: String,
    },
}

/// `STATE_DIR/takeover/<serial>.json`.
pub fn record_path(state_dir: &Path, serial: Serial) -> PathBuf {
    state_dir
        .join("takeover")
        .join(format!("{}.json", serial.0))
}

fn load(path: &Path) -> Result<Option<Record>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "{} is damaged ({e}); remove it to start the takeover over",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn save(path: &Path, record: &Record) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let text = serde_json::to_vec_pretty(record)
        .map_err(|e| format!("cannot encode the takeover's progress: {e}"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("takeover.json");
    crate::identity::files::write_private(dir, name, &text).map_err(|e| e.to_string())
}

fn discard(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

/// Runs (or continues) the takeover `plan` describes, its record in
/// `state_dir`: the shell around the pure core (`core.rs`), doing what it
/// decides (the record's file, the credential store, the clock, the
/// backend's calls).
///
/// # Errors
/// A takeover of this processor already finished, or an unfinished one
/// shares to another account; the record cannot be read or written; the
/// cloud cannot be asked; the button step failed (nothing stored).
pub async fn takeover<B: TakeoverBackend>(
    state_dir: &Path,
    plan: &TakeoverPlan,
    backend: &mut B,
) -> Result<TakeoverEnd, String> {
    let serial = plan.serial;
    let path = record_path(state_dir, serial);
    let loaded = load(&path)?;
    let mut core = TakeoverCore::new(plan.clone(), loaded, path.clone(), backend.cloud());
    loop {
        let answer = match core.next(crate::place::now()) {
            Action::End(end) => return end,
            Action::Report(text) => {
                backend.step(&text);
                continue;
            }
            Action::Save => {
                save(&path, core.record())?;
                continue;
            }
            Action::Discard => {
                discard(&path)?;
                continue;
            }
            Action::AskStatus => {
                let (status, account) = backend.status(serial, plan.mac).await?;
                Answer::Status { status, account }
            }
            Action::CheckCancelled => Answer::Cancelled(backend.cancelled()),
            Action::FindEarlierClaim { since } => Answer::EarlierClaim(
                claimed_during(backend.credentials_dir(), serial, since).map(Box::new),
            ),
            Action::PressButton => match backend.claim(serial).await {
                Ok(step) => Answer::Button(step),
                Err(error) => Answer::ButtonFailed {
                    error,
                    stored: core.record().claim_started.is_some_and(|since| {
                        claimed_during(backend.credentials_dir(), serial, since).is_some()
                    }),
                },
            },
            Action::Relay(event) => {
                let kind = match event {
                    Outgoing::Claim(outcome) => outcome.event()?,
                    Outgoing::Event(kind) => kind,
                };
                let (id, relayed) = backend.relay(kind).await?;
                Answer::Relayed { id, relayed }
            }
            Action::Settle(id) => Answer::Settled(backend.settle(&id).await?),
        };
        core.answer(answer);
    }
}

/// The credential an interrupted run of this takeover stored (its
/// certificate written at `since` or later), as a claim outcome to relay.
fn claimed_during(state_dir: &Path, serial: Serial, since: u64) -> Option<ClaimOutcome> {
    let dir = CredentialStore::new(state_dir).dir(serial);
    let record = ClaimRecord::load(&dir)?;
    let written = std::fs::metadata(dir.join("cert.pem"))
        .and_then(|m| m.modified())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    (written >= since).then(|| stored_outcome(record, dir))
}

/// The claim outcome of the credential stored in `dir` (its files, no
/// exports), as the button step would have returned it.
fn stored_outcome(record: ClaimRecord, dir: PathBuf) -> ClaimOutcome {
    ClaimOutcome {
        id: record.id,
        serial: record.serial,
        mac: record.mac,
        address: record.address,
        product: record.product,
        device_uid: record.device_uid,
        ca_sha256: std::fs::read_to_string(dir.join("processor-ca.pem"))
            .ok()
            .and_then(|pem| super::ca_fingerprint(&pem)),
        model: record.model,
        firmware: record.firmware,
        files: credential_files(&dir),
        credential_dir: dir,
        exported: Vec::new(),
    }
}

impl TakeoverEnd {
    /// As the control protocol's `done` carries it.
    pub fn to_wire(&self) -> TakeoverResult {
        let mut w = TakeoverResult::default();
        match self {
            TakeoverEnd::NotApplicable {
                status,
                guidance,
                serial,
                mac,
            } => {
                w.result = "not-applicable".into();
                w.status = Some(*status);
                w.why = Some(guidance.clone());
                w.serial = Some(*serial);
                w.mac = Some(*mac);
            }
            TakeoverEnd::NothingToDo { place, account } => {
                w.result = "nothing-to-do".into();
                w.place = Some(place.clone());
                w.account = Some(account.clone());
            }
            TakeoverEnd::Refused {
                step,
                rule,
                guidance,
            } => {
                w.result = "refused".into();
                w.step = Some(step.clone());
                w.rule = Some(rule.clone());
                w.why = Some(guidance.clone());
            }
            TakeoverEnd::Interrupted { step, reason } => {
                w.result = "interrupted".into();
                w.step = Some(step.clone());
                w.why = Some(reason.clone());
            }
            TakeoverEnd::Cancelled => w.result = "cancelled".into(),
            TakeoverEnd::Done {
                place,
                serial,
                share_to,
                duration,
                until,
                account,
            } => {
                w.result = "done".into();
                w.place = Some(place.clone());
                w.serial = Some(*serial);
                w.share_to = Some(share_to.clone());
                w.duration = Some(*duration);
                w.until.clone_from(until);
                w.account = Some(account.clone());
            }
        }
        w
    }

    /// From the control protocol's `done`.
    ///
    /// # Errors
    /// A result kind this build does not know, or one missing its fields.
    pub fn from_wire(w: TakeoverResult) -> Result<TakeoverEnd, String> {
        let missing = |field: &str| format!("the daemon's takeover result lacks \"{field}\"");
        Ok(match w.result.as_str() {
            "not-applicable" => TakeoverEnd::NotApplicable {
                status: w.status.ok_or_else(|| missing("st"))?,
                guidance: w.why.unwrap_or_default(),
                serial: w.serial.ok_or_else(|| missing("sn"))?,
                mac: w.mac.ok_or_else(|| missing("mac"))?,
            },
            "nothing-to-do" => TakeoverEnd::NothingToDo {
                place: w.place.ok_or_else(|| missing("p"))?,
                account: w.account.unwrap_or_default(),
            },
            "refused" => TakeoverEnd::Refused {
                step: w.step.unwrap_or_default(),
                rule: w.rule.unwrap_or_default(),
                guidance: w.why.unwrap_or_default(),
            },
            "interrupted" => TakeoverEnd::Interrupted {
                step: w.step.unwrap_or_default(),
                reason: w.why.unwrap_or_default(),
            },
            "cancelled" => TakeoverEnd::Cancelled,
            "done" => TakeoverEnd::Done {
                place: w.place.ok_or_else(|| missing("p"))?,
                serial: w.serial.ok_or_else(|| missing("sn"))?,
                share_to: w.share_to.ok_or_else(|| missing("share-to"))?,
                duration: w.duration.ok_or_else(|| missing("for"))?,
                until: w.until,
                account: w.account.unwrap_or_default(),
            },
            other => return Err(format!("the daemon ended the takeover with \"{other}\"")),
        })
    }
}
