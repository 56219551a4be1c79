//! `claim.json` beside a stored credential: what the processor was when it
//! was claimed, so that `release` can find it by MAC, address or host and
//! later commands can say which processor a credential is for.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ClaimError, Target};
use crate::identity::files::write_private;
use crate::processor::{Mac, Serial};

const RECORD_FILE: &str = "claim.json";

/// The files of a stored credential, as `identity::CredentialStore` names
/// them, then the record.
pub fn credential_files(dir: &Path) -> Vec<PathBuf> {
    [
        "key.pem",
        "cert.pem",
        "processor-ca.pem",
        "server-identity.pem",
        RECORD_FILE,
    ]
    .iter()
    .map(|n| dir.join(n))
    .collect()
}

/// What was known about the processor at the claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub serial: Serial,
    pub id: String,
    pub mac: Option<Mac>,
    pub address: IpAddr,
    pub product: String,
    pub device_uid: String,
    /// What discovery advertised at the claim, reported with it to the
    /// cloud (absent from older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

impl ClaimRecord {
    /// Writes `dir/claim.json` (0600, atomically); `dir` exists.
    ///
    /// # Errors
    /// [`ClaimError::Identity`] if it cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), ClaimError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| {
            ClaimError::Identity(crate::identity::IdentityError::Corrupt {
                path: dir.join(RECORD_FILE),
                reason: e.to_string(),
            })
        })?;
        json.push(b'\n');
        Ok(write_private(dir, RECORD_FILE, &json)?)
    }

    /// The record in `dir`, if there is a readable one.
    pub fn load(dir: &Path) -> Option<ClaimRecord> {
        let text = std::fs::read_to_string(dir.join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether `target` names this processor.
    pub fn matches(&self, target: &Target) -> bool {
        match target {
            Target::Serial(s) => *s == self.serial || s.0.to_string() == self.id,
            Target::Id(id) => *id == self.id,
            Target::Mac(mac) => self.mac == Some(*mac),
            Target::Address(ip) => *ip == self.address,
            // Hosts are named after the id: Lutron-<id>.local.
            Target::HostName(h) => h.to_ascii_lowercase().contains(&self.id),
        }
    }
}
