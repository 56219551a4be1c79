//! `handoff status PROCESSOR`: the Place's cloud state with the vendor's
//! guidance, and the relay's backlog.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::relay::CloudFlags;
use super::{CliError, parse_timeout};
use crate::claim::Target;
use crate::cli::output::outln;
use crate::cloud::Status;
use crate::processor::{Mac, Serial};

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

/// GREEN, YELLOW or GREY, in the designer's colour on a terminal (unless
/// NO_COLOR is set).
pub(crate) fn light(status: Status, terminal: bool) -> String {
    let (word, colour) = match status {
        Status::Green => ("GREEN", "32"),
        Status::Yellow => ("YELLOW", "33"),
        Status::Grey => ("GREY", "90"),
    };
    if terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) {
        format!("\x1b[1;{colour}m{word}\x1b[0m")
    } else {
        word.to_owned()
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
        let Some(site) = args.cloud.site(&state_dir).await? else {
            return Err(CliError::Failed(
                "which cloud? pass --cloud ADDR (and --cloud-identity DIR if the bundle is not \
                 in STATE_DIR/cloud-identity), or run it where a daemon relays to one"
                    .into(),
            ));
        };
        let (serial, mac) = identify(processor, args.timeout).await?;
        let st = site.status(serial, mac, args.cloud.cloud_wait).await?;
        let (cloud, account) = (site.cloud(), site.account());
        out.insert(
            "status".into(),
            json!({
                "status": st.status.to_string(), "guidance": st.guidance,
                "access": st.access, "cloud": cloud,
                "serial": st.serial.0, "id": st.serial.id(), "mac": st.mac.to_string(),
                "place": st.place.as_ref().map(|p| p.0.clone()), "account": account,
            }),
        );
        lines.push(format!(
            "{}: {} ({account}, cloud at {cloud})\nprocessor: serial {} (id {}), MAC {}{}",
            light(st.status, std::io::stdout().is_terminal()),
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
        outln!("{}", serde_json::Value::Object(out));
    } else {
        outln!("{}", lines.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn relay_backlog(state_dir: &Path) -> Result<(usize, Option<Duration>), CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    Ok(crate::site::backlog(state_dir, &sockets).await?)
}
