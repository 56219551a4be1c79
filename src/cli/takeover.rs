//! `handoff takeover PROCESSOR --share-to EMAIL [--for 7d]`: the vendor
//! article's last resort, in one safe step.
//!
//! 1. Ask the cloud the processor's status, and refuse where the article
//!    says the method does not apply: yellow (a homeowner exists: ask for
//!    Remote Assistance), grey (no remote services: find the project file
//!    or factory-default), or green with access already (nothing to do).
//! 2. Claim with the button (countdown) and relay Claimed with the proof.
//! 3. Share the Place with the pro account for the chosen duration.
//! 4. Remove Home from Account, so the real homeowner can claim later.
//!
//! Every step is recorded in `STATE_DIR/takeover/<serial>.json` (written
//! atomically) before and after it runs, and every event is durable in the
//! outbox before it is sent. Running the command again after an
//! interruption (Ctrl-C, a cloud outage, a kill) continues where it
//! stopped and never claims twice.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::claim::{
    Countdown, DaemonClaim, KeyKind, claim_request, claim_with_daemon, claimed_event,
    load_pairing_identity,
};
use super::relay::{CloudFlags, Relayed, relay, settle};
use super::status::{Asker, identify};
use super::{CliError, parse_duration, shutdown_signal, write_atomically};
use crate::claim::{ClaimOptions, ClaimOutcome, ClaimRecord, DEFAULT_DISCOVERY_TIMEOUT, Target};
use crate::cloud::{AccessDuration, AccountId, PlaceId, Status};
use crate::identity::{CredentialStore, KeyAlgorithm};
use crate::processor::Serial;
use crate::proto::{EventId, EventKind, Released, ShareAccess};

#[derive(Args, Debug)]
pub struct TakeoverArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    pub processor: String,
    /// The pro account (myLutron email) that keeps access
    #[arg(long, value_name = "EMAIL")]
    pub share_to: String,
    /// For how long: 1d, 7d, 30d, 1y or unlimited
    #[arg(long = "for", default_value = "7d", value_parser = parse_access_duration)]
    pub duration: AccessDuration,
    /// The pairing identity [default: STATE_DIR/pairing-identity]; claims
    /// from this process, not through the daemon
    #[arg(long, value_name = "DIR", env = "HANDOFF_PAIRING_IDENTITY")]
    pub pairing_identity: Option<PathBuf>,
    /// Claim from this process even when a daemon runs (without it, a
    /// running daemon performs the button step and relays the events)
    #[arg(long)]
    pub standalone: bool,
    /// How long to wait for the button press
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub button_timeout: Duration,
    /// How long discovery looks for the processor
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

fn parse_access_duration(s: &str) -> Result<AccessDuration, String> {
    AccessDuration::from_code(s)
        .ok_or_else(|| format!("'{s}' is not one of 1d, 7d, 30d, 1y, unlimited"))
}

/// Where an interrupted takeover stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
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

fn progress_path(state_dir: &Path, serial: Serial) -> PathBuf {
    state_dir
        .join("takeover")
        .join(format!("{}.json", serial.0))
}

fn load(path: &Path) -> Result<Option<Progress>, CliError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::Failed(format!(
                "{} is damaged ({e}); remove it to start the takeover over",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

fn save(path: &Path, progress: &Progress) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(CliError::io(format!("creating {}", dir.display())))?;
    }
    let text = serde_json::to_vec_pretty(progress)
        .map_err(|e| CliError::Failed(format!("cannot encode the takeover's progress: {e}")))?;
    write_atomically(path, &text).map_err(CliError::io(format!("writing {}", path.display())))
}

fn step(json: bool, text: &str) {
    if !json {
        eprintln!("{text}");
    }
}

/// The end of a step that the cloud did not settle: say why and stop.
fn stopped(what: &str, relayed: &Relayed, json: bool) -> ExitCode {
    match relayed {
        Relayed::Refused { rule, guidance } => {
            if json {
                println!(
                    "{}",
                    json!({"result": "refused", "step": what, "rule": rule, "why": guidance})
                );
            }
            eprintln!("refused at the {what}: {guidance}\n  (rule: {rule})");
            ExitCode::from(3)
        }
        Relayed::Queued { reason } => {
            if json {
                println!(
                    "{}",
                    json!({"result": "interrupted", "step": what, "why": reason})
                );
            }
            eprintln!(
                "the {what} is queued but the cloud has not answered ({reason}); run the same \
                 command again to continue: nothing will be claimed twice"
            );
            ExitCode::from(4)
        }
        Relayed::Applied(_) => ExitCode::SUCCESS,
    }
}

/// Relays `kind` once: appends it (recording its id in `slot`) unless an
/// earlier run did, then waits for its answer.
async fn once(
    state_dir: &Path,
    flags: &CloudFlags,
    path: &Path,
    progress: &mut Progress,
    slot: fn(&mut Progress) -> &mut Option<EventId>,
    kind: impl FnOnce() -> Result<EventKind, CliError>,
) -> Result<Relayed, CliError> {
    if let Some(id) = slot(progress).clone() {
        return settle(state_dir, flags, &id).await;
    }
    let mut results = relay(state_dir, flags, vec![kind()?]).await?;
    let (id, relayed) = results
        .pop()
        .ok_or_else(|| CliError::Failed("the event was not queued".into()))?;
    *slot(progress) = Some(id);
    save(path, progress)?;
    Ok(relayed)
}

pub async fn run(args: TakeoverArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let state_dir = state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })?;
    let Some(asker) = Asker::choose(&args.cloud, &state_dir).await? else {
        return Err(CliError::Failed(
            "a takeover needs the cloud: pass --cloud ADDR (and --cloud-identity DIR), or run it \
             where a daemon relays to one"
                .into(),
        ));
    };
    // The account acting, as the cloud names it in every answer.
    // (A resumed run through a daemon may not ask before it reports.)
    let mut account = match &asker {
        Asker::Direct(link) => link.account.clone(),
        Asker::Daemon => "the site's account".to_owned(),
    };
    if !args.share_to.contains('@') {
        return Err(CliError::Failed(format!(
            "'{}' is not an email address (the pro's myLutron account)",
            args.share_to
        )));
    }
    let (serial, mac) = identify(&args.processor, args.timeout).await?;
    let Some(serial) = serial else {
        return Err(CliError::Failed(
            "the processor does not advertise its serial number".into(),
        ));
    };
    let path = progress_path(&state_dir, serial);
    let mut progress = match load(&path)? {
        Some(p) if p.done => {
            return Err(CliError::Failed(format!(
                "a takeover of {serial} already finished (see {}); remove that file to take it \
                 over again",
                path.display()
            )));
        }
        Some(p) => {
            step(
                args.json,
                &format!("continuing the takeover recorded in {}", path.display()),
            );
            p
        }
        None => Progress {
            share_to: AccountId::new(&args.share_to).as_str().to_owned(),
            duration: args.duration.code().to_owned(),
            ..Progress::default()
        },
    };
    if progress.share_to != AccountId::new(&args.share_to).as_str() {
        return Err(CliError::Failed(format!(
            "an unfinished takeover of {serial} shares to {}; finish it with that address, or \
             remove {}",
            progress.share_to,
            path.display()
        )));
    }

    // 1. Does the method apply?
    if progress.claimed.is_none() {
        let (st, acting) = asker.ask(Some(serial), mac, args.cloud.cloud_wait).await?;
        account = acting;
        let refuse = |what: &str| {
            if args.json {
                println!(
                    "{}",
                    json!({"result": "refused", "status": st.status.to_string(), "why": st.guidance})
                );
            }
            eprintln!("{what}\n{}: {}", st.status, st.guidance);
            eprintln!(
                "processor: serial {} (id {}), MAC {}",
                st.serial.0,
                st.serial.id(),
                st.mac
            );
            ExitCode::from(3)
        };
        match (st.status, &st.place) {
            (Status::Yellow, _) => {
                return Ok(refuse(
                    "not taking over: this system already has a homeowner",
                ));
            }
            (Status::Grey, _) => {
                return Ok(refuse("not taking over: remote services are off"));
            }
            (Status::Green, Some(place)) if progress.claim_started.is_some() => {
                // An earlier run's claim (performed by the daemon, which
                // relayed it after that run stopped) already landed.
                step(
                    args.json,
                    &format!(
                        "claim: an earlier run's claim gave {} Place {place}",
                        account
                    ),
                );
                progress.place = Some(place.0.clone());
            }
            (Status::Green, Some(place)) => {
                if args.json {
                    println!(
                        "{}",
                        json!({"result": "nothing-to-do", "place": place.0, "account": account})
                    );
                }
                eprintln!(
                    "nothing to do: {} already has access to Place {place}",
                    account
                );
                return Ok(ExitCode::SUCCESS);
            }
            (Status::Green, None) => step(
                args.json,
                &format!("green: no homeowner yet, so {} can claim it", account),
            ),
        }
        save(&path, &progress)?;
    }

    // 2. Claim with the button, unless an earlier run did.
    let claim_relayed = if progress.claimed.is_none() && progress.place.is_some() {
        Relayed::Applied(None)
    } else if progress.claimed.is_some() {
        step(
            args.json,
            "claim: done before, checking the cloud recorded it",
        );
        once(
            &state_dir,
            &args.cloud,
            &path,
            &mut progress,
            |p| &mut p.claimed,
            unreachable_event,
        )
        .await?
    } else if let Some(outcome) = claimed_during_this_takeover(&state_dir, serial, &progress) {
        step(
            args.json,
            &format!(
                "claim: {} was paired during this takeover (the run stopped before queueing it); \
                 relaying that claim, no second button press",
                outcome.id
            ),
        );
        once(
            &state_dir,
            &args.cloud,
            &path,
            &mut progress,
            |p| &mut p.claimed,
            || claimed_event(&outcome),
        )
        .await?
    } else if let Some(relayed) = claim_through_daemon(&args, serial, &path, &mut progress).await? {
        match relayed {
            Some(relayed) => relayed,
            None => {
                eprintln!("cancelled before the claim: nothing changed");
                return Ok(ExitCode::from(130));
            }
        }
    } else {
        let identity = load_pairing_identity(args.pairing_identity.as_deref(), &state_dir)?;
        let options = ClaimOptions {
            discovery_timeout: if args.timeout.is_zero() {
                DEFAULT_DISCOVERY_TIMEOUT
            } else {
                args.timeout
            },
            button_timeout: args.button_timeout,
            key_algorithm: KeyAlgorithm::Rsa2048,
            ..ClaimOptions::new(Target::Serial(serial), state_dir.clone())
        };
        progress.claim_started = Some(crate::cloud::now().0);
        save(&path, &progress)?;
        let mut countdown = Countdown::new();
        let outcome = tokio::select! {
            outcome = crate::claim::claim(&options, &identity, &mut countdown) => outcome,
            () = shutdown_signal() => {
                countdown.stop();
                eprintln!("cancelled before the claim: nothing changed");
                return Ok(ExitCode::from(130));
            }
        };
        countdown.stop();
        let outcome = outcome?;
        step(
            args.json,
            &format!(
                "claimed {} (serial {}) with its button",
                outcome.id, serial.0
            ),
        );
        once(
            &state_dir,
            &args.cloud,
            &path,
            &mut progress,
            |p| &mut p.claimed,
            || claimed_event(&outcome),
        )
        .await?
    };
    if !matches!(claim_relayed, Relayed::Applied(_)) {
        return Ok(stopped("claim", &claim_relayed, args.json));
    }
    step(
        args.json,
        &format!("the cloud recorded {} as the temporary homeowner", account),
    );

    // 3. Share the Place with the pro account.
    let place = match progress.place.clone() {
        Some(place) => place,
        None => {
            let (st, acting) = asker.ask(Some(serial), mac, args.cloud.cloud_wait).await?;
            account = acting;
            let place = st.place.ok_or_else(|| {
                CliError::Failed(format!(
                    "the cloud does not show {} the Place after the claim ({}); run again",
                    account, st.status
                ))
            })?;
            progress.place = Some(place.0.clone());
            save(&path, &progress)?;
            place.0
        }
    };
    let duration = AccessDuration::from_code(&progress.duration).unwrap_or(args.duration);
    let share_to = progress.share_to.clone();
    let shared = once(
        &state_dir,
        &args.cloud,
        &path,
        &mut progress,
        |p| &mut p.shared,
        || {
            Ok(EventKind::ShareAccess(ShareAccess {
                place: PlaceId(place.clone()),
                email: share_to.clone(),
                duration,
            }))
        },
    )
    .await?;
    if !matches!(shared, Relayed::Applied(_)) {
        return Ok(stopped("share", &shared, args.json));
    }
    step(
        args.json,
        &format!("shared Place {place} with {share_to} for {duration}"),
    );

    // 4. Remove Home from Account.
    let released = once(
        &state_dir,
        &args.cloud,
        &path,
        &mut progress,
        |p| &mut p.released,
        || {
            Ok(EventKind::Released(Released {
                place: Some(PlaceId(place.clone())),
                serial: Some(serial),
            }))
        },
    )
    .await?;
    if !matches!(released, Relayed::Applied(_)) {
        return Ok(stopped(
            "release (Remove Home from Account)",
            &released,
            args.json,
        ));
    }
    progress.done = true;
    save(&path, &progress)?;
    let until = duration.seconds().map(|s| {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(s))
            .to_string()
    });
    if args.json {
        println!(
            "{}",
            json!({"result": "done", "place": place, "serial": serial.0, "shared_with": share_to,
                   "for": duration.code(), "until": until})
        );
    } else {
        println!(
            "done: {share_to} has access to Place {place} {}; the home was removed from {}'s \
             account, so the homeowner can claim the system with its button",
            until.map_or_else(|| "with no end".to_string(), |u| format!("until {u}")),
            account
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The button step performed by a running daemon (unless this process is
/// to claim itself): `None` when no daemon claims, `Some(None)` when the
/// claim was cancelled, else what the cloud said of the claim.
async fn claim_through_daemon(
    args: &TakeoverArgs,
    serial: Serial,
    path: &Path,
    progress: &mut Progress,
) -> Result<Option<Option<Relayed>>, CliError> {
    if args.standalone || args.pairing_identity.is_some() {
        return Ok(None);
    }
    let req = claim_request(
        &serial.0.to_string(),
        None,
        Some(args.button_timeout),
        KeyKind::Rsa,
        None,
        args.cloud.cloud_wait,
    );
    progress.claim_started = Some(crate::cloud::now().0);
    save(path, progress)?;
    match claim_with_daemon(req).await? {
        DaemonClaim::NoDaemon => Ok(None),
        DaemonClaim::Cancelled => Ok(Some(None)),
        DaemonClaim::Done {
            outcome,
            id,
            relayed,
        } => {
            step(
                args.json,
                &format!(
                    "claimed {} (serial {}) with its button; the daemon keeps the credential in {}",
                    outcome.id,
                    serial.0,
                    outcome.credential_dir.display()
                ),
            );
            progress.claimed = Some(id);
            save(path, progress)?;
            Ok(Some(Some(relayed)))
        }
    }
}

/// The credential an interrupted run of this takeover stored (written after
/// the button step began), as a claim outcome to relay.
fn claimed_during_this_takeover(
    state_dir: &Path,
    serial: Serial,
    progress: &Progress,
) -> Option<ClaimOutcome> {
    let started = progress.claim_started?;
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
        files: crate::claim::credential_files(&dir),
        credential_dir: dir,
        exported: Vec::new(),
    })
}

/// The claim step's event when an earlier run already queued it: never
/// built again (the recorded id is settled instead).
fn unreachable_event() -> Result<EventKind, CliError> {
    Err(CliError::Failed(
        "the recorded claim event is missing from the outbox".into(),
    ))
}
