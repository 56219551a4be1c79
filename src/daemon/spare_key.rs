//! A key pair kept ready for the daemon's next claim.
//!
//! An RSA-2048 key takes tens of milliseconds to make, more than the rest
//! of a claim whose button is already pressed. The daemon therefore makes
//! the next one in the background, as soon as it starts and after every
//! use, and keeps it in a private file (0600 in a 0700 directory, written
//! atomically) so that it also survives a restart. A key is never used
//! twice: it is read and its file removed (and the removal made durable)
//! before anyone gets it, under a lock, so two claims at once cannot both
//! read it; the second makes its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::identity::{KeyAlgorithm, PrivateKey, files};

/// The file the ready key is kept in, inside [`SpareKey::dir`].
const FILE: &str = "next-key.pem";

/// Errors of keeping a key ready. None reaches a client: a claim without a
/// ready key makes one, as a command-line claim does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpareKeyError {
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("cannot remove the used key {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The key kept ready, and the directory it is kept in.
pub struct SpareKey {
    dir: PathBuf,
    algorithm: KeyAlgorithm,
    /// Whether a key is being made now: one at a time.
    filling: Arc<AtomicBool>,
    /// Held from reading the file to removing it.
    taking: Mutex<()>,
}

impl SpareKey {
    /// Keys of `algorithm` kept in `dir` (made on first use, 0700).
    pub fn new(dir: PathBuf, algorithm: KeyAlgorithm) -> SpareKey {
        SpareKey {
            dir,
            algorithm,
            filling: Arc::new(AtomicBool::new(false)),
            taking: Mutex::new(()),
        }
    }

    /// Where a daemon with this state directory keeps its ready key.
    pub fn dir_in(state_dir: &Path) -> PathBuf {
        state_dir.join("spare-key")
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Starts making a key in the background unless one is ready or being
    /// made. Returns the task (tests wait for it). Must run inside a tokio
    /// runtime.
    pub fn fill(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.path().exists() || self.filling.swap(true, Ordering::AcqRel) {
            return None;
        }
        let (dir, algorithm, filling) = (self.dir.clone(), self.algorithm, self.filling.clone());
        Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = make(&dir, algorithm) {
                tracing::warn!("cannot keep a key ready for the next claim: {e}");
            }
            filling.store(false, Ordering::Release);
        }))
    }

    /// The ready key, if there is one of `algorithm`, which nobody else
    /// will get: its file is gone (durably) before it is returned. Starts
    /// making the next one. `None` when none is ready (the caller makes
    /// one) or it cannot be read or removed (logged; it is not used).
    pub fn take(&self, algorithm: KeyAlgorithm) -> Option<PrivateKey> {
        if algorithm != self.algorithm {
            return None;
        }
        let key = {
            let _one_at_a_time = self.taking.lock().unwrap_or_else(|e| e.into_inner());
            match self.read_and_remove() {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!("the key kept ready is not used: {e}");
                    None
                }
            }
        };
        self.fill();
        key
    }

    fn read_and_remove(&self) -> Result<Option<PrivateKey>, SpareKeyError> {
        let path = self.path();
        if !path.exists() {
            return Ok(None);
        }
        let pem = files::read_private(&path, "the daemon makes it again");
        // Removed whatever it holds: a key that was read once is not
        // offered again, even one that turned out unreadable.
        std::fs::remove_file(&path).map_err(|source| SpareKeyError::Remove {
            path: path.clone(),
            source,
        })?;
        crate::atomic_file::sync_dir(&self.dir).map_err(crate::identity::IdentityError::from)?;
        let key = PrivateKey::from_pem(pem?.as_str())?;
        Ok((key.algorithm() == Some(self.algorithm)).then_some(key))
    }
}

/// Makes a key and writes it, 0600 in a 0700 directory, atomically.
fn make(dir: &Path, algorithm: KeyAlgorithm) -> Result<(), SpareKeyError> {
    let key = PrivateKey::generate(algorithm)?;
    files::ensure_private_dir(dir)?;
    files::write_private(dir, FILE, key.to_pem().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn a_ready_key_is_private_and_never_given_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let spare = SpareKey::new(SpareKey::dir_in(tmp.path()), KeyAlgorithm::EcdsaP256);
        // None made yet: this take starts making one.
        assert!(spare.take(KeyAlgorithm::EcdsaP256).is_none());
        wait_for_file(&spare).await;
        assert_eq!(mode(&spare.dir), 0o700);
        assert_eq!(mode(&spare.path()), 0o600);
        // Nothing but the key: no temporary file left beside it.
        assert_eq!(std::fs::read_dir(&spare.dir).unwrap().count(), 1);

        let first = spare.take(KeyAlgorithm::EcdsaP256).expect("a ready key");
        // take() started the next one; until it is written, none is ready,
        // and the one given is gone from disk either way.
        let second = match spare.take(KeyAlgorithm::EcdsaP256) {
            Some(key) => key,
            None => {
                wait_for_file(&spare).await;
                spare.take(KeyAlgorithm::EcdsaP256).expect("the next key")
            }
        };
        assert_ne!(first.public_key_der(), second.public_key_der());
        // Another algorithm is not served from it.
        wait_for_file(&spare).await;
        assert!(spare.take(KeyAlgorithm::Rsa2048).is_none());
        assert!(spare.path().exists());
    }

    /// Waits for the background key: the fill that take() started, or
    /// one started now.
    async fn wait_for_file(spare: &SpareKey) {
        while !spare.path().exists() {
            match spare.fill() {
                Some(task) => task.await.unwrap(),
                None => tokio::task::yield_now().await,
            }
        }
    }
}
