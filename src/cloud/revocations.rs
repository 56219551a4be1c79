//! How a running `cloud serve` learns that an enrolled daemon was revoked
//! (`handoff cloud daemon revoke`, run by another process, maybe on
//! another node) and when each connected daemon was last seen.
//!
//! One task per server polls the store ([`CloudStore::revoked_daemons`])
//! every [`ServerOptions::revocation_poll`](super::server::ServerOptions)
//! (half a second by default, so an open connection of a revoked daemon
//! ends within about a second) and publishes the revoked names on a watch
//! channel that every connection listens to. Polling works the same on
//! both backends: redb's operator commands write the file `serve` holds
//! open (multi-writer mode), and PostgreSQL's may run on any node.
//!
//! A new connection does not rely on the poll: it is admitted only after
//! a store transaction says its name is not revoked ([`CloudStore::daemons_seen`],
//! which also records its contact), before any frame of it is read.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::store::CloudStore;
use super::{CloudError, now};
use crate::shutdown::Shutdown;

type Names = Arc<HashSet<String>>;

/// The revoked names as last polled, and who is connected to this node.
#[derive(Clone, Debug)]
pub(crate) struct Revocations {
    revoked: watch::Receiver<Names>,
    connected: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// One admitted connection: counts as connected until dropped, and
/// [`Connected::revoked`] resolves once its name is revoked.
#[derive(Debug)]
pub(crate) struct Connected {
    name: String,
    revoked: watch::Receiver<Names>,
    connected: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Revocations {
    /// Starts polling `store` on its own task, until `shutdown`.
    pub(crate) fn start(
        store: Arc<CloudStore>,
        poll: Duration,
        seen_every: Duration,
        mut shutdown: Shutdown,
    ) -> Revocations {
        let (tx, rx) = watch::channel(Names::default());
        let connected = Arc::new(Mutex::new(BTreeMap::new()));
        let watching = connected.clone();
        tokio::spawn(async move {
            let mut failing = false;
            let mut last_seen = Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown.wait() => return,
                }
                let names = blocking(&store, |s| s.revoked_daemons()).await;
                match names {
                    Ok(names) => {
                        failing = false;
                        let names: HashSet<String> = names.into_iter().collect();
                        tx.send_if_modified(|current| {
                            let changed = **current != names;
                            if changed {
                                *current = Arc::new(names);
                            }
                            changed
                        });
                    }
                    // Once per outage, not twice a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot read which daemons are revoked");
                    }
                    Err(_) => {}
                }
                if last_seen.elapsed() >= seen_every {
                    last_seen = Instant::now();
                    let names: Vec<String> = lock(&watching).keys().cloned().collect();
                    if !names.is_empty()
                        && let Err(e) =
                            blocking(&store, move |s| s.daemons_seen(&names, now())).await
                    {
                        tracing::warn!(error = %e, "cannot record which daemons are connected");
                    }
                }
            }
        });
        Revocations {
            revoked: rx,
            connected,
        }
    }

    /// Admits the daemon `name` if the store says it is not revoked, and
    /// records its contact.
    ///
    /// # Errors
    /// `Ok(Err(()))`: it is revoked. `Err`: the store cannot tell, and the
    /// connection is refused too (a revoked daemon must never pass).
    pub(crate) async fn admit(
        &self,
        store: &Arc<CloudStore>,
        name: &str,
    ) -> Result<Result<Connected, ()>, CloudError> {
        let names = vec![name.to_owned()];
        let revoked = blocking(store, move |s| s.daemons_seen(&names, now())).await?;
        if !revoked.is_empty() {
            return Ok(Err(()));
        }
        *lock(&self.connected).entry(name.to_owned()).or_default() += 1;
        Ok(Ok(Connected {
            name: name.to_owned(),
            revoked: self.revoked.clone(),
            connected: self.connected.clone(),
        }))
    }
}

impl Connected {
    /// Resolves once this daemon's name is revoked; never if the poller
    /// stopped (the server is stopping).
    pub(crate) async fn revoked(&mut self) {
        let name = &self.name;
        if self
            .revoked
            .wait_for(|names| names.contains(name))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut connected = lock(&self.connected);
        if let Some(n) = connected.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                connected.remove(&self.name);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(
    store: &Arc<CloudStore>,
    op: impl FnOnce(&CloudStore) -> Result<T, CloudError> + Send + 'static,
) -> Result<T, CloudError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .map_err(|e| CloudError::Failed(format!("the store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::AccountId;
    use crate::cloud::store::DaemonRecord;
    use crate::shutdown::shutdown_channel;

    /// What a node does between connections: a revocation written by
    /// another handle ends a connected daemon's wait, and a connected
    /// daemon's last contact keeps moving while it stays connected (and
    /// not once it is gone).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_poll_sees_another_handles_revocation_and_refreshes_the_connected() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Arc::new(CloudStore::open(&data).unwrap());
        let enrolled = |name: &str| DaemonRecord::enrolled(name, AccountId::new("a@b.c"), now());
        store.add_daemon(&enrolled("lake")).unwrap();
        store.add_daemon(&enrolled("barn")).unwrap();
        let (_stop, stopped) = shutdown_channel();
        let step = Duration::from_millis(20);
        let revocations = Revocations::start(store.clone(), step, step, stopped);
        let mut lake = revocations.admit(&store, "lake").await.unwrap().unwrap();
        let barn = revocations.admit(&store, "barn").await.unwrap().unwrap();
        let contact = |name: &str| {
            let all = store.daemons().unwrap();
            all.into_iter()
                .find(|d| d.name == name)
                .unwrap()
                .last_contact
                .unwrap()
        };
        let (first_lake, first_barn) = (contact("lake"), contact("barn"));
        drop(barn);
        // Seconds are the store's unit: wait until a refresh shows.
        let generous = Duration::from_secs(60);
        tokio::time::timeout(generous, async {
            while contact("lake") == first_lake {
                tokio::time::sleep(step).await;
            }
        })
        .await
        .expect("the connected daemon's contact is refreshed");
        assert_eq!(
            contact("barn"),
            first_barn,
            "a daemon gone is not refreshed"
        );

        // The operator, from another handle: the connection's wait ends.
        let operator = CloudStore::open(&data).unwrap();
        operator.revoke_daemon("lake", now()).unwrap().unwrap();
        tokio::time::timeout(generous, lake.revoked())
            .await
            .expect("the revocation is seen");
        // And a new connection is refused at once.
        assert!(revocations.admit(&store, "lake").await.unwrap().is_err());
    }
}
