//! `handoff daemon`: the site service. Its settings come from the
//! configuration file (`--config`, else `$CONFIGURATION_DIRECTORY` or
//! `/etc/handoff/handoff.toml`), with the flags overriding; signals become
//! the daemon's injected shutdown (SIGTERM, SIGINT) and reload (SIGHUP:
//! the file is read again).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::{CliError, parse_duration};
use crate::cli::output::outln;
use crate::daemon::{self, DaemonSettings, config};
use crate::shutdown::shutdown_channel;

/// `handoffd`, the binary systemd's unit runs: `handoff daemon` with the
/// same options and code, linked without the other commands (the cloud
/// service, the portal, the simulator): 4.9 MB of code against 8.8, and an
/// idle daemon keeps its pages resident, with those around them. 13.5
/// against 16.2 MiB with 500 processors (bench/footprint).
#[derive(Parser, Debug)]
#[command(
    name = "handoffd",
    version,
    about = "The handoff site daemon: continuous discovery, claims, and the cloud relay \
             (what `handoff daemon` runs, alone)",
    long_about = None
)]
pub struct DaemonCli {
    #[command(flatten)]
    pub globals: super::Globals,

    #[command(flatten)]
    pub args: DaemonArgs,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The configuration file [default: $CONFIGURATION_DIRECTORY/handoff.toml
    /// under systemd, else /etc/handoff/handoff.toml; a missing default
    /// file means all defaults]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Browse only on this interface (repeatable); overrides the
    /// configuration's `interfaces`
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,

    /// Report a processor removed when it has not answered for this long;
    /// overrides the configuration's `liveness` (default 30s)
    #[arg(long, value_parser = parse_duration)]
    pub liveness: Option<Duration>,

    /// Control clients served at once; more are told to try again
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections: usize,

    /// Relay to this cloud (host:port, or several nodes as A,B to fail over
    /// between); overrides the configuration's `[cloud] address`
    #[arg(long, value_name = "ADDR")]
    pub cloud: Option<crate::relay::address::CloudAddresses>,

    /// The enrolled identity bundle; overrides `[cloud] identity`
    /// (default STATE_DIR/cloud-identity)
    #[arg(long, value_name = "DIR")]
    pub cloud_identity: Option<PathBuf>,
}

impl DaemonArgs {
    /// The settings as the configuration file says now, the flags winning.
    fn settings(
        &self,
        state_dir: Option<PathBuf>,
        runtime_dir: Option<PathBuf>,
    ) -> Result<DaemonSettings, CliError> {
        let failed = |e: config::ConfigError| CliError::Failed(e.to_string());
        let (file, source) = config::load(self.config.as_deref()).map_err(failed)?;
        let effective = file.resolve(state_dir, &source).map_err(failed)?;
        let runtime_dir = runtime_dir
            .or_else(|| daemon::default_runtime_dir(Some(&effective.state_dir)))
            .unwrap_or_else(|| effective.state_dir.clone());
        let interfaces = if self.interfaces.is_empty() {
            effective.interfaces
        } else {
            self.interfaces.clone()
        };
        let cloud = match (&self.cloud, &effective.cloud.address) {
            (Some(address), _) => Some(address.clone()),
            (None, Some(address)) => Some(address.clone()),
            (None, None) => None,
        }
        .map(|address| {
            let identity = self
                .cloud_identity
                .clone()
                .unwrap_or_else(|| effective.cloud.identity.clone());
            (address, identity)
        });
        Ok(DaemonSettings {
            interfaces,
            liveness: self.liveness.unwrap_or(effective.liveness),
            max_connections: self.max_connections,
            cloud,
            claim: daemon::work::ClaimSettings {
                pairing_identity: effective.pairing_identity,
                button_timeout: effective.button_timeout,
                act_group: effective.act_group,
            },
            metrics: daemon::metrics::MetricsSettings {
                textfile: effective.metrics.textfile,
                interval: effective.metrics.textfile_interval,
                listen: effective.metrics.listen,
            },
            ..DaemonSettings::new(effective.state_dir, runtime_dir)
        })
    }
}

pub async fn run(
    args: DaemonArgs,
    state_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let settings = args.settings(state_dir.clone(), runtime_dir.clone())?;

    let mut term =
        signal(SignalKind::terminate()).map_err(CliError::io("listening for SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(CliError::io("listening for SIGINT"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(CliError::io("listening for SIGHUP"))?;
    let (trigger, shutdown) = shutdown_channel();
    let (reload_tx, reloads) = mpsc::channel(4);
    let (reread, mut asks) = mpsc::channel::<daemon::ReloadReply>(4);
    let signals = tokio::spawn(async move {
        loop {
            // SIGHUP (systemd 252's ExecReload before `handoff reload`, or
            // kill -HUP) and a control client's `reload` both read the
            // file again; only the client waits to hear how it went.
            let reply = tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => None,
                Some(reply) = asks.recv() => Some(reply),
            };
            let settings = args
                .settings(state_dir.clone(), runtime_dir.clone())
                .map_err(|e| format!("the configuration is refused: {e}"));
            // A refusal is logged once, by the daemon, with its reason.
            if settings.is_ok() {
                tracing::info!("reload: configuration read again");
            }
            let _ = reload_tx.send(daemon::Reload { settings, reply }).await;
        }
        trigger.fire();
    });
    // Someone who started it in a terminal sees it is up, and how to use
    // and stop it; under systemd or with JSON logs the log says it all.
    let greeter = matches!(
        super::LOG_SINK.get(),
        Some(crate::daemon::logging::Sink::Human { ansi: true })
    )
    .then(|| tokio::spawn(greet_when_ready(settings.clone())));
    let outcome = daemon::run(settings, shutdown, reloads, Some(reread)).await;
    if let Some(greeter) = greeter {
        greeter.abort();
    }
    signals.abort();
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Waits until this process's daemon answers on its control socket (ready:
/// the state directory locked, the socket bound, discovery started), then
/// says on stderr what it watches, where its socket is and how to stop it.
/// Silent if it never gets there (the daemon reports its own failure).
async fn greet_when_ready(settings: DaemonSettings) {
    let socket = settings.socket_path();
    let me = std::process::id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(mut client)) = daemon::connect(&socket).await
            && let Ok(report) = client.health().await
            && report.pid == me
        {
            eprintln!("{}", startup_line(&settings, me));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// "handoff daemon running (pid 7): watching for processors on eth0, …".
fn startup_line(settings: &DaemonSettings, pid: u32) -> String {
    let interfaces = crate::lan::interfaces()
        .ok()
        .and_then(|all| crate::lan::choose_interfaces(&all, &settings.interfaces).ok())
        .map_or_else(
            || settings.interfaces.join(", "),
            |chosen| chosen.join(", "),
        );
    let relay = match &settings.cloud {
        Some((address, _)) => format!("relaying events to the cloud at {address}"),
        None => "no cloud relay (events stay queued)".to_owned(),
    };
    format!(
        "handoff daemon running (pid {pid}): watching for processors on {interfaces}; {relay}\n\
         control socket {} (try `handoff health` or `handoff discover` in another shell); \
         Ctrl-C stops it",
        settings.socket_path().display()
    )
}

#[derive(Args, Debug)]
pub struct ReloadArgs {
    /// JSON on stdout: {"reloaded": true, "later": [settings applied at the
    /// next restart]} or {"reloaded": false, "why"}
    #[arg(long)]
    pub json: bool,
}

/// `handoff reload`: the running daemon reads its configuration again and
/// applies it; returns once it has (systemd's ExecReload), non-zero when
/// the file was refused (the daemon keeps its running settings).
pub async fn run_reload(args: ReloadArgs, sockets: &[PathBuf]) -> Result<ExitCode, CliError> {
    let Some((mut client, path)) = daemon::connect_first(sockets).await? else {
        return Err(CliError::Failed(format!(
            "no handoff daemon answers (looked for {}); nothing to reload",
            sockets
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let later = match client.reload().await {
        Ok(later) => later,
        Err(daemon::DaemonError::Refused { reason, .. }) => {
            if args.json {
                outln!("{}", serde_json::json!({"reloaded": false, "why": reason}));
            }
            return Err(CliError::Failed(format!(
                "the daemon at {} kept its running settings: {reason}",
                path.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        outln!("{}", serde_json::json!({"reloaded": true, "later": later}));
    } else if later.is_empty() {
        outln!("the daemon at {} applied its configuration", path.display());
    } else {
        outln!(
            "the daemon at {} applied its configuration; these take effect at its next restart: {}",
            path.display(),
            later.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
