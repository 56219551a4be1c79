//! The command line: argument parsing and output. Tables for people,
//! `--json` for scripts; one line per error, with a hint at the next step.

mod claim;
mod cloud;
mod config;
mod countdown;
mod daemon;
mod demo;
mod discover;
mod docs;
mod health;
mod inspect;
mod lan;
mod manual;
mod output;
mod pairing_identity;
mod relay;
mod release;
mod sim;
mod status;
mod takeover;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Errors the command line reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Discovery(#[from] crate::discovery::DiscoveryError),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Lan(#[from] crate::lan::LanError),
    #[error(transparent)]
    Claim(#[from] crate::claim::ClaimError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error(transparent)]
    Site(#[from] crate::site::SiteError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    /// A command line that cannot mean anything: exit code 2, as clap's.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// The exit code for this error: 2 (the usage code, as clap's own)
    /// when the argument itself is most likely wrong: a processor name one
    /// typo from a processor that answered. Otherwise 1.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Claim(crate::claim::ClaimError::NotFoundNear { .. }) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// The options every command takes, and `handoffd` too.
#[derive(Args, Debug, Clone)]
pub struct Globals {
    /// Where handoff keeps its state [default: $STATE_DIRECTORY under
    /// systemd, else $XDG_STATE_HOME/handoff or ~/.local/state/handoff]
    #[arg(long, global = true, value_name = "DIR", env = "HANDOFF_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where the daemon's control socket (handoff.sock) lives [default:
    /// $RUNTIME_DIRECTORY under systemd, else $XDG_RUNTIME_DIR/handoff,
    /// else the state directory]
    #[arg(long, global = true, value_name = "DIR", env = "HANDOFF_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug); HANDOFF_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log lines as: auto (the journal under systemd, else human lines),
    /// human, json (one object per line on stderr) or journald
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "HANDOFF_LOG_FORMAT"
    )]
    pub log_format: Option<crate::daemon::logging::LogFormat>,
}

impl Globals {
    /// `--state-dir`, else the default one (see [`default_state_dir`]).
    fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir.clone().or_else(default_state_dir)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "handoff",
    version,
    about = "Find lighting processors on the LAN, read their identity, and hand a site over",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the processors on the LAN: id, product, addresses, MAC, firmware
    Discover(discover::DiscoverArgs),
    /// Pair with a processor by its button: check its identity, keep the
    /// credential (and export it); the cloud is never told
    Pair(claim::PairArgs),
    /// Claim the system as homeowner in the cloud: pair with the button,
    /// then make the cloud account the Place's homeowner
    Claim(claim::ClaimArgs),
    /// Remove Home from Account in the cloud, then forget the credential
    Release(release::ReleaseArgs),
    /// Forget the credential of a paired processor; the cloud is never told
    Unpair(release::UnpairArgs),
    /// The cloud state of a processor's Place (green / yellow / grey) and
    /// what to do; --relay shows the queue of events for the cloud
    Status(status::StatusArgs),
    /// The handover report of a claimed processor: its house read over the
    /// main port (areas, devices with serials and firmware, zones and
    /// levels, keypads and engravings), as Markdown, JSON or HTML
    Inspect(inspect::InspectArgs),
    /// Deliver every event queued for the cloud now
    Relay(relay::RelayArgs),
    /// Claim with the button, share the Place to a pro account, release
    /// the home: or say why not and what to do instead
    Takeover(takeover::TakeoverArgs),
    /// Run simulated processors (on a private network only)
    Sim(sim::SimArgs),
    /// Install the pairing identity you were issued (what `claim` presents
    /// on a processor's pairing port), or show the installed one
    PairingIdentity(pairing_identity::PairingIdentityArgs),
    /// Run the site service: continuous discovery and the control socket
    /// the other commands use when it runs
    Daemon(daemon::DaemonArgs),
    /// How the daemon is doing: inventory size, last discovery event,
    /// uptime; exits 1 when no daemon runs
    Health(health::HealthArgs),
    /// Make the running daemon read its configuration again; returns once
    /// it applied it (exit 1 with the reason when the file is refused)
    Reload(daemon::ReloadArgs),
    /// Show the whole story on a private network, no hardware needed
    Demo(demo::DemoArgs),
    /// Run a command in a fresh private network (a namespace whose only
    /// interface is a multicast loopback), for the simulator and tries
    Lan(lan::LanArgs),
    /// The reference cloud access layer: serve, enroll, and the Place
    /// operations
    Cloud(cloud::CloudArgs),
    /// Check the site daemon's configuration file
    Config(config::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir
    Man(docs::ManArgs),
}

/// Parses a duration such as `3s`, `500ms` or `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration like 3s or 500ms: {e}"))
}

/// Parses a timeout: a duration that is not zero. Waiting zero seconds for
/// discovery or a button press can only fail, after the user's walk to
/// the processor; better said at once, as a usage error.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "'{s}' waits for nothing; give a time to wait, like 5s or 2m"
        ));
    }
    Ok(d)
}

/// Checks a `PROCESSOR` argument: an empty one would name no processor
/// (and be looked for as a host named "").
pub fn parse_processor(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "empty; name the processor by serial, 8-hex id, MAC address, host name or IP \
             address (`handoff discover` lists them)"
                .into(),
        );
    }
    Ok(s.to_owned())
}

pub use crate::dirs::default_state_dir;

/// Runs the command line: parse, set up logging, run, and turn any error
/// into one line on stderr and a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = match &cli.command {
        Command::Daemon(args) => Some(args.config.clone()),
        _ => None,
    };
    let globals = cli.globals.clone();
    start(&globals, daemon, run(cli))
}

/// `handoffd`: the daemon alone, parsed and run as `handoff daemon` is
/// (see [`daemon::DaemonCli`]).
pub fn daemon_main() -> ExitCode {
    let cli = daemon::DaemonCli::parse();
    let _ = CONTROL_SOCKETS.set(control_sockets(&cli.globals));
    let state_dir = cli.globals.state_dir();
    start(
        &cli.globals,
        Some(cli.args.config.clone()),
        daemon::run(cli.args, state_dir, cli.globals.runtime_dir.clone()),
    )
}

/// What both binaries do around a command: logging set up, the async
/// runtime built, the command run in it, and its error turned into one
/// line on stderr and the exit code. `daemon` is the daemon's `--config`
/// when the command is the daemon: its configuration may choose the log
/// format (a file that cannot be read is reported by the daemon itself,
/// once logging runs).
fn start(
    globals: &Globals,
    daemon: Option<Option<PathBuf>>,
    command: impl std::future::Future<Output = Result<ExitCode, CliError>>,
) -> ExitCode {
    let configured = match &daemon {
        Some(config) => crate::daemon::config::load(config.as_deref())
            .map(|(config, _)| config.log_format)
            .unwrap_or_default(),
        None => crate::daemon::logging::LogFormat::Auto,
    };
    let sink = crate::daemon::logging::init(globals.log_format, configured, globals.verbose);
    let _ = LOG_SINK.set(sink);
    // The daemon waits on the network and the control socket, and its few
    // slow steps (key generation) run on blocking threads: one worker is
    // enough, and an idle daemon is then one thread woken, not two that
    // hand work to each other (and one stack less in its memory).
    let workers = if daemon.is_some() { 1 } else { 2 };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(command);
    if let Some(e) = output::stdout_failure() {
        eprintln!("error: the output could not be written to standard output: {e}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(code) => code,
        Err(CliError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let sockets = control_sockets(&cli.globals);
    // The demo is self-contained: a daemon running on this machine (its
    // socket is reachable from any network namespace) must not take part.
    if !matches!(cli.command, Command::Demo(_)) {
        let _ = CONTROL_SOCKETS.set(sockets.clone());
    }
    let state_dir = || cli.globals.state_dir();
    match cli.command {
        Command::Discover(args) => discover::run(args, &sockets).await,
        Command::Daemon(args) => {
            daemon::run(args, state_dir(), cli.globals.runtime_dir.clone()).await
        }
        Command::Health(args) => health::run(args, &sockets).await,
        Command::Reload(args) => daemon::run_reload(args, &sockets).await,
        Command::Sim(args) => {
            let state_dir = state_dir();
            sim::run(args, state_dir).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Pair(args) => claim::run_pair(args, state_dir()).await,
        Command::PairingIdentity(args) => pairing_identity::run(args, state_dir()).await,
        Command::Lan(args) => lan::run(args),
        Command::Claim(args) => claim::run_claim(args, state_dir()).await,
        Command::Unpair(args) => release::run_unpair(args, state_dir()).await,
        Command::Release(args) => release::run_release(args, state_dir()).await,
        Command::Status(args) => status::run(args, state_dir()).await,
        Command::Inspect(args) => inspect::run(args, state_dir()).await,
        Command::Relay(args) => relay::run(args, state_dir()).await,
        Command::Takeover(args) => takeover::run(args, state_dir()).await,
        Command::Cloud(args) => cloud::run(args, state_dir()).await,
        Command::Config(args) => config::run(args, cli.globals.state_dir.clone()),
        Command::Completions(args) => docs::run_completions(args),
        Command::Man(args) => docs::run_man(args),
    }
}

/// Where the commands look for a running daemon's control socket, in
/// order, as `--runtime-dir` and the environment say; set once per run.
pub(crate) static CONTROL_SOCKETS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Where this run's log lines go, as [`crate::daemon::logging::init`]
/// chose; set once in [`main`].
pub(crate) static LOG_SINK: std::sync::OnceLock<crate::daemon::logging::Sink> =
    std::sync::OnceLock::new();

fn control_sockets(globals: &Globals) -> Vec<PathBuf> {
    let state_dir = globals.state_dir();
    crate::daemon::client_socket_paths(globals.runtime_dir.as_deref(), state_dir.as_deref())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a command that says it is
/// ready (`cloud serve` to systemd) and is stopped at once must stop
/// cleanly, not die of SIGTERM's default action. Must be called inside the
/// runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_zero_timeout_or_an_empty_processor_is_a_usage_error() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        for zero in ["0", "0s", "0ms"] {
            let err = parse_timeout(zero).unwrap_err();
            assert!(err.contains("waits for nothing"), "{zero}: {err}");
        }
        assert!(parse_timeout("soon").is_err());
        assert_eq!(parse_processor("0236e6a7").as_deref(), Ok("0236e6a7"));
        assert!(parse_processor("").is_err());
        assert!(parse_processor("  ").is_err());
        for args in [
            &["handoff", "claim", "x", "--timeout", "0"][..],
            &["handoff", "claim", "x", "--button-timeout", "0s"],
            &["handoff", "status", "x", "--timeout", "0s"],
            &[
                "handoff",
                "takeover",
                "x",
                "--share-to",
                "a@b.example",
                "--timeout",
                "0",
            ],
            &[
                "handoff",
                "takeover",
                "x",
                "--share-to",
                "a@b.example",
                "--button-timeout",
                "0",
            ],
            &["handoff", "claim", ""],
            &["handoff", "release", " "],
            &["handoff", "status", ""],
            &["handoff", "takeover", "", "--share-to", "a@b.example"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
    }

    #[test]
    fn durations_parse_in_human_form() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
