//! Work the daemon performs for a command over the control socket, by
//! what it serves: pairings, claims and releases ([`pairing`]), takeovers
//! ([`takeover`]), questions to the cloud ([`status`]), houses read for
//! `inspect` ([`inspect`]); here, what they
//! share (the settings, the outbox and its events, finding a processor in
//! the inventory, one claim at a time per processor) and reloads.
//!
//! A claim finds its processor in the live inventory (no second browse),
//! pairs with the daemon's own pairing identity and keeps the credential in
//! the daemon's state directory; then the `claimed` event is queued in the
//! outbox. Cancelling (the client went away, the daemon stops) drops the
//! claim at its next await: the credential is written after the last one,
//! so a cancelled claim stored nothing, and a stored one always has its
//! event queued.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::inventory::LiveInventory;
use super::spare_key::SpareKey;
use crate::claim::{ClaimError, DEFAULT_DISCOVERY_TIMEOUT, Resolved, Target};
use crate::discovery::InventoryEvent;
use crate::identity::KeyAlgorithm;
use crate::outbox::Outbox;
use crate::processor::Serial;
use crate::proto::control::{CloudResult, ControlError, OutcomeRequest, error_code};
use crate::proto::{EventId, EventKind, Outcome};
use crate::relay::link::CloudLink;

mod inspect;
pub use inspect::HOUSE_QUEUE;
mod pairing;
mod status;
mod takeover;

/// The longest a client may ask the daemon to wait for the cloud.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// What a claim performed by the daemon uses; changed by a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSettings {
    /// The identity presented on processors' pairing port.
    pub pairing_identity: PathBuf,
    /// The button window when the request names none.
    pub button_timeout: Duration,
    /// Who may ask for claims, releases, takeovers and reloads (the
    /// configuration's `act_group`); `None`: anyone who may open the socket.
    pub act_group: Option<String>,
}

/// Who is on the other end of the control socket (SO_PEERCRED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
}

/// The daemon's side of claims, releases and queued events.
pub struct Work {
    state_dir: PathBuf,
    settings: Mutex<ClaimSettings>,
    live: Arc<LiveInventory>,
    /// The relay's outbox, while the daemon relays; else events are
    /// appended to the outbox file and left for `handoff relay`.
    outbox: Option<Outbox>,
    /// Processors (by address) being paired now: one claim at a time each,
    /// as a processor pairs one client at a time.
    pairing: Mutex<HashSet<IpAddr>>,
    /// Processors being taken over now: one takeover at a time each.
    taking_over: Mutex<HashSet<Serial>>,
    /// Where a `reload` asks for the configuration to be read again.
    reread: Option<mpsc::Sender<super::ReloadReply>>,
    /// The daemon's link to the cloud, while it relays: `status` asks
    /// through it.
    link: Option<CloudLink>,
    /// The key the next claim uses, made beforehand.
    spare_key: SpareKey,
}

impl Work {
    pub fn new(
        state_dir: PathBuf,
        settings: ClaimSettings,
        live: Arc<LiveInventory>,
        relay: Option<(CloudLink, Outbox)>,
        reread: Option<mpsc::Sender<super::ReloadReply>>,
    ) -> Work {
        let (link, outbox) = relay.unzip();
        Work {
            spare_key: SpareKey::new(SpareKey::dir_in(&state_dir), KeyAlgorithm::default()),
            state_dir,
            settings: Mutex::new(settings),
            live,
            outbox,
            pairing: Mutex::new(HashSet::new()),
            taking_over: Mutex::new(HashSet::new()),
            reread,
            link,
        }
    }

    /// Starts making the key the next claim uses, if none is ready. Must
    /// run inside a tokio runtime.
    pub fn keep_key_ready(&self) {
        self.spare_key.fill();
    }

    /// Reads the configuration again and applies it, as SIGHUP does, and
    /// says how it went.
    ///
    /// # Errors
    /// `failed` with the refusal (the running settings are kept);
    /// `not-implemented` when nobody can read the configuration again (a
    /// daemon run from a library caller).
    pub async fn reload(&self, request: u64) -> Result<Vec<String>, ControlError> {
        let Some(reread) = &self.reread else {
            return Err(ControlError::new(
                error_code::NOT_IMPLEMENTED,
                "this daemon has no configuration file to read again",
                Some(request),
            ));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || {
            ControlError::new(
                error_code::INTERNAL,
                "the daemon is stopping; nothing was reloaded",
                Some(request),
            )
        };
        reread.send(reply).await.map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|why| ControlError::new(error_code::FAILED, why, Some(request)))
    }

    /// The outbox the relay owns, if the daemon relays.
    pub fn relay_outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    pub fn set_claim_settings(&self, settings: ClaimSettings) {
        *lock(&self.settings) = settings;
    }

    /// Whether `peer` may ask the daemon to act: always when no
    /// `act_group` is set; else root, the daemon's own user, and members of
    /// that group (primary or listed). An unknown group lets nobody else.
    ///
    /// # Errors
    /// Why not, as a sentence for the client.
    pub fn may_act(&self, peer: Option<Peer>) -> Result<(), String> {
        let Some(group) = self.claim_settings().act_group else {
            return Ok(());
        };
        let Some(peer) = peer else {
            return Err(format!(
                "only members of group {group} may ask this daemon to act, and the socket \
                 did not say who you are"
            ));
        };
        if peer.uid == 0 || peer.uid == nix::unistd::geteuid().as_raw() {
            return Ok(());
        }
        let member = match nix::unistd::Group::from_name(&group) {
            Ok(Some(g)) => {
                g.gid.as_raw() == peer.gid
                    || nix::unistd::User::from_uid(peer.uid.into())
                        .ok()
                        .flatten()
                        .is_some_and(|u| g.mem.contains(&u.name))
            }
            _ => false,
        };
        if member {
            Ok(())
        } else {
            Err(format!(
                "only members of group {group} may ask this daemon to claim, release, take \
                 over or reload (act_group in its configuration); discover, status and health \
                 stay open to you"
            ))
        }
    }

    fn claim_settings(&self) -> ClaimSettings {
        lock(&self.settings).clone()
    }

    /// Appends `event` to the outbox (durable before this returns) and
    /// waits up to `wait` for the cloud, when the daemon relays.
    ///
    /// # Errors
    /// The outbox cannot be written (the disk is full, …).
    pub async fn queue(&self, event: EventKind, wait: Duration) -> Result<CloudResult, String> {
        let Some(outbox) = &self.outbox else {
            let id = self.append_for_later(event).await?;
            return Ok(CloudResult {
                id,
                result: "queued".into(),
                rule: None,
                why: Some(
                    "this daemon relays to no cloud ([cloud] address); `handoff relay --cloud \
                     ADDR` delivers it"
                        .into(),
                ),
                link: None,
            });
        };
        let id = outbox
            .append(event)
            .await
            .map_err(|e| format!("cannot queue the event: {e}"))?;
        Ok(wait_for_cloud(outbox, id, wait).await)
    }

    /// Without a relay the daemon does not hold the outbox: open, append,
    /// close, so that `handoff relay` can deliver it.
    async fn append_for_later(&self, event: EventKind) -> Result<EventId, String> {
        let path = self.state_dir.join(crate::outbox::FILE_NAME);
        let outbox =
            Outbox::open(&path).map_err(|e| format!("the outbox {}: {e}", path.display()))?;
        let appended = outbox.append(event).await;
        outbox.close().await;
        appended.map_err(|e| format!("cannot queue the event: {e}"))
    }

    /// What became of an event queued earlier.
    ///
    /// # Errors
    /// `not-implemented` when the daemon does not relay (the command reads
    /// the outbox itself), `unknown-event` for an id the outbox never held.
    pub async fn outcome(&self, req: OutcomeRequest) -> Result<CloudResult, ControlError> {
        let r = req.request;
        let Some(outbox) = &self.outbox else {
            return Err(ControlError::new(
                error_code::NOT_IMPLEMENTED,
                "this daemon runs no relay; read the outbox directly",
                Some(r),
            ));
        };
        match outbox.outcome(&req.id).await {
            Ok(Some(_)) => {}
            Ok(None) if outbox.is_pending(&req.id) => {}
            Ok(None) => {
                return Err(ControlError::new(
                    error_code::UNKNOWN_EVENT,
                    format!(
                        "the daemon's outbox holds no event ({}, {})",
                        req.id.daemon, req.id.seq
                    ),
                    Some(r),
                ));
            }
            Err(e) => {
                return Err(ControlError::new(
                    error_code::INTERNAL,
                    format!("cannot read the outbox: {e}"),
                    Some(r),
                ));
            }
        }
        Ok(wait_for_cloud(outbox, req.id, Duration::from_millis(req.wait_ms)).await)
    }

    /// The serial and MAC of the processor `target` names: from the name
    /// itself, else (or, with `need_serial`, when the name gives no serial)
    /// from the live inventory.
    async fn identify(
        &self,
        target: &Target,
        need_serial: bool,
    ) -> Result<(Option<Serial>, Option<crate::processor::Mac>), ClaimError> {
        match target.typed_facts() {
            Some((serial, mac)) if serial.is_some() || !need_serial => Ok((serial, mac)),
            _ => {
                let found = self.find(target).await?;
                Ok((found.serial, found.mac))
            }
        }
    }

    /// The processor `target` names in the live inventory, waiting up to
    /// [`DEFAULT_DISCOVERY_TIMEOUT`] for it to appear.
    async fn find(&self, target: &Target) -> Result<Resolved, ClaimError> {
        let (known, mut changes) = self.live.subscribe();
        let found = |p: &crate::processor::ProcessorInfo| {
            Resolved::from_discovery(p).ok_or_else(|| ClaimError::NoAddress {
                target: target.to_string(),
            })
        };
        if let Some(p) = known.iter().find(|p| target.matches(p)) {
            return found(p);
        }
        let deadline = Instant::now() + DEFAULT_DISCOVERY_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(event)) => {
                    if !matches!(*event, InventoryEvent::Removed(_))
                        && target.matches(event.processor())
                    {
                        return found(event.processor());
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if let Some(p) = self.live.snapshot().iter().find(|p| target.matches(p)) {
                        return found(p);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                    return Err(ClaimError::NotFound {
                        target: target.to_string(),
                        searched: "the daemon's inventory".into(),
                        waited: DEFAULT_DISCOVERY_TIMEOUT,
                    });
                }
            }
        }
    }

    fn start_pairing(
        &self,
        address: IpAddr,
        request: u64,
    ) -> Result<Slot<'_, IpAddr>, ControlError> {
        Slot::take(&self.pairing, address).ok_or_else(|| {
            ControlError::new(
                error_code::BUSY,
                format!(
                    "the daemon is already claiming the processor at {address}; wait for that \
                     claim to end"
                ),
                Some(request),
            )
        })
    }
}

/// Marks a processor as being worked on (paired, taken over) until
/// dropped.
struct Slot<'a, K: Eq + std::hash::Hash> {
    busy: &'a Mutex<HashSet<K>>,
    key: K,
}

impl<'a, K: Eq + std::hash::Hash + Clone> Slot<'a, K> {
    /// `None` when `key` is being worked on already.
    fn take(busy: &'a Mutex<HashSet<K>>, key: K) -> Option<Slot<'a, K>> {
        // Not `then_some`: it would build (and drop) a slot for a key taken
        // by someone else, freeing theirs, while this lock is still held.
        let inserted = lock(busy).insert(key.clone());
        inserted.then(|| Slot { busy, key })
    }
}

impl<K: Eq + std::hash::Hash> Drop for Slot<'_, K> {
    fn drop(&mut self) {
        lock(self.busy).remove(&self.key);
    }
}

/// The takeover procedure's backend inside the daemon: its own status,
/// outbox, outcomes and claims.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits up to `wait` for the cloud's answer to `id`.
async fn wait_for_cloud(outbox: &Outbox, id: EventId, wait: Duration) -> CloudResult {
    let ack = tokio::time::timeout(wait.min(MAX_WAIT), outbox.wait_outcome(&id))
        .await
        .ok()
        .and_then(Result::ok);
    let (result, rule, why, link) = match ack {
        None => (
            "queued",
            None,
            Some("no answer from the cloud yet".into()),
            None,
        ),
        Some(ack) => match ack.outcome {
            Outcome::Applied | Outcome::Duplicate => ("applied", None, None, ack.link),
            Outcome::Refused { rule, guidance } => ("refused", Some(rule), Some(guidance), None),
        },
    };
    CloudResult {
        id,
        result: result.into(),
        rule,
        why,
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_taken_once_and_freed_when_dropped() {
        let busy = Mutex::new(HashSet::new());
        let first = Slot::take(&busy, 7).expect("free");
        assert!(Slot::take(&busy, 7).is_none(), "taken");
        assert!(
            lock(&busy).contains(&7),
            "a refused take leaves the holder's slot"
        );
        let other = Slot::take(&busy, 8).expect("another key is free");
        drop(first);
        assert!(Slot::take(&busy, 7).is_some(), "freed");
        drop(other);
        assert!(lock(&busy).is_empty());
    }
}
