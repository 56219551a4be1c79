//! What the commands share to reach the cloud: `--cloud ADDR` and
//! `--cloud-identity DIR`, the outbox under the state directory, and the
//! report of what became of each event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::DirBuilderExt;

use clap::Args;

use super::{CliError, parse_duration};
use crate::outbox::{self, Outbox};
use crate::proto::{EventId, EventKind};
use crate::relay::link::{CloudLink, deliver_and_wait};

#[derive(Args, Debug, Clone)]
pub struct CloudFlags {
    /// The cloud access layer to relay to (host:port) [default: none; events
    /// stay queued in STATE_DIR/outbox.redb]
    #[arg(long, value_name = "ADDR", env = "HANDOFF_CLOUD")]
    pub cloud: Option<String>,
    /// The identity bundle `handoff cloud enroll` wrote
    /// [default: STATE_DIR/cloud-identity]
    #[arg(long, value_name = "DIR", env = "HANDOFF_CLOUD_IDENTITY")]
    pub cloud_identity: Option<PathBuf>,
    /// How long to wait for the cloud's answer before leaving an event queued
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub cloud_wait: Duration,
}

impl CloudFlags {
    /// The link, or `None` without `--cloud`.
    ///
    /// # Errors
    /// A bundle that cannot be used.
    pub fn link(&self, state_dir: &Path) -> Result<Option<CloudLink>, CliError> {
        CloudLink::from_flags(
            self.cloud.as_deref(),
            self.cloud_identity.as_deref(),
            state_dir,
        )
        .map_err(CliError::Failed)
    }
}

pub use crate::relay::Relayed;

/// Opens the outbox under `state_dir`.
///
/// # Errors
/// [`CliError`] naming the file.
pub fn open_outbox(state_dir: &Path) -> Result<Outbox, CliError> {
    // Made 0700 when new; an existing state directory is the user's to
    // choose (the secrets below it have their own 0700 directories).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(CliError::io(format!("creating {}", state_dir.display())))?;
    let path = state_dir.join(outbox::FILE_NAME);
    Outbox::open(&path).map_err(|e| CliError::Failed(format!("the outbox {}: {e}", path.display())))
}

/// Appends `kinds` to the outbox (durable before this returns anything),
/// then relays everything queued and waits for these events' answers.
///
/// # Errors
/// [`CliError`] when the outbox cannot be written (nothing was queued) or
/// the cloud identity is unusable.
pub async fn relay(
    state_dir: &Path,
    flags: &CloudFlags,
    kinds: Vec<EventKind>,
) -> Result<Vec<(EventId, Relayed)>, CliError> {
    // A daemon that runs the relay owns the outbox: hand it the events,
    // unless the command named its own cloud (then that cloud it is).
    if flags.cloud.is_none()
        && let Some(results) = through_daemon(&kinds, flags.cloud_wait).await?
    {
        return Ok(results);
    }
    let link = flags.link(state_dir)?;
    let outbox = open_outbox(state_dir)?;
    let mut ids = Vec::with_capacity(kinds.len());
    for kind in kinds {
        match outbox.append(kind).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                outbox.close().await;
                return Err(CliError::Failed(format!("cannot queue the event: {e}")));
            }
        }
    }
    let results = match &link {
        None => ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Relayed::Queued {
                        reason: "no cloud configured (--cloud ADDR)".into(),
                    },
                )
            })
            .collect(),
        Some(link) => {
            let (acks, last_error) = deliver_and_wait(&outbox, link, &ids, flags.cloud_wait).await;
            ids.iter()
                .cloned()
                .zip(acks)
                .map(|(id, ack)| {
                    let relayed = ack.map_or_else(
                        || Relayed::Queued {
                            reason: last_error.clone().unwrap_or_else(|| {
                                format!("no answer from {} in time", link.address)
                            }),
                        },
                        Relayed::from_ack,
                    );
                    (id, relayed)
                })
                .collect()
        }
    };
    outbox.close().await;
    Ok(results)
}

/// The events handed to a running daemon's relay, or `None` when no
/// daemon runs or it runs no relay (the command then uses the outbox).
async fn through_daemon(
    kinds: &[EventKind],
    wait: Duration,
) -> Result<Option<Vec<(EventId, Relayed)>>, CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    let Some((mut client, path)) = crate::daemon::connect_first(&sockets)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
    else {
        return Ok(None);
    };
    let mut results = Vec::with_capacity(kinds.len());
    for kind in kinds {
        match client.queue(kind.clone(), wait).await {
            Ok(q) => {
                let relayed = Relayed::from_daemon(&q.cloud, &path);
                results.push((q.cloud.id, relayed));
            }
            Err(crate::daemon::DaemonError::Refused { code, .. })
                if code == crate::proto::control::error_code::NOT_IMPLEMENTED
                    && results.is_empty() =>
            {
                return Ok(None);
            }
            Err(e) => return Err(CliError::Failed(e.to_string())),
        }
    }
    Ok(Some(results))
}

/// One line for people about an event's fate at the cloud `cloud`
/// (host:port): every report names the cloud it speaks for.
pub fn describe(what: &str, relayed: &Relayed, cloud: &str) -> String {
    match relayed {
        Relayed::Applied(_) => format!("the cloud at {cloud} recorded the {what}"),
        Relayed::Refused { rule, guidance } => {
            format!("the cloud at {cloud} refused the {what}: {guidance}\n  (rule: {rule})")
        }
        Relayed::Queued { reason } => {
            format!("the {what} is queued for the cloud at {cloud}, not answered yet ({reason})")
        }
    }
}

/// What became of an event queued earlier (by an interrupted takeover):
/// its recorded answer, or a new try at delivering it.
///
/// # Errors
/// As [`relay`].
pub async fn settle(
    state_dir: &Path,
    flags: &CloudFlags,
    id: &EventId,
) -> Result<Relayed, CliError> {
    // A relaying daemon owns the outbox: ask it. An event it never held
    // was queued by a command while no daemon ran: it is in this outbox.
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    if let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? {
        match client.outcome(id.clone(), flags.cloud_wait).await {
            Ok(q) => return Ok(Relayed::from_daemon(&q.cloud, &path)),
            Err(crate::daemon::DaemonError::Refused { code, .. })
                if code == crate::proto::control::error_code::NOT_IMPLEMENTED
                    || code == crate::proto::control::error_code::UNKNOWN_EVENT
                    || code == crate::proto::control::error_code::UNKNOWN_KIND => {}
            Err(e) => return Err(e.into()),
        }
    }
    let link = flags.link(state_dir)?;
    let outbox = open_outbox(state_dir)?;
    let known = outbox.outcome(id).await;
    let relayed = match (known, &link) {
        (Ok(Some(ack)), _) => Relayed::from_ack(ack),
        (_, None) => Relayed::Queued {
            reason: "no cloud configured (--cloud ADDR)".into(),
        },
        (_, Some(link)) => {
            let (mut acks, last_error) =
                deliver_and_wait(&outbox, link, std::slice::from_ref(id), flags.cloud_wait).await;
            match acks.pop().flatten() {
                Some(ack) => Relayed::from_ack(ack),
                None => Relayed::Queued {
                    reason: last_error
                        .unwrap_or_else(|| format!("no answer from {} in time", link.address)),
                },
            }
        }
    };
    outbox.close().await;
    Ok(relayed)
}

#[derive(Args, Debug)]
pub struct RelayArgs {
    #[command(flatten)]
    pub cloud: CloudFlags,
    /// Give up after this long if the queue is not empty by then
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long)]
    pub json: bool,
}

/// `handoff relay`: delivers every queued event now, and waits until the
/// queue is empty (or `--timeout`). What the daemon does all the time, for
/// a laptop that has been offline.
///
/// # Errors
/// No cloud configured, an unusable bundle or outbox.
pub async fn run(
    args: RelayArgs,
    state_dir: Option<PathBuf>,
) -> Result<std::process::ExitCode, CliError> {
    let state_dir = state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })?;
    let Some(link) = args.cloud.link(&state_dir)? else {
        return Err(CliError::Failed(
            "which cloud? pass --cloud ADDR (and --cloud-identity DIR)".into(),
        ));
    };
    let outbox = open_outbox(&state_dir)?;
    // What was waiting, to say afterwards what the cloud did with each.
    let waiting: Vec<_> = outbox.pending().into_iter().map(|e| e.id).collect();
    let (stop, shutdown) = crate::shutdown::shutdown_channel();
    let (status, mut watch) = crate::relay::status_channel(&outbox);
    let task = tokio::spawn(crate::relay::run(
        outbox.clone(),
        link.connector(),
        crate::relay::RelayConfig::default(),
        shutdown,
        status,
    ));
    let emptied = tokio::select! {
        r = tokio::time::timeout(args.timeout, watch.wait_for(|s| s.backlog == 0)) => r.is_ok(),
        () = super::shutdown_signal() => false,
    };
    stop.fire();
    let _ = task.await;
    let last = watch.borrow().clone();
    let mut applied = 0usize;
    let mut refused = Vec::new();
    for id in &waiting {
        if let Ok(Some(ack)) = outbox.outcome(id).await {
            match Relayed::from_ack(ack) {
                Relayed::Refused { rule, guidance } => refused.push((id.clone(), rule, guidance)),
                _ => applied += 1,
            }
        }
    }
    outbox.close().await;
    let cloud = &link.address;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "cloud": cloud,
                "delivered": applied + refused.len(),
                "applied": applied,
                "refused": refused.iter().map(|(id, rule, why)| serde_json::json!(
                    {"id": [id.daemon, id.seq], "rule": rule, "why": why})).collect::<Vec<_>>(),
                "backlog": last.backlog,
                "last_error": last.last_error,
            })
        );
    } else {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        println!(
            "the cloud at {cloud} applied {applied} queued event{} and refused {}",
            plural(applied),
            refused.len()
        );
        for (id, rule, why) in &refused {
            println!(
                "  refused event ({}, {}): {why}\n    (rule: {rule})",
                id.daemon, id.seq
            );
        }
        if emptied {
            println!("nothing is waiting");
        } else {
            eprintln!(
                "{} event{} still queued ({}); they stay in the outbox for the next run",
                last.backlog,
                plural(last.backlog),
                last.last_error.as_deref().unwrap_or("no answer in time")
            );
        }
    }
    // Every event was delivered, but the vendor's rules refused some: 3.
    Ok(if !emptied {
        std::process::ExitCode::from(4)
    } else if refused.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(3)
    })
}
