//! `handoff cloud daemon list|revoke`: the enrolled site boxes, and
//! shutting one out.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::print::print;
use crate::cli::CliError;
use crate::cloud::store::{DaemonRecord, Revocation};
use crate::cloud::{CloudError, CloudStore, Timestamp};
use crate::identity::install::human_time;

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Every enrolled daemon: name, account, enrolled, last contact, revoked
    List {
        /// JSON on stdout: an array, one object per daemon
        #[arg(long)]
        json: bool,
    },
    /// Shut a daemon out: refused from now on, its connections closed
    Revoke {
        /// The name it was enrolled under (`cloud enroll --name`)
        name: String,
        /// JSON on stdout: the daemon as `list --json` shows it
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(
    store: &CloudStore,
    cmd: DaemonCommand,
    at: Timestamp,
) -> Result<ExitCode, CliError> {
    match cmd {
        DaemonCommand::List { json } => {
            let daemons = store.daemons()?;
            Ok(print(
                json,
                Value::Array(daemons.iter().map(daemon_json).collect()),
                || table(&daemons),
            ))
        }
        DaemonCommand::Revoke { name, json } => {
            // Whether this run revoked it, as the store's one transaction
            // saw it (not a comparison of times: two revokes in one second).
            let Some(Revocation { record, changed }) = store.revoke_daemon(&name, at)? else {
                return Err(CloudError::NoSuchDaemon { name }.into());
            };
            let when = record.revoked_at.unwrap_or(at);
            let already = !changed;
            Ok(print(json, daemon_json(&record), || {
                let first = if already {
                    "was already revoked"
                } else {
                    "revoked"
                };
                format!(
                    "{first} {} ({}) at {}: the cloud refuses its identity and closes its \
                     connections within a second; events it sent before stay applied",
                    record.name,
                    record.account,
                    human_time(when.0 as i64)
                )
            }))
        }
    }
}

fn daemon_json(d: &DaemonRecord) -> Value {
    json!({
        "name": d.name,
        "account": d.account.as_str(),
        "enrolled_at": d.enrolled_at.0,
        "last_contact": d.last_contact.map(|t| t.0),
        "revoked": d.revoked_at.is_some(),
        "revoked_at": d.revoked_at.map(|t| t.0),
    })
}

fn table(daemons: &[DaemonRecord]) -> String {
    if daemons.is_empty() {
        return "no daemon is enrolled (`handoff cloud enroll --name SITE --account EMAIL`)".into();
    }
    let time =
        |t: Option<Timestamp>, none: &str| t.map_or(none.to_owned(), |t| human_time(t.0 as i64));
    let rows: Vec<[String; 5]> = daemons
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.account.to_string(),
                human_time(d.enrolled_at.0 as i64),
                time(d.last_contact, "never"),
                time(d.revoked_at, "-"),
            ]
        })
        .collect();
    let head = ["NAME", "ACCOUNT", "ENROLLED", "LAST CONTACT", "REVOKED"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(head)];
    for r in &rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out.join("\n")
}
