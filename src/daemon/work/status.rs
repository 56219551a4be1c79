//! What the daemon asks the cloud for a command, as its enrolled account.

use std::time::Duration;

use super::{MAX_WAIT, Work};
use crate::claim::Target;
use crate::proto::control::{ControlError, StatusReport, StatusRequest, error_code};

impl Work {
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
}
