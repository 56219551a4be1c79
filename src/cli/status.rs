//! `handoff status PROCESSOR`: the Place's cloud state with the vendor's
//! guidance, and the relay's backlog.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::json;

use super::relay::{CloudFlags, open_outbox};
use super::{CliError, parse_timeout};
use crate::claim::Target;
use crate::cloud::Status;
use crate::processor::{Mac, Serial};
use crate::proto::{PlaceStatus, StatusQuery};
use crate::relay::link::CloudLink;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: Option<String>,
    /// Also (or only, without PROCESSOR) show the relay's queue: events not
    /// yet acknowledged by the cloud and the age of the oldest
    #[arg(long)]
    pub relay: bool,
    /// How long discovery looks for a processor named by address or host
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// JSON on stdout: {"status": {status, guidance, serial, id, mac, place,
    /// account}} and with --relay {"relay": {backlog, oldest_unsent_s}}
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud: CloudFlags,
}

/// The processor's serial and MAC as far as they are known before asking:
/// from what was typed, else from a running daemon's inventory, else from
/// a short discovery.
pub(crate) async fn identify(
    processor: &str,
    timeout: Duration,
) -> Result<(Option<Serial>, Option<Mac>), CliError> {
    let target = Target::parse(processor);
    if let Some(facts) = target.typed_facts() {
        return Ok(facts);
    }
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    if let Ok(Some((mut client, _))) = crate::daemon::connect_first(&sockets).await
        && let Ok(known) = client.inventory().await
        && let Some(p) = known.iter().find(|p| target.matches(p))
    {
        return Ok((p.serial, p.mac));
    }
    let found = crate::claim::resolve(&target, &[], timeout).await?;
    Ok((found.serial, found.mac))
}

/// Who asks the cloud: this command, with its own identity (`--cloud`), or
/// a running daemon that relays, as its enrolled account (the bundle on a
/// site box is the daemon's, not readable by the integrators using it).
pub(crate) enum Asker {
    Direct(CloudLink),
    Daemon,
}

impl Asker {
    /// `--cloud` (or `HANDOFF_CLOUD`) wins; without it, a daemon that relays.
    ///
    /// # Errors
    /// A bundle that cannot be used.
    pub(crate) async fn choose(
        flags: &CloudFlags,
        state_dir: &Path,
    ) -> Result<Option<Asker>, CliError> {
        if flags.cloud.is_none() {
            let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
            if let Ok(Some((mut client, _))) = crate::daemon::connect_first(&sockets).await
                && let Ok(report) = client.health().await
                && report.relay.is_some()
            {
                return Ok(Some(Asker::Daemon));
            }
        }
        Ok(flags.link(state_dir)?.map(Asker::Direct))
    }

    /// The cloud's answer about one processor, and the account that asked.
    ///
    /// # Errors
    /// The cloud does not know it, cannot be reached, or the daemon failed.
    pub(crate) async fn ask(
        &self,
        serial: Option<Serial>,
        mac: Option<Mac>,
        limit: Duration,
    ) -> Result<(PlaceStatus, String), CliError> {
        match self {
            Asker::Direct(link) => Ok((ask(link, serial, mac, limit).await?, link.account.clone())),
            Asker::Daemon => {
                let named = match (serial, mac) {
                    (Some(serial), _) => serial.0.to_string(),
                    (None, Some(mac)) => mac.to_string(),
                    (None, None) => {
                        return Err(CliError::Failed(
                            "the processor advertises neither a serial nor a MAC address".into(),
                        ));
                    }
                };
                let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
                let Some((mut client, _)) = crate::daemon::connect_first(&sockets).await? else {
                    return Err(CliError::Failed(
                        "the daemon stopped; pass --cloud ADDR to ask the cloud directly".into(),
                    ));
                };
                let report = client.status(&named, limit).await.map_err(|e| match e {
                    crate::daemon::DaemonError::Refused { reason, .. } => CliError::Failed(reason),
                    other => other.into(),
                })?;
                Ok(report.into_place_status())
            }
        }
    }
}

/// Asks the cloud about one processor.
pub(crate) async fn ask(
    link: &CloudLink,
    serial: Option<Serial>,
    mac: Option<Mac>,
    limit: Duration,
) -> Result<PlaceStatus, CliError> {
    let query = match (serial, mac) {
        (Some(serial), _) => StatusQuery::BySerial { query: 1, serial },
        (None, Some(mac)) => StatusQuery::ByMac { query: 1, mac },
        (None, None) => {
            return Err(CliError::Failed(
                "the processor advertises neither a serial nor a MAC address".into(),
            ));
        }
    };
    match link.status(query, limit).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(error)) => Err(CliError::Failed(format!(
            "the cloud at {} does not know this processor: {}",
            link.address, error.reason
        ))),
        Err(e) => Err(CliError::Failed(format!(
            "cannot ask the cloud at {}: {e}",
            link.address
        ))),
    }
}

pub async fn run(args: StatusArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let state_dir = state_dir.ok_or_else(|| {
        CliError::Failed("no state directory: set --state-dir, HOME or XDG_STATE_HOME".into())
    })?;
    if args.processor.is_none() && !args.relay {
        return Err(CliError::Failed(
            "name a PROCESSOR, or ask for the relay's queue with --relay".into(),
        ));
    }
    let mut out = serde_json::Map::new();
    let mut lines = Vec::new();
    if args.relay {
        let (backlog, oldest) = relay_backlog(&state_dir).await?;
        out.insert(
            "relay".into(),
            json!({"backlog": backlog, "oldest_unsent_s": oldest.map(|d| d.as_secs())}),
        );
        lines.push(match oldest {
            None => "relay: nothing waiting for the cloud".to_string(),
            Some(age) => format!(
                "relay: {backlog} event{} waiting for the cloud, the oldest for {}",
                if backlog == 1 { "" } else { "s" },
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ),
        });
    }
    if let Some(processor) = &args.processor {
        let Some(asker) = Asker::choose(&args.cloud, &state_dir).await? else {
            return Err(CliError::Failed(
                "which cloud? pass --cloud ADDR (and --cloud-identity DIR if the bundle is not \
                 in STATE_DIR/cloud-identity), or run it where a daemon relays to one"
                    .into(),
            ));
        };
        let (serial, mac) = identify(processor, args.timeout).await?;
        let (st, account) = asker.ask(serial, mac, args.cloud.cloud_wait).await?;
        out.insert(
            "status".into(),
            json!({
                "status": st.status.to_string(), "guidance": st.guidance,
                "serial": st.serial.0, "id": st.serial.id(), "mac": st.mac.to_string(),
                "place": st.place.as_ref().map(|p| p.0.clone()), "account": account,
            }),
        );
        let light = match st.status {
            Status::Green => "GREEN",
            Status::Yellow => "YELLOW",
            Status::Grey => "GREY",
        };
        lines.push(format!(
            "{light}: {}\nprocessor: serial {} (id {}), MAC {}{}",
            st.guidance,
            st.serial.0,
            st.serial.id(),
            st.mac,
            st.place
                .as_ref()
                .map(|p| format!("; Place {p}"))
                .unwrap_or_default()
        ));
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn relay_backlog(state_dir: &Path) -> Result<(usize, Option<Duration>), CliError> {
    // A daemon running the relay owns the outbox: ask it.
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    if let Ok(Some((mut client, _))) = crate::daemon::connect_first(&sockets).await
        && let Ok(report) = client.health().await
        && let Some(relay) = report.relay
    {
        return Ok((
            usize::try_from(relay.backlog).unwrap_or(usize::MAX),
            relay.oldest_unsent_ms.map(Duration::from_millis),
        ));
    }
    let outbox = open_outbox(state_dir)?;
    let stats = outbox.stats(SystemTime::now());
    outbox.close().await;
    Ok((stats.backlog, stats.oldest_pending_age))
}
