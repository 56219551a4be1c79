//! Writing a file whole or not at all: the one way handoff replaces a file,
//! whether it holds a key (the identity store, the cloud's authority, a
//! takeover's progress, a project file) or something anyone may read (a
//! `--manifest`, the man pages).
//!
//! A crash or a full disk must leave the old file or the new one, never half
//! of one, and a key must never be readable by others, not even for a
//! moment. So a write goes to a fresh temporary file in the same directory
//! (created with `O_EXCL`, already with its final mode), is flushed with
//! `fsync`, renamed over the target, and the directory is `fsync`ed so that
//! the rename survives a power cut. If any step fails the temporary file is
//! removed and the target is as it was.
//!
//! It has no dependencies inside the crate: the site side, the reference
//! cloud and the command line all write through it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode of every directory handoff keeps secrets in.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file handoff keeps secrets in.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode asked for a file anyone may read; the umask still applies.
const SHARED_FILE_MODE: u32 = 0o666;
/// Mode of a file every user may read, set past the umask.
const PUBLIC_FILE_MODE: u32 = 0o644;

/// Who may read the file once it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// Only its owner: mode 0600, from the first byte on.
    Owner,
    /// Whoever the umask lets: mode 0666 less the umask, as `File::create`.
    Anyone,
    /// Everyone, whatever the umask: mode 0644, for a file another
    /// service reads (the node exporter's textfile collector) written by
    /// a daemon whose unit sets `UMask=0077`.
    Everyone,
}

impl Readers {
    fn mode(self) -> u32 {
        match self {
            Readers::Owner => PRIVATE_FILE_MODE,
            Readers::Anyone => SHARED_FILE_MODE,
            Readers::Everyone => PUBLIC_FILE_MODE,
        }
    }
}

/// A write that failed, naming the file or directory that refused it (the
/// temporary file, the target, or the directory).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct AtomicFileError {
    /// What the failing step worked on.
    pub path: PathBuf,
    /// What the system said.
    #[source]
    pub source: std::io::Error,
}

impl AtomicFileError {
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| AtomicFileError {
            path: path.to_owned(),
            source,
        }
    }
}

/// The bare system error, for callers that say themselves which file it was.
impl From<AtomicFileError> for std::io::Error {
    fn from(e: AtomicFileError) -> Self {
        e.source
    }
}

/// Writes `contents` to `path` atomically; its directory must exist (a
/// path without one is in the current directory).
///
/// # Errors
/// [`AtomicFileError`] naming the step's file; the temporary file is removed
/// and `path` is untouched.
pub fn write(path: &Path, contents: &[u8], readers: Readers) -> Result<(), AtomicFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| AtomicFileError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let temp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        name.to_string_lossy(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = write_then_rename(&temp, path, contents, readers);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

fn write_then_rename(
    temp: &Path,
    target: &Path,
    contents: &[u8],
    readers: Readers,
) -> Result<(), AtomicFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(readers.mode())
        .open(temp)
        .map_err(AtomicFileError::at(temp))?;
    if readers == Readers::Everyone {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(PUBLIC_FILE_MODE))
            .map_err(AtomicFileError::at(temp))?;
    }
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(AtomicFileError::at(temp))?;
    drop(file);
    fs::rename(temp, target).map_err(AtomicFileError::at(target))
}

/// `fsync`s a directory so that a rename or removal in it is durable.
///
/// # Errors
/// [`AtomicFileError`] naming `dir`.
pub fn sync_dir(dir: &Path) -> Result<(), AtomicFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AtomicFileError::at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write(&path, b"first", Readers::Anyone).unwrap();
        write(&path, b"second", Readers::Anyone).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["m.json"]);
    }

    #[test]
    fn a_private_file_is_0600_even_when_it_replaces_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"secret", Readers::Owner).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn a_shared_file_takes_the_umask_not_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write(&path, b"[]", Readers::Anyone).unwrap();
        // Whatever the umask, a file anyone may read is readable by its owner
        // and was not created 0600 unless the umask says so.
        let created = mode(&path);
        let probe = dir.path().join("probe");
        File::create(&probe).unwrap();
        assert_eq!(created, mode(&probe));
    }

    #[test]
    fn a_missing_directory_fails_naming_the_temporary_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/m.json");
        let e = write(&path, b"x", Readers::Owner).unwrap_err();
        assert!(e.path.starts_with(dir.path().join("no/such")), "{e}");
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_failed_rename_leaves_the_target_as_it_was_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory at the target: the rename over it fails
        // after the temporary file was written in full.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"precious").unwrap();
        let e = write(&path, b"new", Readers::Owner).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert_eq!(names(dir.path()), ["taken"]);
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"precious");
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let e = write(Path::new("/"), b"x", Readers::Anyone).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_bare_system_error_is_what_io_callers_see() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(&dir.path().join("a/b"), b"x", Readers::Anyone).unwrap_err();
        let io: std::io::Error = e.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
