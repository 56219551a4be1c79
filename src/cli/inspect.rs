//! `handoff inspect PROCESSOR`: the handover report of a claimed
//! processor's house, read over its main port with the stored credential.
//!
//! Not through the daemon: this reads the credential from the state
//! directory itself, so on a site box run it with the daemon's
//! `--state-dir`.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{CliError, parse_timeout};
use crate::claim::{ClaimError, Target, is_credential_refusal, open_claimed};
use crate::inventory::report::{Fanout, HtmlReport, JsonReport, MarkdownReport};
use crate::inventory::{InventoryError, Reader, Sink};
use crate::leap::{ConnectionError, MainClient, MainClientError};

/// How long each answer may take: a big area's list is one frame.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

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
    let Some(state_dir) = state_dir else {
        return Err(CliError::Failed(
            "no state directory: pass --state-dir DIR (where `handoff claim` kept the credential)"
                .into(),
        ));
    };
    let target = Target::parse(&args.processor);
    let (resolved, stream) = open_claimed(&state_dir, &target, args.timeout).await?;
    let name = resolved.describe();

    let mut pending = Vec::new();
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
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

    let show_progress = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if show_progress {
            eprint!(
                "\rreading the house of {name}: area {}/{total}   ",
                done + 1
            );
        }
    };
    let mut client = MainClient::new(stream, "handoff-inspect", ANSWER_WITHIN);
    let result = Reader::new(&mut client)
        .read(&resolved.address.to_string(), &mut fanout, &mut progress)
        .await;
    if show_progress {
        eprintln!();
    }
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
            Err(explain(&resolved.describe(), e))
        }
    }
}

/// One line saying what went wrong and what to do.
fn explain(name: &str, e: InventoryError) -> CliError {
    if let InventoryError::Main {
        source: MainClientError::Connection(ConnectionError::Io(io)),
        ..
    } = &e
        && is_credential_refusal(io)
    {
        return ClaimError::CredentialRefused {
            processor: name.to_owned(),
        }
        .into();
    }
    match e {
        InventoryError::Main {
            url,
            source: MainClientError::Closed | MainClientError::Connection(_),
        } => CliError::Failed(format!(
            "{name} dropped the connection while its house was read (at {url}); no report was \
             written — run `handoff inspect` again"
        )),
        other => CliError::Failed(format!(
            "reading the house of {name}: {other}; no report was written"
        )),
    }
}
