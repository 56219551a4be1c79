//! Work the daemon performs for a command over the control socket: claims
//! (the button countdown streamed back), releases, and queueing events for
//! the cloud.
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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::inventory::LiveInventory;
use crate::claim::takeover::{ButtonStep, TakeoverBackend, TakeoverPlan};
use crate::claim::{
    ClaimError, ClaimOptions, ClaimOutcome, ClaimProgress, DEFAULT_DISCOVERY_TIMEOUT, Resolved,
    Target,
};
use crate::discovery::InventoryEvent;
use crate::identity::{KeyAlgorithm, PairingIdentity};
use crate::outbox::Outbox;
use crate::processor::Serial;
use crate::proto::control::{
    ClaimRequest, ClaimedProcessor, CloudResult, ControlError, Done, OutcomeRequest, Progress,
    ReleaseRequest, ReleasedProcessor, StatusReport, StatusRequest, TakeoverRequest, error_code,
    step,
};
use crate::proto::{EventId, EventKind, Outcome, PlaceStatus, Released};
use crate::relay::Relayed;
use crate::relay::link::CloudLink;
use crate::shutdown::Shutdown;

/// The longest a client may ask the daemon to wait for the cloud.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// What a claim performed by the daemon uses; changed by a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSettings {
    /// The identity presented on processors' pairing port.
    pub pairing_identity: PathBuf,
    /// The button window when the request names none.
    pub button_timeout: Duration,
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

    /// Asks the cloud, as the daemon's account, about the processor `req`
    /// names.
    ///
    /// # Errors
    /// `not-implemented` when the daemon relays to no cloud (the command
    /// asks with its own `--cloud`); `failed` when the processor cannot be
    /// named to the cloud, the cloud does not know it or cannot be reached.
    pub async fn status(&self, req: StatusRequest) -> Result<StatusReport, ControlError> {
        let r = req.request;
        let failed = |why: String| ControlError::new(error_code::FAILED, why, Some(r));
        let Some(link) = &self.link else {
            return Err(ControlError::new(
                error_code::NOT_IMPLEMENTED,
                "this daemon relays to no cloud ([cloud] address); pass --cloud ADDR",
                Some(r),
            ));
        };
        let (serial, mac) = self
            .identify(&Target::parse(&req.processor), false)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let limit = match req.wait_ms {
            0 => Duration::from_secs(10),
            ms => Duration::from_millis(ms).min(MAX_WAIT),
        };
        let st = link
            .place_status(serial, mac, limit)
            .await
            .map_err(failed)?;
        Ok(StatusReport {
            request: r,
            status: st.status,
            guidance: st.guidance,
            serial: st.serial,
            mac: st.mac,
            place: st.place,
            account: link.account.clone(),
            access: st.access,
        })
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

    fn claim_settings(&self) -> ClaimSettings {
        lock(&self.settings).clone()
    }

    /// Pairs with the processor `req` names; `progress` hears each step.
    /// With `req.homeowner` the `claimed` event is queued too (the
    /// daemon's account becomes the Place's homeowner); without it the
    /// cloud is never told. `cancel` abandons the pairing up to the moment
    /// it stores the credential; after that it completes.
    ///
    /// # Errors
    /// An error frame: `failed` (with the claim's own message, or a
    /// homeowner claim asked of a daemon that relays to no cloud), `busy`
    /// (the processor is being claimed already), `cancelled`.
    pub async fn claim(
        &self,
        req: ClaimRequest,
        progress: mpsc::UnboundedSender<Progress>,
        cancel: Shutdown,
    ) -> Result<Done, ControlError> {
        let r = req.request;
        if !req.homeowner {
            let outcome = self.pair(&req, &progress, cancel).await?;
            return Ok(Done {
                request: r,
                claimed: Some(claimed_processor(&outcome)),
                released: None,
                takeover: None,
                cloud: None,
            });
        }
        if self.link.is_none() {
            return Err(ControlError::new(
                error_code::FAILED,
                "a homeowner claim needs the cloud, and this daemon relays to none ([cloud] \
                 address): nothing was done. To pair only: handoff pair PROCESSOR",
                Some(r),
            ));
        }
        let (outcome, cloud) = self.claim_and_queue(req, progress, cancel).await?;
        Ok(Done {
            request: r,
            claimed: Some(claimed_processor(&outcome)),
            released: None,
            takeover: None,
            cloud: Some(cloud),
        })
    }

    /// The button handshake and the stored credential: what `pair` and
    /// every claim start with.
    async fn pair(
        &self,
        req: &ClaimRequest,
        progress: &mpsc::UnboundedSender<Progress>,
        mut cancel: Shutdown,
    ) -> Result<ClaimOutcome, ControlError> {
        let r = req.request;
        let failed = |why: String| ControlError::new(error_code::FAILED, why, Some(r));
        let target = Target::parse(&req.processor);
        let address = match &req.address {
            None => None,
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| failed(format!("'{a}' is not an IP address")))?,
            ),
        };
        let key_algorithm = match req.key.as_deref() {
            None | Some("rsa") => KeyAlgorithm::Rsa2048,
            Some("ec") => KeyAlgorithm::EcdsaP256,
            Some(other) => return Err(failed(format!("unknown key kind '{other}' (rsa or ec)"))),
        };
        if let Some(uid) = &req.device_uid
            && !(uid.len() == 12 && uid.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(failed(format!("DeviceUID '{uid}' is not 12 hex digits")));
        }
        let settings = self.claim_settings();
        let identity = PairingIdentity::load(&settings.pairing_identity).map_err(|e| {
            failed(format!(
                "the daemon cannot use its pairing identity in {}: {e} — install the pairing \
                 identity there (`pairing_identity` in its configuration, `handoff pairing-identity \
                 install`), or pair from the \
                 command with --standalone --pairing-identity DIR",
                settings.pairing_identity.display()
            ))
        })?;
        let options = ClaimOptions {
            button_timeout: req
                .button_s
                .map_or(settings.button_timeout, Duration::from_secs),
            key_algorithm,
            device_uid: req.device_uid.as_ref().map(|u| u.to_ascii_lowercase()),
            ..ClaimOptions::new(target.clone(), self.state_dir.clone())
        };
        let mut streamed = Streamed {
            request: r,
            tx: progress.clone(),
        };
        let claiming = async {
            let resolved = match address {
                Some(address) => Resolved::from_address(address, &target),
                None => self
                    .find(&target)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
            };
            streamed.resolved(&resolved);
            let _pairing = self.start_pairing(resolved.address, r)?;
            crate::claim::claim_resolved(resolved, &options, &identity, &mut streamed)
                .await
                .map_err(|e| failed(e.to_string()))
        };
        let outcome = tokio::select! {
            outcome = claiming => outcome?,
            () = cancel.wait() => {
                return Err(ControlError::new(
                    error_code::CANCELLED,
                    "the claim was cancelled before anything was stored",
                    Some(r),
                ));
            }
        };
        tracing::info!(
            id = %outcome.id,
            mac = %outcome.mac.map_or_else(|| "-".into(), |m| m.to_string()),
            address = %outcome.address,
            "processor paired for a control client"
        );
        Ok(outcome)
    }

    /// A pairing, then its `claimed` event queued: a homeowner claim, and
    /// the takeover's button step.
    async fn claim_and_queue(
        &self,
        req: ClaimRequest,
        progress: mpsc::UnboundedSender<Progress>,
        cancel: Shutdown,
    ) -> Result<(ClaimOutcome, CloudResult), ControlError> {
        let r = req.request;
        let outcome = self.pair(&req, &progress, cancel).await?;
        let _ = progress.send(Progress {
            request: r,
            step: step::RELAYING.into(),
            left_ms: None,
            what: None,
        });
        let event = outcome.event().map_err(|e| stored_but(&outcome, &e, r))?;
        let cloud = self
            .queue(event, Duration::from_millis(req.wait_ms))
            .await
            .map_err(|e| stored_but(&outcome, &e, r))?;
        Ok((outcome, cloud))
    }

    /// Runs (or continues) a takeover, its record in the daemon's state
    /// directory; `progress` hears each step, the button countdown
    /// included. `cancel` stops it between steps, or during the button
    /// wait before anything is stored.
    ///
    /// # Errors
    /// `failed` with the reason (no relay, an unknown processor, a failed
    /// button step, a takeover already finished…); `busy` when this
    /// processor is being taken over already.
    pub async fn takeover(
        &self,
        req: TakeoverRequest,
        progress: mpsc::UnboundedSender<Progress>,
        cancel: Shutdown,
    ) -> Result<Done, ControlError> {
        let r = req.request;
        let failed = |why: String| ControlError::new(error_code::FAILED, why, Some(r));
        if self.link.is_none() {
            return Err(failed(
                "a takeover needs the cloud, and this daemon relays to none ([cloud] address)"
                    .into(),
            ));
        }
        if !req.share_to.contains('@') {
            return Err(failed(format!(
                "'{}' is not an email address (the pro's myLutron account)",
                req.share_to
            )));
        }
        let (serial, mac) = self
            .identify(&Target::parse(&req.processor), true)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let serial = serial
            .ok_or_else(|| failed("the processor does not advertise its serial number".into()))?;
        let _slot = Slot::take(&self.taking_over, serial).ok_or_else(|| {
            ControlError::new(
                error_code::BUSY,
                format!(
                    "the daemon is already taking over {}; wait for it to end",
                    serial.id()
                ),
                Some(r),
            )
        })?;
        let plan = TakeoverPlan {
            serial,
            mac,
            share_to: crate::place::AccountId::new(&req.share_to)
                .as_str()
                .to_owned(),
            duration: req
                .duration
                .unwrap_or(crate::place::AccessDuration::SevenDays),
        };
        let mut backend = DaemonTakeover {
            work: self,
            request: r,
            progress,
            cancel,
            wait: match req.wait_ms {
                0 => Duration::from_secs(10),
                ms => Duration::from_millis(ms).min(MAX_WAIT),
            },
            button_s: req.button_s,
        };
        let end = crate::claim::takeover::takeover(&self.state_dir, &plan, &mut backend)
            .await
            .map_err(failed)?;
        let end = end.to_wire();
        tracing::info!(
            id = %serial.id(),
            mac = %mac.or(end.mac).map_or_else(|| "-".into(), |m| m.to_string()),
            result = %end.result,
            "takeover for a control client"
        );
        Ok(Done {
            request: r,
            claimed: None,
            released: None,
            takeover: Some(end),
            cloud: None,
        })
    }

    /// Remove Home from Account for the processor `req` names: queues
    /// `released` and forgets the credential only once the cloud applied
    /// it (a refusal, or no answer in time, keeps it: both or neither).
    /// With `req.unpair`, only forgets the credential; the cloud is never
    /// told.
    ///
    /// # Errors
    /// `failed`: nothing of that name is paired here, a release asked of a
    /// daemon that relays to no cloud, or the store failed.
    pub async fn release(&self, req: ReleaseRequest) -> Result<Done, ControlError> {
        let r = req.request;
        let failed = |why: String| ControlError::new(error_code::FAILED, why, Some(r));
        let target = Target::parse(&req.processor);
        let (serial, mac) =
            crate::claim::paired(&self.state_dir, &target).map_err(|e| failed(e.to_string()))?;
        let released = Some(ReleasedProcessor {
            id: serial.id(),
            serial,
        });
        let mac = mac.map_or_else(|| "-".into(), |m| m.to_string());
        if req.unpair {
            crate::claim::forget(&self.state_dir, serial).map_err(|e| failed(e.to_string()))?;
            tracing::info!(id = %serial.id(), mac = %mac, "processor unpaired for a control client");
            return Ok(Done {
                request: r,
                claimed: None,
                released,
                takeover: None,
                cloud: None,
            });
        }
        if self.link.is_none() {
            return Err(failed(
                "Remove Home from Account needs the cloud, and this daemon relays to none \
                 ([cloud] address): nothing changed. To forget the credential only: handoff \
                 unpair PROCESSOR"
                    .into(),
            ));
        }
        let event = EventKind::Released(Released {
            place: None,
            serial: Some(serial),
        });
        let cloud = self
            .queue(event, Duration::from_millis(req.wait_ms))
            .await
            .map_err(|e| {
                failed(format!(
                    "nothing changed: the release could not be queued: {e}"
                ))
            })?;
        let forgotten =
            crate::claim::settle_release(&self.state_dir, serial, &Relayed::from_cloud(&cloud))
                .map_err(|e| failed(e.to_string()))?;
        tracing::info!(
            id = %serial.id(),
            mac = %mac,
            cloud = %cloud.result,
            forgotten,
            "release for a control client"
        );
        Ok(Done {
            request: r,
            claimed: None,
            released,
            takeover: None,
            cloud: Some(cloud),
        })
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
struct DaemonTakeover<'a> {
    work: &'a Work,
    request: u64,
    progress: mpsc::UnboundedSender<Progress>,
    cancel: Shutdown,
    /// How long each step waits for the cloud.
    wait: Duration,
    button_s: Option<u64>,
}

impl DaemonTakeover<'_> {
    fn wait_ms(&self) -> u64 {
        u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX)
    }
}

impl TakeoverBackend for DaemonTakeover<'_> {
    async fn status(
        &mut self,
        serial: Serial,
        _mac: Option<crate::processor::Mac>,
    ) -> Result<(PlaceStatus, String), String> {
        let req = StatusRequest {
            request: self.request,
            processor: serial.0.to_string(),
            wait_ms: self.wait_ms(),
        };
        let report = self.work.status(req).await.map_err(|e| e.reason)?;
        Ok(report.into_place_status())
    }

    async fn relay(&mut self, event: EventKind) -> Result<(EventId, Relayed), String> {
        let cloud = self.work.queue(event, self.wait).await?;
        Ok((cloud.id.clone(), Relayed::from_cloud(&cloud)))
    }

    async fn settle(&mut self, id: &EventId) -> Result<Relayed, String> {
        let req = OutcomeRequest {
            request: self.request,
            id: id.clone(),
            wait_ms: self.wait_ms(),
        };
        match self.work.outcome(req).await {
            Ok(cloud) => Ok(Relayed::from_cloud(&cloud)),
            Err(e) => Err(e.reason),
        }
    }

    async fn claim(&mut self, serial: Serial) -> Result<ButtonStep, String> {
        let req = ClaimRequest {
            request: self.request,
            processor: serial.0.to_string(),
            address: None,
            button_s: self.button_s,
            key: None,
            device_uid: None,
            wait_ms: self.wait_ms(),
            homeowner: true,
        };
        match self
            .work
            .claim_and_queue(req, self.progress.clone(), self.cancel.clone())
            .await
        {
            Ok((outcome, cloud)) => Ok(ButtonStep::Queued {
                outcome: Box::new(outcome),
                relayed: Relayed::from_cloud(&cloud),
                id: cloud.id,
            }),
            Err(e) if e.code == error_code::CANCELLED => Ok(ButtonStep::Cancelled),
            Err(e) => Err(e.reason),
        }
    }

    fn credentials_dir(&self) -> &Path {
        &self.work.state_dir
    }

    fn cloud(&self) -> String {
        self.work
            .link
            .as_ref()
            .map_or_else(|| "no cloud".into(), |l| l.address.clone())
    }

    fn cancelled(&self) -> bool {
        self.cancel.fired()
    }

    fn step(&mut self, text: &str) {
        let _ = self.progress.send(Progress {
            request: self.request,
            step: step::TAKEOVER.into(),
            left_ms: None,
            what: Some(text.to_owned()),
        });
    }
}

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

fn stored_but(outcome: &ClaimOutcome, e: &str, request: u64) -> ControlError {
    ControlError::new(
        error_code::FAILED,
        format!(
            "{} is claimed and its credential stored in {}, but the claim could not be queued \
             for the cloud: {e}",
            outcome.id,
            outcome.credential_dir.display()
        ),
        Some(request),
    )
}

fn claimed_processor(outcome: &ClaimOutcome) -> ClaimedProcessor {
    let text = |p: &Path| p.display().to_string();
    ClaimedProcessor {
        id: outcome.id.clone(),
        serial: outcome.serial,
        mac: outcome.mac,
        address: outcome.address.to_string(),
        product: outcome.product.clone(),
        device_uid: outcome.device_uid.clone(),
        dir: text(&outcome.credential_dir),
        files: outcome.files.iter().map(|f| text(f)).collect(),
    }
}

/// A claim's steps as `progress` frames.
struct Streamed {
    request: u64,
    tx: mpsc::UnboundedSender<Progress>,
}

impl Streamed {
    fn send(&self, step: &str, left: Option<Duration>, what: Option<String>) {
        let _ = self.tx.send(Progress {
            request: self.request,
            step: step.into(),
            left_ms: left.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            what,
        });
    }
}

impl ClaimProgress for Streamed {
    fn resolved(&mut self, processor: &Resolved) {
        self.send(step::FOUND, None, Some(processor.describe()));
    }

    fn waiting_for_button(&mut self, processor: &Resolved, window: Duration) {
        self.send(step::BUTTON, Some(window), Some(processor.describe()));
    }

    fn button_pressed(&mut self) {
        self.send(step::PRESSED, None, None);
    }

    fn verifying(&mut self) {
        self.send(step::VERIFYING, None, None);
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
