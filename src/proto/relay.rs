//! The relay messages (`proto/relay.cddl`) and their CBOR maps.
//!
//! Every message is one map whose key `"k"` names its kind; an event nests
//! a second map, under `"ev"`, whose own `"k"` names the event. Keys are
//! short text. Unknown keys are ignored (so a newer peer may add optional
//! fields); an unknown message or event kind decodes to an `Unknown`
//! variant so that the cloud can answer with an [`ErrorFrame`] instead of
//! dropping the connection.
//!
//! Field types are the cloud's own where they exist ([`PlaceId`],
//! [`Serial`], [`Mac`], [`AccessDuration`], [`Status`], [`Timestamp`]).
//! Emails stay as sent: the cloud normalises them with
//! [`crate::place::AccountId::new`] when it applies an event, and a decoder
//! that rewrote them could not re-encode a frame byte for byte.

use ciborium::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ProtoError;
use super::frame::canonical;
use crate::place::{AccessDuration, PlaceId, Status, Timestamp};
use crate::processor::{Mac, Serial};

/// The one version this build speaks. `Hello` lists every version the
/// daemon speaks; `HelloAck` names the one the cloud chose.
pub const PROTOCOL_VERSION: u64 = 1;

/// The codes of [`ErrorFrame::code`]. A peer must treat a code it does not
/// know as a generic error and show the reason.
pub mod error_code {
    /// The frame was not CBOR, not a map, or did not fit the schema.
    pub const MALFORMED: &str = "malformed";
    /// The length prefix was over the cap; the connection closes after it.
    pub const TOO_LARGE: &str = "too-large";
    /// A message kind the receiver does not know.
    pub const UNKNOWN_KIND: &str = "unknown-kind";
    /// An event kind the cloud does not know; the frame names the event id.
    pub const UNKNOWN_EVENT: &str = "unknown-event";
    /// No version in common; the connection closes after it.
    pub const UNSUPPORTED_VERSION: &str = "unsupported-version";
    /// Anything but `hello` before the handshake.
    pub const HELLO_FIRST: &str = "hello-first";
    /// A status query for a processor the cloud does not know.
    pub const UNKNOWN_PROCESSOR: &str = "unknown-processor";
    /// The receiver failed; not the sender's fault.
    pub const INTERNAL: &str = "internal";
    /// The cloud's database kept refusing the batch for conflicts with
    /// others; nothing of it was applied: send it again later.
    pub const BUSY: &str = "busy";
    /// The cloud's operator revoked the daemon's identity: sent in place
    /// of hello-ack, or on an open connection, which then closes. The
    /// daemon must be enrolled again under another name.
    pub const REVOKED: &str = "revoked";
}

/// One relay message, either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayMessage {
    /// Daemon → cloud, first on every connection.
    Hello(Hello),
    /// Cloud → daemon, the answer to `Hello`.
    HelloAck(HelloAck),
    /// Daemon → cloud: something to apply once.
    Event(RelayEvent),
    /// Cloud → daemon: what became of an event.
    Ack(Ack),
    /// Daemon → cloud: the Place state of a processor.
    StatusQuery(StatusQuery),
    /// Cloud → daemon: the answer to a `StatusQuery`.
    PlaceStatus(PlaceStatus),
    /// Either way: why a frame was not acted on.
    Error(ErrorFrame),
    /// A kind this build does not know. Decoded, never encoded: the
    /// receiver answers with [`error_code::UNKNOWN_KIND`].
    Unknown { kind: String },
}

impl RelayMessage {
    /// Every kind a vector must exist for, as the `"k"` values.
    pub const KINDS: [&'static str; 7] = [
        "hello",
        "hello-ack",
        "event",
        "ack",
        "status-query",
        "status",
        "error",
    ];

    /// The `"k"` of this message.
    pub fn kind(&self) -> &str {
        match self {
            RelayMessage::Hello(_) => "hello",
            RelayMessage::HelloAck(_) => "hello-ack",
            RelayMessage::Event(_) => "event",
            RelayMessage::Ack(_) => "ack",
            RelayMessage::StatusQuery(_) => "status-query",
            RelayMessage::PlaceStatus(_) => "status",
            RelayMessage::Error(_) => "error",
            RelayMessage::Unknown { kind } => kind,
        }
    }

    /// The message as one CBOR map in deterministic key order.
    pub(crate) fn to_value(&self) -> Result<Value, ProtoError> {
        let body = match self {
            RelayMessage::Hello(m) => to_map(m)?,
            RelayMessage::HelloAck(m) => to_map(m)?,
            RelayMessage::Event(e) => {
                let mut ev = e.kind.to_value()?;
                ev.push(text_entry("k", e.kind.kind()));
                vec![
                    (Value::Text("id".into()), to_value(&e.id)?),
                    (Value::Text("ev".into()), Value::Map(ev)),
                ]
            }
            RelayMessage::Ack(m) => to_map(&AckWire::from(m))?,
            RelayMessage::StatusQuery(m) => to_map(&StatusQueryWire::from(m))?,
            RelayMessage::PlaceStatus(m) => to_map(m)?,
            RelayMessage::Error(m) => to_map(m)?,
            RelayMessage::Unknown { kind } => {
                return Err(ProtoError::Unencodable {
                    reason: format!("\"{kind}\" is not a message kind this build can send"),
                });
            }
        };
        let mut map = body;
        map.push(text_entry("k", self.kind()));
        Ok(canonical(Value::Map(map)))
    }

    /// The message a decoded map holds.
    pub(crate) fn from_map(map: &[(Value, Value)]) -> Result<RelayMessage, ProtoError> {
        let kind = kind_of(map)?;
        let invalid = |reason: String| ProtoError::Invalid {
            kind: kind.to_owned(),
            reason,
        };
        let map = Value::Map(map.to_vec());
        Ok(match kind {
            "hello" => RelayMessage::Hello(from_value(&map).map_err(invalid)?),
            "hello-ack" => RelayMessage::HelloAck(from_value(&map).map_err(invalid)?),
            "event" => {
                let wire: EventWire = from_value(&map).map_err(invalid)?;
                let Value::Map(ev) = &wire.ev else {
                    return Err(invalid("\"ev\" is not a map".into()));
                };
                RelayMessage::Event(RelayEvent {
                    kind: EventKind::from_map(ev)?,
                    id: wire.id,
                })
            }
            "ack" => {
                let wire: AckWire = from_value(&map).map_err(invalid)?;
                RelayMessage::Ack(wire.try_into().map_err(invalid)?)
            }
            "status-query" => {
                let wire: StatusQueryWire = from_value(&map).map_err(invalid)?;
                RelayMessage::StatusQuery(wire.try_into().map_err(invalid)?)
            }
            "status" => RelayMessage::PlaceStatus(from_value(&map).map_err(invalid)?),
            "error" => RelayMessage::Error(from_value(&map).map_err(invalid)?),
            other => RelayMessage::Unknown {
                kind: other.to_owned(),
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Every protocol version the daemon speaks.
    #[serde(rename = "v")]
    pub versions: Vec<u64>,
    /// The daemon's name and version, for the cloud's logs. Optional.
    #[serde(rename = "sw", default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// The version the cloud chose from the daemon's list.
    #[serde(rename = "v")]
    pub version: u64,
}

/// An event's unique id: the daemon that made it and that daemon's
/// sequence number. On the wire, the array `[daemon, seq]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(String, u64)", into = "(String, u64)")]
pub struct EventId {
    pub daemon: String,
    pub seq: u64,
}

impl From<(String, u64)> for EventId {
    fn from((daemon, seq): (String, u64)) -> EventId {
        EventId { daemon, seq }
    }
}

impl From<EventId> for (String, u64) {
    fn from(id: EventId) -> (String, u64) {
        (id.daemon, id.seq)
    }
}

/// Something the daemon relays, to be applied once by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayEvent {
    pub id: EventId,
    pub kind: EventKind,
}

#[derive(Deserialize)]
struct EventWire {
    id: EventId,
    ev: Value,
}

/// What an event asks of the cloud: a claim, or a Place operation the
/// daemon requests on behalf of the account its certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Claimed(Claimed),
    Released(Released),
    ShareAccess(ShareAccess),
    NewShareLink(NewShareLink),
    RedeemLink(RedeemLink),
    RevokeAccess(RevokeAccess),
    /// An event kind this build does not know: the cloud answers with
    /// [`error_code::UNKNOWN_EVENT`] and the event's id.
    Unknown {
        kind: String,
    },
}

impl EventKind {
    /// Every event kind a vector must exist for, as the `"k"` values.
    pub const KINDS: [&'static str; 6] = [
        "claimed",
        "released",
        "share-access",
        "new-share-link",
        "redeem-link",
        "revoke-access",
    ];

    pub fn kind(&self) -> &str {
        match self {
            EventKind::Claimed(_) => "claimed",
            EventKind::Released(_) => "released",
            EventKind::ShareAccess(_) => "share-access",
            EventKind::NewShareLink(_) => "new-share-link",
            EventKind::RedeemLink(_) => "redeem-link",
            EventKind::RevokeAccess(_) => "revoke-access",
            EventKind::Unknown { kind } => kind,
        }
    }

    pub(super) fn to_value(&self) -> Result<Vec<(Value, Value)>, ProtoError> {
        match self {
            EventKind::Claimed(e) => to_map(e),
            EventKind::Released(e) => to_map(e),
            EventKind::ShareAccess(e) => to_map(e),
            EventKind::NewShareLink(e) => to_map(e),
            EventKind::RedeemLink(e) => to_map(e),
            EventKind::RevokeAccess(e) => to_map(e),
            EventKind::Unknown { kind } => Err(ProtoError::Unencodable {
                reason: format!("\"{kind}\" is not an event kind this build can send"),
            }),
        }
    }

    pub(super) fn from_map(map: &[(Value, Value)]) -> Result<EventKind, ProtoError> {
        let kind = kind_of(map)?;
        let invalid = |reason: String| ProtoError::Invalid {
            kind: format!("event {kind}"),
            reason,
        };
        let map = Value::Map(map.to_vec());
        Ok(match kind {
            "claimed" => EventKind::Claimed(from_value(&map).map_err(invalid)?),
            "released" => EventKind::Released(from_value(&map).map_err(invalid)?),
            "share-access" => EventKind::ShareAccess(from_value(&map).map_err(invalid)?),
            "new-share-link" => EventKind::NewShareLink(from_value(&map).map_err(invalid)?),
            "redeem-link" => EventKind::RedeemLink(from_value(&map).map_err(invalid)?),
            "revoke-access" => EventKind::RevokeAccess(from_value(&map).map_err(invalid)?),
            other => EventKind::Unknown {
                kind: other.to_owned(),
            },
        })
    }
}

/// A homeowner claim made with the processor's button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claimed {
    /// The Place, when the daemon knows it; otherwise the cloud finds it
    /// by the processor's serial.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceId>,
    #[serde(rename = "sn")]
    pub serial: Serial,
    #[serde(rename = "mac", with = "crate::proto::wire::mac_bytes")]
    pub mac: Mac,
    /// The DER certificate the processor signed after the button press;
    /// the cloud checks it against the identity it knows for the Place.
    #[serde(rename = "proof", with = "crate::proto::wire::byte_string")]
    pub proof: Vec<u8>,
    /// When the processor signed it, seconds since the Unix epoch.
    pub at: Timestamp,
    /// Proof of possession: a signature by the proof certificate's key over
    /// [`crate::proto::possession::signed_bytes`]. Added by the relay as it
    /// sends the event (it knows the event id and its account); the cloud
    /// refuses a claim without a valid one.
    #[serde(
        rename = "pop",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_byte_string"
    )]
    pub possession: Option<Vec<u8>>,
    /// The processor's model, as the site box's discovery names it
    /// ("RadioRA 3 Processor"). A claim of the site box, not proven:
    /// absent from older daemons, and the cloud drops one that breaks
    /// [`crate::processor::field_text`]'s rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The firmware it advertises (`CODEVER`); as `model`.
    #[serde(rename = "fw", default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

/// Remove Home from Account. Names the Place, or the processor whose
/// Place it is (a daemon that claimed offline may not know the Place id);
/// at least one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceId>,
    #[serde(rename = "sn", default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
}

/// Share the Place with a myLutron email for one of the fixed durations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccess {
    #[serde(rename = "p")]
    pub place: PlaceId,
    pub email: String,
    #[serde(rename = "dur", with = "crate::proto::wire::duration_text")]
    pub duration: AccessDuration,
}

/// Generate a share link (disabling the old one). The cloud chooses the
/// secret and returns the link in the [`Ack`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShareLink {
    #[serde(rename = "p")]
    pub place: PlaceId,
    #[serde(rename = "dur", with = "crate::proto::wire::duration_text")]
    pub duration: AccessDuration,
}

/// Redeem a share link someone sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemLink {
    #[serde(rename = "p")]
    pub place: PlaceId,
    pub link: IssuedLink,
}

/// Revoke an account's access (the daemon's own account included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAccess {
    #[serde(rename = "p")]
    pub place: PlaceId,
    pub email: String,
    /// Revoke the last access even though that deletes the Place.
    /// Optional, false when absent; written only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// A share link on the wire: its number and secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedLink {
    #[serde(rename = "n")]
    pub number: u64,
    #[serde(rename = "s")]
    pub secret: String,
}

/// What became of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub id: EventId,
    pub outcome: Outcome,
    /// The link a `new-share-link` event created (again on a duplicate).
    pub link: Option<IssuedLink>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// This id was applied before; nothing changed this time.
    Duplicate,
    /// The Place rules refused: the cloud's `Refusal::rule` and
    /// `Refusal::guidance`.
    Refused {
        rule: String,
        guidance: String,
    },
}

#[derive(Serialize, Deserialize)]
struct AckWire {
    id: EventId,
    r: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<IssuedLink>,
}

impl From<&Ack> for AckWire {
    fn from(ack: &Ack) -> AckWire {
        let (r, rule, why) = match &ack.outcome {
            Outcome::Applied => ("applied", None, None),
            Outcome::Duplicate => ("duplicate", None, None),
            Outcome::Refused { rule, guidance } => {
                ("refused", Some(rule.clone()), Some(guidance.clone()))
            }
        };
        AckWire {
            id: ack.id.clone(),
            r: r.into(),
            rule,
            why,
            link: ack.link.clone(),
        }
    }
}

impl TryFrom<AckWire> for Ack {
    type Error = String;

    fn try_from(w: AckWire) -> Result<Ack, String> {
        let outcome = match (w.r.as_str(), w.rule, w.why) {
            ("applied", _, _) => Outcome::Applied,
            ("duplicate", _, _) => Outcome::Duplicate,
            ("refused", Some(rule), Some(guidance)) => Outcome::Refused { rule, guidance },
            ("refused", _, _) => return Err("a refusal needs \"rule\" and \"why\"".into()),
            (other, _, _) => return Err(format!("unknown result \"r\": \"{other}\"")),
        };
        Ok(Ack {
            id: w.id,
            outcome,
            link: w.link,
        })
    }
}

/// Which processor a status query is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusQuery {
    ByMac { query: u64, mac: Mac },
    BySerial { query: u64, serial: Serial },
}

#[derive(Serialize, Deserialize)]
struct StatusQueryWire {
    q: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::proto::wire::opt_mac"
    )]
    mac: Option<Mac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sn: Option<Serial>,
}

impl From<&StatusQuery> for StatusQueryWire {
    fn from(q: &StatusQuery) -> StatusQueryWire {
        match *q {
            StatusQuery::ByMac { query, mac } => StatusQueryWire {
                q: query,
                mac: Some(mac),
                sn: None,
            },
            StatusQuery::BySerial { query, serial } => StatusQueryWire {
                q: query,
                mac: None,
                sn: Some(serial),
            },
        }
    }
}

impl TryFrom<StatusQueryWire> for StatusQuery {
    type Error = String;

    fn try_from(w: StatusQueryWire) -> Result<StatusQuery, String> {
        match (w.mac, w.sn) {
            (Some(mac), None) => Ok(StatusQuery::ByMac { query: w.q, mac }),
            (None, Some(serial)) => Ok(StatusQuery::BySerial { query: w.q, serial }),
            _ => Err("a status query names exactly one of \"mac\" and \"sn\"".into()),
        }
    }
}

/// The designer's cloud icon for a processor's Place, with the vendor's
/// guidance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceStatus {
    /// The query this answers.
    #[serde(rename = "q")]
    pub query: u64,
    #[serde(rename = "st", with = "crate::proto::wire::status_text")]
    pub status: Status,
    #[serde(rename = "why")]
    pub guidance: String,
    #[serde(rename = "sn")]
    pub serial: Serial,
    #[serde(rename = "mac", with = "crate::proto::wire::mac_bytes")]
    pub mac: Mac,
    /// The Place, when the asking account may know it. Optional.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceId>,
    /// Whether the asking account has access now: green alone does not say
    /// (no homeowner yet is green for everyone). Absent from older clouds.
    #[serde(rename = "acc", default, skip_serializing_if = "Option::is_none")]
    pub access: Option<bool>,
}

/// Why a frame was not acted on. Never a silent close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// One of [`error_code`], or a newer code.
    pub code: String,
    /// For people.
    #[serde(rename = "why")]
    pub reason: String,
    /// The event the error is about, if any. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// The query the error is about, if any. Optional.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub query: Option<u64>,
}

impl ErrorFrame {
    /// The frame that answers a frame which could not be decoded.
    pub fn for_decode_error(err: &ProtoError) -> ErrorFrame {
        ErrorFrame {
            code: err.code().into(),
            reason: err.to_string(),
            id: None,
            query: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

pub(super) fn text_entry(key: &str, value: &str) -> (Value, Value) {
    (Value::Text(key.into()), Value::Text(value.into()))
}

/// The text under `"k"`: exactly one, and text.
pub(super) fn kind_of(map: &[(Value, Value)]) -> Result<&str, ProtoError> {
    let mut kinds = map
        .iter()
        .filter(|(k, _)| matches!(k, Value::Text(t) if t == "k"));
    match (kinds.next(), kinds.next()) {
        (Some((_, Value::Text(kind))), None) => Ok(kind),
        _ => Err(ProtoError::MissingKind),
    }
}

pub(super) fn to_value<T: Serialize>(v: &T) -> Result<Value, ProtoError> {
    Value::serialized(v)
        .map_err(|ciborium::value::Error::Custom(reason)| ProtoError::Unencodable { reason })
}

pub(super) fn to_map<T: Serialize>(v: &T) -> Result<Vec<(Value, Value)>, ProtoError> {
    match to_value(v)? {
        Value::Map(entries) => Ok(entries),
        _ => Err(ProtoError::Unencodable {
            reason: "a message body must be a map".into(),
        }),
    }
}

pub(super) fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    // ciborium's Display of this error is its Debug; take the message.
    v.deserialized()
        .map_err(|ciborium::value::Error::Custom(reason)| reason)
}
