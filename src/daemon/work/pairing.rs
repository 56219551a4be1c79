//! The daemon's pairings for a command: the processor found in the live
//! inventory, the daemon's pairing identity, the button countdown streamed
//! back; with a homeowner claim, the `claimed` event queued; and their
//! inverses, Remove Home from Account and unpairing.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Work;
use crate::claim::{ClaimOptions, ClaimOutcome, ClaimProgress, Resolved, Target};
use crate::identity::{KeyAlgorithm, PairingIdentity, PrivateKey};
use crate::proto::control::KeyKind;
use crate::proto::control::{
    ClaimRequest, ClaimedProcessor, CloudResult, ControlError, Done, Progress, ReleaseRequest,
    ReleasedProcessor, error_code, step,
};
use crate::proto::{EventKind, Released};
use crate::relay::Relayed;
use crate::shutdown::Shutdown;

impl Work {
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
                claimed: Some(ClaimedProcessor::from(&outcome)),
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
            claimed: Some(ClaimedProcessor::from(&outcome)),
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
        let key_algorithm = KeyAlgorithm::from(req.key.unwrap_or(KeyKind::Rsa));
        let device_uid = req
            .device_uid
            .as_deref()
            .map(crate::claim::parse_device_uid)
            .transpose()
            .map_err(|e| failed(format!("DeviceUID {e}")))?;
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
            device_uid,
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
            let key = match self.spare_key.take(options.key_algorithm) {
                Some(key) => key,
                None => PrivateKey::generate(options.key_algorithm)
                    .map_err(|e| failed(e.to_string()))?,
            };
            crate::claim::claim_resolved_with_key(resolved, key, &options, &identity, &mut streamed)
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
    pub(super) async fn claim_and_queue(
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
