//! The claim's proof of possession, added as the event leaves.
//!
//! A `claimed` event carries the certificate the processor signed after
//! its button press; anyone who copies that certificate could send it
//! first. So the sender also signs, with the certificate's key, the event
//! id, the account and the serial ([`crate::proto::possession`]). It is
//! done here, at sending, because this is where both the event id and the
//! account (the link's) are known; the key is read from the credential
//! store beside the outbox (`<state-dir>/credentials/<serial>/`) and
//! dropped at once. Neither the key nor the signature is ever logged.

use std::path::Path;

use crate::identity::{CredentialStore, IdentityError};
use crate::proto::{EventKind, RelayEvent, possession};

/// Signs `event` if it is a claim without a proof of possession yet. A
/// claim whose key cannot be read goes without one (the cloud then refuses
/// it, and says why); the reason is logged, never the key.
pub(super) fn seal(event: &mut RelayEvent, account: &str, state_dir: &Path) {
    let EventKind::Claimed(claim) = &mut event.kind else {
        return;
    };
    if claim.possession.is_some() {
        return;
    }
    let signed = possession::signed_bytes(&event.id, account, claim.serial, &claim.proof);
    match sign(state_dir, claim.serial, &signed) {
        Ok(signature) => claim.possession = Some(signature),
        Err(e) => tracing::warn!(
            serial = %claim.serial, daemon = %event.id.daemon, seq = event.id.seq,
            "relay: cannot prove possession of the claim's key ({e}); the cloud will refuse it"
        ),
    }
}

fn sign(
    state_dir: &Path,
    serial: crate::processor::Serial,
    message: &[u8],
) -> Result<Vec<u8>, IdentityError> {
    let credential = CredentialStore::new(state_dir).load(serial)?;
    credential.identity.key.sign(message)
}
