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
//! The procedure is the same wherever it runs; what differs is reached
//! through a [`TakeoverBackend`]: the command line (its own outbox, its
//! `--cloud`, its pairing identity) or the daemon (its outbox and link,
//! its inventory and pairing identity; a control client's `takeover`).

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ClaimOutcome, ClaimRecord, credential_files};
use crate::identity::CredentialStore;
use crate::place::{AccessDuration, PlaceId, Status};
use crate::processor::{Mac, Serial};
use crate::proto::control::TakeoverResult;
use crate::proto::{EventId, EventKind, PlaceStatus, Released, ShareAccess};
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

/// Where an interrupted takeover stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Record {
    share_to: String,
    duration: String,
    /// When the button step began (seconds since the epoch): a credential
    /// written after it is this takeover's, even if the run died before
    /// queueing the claim.
    claim_started: Option<u64>,
    claimed: Option<EventId>,
    place: Option<String>,
    shared: Option<EventId>,
    released: Option<EventId>,
    done: bool,
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

/// Relays `kind` once: appends it (recording its id in `slot`) unless an
/// earlier run did, then waits for its answer.
async fn once<B: TakeoverBackend>(
    backend: &mut B,
    path: &Path,
    record: &mut Record,
    slot: fn(&mut Record) -> &mut Option<EventId>,
    kind: impl FnOnce() -> Result<EventKind, String>,
) -> Result<Relayed, String> {
    if let Some(id) = slot(record).clone() {
        return backend.settle(&id).await;
    }
    let (id, relayed) = backend.relay(kind()?).await?;
    *slot(record) = Some(id);
    save(path, record)?;
    Ok(relayed)
}

/// Relays the `claimed` event of a credential this takeover stored.
async fn relay_claim<B: TakeoverBackend>(
    backend: &mut B,
    path: &Path,
    record: &mut Record,
    outcome: &ClaimOutcome,
) -> Result<Relayed, String> {
    once(
        backend,
        path,
        record,
        |r| &mut r.claimed,
        || outcome.event(),
    )
    .await
}

/// The end of a step the cloud did not apply.
fn stopped(step: &str, relayed: Relayed) -> Option<TakeoverEnd> {
    match relayed {
        Relayed::Applied(_) => None,
        Relayed::Refused { rule, guidance } => Some(TakeoverEnd::Refused {
            step: step.into(),
            rule,
            guidance,
        }),
        Relayed::Queued { reason } => Some(TakeoverEnd::Interrupted {
            step: step.into(),
            reason,
        }),
    }
}

/// Runs (or continues) the takeover `plan` describes, its record in
/// `state_dir`.
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
    let mut record = match load(&path)? {
        Some(r) if r.done => {
            return Err(format!(
                "a takeover of {serial} already finished (see {}); remove that file to take it \
                 over again",
                path.display()
            ));
        }
        Some(r) => {
            backend.step(&format!(
                "continuing the takeover recorded in {}",
                path.display()
            ));
            r
        }
        None => Record {
            share_to: plan.share_to.clone(),
            duration: plan.duration.code().to_owned(),
            ..Record::default()
        },
    };
    if record.share_to != plan.share_to {
        return Err(format!(
            "an unfinished takeover of {serial} shares to {}; finish it with that address, or \
             remove {}",
            record.share_to,
            path.display()
        ));
    }
    // Until the cloud names it (a resumed run may not ask before it reports).
    let mut account = "the site's account".to_owned();

    // 1. Does the method apply?
    if record.claimed.is_none() {
        let (st, acting) = backend.status(serial, plan.mac).await?;
        account = acting;
        match (st.status, &st.place) {
            (Status::Yellow | Status::Grey, _) => {
                return Ok(TakeoverEnd::NotApplicable {
                    status: st.status,
                    guidance: st.guidance,
                    serial: st.serial,
                    mac: st.mac,
                });
            }
            (Status::Green, Some(place)) if record.claim_started.is_some() => {
                // An earlier run's claim (queued by a daemon after that run
                // stopped) already landed.
                backend.step(&format!(
                    "claim: an earlier run's claim gave {account} Place {place}"
                ));
                record.place = Some(place.0.clone());
            }
            (Status::Green, Some(place)) => {
                return Ok(TakeoverEnd::NothingToDo {
                    place: place.0.clone(),
                    account,
                });
            }
            (Status::Green, None) => {
                backend.step(&format!(
                    "green: no homeowner yet, so {account} can claim it"
                ));
            }
        }
        save(&path, &record)?;
    }

    // 2. Claim with the button, unless an earlier run did.
    let claim_relayed = if record.claimed.is_none() && record.place.is_some() {
        Relayed::Applied(None)
    } else if record.claimed.is_some() {
        backend.step("claim: done before, checking the cloud recorded it");
        once(
            backend,
            &path,
            &mut record,
            |r| &mut r.claimed,
            || Err("the recorded claim event is missing from the outbox".into()),
        )
        .await?
    } else if let Some(outcome) =
        claimed_during(backend.credentials_dir(), serial, record.claim_started)
    {
        backend.step(&format!(
            "claim: {} was paired during this takeover (the run stopped before queueing it); \
             relaying that claim, no second button press",
            outcome.id
        ));
        relay_claim(backend, &path, &mut record, &outcome).await?
    } else {
        if backend.cancelled() {
            discard_if_untouched(&path, &record)?;
            return Ok(TakeoverEnd::Cancelled);
        }
        record.claim_started = Some(crate::place::now().0);
        save(&path, &record)?;
        let step = match backend.claim(serial).await {
            Ok(step) => step,
            Err(e) => {
                // Nothing stored (the button step stores last): nothing to
                // resume, so no record to block another takeover.
                if claimed_during(backend.credentials_dir(), serial, record.claim_started).is_none()
                {
                    discard_if_untouched(&path, &record)?;
                }
                return Err(e);
            }
        };
        match step {
            ButtonStep::Cancelled => {
                discard_if_untouched(&path, &record)?;
                return Ok(TakeoverEnd::Cancelled);
            }
            ButtonStep::Stored(outcome) => {
                backend.step(&format!(
                    "claimed {} (serial {}) with its button",
                    outcome.id, serial.0
                ));
                relay_claim(backend, &path, &mut record, &outcome).await?
            }
            ButtonStep::Queued {
                outcome,
                id,
                relayed,
            } => {
                backend.step(&format!(
                    "claimed {} (serial {}) with its button; the credential is in {}",
                    outcome.id,
                    serial.0,
                    outcome.credential_dir.display()
                ));
                record.claimed = Some(id);
                save(&path, &record)?;
                relayed
            }
        }
    };
    if let Some(end) = stopped("claim", claim_relayed) {
        return Ok(end);
    }
    backend.step(&format!(
        "the cloud at {} recorded {account} as the temporary homeowner",
        backend.cloud()
    ));
    if backend.cancelled() {
        return Ok(interrupted_by_caller("share"));
    }

    // 3. Share the Place with the pro account.
    let place = match record.place.clone() {
        Some(place) => place,
        None => {
            let (st, acting) = backend.status(serial, plan.mac).await?;
            account = acting;
            let place = st.place.ok_or_else(|| {
                format!(
                    "the cloud does not show {account} the Place after the claim ({}); run again",
                    st.status
                )
            })?;
            record.place = Some(place.0.clone());
            save(&path, &record)?;
            place.0
        }
    };
    let duration = AccessDuration::from_code(&record.duration).unwrap_or(plan.duration);
    let share_to = record.share_to.clone();
    let shared = once(
        backend,
        &path,
        &mut record,
        |r| &mut r.shared,
        || {
            Ok(EventKind::ShareAccess(ShareAccess {
                place: PlaceId(place.clone()),
                email: share_to.clone(),
                duration,
            }))
        },
    )
    .await?;
    if let Some(end) = stopped("share", shared) {
        return Ok(end);
    }
    backend.step(&format!(
        "shared Place {place} with {share_to} for {duration}"
    ));
    if backend.cancelled() {
        return Ok(interrupted_by_caller("release (Remove Home from Account)"));
    }

    // 4. Remove Home from Account.
    let released = once(
        backend,
        &path,
        &mut record,
        |r| &mut r.released,
        || {
            Ok(EventKind::Released(Released {
                place: Some(PlaceId(place.clone())),
                serial: Some(serial),
            }))
        },
    )
    .await?;
    if let Some(end) = stopped("release (Remove Home from Account)", released) {
        return Ok(end);
    }
    record.done = true;
    save(&path, &record)?;
    let until = duration.seconds().map(|s| {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(s))
            .to_string()
    });
    Ok(TakeoverEnd::Done {
        place,
        serial,
        share_to,
        duration,
        until,
        account,
    })
}

/// Removes the record of a run that changed nothing (no event queued, no
/// Place learnt): a cancelled or failed button step leaves nothing to
/// resume, and a stale record would refuse a takeover to another account.
fn discard_if_untouched(path: &Path, record: &Record) -> Result<(), String> {
    let untouched = record.claimed.is_none()
        && record.place.is_none()
        && record.shared.is_none()
        && record.released.is_none()
        && !record.done;
    if !untouched {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

fn interrupted_by_caller(step: &str) -> TakeoverEnd {
    TakeoverEnd::Interrupted {
        step: step.into(),
        reason: "cancelled; the steps so far are recorded".into(),
    }
}

/// The credential an interrupted run of this takeover stored (written after
/// the button step began), as a claim outcome to relay.
fn claimed_during(
    state_dir: &Path,
    serial: Serial,
    claim_started: Option<u64>,
) -> Option<ClaimOutcome> {
    let started = claim_started?;
    let dir = CredentialStore::new(state_dir).dir(serial);
    let record = ClaimRecord::load(&dir)?;
    let written = std::fs::metadata(dir.join("cert.pem"))
        .and_then(|m| m.modified())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    (written >= started).then(|| ClaimOutcome {
        id: record.id,
        serial: record.serial,
        mac: record.mac,
        address: record.address,
        product: record.product,
        device_uid: record.device_uid,
        files: credential_files(&dir),
        credential_dir: dir,
        exported: Vec::new(),
    })
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
