//! The default house of a simulated processor, made from its serial (and
//! so from the fleet's `--seed`): the same processor always gets the same
//! house. Sized as the product line's real projects are: a Caséta bridge
//! holds at most 75 devices and typically 10–40; a RadioRA 3 or QSX
//! project has floors of rooms and a few dozen to a few hundred zones.
//!
//! Houses are made when first needed and not kept by the fleet itself,
//! so a thousand idle processors cost nothing here.

use super::SimProcessor;
use super::fleet::splitmix64;
use super::house::{Area, Button, Device, House, Zone, ZoneType};
use crate::processor::SystemType;

const ROOMS: [&str; 24] = [
    "Kitchen",
    "Living Room",
    "Dining Room",
    "Entry",
    "Hallway",
    "Primary Bedroom",
    "Bedroom 2",
    "Bedroom 3",
    "Office",
    "Family Room",
    "Garage",
    "Patio",
    "Laundry",
    "Guest Bath",
    "Primary Bath",
    "Media Room",
    "Gym",
    "Wine Cellar",
    "Mudroom",
    "Nursery",
    "Library",
    "Porch",
    "Stairs",
    "Playroom",
];

const FLOORS: [&str; 4] = ["Main Floor", "Upstairs", "Lower Level", "Outside"];

const LIGHTS: [&str; 8] = [
    "Downlights",
    "Pendants",
    "Sconces",
    "Cove",
    "Chandelier",
    "Accent",
    "Vanity",
    "Island",
];

const SCENES: [&str; 10] = [
    "Bright",
    "Dim",
    "Entertain",
    "Goodnight",
    "Pathway",
    "Relax",
    "Cooking",
    "Reading",
    "Shades",
    "All Off",
];

/// Models per product line: (dimmer, switch, shade, fan, keypad, pico,
/// sensor), each `(DeviceType, ModelNumber)`.
struct Catalogue {
    dimmer: (&'static str, &'static str),
    switch: (&'static str, &'static str),
    shade: (&'static str, &'static str),
    fan: Option<(&'static str, &'static str)>,
    keypad: Option<(&'static str, &'static str)>,
    pico: (&'static str, &'static str),
    sensor: (&'static str, &'static str),
    firmware: &'static str,
}

fn catalogue(system_type: &SystemType) -> Catalogue {
    let pico = ("Pico3ButtonRaiseLower", "PJ2-3BRL-GWH-L01");
    let sensor = ("RPSCeilingMountedOccupancySensor", "LRF2-OCR2B-P-WH");
    match system_type {
        SystemType::CasetaSmartBridge | SystemType::Ra2Select => Catalogue {
            dimmer: ("WallDimmer", "PD-6WCL-XX"),
            switch: ("WallSwitch", "PD-6ANS-XX"),
            shade: ("SerenaRollerShade", "SYC-CSR-EDU"),
            fan: Some(("CasetaFanSpeedController", "PD-FSQN-XX")),
            keypad: None,
            pico,
            sensor,
            firmware: "003.021.000r000",
        },
        SystemType::HomeWorksQsx => Catalogue {
            dimmer: ("WallDimmer", "HQRD-6D-XX"),
            switch: ("WallSwitch", "HQRD-8ANS-XX"),
            shade: ("QsWirelessShade", "QSYC-J-RCVR"),
            fan: None,
            keypad: Some(("PalladiomKeypad", "HQWT-U-P4W")),
            pico,
            sensor,
            firmware: "011.004.002r000",
        },
        _ => Catalogue {
            dimmer: ("SunnataDimmer", "RRST-PRO-N-XX"),
            switch: ("SunnataSwitch", "RRST-8ANS-XX"),
            shade: ("QsWirelessShade", "QSYC-J-RCVR"),
            fan: None,
            keypad: Some(("SunnataKeypad", "RRST-W4B-XX")),
            pico,
            sensor,
            firmware: "002.019.000r000",
        },
    }
}

/// A deterministic stream of numbers.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 = splitmix64(self.0);
        (self.0 % n.max(1) as u64) as usize
    }

    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What is being built, with the next free id.
struct Builder {
    house: House,
    next_id: u32,
    dice: Dice,
    catalogue: Catalogue,
}

impl Builder {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn serial(&mut self) -> u32 {
        // Eight digits, as device serials are; unique enough within a house
        // and made unique by the id below.
        10_000_000 + (self.dice.below(80_000_000) as u32 / 1000) * 1000 + self.next_id % 1000
    }

    fn area(&mut self, name: &str, parent: Option<u32>) -> u32 {
        let id = self.id();
        self.house.areas.push(Area {
            id,
            name: name.into(),
            parent,
            occupied: false,
        });
        id
    }

    fn device(
        &mut self,
        area: u32,
        name: String,
        (device_type, model): (&str, &str),
        station: Option<String>,
        zone: Option<u32>,
    ) -> u32 {
        let serial = self.serial();
        let id = self.id();
        self.house.devices.push(Device {
            id,
            name,
            area,
            device_type: device_type.into(),
            model: model.into(),
            serial,
            firmware: self.catalogue.firmware.into(),
            station,
            zone,
        });
        id
    }

    /// A zone and the device that drives it, mounted at `station`.
    fn load(&mut self, area: u32, name: String, zone_type: ZoneType, station: &str) {
        let zone = self.id();
        let level = match zone_type {
            ZoneType::Dimmed | ZoneType::Shade => [0, 0, 50, 75, 100][self.dice.below(5)],
            ZoneType::Switched | ZoneType::FanSpeed => [0, 0, 100][self.dice.below(3)],
        };
        self.house.zones.push(Zone {
            id: zone,
            name: name.clone(),
            area,
            zone_type,
            level,
        });
        let model = match zone_type {
            ZoneType::Dimmed => self.catalogue.dimmer,
            ZoneType::Switched => self.catalogue.switch,
            ZoneType::Shade => self.catalogue.shade,
            ZoneType::FanSpeed => self.catalogue.fan.unwrap_or(self.catalogue.switch),
        };
        self.device(area, name, model, Some(station.into()), Some(zone));
    }

    fn keypad(&mut self, area: u32, name: String, model: (&str, &str), engravings: &[&str]) {
        let station = name.clone();
        let device = self.device(area, name, model, Some(station), None);
        for (i, engraving) in engravings.iter().enumerate() {
            let id = self.id();
            self.house.buttons.push(Button {
                id,
                device,
                number: i as u32 + 1,
                engraving: (*engraving).into(),
            });
        }
    }

    fn pico(&mut self, area: u32, name: String) {
        let device = self.device(area, name, self.catalogue.pico, None, None);
        // A 3-button raise/lower Pico's button numbers (On, Favorite, Off,
        // Raise, Lower).
        for (number, engraving) in [
            (2, "On"),
            (3, "Favorite"),
            (4, "Off"),
            (5, "Raise"),
            (6, "Lower"),
        ] {
            let id = self.id();
            self.house.buttons.push(Button {
                id,
                device,
                number,
                engraving: engraving.into(),
            });
        }
    }

    /// One room: its loads, a keypad or Pico, sometimes a sensor.
    fn room(&mut self, area: u32, room: &str, loads: usize) {
        let entry = format!("{room} Entry");
        for i in 0..loads {
            let (name, zone_type) = match self.dice.below(10) {
                0 => ("Shades".to_string(), ZoneType::Shade),
                1 => ("Exhaust".to_string(), ZoneType::Switched),
                2 if self.catalogue.fan.is_some() => {
                    ("Ceiling Fan".to_string(), ZoneType::FanSpeed)
                }
                _ => (
                    LIGHTS[(i + self.dice.below(3)) % LIGHTS.len()].to_string(),
                    ZoneType::Dimmed,
                ),
            };
            let name = if i > 0
                && self
                    .house
                    .zones
                    .iter()
                    .any(|z| z.area == area && z.name == name)
            {
                format!("{name} {}", i + 1)
            } else {
                name
            };
            self.load(area, name, zone_type, &entry);
        }
        match self.catalogue.keypad {
            Some(keypad) if self.dice.chance(80) => {
                let buttons = self.dice.between(3, 6);
                let first = self.dice.below(SCENES.len());
                let mut engravings: Vec<&str> = (0..buttons - 1)
                    .map(|i| SCENES[(first + i) % SCENES.len()])
                    .collect();
                engravings.push("Off");
                self.keypad(area, format!("{room} Keypad"), keypad, &engravings);
            }
            _ => {}
        }
        if (self.catalogue.keypad.is_none() || self.dice.chance(20)) && self.dice.chance(50) {
            self.pico(area, format!("{room} Pico"));
        }
        if self.dice.chance(25) {
            let sensor = self.catalogue.sensor;
            self.device(area, format!("{room} Sensor"), sensor, None, None);
        }
    }
}

/// The default house of `p`.
pub fn generate(p: &SimProcessor) -> House {
    let kind = p.system_type.short_name();
    let seed =
        splitmix64(u64::from(p.serial.0) ^ kind.bytes().fold(0, |h, b| h * 31 + u64::from(b)));
    let mut b = Builder {
        house: House::default(),
        next_id: super::house::PROCESSOR_DEVICE_ID,
        dice: Dice(seed),
        catalogue: catalogue(&p.system_type),
    };
    let family = [
        "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad",
    ][b.dice.below(8)];
    b.house.project = format!("{family} Residence");
    let home = b.area("Home", None);
    match p.system_type {
        SystemType::CasetaSmartBridge | SystemType::Ra2Select => {
            // Flat rooms under the home, a few loads each: 8–40 devices.
            let rooms = b.dice.between(4, 10);
            let first = b.dice.below(ROOMS.len());
            for i in 0..rooms {
                let room = ROOMS[(first + i) % ROOMS.len()];
                let area = b.area(room, Some(home));
                let loads = b.dice.between(1, 3);
                b.room(area, room, loads);
            }
        }
        _ => {
            // Floors of rooms; the processor in an equipment room.
            b.area("Equipment Room", Some(home));
            let (low, high) = if p.system_type == SystemType::HomeWorksQsx {
                (14, 40)
            } else {
                (8, 24)
            };
            let rooms = b.dice.between(low, high);
            let floors = b.dice.between(2, FLOORS.len());
            let floor_ids: Vec<u32> = FLOORS[..floors]
                .iter()
                .map(|f| b.area(f, Some(home)))
                .collect();
            let first = b.dice.below(ROOMS.len());
            for i in 0..rooms {
                let mut room = ROOMS[(first + i) % ROOMS.len()].to_string();
                if i >= ROOMS.len() {
                    room = format!("{room} {}", i / ROOMS.len() + 1);
                }
                let floor = floor_ids[i % floor_ids.len()];
                let area = b.area(&room, Some(floor));
                let loads = b.dice.between(2, 6);
                b.room(area, &room, loads);
            }
        }
    }
    // Every house has something to press.
    if b.house.buttons.is_empty() {
        let area = b.house.areas.last().map_or(home, |a| a.id);
        let name = b
            .house
            .areas
            .last()
            .map_or("Home".into(), |a| a.name.clone());
        b.pico(area, format!("{name} Pico"));
    }
    let house = b.house;
    debug_assert!(house.check().is_ok(), "{:?}", house.check());
    house
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{FleetSpec, build_fleet};

    fn fleet() -> Vec<SimProcessor> {
        build_fleet(&FleetSpec {
            count: 30,
            system_types: vec![
                SystemType::CasetaSmartBridge,
                SystemType::RadioRa3,
                SystemType::HomeWorksQsx,
            ],
            seed: 3,
            ..FleetSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn houses_are_consistent_deterministic_and_differ_between_processors() {
        let fleet = fleet();
        let houses: Vec<House> = fleet.iter().map(generate).collect();
        for (p, h) in fleet.iter().zip(&houses) {
            h.check().unwrap();
            assert_eq!(&generate(p), h);
        }
        assert_ne!(houses[0], houses[3]);
    }

    #[test]
    fn sizes_fit_the_product_line() {
        for p in fleet() {
            let h = generate(&p);
            let (devices, zones) = (h.devices.len(), h.zones.len());
            match p.system_type {
                SystemType::CasetaSmartBridge => {
                    assert!((4..=50).contains(&devices), "caseta {devices}");
                    assert!(h.devices.iter().all(|d| !d.device_type.ends_with("Keypad")));
                }
                SystemType::RadioRa3 => assert!((16..=150).contains(&zones), "ra3 {zones}"),
                _ => assert!((28..=240).contains(&zones), "qsx {zones}"),
            }
            assert!(!h.buttons.is_empty(), "{:?}", p.system_type);
            assert!(h.zones.iter().all(|z| h.device_of_zone(z.id).is_some()));
        }
    }
}
