//! The house on the main port: the URLs real clients read to learn what a
//! processor controls, with bodies shaped as pylutron-caseta's recorded
//! responses (`tests/responses/` of its repository) and as it reads them.
//!
//! Caséta clients read `/device` (every device, with `LocalZones`,
//! `ButtonGroups`, `OccupancySensors`), `/button`, `/occupancygroup` and
//! each `/zone/N/status`. RadioRA 3 and QSX clients walk `/area`, then each
//! area's `associatedcontrolstation` and `associatedzone`, then each
//! keypad's `/device/N/buttongroup/expanded` and `/device/N`.
//!
//! A control station's id is its first device's, and a button group's is
//! its device's (one group per keypad): handoff's choice, the hrefs live
//! in collections of their own.

use serde_json::{Value, json};

use super::house::{
    Area, Button, Device, House, Zone, ZoneType, fan_speed, has_buttons, is_occupancy_sensor,
};

fn href(kind: &str, id: u32) -> Value {
    json!({"href": format!("/{kind}/{id}")})
}

pub fn area_json(house: &House, a: &Area) -> Value {
    let mut area = json!({
        "href": format!("/area/{}", a.id),
        "Name": a.name,
        "IsLeaf": !house.has_children(a.id),
    });
    if let Some(parent) = a.parent {
        area["Parent"] = href("area", parent);
    }
    area
}

pub fn device_json(house: &House, d: &Device) -> Value {
    let area_name = house.area(d.area).map_or("", |a| a.name.as_str());
    let mut device = json!({
        "href": format!("/device/{}", d.id),
        "Name": d.name,
        "FullyQualifiedName": [area_name, d.name],
        "Parent": {"href": "/project"},
        "SerialNumber": d.serial,
        "ModelNumber": d.model,
        "DeviceType": d.device_type,
        "AssociatedArea": href("area", d.area),
        "FirmwareImage": {"Firmware": {"DisplayName": d.firmware}},
    });
    if let Some(zone) = d.zone {
        device["LocalZones"] = json!([href("zone", zone)]);
    }
    if has_buttons(&d.device_type) {
        device["ButtonGroups"] = json!([href("buttongroup", d.id)]);
    }
    if is_occupancy_sensor(&d.device_type) {
        device["OccupancySensors"] = json!([href("occupancysensor", d.id)]);
    }
    device
}

pub fn zone_json(z: &Zone) -> Value {
    json!({
        "href": format!("/zone/{}", z.id),
        "Name": z.name,
        "ControlType": z.zone_type,
        "Category": {"Type": category(z.zone_type), "IsLight": matches!(z.zone_type, ZoneType::Dimmed | ZoneType::Switched)},
        "AssociatedArea": href("area", z.area),
    })
}

fn category(t: ZoneType) -> &'static str {
    match t {
        ZoneType::Dimmed | ZoneType::Switched => "Light",
        ZoneType::Shade => "Shade",
        ZoneType::FanSpeed => "Fan",
    }
}

/// A zone's status: `Level` for every type but a fan, which reports its
/// `FanSpeed` (pylutron-caseta reads both).
pub fn zone_status_json(z: &Zone) -> Value {
    let mut status = json!({
        "href": format!("/zone/{}/status", z.id),
        "Zone": href("zone", z.id),
        "StatusAccuracy": "Good",
    });
    match z.zone_type {
        ZoneType::FanSpeed => status["FanSpeed"] = json!(fan_speed(z.level)),
        ZoneType::Switched => {
            status["Level"] = json!(z.level);
            status["SwitchedLevel"] = json!(if z.level > 0 { "On" } else { "Off" });
        }
        _ => status["Level"] = json!(z.level),
    }
    status
}

pub fn button_json(b: &Button) -> Value {
    let mut button = json!({
        "href": format!("/button/{}", b.id),
        "Name": format!("Button {}", b.number),
        "ButtonNumber": b.number,
        "Parent": href("buttongroup", b.device),
    });
    if !b.engraving.is_empty() {
        button["Engraving"] = json!({"Text": b.engraving});
    }
    button
}

pub fn button_event_json(button: u32, event: &str) -> Value {
    json!({"ButtonStatus": {
        "Button": href("button", button),
        "ButtonEvent": {"EventType": event},
    }})
}

fn button_group_json(house: &House, d: &Device, expanded: bool) -> Value {
    let mut group = json!({
        "href": format!("/buttongroup/{}", d.id),
        "Parent": href("device", d.id),
        "SortOrder": 0,
        "Category": {"Type": "Unknown"},
        "ProgrammingType": "Freeform",
    });
    let buttons: Vec<Value> = house.buttons_of(d.id).map(button_json).collect();
    group["Buttons"] = if expanded {
        Value::Array(buttons)
    } else {
        buttons.iter().map(|b| json!({"href": b["href"]})).collect()
    };
    group
}

/// The control stations of an area: its devices grouped by `station`.
fn stations(house: &House, area: u32) -> Vec<Value> {
    let mut stations: Vec<(&str, Vec<&Device>)> = Vec::new();
    for d in house.devices_in(area) {
        let Some(name) = d.station.as_deref() else {
            continue;
        };
        match stations.iter_mut().find(|(n, _)| *n == name) {
            Some((_, devices)) => devices.push(d),
            None => stations.push((name, vec![d])),
        }
    }
    // A device without a station (a Pico, a sensor) is a station of its
    // own, so that the area walk finds every device.
    for d in house.devices_in(area).filter(|d| d.station.is_none()) {
        stations.push((d.name.as_str(), vec![d]));
    }
    stations
        .into_iter()
        .map(|(name, devices)| {
            json!({
                "href": format!("/controlstation/{}", devices[0].id),
                "Name": name,
                "AssociatedArea": href("area", area),
                "AssociatedGangedDevices": devices.iter().enumerate().map(|(i, d)| json!({
                    "Device": {
                        "href": format!("/device/{}", d.id),
                        "DeviceType": d.device_type,
                        "AddressedState": "Addressed",
                    },
                    "GangPosition": i,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// An occupancy group per sensed area, Caséta style.
fn occupancy_groups(house: &House) -> Vec<Value> {
    house
        .sensed_areas()
        .into_iter()
        .map(|area| {
            let sensors: Vec<Value> = house
                .devices_in(area)
                .filter(|d| is_occupancy_sensor(&d.device_type))
                .map(|d| json!({"OccupancySensor": href("occupancysensor", d.id)}))
                .collect();
            json!({
                "href": format!("/occupancygroup/{area}"),
                "AssociatedSensors": sensors,
                "AssociatedAreas": [{"Area": href("area", area)}],
            })
        })
        .collect()
}

fn occupancy_word(occupied: bool) -> &'static str {
    if occupied { "Occupied" } else { "Unoccupied" }
}

pub fn occupancy_group_status_json(area: u32, occupied: bool) -> Value {
    json!({
        "href": format!("/occupancygroup/{area}/status"),
        "OccupancyGroup": href("occupancygroup", area),
        "OccupancyStatus": occupancy_word(occupied),
    })
}

/// An area's status: `Unknown` occupancy without a sensor, as processors
/// report it (pylutron-caseta warns about a sensed area reported Unknown).
pub fn area_status_json(house: &House, a: &Area) -> Value {
    let sensed = house.sensed_areas().contains(&a.id);
    json!({
        "href": format!("/area/{}/status", a.id),
        "OccupancyStatus": if sensed { occupancy_word(a.occupied) } else { "Unknown" },
        "CurrentScene": null,
    })
}

/// What a house URL holds: its `MessageBodyType` and body (`None`: `204
/// NoContent`, as processors answer an empty collection), and whether it
/// can be subscribed to. `None`: no such URL here.
pub struct Resource {
    pub body_type: &'static str,
    pub body: Option<Value>,
    pub subscribable: bool,
}

fn read(body_type: &'static str, body: Value) -> Option<Resource> {
    Some(Resource {
        body_type,
        body: Some(body),
        subscribable: false,
    })
}

fn status(body_type: &'static str, body: Value) -> Option<Resource> {
    Some(Resource {
        body_type,
        body: Some(body),
        subscribable: true,
    })
}

/// A collection: `204` when empty.
fn many(body_type: &'static str, key: &str, items: Vec<Value>) -> Option<Resource> {
    Some(Resource {
        body_type,
        body: (!items.is_empty()).then(|| json!({ key: items })),
        subscribable: false,
    })
}

/// `/kind/N` and what follows it.
fn split_id<'a>(url: &'a str, kind: &str) -> Option<(u32, &'a str)> {
    let rest = url
        .strip_prefix('/')?
        .strip_prefix(kind)?
        .strip_prefix('/')?;
    let end = rest.find('/').unwrap_or(rest.len());
    let id = rest[..end].parse().ok()?;
    Some((id, &rest[end..]))
}

/// The house's URLs. `/device`, `/project` and the processor's own device
/// are the caller's, which knows the processor.
pub fn resource(house: &House, url: &str) -> Option<Resource> {
    match url {
        "/area" => {
            return read(
                "MultipleAreaDefinition",
                json!({"Areas": house.areas.iter().map(|a| area_json(house, a)).collect::<Vec<_>>()}),
            );
        }
        "/area/status" => {
            return status(
                "MultipleAreaStatus",
                json!({"AreaStatuses": house.areas.iter().map(|a| area_status_json(house, a)).collect::<Vec<_>>()}),
            );
        }
        "/zone" => {
            return many(
                "MultipleZoneDefinition",
                "Zones",
                house.zones.iter().map(zone_json).collect(),
            );
        }
        "/zone/status" => {
            return status(
                "MultipleZoneStatus",
                json!({"ZoneStatuses": house.zones.iter().map(zone_status_json).collect::<Vec<_>>()}),
            );
        }
        "/button" => {
            return read(
                "MultipleButtonDefinition",
                json!({"Buttons": house.buttons.iter().map(button_json).collect::<Vec<_>>()}),
            );
        }
        "/buttongroup" => {
            return read(
                "MultipleButtonGroupDefinition",
                json!({"ButtonGroups": house.devices.iter()
                    .filter(|d| has_buttons(&d.device_type))
                    .map(|d| button_group_json(house, d, false)).collect::<Vec<_>>()}),
            );
        }
        "/occupancygroup" => {
            return read(
                "MultipleOccupancyGroupDefinition",
                json!({"OccupancyGroups": occupancy_groups(house)}),
            );
        }
        "/occupancygroup/status" => {
            let statuses: Vec<Value> = house
                .sensed_areas()
                .into_iter()
                .map(|a| occupancy_group_status_json(a, house.area(a).is_some_and(|a| a.occupied)))
                .collect();
            return status(
                "MultipleOccupancyGroupStatus",
                json!({"OccupancyGroupStatuses": statuses}),
            );
        }
        _ => {}
    }
    if let Some((id, rest)) = split_id(url, "area") {
        let a = house.area(id)?;
        return match rest {
            "" => read("OneAreaDefinition", json!({"Area": area_json(house, a)})),
            "/status" => status(
                "OneAreaStatus",
                json!({"AreaStatus": area_status_json(house, a)}),
            ),
            "/associatedzone" => many(
                "MultipleZoneDefinition",
                "Zones",
                house.zones_in(id).map(zone_json).collect(),
            ),
            "/associatedcontrolstation" => many(
                "MultipleControlStationDefinition",
                "ControlStations",
                stations(house, id),
            ),
            _ => None,
        };
    }
    if let Some((id, rest)) = split_id(url, "device") {
        let d = house.device(id)?;
        let buttons = has_buttons(&d.device_type);
        return match rest {
            "" => read(
                "OneDeviceDefinition",
                json!({"Device": device_json(house, d)}),
            ),
            "/buttongroup/expanded" => many(
                "MultipleButtonGroupExpandedDefinition",
                "ButtonGroupsExpanded",
                if buttons {
                    vec![button_group_json(house, d, true)]
                } else {
                    vec![]
                },
            ),
            "/buttongroup" => many(
                "MultipleButtonGroupDefinition",
                "ButtonGroups",
                if buttons {
                    vec![button_group_json(house, d, false)]
                } else {
                    vec![]
                },
            ),
            _ => None,
        };
    }
    if let Some((id, rest)) = split_id(url, "zone") {
        let z = house.zone(id)?;
        return match rest {
            "" => read("OneZoneDefinition", json!({"Zone": zone_json(z)})),
            "/status" => status("OneZoneStatus", json!({"ZoneStatus": zone_status_json(z)})),
            _ => None,
        };
    }
    if let Some((id, rest)) = split_id(url, "button") {
        let b = house.button(id)?;
        return match rest {
            "" => read("OneButtonDefinition", json!({"Button": button_json(b)})),
            "/status/event" => status("OneButtonStatusEvent", button_event_json(id, "Release")),
            _ => None,
        };
    }
    if let Some((id, "")) = split_id(url, "buttongroup") {
        let d = house.device(id).filter(|d| has_buttons(&d.device_type))?;
        return read(
            "OneButtonGroupDefinition",
            json!({"ButtonGroup": button_group_json(house, d, false)}),
        );
    }
    if let Some((id, rest)) = split_id(url, "occupancygroup") {
        if !house.sensed_areas().contains(&id) {
            return None;
        }
        let occupied = house.area(id).is_some_and(|a| a.occupied);
        return match rest {
            "/status" => status(
                "OneOccupancyGroupStatus",
                json!({"OccupancyGroupStatus": occupancy_group_status_json(id, occupied)}),
            ),
            _ => None,
        };
    }
    None
}
