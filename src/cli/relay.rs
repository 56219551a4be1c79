//! What the commands share to reach the cloud: the flags (`--cloud ADDR`,
//! `--cloud-identity DIR`, `--cloud-wait`), the one line that reports an
//! event's fate, and `handoff relay`. Which way an event goes is the site
//! client's policy ([`crate::site`]), not decided here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{CliError, parse_duration};
use crate::cli::output::outln;
use crate::relay::address::CloudAddresses;
use crate::relay::link::CloudLink;
use crate::site::SiteClient;

#[derive(Args, Debug, Clone)]
pub struct CloudFlags {
    /// The cloud access layer to relay to (host:port), or several nodes of
    /// one Place service as A,B: on a connection failure the next is tried
    /// [default: none; events stay queued in STATE_DIR/outbox.redb]
    #[arg(long, value_name = "ADDR", env = "HANDOFF_CLOUD")]
    pub cloud: Option<CloudAddresses>,
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
            self.cloud.as_ref(),
            self.cloud_identity.as_deref(),
            state_dir,
        )
        .map_err(CliError::Failed)
    }

    /// How this command reaches the cloud: its `--cloud`, else a daemon
    /// that relays; `None` when neither.
    ///
    /// # Errors
    /// A bundle that cannot be used, a daemon that cannot be asked.
    pub async fn site(&self, state_dir: &Path) -> Result<Option<SiteClient>, CliError> {
        let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
        Ok(SiteClient::choose(self.link(state_dir)?, state_dir, &sockets).await?)
    }
}

pub use crate::relay::Relayed;

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

#[derive(Args, Debug)]
pub struct RelayArgs {
    #[command(flatten)]
    pub cloud: CloudFlags,
    /// Give up after this long if the queue is not empty by then
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// JSON on stdout: {delivered, backlog, last_error}
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
    let outbox = crate::site::open_outbox(&state_dir)?;
    // What was waiting, to say afterwards what the cloud did with each.
    let waiting: Vec<_> = outbox.pending().into_iter().map(|e| e.id).collect();
    if waiting.is_empty() {
        // Nothing to send: the cloud is not contacted, so nothing may be
        // said about what it did.
        outbox.close().await;
        if args.json {
            outln!(
                "{}",
                serde_json::json!({"cloud": link.addresses().to_string(), "delivered": 0,
                    "applied": 0, "refused": [], "backlog": 0, "last_error": null})
            );
        } else {
            outln!(
                "nothing is queued: no event waits for the cloud ({} was not contacted)",
                link.addresses()
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let (stop, shutdown) = crate::shutdown::shutdown_channel();
    let (status, mut watch) = crate::relay::status_channel(&outbox);
    let task = tokio::spawn(crate::relay::run(
        outbox.clone(),
        link.connector(),
        crate::relay::RelayConfig {
            claim_account: Some(link.account.clone()),
            ..crate::relay::RelayConfig::default()
        },
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
    let cloud = link.address();
    if args.json {
        outln!(
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
        outln!(
            "the cloud at {cloud} applied {applied} queued event{} and refused {}",
            plural(applied),
            refused.len()
        );
        for (id, rule, why) in &refused {
            outln!(
                "  refused event ({}, {}): {why}\n    (rule: {rule})",
                id.daemon,
                id.seq
            );
        }
        if emptied {
            outln!("nothing is waiting");
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
