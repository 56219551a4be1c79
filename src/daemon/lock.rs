//! One daemon per state directory: an advisory lock on
//! `STATE_DIR/daemon.lock`, held for the daemon's life and released by the
//! kernel however it ends (kill -9 included), so it is never stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::DaemonError;

pub const LOCK_NAME: &str = "daemon.lock";

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock of `state_dir` (made 0700 if missing).
///
/// # Errors
/// [`DaemonError::Locked`] when another process holds it;
/// [`DaemonError::Io`] when the directory or file cannot be made.
pub fn lock_state_dir(state_dir: &Path) -> Result<StateLock, DaemonError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(DaemonError::io(format!("creating {}", state_dir.display())))?;
    let path = state_dir.join(LOCK_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(DaemonError::io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(DaemonError::Locked { path }),
        Err(TryLockError::Error(e)) => Err(DaemonError::Io {
            context: format!("locking {}", path.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_dir_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = lock_state_dir(&state).unwrap();
        let err = lock_state_dir(&state).unwrap_err();
        assert!(matches!(err, DaemonError::Locked { .. }), "{err}");
        drop(first);
        lock_state_dir(&state).unwrap();
    }
}
