//! `handoff config check`: validate a configuration file before the daemon
//! reads it, and show what it would run with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::CliError;
use super::output::print_stdout;
use crate::daemon::config::{self, ConfigError, ConfigSource};

/// Exit code of a configuration that is refused (1 is for other failures).
pub const EXIT_INVALID: u8 = 2;

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file and print the effective configuration
    /// (every default filled in); exit 2 when the file is refused
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The file to check [default: $CONFIGURATION_DIRECTORY/handoff.toml
    /// under systemd, else /etc/handoff/handoff.toml; a missing default
    /// file means all defaults]
    pub file: Option<PathBuf>,
    /// JSON on stdout: the file, whether it was found, and the effective
    /// configuration or the error (path, line, column, key, message)
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ConfigArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    match args.command {
        ConfigCommand::Check(check) => run_check(check, state_dir),
    }
}

/// The state directory the packaged unit gives the daemon
/// (`StateDirectory=handoff`, so `$STATE_DIRECTORY`).
const UNIT_STATE_DIR: &str = "/var/lib/handoff";

fn run_check(args: CheckArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    // Where nothing names a state directory here (no flag, no `state_dir`,
    // no HOME: a root shell in a container, a package script), the file is
    // still fine: the daemon under its unit gets one from systemd. Check
    // the file and say which directory the daemon would use, not fail.
    let mut unit_default = false;
    let loaded = config::load(args.file.as_deref()).and_then(|(config, source)| {
        let named = state_dir.is_some()
            || config.state_dir.is_some()
            || crate::dirs::default_state_dir().is_some();
        let state_dir = if named {
            state_dir
        } else {
            unit_default = true;
            Some(PathBuf::from(UNIT_STATE_DIR))
        };
        let effective = config.resolve(state_dir, &source)?;
        Ok((effective, source))
    });
    let (effective, source) = match loaded {
        Ok(ok) => ok,
        Err(e) => {
            if args.json {
                print_stdout(&format!("{}\n", error_json(&e, args.file.as_ref())))
                    .map_err(CliError::io("cannot write to stdout"))?;
            }
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let found = !matches!(source, ConfigSource::DefaultMissing(_));
    let path = source.path().display().to_string();
    let text = if args.json {
        let value = json!({
            "file": path,
            "found": found,
            "valid": true,
            "state_dir_from_unit": unit_default,
            "config": effective,
        });
        format!("{value}\n")
    } else {
        let body = toml::to_string(&effective)
            .map_err(|e| CliError::Failed(format!("cannot show the configuration as TOML: {e}")))?;
        let header = if found {
            format!("# {path}: valid; the effective configuration:\n")
        } else {
            format!("# no file at {path}: all defaults\n")
        };
        let note = if unit_default {
            format!(
                "# state_dir: nothing here names one (no --state-dir, no state_dir, no HOME); \
                 the daemon under its unit uses $STATE_DIRECTORY, {UNIT_STATE_DIR}\n"
            )
        } else {
            String::new()
        };
        format!("{header}{note}{body}")
    };
    print_stdout(&text).map_err(CliError::io("cannot write to stdout"))?;
    Ok(ExitCode::SUCCESS)
}

fn error_json(e: &ConfigError, file: Option<&PathBuf>) -> serde_json::Value {
    let file = file
        .cloned()
        .unwrap_or_else(config::default_config_path)
        .display()
        .to_string();
    match e {
        ConfigError::Invalid {
            line,
            column,
            key,
            message,
            ..
        } => json!({
            "file": file,
            "valid": false,
            "error": {
                "line": (*line > 0).then_some(*line),
                "column": (*line > 0).then_some(*column),
                "key": key,
                "message": message,
            },
        }),
        other => json!({
            "file": file,
            "valid": false,
            "error": { "message": other.to_string() },
        }),
    }
}
