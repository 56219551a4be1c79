//! `handoff health`: how the daemon is doing, from its control socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::CliError;
use super::output::print_stdout;
use crate::daemon;
use crate::proto::control::HealthReport;

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// JSON: one object with "running" (relay is null while the daemon runs
    /// no relay); with no daemon, {"running": false, "reason", "sockets"}
    /// and exit 1
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when the oldest event waiting for the cloud is older than this
    /// (the relay is stuck)
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    pub stuck_after: Duration,
}

/// The JSON `health --json` prints.
#[derive(Serialize)]
struct HealthJson<'a> {
    /// Always true here; false in [`NotRunningJson`], so a script reads
    /// one field either way.
    running: bool,
    pid: u32,
    software: &'a str,
    uptime_ms: u64,
    processors: u64,
    /// null before the first discovery event.
    last_event_ms: Option<u64>,
    /// null while the daemon runs no relay: no backlog is known, and none
    /// is made up.
    relay: Option<RelayJson<'a>>,
}

/// What `health --json` prints when no daemon answers: a script reading
/// stdout gets an answer instead of nothing.
#[derive(Serialize)]
struct NotRunningJson<'a> {
    running: bool,
    reason: &'a str,
    /// The control sockets tried, in order.
    sockets: Vec<String>,
}

#[derive(Serialize)]
struct RelayJson<'a> {
    backlog: u64,
    oldest_unsent_ms: Option<u64>,
    /// host:port of the cloud; null from a daemon that does not say.
    cloud: Option<&'a str>,
    account: Option<&'a str>,
    /// Whether a connection to the cloud is up; null from a daemon that
    /// does not say.
    connected: Option<bool>,
    /// Why the last connection ended (kept after reconnecting).
    last_error: Option<&'a str>,
    /// The code of the cloud's error frame that ended it (`revoked`).
    last_error_code: Option<&'a str>,
}

pub async fn run(args: HealthArgs, sockets: &[PathBuf]) -> Result<ExitCode, CliError> {
    let Some((mut client, _)) = daemon::connect_first(sockets).await? else {
        let tried: Vec<String> = sockets.iter().map(|p| p.display().to_string()).collect();
        let reason = format!("nothing answers on {}", tried.join(" or "));
        if args.json {
            let mut s = serde_json::to_string_pretty(&NotRunningJson {
                running: false,
                reason: &reason,
                sockets: tried,
            })
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
            s.push('\n');
            print_stdout(&s).map_err(CliError::io("writing to stdout"))?;
        }
        return Err(CliError::Failed(format!(
            "no handoff daemon is running ({reason}); start it with `handoff daemon` or \
             `systemctl start handoff`"
        )));
    };
    let report = client.health().await?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&json(&report))
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        table(&report)
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    let revoked = report
        .relay
        .as_ref()
        .filter(|r| r.connected != Some(true))
        .filter(|r| r.last_error_code.as_deref() == Some(crate::proto::error_code::REVOKED));
    if revoked.is_some() {
        eprintln!(
            "the cloud's operator revoked this site box's identity: nothing more is relayed \
             until the operator enrolls it again under another name (`handoff cloud enroll`) \
             and the new bundle is installed; the events stay in the outbox until then"
        );
        return Ok(ExitCode::from(2));
    }
    let stuck = report
        .relay
        .as_ref()
        .and_then(|r| r.oldest_unsent_ms)
        .filter(|ms| u128::from(*ms) > args.stuck_after.as_millis());
    if let Some(ms) = stuck {
        eprintln!(
            "the relay is stuck: an event has waited {} for the cloud (more than {}); see the \
             daemon's log for why (journalctl -u handoff)",
            human_ms(ms),
            humantime::format_duration(args.stuck_after)
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn json(h: &HealthReport) -> HealthJson<'_> {
    HealthJson {
        running: true,
        pid: h.pid,
        software: &h.software,
        uptime_ms: h.uptime_ms,
        processors: h.processors,
        last_event_ms: h.last_event_ms,
        relay: h.relay.as_ref().map(|r| RelayJson {
            backlog: r.backlog,
            oldest_unsent_ms: r.oldest_unsent_ms,
            cloud: r.cloud.as_deref(),
            account: r.account.as_deref(),
            connected: r.connected,
            last_error: r.last_error.as_deref(),
            last_error_code: r.last_error_code.as_deref(),
        }),
    }
}

/// Milliseconds as a person reads them, to the second.
fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_secs(ms / 1000)).to_string()
}

fn table(h: &HealthReport) -> String {
    let last = match h.last_event_ms {
        Some(ms) => format!("{} ago", human_ms(ms)),
        None => "none yet".into(),
    };
    let relay = match &h.relay {
        None => "not running in this daemon (no backlog to report)".into(),
        Some(r) => {
            let backlog = match r.oldest_unsent_ms {
                Some(ms) => format!("{} unsent, oldest {} old", r.backlog, human_ms(ms)),
                None => format!("{} unsent", r.backlog),
            };
            let link = match (r.connected, r.last_error.as_deref()) {
                (Some(true), _) => "; connected".to_string(),
                (Some(false), Some(why)) => format!("; not connected: {why}"),
                (Some(false), None) => "; not connected yet".to_string(),
                (None, _) => String::new(),
            };
            format!("{backlog}{link}")
        }
    };
    format!(
        "daemon      running, pid {} ({}), up {}\nprocessors  {}\nlast event  {last}\nrelay       {relay}\n",
        h.pid,
        h.software,
        human_ms(h.uptime_ms),
        h.processors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::RelayHealth;

    fn report(relay: Option<RelayHealth>, last: Option<u64>) -> HealthReport {
        HealthReport {
            request: 1,
            processors: 3,
            uptime_ms: 125_400,
            last_event_ms: last,
            pid: 77,
            software: "handoff 0.1.0".into(),
            relay,
        }
    }

    #[test]
    fn the_table_says_what_is_not_known_instead_of_inventing_it() {
        let t = table(&report(None, None));
        assert!(t.contains("up 2m 5s"), "{t}");
        assert!(t.contains("last event  none yet"), "{t}");
        assert!(t.contains("relay       not running"), "{t}");
        let t = table(&report(
            Some(RelayHealth {
                backlog: 2,
                oldest_unsent_ms: Some(61_000),
                cloud: None,
                account: None,
                connected: None,
                last_error: None,
                last_error_code: None,
            }),
            Some(4_000),
        ));
        assert!(t.contains("last event  4s ago"), "{t}");
        assert!(t.contains("2 unsent, oldest 1m 1s old"), "{t}");
        assert!(
            !t.contains("connected"),
            "nothing said of a link not reported: {t}"
        );
    }

    #[test]
    fn the_table_says_why_the_relay_is_not_connected() {
        let relay = |connected, err: Option<&str>| RelayHealth {
            backlog: 1,
            oldest_unsent_ms: Some(3_000),
            cloud: Some("cloud:4433".into()),
            account: None,
            connected,
            last_error: err.map(Into::into),
            last_error_code: None,
        };
        let t = table(&report(
            Some(relay(Some(false), Some("the cloud closed the connection"))),
            None,
        ));
        assert!(
            t.contains("; not connected: the cloud closed the connection"),
            "{t}"
        );
        let t = table(&report(Some(relay(Some(false), None)), None));
        assert!(t.contains("; not connected yet"), "{t}");
        let t = table(&report(Some(relay(Some(true), Some("an old error"))), None));
        assert!(t.contains("; connected"), "{t}");
        assert!(
            !t.contains("an old error"),
            "a past error is not news once reconnected: {t}"
        );
    }

    #[test]
    fn json_has_null_for_the_relay_until_there_is_one() {
        let v = serde_json::to_value(json(&report(None, None))).unwrap();
        assert_eq!(v["relay"], serde_json::Value::Null);
        assert_eq!(v["last_event_ms"], serde_json::Value::Null);
        assert_eq!(v["processors"], 3);
        assert_eq!(v["running"], true);
    }
}
