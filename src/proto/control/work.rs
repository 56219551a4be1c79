//! The control messages for work the daemon performs for a command: a
//! claim (with its button countdown streamed back as `progress`), a
//! release, and the fate of an event queued earlier (`outcome`).

use serde::{Deserialize, Serialize};

use crate::processor::{Mac, Serial};
use crate::proto::{EventId, IssuedLink};

/// What the cloud said about an event the daemon queued, as `queued` and
/// `done` carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudResult {
    /// The event's id in the daemon's outbox.
    pub id: EventId,
    /// `applied`, `refused`, or `queued` (no answer from the cloud yet).
    #[serde(rename = "res")]
    pub result: String,
    /// For `refused`: the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For `refused`: what to do; for `queued`: why there is no answer yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// For an applied `new-share-link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<IssuedLink>,
}

/// The key a pairing generates, as the wire names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// RSA-2048, as real clients send.
    Rsa,
    /// EC P-256.
    Ec,
}

/// Client → daemon: pair with a processor by its button. The daemon finds
/// it in its inventory (or at `addr`), pairs with its own pairing
/// identity and keeps the credential in its state directory. Only with
/// `homeowner` does it also queue the `claimed` event, which makes its
/// cloud account the Place's homeowner: pairing alone never touches the
/// cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    #[serde(rename = "r")]
    pub request: u64,
    /// PROCESSOR as the CLI takes it: serial, id, MAC, host or address.
    #[serde(rename = "proc")]
    pub processor: String,
    /// Pair with this address instead of looking the processor up.
    #[serde(rename = "addr", default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The button window in seconds; absent: the daemon's `button_timeout`.
    #[serde(rename = "button-s", default, skip_serializing_if = "Option::is_none")]
    pub button_s: Option<u64>,
    /// The key to generate; absent: RSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyKind>,
    /// The CSR's DeviceUID, 12 hex digits; absent: the MAC of the daemon's
    /// interface towards the processor.
    #[serde(rename = "uid", default, skip_serializing_if = "Option::is_none")]
    pub device_uid: Option<String>,
    /// How long to wait for the cloud's answer once the claim is queued.
    #[serde(rename = "wait-ms", default)]
    pub wait_ms: u64,
    /// Also claim the system in the cloud as the daemon's account (the
    /// vendor's homeowner claim). Absent: pair only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub homeowner: bool,
}

/// Client → daemon: Remove Home from Account (queue `released`, and
/// forget the credential once the cloud applied it), or with `unpair`
/// only forget the credential, never telling the cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    #[serde(rename = "r")]
    pub request: u64,
    #[serde(rename = "proc")]
    pub processor: String,
    #[serde(rename = "wait-ms", default)]
    pub wait_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpair: bool,
}

/// Client → daemon: what became of an event queued earlier; answered with
/// `queued` once the cloud has answered or `wait-ms` passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRequest {
    #[serde(rename = "r")]
    pub request: u64,
    pub id: EventId,
    #[serde(rename = "wait-ms", default)]
    pub wait_ms: u64,
}

/// The steps of a claim, as `progress` names them.
pub mod step {
    /// The processor was found; `what` describes it.
    pub const FOUND: &str = "found";
    /// The pairing port is open and the button window runs: `left-ms`.
    pub const BUTTON: &str = "button";
    /// The button was pressed; the processor signs the certificate.
    pub const PRESSED: &str = "pressed";
    /// Checking the processor's identity on its main port.
    pub const VERIFYING: &str = "verifying";
    /// The credential is stored; the event goes to the cloud.
    pub const RELAYING: &str = "relaying";
    /// A takeover's step, told in `what`.
    pub const TAKEOVER: &str = "takeover";
}

/// Daemon → client, during a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(rename = "r")]
    pub request: u64,
    /// One of [`step`], or a newer step (a client shows `what`).
    pub step: String,
    /// For [`step::BUTTON`]: how long the window stays open.
    #[serde(rename = "left-ms", default, skip_serializing_if = "Option::is_none")]
    pub left_ms: Option<u64>,
    /// For people: the processor, e.g. "RadioRA 3 Processor 0236e6a7 (MAC …) at 127.0.1.1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
}

/// A processor the daemon claimed, and where it keeps the credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedProcessor {
    pub id: String,
    #[serde(rename = "sn")]
    pub serial: Serial,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_mac"
    )]
    pub mac: Option<Mac>,
    #[serde(rename = "addr")]
    pub address: String,
    pub product: String,
    #[serde(rename = "uid")]
    pub device_uid: String,
    /// The SHA-256 fingerprint of the processor CA pinned at the claim.
    #[serde(rename = "ca", default, skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<String>,
    /// The credential's directory on the daemon's machine.
    pub dir: String,
    pub files: Vec<String>,
}

/// A processor whose credential the daemon forgot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedProcessor {
    pub id: String,
    #[serde(rename = "sn")]
    pub serial: Serial,
}

/// Daemon → client: the end of a claim or release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    #[serde(rename = "r")]
    pub request: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<ClaimedProcessor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<ReleasedProcessor>,
    /// How a takeover ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover: Option<TakeoverResult>,
    /// The event's fate at the cloud (claim, release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudResult>,
}

/// Client → daemon: the Place's cloud state for a processor, asked by the
/// daemon over its own link to the cloud (its enrolled account).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    #[serde(rename = "r")]
    pub request: u64,
    /// PROCESSOR as the CLI takes it; one named by address or host name is
    /// looked up in the daemon's inventory.
    #[serde(rename = "proc")]
    pub processor: String,
    /// How long the daemon may take to ask the cloud.
    #[serde(rename = "wait-ms", default)]
    pub wait_ms: u64,
}

/// Daemon → client: what the cloud said, as relay.cddl's place-status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    #[serde(rename = "r")]
    pub request: u64,
    #[serde(rename = "st", with = "crate::proto::wire::status_text")]
    pub status: crate::place::Status,
    #[serde(rename = "why")]
    pub guidance: String,
    #[serde(rename = "sn")]
    pub serial: Serial,
    #[serde(with = "crate::proto::wire::mac_bytes")]
    pub mac: Mac,
    /// The Place, when the daemon's account may know it.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub place: Option<crate::place::PlaceId>,
    /// The account the daemon acts for (its enrolled identity).
    #[serde(rename = "acct")]
    pub account: String,
    /// Whether that account has access now (relay.cddl's `acc`).
    #[serde(rename = "acc", default, skip_serializing_if = "Option::is_none")]
    pub access: Option<bool>,
}

impl StatusReport {
    /// The cloud's answer as the relay carries it, and the account asking.
    pub fn into_place_status(self) -> (crate::proto::PlaceStatus, String) {
        let status = crate::proto::PlaceStatus {
            query: 1,
            status: self.status,
            guidance: self.guidance,
            serial: self.serial,
            mac: self.mac,
            place: self.place,
            access: self.access,
        };
        (status, self.account)
    }
}

/// Client → daemon: take a processor over (claim with the button, share
/// the Place to a pro account, Remove Home from Account), the daemon doing
/// every step and keeping the takeover's record in its state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverRequest {
    #[serde(rename = "r")]
    pub request: u64,
    #[serde(rename = "proc")]
    pub processor: String,
    #[serde(rename = "share-to")]
    pub share_to: String,
    /// `1d`, `7d`, `30d`, `1y` or `unlimited`; absent: `7d`.
    #[serde(
        rename = "for",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_access_duration"
    )]
    pub duration: Option<crate::place::AccessDuration>,
    #[serde(rename = "button-s", default, skip_serializing_if = "Option::is_none")]
    pub button_s: Option<u64>,
    /// How long each step waits for the cloud before the takeover stops
    /// (queued; run it again to continue).
    #[serde(rename = "wait-ms", default)]
    pub wait_ms: u64,
}

/// How a takeover the daemon ran ended (`done`'s `takeover`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverResult {
    /// `done`, `refused`, `interrupted`, `nothing-to-do`, `not-applicable`
    /// or `cancelled`.
    #[serde(rename = "res")]
    pub result: String,
    /// For `refused` and `interrupted`: the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The guidance (`refused`, `not-applicable`) or the reason
    /// (`interrupted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// For `not-applicable`.
    #[serde(
        rename = "st",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_status_text"
    )]
    pub status: Option<crate::place::Status>,
    #[serde(rename = "sn", default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_mac"
    )]
    pub mac: Option<Mac>,
    #[serde(rename = "acct", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(rename = "share-to", default, skip_serializing_if = "Option::is_none")]
    pub share_to: Option<String>,
    #[serde(
        rename = "for",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_access_duration"
    )]
    pub duration: Option<crate::place::AccessDuration>,
    /// RFC 3339; absent for unlimited access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}
