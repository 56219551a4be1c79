use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A processor's serial number: LEAP's integer `SerialNumber`.
///
/// Its 8-digit lowercase hex form is the processor's id: it is what the host
/// name `Lutron-<id>.local.` carries and what Home Assistant and openHAB key
/// on, so it is what handoff shows and keys on too.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Serial(pub u32);

impl Serial {
    /// The 8-digit lowercase hex id.
    pub fn id(&self) -> String {
        format!("{:08x}", self.0)
    }

    /// Reads the 8-hex id form (`0236e6a7`), case-insensitively.
    pub fn from_id(id: &str) -> Option<Serial> {
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(id, 16).ok().map(Serial)
    }

    /// The serial a `Lutron-<id>.local.` host name carries, if it is one.
    pub fn from_host_name(host: &str) -> Option<Serial> {
        let label = host.split('.').next()?;
        let (prefix, id) = label.split_once('-')?;
        if !prefix.eq_ignore_ascii_case("lutron") {
            return None;
        }
        Serial::from_id(id)
    }

    /// The host name a processor with this serial advertises.
    pub fn host_name(&self) -> String {
        format!("Lutron-{}.local.", self.id())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Serial {
    type Err = std::num::ParseIntError;

    /// The decimal form, as `SERNUM` and LEAP carry it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<u32>().map(Serial)
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(Serial)
    }
}

/// The `DEVCLASS` TXT value: 8 hex digits naming the hardware.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DevClass(pub u32);

impl DevClass {
    pub fn parse(s: &str) -> Option<DevClass> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok().map(DevClass)
    }

    /// The product line this device class belongs to, where known.
    pub fn system_type(&self) -> Option<SystemType> {
        match self.0 >> 16 {
            0x0804 | 0x0805 => Some(SystemType::CasetaSmartBridge),
            0x080E => Some(SystemType::Ra2Select),
            0x081B => Some(SystemType::RadioRa3),
            0x0811 | 0x0818 => Some(SystemType::HomeWorksQsx),
            _ => None,
        }
    }

    /// A Smart Bridge *Pro* (08050000, 08050100) is a Caséta bridge with the
    /// telnet integration port; integrators want to know which one they face.
    fn is_smart_bridge_pro(&self) -> bool {
        self.0 >> 16 == 0x0805
    }
}

impl fmt::Display for DevClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

/// The product line of a processor.
///
/// An unrecognised `SYSTYPE` is kept as it was sent: a new product line must
/// still be listed, only without a friendly name.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum SystemType {
    CasetaSmartBridge,
    Ra2Select,
    RadioRa3,
    HomeWorksQsx,
    Unknown(String),
}

impl SystemType {
    /// Classifies a `SYSTYPE` value the way Home Assistant's zeroconf
    /// matcher does: case-insensitive prefixes.
    pub fn from_systype(value: &str) -> SystemType {
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("smartbridge") {
            SystemType::CasetaSmartBridge
        } else if lower.starts_with("ra2select") {
            SystemType::Ra2Select
        } else if lower.starts_with("radiora3") {
            SystemType::RadioRa3
        } else if lower.starts_with("hwqs") {
            SystemType::HomeWorksQsx
        } else {
            SystemType::Unknown(value.to_string())
        }
    }

    /// The product name shortened for a table that fits 80 columns, as
    /// integrators say it: "RA3", "QSX", "Caséta", "Caséta Pro", "RA2 Select".
    pub fn product_short(&self, devclass: Option<DevClass>) -> String {
        match self {
            SystemType::CasetaSmartBridge if devclass.is_some_and(|d| d.is_smart_bridge_pro()) => {
                "Caséta Pro".into()
            }
            SystemType::CasetaSmartBridge => "Caséta".into(),
            SystemType::Ra2Select => "RA2 Select".into(),
            SystemType::RadioRa3 => "RA3".into(),
            SystemType::HomeWorksQsx => "QSX".into(),
            SystemType::Unknown(s) if s.is_empty() => "unknown".into(),
            SystemType::Unknown(s) => s.clone(),
        }
    }

    /// The `SYSTYPE` value a processor of this line advertises.
    pub fn systype(&self) -> &str {
        match self {
            SystemType::CasetaSmartBridge => "SmartBridge",
            SystemType::Ra2Select => "RA2Select",
            SystemType::RadioRa3 => "RadioRa3Processor",
            SystemType::HomeWorksQsx => "HWQSProcessor",
            SystemType::Unknown(s) => s,
        }
    }

    /// The short name used on the command line (`--system-type`).
    pub fn short_name(&self) -> &str {
        match self {
            SystemType::CasetaSmartBridge => "caseta",
            SystemType::Ra2Select => "ra2select",
            SystemType::RadioRa3 => "ra3",
            SystemType::HomeWorksQsx => "qsx",
            SystemType::Unknown(s) => s,
        }
    }

    /// The human product name, refined by the device class where it tells
    /// more (a Smart Bridge Pro).
    pub fn product(&self, devclass: Option<DevClass>) -> String {
        match self {
            SystemType::CasetaSmartBridge if devclass.is_some_and(|d| d.is_smart_bridge_pro()) => {
                "Caséta Smart Bridge Pro".into()
            }
            SystemType::CasetaSmartBridge => "Caséta Smart Bridge".into(),
            SystemType::Ra2Select => "RA2 Select Main Repeater".into(),
            SystemType::RadioRa3 => "RadioRA 3 Processor".into(),
            SystemType::HomeWorksQsx => "HomeWorks QSX Processor".into(),
            SystemType::Unknown(s) if s.is_empty() => "unknown Lutron device".into(),
            SystemType::Unknown(s) => format!("unknown ({s})"),
        }
    }

    /// The `DEVCLASS` a simulated processor of this line advertises.
    pub fn sim_devclass(&self) -> Option<DevClass> {
        match self {
            SystemType::CasetaSmartBridge => Some(DevClass(0x0804_0100)),
            SystemType::Ra2Select => Some(DevClass(0x080E_0401)),
            SystemType::RadioRa3 => Some(DevClass(0x081B_0101)),
            SystemType::HomeWorksQsx => Some(DevClass(0x0811_0201)),
            SystemType::Unknown(_) => None,
        }
    }
}

/// Parses the command line's short names (`ra3`, `qsx`, `caseta`,
/// `ra2select`) and also the `SYSTYPE` values themselves.
impl FromStr for SystemType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "caseta" | "caséta" | "smartbridge" => Ok(SystemType::CasetaSmartBridge),
            "ra2select" | "ra2" => Ok(SystemType::Ra2Select),
            "ra3" | "radiora3" => Ok(SystemType::RadioRa3),
            "qsx" | "hwqsx" | "homeworks" => Ok(SystemType::HomeWorksQsx),
            _ => match SystemType::from_systype(s) {
                SystemType::Unknown(_) => Err(format!(
                    "unknown system type '{s}' (expected ra3, qsx, caseta or ra2select)"
                )),
                known => Ok(known),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_id_is_eight_lowercase_hex_digits() {
        assert_eq!(Serial(37152423).id(), "0236e6a7");
        assert_eq!(Serial(1).id(), "00000001");
        assert_eq!(Serial::from_id("0236E6A7"), Some(Serial(37152423)));
        assert_eq!(Serial::from_id("236e6a7"), None);
        assert_eq!(Serial::from_id("0236e6a7x"), None);
        assert_eq!(Serial::from_id("+236e6a7"), None);
    }

    #[test]
    fn serial_from_host_name_needs_the_lutron_prefix() {
        assert_eq!(
            Serial::from_host_name("Lutron-0236e6a7.local."),
            Some(Serial(37152423))
        );
        assert_eq!(
            Serial::from_host_name("lutron-0236E6A7.local"),
            Some(Serial(37152423))
        );
        assert_eq!(
            Serial::from_host_name("Lutron-0236e6a7"),
            Some(Serial(37152423))
        );
        assert_eq!(Serial::from_host_name("printer-0236e6a7.local."), None);
        assert_eq!(Serial::from_host_name("Lutron-xyz.local."), None);
        assert_eq!(Serial::from_host_name("Lutron.local."), None);
        assert_eq!(Serial::from_host_name(""), None);
        assert_eq!(Serial(37152423).host_name(), "Lutron-0236e6a7.local.");
    }

    #[test]
    fn system_type_from_systype_is_case_insensitive_prefix() {
        assert_eq!(
            SystemType::from_systype("SmartBridge"),
            SystemType::CasetaSmartBridge
        );
        assert_eq!(
            SystemType::from_systype("smartbridge2"),
            SystemType::CasetaSmartBridge
        );
        assert_eq!(
            SystemType::from_systype("RadioRa3Processor"),
            SystemType::RadioRa3
        );
        assert_eq!(
            SystemType::from_systype("RADIORA3PROCESSOR"),
            SystemType::RadioRa3
        );
        assert_eq!(
            SystemType::from_systype("HWQSProcessor"),
            SystemType::HomeWorksQsx
        );
        assert_eq!(SystemType::from_systype("RA2Select"), SystemType::Ra2Select);
        assert_eq!(
            SystemType::from_systype("AthenaProcessor"),
            SystemType::Unknown("AthenaProcessor".into())
        );
    }

    #[test]
    fn system_type_from_devclass() {
        let cases = [
            ("08040000", Some(SystemType::CasetaSmartBridge)),
            ("08040100", Some(SystemType::CasetaSmartBridge)),
            ("08050000", Some(SystemType::CasetaSmartBridge)),
            ("08050100", Some(SystemType::CasetaSmartBridge)),
            ("080E0401", Some(SystemType::Ra2Select)),
            ("081B0101", Some(SystemType::RadioRa3)),
            ("08110201", Some(SystemType::HomeWorksQsx)),
            ("08180101", Some(SystemType::HomeWorksQsx)),
            ("08090301", None),
        ];
        for (dc, want) in cases {
            assert_eq!(DevClass::parse(dc).unwrap().system_type(), want, "{dc}");
        }
        assert_eq!(DevClass::parse("081b0101").unwrap().to_string(), "081B0101");
        assert_eq!(DevClass::parse("081B010"), None);
        assert_eq!(DevClass::parse("081B01010"), None);
        assert_eq!(DevClass::parse("zz1B0101"), None);
    }

    #[test]
    fn smart_bridge_pro_is_named_from_devclass() {
        let pro = DevClass::parse("08050100");
        assert_eq!(
            SystemType::CasetaSmartBridge.product(pro),
            "Caséta Smart Bridge Pro"
        );
        assert_eq!(
            SystemType::CasetaSmartBridge.product(DevClass::parse("08040100")),
            "Caséta Smart Bridge"
        );
    }

    #[test]
    fn short_names_parse_and_round_trip() {
        for t in [
            SystemType::CasetaSmartBridge,
            SystemType::Ra2Select,
            SystemType::RadioRa3,
            SystemType::HomeWorksQsx,
        ] {
            assert_eq!(t.short_name().parse::<SystemType>(), Ok(t.clone()));
            assert_eq!(t.systype().parse::<SystemType>(), Ok(t.clone()));
            assert_eq!(SystemType::from_systype(t.systype()), t);
            assert_eq!(t.sim_devclass().unwrap().system_type(), Some(t));
        }
        assert!("lutron".parse::<SystemType>().is_err());
    }
}
