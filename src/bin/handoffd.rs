//! `handoffd`: the site daemon alone, as systemd's unit runs it. The same
//! code as `handoff daemon`, in a binary without the other commands, so
//! that a daemon at rest keeps fewer of its pages resident.

fn main() -> std::process::ExitCode {
    handoff::cli::daemon_main()
}
