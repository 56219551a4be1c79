//! `handoff pair` and `handoff claim` (their inverses, `release` and
//! `unpair`, are [`super::release`]).
//!
//! Two acts that must never be confused: *pairing* (the button handshake,
//! a stored credential, an export for Home Assistant) is between the
//! integrator and the processor, and never touches the cloud. A *homeowner
//! claim* (the vendor's "claim the system") makes a cloud account the
//! Place's homeowner: `claim` says which account, on which cloud, before
//! the button, and refuses when no cloud is known. `release` (Remove Home
//! from Account) is its inverse and `unpair` that of `pair`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::print_stdout;
use super::relay::{CloudFlags, Relayed, describe};
use super::{CliError, parse_timeout, shutdown_signal};
use crate::claim::{ClaimOptions, ClaimOutcome, Target};
use crate::daemon::DaemonError;
use crate::identity::{KeyAlgorithm, PAIRING_IDENTITY_DIR, PairingIdentity};
use crate::leap::pairing::DEFAULT_BUTTON_WINDOW;
use crate::proto::EventKind;
use crate::proto::control::{ClaimRequest, Done, KeyKind as WireKeyKind, error_code};
use crate::site::SiteClient;

/// How to reach the processor and pair with it: shared by `pair` and
/// `claim`.
#[derive(Args, Debug)]
pub struct PairingFlags {
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
    /// Pair from this process even when a daemon runs. Without it, a
    /// running daemon performs the pairing (its pairing identity, its state
    /// directory; the countdown shows here) unless --pairing-identity (or,
    /// for pair, --export-dir) is given
    #[arg(long)]
    pub standalone: bool,
    /// The key to generate
    #[arg(long, value_enum, default_value_t = KeyKind::Rsa)]
    pub key: KeyKind,
    /// DeviceUID to send (12 hex digits) [default: the MAC of the interface
    /// that reaches the processor]; 000000000000 sends what other clients send
    #[arg(long, value_name = "HEX12", value_parser = crate::claim::parse_device_uid)]
    pub device_uid: Option<String>,
    /// How long discovery looks for the processor
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Browse only on this interface (repeatable)
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PairArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    #[command(flatten)]
    pub pairing: PairingFlags,
    /// Also write the credential where pylutron-caseta and Home Assistant
    /// read it (caseta.key…, lutron_caseta-<address>-key.pem…); pairs from
    /// this process, not through the daemon
    #[arg(long, value_name = "DIR")]
    pub export_dir: Option<PathBuf>,
    /// JSON on stdout: serial, id, mac, address and the credential's files
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ClaimArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    #[command(flatten)]
    pub pairing: PairingFlags,
    /// JSON on stdout: the pairing's facts, and the cloud's answer under
    /// "cloud" (with the cloud's address and the account)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
    /// Not for claim: `handoff pair --export-dir DIR` pairs Home Assistant
    /// without making anyone homeowner
    #[arg(long, value_name = "DIR", hide = true)]
    pub export_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyKind {
    /// RSA-2048, as real clients send
    Rsa,
    /// EC P-256
    Ec,
}

impl From<KeyKind> for WireKeyKind {
    fn from(kind: KeyKind) -> WireKeyKind {
        match kind {
            KeyKind::Rsa => WireKeyKind::Rsa,
            KeyKind::Ec => WireKeyKind::Ec,
        }
    }
}

pub(crate) fn state_dir_or_fail(state_dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })
}

const NO_CLOUD: &str = "a homeowner claim needs a cloud, and none is known: pass --cloud ADDR \
                        (with --cloud-identity DIR, the account that becomes homeowner), or run \
                        it where a daemon relays to one. Nothing was done. To pair without \
                        claiming (Home Assistant, an inspection): handoff pair PROCESSOR";

/// Where a homeowner claim goes, decided before the button: `--cloud` (or
/// `--standalone`, `--pairing-identity`) means this process and its flags;
/// otherwise the site client's choice, a running daemon that relays. Never
/// a cloud nobody named.
async fn claim_route(args: &ClaimArgs, state_dir: &Path) -> Result<SiteClient, CliError> {
    let explicit = args.cloud.cloud.is_some()
        || args.pairing.standalone
        || args.pairing.pairing_identity.is_some();
    let site = if explicit {
        args.cloud.link(state_dir)?.map(|link| SiteClient::Direct {
            link,
            state_dir: state_dir.to_owned(),
        })
    } else {
        match args.cloud.site(state_dir).await? {
            Some(site) => Some(site),
            None => {
                // A daemon runs, but relays to no cloud: say which.
                let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
                if let Some((_, socket)) = crate::daemon::connect_first(&sockets).await? {
                    return Err(CliError::Failed(format!(
                        "the daemon at {} relays to no cloud (no [cloud] address in its \
                         configuration), so a homeowner claim through it has nowhere to go: \
                         set one and restart the daemon, or pass --cloud ADDR (with \
                         --cloud-identity DIR, the account that becomes homeowner). Nothing \
                         was done. To pair without claiming (Home Assistant, an inspection): \
                         handoff pair PROCESSOR",
                        socket.display()
                    )));
                }
                None
            }
        }
    };
    site.ok_or_else(|| CliError::Failed(NO_CLOUD.into()))
}

/// `handoff pair`: the button handshake and the credential; the cloud is
/// never told.
pub async fn run_pair(args: PairArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let p = &args.pairing;
    if !(p.standalone || p.pairing_identity.is_some() || args.export_dir.is_some()) {
        let req = claim_request(&args.processor, p, Duration::ZERO, false);
        match pair_with_daemon(req).await? {
            DaemonPairing::NoDaemon => {}
            DaemonPairing::Cancelled => {
                eprintln!("cancelled: nothing was stored");
                return Ok(ExitCode::from(130));
            }
            DaemonPairing::Done { outcome, done } => {
                if done.cloud.is_some() {
                    // A daemon older than `pair` claims as it pairs: say so.
                    return Err(CliError::Failed(format!(
                        "the daemon paired with {} but also sent a homeowner claim to its cloud \
                         (it is older than this command): check `handoff status {}`",
                        outcome.id, outcome.id
                    )));
                }
                report_pairing(&outcome, None, args.json)?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    let state_dir = state_dir_or_fail(state_dir)?;
    let Some(outcome) = pair_here(&args.processor, p, args.export_dir.clone(), &state_dir).await?
    else {
        return Ok(ExitCode::from(130));
    };
    report_pairing(&outcome, None, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `handoff claim`: pairing, then the homeowner claim in the cloud, as an
/// account and on a cloud named before the button.
pub async fn run_claim(args: ClaimArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    if let Some(dir) = &args.export_dir {
        return Err(CliError::Usage(format!(
            "--export-dir pairs without claiming: `handoff pair {} --export-dir {}`. `claim` \
             makes a cloud account the Place's homeowner",
            args.processor,
            dir.display()
        )));
    }
    let state_dir = state_dir_or_fail(state_dir)?;
    let route = claim_route(&args, &state_dir).await?;
    eprintln!(
        "homeowner claim: {} becomes the homeowner of the Place that holds processor {}, on \
         the cloud at {}",
        route.account(),
        args.processor,
        route.cloud()
    );
    let (outcome, relayed) = match &route {
        SiteClient::Daemon { socket, .. } => {
            let req = claim_request(&args.processor, &args.pairing, args.cloud.cloud_wait, true);
            match pair_with_daemon(req).await? {
                DaemonPairing::NoDaemon => {
                    return Err(CliError::Failed(format!(
                        "the daemon at {} stopped before the claim; nothing was done",
                        socket.display()
                    )));
                }
                DaemonPairing::Cancelled => {
                    eprintln!("cancelled: nothing was stored, the cloud was not told");
                    return Ok(ExitCode::from(130));
                }
                DaemonPairing::Done { outcome, done } => {
                    let cloud = done.cloud.ok_or_else(|| {
                        CliError::Failed(format!(
                            "the daemon paired with {} but did not claim it in the cloud (it is \
                             older than this command); nothing was sent to {}",
                            outcome.id,
                            route.cloud()
                        ))
                    })?;
                    (outcome, Relayed::from_daemon(&cloud, socket))
                }
            }
        }
        SiteClient::Direct { .. } => {
            let Some(outcome) = pair_here(&args.processor, &args.pairing, None, &state_dir).await?
            else {
                return Ok(ExitCode::from(130));
            };
            let event = claimed_event(&outcome)?;
            let relayed = route
                .send(vec![event], args.cloud.cloud_wait)
                .await?
                .pop()
                .map(|(_, r)| r)
                .ok_or_else(|| CliError::Failed("the claim event was not queued".into()))?;
            (Box::new(outcome), relayed)
        }
    };
    report_pairing(&outcome, Some((&route, &relayed)), args.json)?;
    Ok(exit_code(&relayed))
}

/// Pairs from this process; `None` when Ctrl-C came first (nothing stored).
async fn pair_here(
    processor: &str,
    p: &PairingFlags,
    export_dir: Option<PathBuf>,
    state_dir: &Path,
) -> Result<Option<ClaimOutcome>, CliError> {
    let identity = load_pairing_identity(p.pairing_identity.as_deref(), state_dir)?;
    let options = ClaimOptions {
        address: p.address,
        interfaces: p.interfaces.clone(),
        discovery_timeout: p.timeout, // never zero: parse_timeout refuses it
        button_timeout: p.button_timeout.unwrap_or(DEFAULT_BUTTON_WINDOW),
        key_algorithm: KeyAlgorithm::from(WireKeyKind::from(p.key)),
        device_uid: p.device_uid.clone(),
        export_dir,
        ..ClaimOptions::new(Target::parse(processor), state_dir.to_owned())
    };
    let mut progress = Countdown::new();
    let outcome = tokio::select! {
        outcome = crate::claim::claim(&options, &identity, &mut progress) => outcome,
        () = shutdown_signal() => {
            progress.stop();
            eprintln!("cancelled: nothing was stored");
            return Ok(None);
        }
    };
    progress.stop();
    Ok(Some(outcome?))
}

/// What became of a pairing handed to a running daemon.
enum DaemonPairing {
    /// No daemon runs, or it does not pair: pair here.
    NoDaemon,
    /// Ctrl-C before the daemon stored anything.
    Cancelled,
    Done {
        outcome: Box<ClaimOutcome>,
        done: Box<Done>,
    },
}

/// Hands the pairing (and, with `req.homeowner`, the claim) to the first
/// running daemon that answers, showing its countdown here.
///
/// # Errors
/// The daemon could not pair (its message), or the socket failed.
async fn pair_with_daemon(req: ClaimRequest) -> Result<DaemonPairing, CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? else {
        return Ok(DaemonPairing::NoDaemon);
    };
    eprintln!("the daemon at {} performs the pairing", path.display());
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
            tracing::info!("the daemon does not pair; pairing from this process");
            return Ok(DaemonPairing::NoDaemon);
        }
        Err(DaemonError::Refused { code, .. }) if code == error_code::CANCELLED => {
            return Ok(DaemonPairing::Cancelled);
        }
        Err(DaemonError::Refused { reason, .. }) => return Err(CliError::Failed(reason)),
        Err(e) => return Err(e.into()),
    };
    let Some(claimed) = done.claimed.clone() else {
        return Err(CliError::Failed(
            "the daemon ended the pairing without naming the processor".into(),
        ));
    };
    let outcome = ClaimOutcome::try_from(claimed).map_err(CliError::Failed)?;
    Ok(DaemonPairing::Done {
        outcome: Box::new(outcome),
        done: Box::new(done),
    })
}

/// What a pairing asks of the daemon.
fn claim_request(
    processor: &str,
    p: &PairingFlags,
    cloud_wait: Duration,
    homeowner: bool,
) -> ClaimRequest {
    ClaimRequest {
        request: 0,
        processor: processor.to_owned(),
        address: p.address.map(|a| a.to_string()),
        button_s: p.button_timeout.map(|d| d.as_secs().max(1)),
        key: Some(p.key.into()),
        device_uid: p.device_uid.clone(),
        wait_ms: u64::try_from(cloud_wait.as_millis()).unwrap_or(u64::MAX),
        homeowner,
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

/// A refusal by the cloud is the vendor's rule speaking: exit code 3; no
/// answer yet (the event waits in an outbox): 4.
pub(crate) fn exit_code(relayed: &Relayed) -> ExitCode {
    match relayed {
        Relayed::Refused { .. } => ExitCode::from(3),
        Relayed::Queued { .. } => ExitCode::from(4),
        Relayed::Applied(_) => ExitCode::SUCCESS,
    }
}

/// The Claimed event, with the certificate the processor signed as proof.
pub(crate) fn claimed_event(outcome: &ClaimOutcome) -> Result<EventKind, CliError> {
    outcome.event().map_err(CliError::Failed)
}

/// A pairing's report; with `claim`, also what the cloud did with the
/// homeowner claim.
fn report_pairing(
    outcome: &ClaimOutcome,
    claim: Option<(&SiteClient, &Relayed)>,
    json: bool,
) -> Result<(), CliError> {
    let text = if json {
        let mut value = json!({
            "id": outcome.id,
            "serial": outcome.serial,
            "mac": outcome.mac,
            "address": outcome.address.to_string(),
            "product": outcome.product,
            "device_uid": outcome.device_uid,
            "ca_sha256": outcome.ca_sha256,
            "credential_dir": outcome.credential_dir,
            "files": outcome.files,
            "exported": outcome.exported,
        });
        if let Some((route, relayed)) = claim {
            let mut cloud = relayed.json();
            cloud["cloud"] = json!(route.cloud());
            cloud["account"] = json!(route.account());
            value["cloud"] = cloud;
        }
        let mut s = serde_json::to_string_pretty(&value)
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        let mac = outcome
            .mac
            .map_or_else(|| "MAC unknown".to_owned(), |m| format!("MAC {m}"));
        let mut s = format!(
            "paired with {} {} (serial {}, {mac}) at {}\ncredential: {}\n",
            outcome.product,
            outcome.id,
            outcome.serial.0,
            outcome.address,
            outcome.credential_dir.display()
        );
        if let Some(fingerprint) = &outcome.ca_sha256 {
            // An impostor that got through would have its own CA pinned:
            // this is what to compare with a second claim or the vendor's
            // tool.
            s.push_str(&format!("processor CA SHA-256: {fingerprint}\n"));
        }
        if let Some(dir) = outcome.exported.first().and_then(|f| f.parent()) {
            s.push_str(&format!(
                "exported for pylutron-caseta and Home Assistant: {}\n",
                dir.display()
            ));
        }
        match claim {
            None => s.push_str(
                "the cloud was not told: nobody became homeowner (to claim the system as \
                 homeowner in the cloud: handoff claim)\n",
            ),
            Some((route, relayed)) => {
                s.push_str(&describe("homeowner claim", relayed, &route.cloud()));
                if matches!(relayed, Relayed::Applied(_)) {
                    s.push_str(&format!("; {} is the Place's homeowner", route.account()));
                }
                s.push('\n');
            }
        }
        s
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))
}

pub(crate) use super::countdown::Countdown;
