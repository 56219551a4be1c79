//! What a simulated processor controls: its house. Areas (nested), zones,
//! the devices that drive them, keypads and Picos with engraved buttons,
//! occupancy sensors. One format serves three purposes: the `--house FILE`
//! a user writes (see `examples/house.json`), the `house` of each processor
//! in the simulator's manifest, and `handoff sim house ID --json`, which
//! shows the current levels. Validated on load, so the main port never
//! meets a dangling reference.
//!
//! Ids are one number space per house, as on real processors, where
//! `/device/N` and `/zone/N` never share an `N`: pylutron-caseta keys a
//! RadioRA 3 processor's keypads and zones in one table. Id 1 is the
//! processor's own device and never used by the house.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The processor's own device id (ref §3: on Caséta the bridge is `/device/1`).
pub const PROCESSOR_DEVICE_ID: u32 = 1;

/// A house, as the file format and the manifest write it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct House {
    /// `Project.Name`.
    pub project: String,
    pub areas: Vec<Area>,
    pub devices: Vec<Device>,
    pub zones: Vec<Zone>,
    pub buttons: Vec<Button>,
    /// Lookups by id, made on first use: the main port answers a read of
    /// a 10,000-device house one device at a time, and a linear search
    /// each made that read quadratic.
    #[serde(skip)]
    index: Index,
}

/// Positions in a house's lists by id, and the relations the main port
/// walks. The lists' structure never changes once a house is made (only
/// levels and occupancy do); an index that no longer matches (someone
/// pushed to a list after the first lookup) is noticed by the lengths and
/// made again.
#[derive(Default)]
struct Index(std::sync::OnceLock<Positions>);

#[derive(Default)]
struct Positions {
    lengths: [usize; 4],
    areas: std::collections::HashMap<u32, usize>,
    devices: std::collections::HashMap<u32, usize>,
    zones: std::collections::HashMap<u32, usize>,
    buttons: std::collections::HashMap<u32, usize>,
    buttons_of: std::collections::HashMap<u32, Vec<usize>>,
    device_of_zone: std::collections::HashMap<u32, usize>,
    zones_in: std::collections::HashMap<u32, Vec<usize>>,
    devices_in: std::collections::HashMap<u32, Vec<usize>>,
    children_of: std::collections::HashMap<u32, Vec<usize>>,
}

impl Clone for Index {
    /// A copy's lists may change before its first lookup: it makes its own.
    fn clone(&self) -> Index {
        Index::default()
    }
}

/// Not part of what a house is.
impl PartialEq for Index {
    fn eq(&self, _: &Index) -> bool {
        true
    }
}
impl Eq for Index {}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Index")
    }
}

impl Positions {
    fn of(house: &House) -> Positions {
        let mut p = Positions {
            lengths: house.lengths(),
            ..Positions::default()
        };
        for (i, a) in house.areas.iter().enumerate() {
            p.areas.entry(a.id).or_insert(i);
            if let Some(parent) = a.parent {
                p.children_of.entry(parent).or_default().push(i);
            }
        }
        for (i, d) in house.devices.iter().enumerate() {
            p.devices.entry(d.id).or_insert(i);
            p.devices_in.entry(d.area).or_default().push(i);
            if let Some(zone) = d.zone {
                p.device_of_zone.entry(zone).or_insert(i);
            }
        }
        for (i, z) in house.zones.iter().enumerate() {
            p.zones.entry(z.id).or_insert(i);
            p.zones_in.entry(z.area).or_default().push(i);
        }
        for (i, b) in house.buttons.iter().enumerate() {
            p.buttons.entry(b.id).or_insert(i);
            p.buttons_of.entry(b.device).or_default().push(i);
        }
        p
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub id: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// Whether an occupancy sensor in it sees someone; meaningless without
    /// one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub occupied: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub id: u32,
    pub name: String,
    pub area: u32,
    /// LEAP `DeviceType` (`WallDimmer`, `Pico3ButtonRaiseLower`, …).
    #[serde(rename = "type")]
    pub device_type: String,
    pub model: String,
    pub serial: u32,
    pub firmware: String,
    /// The control station (wallbox) it is mounted in, named as in the
    /// programming software; RadioRA 3 and QSX clients find keypads
    /// through their stations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<String>,
    /// The zone it drives, if it is a dimmer, switch, shade or fan control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u32>,
}

/// LEAP `ControlType` of a zone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneType {
    Dimmed,
    Switched,
    Shade,
    FanSpeed,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub id: u32,
    pub name: String,
    pub area: u32,
    #[serde(rename = "type")]
    pub zone_type: ZoneType,
    /// 0–100; a switched zone is 0 or 100, a fan's speed is its level in
    /// steps of 25 (see [`fan_speed`]).
    #[serde(default)]
    pub level: u8,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub id: u32,
    /// The keypad or Pico it is on.
    pub device: u32,
    /// LEAP `ButtonNumber`.
    pub number: u32,
    /// The text engraved on it (empty: none).
    #[serde(default)]
    pub engraving: String,
}

/// Why a house file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HouseError {
    #[error("cannot read the house file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the house file {path} is not a house: {source}")]
    Parse {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("the house is inconsistent: {0}")]
    Invalid(String),
}

/// Fan speeds and the levels they are kept as.
pub const FAN_SPEEDS: [(&str, u8); 5] = [
    ("Off", 0),
    ("Low", 25),
    ("Medium", 50),
    ("MediumHigh", 75),
    ("High", 100),
];

/// The LEAP `FanSpeed` of a fan zone's level.
pub fn fan_speed(level: u8) -> &'static str {
    FAN_SPEEDS
        .iter()
        .rev()
        .find(|(_, l)| level >= *l)
        .map_or("Off", |(s, _)| s)
}

/// Device types that carry buttons, as pylutron-caseta lists them
/// (`_PICOS`, `_KEYPADS`): a device of another type with buttons is
/// refused, since no client would find them.
pub fn has_buttons(device_type: &str) -> bool {
    device_type.starts_with("Pico")
        || device_type.ends_with("Keypad")
        || device_type == "PaddleSwitchPico"
}

/// Occupancy sensor device types (pylutron-caseta's
/// `RA3_OCCUPANCY_SENSOR_DEVICE_TYPES`).
pub fn is_occupancy_sensor(device_type: &str) -> bool {
    device_type.starts_with("RPS") && device_type.ends_with("OccupancySensor")
}

impl House {
    /// Reads and checks a house file.
    ///
    /// # Errors
    /// [`HouseError`] naming the file, or what is inconsistent.
    pub fn load(path: &std::path::Path) -> Result<House, HouseError> {
        let text = std::fs::read(path).map_err(|source| HouseError::Read {
            path: path.into(),
            source,
        })?;
        let house: House = serde_json::from_slice(&text).map_err(|source| HouseError::Parse {
            path: path.into(),
            source,
        })?;
        house.check()?;
        Ok(house)
    }

    /// Checks every reference and id: what the main port serves must be
    /// one consistent house.
    ///
    /// # Errors
    /// [`HouseError::Invalid`] with the first problem found.
    pub fn check(&self) -> Result<(), HouseError> {
        let bad = |s: String| Err(HouseError::Invalid(s));
        let mut ids = BTreeSet::from([PROCESSOR_DEVICE_ID]);
        let all = self
            .areas
            .iter()
            .map(|a| ("area", a.id))
            .chain(self.devices.iter().map(|d| ("device", d.id)))
            .chain(self.zones.iter().map(|z| ("zone", z.id)))
            .chain(self.buttons.iter().map(|b| ("button", b.id)));
        for (what, id) in all {
            if id == 0 || !ids.insert(id) {
                return bad(format!(
                    "{what} id {id} is 0, 1 (the processor) or used twice; ids are one \
                     number space per house"
                ));
            }
        }
        let areas: BTreeMap<u32, &Area> = self.areas.iter().map(|a| (a.id, a)).collect();
        if self.areas.is_empty() {
            return bad("a house needs at least one area".into());
        }
        for a in &self.areas {
            if let Some(parent) = a.parent {
                if !areas.contains_key(&parent) {
                    return bad(format!("area {} has unknown parent {parent}", a.id));
                }
                // Walk up: a cycle would never reach a root.
                let mut seen = BTreeSet::from([a.id]);
                let mut up = Some(parent);
                while let Some(p) = up {
                    if !seen.insert(p) {
                        return bad(format!("area {} is its own ancestor", a.id));
                    }
                    up = areas[&p].parent;
                }
            }
        }
        let zones: BTreeMap<u32, &Zone> = self.zones.iter().map(|z| (z.id, z)).collect();
        let mut driven = BTreeSet::new();
        for d in &self.devices {
            if !areas.contains_key(&d.area) {
                return bad(format!("device {} is in unknown area {}", d.id, d.area));
            }
            if let Some(zone) = d.zone {
                if !zones.contains_key(&zone) {
                    return bad(format!("device {} drives unknown zone {zone}", d.id));
                }
                if !driven.insert(zone) {
                    return bad(format!("zone {zone} is driven by two devices"));
                }
            }
        }
        for z in &self.zones {
            if !areas.contains_key(&z.area) {
                return bad(format!("zone {} is in unknown area {}", z.id, z.area));
            }
            if z.level > 100 {
                return bad(format!("zone {} has level {} (0–100)", z.id, z.level));
            }
        }
        let devices: BTreeMap<u32, &Device> = self.devices.iter().map(|d| (d.id, d)).collect();
        let mut numbers = BTreeSet::new();
        for b in &self.buttons {
            let Some(d) = devices.get(&b.device) else {
                return bad(format!("button {} is on unknown device {}", b.id, b.device));
            };
            if !has_buttons(&d.device_type) {
                return bad(format!(
                    "button {} is on device {}, a {} (buttons are on keypads and Picos)",
                    b.id, d.id, d.device_type
                ));
            }
            if !numbers.insert((b.device, b.number)) {
                return bad(format!("device {} has two buttons {}", b.device, b.number));
            }
        }
        Ok(())
    }

    fn lengths(&self) -> [usize; 4] {
        [
            self.areas.len(),
            self.devices.len(),
            self.zones.len(),
            self.buttons.len(),
        ]
    }

    /// The index, made (again) when the lists are not what it was made of.
    fn positions(&mut self) -> &Positions {
        if self
            .index
            .0
            .get()
            .is_some_and(|p| p.lengths != self.lengths())
        {
            self.index = Index::default();
        }
        self.index.0.get_or_init(|| Positions::of(self))
    }

    /// The index, or `None` when the lists grew since it was made (a house
    /// shared behind `&` cannot make it again): then lookups search.
    fn indexed(&self) -> Option<&Positions> {
        match self.index.0.get() {
            Some(p) if p.lengths == self.lengths() => Some(p),
            Some(_) => None,
            None => Some(self.index.0.get_or_init(|| Positions::of(self))),
        }
    }

    pub fn area(&self, id: u32) -> Option<&Area> {
        match self.indexed() {
            Some(p) => p.areas.get(&id).map(|&i| &self.areas[i]),
            None => self.areas.iter().find(|a| a.id == id),
        }
    }

    pub fn device(&self, id: u32) -> Option<&Device> {
        match self.indexed() {
            Some(p) => p.devices.get(&id).map(|&i| &self.devices[i]),
            None => self.devices.iter().find(|d| d.id == id),
        }
    }

    pub fn zone(&self, id: u32) -> Option<&Zone> {
        match self.indexed() {
            Some(p) => p.zones.get(&id).map(|&i| &self.zones[i]),
            None => self.zones.iter().find(|z| z.id == id),
        }
    }

    /// A zone to change (its level).
    pub fn zone_mut(&mut self, id: u32) -> Option<&mut Zone> {
        let i = *self.positions().zones.get(&id)?;
        self.zones.get_mut(i)
    }

    /// An area to change (its occupancy).
    pub fn area_mut(&mut self, id: u32) -> Option<&mut Area> {
        let i = *self.positions().areas.get(&id)?;
        self.areas.get_mut(i)
    }

    pub fn button(&self, id: u32) -> Option<&Button> {
        match self.indexed() {
            Some(p) => p.buttons.get(&id).map(|&i| &self.buttons[i]),
            None => self.buttons.iter().find(|b| b.id == id),
        }
    }

    /// Whether an area has children (LEAP `IsLeaf` is its negation).
    pub fn has_children(&self, area: u32) -> bool {
        self.children_of(area).next().is_some()
    }

    /// `list`'s items at these positions, or those `keep` picks when the
    /// index is stale.
    fn picked<'h, T>(
        list: &'h [T],
        positions: Option<Option<&'h Vec<usize>>>,
        keep: impl Fn(&T) -> bool + 'h,
    ) -> Box<dyn Iterator<Item = &'h T> + 'h> {
        match positions {
            Some(at) => Box::new(at.into_iter().flatten().map(move |&i| &list[i])),
            None => Box::new(list.iter().filter(move |t| keep(t))),
        }
    }

    /// The zones in an area, in house order.
    pub fn zones_in(&self, area: u32) -> impl Iterator<Item = &Zone> {
        let at = self.indexed().map(|p| p.zones_in.get(&area));
        Self::picked(&self.zones, at, move |z| z.area == area)
    }

    /// The devices in an area, in house order.
    pub fn devices_in(&self, area: u32) -> impl Iterator<Item = &Device> {
        let at = self.indexed().map(|p| p.devices_in.get(&area));
        Self::picked(&self.devices, at, move |d| d.area == area)
    }

    /// An area's children, in house order.
    pub fn children_of(&self, area: u32) -> impl Iterator<Item = &Area> {
        let at = self.indexed().map(|p| p.children_of.get(&area));
        Self::picked(&self.areas, at, move |a| a.parent == Some(area))
    }

    /// The area the processor sits in: the first leaf area (an equipment
    /// room in generated houses).
    pub fn processor_area(&self) -> u32 {
        self.areas
            .iter()
            .find(|a| !self.has_children(a.id))
            .or(self.areas.first())
            .map_or(0, |a| a.id)
    }

    /// The device a zone is driven by.
    pub fn device_of_zone(&self, zone: u32) -> Option<&Device> {
        match self.indexed() {
            Some(p) => p.device_of_zone.get(&zone).map(|&i| &self.devices[i]),
            None => self.devices.iter().find(|d| d.zone == Some(zone)),
        }
    }

    pub fn buttons_of(&self, device: u32) -> impl Iterator<Item = &Button> {
        let at = self.indexed().map(|p| p.buttons_of.get(&device));
        Self::picked(&self.buttons, at, move |b| b.device == device)
    }

    /// Areas with an occupancy sensor in them: each is an occupancy group.
    pub fn sensed_areas(&self) -> BTreeSet<u32> {
        self.devices
            .iter()
            .filter(|d| is_occupancy_sensor(&d.device_type))
            .map(|d| d.area)
            .collect()
    }

    /// The keypad or Pico a person means: its id, serial or name
    /// (case-insensitive).
    pub fn find_keypad(&self, name: &str) -> Option<&Device> {
        let name = name.trim();
        let number = name.parse::<u32>().ok();
        let keypads = || self.devices.iter().filter(|d| has_buttons(&d.device_type));
        keypads()
            .find(|d| Some(d.id) == number)
            .or_else(|| keypads().find(|d| Some(d.serial) == number))
            .or_else(|| keypads().find(|d| d.name.eq_ignore_ascii_case(name)))
    }

    /// A button of `device`: its number, id or engraving (case-insensitive).
    pub fn find_button(&self, device: u32, name: &str) -> Option<&Button> {
        let name = name.trim();
        let number = name.parse::<u32>().ok();
        self.buttons_of(device)
            .find(|b| Some(b.number) == number)
            .or_else(|| self.buttons_of(device).find(|b| Some(b.id) == number))
            .or_else(|| {
                self.buttons_of(device)
                    .find(|b| b.engraving.eq_ignore_ascii_case(name))
            })
    }
}

/// The house for a person: each area with its zones (and levels), its
/// devices and their buttons, nested as the areas are.
pub fn house_text(house: &House) -> String {
    use std::fmt::Write;
    fn area(house: &House, id: u32, depth: usize, out: &mut String) {
        let Some(a) = house.area(id) else { return };
        let pad = "  ".repeat(depth);
        let occupancy = if house.sensed_areas().contains(&id) {
            if a.occupied {
                " (occupied)"
            } else {
                " (unoccupied)"
            }
        } else {
            ""
        };
        let _ = writeln!(out, "{pad}{} [area {}]{occupancy}", a.name, a.id);
        for z in house.zones_in(id) {
            let level = match z.zone_type {
                ZoneType::FanSpeed => fan_speed(z.level).to_string(),
                ZoneType::Switched => (if z.level > 0 { "on" } else { "off" }).to_string(),
                _ => format!("{}%", z.level),
            };
            let _ = writeln!(
                out,
                "{pad}  zone {} {}: {:?} {level}",
                z.id, z.name, z.zone_type
            );
        }
        for d in house.devices_in(id) {
            let _ = writeln!(
                out,
                "{pad}  device {} {}: {} {} serial {} firmware {}",
                d.id, d.name, d.device_type, d.model, d.serial, d.firmware
            );
            for b in house.buttons_of(d.id) {
                let _ = writeln!(
                    out,
                    "{pad}    button {} {:?} [button {}]",
                    b.number, b.engraving, b.id
                );
            }
        }
        for child in house.children_of(id) {
            area(house, child.id, depth + 1, out);
        }
    }
    let mut out = format!(
        "{}: {} areas, {} devices, {} zones, {} buttons\n",
        house.project,
        house.areas.len(),
        house.devices.len(),
        house.zones.len(),
        house.buttons.len()
    );
    for root in house.areas.iter().filter(|a| a.parent.is_none()) {
        area(house, root.id, 0, &mut out);
    }
    out
}

/// `examples/house.json`, for unit tests.
#[cfg(test)]
pub fn example() -> House {
    serde_json::from_str(include_str!("../../examples/house.json")).expect("the example house")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> House {
        example()
    }

    #[test]
    fn the_example_house_is_consistent() {
        let house = small();
        house.check().unwrap();
        assert!(house.buttons.len() >= 4);
        assert!(!house.sensed_areas().is_empty());
    }

    #[test]
    fn inconsistent_houses_are_refused_with_the_reason() {
        let mut h = small();
        h.zones[0].area = 999;
        assert!(
            h.check()
                .unwrap_err()
                .to_string()
                .contains("unknown area 999")
        );
        let mut h = small();
        h.buttons[0].id = h.zones[0].id;
        assert!(h.check().unwrap_err().to_string().contains("used twice"));
        let mut h = small();
        h.areas[0].parent = Some(h.areas[1].id);
        h.areas[1].parent = Some(h.areas[0].id);
        assert!(h.check().unwrap_err().to_string().contains("ancestor"));
        let mut h = small();
        let load = h.devices.iter().find(|d| d.zone.is_some()).unwrap().id;
        h.buttons[0].device = load;
        assert!(
            h.check()
                .unwrap_err()
                .to_string()
                .contains("keypads and Picos")
        );
    }

    #[test]
    fn fan_speeds_round_to_the_step_below() {
        assert_eq!(fan_speed(0), "Off");
        assert_eq!(fan_speed(30), "Low");
        assert_eq!(fan_speed(100), "High");
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    /// Lookups by id agree with a search of the lists, before and after
    /// the lists grow (the index is made again, or searched around).
    #[test]
    fn lookups_by_id_agree_with_the_lists_even_after_they_grow() {
        let mut house = example();
        for d in &house.devices {
            assert_eq!(house.device(d.id), Some(d));
            assert_eq!(
                house.buttons_of(d.id).count(),
                house.buttons.iter().filter(|b| b.device == d.id).count()
            );
        }
        for a in &house.areas {
            let zones: Vec<_> = house.zones.iter().filter(|z| z.area == a.id).collect();
            assert_eq!(house.zones_in(a.id).collect::<Vec<_>>(), zones);
            assert_eq!(
                house.has_children(a.id),
                house.areas.iter().any(|c| c.parent == Some(a.id))
            );
        }
        assert_eq!(house.device(999_999), None);
        let mut extra = house.zones[0].clone();
        extra.id = 999_999;
        house.zones.push(extra.clone());
        assert_eq!(
            house.zone(999_999),
            Some(&extra),
            "a zone pushed after the first lookup"
        );
        assert!(house.zones_in(extra.area).any(|z| z.id == 999_999));
        assert_eq!(house.zone_mut(999_999).map(|z| z.id), Some(999_999));
        assert_eq!(house.clone(), house, "the index is not part of a house");
    }
}
