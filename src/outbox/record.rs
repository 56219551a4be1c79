//! How an event and an outcome are stored: a version byte, then for an
//! event the append time (milliseconds since the Unix epoch, 8 bytes big
//! endian) and the event's relay frame; for an outcome the ack's relay
//! frame. Reusing the relay codec means a stored event is exactly what is
//! sent, and its decoder's checks guard the store too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::{self, Ack, EventId, RelayEvent, RelayMessage};

const VERSION: u8 = 1;
const AT_LEN: usize = 8;

/// The stored bytes of `event`, appended at `at`.
pub(super) fn encode_event(event: &RelayEvent, at: SystemTime) -> Result<Vec<u8>, String> {
    let frame = proto::encode(&RelayMessage::Event(event.clone())).map_err(|e| e.to_string())?;
    let millis = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(1 + AT_LEN + frame.len());
    out.push(VERSION);
    out.extend_from_slice(&millis.to_be_bytes());
    out.extend_from_slice(&frame);
    Ok(out)
}

/// The event stored under `seq` for daemon `daemon`, or why the bytes are
/// not one (then the record is quarantined).
pub(super) fn decode_event(
    daemon: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<(RelayEvent, SystemTime), String> {
    let rest = version(bytes)?;
    let Some((at, frame)) = rest.split_first_chunk::<AT_LEN>() else {
        return Err("the record ends inside its timestamp".into());
    };
    let at = UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(*at));
    match proto::decode(frame).map_err(|e| e.to_string())? {
        RelayMessage::Event(event) => {
            let expected = EventId {
                daemon: daemon.to_owned(),
                seq,
            };
            if event.id != expected {
                return Err(format!(
                    "the record under {seq} holds event {:?}",
                    (event.id.daemon, event.id.seq)
                ));
            }
            if let proto::EventKind::Unknown { kind } = &event.kind {
                return Err(format!(
                    "the record holds an event of unknown kind \"{kind}\""
                ));
            }
            Ok((event, at))
        }
        other => Err(format!(
            "the record holds a \"{}\" message, not an event",
            other.kind()
        )),
    }
}

/// The daemon id inside a stored event, if the record decodes that far.
pub(super) fn event_daemon(bytes: &[u8]) -> Option<String> {
    let frame = version(bytes).ok()?.get(AT_LEN..)?;
    match proto::decode(frame).ok()? {
        RelayMessage::Event(event) if !event.id.daemon.is_empty() => Some(event.id.daemon),
        _ => None,
    }
}

pub(super) fn encode_outcome(ack: &Ack) -> Result<Vec<u8>, String> {
    let frame = proto::encode(&RelayMessage::Ack(ack.clone())).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(1 + frame.len());
    out.push(VERSION);
    out.extend_from_slice(&frame);
    Ok(out)
}

pub(super) fn decode_outcome(bytes: &[u8]) -> Result<Ack, String> {
    match proto::decode(version(bytes)?).map_err(|e| e.to_string())? {
        RelayMessage::Ack(ack) => Ok(ack),
        other => Err(format!(
            "the record holds a \"{}\" message, not an ack",
            other.kind()
        )),
    }
}

fn version(bytes: &[u8]) -> Result<&[u8], String> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest),
        Some((v, _)) => Err(format!("unknown record version {v}")),
        None => Err("the record is empty".into()),
    }
}
