//! Reading the configuration file: where it is, its size and encoding,
//! and where in the text a mistake is (line, column, dotted key), so that
//! an error names what to fix. The schema itself is [`super`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{CONFIG_FILE_NAME, Config, ConfigSource, DEFAULT_CONFIG_PATH};

/// Configuration files are small; a bigger one is a mistake (or a device).
pub(super) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

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

/// Reads the TOML file `path` (it must exist) as `T`.
///
/// # Errors
/// See [`ConfigError`].
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    super::parse_toml(&read_limited(path)?, path)
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
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
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
pub(super) fn key_at(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<String> {
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
