//! `handoff inspect PROCESSOR`: the handover report of a claimed
//! processor's house, read over its main port with the stored credential.
//!
//! Through a running daemon when there is one (on a site box the
//! credentials are the daemon's, in a state directory only it may read):
//! it reads the house and streams the report back over the control
//! socket. Else, or when the daemon holds no credential for the processor,
//! with this state directory's own.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{CliError, parse_timeout};
use crate::claim::{ClaimError, Locate, Target, read_house};
use crate::daemon::DaemonError;
use crate::inventory::Sink;
use crate::inventory::report::{Fanout, HtmlReport, JsonReport, MarkdownReport};
use crate::proto::control::error_code;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The claimed processor: serial, 8-hex id, MAC address, host name or IP address
    #[arg(value_parser = super::parse_processor)]
    pub processor: String,
    /// The report as JSON on stdout (instead of Markdown)
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML file
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the report as Markdown
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// How long discovery looks for a processor not named by address
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// A report file written beside its final name and renamed there only
/// when complete: a failed read leaves nothing.
struct PendingFile {
    temporary: PathBuf,
    path: PathBuf,
}

impl PendingFile {
    fn create(path: &Path) -> Result<(PendingFile, File), CliError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let temporary = path.with_file_name(format!(
            ".{}.{}.partial",
            name.unwrap_or_else(|| "report".into()),
            std::process::id()
        ));
        let file = File::create(&temporary).map_err(|source| CliError::Io {
            context: format!("creating {}", path.display()),
            source,
        })?;
        Ok((
            PendingFile {
                temporary,
                path: path.to_owned(),
            },
            file,
        ))
    }

    fn commit(self) -> Result<(), CliError> {
        let io = |source| CliError::Io {
            context: format!("writing {}", self.path.display()),
            source,
        };
        File::open(&self.temporary)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&self.temporary, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = crate::atomic_file::sync_dir(dir);
        }
        Ok(())
    }

    fn abandon(&self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

pub async fn run(args: InspectArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let mut pending = Vec::new();
    let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
    let mut open = |path: &Path, html: bool| -> Result<(), CliError> {
        let (file, handle) = PendingFile::create(path)?;
        pending.push(file);
        let out = BufWriter::new(handle);
        sinks.push(if html {
            Box::new(HtmlReport::new(out))
        } else {
            Box::new(MarkdownReport::new(out))
        });
        Ok(())
    };
    if let Some(path) = &args.html {
        open(path, true)?;
    }
    if let Some(path) = &args.markdown
        && let Err(e) = open(path, false)
    {
        pending.iter().for_each(PendingFile::abandon);
        return Err(e);
    }
    let stdout = BufWriter::new(super::output::QuietStdout::new());
    sinks.push(if args.json {
        Box::new(JsonReport::new(stdout))
    } else {
        Box::new(MarkdownReport::new(stdout))
    });
    let mut fanout = Fanout(sinks);
    let result = read(&args, state_dir, &mut fanout).await;
    drop(fanout);
    match result {
        Ok(warnings) => {
            for file in pending {
                file.commit()?;
            }
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            pending.iter().for_each(PendingFile::abandon);
            Err(e)
        }
    }
}

/// Reads the house into `sink`: through a running daemon, which keeps the
/// credentials on a site box; with this state directory's credential when
/// no daemon runs or it holds none for the processor.
async fn read(
    args: &InspectArgs,
    state_dir: Option<PathBuf>,
    sink: &mut Fanout,
) -> Result<Vec<String>, CliError> {
    let sockets = super::CONTROL_SOCKETS.get().cloned().unwrap_or_default();
    let mut daemon_said = None;
    if let Some((mut client, path)) = crate::daemon::connect_first(&sockets).await? {
        match client.inspect(&args.processor, args.timeout, sink).await {
            Ok(warnings) => return Ok(warnings),
            // Before any of the report: an older daemon, or a credential
            // that is this user's own.
            Err(DaemonError::Refused { code, reason })
                if code == error_code::NOT_IMPLEMENTED || code == error_code::UNKNOWN_KIND =>
            {
                daemon_said = Some(format!("the daemon at {}: {reason}", path.display()));
            }
            Err(DaemonError::Refused { reason, .. }) => return Err(CliError::Failed(reason)),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(state_dir) = state_dir else {
        return Err(CliError::Failed(
            "no state directory: pass --state-dir DIR (where `handoff claim` kept the credential)"
                .into(),
        ));
    };
    let show_progress = std::io::stderr().is_terminal();
    let mut progress = |name: &str, done: usize, total: usize| {
        if show_progress {
            eprint!(
                "\rreading the house of {name}: area {}/{total}   ",
                done + 1
            );
        }
    };
    let target = Target::parse(&args.processor);
    let result = read_house(
        &state_dir,
        &target,
        Locate::Browse(args.timeout),
        sink,
        &mut progress,
    )
    .await;
    if show_progress {
        eprintln!();
    }
    result.map_err(|e| match (e, daemon_said) {
        (e @ ClaimError::NotClaimed { .. }, Some(daemon)) => {
            CliError::Failed(format!("{daemon}; and here: {e}"))
        }
        (e, _) => e.into(),
    })
}
