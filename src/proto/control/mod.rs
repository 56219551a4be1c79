//! The control messages (`proto/control.cddl`): the CLI asks the daemon
//! over its Unix socket for the inventory, a stream of inventory changes,
//! or its health.
//!
//! Framed exactly as the relay ([`super::frame`]: 4-byte length, one
//! deterministic CBOR map of at most [`super::MAX_ITEM`] bytes); [`decode`]
//! and [`encode`] are the frame codec's generic halves applied to
//! [`ControlMessage`]. Pure: no I/O, no clock.
//!
//! A processor travels as the facts discovery read (serial, MAC, host,
//! addresses, TXT values, warnings), not as `discover --json` prints them:
//! the client rebuilds the same [`ProcessorInfo`] and prints it with the
//! same code as a standalone discover, so both outputs are identical.

mod house;
mod processor;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
mod work;

use ciborium::Value;
use serde::{Deserialize, Serialize};

use super::error::ProtoError;
use super::frame::{FrameMessage, MAX_ITEM, canonical, decode_as, encode_message};
use super::relay::{from_value, kind_of, text_entry, to_map};
use crate::processor::ProcessorInfo;

pub use house::{
    HouseArea, HouseEnd, HouseStart, HouseWarnings, InspectRequest, house_area_frames,
    house_warnings_frames,
};
pub use processor::ProcessorWire;
pub use work::{
    ClaimRequest, ClaimedProcessor, CloudResult, Done, KeyKind, OutcomeRequest, Progress,
    ReleaseRequest, ReleasedProcessor, StatusReport, StatusRequest, TakeoverRequest,
    TakeoverResult, step,
};

/// The codes of [`ControlError::code`]. A client must treat a code it does
/// not know as a generic error and show the reason.
pub mod error_code {
    /// The frame was not CBOR, not a map, or did not fit the schema; the
    /// connection closes after it.
    pub const MALFORMED: &str = "malformed";
    /// The length prefix was over the cap; the connection closes after it.
    pub const TOO_LARGE: &str = "too-large";
    /// A request kind the daemon does not know; the connection stays open.
    pub const UNKNOWN_KIND: &str = "unknown-kind";
    /// A request this daemon cannot serve as configured (e.g. `queue`
    /// without a relay): the command does the work itself.
    pub const NOT_IMPLEMENTED: &str = "not-implemented";
    /// The daemon serves as many connections as it allows; try again.
    pub const BUSY: &str = "busy";
    /// A watch client fell too far behind; the connection closes.
    pub const LAGGED: &str = "lagged";
    /// The daemon failed; not the client's fault.
    pub const INTERNAL: &str = "internal";
    /// The work asked for (a claim, a release) could not be done; `why`
    /// says what happened and what to do. Nothing was stored.
    pub const FAILED: &str = "failed";
    /// The client went away or the daemon is stopping: the work was
    /// abandoned before anything was stored.
    pub const CANCELLED: &str = "cancelled";
    /// `outcome` named an event the daemon's outbox does not hold.
    pub const UNKNOWN_EVENT: &str = "unknown-event";
}

/// One control message, either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    /// Client → daemon: the processors known now.
    Inventory(Request),
    /// Client → daemon: every processor known now, then every change.
    Watch(Request),
    /// Client → daemon: how the daemon is doing.
    Health(Request),
    /// Daemon → client: part of the inventory (see [`Processors::more`]).
    Processors(Processors),
    /// Daemon → client, on a watch: one inventory change.
    Event(Box<WatchEvent>),
    /// Daemon → client: the answer to `Health`.
    HealthReport(HealthReport),
    /// Client → daemon: queue this event in the daemon's outbox (the
    /// daemon owns it while it runs) and wait up to `wait-ms` for the
    /// cloud's answer.
    Queue(Box<QueueRequest>),
    /// Daemon → client: the event is durable under `id`; what the cloud
    /// said, if it answered in time.
    Queued(Queued),
    /// Client → daemon: what became of an event queued earlier.
    Outcome(OutcomeRequest),
    /// Client → daemon: claim a processor with its button.
    Claim(Box<ClaimRequest>),
    /// Client → daemon: forget a processor's credential, queue `released`.
    Release(ReleaseRequest),
    /// Daemon → client, during a claim: the step it is at.
    Progress(Progress),
    /// Daemon → client: a claim or release finished.
    Done(Box<Done>),
    /// Client → daemon: read the configuration again and apply it.
    Reload(Request),
    /// Client → daemon: the Place's cloud state for a processor.
    Status(StatusRequest),
    /// Daemon → client: the answer to `Status`.
    StatusReport(Box<StatusReport>),
    /// Client → daemon: take a processor over.
    Takeover(Box<TakeoverRequest>),
    /// Daemon → client: the configuration was applied.
    Reloaded(Reloaded),
    /// Client → daemon: read a claimed processor's house.
    Inspect(InspectRequest),
    /// Daemon → client: the house report begins.
    HouseStart(Box<HouseStart>),
    /// Daemon → client: one area of the house, or part of one.
    HouseArea(Box<HouseArea>),
    /// Daemon → client: some of the report's warnings.
    HouseWarnings(HouseWarnings),
    /// Daemon → client: the report is complete.
    HouseEnd(Box<HouseEnd>),
    /// Either way: why a frame was not acted on. Never a silent close.
    Error(ControlError),
    /// A kind this build does not know. Decoded, never encoded.
    Unknown { kind: String },
}

/// A request's number, echoed by every answer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(rename = "r")]
    pub request: u64,
}

/// Processors in inventory order, one frame's worth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processors {
    pub request: u64,
    pub list: Vec<ProcessorInfo>,
    /// Another `Processors` frame follows for the same request.
    pub more: bool,
}

#[derive(Serialize, Deserialize)]
struct ProcessorsWire {
    r: u64,
    list: Vec<ProcessorWire>,
    #[serde(default, skip_serializing_if = "is_false")]
    more: bool,
}

/// What happened to a processor, as `discover --watch` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Changed,
    Removed,
}

impl Change {
    /// The word `discover --watch` prints.
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Removed => "removed",
        }
    }
}

/// One inventory change on a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub request: u64,
    pub change: Change,
    /// For [`Change::Changed`]: which facts changed (`addresses`, …).
    pub changes: Vec<String>,
    /// As it is now; as it was, for a removal.
    pub processor: ProcessorInfo,
}

impl WatchEvent {
    /// The event for a change the inventory reported.
    pub fn of(request: u64, event: &crate::discovery::InventoryEvent) -> WatchEvent {
        use crate::discovery::InventoryEvent;
        let (change, changes) = match event {
            InventoryEvent::Added(_) => (Change::Added, Vec::new()),
            InventoryEvent::Changed { changes, .. } => (
                Change::Changed,
                changes.iter().map(|c| (*c).to_owned()).collect(),
            ),
            InventoryEvent::Removed(_) => (Change::Removed, Vec::new()),
        };
        WatchEvent {
            request,
            change,
            changes,
            processor: event.processor().clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WatchEventWire {
    r: u64,
    ev: Change,
    p: ProcessorWire,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    chg: Vec<String>,
}

/// An event for the cloud, handed to the daemon's outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRequest {
    pub request: u64,
    pub event: crate::proto::EventKind,
    /// How long the daemon waits for the cloud's answer before answering
    /// `queued` without one.
    pub wait_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct QueueWire {
    r: u64,
    #[serde(rename = "wait-ms")]
    wait_ms: u64,
}

/// The daemon's answer to [`QueueRequest`] and [`OutcomeRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub request: u64,
    pub cloud: CloudResult,
}

/// The daemon read its configuration again and applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    #[serde(rename = "r")]
    pub request: u64,
    /// Settings that take effect only when the daemon restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<String>,
}

/// How the daemon is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    #[serde(rename = "r")]
    pub request: u64,
    /// Processors in the inventory.
    #[serde(rename = "n")]
    pub processors: u64,
    #[serde(rename = "up-ms")]
    pub uptime_ms: u64,
    /// Since the last discovery event; `None` before the first.
    #[serde(rename = "last-ms", default, skip_serializing_if = "Option::is_none")]
    pub last_event_ms: Option<u64>,
    pub pid: u32,
    #[serde(rename = "sw")]
    pub software: String,
    /// The relay's backlog and cloud; `None` while the daemon relays to no
    /// cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayHealth>,
}

/// The outbox as the relay sees it, for `handoff health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHealth {
    /// Events in the outbox not yet acknowledged by the cloud.
    pub backlog: u64,
    /// Age of the oldest of them; `None` when the backlog is empty.
    #[serde(rename = "oldest-ms", default, skip_serializing_if = "Option::is_none")]
    pub oldest_unsent_ms: Option<u64>,
    /// The cloud it relays to (host:port), so a command can say where a
    /// homeowner claim goes before it acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// The account its identity acts for in that cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Whether a connection to the cloud is up; `None` from a daemon that
    /// does not say.
    #[serde(rename = "up", default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Why the last connection ended, if one did (kept after reconnecting).
    #[serde(rename = "err", default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The code of the cloud's error frame that ended it (relay.cddl's
    /// error codes: `revoked` when the operator revoked this site box).
    #[serde(rename = "err-code", default, skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<String>,
}

/// Why a frame was not acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    /// One of [`error_code`], or a newer code.
    pub code: String,
    /// For people.
    #[serde(rename = "why")]
    pub reason: String,
    /// The request it answers, when one was read.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
}

impl ControlError {
    pub fn new(code: &str, reason: impl Into<String>, request: Option<u64>) -> ControlError {
        ControlError {
            code: code.into(),
            reason: reason.into(),
            request,
        }
    }

    /// The frame that answers a frame which could not be decoded.
    pub fn for_decode_error(err: &ProtoError) -> ControlError {
        let code = match err {
            ProtoError::Oversized { .. } => error_code::TOO_LARGE,
            ProtoError::Unencodable { .. } => error_code::INTERNAL,
            _ => error_code::MALFORMED,
        };
        ControlError::new(code, err.to_string(), None)
    }

    /// The frame that answers a message of a kind the daemon does not serve.
    pub fn for_unserved_kind(kind: &str) -> ControlError {
        ControlError::new(
            error_code::UNKNOWN_KIND,
            format!("unknown message kind \"{kind}\""),
            None,
        )
    }
}

impl ControlMessage {
    /// Every kind a vector must exist for, as the `"k"` values.
    pub const KINDS: [&'static str; 24] = [
        "inventory",
        "watch",
        "health",
        "processors",
        "event",
        "health-report",
        "queue",
        "queued",
        "outcome",
        "claim",
        "release",
        "progress",
        "done",
        "reload",
        "reloaded",
        "status",
        "status-report",
        "takeover",
        "inspect",
        "house-start",
        "house-area",
        "house-warnings",
        "house-end",
        "error",
    ];

    /// The `"k"` of this message.
    pub fn kind(&self) -> &str {
        match self {
            ControlMessage::Inventory(_) => "inventory",
            ControlMessage::Watch(_) => "watch",
            ControlMessage::Health(_) => "health",
            ControlMessage::Processors(_) => "processors",
            ControlMessage::Event(_) => "event",
            ControlMessage::HealthReport(_) => "health-report",
            ControlMessage::Queue(_) => "queue",
            ControlMessage::Queued(_) => "queued",
            ControlMessage::Outcome(_) => "outcome",
            ControlMessage::Claim(_) => "claim",
            ControlMessage::Release(_) => "release",
            ControlMessage::Progress(_) => "progress",
            ControlMessage::Done(_) => "done",
            ControlMessage::Reload(_) => "reload",
            ControlMessage::Reloaded(_) => "reloaded",
            ControlMessage::Status(_) => "status",
            ControlMessage::StatusReport(_) => "status-report",
            ControlMessage::Takeover(_) => "takeover",
            ControlMessage::Inspect(_) => "inspect",
            ControlMessage::HouseStart(_) => "house-start",
            ControlMessage::HouseArea(_) => "house-area",
            ControlMessage::HouseWarnings(_) => "house-warnings",
            ControlMessage::HouseEnd(_) => "house-end",
            ControlMessage::Error(_) => "error",
            ControlMessage::Unknown { kind } => kind,
        }
    }

    /// The request this message is or answers, if it names one.
    pub fn request(&self) -> Option<u64> {
        match self {
            ControlMessage::Inventory(r)
            | ControlMessage::Watch(r)
            | ControlMessage::Health(r)
            | ControlMessage::Reload(r) => Some(r.request),
            ControlMessage::Reloaded(m) => Some(m.request),
            ControlMessage::Status(m) => Some(m.request),
            ControlMessage::StatusReport(m) => Some(m.request),
            ControlMessage::Takeover(m) => Some(m.request),
            ControlMessage::Processors(m) => Some(m.request),
            ControlMessage::Event(m) => Some(m.request),
            ControlMessage::HealthReport(m) => Some(m.request),
            ControlMessage::Queue(m) => Some(m.request),
            ControlMessage::Queued(m) => Some(m.request),
            ControlMessage::Outcome(m) => Some(m.request),
            ControlMessage::Claim(m) => Some(m.request),
            ControlMessage::Release(m) => Some(m.request),
            ControlMessage::Progress(m) => Some(m.request),
            ControlMessage::Done(m) => Some(m.request),
            ControlMessage::Inspect(m) => Some(m.request),
            ControlMessage::HouseStart(m) => Some(m.request),
            ControlMessage::HouseArea(m) => Some(m.request),
            ControlMessage::HouseWarnings(m) => Some(m.request),
            ControlMessage::HouseEnd(m) => Some(m.request),
            ControlMessage::Error(m) => m.request,
            ControlMessage::Unknown { .. } => None,
        }
    }
}

impl FrameMessage for ControlMessage {
    fn to_value(&self) -> Result<Value, ProtoError> {
        let mut map = match self {
            ControlMessage::Inventory(m)
            | ControlMessage::Watch(m)
            | ControlMessage::Health(m)
            | ControlMessage::Reload(m) => to_map(m)?,
            ControlMessage::Reloaded(m) => to_map(m)?,
            ControlMessage::Status(m) => to_map(m)?,
            ControlMessage::StatusReport(m) => to_map(m)?,
            ControlMessage::Takeover(m) => to_map(m)?,
            ControlMessage::Processors(m) => to_map(&ProcessorsWire {
                r: m.request,
                list: m.list.iter().map(ProcessorWire::from).collect(),
                more: m.more,
            })?,
            ControlMessage::Event(m) => to_map(&WatchEventWire {
                r: m.request,
                ev: m.change,
                p: ProcessorWire::from(&m.processor),
                chg: m.changes.clone(),
            })?,
            ControlMessage::HealthReport(m) => to_map(m)?,
            ControlMessage::Queue(m) => {
                let mut ev = m.event.to_value()?;
                ev.push(text_entry("k", m.event.kind()));
                let mut map = to_map(&QueueWire {
                    r: m.request,
                    wait_ms: m.wait_ms,
                })?;
                map.push((Value::Text("ev".into()), Value::Map(ev)));
                map
            }
            ControlMessage::Queued(m) => {
                let mut map = to_map(&m.cloud)?;
                map.extend(to_map(&Request { request: m.request })?);
                map
            }
            ControlMessage::Outcome(m) => to_map(m)?,
            ControlMessage::Claim(m) => to_map(m)?,
            ControlMessage::Release(m) => to_map(m)?,
            ControlMessage::Progress(m) => to_map(m)?,
            ControlMessage::Done(m) => to_map(m)?,
            ControlMessage::Inspect(m) => to_map(m)?,
            ControlMessage::HouseStart(m) => to_map(m)?,
            ControlMessage::HouseArea(m) => to_map(m)?,
            ControlMessage::HouseWarnings(m) => to_map(m)?,
            ControlMessage::HouseEnd(m) => to_map(m)?,
            ControlMessage::Error(m) => to_map(m)?,
            ControlMessage::Unknown { kind } => {
                return Err(ProtoError::Unencodable {
                    reason: format!("\"{kind}\" is not a message kind this build can send"),
                });
            }
        };
        map.push(text_entry("k", self.kind()));
        Ok(canonical(Value::Map(map)))
    }

    fn from_map(map: &[(Value, Value)]) -> Result<ControlMessage, ProtoError> {
        let kind = kind_of(map)?;
        let invalid = |reason: String| ProtoError::Invalid {
            kind: kind.to_owned(),
            reason,
        };
        let map = Value::Map(map.to_vec());
        Ok(match kind {
            "inventory" => ControlMessage::Inventory(from_value(&map).map_err(invalid)?),
            "watch" => ControlMessage::Watch(from_value(&map).map_err(invalid)?),
            "health" => ControlMessage::Health(from_value(&map).map_err(invalid)?),
            "processors" => {
                let wire: ProcessorsWire = from_value(&map).map_err(invalid)?;
                let list = wire
                    .list
                    .into_iter()
                    .map(ProcessorInfo::try_from)
                    .collect::<Result<_, _>>()
                    .map_err(invalid)?;
                ControlMessage::Processors(Processors {
                    request: wire.r,
                    list,
                    more: wire.more,
                })
            }
            "event" => {
                let wire: WatchEventWire = from_value(&map).map_err(invalid)?;
                ControlMessage::Event(Box::new(WatchEvent {
                    request: wire.r,
                    change: wire.ev,
                    changes: wire.chg,
                    processor: ProcessorInfo::try_from(wire.p).map_err(invalid)?,
                }))
            }
            "health-report" => ControlMessage::HealthReport(from_value(&map).map_err(invalid)?),
            "queue" => {
                let wire: QueueWire = from_value(&map).map_err(invalid)?;
                let Value::Map(entries) = &map else {
                    return Err(invalid("not a map".into()));
                };
                let ev = entries
                    .iter()
                    .find_map(|(k, v)| match (k, v) {
                        (Value::Text(k), Value::Map(ev)) if k == "ev" => Some(ev),
                        _ => None,
                    })
                    .ok_or_else(|| invalid("\"ev\" is missing or not a map".into()))?;
                let event = crate::proto::EventKind::from_map(ev)?;
                if let crate::proto::EventKind::Unknown { kind } = &event {
                    // Nothing could relay it: refuse it here, not later.
                    return Err(invalid(format!("\"{kind}\" is not an event kind")));
                }
                ControlMessage::Queue(Box::new(QueueRequest {
                    request: wire.r,
                    event,
                    wait_ms: wire.wait_ms,
                }))
            }
            "queued" => {
                let Request { request } = from_value(&map).map_err(invalid)?;
                let cloud = from_value(&map).map_err(invalid)?;
                ControlMessage::Queued(Queued { request, cloud })
            }
            "outcome" => ControlMessage::Outcome(from_value(&map).map_err(invalid)?),
            "claim" => ControlMessage::Claim(Box::new(from_value(&map).map_err(invalid)?)),
            "release" => ControlMessage::Release(from_value(&map).map_err(invalid)?),
            "progress" => ControlMessage::Progress(from_value(&map).map_err(invalid)?),
            "done" => ControlMessage::Done(Box::new(from_value(&map).map_err(invalid)?)),
            "reload" => ControlMessage::Reload(from_value(&map).map_err(invalid)?),
            "reloaded" => ControlMessage::Reloaded(from_value(&map).map_err(invalid)?),
            "status" => ControlMessage::Status(from_value(&map).map_err(invalid)?),
            "takeover" => ControlMessage::Takeover(Box::new(from_value(&map).map_err(invalid)?)),
            "status-report" => {
                ControlMessage::StatusReport(Box::new(from_value(&map).map_err(invalid)?))
            }
            "inspect" => ControlMessage::Inspect(from_value(&map).map_err(invalid)?),
            "house-start" => {
                ControlMessage::HouseStart(Box::new(from_value(&map).map_err(invalid)?))
            }
            "house-area" => ControlMessage::HouseArea(Box::new(from_value(&map).map_err(invalid)?)),
            "house-warnings" => ControlMessage::HouseWarnings(from_value(&map).map_err(invalid)?),
            "house-end" => ControlMessage::HouseEnd(Box::new(from_value(&map).map_err(invalid)?)),
            "error" => ControlMessage::Error(from_value(&map).map_err(invalid)?),
            other => ControlMessage::Unknown {
                kind: other.to_owned(),
            },
        })
    }
}

/// Decodes one whole control frame, prefix included (see
/// [`super::frame::check`] to delimit it).
///
/// # Errors
/// As [`super::decode`]; an unknown kind is [`ControlMessage::Unknown`].
pub fn decode(frame: &[u8]) -> Result<ControlMessage, ProtoError> {
    decode_as(frame)
}

/// The frame for `msg`, prefix included.
///
/// # Errors
/// [`ProtoError::Unencodable`] for `Unknown`, or over [`MAX_ITEM`].
pub fn encode(msg: &ControlMessage) -> Result<Vec<u8>, ProtoError> {
    encode_message(msg)
}

/// What one `Processors` frame may spend on its list: the cap, less room
/// for the rest of the map (`k`, `r`, `more` and the headers take under
/// 64 bytes).
const LIST_BUDGET: usize = MAX_ITEM - 256;

/// The inventory as `Processors` frames that each fit in a frame, in
/// order; at least one (an empty inventory is one empty list).
///
/// # Errors
/// [`ProtoError::Unencodable`] if a single processor would not fit in a
/// frame (it cannot: its text fields are bounded far below that).
pub fn processors_frames(
    request: u64,
    processors: impl IntoIterator<Item = ProcessorInfo>,
) -> Result<Vec<ControlMessage>, ProtoError> {
    let mut frames = Vec::new();
    let mut list = Vec::new();
    let mut used = 0;
    for p in processors {
        let size = processor::encoded_len(&p)?;
        if size > LIST_BUDGET {
            return Err(ProtoError::Unencodable {
                reason: format!(
                    "processor {} takes {size} bytes, more than a frame holds",
                    p.id().unwrap_or_else(|| p.instance.clone())
                ),
            });
        }
        if used + size > LIST_BUDGET {
            frames.push(ControlMessage::Processors(Processors {
                request,
                list: std::mem::take(&mut list),
                more: true,
            }));
            used = 0;
        }
        used += size;
        list.push(p);
    }
    frames.push(ControlMessage::Processors(Processors {
        request,
        list,
        more: false,
    }));
    Ok(frames)
}

fn is_false(b: &bool) -> bool {
    !*b
}
