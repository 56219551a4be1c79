//! `inspect` for a control client: the daemon reads a claimed processor's
//! house with the credential it keeps (on a site box the credentials are
//! the daemon's) and hands the report on as control frames, an area at a
//! time, to a bounded queue that the connection drains: memory holds an
//! area and the queue, never the house.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Work;
use crate::claim::{ClaimError, Locate, Target};
use crate::inventory::{AreaReport, Counts, ProcessorFacts, ProjectFacts, Sink};
use crate::proto::control::{
    ControlError, ControlMessage, HouseEnd, HouseStart, InspectRequest, error_code,
    house_area_frames, house_warnings_frames,
};

/// Frames waiting for the client at most: 64 of at most 64 KiB. A client
/// that falls this far behind (it reads a Unix socket, the daemon reads a
/// processor over the LAN) is dropped rather than buffered without end.
pub const HOUSE_QUEUE: usize = 64;

/// The report's frames, put on the connection's queue.
struct FrameSink {
    request: u64,
    tx: mpsc::Sender<ControlMessage>,
}

impl FrameSink {
    fn put(&self, msg: ControlMessage) -> std::io::Result<()> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                std::io::Error::other("the client reads the report too slowly")
            }
            mpsc::error::TrySendError::Closed(_) => std::io::Error::other("the client went away"),
        })
    }
}

impl Sink for FrameSink {
    fn start(&mut self, processor: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()> {
        self.put(ControlMessage::HouseStart(Box::new(HouseStart {
            request: self.request,
            processor: processor.clone(),
            project: project.clone(),
        })))
    }

    fn area(&mut self, area: &AreaReport) -> std::io::Result<()> {
        for frame in house_area_frames(self.request, area.clone()).map_err(std::io::Error::other)? {
            self.put(frame)?;
        }
        Ok(())
    }

    fn finish(&mut self, counts: &Counts, warnings: &[String]) -> std::io::Result<()> {
        for frame in house_warnings_frames(self.request, warnings) {
            self.put(frame)?;
        }
        self.put(ControlMessage::HouseEnd(Box::new(HouseEnd {
            request: self.request,
            counts: counts.clone(),
        })))
    }
}

impl Work {
    /// Reads the house `req` names onto `tx`, ending with `house-end` or an
    /// error frame: `not-implemented` when this daemon holds no credential
    /// for it (before anything else), `failed` with what to do.
    pub async fn inspect(&self, req: InspectRequest, tx: mpsc::Sender<ControlMessage>) {
        let request = req.request;
        let target = Target::parse(&req.processor);
        let wait = Duration::from_millis(req.wait_ms).min(super::MAX_WAIT);
        let mut sink = FrameSink {
            request,
            tx: tx.clone(),
        };
        // Where it is comes from the live inventory, not a second browse.
        let located = match crate::claim::paired(&self.state_dir, &target) {
            Ok(_) if matches!(target, Target::Address(_)) => Ok(Locate::Browse(wait)),
            Ok((serial, _)) => self
                .find(&Target::Serial(serial))
                .await
                .map(|found| Locate::At(found.address)),
            Err(e) => Err(e),
        };
        let result = match located {
            Ok(locate) => {
                crate::claim::read_house(
                    &self.state_dir,
                    &target,
                    locate,
                    &mut sink,
                    &mut |_, _, _| {},
                )
                .await
            }
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(_) => return,
            Err(ClaimError::NotClaimed { target, .. }) => ControlError::new(
                error_code::NOT_IMPLEMENTED,
                format!("this daemon holds no credential for {target}"),
                Some(request),
            ),
            Err(e) => {
                tracing::info!(processor = %req.processor, "inspect for a control client failed: {e}");
                ControlError::new(error_code::FAILED, e.to_string(), Some(request))
            }
        };
        // After what was queued: the client gets the whole story in order.
        let _ = tx.send(ControlMessage::Error(error)).await;
    }
}
