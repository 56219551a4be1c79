//! `handoff daemon`: the site service. Signals become the daemon's
//! injected shutdown (SIGTERM, SIGINT) and reload (SIGHUP).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::{CliError, parse_duration};
use crate::daemon::{self, DaemonSettings, shutdown_channel};

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Browse only on this interface (repeatable) [default: every
    /// multicast-capable interface but loopback and container bridges]
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,

    /// Report a processor removed when it has not answered for this long
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub liveness: Duration,

    /// Control clients served at once; more are told to try again
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections: usize,
}

impl DaemonArgs {
    fn settings(&self, state_dir: PathBuf, runtime_dir: PathBuf) -> DaemonSettings {
        DaemonSettings {
            interfaces: self.interfaces.clone(),
            liveness: self.liveness,
            max_connections: self.max_connections,
            ..DaemonSettings::new(state_dir, runtime_dir)
        }
    }
}

pub async fn run(
    args: DaemonArgs,
    state_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let state_dir = state_dir.ok_or_else(|| {
        CliError::Failed(
            "no state directory: give --state-dir (or set HOME or STATE_DIRECTORY)".into(),
        )
    })?;
    let runtime_dir = runtime_dir
        .or_else(|| daemon::default_runtime_dir(Some(&state_dir)))
        .unwrap_or_else(|| state_dir.clone());
    let settings = args.settings(state_dir.clone(), runtime_dir.clone());

    let mut term =
        signal(SignalKind::terminate()).map_err(CliError::io("listening for SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(CliError::io("listening for SIGINT"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(CliError::io("listening for SIGHUP"))?;
    let (trigger, shutdown) = shutdown_channel();
    let (reload_tx, reloads) = mpsc::channel(4);
    let signals = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the settings");
                    // The configuration file is re-read here once it is
                    // wired; today the settings are the command line's.
                    let _ = reload_tx.try_send(args.settings(state_dir.clone(), runtime_dir.clone()));
                }
            }
        }
        trigger.fire();
    });
    let outcome = daemon::run(settings, shutdown, reloads).await;
    signals.abort();
    outcome?;
    Ok(ExitCode::SUCCESS)
}
