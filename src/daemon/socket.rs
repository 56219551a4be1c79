//! Where the control socket lives, and taking it over from a daemon that
//! was killed: a socket file nobody answers on is stale and replaced; one
//! somebody answers on means another daemon runs, and this one refuses.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::DaemonError;

/// The socket's file name in the runtime directory.
pub const SOCKET_NAME: &str = "handoff.sock";

/// The socket file's mode: the daemon's user and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// The default runtime directory: `$RUNTIME_DIRECTORY` under systemd (the
/// first, if it lists several), else `$XDG_RUNTIME_DIR/handoff`, else the
/// state directory.
pub fn default_runtime_dir(state_dir: Option<&Path>) -> Option<PathBuf> {
    runtime_dir_from(
        std::env::var_os("RUNTIME_DIRECTORY").map(PathBuf::from),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        state_dir,
    )
}

fn runtime_dir_from(
    systemd: Option<PathBuf>,
    xdg: Option<PathBuf>,
    state_dir: Option<&Path>,
) -> Option<PathBuf> {
    let first = systemd.and_then(|d| {
        d.to_string_lossy()
            .split(':')
            .next()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    });
    first
        .or_else(|| {
            xdg.filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join("handoff"))
        })
        .or_else(|| state_dir.map(Path::to_path_buf))
}

/// The runtime directory of the system unit (`RuntimeDirectory=handoff`),
/// where a user's CLI looks for the daemon after its own runtime directory.
pub const SYSTEM_RUNTIME_DIR: &str = "/run/handoff";

/// Where a client looks for the daemon, in order: only `explicit` when
/// given (`--runtime-dir`); else the default runtime directory, then the
/// system unit's.
pub fn client_socket_paths(explicit: Option<&Path>, state_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![socket_path(dir)];
    }
    let mut paths: Vec<PathBuf> = default_runtime_dir(state_dir)
        .map(|d| socket_path(&d))
        .into_iter()
        .collect();
    let system = socket_path(Path::new(SYSTEM_RUNTIME_DIR));
    if !paths.contains(&system) {
        paths.push(system);
    }
    paths
}

/// The control socket in `runtime_dir`.
pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(SOCKET_NAME)
}

/// The bound socket file; removed when dropped, unless another daemon
/// replaced it meanwhile.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device, inode and change time: inode numbers are reused at once on
    /// tmpfs, the change time (of our chmod) tells a successor's file apart.
    identity: (u64, u64, i64, i64),
}

fn identity_of(m: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if identity_of(&m) == self.identity => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the control socket");
                }
            }
            _ => {}
        }
    }
}

/// Binds the control socket at `path` (mode 0660), replacing a stale one.
///
/// # Errors
/// [`DaemonError::AlreadyRunning`] when something answers on `path`;
/// [`DaemonError::NotASocket`] when `path` is another kind of file (never
/// deleted); [`DaemonError::Io`] when the directory or socket cannot be
/// made.
pub async fn bind(path: &Path) -> Result<(UnixListener, SocketFile), DaemonError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(DaemonError::io(format!("creating {}", dir.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(DaemonError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(DaemonError::AlreadyRunning {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing the stale control socket of a daemon that did not stop cleanly");
                std::fs::remove_file(path)
                    .map_err(DaemonError::io(format!("removing {}", path.display())))?;
            }
            Err(e) => {
                return Err(DaemonError::Io {
                    context: format!("checking {}", path.display()),
                    source: e,
                });
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(DaemonError::Io {
                context: format!("checking {}", path.display()),
                source: e,
            });
        }
    }
    let listener =
        UnixListener::bind(path).map_err(DaemonError::io(format!("binding {}", path.display())))?;
    let chmod = std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE));
    match chmod.and_then(|()| std::fs::symlink_metadata(path)) {
        Ok(meta) => Ok((
            listener,
            SocketFile {
                path: path.to_path_buf(),
                identity: identity_of(&meta),
            },
        )),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(DaemonError::Io {
                context: format!("setting the mode of {}", path.display()),
                source: e,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dir_prefers_systemd_then_xdg_then_state() {
        let state = Path::new("/var/lib/handoff");
        assert_eq!(
            runtime_dir_from(
                Some("/run/handoff:/run/other".into()),
                Some("/run/user/1".into()),
                Some(state)
            ),
            Some(PathBuf::from("/run/handoff"))
        );
        assert_eq!(
            runtime_dir_from(None, Some("/run/user/1".into()), Some(state)),
            Some(PathBuf::from("/run/user/1/handoff"))
        );
        assert_eq!(
            runtime_dir_from(Some("".into()), Some("".into()), Some(state)),
            Some(state.to_path_buf())
        );
        assert_eq!(runtime_dir_from(None, None, None), None);
    }

    #[test]
    fn a_client_looks_where_it_is_told_or_in_its_own_then_the_system_runtime_dir() {
        let mine = Path::new("/tmp/mine");
        assert_eq!(
            client_socket_paths(Some(mine), None),
            vec![PathBuf::from("/tmp/mine/handoff.sock")]
        );
        let paths = client_socket_paths(None, Some(mine));
        assert_eq!(
            paths.last(),
            Some(&PathBuf::from("/run/handoff/handoff.sock"))
        );
        assert!(paths.len() <= 2, "{paths:?}");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/handoff.sock");
        let (listener, file) = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        // Someone answers: refused, and the file is left alone.
        let err = bind(&path).await.unwrap_err();
        assert!(matches!(err, DaemonError::AlreadyRunning { .. }), "{err}");
        assert!(path.exists());
        // Killed without cleanup: the file stays, nobody listens.
        drop(listener);
        std::mem::forget(file);
        let (_listener, file) = bind(&path).await.unwrap();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.sock");
        std::fs::write(&path, b"precious").unwrap();
        let err = bind(&path).await.unwrap_err();
        assert!(matches!(err, DaemonError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn the_socket_of_a_successor_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.sock");
        let (listener, old) = bind(&path).await.unwrap();
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let (_l2, _new) = bind(&path).await.unwrap();
        drop(old);
        assert!(path.exists());
    }
}
