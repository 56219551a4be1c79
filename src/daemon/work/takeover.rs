//! A takeover the daemon performs for a command: the procedure of
//! [`crate::claim::takeover`] with the daemon's inventory, pairing
//! identity, outbox and link behind its backend.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{MAX_WAIT, Slot, Work};
use crate::claim::Target;
use crate::claim::takeover::{ButtonStep, TakeoverBackend, TakeoverPlan};
use crate::processor::Serial;
use crate::proto::control::{
    ClaimRequest, ControlError, Done, OutcomeRequest, Progress, StatusRequest, TakeoverRequest,
    error_code, step,
};
use crate::proto::{EventId, EventKind, PlaceStatus};
use crate::relay::Relayed;
use crate::shutdown::Shutdown;

impl Work {
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
        if let Err(e) = crate::place::AccountId::parse(&req.share_to) {
            return Err(failed(e.to_string()));
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
}

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
            .map_or_else(|| "no cloud".into(), |l| l.address())
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
