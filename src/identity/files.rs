//! Private files: directories of mode 0700, files of mode 0600, written
//! through [`crate::atomic_file`] so that a crash or a full disk leaves the
//! old file or the new one, never half of one; read only after their modes
//! were checked.

use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::IdentityError;
use crate::atomic_file::{self, Readers};

/// Mode of every directory handoff keeps secrets in.
pub use crate::atomic_file::PRIVATE_DIR_MODE as DIR_MODE;
/// Mode of every file handoff keeps secrets in.
pub use crate::atomic_file::PRIVATE_FILE_MODE as FILE_MODE;

/// Creates `dir` (and missing parents) with mode 0700, or checks that an
/// existing one is not open to others.
///
/// # Errors
/// [`IdentityError::Io`] if it cannot be created,
/// [`IdentityError::Permissions`] if it exists and group or others may use it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), IdentityError> {
    match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
        Ok(()) => check_mode(dir, DIR_MODE),
        Err(e) => Err(IdentityError::io(dir, e)),
    }
}

/// Checks that `path` exists and is not open to group or others.
///
/// # Errors
/// [`IdentityError::Missing`] (with `hint`), [`IdentityError::Permissions`],
/// or [`IdentityError::Io`].
pub fn check_private(path: &Path, expected: u32, hint: &'static str) -> Result<(), IdentityError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Err(IdentityError::Missing {
            path: path.to_owned(),
            hint,
        }),
        Err(e) => Err(IdentityError::io(path, e)),
        Ok(_) => check_mode(path, expected),
    }
}

fn check_mode(path: &Path, expected: u32) -> Result<(), IdentityError> {
    let meta = fs::metadata(path).map_err(|e| IdentityError::io(path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_owned(),
            mode,
            expected,
        });
    }
    Ok(())
}

/// Writes `contents` to `dir/name` atomically, mode 0600 (see
/// [`crate::atomic_file`]). `dir` must exist.
///
/// # Errors
/// [`IdentityError::Io`] naming the file that failed; the temporary file is
/// removed.
pub fn write_private(dir: &Path, name: &str, contents: &[u8]) -> Result<(), IdentityError> {
    atomic_file::write(&dir.join(name), contents, Readers::Owner).map_err(IdentityError::from)
}

/// Reads a private text file after checking its mode.
///
/// # Errors
/// As [`check_private`], plus [`IdentityError::Corrupt`] if it is not UTF-8.
pub fn read_private(path: &Path, hint: &'static str) -> Result<String, IdentityError> {
    check_private(path, FILE_MODE, hint)?;
    let bytes = fs::read(path).map_err(|e| IdentityError::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| IdentityError::Corrupt {
        path: path.to_owned(),
        reason: "it is not text (PEM)".to_owned(),
    })
}

/// Removes `dir` and everything in it; `Ok(false)` if it was not there.
///
/// # Errors
/// [`IdentityError::Io`].
pub fn remove_dir(dir: &Path) -> Result<bool, IdentityError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                atomic_file::sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IdentityError::io(dir, e)),
    }
}

pub(crate) fn corrupt(path: PathBuf, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Corrupt {
        path,
        reason: reason.to_string(),
    }
}
