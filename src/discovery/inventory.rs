//! The inventory: which processors are on the LAN now, fed by DNS-SD events
//! and emitting added / changed / removed. Pure: no sockets, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

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
/// may answer under both `_lutron._tcp` and the legacy `_leap._tcp`, and
/// under a new name after a rename, while the old one is still cached).
#[derive(Debug)]
struct Entry {
    by_instance: BTreeMap<String, Seen>,
    shown: ProcessorInfo,
    /// The MACs its own answers carried (see [`Inventory::confirmed`]), and
    /// from which addresses: more than one is two devices claiming one
    /// serial.
    devices: BTreeMap<Mac, BTreeSet<IpAddr>>,
}

/// One instance's latest record, and when it came.
#[derive(Debug)]
struct Seen {
    info: ProcessorInfo,
    /// Order of arrival across the inventory: the newest name is shown.
    seq: u64,
    /// The liveness round it last came in (see [`Inventory::liveness_round`]).
    round: u64,
}

impl Entry {
    /// The record to show: the newest `_lutron._tcp` one when there is one
    /// (a renamed processor shows its new name), with the addresses of
    /// every instance.
    fn merged(&self) -> ProcessorInfo {
        let newest = |lutron_only: bool| {
            self.by_instance
                .values()
                .filter(|s| !lutron_only || s.info.service_type.starts_with("_lutron."))
                .max_by_key(|s| s.seq)
                .map(|s| s.info.clone())
        };
        let mut shown = newest(true).or_else(|| newest(false)).unwrap_or_default();
        for s in self.by_instance.values() {
            shown.addresses.extend(s.info.addresses.iter().copied());
        }
        if let Some(w) = self.impostor_warning(&shown) {
            shown.warnings.push(w);
        }
        shown
    }

    /// Two devices (two MACs) answer for one serial: one of them may be an
    /// impostor, and which one is the user's call, so both are kept and
    /// the processor carries a warning.
    fn impostor_warning(&self, shown: &ProcessorInfo) -> Option<String> {
        if self.devices.len() < 2 {
            return None;
        }
        let devices: Vec<String> = self
            .devices
            .iter()
            .map(|(mac, addresses)| {
                let at: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                format!("MAC {mac} at {}", at.join(","))
            })
            .collect();
        Some(format!(
            "{} devices answer for serial {}: {}; one may be an impostor",
            self.devices.len(),
            shown
                .serial
                .map(|s| format!("{} ({})", s.0, s.id()))
                .unwrap_or_else(|| "-".into()),
            devices.join(" and ")
        ))
    }
}

/// The processors seen advertising one instance name. Real sites have many
/// processors under one name (`Lutron Status`), and mdns-sd keeps one SRV
/// and TXT per name: each answer flushes the other's, so one name's record
/// describes now this processor, now that one.
#[derive(Debug, Default)]
struct Holders {
    all: BTreeSet<Identity>,
    /// The processor mdns-sd's record for the name described last: the one
    /// a removal of the name is about.
    current: Option<Identity>,
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
    names: HashMap<String, Holders>,
    seq: u64,
    round: u64,
}

impl Inventory {
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// A DNS-SD instance resolved (for the first time or again). The record
    /// is filed under its processor (serial, then MAC), never under the
    /// instance name alone: another processor that advertised the same name
    /// is left as it is.
    pub fn resolved(&mut self, fullname: &str, mut info: ProcessorInfo) -> Vec<InventoryEvent> {
        let identity = Identity::of(&info, fullname);
        self.withhold_mixed_txt(fullname, &identity, &mut info);
        self.file(fullname, identity, info, true)
    }

    /// A record as one answer packet carried it, from one responder (see
    /// [`super::listen`]), where mdns-sd may mix two: filed like
    /// [`Inventory::resolved`], but it says nothing about which processor
    /// mdns-sd's record for the name describes.
    pub fn confirmed(&mut self, fullname: &str, info: ProcessorInfo) -> Vec<InventoryEvent> {
        let identity = Identity::of(&info, fullname);
        let device = info.mac.map(|m| (m, info.addresses.clone()));
        let mut events = self.file(fullname, identity.clone(), info, false);
        if let (Some((mac, addresses)), Some(entry)) = (device, self.entries.get_mut(&identity)) {
            let known = entry.devices.len();
            entry.devices.entry(mac).or_default().extend(addresses);
            if entry.devices.len() != known {
                events.extend(Self::refresh(entry));
                if let Some(w) = entry.impostor_warning(&entry.shown) {
                    tracing::warn!("{w}");
                }
            }
        }
        events
    }

    /// The processor at `host` still advertises `fullname` (an SRV answer
    /// seen by itself): it counts as seen under that name this round.
    pub fn sighted(&mut self, fullname: &str, host: &str) {
        let Some(holders) = self.names.get(fullname) else {
            return;
        };
        for id in &holders.all {
            if let Some(seen) = self
                .entries
                .get_mut(id)
                .and_then(|e| e.by_instance.get_mut(fullname))
                .filter(|s| s.info.host.eq_ignore_ascii_case(host))
            {
                seen.round = self.round;
            }
        }
    }

    fn file(
        &mut self,
        fullname: &str,
        identity: Identity,
        info: ProcessorInfo,
        current: bool,
    ) -> Vec<InventoryEvent> {
        let holders = self.names.entry(fullname.to_string()).or_default();
        holders.all.insert(identity.clone());
        if current {
            holders.current = Some(identity.clone());
        }
        self.seq += 1;
        let seen = Seen {
            info,
            seq: self.seq,
            round: self.round,
        };
        match self.entries.get_mut(&identity) {
            None => {
                let shown = seen.info.clone();
                let entry = Entry {
                    by_instance: BTreeMap::from([(fullname.to_string(), seen)]),
                    shown,
                    devices: BTreeMap::new(),
                };
                let added = InventoryEvent::Added(entry.shown.clone());
                self.entries.insert(identity, entry);
                vec![added]
            }
            Some(entry) => {
                entry.by_instance.insert(fullname.to_string(), seen);
                Self::refresh(entry).into_iter().collect()
            }
        }
    }

    /// mdns-sd resolves a name from the newest SRV and the newest TXT it
    /// holds for it, which may come from two processors sharing the name:
    /// the host (and so the serial) of one, the MAC and status of the
    /// other. A record whose MAC is another processor's under the same name
    /// is such a mix: its TXT facts are not this processor's, so the ones
    /// known before are kept (or none shown yet).
    fn withhold_mixed_txt(&self, fullname: &str, identity: &Identity, info: &mut ProcessorInfo) {
        let (Some(mac), Some(holders)) = (info.mac, self.names.get(fullname)) else {
            return;
        };
        let Some(owner) = holders.all.iter().find(|other| {
            *other != identity
                && self
                    .entries
                    .get(other)
                    .is_some_and(|e| e.shown.mac == Some(mac))
        }) else {
            return;
        };
        let known = self.entries.get(identity).and_then(|e| {
            e.by_instance
                .get(fullname)
                .map(|s| &s.info)
                .or(Some(&e.shown))
        });
        tracing::debug!(
            instance = %crate::processor::printable(fullname),
            host = %crate::processor::printable(&info.host),
            "record mixes two processors sharing the name (MAC of {owner:?}); its TXT facts are ignored"
        );
        let txt = match known {
            Some(k) => k.clone(),
            None => {
                let mut none = ProcessorInfo::default();
                none.warnings.push(
                    "its TXT record is not known yet (another processor advertises the same name)"
                        .into(),
                );
                none
            }
        };
        info.mac = txt.mac;
        info.systype = txt.systype;
        info.system_type = txt.system_type;
        info.devclass = txt.devclass;
        info.firmware = txt.firmware;
        info.fw_status = txt.fw_status;
        info.nw_status = txt.nw_status;
        info.st_status = txt.st_status;
        info.claim_status = txt.claim_status;
        info.warnings = txt.warnings;
    }

    /// A DNS-SD instance went away (goodbye, or its records expired). It is
    /// the processor the name's record described last that went: others
    /// seen under the same name stay (see [`Inventory::liveness_round`]).
    pub fn removed(&mut self, fullname: &str) -> Vec<InventoryEvent> {
        let Some(holders) = self.names.get_mut(fullname) else {
            return Vec::new();
        };
        let Some(identity) = holders.current.take() else {
            return Vec::new();
        };
        self.detach(fullname, &identity).into_iter().collect()
    }

    /// Starts a liveness round (the caller asks every name again). A
    /// processor hidden behind a name that now describes another one (see
    /// [`Holders`]) is not covered by mdns-sd's own check of the name: it
    /// is dropped from that name when no answer of its own under that name
    /// (see [`Inventory::confirmed`], [`Inventory::sighted`]) came for two
    /// whole rounds.
    pub fn liveness_round(&mut self) -> Vec<InventoryEvent> {
        self.round += 1;
        let stale: Vec<(String, Identity)> = self
            .names
            .iter()
            .flat_map(|(name, holders)| {
                holders
                    .all
                    .iter()
                    .filter(|id| holders.current.as_ref() != Some(*id))
                    .map(move |id| (name.clone(), id.clone()))
            })
            .filter(|(name, id)| {
                self.entries
                    .get(id)
                    .and_then(|e| e.by_instance.get(name))
                    .is_none_or(|s| s.round + 2 < self.round)
            })
            .collect();
        stale
            .into_iter()
            .filter_map(|(name, id)| self.detach(&name, &id))
            .collect()
    }

    /// Takes one instance name away from one processor.
    fn detach(&mut self, fullname: &str, identity: &Identity) -> Option<InventoryEvent> {
        if let Some(holders) = self.names.get_mut(fullname) {
            holders.all.remove(identity);
            if holders.current.as_ref() == Some(identity) {
                holders.current = None;
            }
            if holders.all.is_empty() {
                self.names.remove(fullname);
            }
        }
        let entry = self.entries.get_mut(identity)?;
        entry.by_instance.remove(fullname)?;
        if entry.by_instance.is_empty() {
            let entry = self.entries.remove(identity)?;
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
        self.names.keys().map(String::as_str)
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

    fn mac_of(p: &ProcessorInfo) -> String {
        p.mac.unwrap().to_string()
    }

    /// As mdns-sd delivers two processors that advertise one name: the
    /// name resolves now to one, now to the other.
    #[test]
    fn processors_sharing_an_instance_name_are_kept_apart() {
        let mut inv = Inventory::new();
        let n = name("Lutron Status");
        let a = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let b = info("Lutron Status", 2, "127.0.2.1", "1.0");
        assert_eq!(
            inv.resolved(&n, a.clone()),
            vec![InventoryEvent::Added(a.clone())]
        );
        assert_eq!(
            inv.resolved(&n, b.clone()),
            vec![InventoryEvent::Added(b.clone())]
        );
        assert_eq!(inv.resolved(&n, a.clone()), vec![]);
        assert_eq!(inv.resolved(&n, b.clone()), vec![]);
        let shown: Vec<&ProcessorInfo> = inv.processors().collect();
        assert_eq!(shown, vec![&a, &b]);
    }

    /// A goodbye (or expiry) of a shared name is about the processor the
    /// name described last; the other one stays.
    #[test]
    fn removal_of_a_shared_name_removes_only_the_processor_it_described() {
        let mut inv = Inventory::new();
        let n = name("Lutron Status (4)");
        let a = info("Lutron Status (4)", 1, "127.0.1.1", "1.0");
        let b = info("Lutron Status (4)", 2, "127.0.2.1", "1.0");
        inv.resolved(&n, a.clone());
        inv.resolved(&n, b.clone());
        assert_eq!(inv.removed(&n), vec![InventoryEvent::Removed(b)]);
        assert_eq!(inv.processors().collect::<Vec<_>>(), vec![&a]);
        // A second removal of the name, with no record since: nothing left
        // that the name is known to describe.
        assert_eq!(inv.removed(&n), vec![]);
        assert_eq!(inv.len(), 1);
        // The name resolves to A again, then goes: now A is removed.
        assert_eq!(inv.resolved(&n, a.clone()), vec![]);
        assert_eq!(inv.removed(&n), vec![InventoryEvent::Removed(a)]);
        assert!(inv.is_empty());
    }

    /// The host (serial) of one processor with the TXT (MAC, status) of the
    /// other under the same name: the MAC is not taken.
    #[test]
    fn a_record_mixing_two_processors_does_not_move_a_mac() {
        let mut inv = Inventory::new();
        let n = name("Lutron Status");
        let a = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let b = info("Lutron Status", 2, "127.0.2.1", "2.0");
        inv.resolved(&n, a.clone());
        inv.resolved(&n, b.clone());
        let mut mixed = b.clone();
        mixed.serial = a.serial;
        mixed.host = a.host.clone();
        mixed.addresses = a.addresses.clone();
        assert_eq!(inv.resolved(&n, mixed), vec![]);
        let macs: Vec<String> = inv.processors().map(mac_of).collect();
        assert_eq!(macs, vec![mac_of(&a), mac_of(&b)]);
        assert_eq!(inv.processors().next().unwrap(), &a);

        // Mixed on first sight: shown without the other's facts, then
        // filled in when its own record comes.
        let c = info("Lutron Status", 3, "127.0.3.1", "3.0");
        let mut mixed = b.clone();
        mixed.serial = c.serial;
        mixed.host = c.host.clone();
        mixed.addresses = c.addresses.clone();
        let ev = inv.resolved(&n, mixed);
        let [InventoryEvent::Added(p)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (p.serial, p.mac, p.firmware.as_deref()),
            (c.serial, None, None)
        );
        let ev = inv.resolved(&n, c.clone());
        assert!(
            matches!(&ev[..], [InventoryEvent::Changed { after, .. }] if **after == c),
            "{ev:?}"
        );
    }

    /// A processor renamed (by probing, or by its owner) while its old
    /// name is still cached: a change of name, never a removal.
    #[test]
    fn a_rename_is_a_change_and_the_old_name_going_removes_nothing() {
        let mut inv = Inventory::new();
        let a = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let renamed = info("Lutron Status (2)", 1, "127.0.1.1", "1.0");
        inv.resolved(&name("Lutron Status"), a);
        let ev = inv.resolved(&name("Lutron Status (2)"), renamed.clone());
        assert!(
            matches!(&ev[..], [InventoryEvent::Changed { changes, after, .. }]
                if changes == &vec!["instance"] && after.instance == "Lutron Status (2)"),
            "{ev:?}"
        );
        assert_eq!(inv.removed(&name("Lutron Status")), vec![]);
        assert_eq!(inv.processors().collect::<Vec<_>>(), vec![&renamed]);
    }

    /// A processor hidden behind a shared name that stops answering is
    /// dropped after two liveness rounds without a record; one that keeps
    /// showing up stays.
    #[test]
    fn a_hidden_processor_that_stops_answering_is_removed_after_two_rounds() {
        let mut inv = Inventory::new();
        let n = name("Lutron Status");
        let a = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let b = info("Lutron Status", 2, "127.0.2.1", "1.0");
        inv.resolved(&n, a.clone());
        inv.resolved(&n, b.clone());
        for _ in 0..5 {
            assert_eq!(inv.liveness_round(), vec![]);
            // A's own answers are seen; mdns-sd's record stays B's.
            assert_eq!(inv.confirmed(&n, a.clone()), vec![]);
            assert_eq!(inv.liveness_round(), vec![]);
            inv.sighted(&n, &a.host.to_uppercase());
        }
        // From now on only B answers: A is hidden behind B's record.
        assert_eq!(inv.liveness_round(), vec![]);
        inv.resolved(&n, b.clone());
        assert_eq!(inv.liveness_round(), vec![]);
        assert_eq!(
            inv.liveness_round(),
            vec![InventoryEvent::Removed(a.clone())]
        );
        assert_eq!(inv.processors().collect::<Vec<_>>(), vec![&b]);
        // B holds the name: its liveness is mdns-sd's, not counted here.
        assert_eq!(inv.liveness_round(), vec![]);
        assert_eq!(inv.len(), 1);
        // A direct answer does not make A what a removal of the name is about.
        inv.resolved(&n, a.clone());
        inv.resolved(&n, b.clone());
        inv.confirmed(&n, a.clone());
        assert_eq!(inv.removed(&n), vec![InventoryEvent::Removed(b)]);
    }

    /// Two devices answer, each in its own packets, for one serial with two
    /// MACs: both stay known and the processor carries a warning.
    #[test]
    fn two_devices_answering_for_one_serial_are_a_warning() {
        let mut inv = Inventory::new();
        let real = info("Lutron Status", 1, "127.0.1.1", "1.0");
        let mut other = info("Lutron Status (2)", 1, "127.0.9.9", "1.0");
        other.mac = Some("02:00:00:00:00:99".parse().unwrap());
        inv.confirmed(&name("Lutron Status"), real.clone());
        inv.confirmed(&name("Lutron Status"), real.clone());
        assert!(inv.processors().next().unwrap().warnings.is_empty());
        inv.confirmed(&name("Lutron Status (2)"), other);
        assert_eq!(inv.len(), 1);
        let shown = inv.processors().next().unwrap();
        assert_eq!(
            shown.warnings,
            vec![
                "2 devices answer for serial 1 (00000001): MAC 02:00:00:00:00:01 at 127.0.1.1 \
                 and MAC 02:00:00:00:00:99 at 127.0.9.9; one may be an impostor"
                    .to_string()
            ]
        );
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
        // Same MAC, other instance name: the same processor, renamed.
        let ev = inv.resolved(&name("B"), b);
        assert!(
            matches!(&ev[..], [InventoryEvent::Changed { changes, .. }] if changes == &vec!["instance"]),
            "{ev:?}"
        );
        assert_eq!(inv.len(), 1);
        assert_eq!(inv.processors().next().unwrap().instance, "B");
    }
}
