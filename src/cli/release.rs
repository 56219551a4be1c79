//! `handoff release` (Remove Home from Account, the inverse of a homeowner
//! claim) and `handoff unpair` (the inverse of a pairing). Both sides
//! change or neither: the credential is forgotten only once the cloud
//! applied the release.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::CliError;
use super::claim::{exit_code, state_dir_or_fail};
use super::output::print_stdout;
use super::relay::{CloudFlags, Relayed, describe};
use crate::claim::Target;
use crate::daemon::DaemonError;
use crate::proto::control::error_code;
use crate::proto::{EventKind, Released};
use crate::site::SiteClient;

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
    let cloud = link.address();
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
