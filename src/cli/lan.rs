//! `handoff lan [--] CMD…`: runs CMD in a fresh private network, the one
//! the tests, the demo and the README's examples use: a network namespace
//! whose only interface is a loopback with multicast on, an Ethernet MTU
//! (1500) and 224.0.0.0/4 routed to it ([`crate::lan::private_lan_command`]).
//! Simulated processors and discovery started inside reach nobody's LAN,
//! and everything vanishes with CMD. Shipped in the binary so that an
//! installed handoff (or a fresh clone) needs no script from elsewhere.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use clap::Args;

use super::CliError;

#[derive(Args, Debug)]
pub struct LanArgs {
    /// The command to run and its arguments (put `--` before it when it
    /// has options of its own)
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Runs the command and exits as it did: its exit code, or 128 + the
/// signal that ended it, as a shell reports it.
pub fn run(args: LanArgs) -> Result<ExitCode, CliError> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(CliError::Failed("name a command to run".into()));
    };
    let status = crate::lan::private_lan_command(program, rest)
        .status()
        .map_err(CliError::io(
            "cannot run unshare (util-linux) to make a private network",
        ))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
