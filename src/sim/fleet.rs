//! What a simulated fleet is: processors derived deterministically from a
//! seed, so a test knows what it should find without reading the manifest.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::processor::{Mac, ProcessorInfo, Serial, ServiceRecord, SystemType, TxtEntry};

/// The service type simulated processors advertise.
pub const SERVICE_TYPE: &str = "_lutron._tcp.local.";

/// The SRV port real processors advertise (legacy; clients ignore it).
pub const SRV_PORT: u16 = 22;

/// How to build a fleet.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    pub count: usize,
    pub first_ip: Ipv4Addr,
    /// Cycled through: processor `i` gets `system_types[i % len]`.
    pub system_types: Vec<SystemType>,
    pub seed: u64,
    /// Instance name of the first processor; later ones get ` (2)`, ` (3)`…
    /// as real processors do after mDNS probing renames them.
    pub instance_name: String,
    /// Control characters in every instance name, host name and one TXT
    /// key (`--fault hostile-names`).
    pub hostile_names: bool,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            count: 1,
            first_ip: Ipv4Addr::new(127, 0, 1, 1),
            system_types: vec![SystemType::RadioRa3],
            seed: 0,
            instance_name: "Lutron Status".into(),
            hostile_names: false,
        }
    }
}

/// Errors of fleet construction.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    #[error("a fleet needs at least one processor")]
    Empty,
    #[error("no system type given")]
    NoSystemType,
    #[error("cannot simulate system type '{0}' (use ra3, qsx, caseta or ra2select)")]
    UnknownSystemType(String),
    #[error("{count} processors from {first} run past 255.255.255.255")]
    AddressOverflow { first: Ipv4Addr, count: usize },
}

/// One simulated processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProcessor {
    pub serial: Serial,
    pub mac: Mac,
    pub address: Ipv4Addr,
    pub system_type: SystemType,
    pub instance: String,
    /// See [`FleetSpec::hostile_names`].
    pub hostile_names: bool,
}

/// SplitMix64: a tiny, well-known mixer; good enough to spread serials and
/// stable across releases, which a test fixture needs more than quality.
pub(super) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Serials like real ones: eight decimal digits.
/// What `--fault hostile-names` puts before each instance name, host name
/// (spaces as dashes) and one TXT key: clear the screen, ring the bell,
/// and start a forged line.
pub const HOSTILE: &str = "\u{1b}[2J\u{7}\nFORGED ";

const SERIAL_MIN: u64 = 10_000_000;
const SERIAL_SPAN: u64 = 90_000_000;

/// Builds the fleet a spec describes. The same spec always gives the same
/// fleet.
pub fn build_fleet(spec: &FleetSpec) -> Result<Vec<SimProcessor>, FleetError> {
    if spec.count == 0 {
        return Err(FleetError::Empty);
    }
    if spec.system_types.is_empty() {
        return Err(FleetError::NoSystemType);
    }
    if let Some(SystemType::Unknown(s)) = spec
        .system_types
        .iter()
        .find(|t| matches!(t, SystemType::Unknown(_)))
    {
        return Err(FleetError::UnknownSystemType(s.clone()));
    }
    let first = u32::from(spec.first_ip);
    let overflow = FleetError::AddressOverflow {
        first: spec.first_ip,
        count: spec.count,
    };
    let last_offset = u32::try_from(spec.count - 1).map_err(|_| overflow.clone())?;
    first.checked_add(last_offset).ok_or(overflow)?;

    let mut used = BTreeSet::new();
    let mut state = splitmix64(spec.seed);
    let mut fleet = Vec::with_capacity(spec.count);
    for i in 0..spec.count {
        let serial = loop {
            state = splitmix64(state);
            let candidate = (SERIAL_MIN + state % SERIAL_SPAN) as u32;
            if used.insert(candidate) {
                break Serial(candidate);
            }
        };
        let s = serial.0.to_be_bytes();
        // Locally administered (0x02): a simulator must not pose as a
        // vendor's real hardware address.
        let mac = Mac([0x02, 0x4c, s[0], s[1], s[2], s[3]]);
        let mut instance = if i == 0 {
            spec.instance_name.clone()
        } else {
            format!("{} ({})", spec.instance_name, i + 1)
        };
        if spec.hostile_names {
            instance.insert_str(0, HOSTILE);
        }
        fleet.push(SimProcessor {
            serial,
            mac,
            address: Ipv4Addr::from(first + i as u32),
            system_type: spec.system_types[i % spec.system_types.len()].clone(),
            instance,
            hostile_names: spec.hostile_names,
        });
    }
    Ok(fleet)
}

impl SimProcessor {
    /// Firmware versions in the form real processors report.
    pub fn firmware(&self) -> &'static str {
        match self.system_type {
            SystemType::CasetaSmartBridge => "08.25.17f000",
            SystemType::Ra2Select => "12.04.03f000",
            SystemType::RadioRa3 => "23.06.28f000",
            SystemType::HomeWorksQsx => "26.00.14f000",
            SystemType::Unknown(_) => "00.00.00f000",
        }
    }

    pub fn host_name(&self) -> String {
        let name = self.serial.host_name();
        if self.hostile_names {
            return format!("{}{name}", HOSTILE.replace(' ', "-"));
        }
        name
    }

    /// The TXT record, with the keys the protocol reference lists for this
    /// product line (SERNUM and CLAIM_STATUS are QSX's).
    pub fn txt(&self) -> Vec<TxtEntry> {
        let devclass = self
            .system_type
            .sim_devclass()
            .map(|d| d.to_string())
            .unwrap_or_default();
        let mut txt = vec![
            TxtEntry::new("MACADDR", self.mac.to_string().as_bytes()),
            TxtEntry::new("CODEVER", self.firmware().as_bytes()),
            TxtEntry::new("DEVCLASS", devclass.as_bytes()),
            TxtEntry::new("FW_STATUS", b"1:NoUpdate"),
            TxtEntry::new("NW_STATUS", b"11:InternetWorking"),
            TxtEntry::new("ST_STATUS", b"good"),
            TxtEntry::new("SYSTYPE", self.system_type.systype().as_bytes()),
        ];
        if self.system_type == SystemType::HomeWorksQsx {
            txt.push(TxtEntry::new("SERNUM", self.serial.to_string().as_bytes()));
            // The unclaimed value is an inference; "Claimed" is what was seen.
            txt.push(TxtEntry::new("CLAIM_STATUS", b"Unclaimed"));
        }
        if self.hostile_names {
            txt.push(TxtEntry::new(&format!("{HOSTILE}KEY"), b"1"));
        }
        txt
    }

    /// The DNS-SD record this processor advertises.
    pub fn record(&self) -> ServiceRecord {
        ServiceRecord {
            fullname: format!("{}.{SERVICE_TYPE}", self.instance),
            service_type: SERVICE_TYPE.into(),
            host: self.host_name(),
            port: SRV_PORT,
            addresses: [IpAddr::V4(self.address)].into_iter().collect(),
            txt: self.txt(),
        }
    }

    /// What discovery should make of it: the manifest entry.
    pub fn info(&self) -> ProcessorInfo {
        ProcessorInfo::from_record(&self.record())
    }
}

/// One processor for unit tests, its facts fixed.
#[cfg(test)]
impl SimProcessor {
    pub fn fixture(system_type: SystemType) -> SimProcessor {
        SimProcessor {
            serial: Serial(12_345_678),
            mac: Mac([0x02, 0x4c, 0, 0xbc, 0x61, 0x4e]),
            address: Ipv4Addr::new(127, 0, 1, 1),
            system_type,
            instance: "Lutron Status".into(),
            hostile_names: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(count: usize) -> FleetSpec {
        FleetSpec {
            count,
            system_types: vec![
                SystemType::RadioRa3,
                SystemType::HomeWorksQsx,
                SystemType::CasetaSmartBridge,
            ],
            seed: 7,
            ..FleetSpec::default()
        }
    }

    #[test]
    fn same_seed_same_fleet_other_seed_other_serials() {
        let a = build_fleet(&spec(50)).unwrap();
        assert_eq!(a, build_fleet(&spec(50)).unwrap());
        let b = build_fleet(&FleetSpec {
            seed: 8,
            ..spec(50)
        })
        .unwrap();
        assert_ne!(a[0].serial, b[0].serial);
    }

    #[test]
    fn serials_macs_and_addresses_are_unique() {
        let fleet = build_fleet(&spec(1000)).unwrap();
        let serials: BTreeSet<_> = fleet.iter().map(|p| p.serial).collect();
        let macs: BTreeSet<_> = fleet.iter().map(|p| p.mac).collect();
        let addrs: BTreeSet<_> = fleet.iter().map(|p| p.address).collect();
        let names: BTreeSet<_> = fleet.iter().map(|p| p.instance.clone()).collect();
        for n in [serials.len(), macs.len(), addrs.len(), names.len()] {
            assert_eq!(n, 1000);
        }
        assert!(
            fleet
                .iter()
                .all(|p| (10_000_000..100_000_000).contains(&p.serial.0))
        );
        assert_eq!(fleet[0].address, Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(fleet[999].address, Ipv4Addr::new(127, 0, 4, 232));
        assert_eq!(fleet[0].instance, "Lutron Status");
        assert_eq!(fleet[1].instance, "Lutron Status (2)");
    }

    #[test]
    fn mixed_fleets_cycle_system_types() {
        let fleet = build_fleet(&spec(4)).unwrap();
        let types: Vec<_> = fleet.iter().map(|p| p.system_type.short_name()).collect();
        assert_eq!(types, vec!["ra3", "qsx", "caseta", "ra3"]);
    }

    #[test]
    fn advertised_record_reads_back_as_the_processor() {
        for p in build_fleet(&spec(3)).unwrap() {
            let info = p.info();
            assert_eq!(info.warnings, Vec::<String>::new(), "{p:?}");
            assert_eq!(info.serial, Some(p.serial));
            assert_eq!(info.mac, Some(p.mac));
            assert_eq!(info.system_type, Some(p.system_type.clone()));
            assert_eq!(info.addresses.len(), 1);
            assert_eq!(info.port, 22);
        }
    }

    #[test]
    fn qsx_carries_sernum_and_claim_status() {
        let fleet = build_fleet(&spec(3)).unwrap();
        let keys = |p: &SimProcessor| p.txt().into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert!(keys(&fleet[1]).contains(&"SERNUM".to_string()));
        assert!(keys(&fleet[1]).contains(&"CLAIM_STATUS".to_string()));
        assert!(!keys(&fleet[0]).contains(&"SERNUM".to_string()));
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(build_fleet(&spec(0)), Err(FleetError::Empty));
        let over = FleetSpec {
            first_ip: Ipv4Addr::new(255, 255, 255, 250),
            ..spec(10)
        };
        assert!(matches!(
            build_fleet(&over),
            Err(FleetError::AddressOverflow { .. })
        ));
        let none = FleetSpec {
            system_types: vec![],
            ..spec(1)
        };
        assert_eq!(build_fleet(&none), Err(FleetError::NoSystemType));
    }
}
