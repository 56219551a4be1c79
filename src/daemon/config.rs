//! The site daemon's configuration: one TOML file, every key optional.
//!
//! The file is `/etc/handoff/handoff.toml`, or `handoff.toml` in
//! `$CONFIGURATION_DIRECTORY` when systemd runs us with
//! `ConfigurationDirectory=`, or whatever `--config FILE` names. A missing
//! default file means "all defaults" (a fresh box works without one); a
//! missing explicit file is an error, because somebody meant a file.
//!
//! Mistakes are refused, not ignored: an unknown key (a typo such as
//! `button_timout`) or a value of the wrong kind is an error naming the key
//! and its line, so a setting never silently falls back to its default.
//! `handoff.example.toml` at the top of the repository documents every key
//! with its default; a test keeps it equal to [`Config::default`].

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::discovery::MIN_LIVENESS;
use crate::identity::PAIRING_IDENTITY_DIR;

/// Where the configuration lives when neither systemd nor `--config` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/handoff/handoff.toml";

/// The file name inside `$CONFIGURATION_DIRECTORY`.
pub const CONFIG_FILE_NAME: &str = "handoff.toml";

/// The cloud enrollment bundle's directory under the state directory, when
/// `[cloud] identity` is not set.
pub const CLOUD_IDENTITY_DIR: &str = "cloud-identity";

/// Configuration files are small; a bigger one is a mistake (or a device).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Errors reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: no such configuration file", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_CONFIG_BYTES} bytes; is this a configuration file?", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}", invalid_line(path, *line, *column, key.as_deref(), message))]
    Invalid {
        path: PathBuf,
        /// 1-based; 0 when the parser could not say where.
        line: usize,
        column: usize,
        /// The dotted key the mistake is about, when it can be told.
        key: Option<String>,
        message: String,
    },
}

fn invalid_line(
    path: &Path,
    line: usize,
    column: usize,
    key: Option<&str>,
    message: &str,
) -> String {
    let mut out = path.display().to_string();
    if line > 0 {
        out.push_str(&format!(":{line}:{column}"));
    }
    if let Some(key) = key.filter(|_| !message.starts_with("unknown key")) {
        out.push_str(&format!(": key `{key}`"));
    }
    out.push_str(": ");
    out.push_str(message);
    out
}

/// How log lines are written (see `daemon::logging`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald under systemd, else human lines
    #[default]
    Auto,
    /// one human line per event (colours on a terminal)
    Human,
    /// one JSON object per line
    Json,
    /// structured entries to the systemd journal
    Journald,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Human => "human",
            LogFormat::Json => "json",
            LogFormat::Journald => "journald",
        }
    }
}

/// The configuration file, as written: optional paths stay `None` until
/// [`Config::resolve`] fills them from the state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Interfaces to browse on; empty = the automatic choice of
    /// `lan::choose_interfaces`.
    #[serde(deserialize_with = "interface_names")]
    pub interfaces: Vec<String>,
    /// `None` = `dirs::default_state_dir()`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "absolute_path"
    )]
    pub state_dir: Option<PathBuf>,
    /// The identity presented on processors' pairing port; `None` =
    /// `STATE_DIR/pairing-identity`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "absolute_path"
    )]
    pub pairing_identity: Option<PathBuf>,
    /// How long a claim waits for the button press.
    #[serde(
        serialize_with = "duration::serialize",
        deserialize_with = "nonzero_duration"
    )]
    pub button_timeout: Duration,
    /// A processor that has not answered for this long is removed.
    #[serde(serialize_with = "duration::serialize", deserialize_with = "liveness")]
    pub liveness: Duration,
    pub log_format: LogFormat,
    /// `handoff health` fails when the oldest unsent event is older.
    #[serde(
        serialize_with = "duration::serialize",
        deserialize_with = "nonzero_duration"
    )]
    pub relay_stuck_after: Duration,
    pub cloud: CloudConfig,
}

/// The `[cloud]` table: where events are relayed, and as whom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// `host:port` of the cloud access layer; `None` = relay disabled
    /// (events wait in the outbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<CloudAddress>,
    /// The enrollment bundle's directory; `None` = `STATE_DIR/cloud-identity`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "absolute_path"
    )]
    pub identity: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interfaces: Vec::new(),
            state_dir: None,
            pairing_identity: None,
            button_timeout: Duration::from_secs(180),
            liveness: Duration::from_secs(30),
            log_format: LogFormat::Auto,
            relay_stuck_after: Duration::from_secs(600),
            cloud: CloudConfig::default(),
        }
    }
}

/// A `host:port` pair; the host is a name, an IPv4 address or a bracketed
/// IPv6 address (`[2001:db8::1]:4433`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudAddress {
    pub host: String,
    pub port: u16,
}

impl FromStr for CloudAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{}' is not host:port ({why})", s.escape_debug());
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| bad("unclosed '['"))?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            inner
        } else {
            if host.contains(':') {
                return Err(bad("write an IPv6 address in brackets: [2001:db8::1]:4433"));
            }
            host
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'));
        if !name_ok {
            return Err(bad("not a host name or address"));
        }
        Ok(CloudAddress {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for CloudAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for CloudAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CloudAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Durations as humantime strings (`"180s"`, `"10m"`, `"1h 30m"`).
mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "'{}' is not a duration like \"30s\", \"10m\" or \"1h 30m\": {e}",
                s.escape_debug()
            ))
        })
    }
}

/// Interface names as the kernel allows them (1 to 15 bytes, no `/`,
/// no whitespace), each once.
fn interface_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    for (i, name) in names.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= 15
            && !name.contains('/')
            && !name.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "'{}' is not an interface name (1 to 15 characters, no '/' or spaces), e.g. \"eth0\"",
                name.escape_debug()
            )));
        }
        if names[..i].contains(name) {
            return Err(serde::de::Error::custom(format!(
                "'{}' is listed twice",
                name.escape_debug()
            )));
        }
    }
    Ok(names)
}

/// Paths in a service's configuration are absolute: a relative one would
/// depend on the working directory, which systemd sets to `/`.
fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if !path.is_absolute() {
        return Err(serde::de::Error::custom(format!(
            "'{}' is not an absolute path",
            path.display().to_string().escape_debug()
        )));
    }
    Ok(Some(path))
}

fn nonzero_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = duration::deserialize(d)?;
    if value.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(value)
}

fn liveness<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = duration::deserialize(d)?;
    if value < MIN_LIVENESS {
        return Err(serde::de::Error::custom(format!(
            "must be at least {}: each check gives processors a third of it to answer",
            humantime::format_duration(MIN_LIVENESS)
        )));
    }
    Ok(value)
}

impl Config {
    /// Parses a configuration's text; `path` only names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the line, column and key of the first
    /// mistake: an unknown key, a value of the wrong type, a bad duration
    /// or address, broken TOML.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column, key) = match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    (line, column, key_at(text, span, e.message()))
                }
                None => (0, 0, None),
            };
            let mut message = e.message().trim_end().to_string();
            // serde says "unknown field `adress`"; name the whole key.
            if let (Some(rest), Some(key)) = (message.strip_prefix("unknown field `"), &key) {
                let rest = rest.split_once('`').map_or("", |(_, after)| after);
                message = format!("unknown key `{key}`{rest}");
            }
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message,
            }
        })
    }

    /// Fills the defaults that depend on the machine: the state directory
    /// (`state_dir_flag` from the command line wins over the file) and the
    /// identity directories under it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when no state directory can be found.
    pub fn resolve(
        &self,
        state_dir_flag: Option<PathBuf>,
        source: &ConfigSource,
    ) -> Result<EffectiveConfig, ConfigError> {
        let state_dir = state_dir_flag
            .or_else(|| self.state_dir.clone())
            .or_else(crate::dirs::default_state_dir)
            .ok_or_else(|| ConfigError::Invalid {
                path: source.path().to_path_buf(),
                line: 0,
                column: 0,
                key: Some("state_dir".into()),
                message: "no state directory: set state_dir, --state-dir, HOME or XDG_STATE_HOME"
                    .into(),
            })?;
        Ok(EffectiveConfig {
            interfaces: self.interfaces.clone(),
            pairing_identity: self
                .pairing_identity
                .clone()
                .unwrap_or_else(|| state_dir.join(PAIRING_IDENTITY_DIR)),
            button_timeout: self.button_timeout,
            liveness: self.liveness,
            log_format: self.log_format,
            relay_stuck_after: self.relay_stuck_after,
            cloud: EffectiveCloud {
                address: self.cloud.address.clone(),
                identity: self
                    .cloud
                    .identity
                    .clone()
                    .unwrap_or_else(|| state_dir.join(CLOUD_IDENTITY_DIR)),
            },
            state_dir,
        })
    }
}

/// The configuration with every default filled in: what the daemon runs
/// with, and what `handoff config check` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveConfig {
    pub interfaces: Vec<String>,
    pub state_dir: PathBuf,
    pub pairing_identity: PathBuf,
    #[serde(with = "duration")]
    pub button_timeout: Duration,
    #[serde(with = "duration")]
    pub liveness: Duration,
    pub log_format: LogFormat,
    #[serde(with = "duration")]
    pub relay_stuck_after: Duration,
    pub cloud: EffectiveCloud,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveCloud {
    /// `None`: the relay is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<CloudAddress>,
    pub identity: PathBuf,
}

/// Which file a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Named with `--config` (or `config check FILE`).
    Explicit(PathBuf),
    /// The default location, and the file exists.
    Default(PathBuf),
    /// The default location, and there is no file: all defaults.
    DefaultMissing(PathBuf),
}

impl ConfigSource {
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Explicit(p)
            | ConfigSource::Default(p)
            | ConfigSource::DefaultMissing(p) => p,
        }
    }
}

/// The default configuration file: `$CONFIGURATION_DIRECTORY/handoff.toml`
/// under systemd (the first directory when it lists several), else
/// `/etc/handoff/handoff.toml`.
pub fn default_config_path() -> PathBuf {
    default_config_path_from(std::env::var_os("CONFIGURATION_DIRECTORY").as_deref())
}

/// [`default_config_path`] with the environment passed in.
pub fn default_config_path_from(configuration_directory: Option<&OsStr>) -> PathBuf {
    configuration_directory
        .and_then(|dirs| {
            dirs.to_string_lossy()
                .split(':')
                .next()
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(CONFIG_FILE_NAME))
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Reads the configuration: `explicit` if given (it must exist), else the
/// default file if it exists, else all defaults.
///
/// # Errors
/// See [`ConfigError`]; a missing default file is not one.
pub fn load(explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    let (path, explicit) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (default_config_path(), false),
    };
    let text = match read_limited(&path) {
        Ok(text) => text,
        Err(ConfigError::Missing { path }) if !explicit => {
            tracing::debug!(path = %path.display(), "no configuration file; using the defaults");
            return Ok((Config::default(), ConfigSource::DefaultMissing(path)));
        }
        Err(e) => return Err(e),
    };
    let config = Config::parse(&text, &path)?;
    tracing::debug!(path = %path.display(), "configuration read");
    let source = if explicit {
        ConfigSource::Explicit(path)
    } else {
        ConfigSource::Default(path)
    };
    Ok((config, source))
}

fn read_limited(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|_| ConfigError::NotText {
        path: path.to_path_buf(),
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The dotted key an error is about. toml points an unknown key's error at
/// the key itself, and a bad value's error at the value: the key is then
/// what precedes `=` on that line. The table is the last `[header]` above.
fn key_at(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<String> {
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let end = floor_char_boundary(text, span.end.min(text.len())).max(start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let key = if message.starts_with("unknown field") {
        text[start..end].trim().trim_matches('"').to_string()
    } else {
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
            return None;
        }
        key.to_string()
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        if l.starts_with("[[") {
            return None;
        }
        l.strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .map(|(name, _)| name.trim().to_string())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_even_when_the_value_holds_a_newline() {
        // Found by the `config` fuzz target: the value was echoed raw, so
        // a crafted file could add lines to the log.
        for text in [
            "[cloud]\naddress = \"evil\\nhost:4433\"\n",
            "liveness = \"3\\nfortnights\"\n",
            "state_dir = \"rel\\native\"\n",
        ] {
            let Err(err) = Config::parse(text, Path::new("/etc/handoff/handoff.toml")) else {
                panic!("accepted: {text:?}");
            };
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message:?}");
        }
    }

    const EXAMPLE: &str = include_str!("../../handoff.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    fn invalid(text: &str) -> (usize, usize, Option<String>, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line,
                column,
                key,
                message,
                ..
            }) => (line, column, key, message),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_means_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# only a comment\n\n").unwrap(), Config::default());
    }

    #[test]
    fn example_file_equals_the_defaults() {
        assert_eq!(parse(EXAMPLE).unwrap(), Config::default());
    }

    /// Every key of the configuration appears in the example file, set or
    /// commented out, in its table, and a commented-out value is valid.
    #[test]
    fn example_file_documents_every_key() {
        let full = Config {
            state_dir: Some("/s".into()),
            pairing_identity: Some("/p".into()),
            interfaces: vec!["eth0".into()],
            cloud: CloudConfig {
                address: Some("cloud.example:4433".parse().unwrap()),
                identity: Some("/c".into()),
            },
            ..Config::default()
        };
        let table = toml::Table::try_from(&full).unwrap();
        let mut keys = Vec::new();
        for (k, v) in &table {
            match v.as_table() {
                Some(sub) => keys.extend(sub.keys().map(|s| (Some(k.clone()), s.clone()))),
                None => keys.push((None, k.clone())),
            }
        }
        assert!(keys.len() >= 9, "{keys:?}");
        for (section, key) in keys {
            let mut current: Option<String> = None;
            let mut found = None;
            for line in EXAMPLE.lines() {
                let l = line.trim();
                if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    current = Some(name.to_string());
                    continue;
                }
                let uncommented = l.trim_start_matches('#').trim_start();
                if current == section && uncommented.starts_with(&format!("{key} = ")) {
                    found = Some(uncommented.to_string());
                }
            }
            let line =
                found.unwrap_or_else(|| panic!("{section:?} {key} missing from the example"));
            // The documented value is a valid value for that key.
            let text = match &section {
                Some(s) => format!("[{s}]\n{line}\n"),
                None => format!("{line}\n"),
            };
            parse(&text).unwrap_or_else(|e| panic!("example line `{line}` does not parse: {e}"));
        }
    }

    #[test]
    fn keys_parse_to_their_values() {
        let c = parse(
            "interfaces = [\"eth0\", \"wlan0\"]\nstate_dir = \"/var/lib/x\"\n\
             button_timeout = \"2m\"\nliveness = \"1m 30s\"\nlog_format = \"json\"\n\
             relay_stuck_after = \"1h\"\n[cloud]\naddress = \"[2001:db8::1]:4433\"\n\
             identity = \"/etc/handoff/cloud\"\n",
        )
        .unwrap();
        assert_eq!(c.interfaces, ["eth0", "wlan0"]);
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/x")));
        assert_eq!(c.button_timeout, Duration::from_secs(120));
        assert_eq!(c.liveness, Duration::from_secs(90));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.relay_stuck_after, Duration::from_secs(3600));
        let address = c.cloud.address.unwrap();
        assert_eq!((address.host.as_str(), address.port), ("2001:db8::1", 4433));
        assert_eq!(address.to_string(), "[2001:db8::1]:4433");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let (line, column, key, message) =
            invalid("liveness = \"30s\"\n\nbutton_timout = \"60s\"\n");
        assert_eq!((line, column), (3, 1));
        assert_eq!(key.as_deref(), Some("button_timout"));
        assert!(
            message.starts_with("unknown key `button_timout`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_in_a_table_is_named_with_the_table() {
        let (line, _, key, _) = invalid("[cloud]\naddress = \"c.example:443\"\nadress = \"x:1\"\n");
        assert_eq!(line, 3);
        assert_eq!(key.as_deref(), Some("cloud.adress"));
        let err = parse("[cloud]\nadress = \"x:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "test.toml:2:1: unknown key `cloud.adress`, expected `address` or `identity`"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_table_is_refused() {
        let (line, _, key, _) = invalid("liveness = \"30s\"\n[clod]\naddress = \"x:1\"\n");
        assert_eq!(line, 2);
        assert_eq!(key.as_deref(), Some("clod"));
    }

    #[test]
    fn bad_duration_is_refused_with_key_and_line() {
        let (line, column, key, message) = invalid("# c\nbutton_timeout = \"three minutes\"\n");
        assert_eq!((line, column), (2, 18));
        assert_eq!(key.as_deref(), Some("button_timeout"));
        assert!(message.contains("three minutes"), "{message}");
        // A bare number is not a duration either: the unit must be said.
        let (_, _, key, _) = invalid("relay_stuck_after = \"600\"\n");
        assert_eq!(key.as_deref(), Some("relay_stuck_after"));
        let (_, _, key, _) = invalid("button_timeout = \"0s\"\n");
        assert_eq!(key.as_deref(), Some("button_timeout"));
    }

    #[test]
    fn liveness_below_the_minimum_is_refused() {
        let (line, _, key, message) = invalid("liveness = \"2s\"\n");
        assert_eq!(line, 1);
        assert_eq!(key.as_deref(), Some("liveness"));
        assert!(message.contains("at least 6s"), "{message}");
        assert_eq!(parse("liveness = \"6s\"\n").unwrap().liveness, MIN_LIVENESS);
    }

    #[test]
    fn bad_address_is_refused_with_key_and_line() {
        for bad in [
            "cloud.example.com",
            "cloud.example.com:0",
            "cloud.example.com:99999",
            ":4433",
            "2001:db8::1:4433",
            "[2001:db8::zz]:4433",
            "bad host:4433",
        ] {
            let (line, _, key, message) = invalid(&format!("\n[cloud]\naddress = \"{bad}\"\n"));
            assert_eq!(line, 3, "{bad}");
            assert_eq!(key.as_deref(), Some("cloud.address"), "{bad}");
            assert!(message.contains("host:port"), "{bad}: {message}");
        }
        for good in ["cloud.example.com:4433", "192.0.2.7:443", "[::1]:4433"] {
            let text = format!("[cloud]\naddress = \"{good}\"\n");
            let address = parse(&text).unwrap().cloud.address.unwrap();
            assert_eq!(address.to_string(), good);
        }
    }

    #[test]
    fn wrong_type_is_refused_with_key_and_line() {
        let (line, _, key, message) = invalid("interfaces = \"eth0\"\n");
        assert_eq!(line, 1);
        assert_eq!(key.as_deref(), Some("interfaces"));
        assert!(
            message.contains("sequence") || message.contains("array"),
            "{message}"
        );
        let (_, _, key, _) = invalid("log_format = \"xml\"\n");
        assert_eq!(key.as_deref(), Some("log_format"));
        let (_, _, key, _) = invalid("button_timeout = 180\n");
        assert_eq!(key.as_deref(), Some("button_timeout"));
    }

    #[test]
    fn bad_interface_names_and_relative_paths_are_refused() {
        for bad in [
            "\"\"",
            "\"eth 0\"",
            "\"a/b\"",
            "\"averyveryverylongname\"",
            "\"eth0\", \"eth0\"",
        ] {
            let (line, _, key, _) = invalid(&format!("\ninterfaces = [{bad}]\n"));
            assert_eq!((line, key.as_deref()), (2, Some("interfaces")), "{bad}");
        }
        let (_, _, key, message) = invalid("state_dir = \"var/lib/handoff\"\n");
        assert_eq!(key.as_deref(), Some("state_dir"));
        assert!(message.contains("absolute"), "{message}");
        let (_, _, key, _) = invalid("[cloud]\nidentity = \"bundle\"\n");
        assert_eq!(key.as_deref(), Some("cloud.identity"));
        let (_, _, key, _) = invalid("pairing_identity = \"./p\"\n");
        assert_eq!(key.as_deref(), Some("pairing_identity"));
    }

    #[test]
    fn broken_toml_is_refused_with_its_line() {
        let (line, _, _, _) = invalid("liveness = \"30s\"\nbutton_timeout = \"3s\n");
        assert_eq!(line, 2);
    }

    #[test]
    fn default_path_follows_configuration_directory() {
        assert_eq!(
            default_config_path_from(None),
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            default_config_path_from(Some(OsStr::new("/etc/handoff:/etc/other"))),
            PathBuf::from("/etc/handoff/handoff.toml")
        );
        assert_eq!(
            default_config_path_from(Some(OsStr::new(""))),
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        assert!(matches!(
            load(Some(&path)),
            Err(ConfigError::Missing { .. })
        ));
    }

    #[test]
    fn explicit_file_is_read_and_oversized_or_binary_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(&path, "liveness = \"1m\"\n").unwrap();
        let (config, source) = load(Some(&path)).unwrap();
        assert_eq!(config.liveness, Duration::from_secs(60));
        assert_eq!(source, ConfigSource::Explicit(path.clone()));
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        assert!(matches!(
            load(Some(&path)),
            Err(ConfigError::NotText { .. })
        ));
        std::fs::write(&path, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert!(matches!(
            load(Some(&path)),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn resolve_fills_directories_under_the_state_dir() {
        let source = ConfigSource::DefaultMissing(DEFAULT_CONFIG_PATH.into());
        let config = Config {
            state_dir: Some("/var/lib/handoff".into()),
            ..Config::default()
        };
        let e = config.resolve(None, &source).unwrap();
        assert_eq!(e.state_dir, PathBuf::from("/var/lib/handoff"));
        assert_eq!(
            e.pairing_identity,
            PathBuf::from("/var/lib/handoff/pairing-identity")
        );
        assert_eq!(
            e.cloud.identity,
            PathBuf::from("/var/lib/handoff/cloud-identity")
        );
        // The command line wins over the file.
        let e = config.resolve(Some("/tmp/x".into()), &source).unwrap();
        assert_eq!(e.state_dir, PathBuf::from("/tmp/x"));
    }
}
