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
use super::{CliError, parse_duration, shutdown_signal};
use crate::claim::{
    ClaimOptions, ClaimOutcome, ClaimProgress, DEFAULT_DISCOVERY_TIMEOUT, Resolved, Target, human,
};
use crate::identity::{KeyAlgorithm, PAIRING_IDENTITY_DIR, PairingIdentity};
use crate::proto::{Claimed, EventKind, Released};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Args, Debug)]
pub struct ClaimArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    pub processor: String,
    /// Pair with this address directly instead of discovering the processor
    #[arg(long, value_name = "IP")]
    pub address: Option<IpAddr>,
    /// The pairing identity to present on the pairing port (client-key.pem,
    /// client-cert.pem, authority-ca.pem) [default: STATE_DIR/pairing-identity]
    #[arg(long, value_name = "DIR", env = "HANDOFF_PAIRING_IDENTITY")]
    pub pairing_identity: Option<PathBuf>,
    /// How long to wait for the button press
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub button_timeout: Duration,
    /// Also write the credential where pylutron-caseta and Home Assistant
    /// read it (caseta.key…, lutron_caseta-<address>-key.pem…)
    #[arg(long, value_name = "DIR")]
    pub export_dir: Option<PathBuf>,
    /// The key to generate
    #[arg(long, value_enum, default_value_t = KeyKind::Rsa)]
    pub key: KeyKind,
    /// DeviceUID to send (12 hex digits) [default: the MAC of the interface
    /// that reaches the processor]; 000000000000 sends what other clients send
    #[arg(long, value_name = "HEX12", value_parser = parse_device_uid)]
    pub device_uid: Option<String>,
    /// How long discovery looks for the processor
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
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
    pub processor: String,
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
        button_timeout: args.button_timeout,
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
    let mac = outcome.mac.ok_or_else(|| {
        CliError::Failed(
            "the processor did not tell its MAC address, so the claim cannot be relayed".into(),
        )
    })?;
    let cert = outcome.credential_dir.join("cert.pem");
    let pem = std::fs::read(&cert).map_err(CliError::io(format!("reading {}", cert.display())))?;
    let proof = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| CliError::Failed(format!("{} holds no certificate: {e}", cert.display())))?;
    Ok(EventKind::Claimed(Claimed {
        place: None,
        serial: outcome.serial,
        mac,
        proof: proof.to_vec(),
        at: crate::cloud::now(),
    }))
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
    let state_dir = state_dir_or_fail(state_dir)?;
    let serial = crate::claim::release(&state_dir, &Target::parse(&args.processor))?;
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
    let text = if args.json {
        format!(
            "{}\n",
            json!({"id": serial.id(), "serial": serial, "released": true, "cloud": relayed.json()})
        )
    } else {
        format!(
            "released {} (serial {}): its credential is forgotten\n{}\n",
            serial.id(),
            serial.0,
            describe("release (Remove Home from Account)", &relayed)
        )
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    Ok(exit_code(&relayed))
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
        self.stop();
        let deadline = Instant::now() + window;
        let what = processor.describe();
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
            let task = tokio::spawn(async move {
                loop {
                    eprintln!("{}", line());
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
            self.ticker = Some((task, None));
        }
    }

    fn button_pressed(&mut self) {
        self.stop();
        eprintln!("button pressed; the processor is signing our certificate");
    }

    fn verifying(&mut self) {
        eprintln!("checking the processor's identity on its main port");
    }
}
