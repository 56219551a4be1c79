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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod load;

pub use load::{ConfigError, default_config_path, default_config_path_from, load, load_toml};
use load::{key_at, line_column};

/// Parses a TOML file's text as `T`; `path` only names it in errors. The
/// site daemon's configuration and `cloud serve --config` both read
/// through it, so a mistake is told the same way in both.
///
/// # Errors
/// [`ConfigError::Invalid`] with the line, column and key of the first
/// mistake: an unknown key, a value of the wrong type, a bad duration or
/// address, broken TOML.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
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

use crate::discovery::MIN_LIVENESS;
use crate::identity::PAIRING_IDENTITY_DIR;
pub use crate::relay::address::{CloudAddress, CloudAddresses};

/// Where the configuration lives when neither systemd nor `--config` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/handoff/handoff.toml";

/// The file name inside `$CONFIGURATION_DIRECTORY`.
pub const CONFIG_FILE_NAME: &str = "handoff.toml";

/// The cloud enrollment bundle's directory under the state directory, when
/// `[cloud] identity` is not set.
pub const CLOUD_IDENTITY_DIR: &str = "cloud-identity";

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
    /// The group whose members may ask the daemon to act (claim, release,
    /// takeover, reload); others who may open the socket keep discover,
    /// status and health. `None`: whoever may open the socket may act.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act_group: Option<String>,
    pub cloud: CloudConfig,
    pub metrics: MetricsConfig,
}

/// The `[cloud]` table: where events are relayed, and as whom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// `host:port` of the cloud access layer, or several nodes of one
    /// Place service to fail over between (a list, or "A,B"); `None` =
    /// relay disabled (events wait in the outbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<CloudAddresses>,
    /// The enrollment bundle's directory; `None` = `STATE_DIR/cloud-identity`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "absolute_path"
    )]
    pub identity: Option<PathBuf>,
}

/// The `[metrics]` table: where the Prometheus metrics are published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The node exporter's textfile collector file (`*.prom`); `None` =
    /// no file.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "textfile_path"
    )]
    pub textfile: Option<PathBuf>,
    /// How often the textfile is replaced.
    #[serde(
        serialize_with = "duration::serialize",
        deserialize_with = "nonzero_duration"
    )]
    pub textfile_interval: Duration,
    /// A loopback `address:port` serving `GET /metrics`; `None` = none.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "loopback_address"
    )]
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            textfile: None,
            textfile_interval: crate::daemon::metrics::DEFAULT_TEXTFILE_INTERVAL,
            listen: None,
        }
    }
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
            act_group: None,
            cloud: CloudConfig::default(),
            metrics: MetricsConfig::default(),
        }
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

/// An absolute path ending in `.prom`, the only files the textfile
/// collector reads.
fn textfile_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = absolute_path(d)?;
    if let Some(p) = &path {
        crate::metrics::check_textfile_path(p).map_err(serde::de::Error::custom)?;
    }
    Ok(path)
}

/// `address:port` on loopback.
fn loopback_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "'{}' is not an address:port like \"127.0.0.1:9721\"",
            text.escape_debug()
        ))
    })?;
    crate::metrics::check_loopback(addr).map_err(serde::de::Error::custom)?;
    Ok(Some(addr))
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
        parse_toml(text, path)
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
            act_group: self.act_group.clone(),
            metrics: self.metrics.clone(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act_group: Option<String>,
    pub cloud: EffectiveCloud,
    pub metrics: MetricsConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveCloud {
    /// `None`: the relay is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<CloudAddresses>,
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

#[cfg(test)]
mod tests;
