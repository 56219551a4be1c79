//! Where handoff keeps things by default: below the command line, because
//! the daemon and every command share these defaults.

use std::path::PathBuf;

/// The default state directory (the CLI's `--state-dir`): systemd's
/// `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/handoff`, else
/// `~/.local/state/handoff`.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir.to_string_lossy().split(':').next().map(PathBuf::from);
        if first.as_ref().is_some_and(|p| !p.as_os_str().is_empty()) {
            return first;
        }
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("handoff"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/handoff"))
}
