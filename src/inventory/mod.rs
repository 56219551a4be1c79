//! Reading a claimed processor's house over its main port, for the
//! handover report of `handoff inspect`: the processor, the project, every
//! area with its zones (type, level) and devices (model, serial, firmware,
//! keypad buttons and engravings).
//!
//! It reads as real clients do (processor-protocol.md §3): a Caséta
//! bridge's `/device` list; a RadioRA 3 or QSX processor's area walk
//! (`associatedzone`, `associatedcontrolstation`, then each device). Each
//! area is handed to a [`Sink`] as soon as it is read and then dropped, so
//! memory grows with the largest area, not with the house.

pub mod report;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::leap::{Communique, MainClient, MainClientError, THIS_DEVICE_URL};

/// Why the house could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    #[error("reading {url}: {source}")]
    Main {
        url: String,
        source: MainClientError,
    },
    #[error("{url} was answered {status}")]
    Refused { url: String, status: String },
    #[error("{url} has no {what}")]
    Malformed { url: String, what: &'static str },
    #[error("writing the report: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessorFacts {
    pub name: String,
    pub device_type: String,
    pub model: String,
    pub serial: Option<u64>,
    pub firmware: Option<String>,
    pub macs: Vec<String>,
    pub address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectFacts {
    pub name: String,
    pub product_type: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AreaItem {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ZoneItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub zone_type: String,
    /// `Level` (0–100), or a fan's `FanSpeed`; `null` when unreadable.
    pub level: Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ButtonItem {
    pub id: String,
    pub number: Option<u64>,
    pub engraving: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DeviceItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub device_type: String,
    pub model: String,
    pub serial: Option<u64>,
    pub firmware: Option<String>,
    pub buttons: Vec<ButtonItem>,
}

/// One area as read: its zones and devices.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AreaReport {
    #[serde(flatten)]
    pub area: AreaItem,
    pub zones: Vec<ZoneItem>,
    pub devices: Vec<DeviceItem>,
}

/// Totals, by zone type and by device type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub areas: usize,
    pub zones: usize,
    pub devices: usize,
    pub buttons: usize,
    pub zones_by_type: BTreeMap<String, usize>,
    pub devices_by_type: BTreeMap<String, usize>,
}

/// Where a report goes, area by area.
pub trait Sink {
    fn start(&mut self, processor: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()>;
    fn area(&mut self, area: &AreaReport) -> std::io::Result<()>;
    fn finish(&mut self, counts: &Counts, warnings: &[String]) -> std::io::Result<()>;
}

/// Zone control types handoff knows (pylutron-caseta's, and LEAP's).
const KNOWN_ZONE_TYPES: &[&str] = &[
    "Dimmed",
    "Switched",
    "Shade",
    "FanSpeed",
    "CCO",
    "SpectrumTune",
    "WhiteTune",
    "ColorTune",
    "Tilt",
    "ShadeWithTilt",
    "Receptacle",
];

/// Whether handoff knows a device type: pylutron-caseta's lists, by family.
fn known_device_type(t: &str) -> bool {
    const FAMILIES: &[&str] = &[
        "Dimmer",
        "Switch",
        "Keypad",
        "Pico",
        "Shade",
        "Blind",
        "Drape",
        "OccupancySensor",
        "FanSpeedController",
        "PowPak",
        "Remote",
        "Repeater",
        "Processor",
        "SmartBridge",
        "SeeTouchInternational",
    ];
    FAMILIES.iter().any(|f| t.contains(f))
}

/// The id at the end of an href: `/zone/12` → `12`.
fn id_of(href: &str) -> String {
    href.rsplit('/').next().unwrap_or(href).to_owned()
}

fn href(v: &Value) -> Option<&str> {
    v.get("href").and_then(Value::as_str)
}

/// The elements of the array `v[key]`; none when it is missing.
fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// A device's firmware as the processor names it, if it says.
fn firmware(device: &Value) -> Option<String> {
    device
        .pointer("/FirmwareImage/Firmware/DisplayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads the house and hands it to `sink`; returns the warnings.
pub struct Reader<'a, S> {
    client: &'a mut MainClient<S>,
    warnings: Vec<String>,
    counts: Counts,
    /// Requests made, for the curious (`inspect` reports it in JSON).
    pub requests: usize,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Reader<'a, S> {
    pub fn new(client: &'a mut MainClient<S>) -> Self {
        Reader {
            client,
            warnings: Vec::new(),
            counts: Counts::default(),
            requests: 0,
        }
    }

    /// `url`'s body: `None` for `204 NoContent` or `404 NotFound` (what a
    /// processor says of what it does not have).
    async fn get(&mut self, url: &str) -> Result<Option<Value>, InventoryError> {
        self.requests += 1;
        let answer: Communique =
            self.client
                .read(url)
                .await
                .map_err(|source| InventoryError::Main {
                    url: url.to_owned(),
                    source,
                })?;
        match answer.status().map(|s| s.code()) {
            Some(200..=299) => Ok(answer.body),
            Some(404) => Ok(None),
            _ => Err(InventoryError::Refused {
                url: url.to_owned(),
                status: answer
                    .status()
                    .map_or_else(|| "without a status".into(), |s| s.to_string()),
            }),
        }
    }

    async fn list(&mut self, url: &str, key: &'static str) -> Result<Vec<Value>, InventoryError> {
        Ok(match self.get(url).await? {
            Some(mut body) => match body.get_mut(key).map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(InventoryError::Malformed {
                        url: url.to_owned(),
                        what: key,
                    });
                }
            },
            None => Vec::new(),
        })
    }

    /// Reads everything, area by area, into `sink`.
    ///
    /// # Errors
    /// [`InventoryError`] when the processor stops answering or answers
    /// what is not a house; the sink has then had part of it.
    pub async fn read(
        mut self,
        address: &str,
        sink: &mut (dyn Sink + Send),
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<Vec<String>, InventoryError> {
        let this = self.list(THIS_DEVICE_URL, "Devices").await?;
        let this = this.first().ok_or(InventoryError::Malformed {
            url: THIS_DEVICE_URL.into(),
            what: "Devices",
        })?;
        let processor = ProcessorFacts {
            name: text(this, "Name"),
            device_type: text(this, "DeviceType"),
            model: text(this, "ModelNumber"),
            serial: this.get("SerialNumber").and_then(Value::as_u64),
            firmware: firmware(this),
            macs: items(this, "NetworkInterfaces")
                .filter_map(|i| i.get("MACAddress").and_then(Value::as_str))
                .map(str::to_owned)
                .collect(),
            address: address.to_owned(),
        };
        let processor_href = href(this).unwrap_or("/device/1").to_owned();
        let project = self.get("/project").await?.unwrap_or_default();
        let project = ProjectFacts {
            name: project
                .pointer("/Project/Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            product_type: project
                .pointer("/Project/ProductType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
        };
        sink.start(&processor, &project)?;
        let areas: Vec<AreaItem> = self
            .list("/area", "Areas")
            .await?
            .iter()
            .filter_map(|a| {
                Some(AreaItem {
                    id: id_of(href(a)?),
                    name: text(a, "Name"),
                    parent: a.get("Parent").and_then(href).map(id_of),
                })
            })
            .collect();
        let bridge = project.product_type.contains("Smart Bridge");
        if bridge {
            self.read_bridge(&areas, &processor_href, sink, progress)
                .await?;
        } else {
            self.read_processor(&areas, &processor_href, sink, progress)
                .await?;
        }
        self.counts.areas = areas.len();
        sink.finish(&self.counts, &self.warnings)?;
        Ok(self.warnings)
    }

    fn count(&mut self, report: &AreaReport) {
        for z in &report.zones {
            self.counts.zones += 1;
            *self
                .counts
                .zones_by_type
                .entry(z.zone_type.clone())
                .or_default() += 1;
            if !KNOWN_ZONE_TYPES.contains(&z.zone_type.as_str()) {
                self.warnings.push(format!(
                    "zone {} ({}) has control type {:?}, which handoff does not know; kept as read",
                    z.id, z.name, z.zone_type
                ));
            }
        }
        for d in &report.devices {
            self.counts.devices += 1;
            self.counts.buttons += d.buttons.len();
            *self
                .counts
                .devices_by_type
                .entry(d.device_type.clone())
                .or_default() += 1;
            if !known_device_type(&d.device_type) {
                self.warnings.push(format!(
                    "device {} ({}) has type {:?}, which handoff does not know; kept as read",
                    d.id, d.name, d.device_type
                ));
            }
        }
    }

    async fn zone(&mut self, zone: &Value, fallback_id: &str) -> Result<ZoneItem, InventoryError> {
        let id = href(zone).map_or_else(|| fallback_id.to_owned(), id_of);
        let status = self.get(&format!("/zone/{id}/status")).await?;
        let status = status.as_ref().and_then(|s| s.get("ZoneStatus"));
        let level = status
            .and_then(|s| s.get("Level").or_else(|| s.get("FanSpeed")))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(ZoneItem {
            id,
            name: text(zone, "Name"),
            zone_type: text(zone, "ControlType"),
            level,
        })
    }

    fn device_item(d: &Value, buttons: Vec<ButtonItem>) -> DeviceItem {
        DeviceItem {
            id: href(d).map(id_of).unwrap_or_default(),
            name: text(d, "Name"),
            device_type: text(d, "DeviceType"),
            model: text(d, "ModelNumber"),
            serial: d.get("SerialNumber").and_then(Value::as_u64),
            firmware: firmware(d),
            buttons,
        }
    }

    fn button_item(b: &Value) -> ButtonItem {
        ButtonItem {
            id: href(b).map(id_of).unwrap_or_default(),
            number: b.get("ButtonNumber").and_then(Value::as_u64),
            engraving: b
                .pointer("/Engraving/Text")
                .and_then(Value::as_str)
                .map_or_else(|| text(b, "Name"), str::to_owned),
        }
    }

    /// Caséta: one `/device` list, buttons from `/button`, zones from each
    /// device's `LocalZones`.
    async fn read_bridge(
        &mut self,
        areas: &[AreaItem],
        processor_href: &str,
        sink: &mut (dyn Sink + Send),
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<(), InventoryError> {
        let devices = self.list("/device", "Devices").await?;
        let mut buttons: BTreeMap<String, Vec<ButtonItem>> = BTreeMap::new();
        for b in self.list("/button", "Buttons").await? {
            if let Some(group) = b.get("Parent").and_then(href) {
                buttons
                    .entry(id_of(group))
                    .or_default()
                    .push(Self::button_item(&b));
            }
        }
        let mut by_area: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for d in devices.iter().filter(|d| href(d) != Some(processor_href)) {
            let area = d
                .get("AssociatedArea")
                .and_then(href)
                .map(id_of)
                .unwrap_or_default();
            by_area.entry(area).or_default().push(d);
        }
        let known: BTreeSet<&str> = areas.iter().map(|a| a.id.as_str()).collect();
        for (area, _) in by_area.iter().filter(|(a, _)| !known.contains(a.as_str())) {
            self.warnings.push(format!(
                "devices in area {area:?}, which /area does not list"
            ));
        }
        for (i, area) in areas.iter().enumerate() {
            progress(i, areas.len());
            let mut report = AreaReport {
                area: area.clone(),
                zones: Vec::new(),
                devices: Vec::new(),
            };
            for d in by_area.remove(&area.id).unwrap_or_default() {
                for zone in items(d, "LocalZones") {
                    let Some(zone_href) = href(zone) else {
                        continue;
                    };
                    let definition = self.get(zone_href).await?;
                    let definition = definition
                        .as_ref()
                        .and_then(|z| z.get("Zone"))
                        .cloned()
                        .unwrap_or_else(|| zone.clone());
                    report
                        .zones
                        .push(self.zone(&definition, &id_of(zone_href)).await?);
                }
                let mut mine = Vec::new();
                for group in items(d, "ButtonGroups") {
                    if let Some(group) = href(group) {
                        mine.extend(buttons.remove(&id_of(group)).unwrap_or_default());
                    }
                }
                report.devices.push(Self::device_item(d, mine));
            }
            self.count(&report);
            sink.area(&report)?;
        }
        Ok(())
    }

    /// RadioRA 3 / QSX: the area walk, then each device found.
    async fn read_processor(
        &mut self,
        areas: &[AreaItem],
        processor_href: &str,
        sink: &mut (dyn Sink + Send),
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<(), InventoryError> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (i, area) in areas.iter().enumerate() {
            progress(i, areas.len());
            let mut report = AreaReport {
                area: area.clone(),
                zones: Vec::new(),
                devices: Vec::new(),
            };
            for zone in self
                .list(&format!("/area/{}/associatedzone", area.id), "Zones")
                .await?
            {
                report.zones.push(self.zone(&zone, "").await?);
            }
            let stations = self
                .list(
                    &format!("/area/{}/associatedcontrolstation", area.id),
                    "ControlStations",
                )
                .await?;
            for station in stations {
                for ganged in items(&station, "AssociatedGangedDevices") {
                    let Some(device_href) = ganged.get("Device").and_then(href) else {
                        continue;
                    };
                    if device_href == processor_href || !seen.insert(device_href.to_owned()) {
                        continue;
                    }
                    let Some(body) = self.get(device_href).await? else {
                        self.warnings.push(format!(
                            "{device_href} is listed in a station but does not exist"
                        ));
                        continue;
                    };
                    let device = body.get("Device").cloned().unwrap_or_default();
                    let mut buttons = Vec::new();
                    if device.get("ButtonGroups").is_some() {
                        let groups = self
                            .list(
                                &format!("{device_href}/buttongroup/expanded"),
                                "ButtonGroupsExpanded",
                            )
                            .await?;
                        for group in groups {
                            for b in items(&group, "Buttons") {
                                buttons.push(Self::button_item(b));
                            }
                        }
                    }
                    report.devices.push(Self::device_item(&device, buttons));
                }
            }
            self.count(&report);
            sink.area(&report)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::report::JsonReport;
    use super::*;
    use crate::processor::SystemType;
    use crate::sim::{LiveHouse, SimProcessor};

    fn processor(system_type: SystemType) -> SimProcessor {
        SimProcessor::fixture(system_type)
    }

    /// A simulated processor's main port over an in-memory stream, cut
    /// after `limit` bytes from the processor when given.
    fn serve(system_type: SystemType, limit: Option<usize>) -> tokio::io::DuplexStream {
        let (ours, theirs) = duplex(1 << 20);
        let (server_side, mut relay_side) = duplex(1 << 20);
        tokio::spawn(async move {
            let house = LiveHouse::new(crate::sim::house::example());
            crate::sim::main_server::serve_main_connection(
                server_side,
                &processor(system_type),
                &house,
            )
            .await;
        });
        // Relay both ways, the processor's side only up to `limit`.
        tokio::spawn(async move {
            let (mut client_read, mut client_write) = tokio::io::split(theirs);
            let (mut server_read, mut server_write) = tokio::io::split(&mut relay_side);
            let up = async {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            };
            let down = async {
                let mut sent = 0;
                let mut buf = vec![0; 4096];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = limit.map_or(n, |l| n.min(l - sent));
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n;
                    if limit == Some(sent) {
                        break;
                    }
                }
                let _ = client_write.shutdown().await;
            };
            tokio::select! { () = up => {}, () = down => {} }
        });
        ours
    }

    async fn inspect(
        system_type: SystemType,
        limit: Option<usize>,
    ) -> (Result<Vec<String>, InventoryError>, Vec<u8>) {
        let mut client = MainClient::new(serve(system_type, limit), "t", Duration::from_secs(5));
        let mut out = Vec::new();
        let mut sink = JsonReport::new(&mut out);
        let result = Reader::new(&mut client)
            .read("127.0.1.1", &mut sink, &mut |_, _| {})
            .await;
        (result, out)
    }

    #[tokio::test]
    async fn both_paths_read_every_device_zone_and_button() {
        for system_type in [SystemType::CasetaSmartBridge, SystemType::HomeWorksQsx] {
            let (result, out) = inspect(system_type.clone(), None).await;
            assert_eq!(result.unwrap(), Vec::<String>::new());
            let report: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(report["counts"]["devices"], 6, "{system_type:?}");
            assert_eq!(report["counts"]["zones"], 3);
            assert_eq!(report["counts"]["buttons"], 6);
            let kitchen = &report["areas"][3];
            assert_eq!(kitchen["name"], "Kitchen");
            assert_eq!(kitchen["zones"][0]["level"], 0);
        }
    }

    #[tokio::test]
    async fn a_processor_that_drops_mid_read_is_an_error() {
        let (result, _) = inspect(SystemType::RadioRa3, Some(3000)).await;
        assert!(
            matches!(
                result,
                Err(InventoryError::Main {
                    source: MainClientError::Closed | MainClientError::Connection(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
