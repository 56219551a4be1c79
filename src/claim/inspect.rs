//! `inspect`: read a claimed processor's house with the stored credential
//! into a report sink. One policy for the CLI reading with its own
//! credential and the daemon reading with the site box's: what is opened,
//! how long an answer may take, and what a failure tells the integrator.

use std::path::Path;
use std::time::Duration;

use super::{ClaimError, Locate, Target, is_credential_refusal, open_claimed};
use crate::inventory::{InventoryError, Reader, Sink};
use crate::leap::{ConnectionError, MainClient, MainClientError};

/// How long each answer may take: a big area's list is one frame.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Reads the house of the claimed processor `target` names (found as
/// `locate` says when not named by address) into `sink`; `progress` hears the
/// processor's name, then each area begun and the number of areas.
/// Returns the report's warnings.
///
/// # Errors
/// As [`open_claimed`]; [`ClaimError::CredentialRefused`] when the
/// processor no longer accepts the credential; [`ClaimError::HouseRead`]
/// when it dropped the connection mid-read or answered what is not a
/// house. The sink has then had part of the report: its owner must not
/// keep it.
pub async fn read_house(
    state_dir: &Path,
    target: &Target,
    locate: Locate,
    sink: &mut (dyn Sink + Send),
    progress: &mut (dyn FnMut(&str, usize, usize) + Send),
) -> Result<Vec<String>, ClaimError> {
    let (resolved, stream) = open_claimed(state_dir, target, locate).await?;
    let name = resolved.describe();
    let mut client = MainClient::new(stream, "handoff-inspect", ANSWER_WITHIN);
    Reader::new(&mut client)
        .read(&resolved.address.to_string(), sink, &mut |done, total| {
            progress(&name, done, total)
        })
        .await
        .map_err(|e| explain(&name, e))
}

/// One error saying what went wrong and what to do.
fn explain(name: &str, e: InventoryError) -> ClaimError {
    if let InventoryError::Main {
        source: MainClientError::Connection(ConnectionError::Io(io)),
        ..
    } = &e
        && is_credential_refusal(io)
    {
        return ClaimError::CredentialRefused {
            processor: name.to_owned(),
        };
    }
    ClaimError::HouseRead(match e {
        InventoryError::Main {
            url,
            source: MainClientError::Closed | MainClientError::Connection(_),
        } => format!(
            "{name} dropped the connection while its house was read (at {url}); no report was \
             written — run `handoff inspect` again"
        ),
        other => format!("reading the house of {name}: {other}; no report was written"),
    })
}
