//! What the commands share to reach the cloud: `--cloud ADDR` and
//! `--cloud-identity DIR`, the outbox under the state directory, and the
//! report of what became of each event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{CliError, parse_duration};
use crate::outbox::{self, Outbox};
use crate::proto::{Ack, EventId, EventKind, IssuedLink, Outcome};
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

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relayed {
    Applied(Option<IssuedLink>),
    Refused {
        rule: String,
        guidance: String,
    },
    /// Durable in the outbox, not answered yet.
    Queued {
        reason: String,
    },
}

impl Relayed {
    pub fn json(&self) -> serde_json::Value {
        match self {
            Relayed::Applied(link) => {
                serde_json::json!({"result": "applied", "link": link.as_ref().map(|l| format!("{}:{}", l.number, l.secret))})
            }
            Relayed::Refused { rule, guidance } => {
                serde_json::json!({"result": "refused", "rule": rule, "why": guidance})
            }
            Relayed::Queued { reason } => serde_json::json!({"result": "queued", "why": reason}),
        }
    }
}

fn from_ack(ack: Ack) -> Relayed {
    match ack.outcome {
        Outcome::Applied | Outcome::Duplicate => Relayed::Applied(ack.link),
        Outcome::Refused { rule, guidance } => Relayed::Refused { rule, guidance },
    }
}

/// Opens the outbox under `state_dir`.
///
/// # Errors
/// [`CliError`] naming the file.
pub fn open_outbox(state_dir: &Path) -> Result<Outbox, CliError> {
    crate::identity::files::ensure_private_dir(state_dir)
        .map_err(|e| CliError::Failed(e.to_string()))?;
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
                        from_ack,
                    );
                    (id, relayed)
                })
                .collect()
        }
    };
    outbox.close().await;
    Ok(results)
}

/// One line for people about an event's fate.
pub fn describe(what: &str, relayed: &Relayed) -> String {
    match relayed {
        Relayed::Applied(_) => format!("the cloud recorded the {what}"),
        Relayed::Refused { rule, guidance } => {
            format!("the cloud refused the {what}: {guidance}\n  (rule: {rule})")
        }
        Relayed::Queued { reason } => format!("{what} queued, will be relayed ({reason})"),
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
    let link = flags.link(state_dir)?;
    let outbox = open_outbox(state_dir)?;
    let known = outbox.outcome(id).await;
    let relayed = match (known, &link) {
        (Ok(Some(ack)), _) => from_ack(ack),
        (_, None) => Relayed::Queued {
            reason: "no cloud configured (--cloud ADDR)".into(),
        },
        (_, Some(link)) => {
            let (mut acks, last_error) =
                deliver_and_wait(&outbox, link, std::slice::from_ref(id), flags.cloud_wait).await;
            match acks.pop().flatten() {
                Some(ack) => from_ack(ack),
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
