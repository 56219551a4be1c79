//! Where log lines go: the systemd journal when stderr is the journal,
//! human lines on a terminal, JSON lines when asked.
//!
//! systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is
//! connected to the journal; a child that inherits the variable but has its
//! stderr redirected elsewhere must not believe it. So, as systemd.exec(5)
//! says, the variable only counts when it matches the device and inode of
//! our own stderr (fstat). Then we write structured entries to journald
//! directly, keeping the fields (processor id, MAC…) as journal fields.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use super::config::LogFormat;

/// The environment variable that overrides the level (`HANDOFF_LOG=debug`,
/// or a full `EnvFilter` directive).
pub const LOG_ENV: &str = "HANDOFF_LOG";

/// What the log lines are written as, once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Entries sent to journald's socket.
    Journald,
    /// Human lines on stderr; colours only on a terminal.
    Human { ansi: bool },
    /// One JSON object per line on stderr.
    Json,
}

/// What [`choose_sink`] looks at, gathered by [`Environment::current`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// `$JOURNAL_STREAM`, if set.
    pub journal_stream: Option<String>,
    /// Device and inode of stderr, if it could be stat'ed.
    pub stderr_id: Option<(u64, u64)>,
    pub stderr_is_terminal: bool,
}

impl Environment {
    pub fn current() -> Environment {
        Environment {
            journal_stream: std::env::var("JOURNAL_STREAM").ok(),
            stderr_id: stderr_id(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Whether stderr is the journal stream systemd connected us to.
    pub fn stderr_is_journal(&self) -> bool {
        match (
            self.journal_stream
                .as_deref()
                .and_then(parse_journal_stream),
            self.stderr_id,
        ) {
            (Some(expected), Some(actual)) => expected == actual,
            _ => false,
        }
    }
}

/// Device and inode of stderr: fstat on a duplicate of fd 2 (no unsafe).
fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Parses `JOURNAL_STREAM`'s `DEV:INODE` (both decimal).
pub fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Chooses the sink: the command line's `--log-format` wins over the
/// configuration's `log_format`; `auto` means the journal when stderr is
/// the journal, else human lines (coloured on a terminal).
pub fn choose_sink(flag: Option<LogFormat>, config: LogFormat, env: &Environment) -> Sink {
    let human = Sink::Human {
        ansi: env.stderr_is_terminal,
    };
    match flag.unwrap_or(config) {
        LogFormat::Human => human,
        LogFormat::Json => Sink::Json,
        LogFormat::Journald => Sink::Journald,
        LogFormat::Auto if env.stderr_is_journal() => Sink::Journald,
        LogFormat::Auto => human,
    }
}

/// The level when `HANDOFF_LOG` does not say: warnings for an interactive
/// command (`-v` info, `-vv` debug), but info in the journal, where a
/// service's log is its only record and journalctl filters by priority.
pub fn default_level(verbose: u8, sink: Sink) -> &'static str {
    match (verbose, sink) {
        (0, Sink::Journald) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    }
}

/// Installs the global subscriber and returns the sink in use. When the
/// journal was chosen but its socket cannot be reached, falls back to human
/// lines on stderr and says so there. Calling it twice keeps the first.
pub fn init(flag: Option<LogFormat>, config: LogFormat, verbose: u8) -> Sink {
    let env = Environment::current();
    let mut sink = choose_sink(flag, config, &env);
    let mut journald_problem = None;
    let journald = if sink == Sink::Journald {
        match tracing_journald::layer() {
            Ok(layer) => Some(layer),
            Err(e) => {
                journald_problem = Some(e);
                sink = Sink::Human {
                    ansi: env.stderr_is_terminal,
                };
                None
            }
        }
    } else {
        None
    };
    let filter = EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| EnvFilter::new(default_level(verbose, sink)));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match (sink, journald) {
        (Sink::Journald, Some(layer)) => registry.with(layer).try_init(),
        (Sink::Json, _) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        (Sink::Human { .. }, _) | (Sink::Journald, None) => {
            let ansi = matches!(sink, Sink::Human { ansi: true });
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(OneLine { ansi })
                        .with_ansi(ansi),
                )
                .try_init()
        }
    };
    if let Some(e) = journald_problem {
        tracing::warn!("cannot reach the systemd journal ({e}); logging to stderr instead");
    }
    sink
}

/// Human log lines on stderr, one line per event whatever its fields
/// carry. A field may hold text from any device on the LAN, printed by a
/// library as it likes (mdns-sd's `Debug` of a TXT key keeps a newline as
/// it is, which would start a forged line); every control character but
/// the line's end (and the colours' ESC on a terminal) is escaped as
/// [`crate::processor::printable`] escapes it.
struct OneLine {
    ansi: bool,
}

/// Writes one event: the fmt layer hands each event over in one write.
struct OneLineWriter {
    ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLine {
    type Writer = OneLineWriter;

    fn make_writer(&'a self) -> OneLineWriter {
        OneLineWriter { ansi: self.ansi }
    }
}

impl std::io::Write for OneLineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(one_line(buf, self.ansi).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `event` (one formatted log event) as one line.
fn one_line(event: &[u8], ansi: bool) -> String {
    let text = String::from_utf8_lossy(event);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (&*text, ""),
    };
    let keep: &[char] = if ansi { &['\u{1b}'] } else { &[] };
    format!("{}{end}", crate::processor::printable_but(body, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(journal_stream: Option<&str>, stderr_id: Option<(u64, u64)>, tty: bool) -> Environment {
        Environment {
            journal_stream: journal_stream.map(String::from),
            stderr_id,
            stderr_is_terminal: tty,
        }
    }

    #[test]
    fn a_log_event_is_one_line_whatever_its_fields_carry() {
        let event = "WARN mdns_sd: TxtProperty {key: \"\\x1b[2J\\x07\nFORGED KEY\"}\n";
        assert_eq!(
            one_line(event.as_bytes(), false),
            "WARN mdns_sd: TxtProperty {key: \"\\x1b[2J\\x07\\nFORGED KEY\"}\n"
        );
        // Raw ESC and BEL: escaped, but for the colours on a terminal.
        assert_eq!(
            one_line(b"\x1b[33mWARN\x1b[0m \x07a\r\tb\n", false),
            "\\u{1b}[33mWARN\\u{1b}[0m \\u{7}a\\r\\tb\n"
        );
        assert_eq!(
            one_line(b"\x1b[33mWARN\x1b[0m \x07a\n", true),
            "\x1b[33mWARN\x1b[0m \\u{7}a\n"
        );
        assert_eq!(one_line(b"no end", false), "no end");
    }

    #[test]
    fn journal_stream_parses_dev_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:12345\n"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("a:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn auto_uses_the_journal_only_when_stderr_is_that_stream() {
        let under_systemd = env(Some("8:100"), Some((8, 100)), false);
        assert_eq!(
            choose_sink(None, LogFormat::Auto, &under_systemd),
            Sink::Journald
        );
        // Inherited variable, but stderr was redirected to a file or pipe.
        let redirected = env(Some("8:100"), Some((8, 101)), false);
        assert_eq!(
            choose_sink(None, LogFormat::Auto, &redirected),
            Sink::Human { ansi: false }
        );
        let garbage = env(Some("journal"), Some((8, 100)), false);
        assert_eq!(
            choose_sink(None, LogFormat::Auto, &garbage),
            Sink::Human { ansi: false }
        );
        let unstattable = env(Some("8:100"), None, false);
        assert_eq!(
            choose_sink(None, LogFormat::Auto, &unstattable),
            Sink::Human { ansi: false }
        );
    }

    #[test]
    fn auto_on_a_terminal_is_coloured_human_lines() {
        let terminal = env(None, Some((5, 3)), true);
        assert_eq!(
            choose_sink(None, LogFormat::Auto, &terminal),
            Sink::Human { ansi: true }
        );
    }

    #[test]
    fn the_flag_wins_over_the_configuration() {
        let under_systemd = env(Some("8:100"), Some((8, 100)), false);
        assert_eq!(
            choose_sink(Some(LogFormat::Json), LogFormat::Journald, &under_systemd),
            Sink::Json
        );
        assert_eq!(
            choose_sink(Some(LogFormat::Human), LogFormat::Auto, &under_systemd),
            Sink::Human { ansi: false }
        );
        assert_eq!(
            choose_sink(Some(LogFormat::Auto), LogFormat::Json, &under_systemd),
            Sink::Journald
        );
        let terminal = env(None, None, true);
        assert_eq!(choose_sink(None, LogFormat::Json, &terminal), Sink::Json);
        assert_eq!(
            choose_sink(None, LogFormat::Journald, &terminal),
            Sink::Journald
        );
    }

    #[test]
    fn the_journal_gets_info_by_default_and_a_terminal_warnings() {
        assert_eq!(default_level(0, Sink::Journald), "info");
        assert_eq!(default_level(0, Sink::Human { ansi: true }), "warn");
        assert_eq!(default_level(0, Sink::Json), "warn");
        assert_eq!(default_level(1, Sink::Json), "info");
        assert_eq!(default_level(2, Sink::Journald), "debug");
    }
}
