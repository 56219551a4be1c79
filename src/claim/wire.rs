//! A pairing as the control protocol carries it, in one place: the
//! daemon's answer built from the library's outcome and read back by the
//! command, the key kind, and the DeviceUID a request may name.

use std::path::{Path, PathBuf};

use super::ClaimOutcome;
use crate::identity::KeyAlgorithm;
use crate::proto::control::{ClaimedProcessor, KeyKind};

impl From<&ClaimOutcome> for ClaimedProcessor {
    fn from(outcome: &ClaimOutcome) -> ClaimedProcessor {
        let text = |p: &Path| p.display().to_string();
        ClaimedProcessor {
            id: outcome.id.clone(),
            serial: outcome.serial,
            mac: outcome.mac,
            address: outcome.address.to_string(),
            product: outcome.product.clone(),
            device_uid: outcome.device_uid.clone(),
            ca_sha256: outcome.ca_sha256.clone(),
            dir: text(&outcome.credential_dir),
            files: outcome.files.iter().map(|f| text(f)).collect(),
        }
    }
}

impl TryFrom<ClaimedProcessor> for ClaimOutcome {
    type Error = String;

    /// # Errors
    /// An address that is not an IP address.
    fn try_from(claimed: ClaimedProcessor) -> Result<ClaimOutcome, String> {
        Ok(ClaimOutcome {
            address: claimed.address.parse().map_err(|_| {
                format!(
                    "the daemon sent '{}' as the processor's address",
                    claimed.address
                )
            })?,
            id: claimed.id,
            serial: claimed.serial,
            mac: claimed.mac,
            product: claimed.product,
            device_uid: claimed.device_uid,
            ca_sha256: claimed.ca_sha256,
            // The daemon relays the claim itself: the command needs not
            // what it reported.
            model: None,
            firmware: None,
            credential_dir: claimed.dir.into(),
            files: claimed.files.into_iter().map(PathBuf::from).collect(),
            exported: Vec::new(),
        })
    }
}

impl From<KeyKind> for KeyAlgorithm {
    fn from(kind: KeyKind) -> KeyAlgorithm {
        match kind {
            KeyKind::Rsa => KeyAlgorithm::Rsa2048,
            KeyKind::Ec => KeyAlgorithm::EcdsaP256,
        }
    }
}

/// A DeviceUID as a pairing sends it: 12 hex digits (a MAC address without
/// separators), lowercase.
///
/// # Errors
/// Anything else, in a sentence.
pub fn parse_device_uid(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{s}' is not 12 hex digits (a MAC address without separators)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairing_survives_the_trip_through_the_control_protocol() {
        let outcome = ClaimOutcome {
            id: "0236e6a7".into(),
            serial: crate::processor::Serial(0x0236_e6a7),
            mac: Some(crate::processor::Mac([2, 0x4c, 2, 0x36, 0xe6, 0xa7])),
            address: "127.0.1.1".parse().unwrap(),
            product: "RadioRA 3 Processor".into(),
            device_uid: "000000000000".into(),
            ca_sha256: Some("AB:CD".into()),
            model: None,
            firmware: None,
            credential_dir: PathBuf::from("/var/lib/handoff/credentials/37152423"),
            files: vec![PathBuf::from(
                "/var/lib/handoff/credentials/37152423/key.pem",
            )],
            exported: Vec::new(),
        };
        let back = ClaimOutcome::try_from(ClaimedProcessor::from(&outcome)).unwrap();
        assert_eq!(back, outcome);
        let mut bad = ClaimedProcessor::from(&outcome);
        bad.address = "lutron-0236e6a7".into();
        assert!(
            ClaimOutcome::try_from(bad)
                .unwrap_err()
                .contains("as the processor's address")
        );
    }

    #[test]
    fn a_device_uid_is_twelve_hex_digits() {
        assert_eq!(
            parse_device_uid("024C0236E6A7").as_deref(),
            Ok("024c0236e6a7")
        );
        for bad in [
            "",
            "024c0236e6a",
            "024c0236e6a7f",
            "02:4c:02:36:e6",
            "zzzzzzzzzzzz",
        ] {
            assert!(parse_device_uid(bad).is_err(), "{bad}");
        }
    }
}
