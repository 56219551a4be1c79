//! A running processor's house: its current levels, the commands that
//! change them, and the events every main-port connection hears about.
//!
//! Made on first use ([`HouseSlot::live`]): a thousand processors nobody
//! talks to hold no house at all.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tokio::sync::broadcast;

use super::SimProcessor;
use super::generated_house::generate;
use super::house::{FAN_SPEEDS, House, Zone, ZoneType};

/// Events kept for a connection that is slow to take them; one that falls
/// further behind misses the oldest (it is told so in the log), and
/// nobody else waits for it.
const EVENT_BACKLOG: usize = 256;

/// Something that changed, for subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HouseEvent {
    /// A zone's new state.
    Zone(Zone),
    /// `Press` or `Release` of a button.
    Button { button: u32, event: &'static str },
    /// An occupancy group (an area with sensors) changed.
    Occupancy { area: u32, occupied: bool },
}

/// Why a command was refused; the main port answers each with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
}

/// One processor's house, made when first needed.
pub struct HouseSlot {
    processor: SimProcessor,
    /// The `--house` file's house, shared by the fleet; `None`: generated.
    template: Option<Arc<House>>,
    live: OnceLock<LiveHouse>,
}

impl HouseSlot {
    pub fn new(processor: SimProcessor, template: Option<Arc<House>>) -> HouseSlot {
        HouseSlot {
            processor,
            template,
            live: OnceLock::new(),
        }
    }

    pub fn processor(&self) -> &SimProcessor {
        &self.processor
    }

    /// The house as it starts, without making the live one.
    pub fn initial(&self) -> House {
        match &self.template {
            Some(house) => (**house).clone(),
            None => generate(&self.processor),
        }
    }

    pub fn live(&self) -> &LiveHouse {
        self.live.get_or_init(|| LiveHouse::new(self.initial()))
    }
}

/// A house with its current state.
pub struct LiveHouse {
    house: Mutex<House>,
    events: broadcast::Sender<HouseEvent>,
}

impl LiveHouse {
    pub fn new(house: House) -> LiveHouse {
        LiveHouse {
            house: Mutex::new(house),
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    /// The house now. A panic elsewhere while holding the lock leaves the
    /// data as it was, which is still a house: go on with it.
    pub fn lock(&self) -> MutexGuard<'_, House> {
        self.house
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HouseEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: HouseEvent) {
        // No receiver is no error: nobody is listening.
        let _ = self.events.send(event);
    }

    /// Runs a zone command (the `Command` object of a
    /// `/zone/N/commandprocessor` request); returns the zone's new state.
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for no such zone; [`CommandError::BadRequest`]
    /// for a command unknown, malformed or wrong for the zone's type.
    pub fn command_zone(&self, zone: u32, command: &Value) -> Result<Zone, CommandError> {
        let changed = {
            let mut house = self.lock();
            let Some(z) = house.zone_mut(zone) else {
                return Err(CommandError::NotFound(format!("/zone/{zone}")));
            };
            let level = target_level(z, command)?;
            if let Some(level) = level {
                z.level = level;
            }
            z.clone()
        };
        self.emit(HouseEvent::Zone(changed.clone()));
        Ok(changed)
    }

    /// Runs a button command: `Press`, `Release` or `PressAndRelease`.
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for no such button, `BadRequest` for
    /// another command.
    pub fn command_button(&self, button: u32, command: &str) -> Result<(), CommandError> {
        if self.lock().button(button).is_none() {
            return Err(CommandError::NotFound(format!("/button/{button}")));
        }
        let events: &[&'static str] = match command {
            "Press" => &["Press"],
            "Release" => &["Release"],
            "PressAndRelease" => &["Press", "Release"],
            other => {
                return Err(CommandError::BadRequest(format!(
                    "a button takes Press, Release or PressAndRelease, not {other:?}"
                )));
            }
        };
        for event in events {
            self.emit(HouseEvent::Button { button, event });
        }
        Ok(())
    }

    /// Presses and releases a keypad button as a person would: `device`
    /// is the keypad's id, serial or name, `button` its number, id or
    /// engraving. Returns what was pressed.
    ///
    /// # Errors
    /// The reason, naming what the house has.
    pub fn press_keypad(&self, device: &str, button: &str) -> Result<String, String> {
        let (id, what) = {
            let house = self.lock();
            let Some(keypad) = house.find_keypad(device) else {
                let names: Vec<String> = house
                    .devices
                    .iter()
                    .filter(|d| super::house::has_buttons(&d.device_type))
                    .map(|d| format!("{} ({})", d.id, d.name))
                    .collect();
                return Err(format!(
                    "no keypad or Pico is {:?}; this house has {}",
                    device.trim(),
                    names.join(", ")
                ));
            };
            let Some(b) = house.find_button(keypad.id, button) else {
                let buttons: Vec<String> = house
                    .buttons_of(keypad.id)
                    .map(|b| format!("{} ({})", b.number, b.engraving))
                    .collect();
                return Err(format!(
                    "{} has no button {:?}; its buttons are {}",
                    keypad.name,
                    button.trim(),
                    buttons.join(", ")
                ));
            };
            (
                b.id,
                format!(
                    "button {} ({:?}, /button/{}) of {} (device {})",
                    b.number, b.engraving, b.id, keypad.name, keypad.id
                ),
            )
        };
        self.command_button(id, "PressAndRelease")
            .map_err(|e| e.to_string())?;
        Ok(what)
    }

    /// Someone enters or leaves an area with a sensor.
    ///
    /// # Errors
    /// [`CommandError::NotFound`] for an area without a sensor.
    pub fn set_occupancy(&self, area: u32, occupied: bool) -> Result<(), CommandError> {
        {
            let mut house = self.lock();
            if !house.sensed_areas().contains(&area) {
                return Err(CommandError::NotFound(format!("/occupancygroup/{area}")));
            }
            if let Some(a) = house.area_mut(area) {
                a.occupied = occupied;
            }
        }
        self.emit(HouseEvent::Occupancy { area, occupied });
        Ok(())
    }
}

/// The level a command sets `zone` to (`None`: unchanged, as `Stop`).
fn target_level(zone: &Zone, command: &Value) -> Result<Option<u8>, CommandError> {
    let bad = |s: String| Err(CommandError::BadRequest(s));
    let Some(kind) = command.get("CommandType").and_then(Value::as_str) else {
        return bad("the command has no CommandType".into());
    };
    let level_in = |v: Option<&Value>| -> Result<u8, CommandError> {
        match v.and_then(Value::as_u64) {
            Some(l) if l <= 100 => Ok(l as u8),
            _ => Err(CommandError::BadRequest(format!(
                "{kind} needs a Level from 0 to 100"
            ))),
        }
    };
    let wrong = || {
        Err(CommandError::BadRequest(format!(
            "{kind} does not apply to zone {} ({:?})",
            zone.id, zone.zone_type
        )))
    };
    let t = zone.zone_type;
    let level = match kind {
        "GoToLevel" => {
            if t == ZoneType::FanSpeed {
                return wrong();
            }
            let value = command
                .get("Parameter")
                .and_then(Value::as_array)
                .and_then(|ps| {
                    ps.iter()
                        .find(|p| p.get("Type").and_then(Value::as_str) == Some("Level"))
                })
                .and_then(|p| p.get("Value"));
            let level = level_in(value)?;
            if t == ZoneType::Switched && level > 0 {
                100
            } else {
                level
            }
        }
        "GoToDimmedLevel" => {
            if t != ZoneType::Dimmed {
                return wrong();
            }
            let params = command.get("DimmedLevelParameters");
            if let Some(fade) = params.and_then(|p| p.get("FadeTime"))
                && !fade.as_str().is_some_and(is_duration)
            {
                return bad(format!("FadeTime must be hh:mm:ss, not {fade}"));
            }
            level_in(params.and_then(|p| p.get("Level")))?
        }
        "GoToShadeLevel" => {
            if t != ZoneType::Shade {
                return wrong();
            }
            level_in(command.pointer("/ShadeLevelParameters/Level"))?
        }
        "GoToSwitchedLevel" => {
            if t != ZoneType::Switched {
                return wrong();
            }
            match command
                .pointer("/SwitchedLevelParameters/SwitchedLevel")
                .and_then(Value::as_str)
            {
                Some("On") => 100,
                Some("Off") => 0,
                _ => return bad("GoToSwitchedLevel needs SwitchedLevel On or Off".into()),
            }
        }
        "GoToFanSpeed" => {
            if t != ZoneType::FanSpeed {
                return wrong();
            }
            let speed = command
                .pointer("/FanSpeedParameters/FanSpeed")
                .and_then(Value::as_str);
            match FAN_SPEEDS.iter().find(|(s, _)| Some(*s) == speed) {
                Some((_, level)) => *level,
                None => {
                    return bad(
                        "GoToFanSpeed needs FanSpeed Off, Low, Medium, MediumHigh or High".into(),
                    );
                }
            }
        }
        "Raise" | "Lower" | "Stop" => {
            if t != ZoneType::Shade {
                return wrong();
            }
            match kind {
                "Raise" => 100,
                "Lower" => 0,
                _ => return Ok(None),
            }
        }
        other => return bad(format!("unknown CommandType {other:?}")),
    };
    Ok(Some(level))
}

/// LEAP durations: `hh:mm:ss`, optionally with fractional seconds.
fn is_duration(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts[..2]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[2]
            .parse::<f64>()
            .is_ok_and(|s| (0.0..60.0).contains(&s))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn live() -> LiveHouse {
        LiveHouse::new(super::super::house::example())
    }

    #[test]
    fn level_commands_follow_the_zone_type() {
        let h = live();
        let mut events = h.subscribe();
        let go = |v: u64| json!({"CommandType": "GoToLevel", "Parameter": [{"Type": "Level", "Value": v}]});
        assert_eq!(h.command_zone(20, &go(40)).unwrap().level, 40);
        assert_eq!(
            events.try_recv().unwrap(),
            HouseEvent::Zone(h.lock().zone(20).unwrap().clone())
        );
        // A switch is on or off.
        assert_eq!(h.command_zone(21, &go(40)).unwrap().level, 100);
        let dim = json!({"CommandType": "GoToDimmedLevel",
            "DimmedLevelParameters": {"Level": 75, "FadeTime": "00:00:02"}});
        assert_eq!(h.command_zone(20, &dim).unwrap().level, 75);
        assert!(matches!(
            h.command_zone(21, &dim),
            Err(CommandError::BadRequest(_))
        ));
        let shade = json!({"CommandType": "GoToShadeLevel", "ShadeLevelParameters": {"Level": 10}});
        assert_eq!(h.command_zone(22, &shade).unwrap().level, 10);
        assert!(matches!(
            h.command_zone(20, &shade),
            Err(CommandError::BadRequest(_))
        ));
        let off = json!({"CommandType": "GoToSwitchedLevel", "SwitchedLevelParameters": {"SwitchedLevel": "Off"}});
        assert_eq!(h.command_zone(21, &off).unwrap().level, 0);
        assert_eq!(
            h.command_zone(99, &go(1)),
            Err(CommandError::NotFound("/zone/99".into()))
        );
        assert!(matches!(
            h.command_zone(20, &go(101)),
            Err(CommandError::BadRequest(_))
        ));
        assert!(matches!(
            h.command_zone(20, &json!({"CommandType": "Dance"})),
            Err(CommandError::BadRequest(_))
        ));
    }

    #[test]
    fn a_keypad_press_is_a_press_then_a_release() {
        let h = live();
        let mut events = h.subscribe();
        let what = h.press_keypad("Kitchen Keypad", "cooking").unwrap();
        assert!(what.contains("/button/31"), "{what}");
        for event in ["Press", "Release"] {
            assert_eq!(
                events.try_recv().unwrap(),
                HouseEvent::Button { button: 31, event }
            );
        }
        assert!(
            h.press_keypad("41020012", "9")
                .unwrap_err()
                .contains("1 (Bright)")
        );
        assert!(
            h.press_keypad("nope", "1")
                .unwrap_err()
                .contains("12 (Kitchen Keypad)")
        );
    }
}
