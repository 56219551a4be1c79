//! `handoff takeover PROCESSOR --share-to EMAIL [--for 7d]`: the vendor
//! article's last resort, in one safe step (the procedure is
//! [`crate::claim::takeover`]).
//!
//! While a daemon that relays answers, the daemon performs the takeover
//! (`takeover` on the control socket): its pairing identity, its outbox
//! and link to the cloud, the record in its state directory; the steps and
//! the button countdown show here. Otherwise, or with `--standalone` or
//! `--pairing-identity`, this command performs it, its record in
//! `STATE_DIR/takeover/<serial>.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::watch;

use super::claim::{Countdown, load_pairing_identity};
use super::relay::{CloudFlags, Relayed};
use super::status::identify;
use super::{CliError, parse_timeout, shutdown_signal};
use crate::claim::takeover::{ButtonStep, TakeoverBackend, TakeoverEnd, TakeoverPlan, takeover};
use crate::claim::{ClaimOptions, Target};
use crate::cli::output::outln;
use crate::cloud::{AccessDuration, AccountId, Status};
use crate::daemon::DaemonError;
use crate::identity::KeyAlgorithm;
use crate::processor::{Mac, Serial};
use crate::proto::control::{TakeoverRequest, error_code, step};
use crate::proto::{EventId, EventKind, PlaceStatus};

#[derive(Args, Debug)]
pub struct TakeoverArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// The pro account (myLutron email) that keeps access
    #[arg(long, value_name = "EMAIL", value_parser = parse_email)]
    pub share_to: String,
    /// For how long: 1d, 7d, 30d, 1y or unlimited
    #[arg(long = "for", default_value = "7d", value_parser = parse_access_duration)]
    pub duration: AccessDuration,
    /// The pairing identity [default: STATE_DIR/pairing-identity]; takes
    /// over from this process, not through the daemon
    #[arg(long, value_name = "DIR", env = "HANDOFF_PAIRING_IDENTITY")]
    pub pairing_identity: Option<PathBuf>,
    /// Take over from this process even when a daemon runs (without it, a
    /// running daemon that relays performs every step)
    #[arg(long)]
    pub standalone: bool,
    /// How long to wait for the button press
    #[arg(long, default_value = "180s", value_parser = parse_timeout)]
    pub button_timeout: Duration,
    /// How long discovery looks for the processor
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// JSON on stdout: one object whose "result" says how it ended (done,
    /// refused, interrupted, cancelled, nothing-to-do…) with its details
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

/// A takeover shared to a typo (`pro@example`) would release the home with
/// nobody given access: refused with the arguments, before the button.
fn parse_email(s: &str) -> Result<String, String> {
    AccountId::parse(s)
        .map(|a| a.as_str().to_owned())
        .map_err(|e| e.to_string())
}

fn parse_access_duration(s: &str) -> Result<AccessDuration, String> {
    AccessDuration::from_code(s)
        .ok_or_else(|| format!("'{s}' is not one of 1d, 7d, 30d, 1y, unlimited"))
}

pub async fn run(args: TakeoverArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    if !(args.standalone || args.pairing_identity.is_some())
        && let Some(code) = through_daemon(&args).await?
    {
        return Ok(code);
    }
    let state_dir = state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })?;
    let Some(site) = args.cloud.site(&state_dir).await? else {
        return Err(CliError::Failed(
            "a takeover needs the cloud: pass --cloud ADDR (and --cloud-identity DIR), or run it \
             where a daemon relays to one"
                .into(),
        ));
    };
    let (serial, mac) = identify(&args.processor, args.timeout).await?;
    let Some(serial) = serial else {
        return Err(CliError::Failed(
            "the processor does not advertise its serial number".into(),
        ));
    };
    let plan = TakeoverPlan {
        serial,
        mac,
        share_to: AccountId::new(&args.share_to).as_str().to_owned(),
        duration: args.duration,
    };
    // Ctrl-C is heard between steps and during the button wait; a step
    // already talking to the cloud finishes (its event is durable first).
    let (interrupt, interrupted) = watch::channel(false);
    let listener = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = interrupt.send(true);
    });
    let mut backend = CliTakeover {
        state_dir: state_dir.clone(),
        args: &args,
        site,
        interrupted,
    };
    let end = takeover(&state_dir, &plan, &mut backend).await;
    listener.abort();
    Ok(report(&end.map_err(CliError::Failed)?, args.json))
}

/// Hands the takeover to a running daemon that relays; `None` when none
/// does (or it is too old to take over), and this command does it.
async fn through_daemon(args: &TakeoverArgs) -> Result<Option<ExitCode>, CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? else {
        return Ok(None);
    };
    if client.health().await?.relay.is_none() {
        tracing::info!("the daemon relays to no cloud; taking over from this process");
        return Ok(None);
    }
    let req = TakeoverRequest {
        request: 0,
        processor: args.processor.clone(),
        share_to: args.share_to.clone(),
        duration: Some(args.duration),
        button_s: Some(args.button_timeout.as_secs().max(1)),
        wait_ms: u64::try_from(args.cloud.cloud_wait.as_millis()).unwrap_or(u64::MAX),
    };
    if !args.json {
        eprintln!("the daemon at {} performs the takeover", path.display());
    }
    let mut countdown = Countdown::new();
    let json = args.json;
    let shown = |p: &crate::proto::control::Progress| {
        if p.step == step::TAKEOVER {
            countdown.stop();
            if !json {
                eprintln!("{}", p.what.as_deref().unwrap_or_default());
            }
        } else {
            countdown.show(p);
        }
    };
    let result = client.takeover(req, shown, shutdown_signal()).await;
    countdown.stop();
    let done = match result {
        Ok(done) => done,
        Err(DaemonError::Refused { code, .. })
            if code == error_code::NOT_IMPLEMENTED || code == error_code::UNKNOWN_KIND =>
        {
            tracing::info!("the daemon does not take over; taking over from this process");
            return Ok(None);
        }
        Err(DaemonError::Refused { code, .. }) if code == error_code::CANCELLED => {
            return Ok(Some(report(&TakeoverEnd::Cancelled, args.json)));
        }
        Err(DaemonError::Refused { reason, .. }) => return Err(CliError::Failed(reason)),
        Err(e) => return Err(e.into()),
    };
    let end = done
        .takeover
        .ok_or_else(|| CliError::Failed("the daemon ended the takeover without a result".into()))
        .and_then(|w| TakeoverEnd::from_wire(w).map_err(CliError::Failed))?;
    Ok(Some(report(&end, args.json)))
}

/// The takeover's end for people (stderr, the last line on stdout) or
/// scripts (`--json`), and its exit code: 3 when the vendor's rules say
/// no, 4 when the cloud has not answered yet (run again), 130 cancelled.
fn report(end: &TakeoverEnd, json: bool) -> ExitCode {
    match end {
        TakeoverEnd::NotApplicable {
            status,
            guidance,
            serial,
            mac,
        } => {
            if json {
                outln!(
                    "{}",
                    json!({"result": "refused", "status": status.to_string(), "why": guidance})
                );
            }
            let headline = match status {
                Status::Yellow => "not taking over: this system already has a homeowner",
                _ => "not taking over: remote services are off",
            };
            eprintln!("{headline}\n{status}: {guidance}");
            eprintln!(
                "processor: serial {} (id {}), MAC {mac}",
                serial.0,
                serial.id()
            );
            ExitCode::from(3)
        }
        TakeoverEnd::NothingToDo { place, account } => {
            if json {
                outln!(
                    "{}",
                    json!({"result": "nothing-to-do", "place": place, "account": account})
                );
            }
            eprintln!("nothing to do: {account} already has access to Place {place}");
            ExitCode::SUCCESS
        }
        TakeoverEnd::Refused {
            step,
            rule,
            guidance,
        } => {
            if json {
                outln!(
                    "{}",
                    json!({"result": "refused", "step": step, "rule": rule, "why": guidance})
                );
            }
            eprintln!("refused at the {step}: {guidance}\n  (rule: {rule})");
            ExitCode::from(3)
        }
        TakeoverEnd::Interrupted { step, reason } => {
            if json {
                outln!(
                    "{}",
                    json!({"result": "interrupted", "step": step, "why": reason})
                );
            }
            eprintln!(
                "the {step} is queued but the cloud has not answered ({reason}); run the same \
                 command again to continue: nothing will be claimed twice"
            );
            ExitCode::from(4)
        }
        TakeoverEnd::Cancelled => {
            if json {
                outln!("{}", json!({"result": "cancelled"}));
            }
            eprintln!("cancelled before the claim: nothing changed");
            ExitCode::from(130)
        }
        TakeoverEnd::Done {
            place,
            serial,
            share_to,
            duration,
            until,
            account,
        } => {
            if json {
                outln!(
                    "{}",
                    json!({"result": "done", "place": place, "serial": serial.0,
                           "shared_with": share_to, "for": duration.code(), "until": until})
                );
            } else {
                outln!(
                    "done: {share_to} has access to Place {place} {}; the home was removed from \
                     {account}'s account, so the homeowner can claim the system with its button",
                    until
                        .as_ref()
                        .map_or_else(|| "with no end".to_string(), |u| format!("until {u}"))
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// The procedure's backend in this process: its outbox (or a relaying
/// daemon's), its `--cloud` (or the daemon's), its pairing identity.
struct CliTakeover<'a> {
    state_dir: PathBuf,
    args: &'a TakeoverArgs,
    site: crate::site::SiteClient,
    interrupted: watch::Receiver<bool>,
}

impl TakeoverBackend for CliTakeover<'_> {
    async fn status(
        &mut self,
        serial: Serial,
        mac: Option<Mac>,
    ) -> Result<(PlaceStatus, String), String> {
        let st = self
            .site
            .status(Some(serial), mac, self.args.cloud.cloud_wait)
            .await
            .map_err(|e| e.to_string())?;
        Ok((st, self.site.account().to_owned()))
    }

    async fn relay(&mut self, event: EventKind) -> Result<(EventId, Relayed), String> {
        self.site
            .send(vec![event], self.args.cloud.cloud_wait)
            .await
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| "the event was not queued".to_owned())
    }

    async fn settle(&mut self, id: &EventId) -> Result<Relayed, String> {
        self.site
            .settle(id, self.args.cloud.cloud_wait)
            .await
            .map_err(|e| e.to_string())
    }

    async fn claim(&mut self, serial: Serial) -> Result<ButtonStep, String> {
        let identity =
            load_pairing_identity(self.args.pairing_identity.as_deref(), &self.state_dir)
                .map_err(|e| e.to_string())?;
        let options = ClaimOptions {
            discovery_timeout: self.args.timeout, // never zero: parse_timeout refuses it
            button_timeout: self.args.button_timeout,
            key_algorithm: KeyAlgorithm::Rsa2048,
            ..ClaimOptions::new(Target::Serial(serial), self.state_dir.clone())
        };
        let mut countdown = Countdown::new();
        let mut interrupted = self.interrupted.clone();
        let outcome = tokio::select! {
            outcome = crate::claim::claim(&options, &identity, &mut countdown) => outcome,
            _ = interrupted.wait_for(|i| *i) => {
                countdown.stop();
                return Ok(ButtonStep::Cancelled);
            }
        };
        countdown.stop();
        Ok(ButtonStep::Stored(Box::new(
            outcome.map_err(|e| e.to_string())?,
        )))
    }

    fn credentials_dir(&self) -> &Path {
        &self.state_dir
    }

    fn cloud(&self) -> String {
        self.site.cloud().to_owned()
    }

    fn cancelled(&self) -> bool {
        *self.interrupted.borrow()
    }

    fn step(&mut self, text: &str) {
        if !self.args.json {
            eprintln!("{text}");
        }
    }
}
