//! The inventory: which processors are on the LAN now, fed by DNS-SD events
//! and emitting added / changed / removed. Pure: no sockets, no clock.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::processor::{Mac, ProcessorInfo, Serial};

/// What makes two DNS-SD records the same processor: the serial, then the
/// MAC. Instance names are not identity: a second QSX processor is
/// `Lutron Status (2)` today and may be `Lutron Status` tomorrow.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Identity {
    Serial(Serial),
    Mac(Mac),
    /// Neither serial nor MAC: only the service instance name is left.
    Instance(String),
}

impl Identity {
    pub fn of(info: &ProcessorInfo, fullname: &str) -> Identity {
        match (info.serial, info.mac) {
            (Some(s), _) => Identity::Serial(s),
            (None, Some(m)) => Identity::Mac(m),
            (None, None) => Identity::Instance(fullname.to_string()),
        }
    }
}

/// A change in the inventory.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InventoryEvent {
    Added(ProcessorInfo),
    Changed {
        before: Box<ProcessorInfo>,
        after: Box<ProcessorInfo>,
        /// Which facts changed: `addresses`, `firmware`, `status`, …
        changes: Vec<&'static str>,
    },
    Removed(ProcessorInfo),
}

impl InventoryEvent {
    /// The processor as it is after the event (as it was, for a removal).
    pub fn processor(&self) -> &ProcessorInfo {
        match self {
            InventoryEvent::Added(p) | InventoryEvent::Removed(p) => p,
            InventoryEvent::Changed { after, .. } => after,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            InventoryEvent::Added(_) => "added",
            InventoryEvent::Changed { .. } => "changed",
            InventoryEvent::Removed(_) => "removed",
        }
    }

    /// The JSON line `discover --watch --json` prints.
    pub fn to_json(&self) -> InventoryEventJson<'_> {
        InventoryEventJson {
            event: self.kind(),
            changes: match self {
                InventoryEvent::Changed { changes, .. } => changes,
                _ => &[],
            },
            processor: self.processor().to_json(),
        }
    }
}

#[derive(Serialize, Debug)]
pub struct InventoryEventJson<'a> {
    pub event: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub changes: &'a [&'static str],
    pub processor: crate::processor::ProcessorJson<'a>,
}

/// One processor and the DNS-SD instances that advertise it (a processor
/// may answer under both `_lutron._tcp` and the legacy `_leap._tcp`).
#[derive(Debug)]
struct Entry {
    by_instance: BTreeMap<String, ProcessorInfo>,
    shown: ProcessorInfo,
}

impl Entry {
    /// The record to show: the `_lutron._tcp` one when there is one, with
    /// the addresses of every instance.
    fn merged(&self) -> ProcessorInfo {
        let mut records = self.by_instance.values();
        let first = records.next().cloned().unwrap_or_default();
        let mut shown = self
            .by_instance
            .values()
            .find(|p| p.service_type.starts_with("_lutron."))
            .cloned()
            .unwrap_or(first);
        for p in self.by_instance.values() {
            shown.addresses.extend(p.addresses.iter().copied());
        }
        shown
    }
}

/// The facts whose change is worth an event.
fn changes(before: &ProcessorInfo, after: &ProcessorInfo) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("addresses", before.addresses != after.addresses);
    check("firmware", before.firmware != after.firmware);
    check(
        "status",
        (
            &before.st_status,
            &before.nw_status,
            &before.fw_status,
            &before.claim_status,
        ) != (
            &after.st_status,
            &after.nw_status,
            &after.fw_status,
            &after.claim_status,
        ),
    );
    check("mac", before.mac != after.mac);
    check("host", before.host != after.host);
    check(
        "system_type",
        (&before.systype, &before.devclass) != (&after.systype, &after.devclass),
    );
    check("instance", before.instance != after.instance);
    out
}

/// The live set of processors.
#[derive(Debug, Default)]
pub struct Inventory {
    entries: BTreeMap<Identity, Entry>,
    identity_of: HashMap<String, Identity>,
}

impl Inventory {
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// A DNS-SD instance resolved (for the first time or again).
    pub fn resolved(&mut self, fullname: &str, info: ProcessorInfo) -> Vec<InventoryEvent> {
        let identity = Identity::of(&info, fullname);
        let mut events = Vec::new();
        if self
            .identity_of
            .get(fullname)
            .is_some_and(|old| *old != identity)
        {
            // The instance name now belongs to another processor.
            events.extend(self.detach(fullname));
        }
        self.identity_of
            .insert(fullname.to_string(), identity.clone());
        match self.entries.get_mut(&identity) {
            None => {
                let entry = Entry {
                    by_instance: BTreeMap::from([(fullname.to_string(), info.clone())]),
                    shown: info,
                };
                events.push(InventoryEvent::Added(entry.shown.clone()));
                self.entries.insert(identity, entry);
            }
            Some(entry) => {
                entry.by_instance.insert(fullname.to_string(), info);
                events.extend(Self::refresh(entry));
            }
        }
        events
    }

    /// A DNS-SD instance went away (goodbye, or its records expired).
    pub fn removed(&mut self, fullname: &str) -> Vec<InventoryEvent> {
        self.detach(fullname).into_iter().collect()
    }

    fn detach(&mut self, fullname: &str) -> Option<InventoryEvent> {
        let identity = self.identity_of.remove(fullname)?;
        let entry = self.entries.get_mut(&identity)?;
        entry.by_instance.remove(fullname);
        if entry.by_instance.is_empty() {
            let entry = self.entries.remove(&identity)?;
            return Some(InventoryEvent::Removed(entry.shown));
        }
        Self::refresh(entry)
    }

    fn refresh(entry: &mut Entry) -> Option<InventoryEvent> {
        let merged = entry.merged();
        let changed = changes(&entry.shown, &merged);
        let before = std::mem::replace(&mut entry.shown, merged);
        if changed.is_empty() {
            return None;
        }
        Some(InventoryEvent::Changed {
            before: Box::new(before),
            after: Box::new(entry.shown.clone()),
            changes: changed,
        })
    }

    /// The processors, sorted by identity (serial first, so by id).
    pub fn processors(&self) -> impl Iterator<Item = &ProcessorInfo> {
        self.entries.values().map(|e| &e.shown)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every DNS-SD instance name behind the inventory.
    pub fn instance_names(&self) -> impl Iterator<Item = &str> {
        self.identity_of.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{ServiceRecord, TxtEntry};

    const LUTRON: &str = "_lutron._tcp.local.";

    fn info(instance: &str, serial: u32, addr: &str, fw: &str) -> ProcessorInfo {
        ProcessorInfo::from_record(&ServiceRecord {
            fullname: format!("{instance}.{LUTRON}"),
            service_type: LUTRON.into(),
            host: Serial(serial).host_name(),
            port: 22,
            addresses: [addr.parse().unwrap()].into_iter().collect(),
            txt: vec![
                TxtEntry::new(
                    "MACADDR",
                    format!("02:00:00:00:00:{:02x}", serial % 256).as_bytes(),
                ),
                TxtEntry::new("CODEVER", fw.as_bytes()),
                TxtEntry::new("SYSTYPE", b"RadioRa3Processor"),
            ],
        })
    }

    fn name(instance: &str) -> String {
        format!("{instance}.{LUTRON}")
    }

    #[test]
    fn first_resolution_adds_and_repeats_are_silent() {
        let mut inv = Inventory::new();
        let p = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let ev = inv.resolved(&name("Lutron Status"), p.clone());
        assert_eq!(ev, vec![InventoryEvent::Added(p.clone())]);
        assert_eq!(inv.resolved(&name("Lutron Status"), p), vec![]);
        assert_eq!(inv.len(), 1);
    }

    #[test]
    fn new_address_is_a_change_not_a_duplicate() {
        let mut inv = Inventory::new();
        inv.resolved(
            &name("Lutron Status"),
            info("Lutron Status", 1, "127.0.1.1", "1.0"),
        );
        let ev = inv.resolved(
            &name("Lutron Status"),
            info("Lutron Status", 1, "127.0.2.1", "1.0"),
        );
        assert_eq!(ev.len(), 1);
        let InventoryEvent::Changed { changes, after, .. } = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(changes, &vec!["addresses"]);
        assert_eq!(
            after.addresses.iter().next().unwrap().to_string(),
            "127.0.2.1"
        );
        assert_eq!(inv.len(), 1);
    }

    #[test]
    fn new_firmware_is_a_change() {
        let mut inv = Inventory::new();
        inv.resolved(&name("A"), info("A", 1, "127.0.1.1", "1.0"));
        let ev = inv.resolved(&name("A"), info("A", 1, "127.0.1.1", "2.0"));
        assert!(
            matches!(&ev[..], [InventoryEvent::Changed { changes, .. }] if changes == &vec!["firmware"])
        );
    }

    #[test]
    fn same_instance_name_different_serial_is_another_processor() {
        let mut inv = Inventory::new();
        let a = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let b = info("Lutron Status", 2, "127.0.1.2", "1.0");
        inv.resolved(&name("Lutron Status"), a.clone());
        let ev = inv.resolved(&name("Lutron Status"), b.clone());
        assert_eq!(
            ev,
            vec![InventoryEvent::Removed(a), InventoryEvent::Added(b)]
        );
        assert_eq!(inv.len(), 1);
    }

    #[test]
    fn one_processor_under_two_service_types_is_one_entry() {
        let mut inv = Inventory::new();
        let lutron = info("Lutron Status", 7, "127.0.1.7", "1.0");
        let mut leap = lutron.clone();
        leap.service_type = "_leap._tcp.local.".into();
        assert_eq!(inv.resolved(&name("Lutron Status"), lutron).len(), 1);
        assert_eq!(
            inv.resolved("Lutron Status._leap._tcp.local.", leap),
            vec![]
        );
        assert_eq!(inv.len(), 1);
        // Gone from one type only: still there.
        assert_eq!(inv.removed(&name("Lutron Status")), vec![]);
        assert_eq!(inv.len(), 1);
        let ev = inv.removed("Lutron Status._leap._tcp.local.");
        assert!(matches!(&ev[..], [InventoryEvent::Removed(p)] if p.serial == Some(Serial(7))));
        assert!(inv.is_empty());
    }

    #[test]
    fn removal_of_unknown_instance_is_silent() {
        let mut inv = Inventory::new();
        assert_eq!(inv.removed("nobody._lutron._tcp.local."), vec![]);
    }

    #[test]
    fn processors_are_listed_by_id() {
        let mut inv = Inventory::new();
        for (i, serial) in [30u32, 10, 20].into_iter().enumerate() {
            let inst = format!("P{i}");
            inv.resolved(&name(&inst), info(&inst, serial, "127.0.1.1", "1"));
        }
        let ids: Vec<u32> = inv.processors().map(|p| p.serial.unwrap().0).collect();
        assert_eq!(ids, vec![10, 20, 30]);
    }

    #[test]
    fn without_serial_the_mac_is_identity() {
        let mut inv = Inventory::new();
        let mut a = info("A", 1, "127.0.1.1", "1");
        a.serial = None;
        let mut b = a.clone();
        b.instance = "B".into();
        inv.resolved(&name("A"), a);
        // Same MAC, other instance name: the same processor, still shown
        // under the first name.
        assert_eq!(inv.resolved(&name("B"), b), vec![]);
        assert_eq!(inv.len(), 1);
        assert_eq!(inv.processors().next().unwrap().instance, "A");
    }
}
