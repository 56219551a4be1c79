//! `handoff pair`, `claim`, `release` and `unpair`.
//!
//! Two acts that must never be confused: *pairing* (the button handshake,
//! a stored credential, an export for Home Assistant) is between the
//! integrator and the processor, and never touches the cloud. A *homeowner
//! claim* (the vendor's "claim the system") makes a cloud account the
//! Place's homeowner: `claim` says which account, on which cloud, before
//! the button, and refuses when no cloud is known. `release` (Remove Home
//! from Account) is its inverse and `unpair` that of `pair`.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::output::print_stdout;
use super::relay::{CloudFlags, Relayed, describe};
use super::{CliError, parse_timeout, shutdown_signal};
use crate::claim::{
    ClaimOptions, ClaimOutcome, ClaimProgress, DEFAULT_DISCOVERY_TIMEOUT, Resolved, Target, human,
};
use crate::daemon::DaemonError;
use crate::identity::{KeyAlgorithm, PAIRING_IDENTITY_DIR, PairingIdentity};
use crate::leap::pairing::DEFAULT_BUTTON_WINDOW;
use crate::proto::control::{ClaimRequest, Done, Progress, error_code, step};
use crate::proto::{EventKind, Released};
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
    #[arg(long, value_name = "HEX12", value_parser = parse_device_uid)]
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

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// Release this process's credential with its own --cloud even when a
    /// daemon runs (without it, the daemon's credential and cloud are used)
    #[arg(long)]
    pub standalone: bool,
    /// JSON on stdout: id, serial, whether the credential was forgotten,
    /// and the cloud's answer
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

#[derive(Args, Debug)]
pub struct UnpairArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// Forget this process's credential even when a daemon runs (without
    /// it, the daemon's credential is forgotten first)
    #[arg(long)]
    pub standalone: bool,
    /// JSON on stdout: id, serial
    #[arg(long)]
    pub json: bool,
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
                        "the daemon at {} relays to no cloud. {NO_CLOUD}",
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
        discovery_timeout: if p.timeout.is_zero() {
            DEFAULT_DISCOVERY_TIMEOUT
        } else {
            p.timeout
        },
        button_timeout: p.button_timeout.unwrap_or(DEFAULT_BUTTON_WINDOW),
        key_algorithm: match p.key {
            KeyKind::Rsa => KeyAlgorithm::Rsa2048,
            KeyKind::Ec => KeyAlgorithm::EcdsaP256,
        },
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
        key: Some(
            match p.key {
                KeyKind::Rsa => "rsa",
                KeyKind::Ec => "ec",
            }
            .into(),
        ),
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
fn exit_code(relayed: &Relayed) -> ExitCode {
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
                s.push_str(&describe("homeowner claim", relayed, route.cloud()));
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

/// What the processor keeps after a release or an unpairing: no public
/// LEAP call revokes a paired client.
const STILL_TRUSTED: &str = "the processor itself still trusts that credential until it is \
                             factory-reset: no LEAP call revokes a paired client";

/// `handoff release`: Remove Home from Account in the cloud; the credential
/// is forgotten only once the cloud applied it.
pub async fn run_release(
    args: ReleaseArgs,
    state_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let mut daemon_said = None;
    if !args.standalone && args.cloud.cloud.is_none() {
        let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
        if let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? {
            let cloud = client
                .health()
                .await?
                .relay
                .and_then(|r| r.cloud)
                .unwrap_or_else(|| "the daemon's cloud".into());
            match client
                .release(&args.processor, args.cloud.cloud_wait, false)
                .await
            {
                Ok(done) => {
                    let serial = done.released.map(|r| r.serial).ok_or_else(|| {
                        CliError::Failed("the daemon released without naming the processor".into())
                    })?;
                    let result = done.cloud.ok_or_else(|| {
                        CliError::Failed("the daemon released without the cloud's answer".into())
                    })?;
                    let relayed = Relayed::from_daemon(&result, &path);
                    return report_release(serial, &relayed, &cloud, args.json, Some(&path));
                }
                // The credential may be this process's own (paired with
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
    let with_daemon = |e: String| match &daemon_said {
        Some(daemon) => CliError::Failed(format!("{daemon}; and here: {e}")),
        None => CliError::Failed(e),
    };
    let (serial, _) = crate::claim::paired(&state_dir, &Target::parse(&args.processor))
        .map_err(|e| with_daemon(e.to_string()))?;
    let Some(link) = args.cloud.link(&state_dir)? else {
        return Err(with_daemon(
            "Remove Home from Account needs the cloud: pass --cloud ADDR (with --cloud-identity \
             DIR, the homeowner's account). Nothing changed. To forget the credential only: \
             handoff unpair PROCESSOR"
                .into(),
        ));
    };
    let event = EventKind::Released(Released {
        place: None,
        serial: Some(serial),
    });
    let cloud = link.address.clone();
    let site = SiteClient::Direct {
        link,
        state_dir: state_dir.clone(),
    };
    let relayed = site
        .send(vec![event], args.cloud.cloud_wait)
        .await?
        .pop()
        .map(|(_, r)| r)
        .ok_or_else(|| CliError::Failed("the release was not queued".into()))?;
    crate::claim::settle_release(&state_dir, serial, &relayed)?;
    report_release(serial, &relayed, &cloud, args.json, None)
}

fn report_release(
    serial: crate::processor::Serial,
    relayed: &Relayed,
    cloud: &str,
    json: bool,
    daemon: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let forgotten = matches!(relayed, Relayed::Applied(_));
    let text = if json {
        let mut result = relayed.json();
        result["cloud"] = json!(cloud);
        format!(
            "{}\n",
            json!({"id": serial.id(), "serial": serial, "released": forgotten,
                   "forgotten": forgotten, "cloud": result, "daemon": daemon})
        )
    } else {
        let whose = if daemon.is_some() {
            "the daemon's"
        } else {
            "its"
        };
        let local = match relayed {
            Relayed::Applied(_) => format!("{whose} credential is forgotten ({STILL_TRUSTED})"),
            Relayed::Refused { .. } => {
                format!("nothing changed: {whose} credential is kept")
            }
            Relayed::Queued { .. } => format!(
                "{whose} credential is kept until the cloud applies the release: once `handoff \
                 status {}` shows it, `handoff unpair {}` forgets it",
                serial.id(),
                serial.id()
            ),
        };
        format!(
            "{} (serial {}): {}\n{local}\n",
            serial.id(),
            serial.0,
            describe("release (Remove Home from Account)", relayed, cloud),
        )
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    Ok(exit_code(relayed))
}

/// `handoff unpair`: forgets a credential; the cloud is never told.
pub async fn run_unpair(
    args: UnpairArgs,
    state_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let mut daemon_said = None;
    let mut serial = None;
    if !args.standalone {
        let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
        if let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? {
            match client.release(&args.processor, Duration::ZERO, true).await {
                Ok(done) => {
                    serial = Some((
                        done.released.map(|r| r.serial).ok_or_else(|| {
                            CliError::Failed(
                                "the daemon unpaired without naming the processor".into(),
                            )
                        })?,
                        Some(path),
                    ));
                }
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
    let (serial, daemon) = match serial {
        Some(found) => found,
        None => {
            let state_dir = state_dir_or_fail(state_dir)?;
            match crate::claim::unpair(&state_dir, &Target::parse(&args.processor)) {
                Ok((serial, _)) => (serial, None),
                Err(e) => {
                    return Err(match daemon_said {
                        Some(daemon) => CliError::Failed(format!("{daemon}; and here: {e}")),
                        None => e.into(),
                    });
                }
            }
        }
    };
    let text = if args.json {
        format!(
            "{}\n",
            json!({"id": serial.id(), "serial": serial, "forgotten": true, "daemon": daemon})
        )
    } else {
        format!(
            "unpaired {} (serial {}): {} credential is forgotten; the cloud was not told\n({STILL_TRUSTED})\n",
            serial.id(),
            serial.0,
            if daemon.is_some() {
                "the daemon's"
            } else {
                "its"
            },
        )
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    Ok(ExitCode::SUCCESS)
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
