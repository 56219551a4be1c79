//! Private files: directories of mode 0700, files of mode 0600, written
//! atomically so that a crash or a full disk leaves the old file or the new
//! one, never half of one.
//!
//! A write goes to a fresh temporary file in the same directory (created
//! with `O_EXCL` and mode 0600 from the start, so the key is never readable
//! by others, not even for a moment), is flushed with `fsync`, renamed over
//! the target, and the directory is `fsync`ed so that the rename survives a
//! power cut.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::IdentityError;

/// Mode of every directory handoff keeps secrets in.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file handoff keeps secrets in.
pub const FILE_MODE: u32 = 0o600;

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

/// Writes `contents` to `dir/name` atomically, mode 0600. `dir` must exist.
///
/// # Errors
/// [`IdentityError::Io`] naming the file that failed; the temporary file is
/// removed.
pub fn write_private(dir: &Path, name: &str, contents: &[u8]) -> Result<(), IdentityError> {
    let target = dir.join(name);
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = write_then_rename(&temp, &target, contents);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IdentityError::io(dir, e))
}

fn write_then_rename(temp: &Path, target: &Path, contents: &[u8]) -> Result<(), IdentityError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(temp)
        .map_err(|e| IdentityError::io(temp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| IdentityError::io(temp, e))?;
    drop(file);
    fs::rename(temp, target).map_err(|e| IdentityError::io(target, e))
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
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| IdentityError::io(parent, e))?;
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
