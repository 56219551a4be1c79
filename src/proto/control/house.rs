//! `inspect` through the daemon: the client names a claimed processor, the
//! daemon reads its house with the credential it keeps and streams the
//! report back, area by area, in frames of at most [`MAX_ITEM`] bytes: a
//! house of 10,000 devices is many frames, and neither side holds more
//! than an area of it.
//!
//! The report's parts travel in the shape of `inspect --json` (the
//! [`crate::inventory`] types, nulls included), so a report read through
//! the daemon is the very report read locally.

use serde::{Deserialize, Serialize};

use super::super::error::ProtoError;
use super::super::frame::MAX_ITEM;
use super::ControlMessage;
use crate::inventory::{AreaReport, Counts, DeviceItem, ProcessorFacts, ProjectFacts, ZoneItem};

/// Client → daemon: read this claimed processor's house.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectRequest {
    #[serde(rename = "r")]
    pub request: u64,
    /// As the CLI takes it: serial, id, MAC, host name or address.
    #[serde(rename = "proc")]
    pub processor: String,
    /// How long discovery may look for a processor not named by address.
    #[serde(rename = "wait-ms")]
    pub wait_ms: u64,
}

/// Daemon → client: the report begins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseStart {
    #[serde(rename = "r")]
    pub request: u64,
    pub processor: ProcessorFacts,
    pub project: ProjectFacts,
}

/// Daemon → client: one area, or a part of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseArea {
    #[serde(rename = "r")]
    pub request: u64,
    pub area: AreaReport,
    /// The next `house-area` frame continues this area: its zones and
    /// devices follow these.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub more: bool,
}

/// Daemon → client: some of the report's warnings (there may be one per
/// device), before `house-end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseWarnings {
    #[serde(rename = "r")]
    pub request: u64,
    pub list: Vec<String>,
}

/// Daemon → client: the report is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseEnd {
    #[serde(rename = "r")]
    pub request: u64,
    pub counts: Counts,
}

/// What a frame may spend on its items: the cap, less room for the rest of
/// the map (`k`, `r`, `more`, the area's own fields and the headers).
const BUDGET: usize = MAX_ITEM - 1024;

fn encoded_len<T: Serialize>(item: &T) -> Result<usize, ProtoError> {
    let mut out = Vec::new();
    ciborium::into_writer(item, &mut out).map_err(|e| ProtoError::Unencodable {
        reason: e.to_string(),
    })?;
    Ok(out.len())
}

fn too_big(what: &str, size: usize) -> ProtoError {
    ProtoError::Unencodable {
        reason: format!("{what} takes {size} bytes, more than a frame holds"),
    }
}

/// One area as `house-area` frames that each fit in a frame, in order:
/// its zones, then its devices, split where the budget runs out; at least
/// one frame (an empty area is one frame).
///
/// # Errors
/// [`ProtoError::Unencodable`] when a single zone or device (or the area's
/// own name) would not fit in a frame.
pub fn house_area_frames(
    request: u64,
    area: AreaReport,
) -> Result<Vec<ControlMessage>, ProtoError> {
    let header = encoded_len(&area.area)?;
    if header > BUDGET / 2 {
        return Err(too_big(&format!("area {}", area.area.id), header));
    }
    let empty = || AreaReport {
        area: area.area.clone(),
        zones: Vec::new(),
        devices: Vec::new(),
    };
    let mut frames = Vec::new();
    let mut part = empty();
    let mut used = header;
    let mut cut = |part: &mut AreaReport, used: &mut usize| {
        frames.push(ControlMessage::HouseArea(Box::new(HouseArea {
            request,
            area: std::mem::replace(part, empty()),
            more: true,
        })));
        *used = header;
    };
    for zone in area.zones {
        let size = encoded_len::<ZoneItem>(&zone)?;
        if header + size > BUDGET {
            return Err(too_big(&format!("zone {}", zone.id), size));
        }
        if used + size > BUDGET {
            cut(&mut part, &mut used);
        }
        used += size;
        part.zones.push(zone);
    }
    for device in area.devices {
        let size = encoded_len::<DeviceItem>(&device)?;
        if header + size > BUDGET {
            return Err(too_big(&format!("device {}", device.id), size));
        }
        if used + size > BUDGET {
            cut(&mut part, &mut used);
        }
        used += size;
        part.devices.push(device);
    }
    frames.push(ControlMessage::HouseArea(Box::new(HouseArea {
        request,
        area: part,
        more: false,
    })));
    Ok(frames)
}

/// The warnings as `house-warnings` frames that each fit in a frame (none
/// when there are none). A warning too long for a frame is cut.
pub fn house_warnings_frames(request: u64, warnings: &[String]) -> Vec<ControlMessage> {
    let mut frames = Vec::new();
    let mut list = Vec::new();
    let mut used = 0;
    for w in warnings {
        let mut w = w.clone();
        if w.len() > BUDGET / 2 {
            let mut end = BUDGET / 2;
            while !w.is_char_boundary(end) {
                end -= 1;
            }
            w.truncate(end);
        }
        // A text string's header is at most 9 bytes.
        let size = w.len() + 9;
        if used + size > BUDGET {
            frames.push(ControlMessage::HouseWarnings(HouseWarnings {
                request,
                list: std::mem::take(&mut list),
            }));
            used = 0;
        }
        used += size;
        list.push(w);
    }
    if !list.is_empty() {
        frames.push(ControlMessage::HouseWarnings(HouseWarnings {
            request,
            list,
        }));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{AreaItem, ButtonItem};

    fn device(i: usize) -> DeviceItem {
        DeviceItem {
            id: i.to_string(),
            name: format!("Keypad {i} with a longish name"),
            device_type: "SunnataKeypad".into(),
            model: "RRST-W4B-XX".into(),
            serial: Some(90_000_000 + i as u64),
            firmware: Some("001.004.000r000".into()),
            buttons: (1..=4)
                .map(|n| ButtonItem {
                    id: format!("{i}{n}"),
                    number: Some(n),
                    engraving: format!("Scene {n}"),
                })
                .collect(),
        }
    }

    /// An area of 2,000 devices (far over 64 KiB) is several frames, each
    /// within the cap, that read back as the same area.
    #[test]
    fn a_big_area_is_split_into_frames_that_fit_and_join_back() {
        let area = AreaReport {
            area: AreaItem {
                id: "7".into(),
                name: "Ballroom".into(),
                parent: None,
            },
            zones: Vec::new(),
            devices: (0..2000).map(device).collect(),
        };
        let frames = house_area_frames(5, area.clone()).unwrap();
        assert!(frames.len() > 3, "{} frames", frames.len());
        let mut joined: Option<AreaReport> = None;
        for (i, frame) in frames.iter().enumerate() {
            let bytes = super::super::encode(frame).unwrap();
            assert!(bytes.len() <= MAX_ITEM + 4);
            let ControlMessage::HouseArea(part) = super::super::decode(&bytes).unwrap() else {
                panic!("not a house-area frame");
            };
            assert_eq!(part.more, i + 1 < frames.len());
            match &mut joined {
                None => joined = Some(part.area),
                Some(j) => j.devices.extend(part.area.devices),
            }
        }
        assert_eq!(joined.unwrap(), area);
    }

    #[test]
    fn many_warnings_are_several_frames_and_none_is_no_frame() {
        assert!(house_warnings_frames(1, &[]).is_empty());
        let warnings: Vec<String> = (0..5000)
            .map(|i| format!("device {i} has type \"Mystery\", which handoff does not know"))
            .collect();
        let frames = house_warnings_frames(1, &warnings);
        assert!(frames.len() > 1);
        let mut all = Vec::new();
        for frame in &frames {
            assert!(super::super::encode(frame).is_ok());
            let ControlMessage::HouseWarnings(w) = frame else {
                panic!()
            };
            all.extend(w.list.clone());
        }
        assert_eq!(all, warnings);
    }
}
