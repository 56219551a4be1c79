//! `handoff claim` and `handoff release`.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::output::print_stdout;
use super::relay::{CloudFlags, Relayed, describe, relay};
use super::{CliError, parse_timeout, shutdown_signal};
use crate::claim::{
    ClaimOptions, ClaimOutcome, ClaimProgress, DEFAULT_DISCOVERY_TIMEOUT, Resolved, Target, human,
};
use crate::daemon::DaemonError;
use crate::identity::{KeyAlgorithm, PAIRING_IDENTITY_DIR, PairingIdentity};
use crate::leap::pairing::DEFAULT_BUTTON_WINDOW;
use crate::proto::control::{ClaimRequest, Progress, error_code, step};
use crate::proto::{EventKind, Released};

#[derive(Args, Debug)]
pub struct ClaimArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// Pair with this address directly instead of discovering the processor
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,
    /// The pairing identity to present on the pairing port (client-key.pem,
    /// client-cert.pem, authority-ca.pem) [default: STATE_DIR/pairing-identity]
    #[arg(long, value_name = "DIR", env = "HANDOFF_PAIRING_IDENTITY")]
    pub pairing_identity: Option<PathBuf>,
    /// How long to wait for the button press [default: 180s; through the
    /// daemon, its `button_timeout`]
    #[arg(long, value_parser = parse_timeout)]
    pub button_timeout: Option<Duration>,
    /// Also write the credential where pylutron-caseta and Home Assistant
    /// read it (caseta.key…, lutron_caseta-<address>-key.pem…); claims from
    /// this process, not through the daemon
    #[arg(long, value_name = "DIR")]
    pub export_dir: Option<PathBuf>,
    /// Claim from this process even when a daemon runs. Without it, a
    /// running daemon performs the claim (its pairing identity, its state
    /// directory, its relay; the countdown shows here) unless
    /// --pairing-identity or --export-dir is given
    #[arg(long)]
    pub standalone: bool,
    /// The key to generate
    #[arg(long, value_enum, default_value_t = KeyKind::Rsa)]
    pub key: KeyKind,
    /// DeviceUID to send (12 hex digits) [default: the MAC of the interface
    /// that reaches the processor]; 000000000000 sends what other clients send
    #[arg(long, value_name = "HEX12", value_parser = parse_device_uid)]
    pub device_uid: Option<String>,
    /// How long discovery looks for the processor
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Browse only on this interface (repeatable)
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// JSON on stdout: serial, id, mac, address and the credential's files
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyKind {
    /// RSA-2048, as real clients send
    Rsa,
    /// EC P-256
    Ec,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// Forget this process's credential even when a daemon runs (without
    /// it, the daemon's credential is released first)
    #[arg(long)]
    pub standalone: bool,
    /// JSON on stdout
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

fn parse_device_uid(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{s}' is not 12 hex digits (a MAC address without separators)"
        ))
    }
}

fn state_dir_or_fail(state_dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })
}

pub async fn run_claim(args: ClaimArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    if !(args.standalone || args.pairing_identity.is_some() || args.export_dir.is_some())
        && let Some(code) = claim_through_daemon(&args).await?
    {
        return Ok(code);
    }
    let state_dir = state_dir_or_fail(state_dir)?;
    let identity = load_pairing_identity(args.pairing_identity.as_deref(), &state_dir)?;
    let options = ClaimOptions {
        address: args.address,
        interfaces: args.interfaces.clone(),
        discovery_timeout: if args.timeout.is_zero() {
            DEFAULT_DISCOVERY_TIMEOUT
        } else {
            args.timeout
        },
        button_timeout: args.button_timeout.unwrap_or(DEFAULT_BUTTON_WINDOW),
        key_algorithm: match args.key {
            KeyKind::Rsa => KeyAlgorithm::Rsa2048,
            KeyKind::Ec => KeyAlgorithm::EcdsaP256,
        },
        device_uid: args.device_uid.clone(),
        export_dir: args.export_dir.clone(),
        ..ClaimOptions::new(Target::parse(&args.processor), state_dir)
    };
    let mut progress = Countdown::new();
    let outcome = tokio::select! {
        outcome = crate::claim::claim(&options, &identity, &mut progress) => outcome,
        () = shutdown_signal() => {
            progress.stop();
            eprintln!("cancelled: nothing was stored");
            return Ok(ExitCode::from(130));
        }
    };
    progress.stop();
    let outcome = outcome?;
    let relayed = relay_claim(&outcome, &options.state_dir, &args.cloud).await?;
    report_claim(&outcome, &relayed, args.json)?;
    Ok(exit_code(&relayed))
}

/// What became of a claim handed to a running daemon.
enum DaemonClaim {
    /// No daemon runs, or it does not perform claims: claim here.
    NoDaemon,
    /// Ctrl-C before the daemon stored anything.
    Cancelled,
    Done {
        outcome: Box<ClaimOutcome>,
        relayed: Relayed,
    },
}

/// Hands the claim to the first running daemon that answers, showing its
/// countdown here.
///
/// # Errors
/// The daemon could not claim (its message), or the socket failed.
async fn claim_with_daemon(req: ClaimRequest) -> Result<DaemonClaim, CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? else {
        return Ok(DaemonClaim::NoDaemon);
    };
    eprintln!("the daemon at {} performs the claim", path.display());
    let mut countdown = Countdown::new();
    let result = client
        .claim(req, |p| countdown.show(p), shutdown_signal())
        .await;
    countdown.stop();
    let done = match result {
        Ok(done) => done,
        Err(DaemonError::Refused { code, .. })
            if code == error_code::NOT_IMPLEMENTED || code == error_code::UNKNOWN_KIND =>
        {
            tracing::info!("the daemon does not perform claims; claiming from this process");
            return Ok(DaemonClaim::NoDaemon);
        }
        Err(DaemonError::Refused { code, .. }) if code == error_code::CANCELLED => {
            return Ok(DaemonClaim::Cancelled);
        }
        Err(DaemonError::Refused { reason, .. }) => return Err(CliError::Failed(reason)),
        Err(e) => return Err(e.into()),
    };
    let Some(claimed) = done.claimed else {
        return Err(CliError::Failed(
            "the daemon ended the claim without naming the processor".into(),
        ));
    };
    let outcome = ClaimOutcome {
        id: claimed.id,
        serial: claimed.serial,
        mac: claimed.mac,
        address: claimed.address.parse().map_err(|_| {
            CliError::Failed(format!(
                "the daemon sent '{}' as the processor's address",
                claimed.address
            ))
        })?,
        product: claimed.product,
        device_uid: claimed.device_uid,
        credential_dir: claimed.dir.into(),
        files: claimed.files.into_iter().map(PathBuf::from).collect(),
        exported: Vec::new(),
    };
    let cloud = done.cloud.ok_or_else(|| {
        CliError::Failed("the daemon ended the claim without the cloud's answer".into())
    })?;
    Ok(DaemonClaim::Done {
        outcome: Box::new(outcome),
        relayed: Relayed::from_daemon(&cloud, &path),
    })
}

/// What a claim asks of the daemon.
fn claim_request(
    processor: &str,
    address: Option<IpAddr>,
    button: Option<Duration>,
    key: KeyKind,
    device_uid: Option<String>,
    cloud_wait: Duration,
) -> ClaimRequest {
    ClaimRequest {
        request: 0,
        processor: processor.to_owned(),
        address: address.map(|a| a.to_string()),
        button_s: button.map(|d| d.as_secs().max(1)),
        key: Some(
            match key {
                KeyKind::Rsa => "rsa",
                KeyKind::Ec => "ec",
            }
            .into(),
        ),
        device_uid,
        wait_ms: u64::try_from(cloud_wait.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The first running daemon that answers performs the claim; `None` when
/// none runs (or it is too old to claim), and the command claims itself.
async fn claim_through_daemon(args: &ClaimArgs) -> Result<Option<ExitCode>, CliError> {
    let req = claim_request(
        &args.processor,
        args.address,
        args.button_timeout,
        args.key,
        args.device_uid.clone(),
        args.cloud.cloud_wait,
    );
    match claim_with_daemon(req).await? {
        DaemonClaim::NoDaemon => Ok(None),
        DaemonClaim::Cancelled => {
            eprintln!("cancelled: nothing was stored");
            Ok(Some(ExitCode::from(130)))
        }
        DaemonClaim::Done { outcome, relayed } => {
            report_claim(&outcome, &relayed, args.json)?;
            Ok(Some(exit_code(&relayed)))
        }
    }
}

/// The pairing identity in `dir` (default `STATE_DIR/pairing-identity`).
pub(crate) fn load_pairing_identity(
    dir: Option<&std::path::Path>,
    state_dir: &std::path::Path,
) -> Result<PairingIdentity, CliError> {
    let dir = dir.map_or_else(|| state_dir.join(PAIRING_IDENTITY_DIR), ToOwned::to_owned);
    PairingIdentity::load(&dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot use the pairing identity in {}: {e}",
            dir.display()
        ))
    })
}

/// A refusal by the cloud is the vendor's rule speaking: exit code 3.
fn exit_code(relayed: &Relayed) -> ExitCode {
    match relayed {
        Relayed::Refused { .. } => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}

/// The Claimed event, with the certificate the processor signed as proof.
pub(crate) fn claimed_event(outcome: &ClaimOutcome) -> Result<EventKind, CliError> {
    outcome.event().map_err(CliError::Failed)
}

async fn relay_claim(
    outcome: &ClaimOutcome,
    state_dir: &std::path::Path,
    cloud: &CloudFlags,
) -> Result<Relayed, CliError> {
    let event = claimed_event(outcome)?;
    let mut results = relay(state_dir, cloud, vec![event]).await?;
    Ok(results.pop().map(|(_, r)| r).unwrap_or(Relayed::Queued {
        reason: "not queued".into(),
    }))
}

fn report_claim(outcome: &ClaimOutcome, relayed: &Relayed, json: bool) -> Result<(), CliError> {
    let text = if json {
        let value = json!({
            "id": outcome.id,
            "serial": outcome.serial,
            "mac": outcome.mac,
            "address": outcome.address.to_string(),
            "product": outcome.product,
            "device_uid": outcome.device_uid,
            "credential_dir": outcome.credential_dir,
            "files": outcome.files,
            "exported": outcome.exported,
            "cloud": relayed.json(),
        });
        let mut s = serde_json::to_string_pretty(&value)
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        let mac = outcome
            .mac
            .map_or_else(|| "MAC unknown".to_owned(), |m| format!("MAC {m}"));
        let mut s = format!(
            "claimed {} {} (serial {}, {mac}) at {}\ncredential: {}\n",
            outcome.product,
            outcome.id,
            outcome.serial.0,
            outcome.address,
            outcome.credential_dir.display()
        );
        if let Some(dir) = outcome.exported.first().and_then(|f| f.parent()) {
            s.push_str(&format!(
                "exported for pylutron-caseta and Home Assistant: {}\n",
                dir.display()
            ));
        }
        s.push_str(&describe("claim", relayed));
        s.push('\n');
        s
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))
}

pub async fn run_release(
    args: ReleaseArgs,
    state_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let mut daemon_said = None;
    if !args.standalone {
        let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
        if let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? {
            match client.release(&args.processor, args.cloud.cloud_wait).await {
                Ok(done) => {
                    let serial = done.released.map(|r| r.serial).ok_or_else(|| {
                        CliError::Failed("the daemon released without naming the processor".into())
                    })?;
                    let cloud = done.cloud.ok_or_else(|| {
                        CliError::Failed("the daemon released without the cloud's answer".into())
                    })?;
                    let relayed = Relayed::from_daemon(&cloud, &path);
                    return report_release(serial, &relayed, args.json, Some(&path));
                }
                // The credential may be this process's own (claimed with
                // --standalone); an older daemon does not release.
                Err(DaemonError::Refused { code, reason })
                    if code == error_code::FAILED
                        || code == error_code::NOT_IMPLEMENTED
                        || code == error_code::UNKNOWN_KIND =>
                {
                    daemon_said = Some(format!("the daemon at {}: {reason}", path.display()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let state_dir = state_dir_or_fail(state_dir)?;
    let serial = match crate::claim::release(&state_dir, &Target::parse(&args.processor)) {
        Ok((serial, _)) => serial,
        Err(e) => {
            return Err(match daemon_said {
                Some(daemon) => CliError::Failed(format!("{daemon}; and here: {e}")),
                None => e.into(),
            });
        }
    };
    let event = EventKind::Released(Released {
        place: None,
        serial: Some(serial),
    });
    let relayed = relay(&state_dir, &args.cloud, vec![event])
        .await?
        .pop()
        .map(|(_, r)| r)
        .unwrap_or(Relayed::Queued {
            reason: "not queued".into(),
        });
    report_release(serial, &relayed, args.json, None)
}

fn report_release(
    serial: crate::processor::Serial,
    relayed: &Relayed,
    json: bool,
    daemon: Option<&std::path::Path>,
) -> Result<ExitCode, CliError> {
    let text = if json {
        format!(
            "{}\n",
            json!({"id": serial.id(), "serial": serial, "released": true, "cloud": relayed.json(),
                   "daemon": daemon})
        )
    } else {
        format!(
            "released {} (serial {}): {} credential is forgotten\n{}\n",
            serial.id(),
            serial.0,
            if daemon.is_some() {
                "the daemon's"
            } else {
                "its"
            },
            describe("release (Remove Home from Account)", relayed)
        )
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    Ok(exit_code(relayed))
}

/// The countdown on stderr: a live line on a terminal, a plain line every
/// 30 s otherwise (logs, CI, a pipe).
pub(crate) struct Countdown {
    terminal: bool,
    ticker: Option<(JoinHandle<()>, Option<indicatif::ProgressBar>)>,
}

impl Countdown {
    pub(crate) fn new() -> Countdown {
        Countdown {
            terminal: std::io::stderr().is_terminal(),
            ticker: None,
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some((task, bar)) = self.ticker.take() {
            task.abort();
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        }
    }
}

impl ClaimProgress for Countdown {
    fn resolved(&mut self, processor: &Resolved) {
        tracing::info!(processor = %processor.describe(), "claiming");
    }

    fn waiting_for_button(&mut self, processor: &Resolved, window: Duration) {
        self.countdown(processor.describe(), window);
    }

    fn button_pressed(&mut self) {
        self.stop();
        eprintln!("button pressed; the processor is signing our certificate");
    }

    fn verifying(&mut self) {
        eprintln!("checking the processor's identity on its main port");
    }
}

impl Countdown {
    /// A step of a claim the daemon performs.
    pub(crate) fn show(&mut self, p: &Progress) {
        match p.step.as_str() {
            step::FOUND => tracing::info!(processor = p.what.as_deref().unwrap_or("?"), "claiming"),
            step::BUTTON => self.countdown(
                p.what.clone().unwrap_or_else(|| "the processor".into()),
                Duration::from_millis(p.left_ms.unwrap_or(0)),
            ),
            step::PRESSED => self.button_pressed(),
            step::VERIFYING => self.verifying(),
            step::RELAYING => {}
            other => eprintln!("{}", p.what.as_deref().unwrap_or(other)),
        }
    }

    fn countdown(&mut self, what: String, window: Duration) {
        self.stop();
        let deadline = Instant::now() + window;
        let line = move || {
            let left = deadline.saturating_duration_since(Instant::now());
            format!(
                "Press the button on {what} — {} left",
                human(&Duration::from_secs(left.as_secs_f64().ceil() as u64))
            )
        };
        if self.terminal {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(line());
            bar.enable_steady_tick(Duration::from_millis(200));
            let ticking = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    ticking.set_message(line());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
            self.ticker = Some((task, Some(bar)));
        } else {
            // The first line now, not from the task: a press that comes at
            // once would stop the task before it ever ran.
            eprintln!("{}", line());
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    eprintln!("{}", line());
                }
            });
            self.ticker = Some((task, None));
        }
    }
}
