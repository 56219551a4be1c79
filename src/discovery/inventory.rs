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
///
/// Its small collections are vectors sorted by key, not maps: a map's
/// node holds room for eleven, while a processor has one or two names and
/// one MAC (as maps, about 1 KB per processor of the idle daemon's heap).
#[derive(Debug)]
struct Entry {
    /// By instance name.
    by_instance: Vec<(String, Seen)>,
    /// The record shown (see [`Entry::shown`]), kept apart (boxed, so
    /// that an entry without it is small in its map's node) when it is
    /// not the only instance's record as it came. Most processors have
    /// one name and one MAC: a copy would be some 600 bytes each for
    /// nothing. `None` only while there is one instance, and only until
    /// its instances change ([`Entry::file`], [`Entry::forget`]); the
    /// following [`Inventory::refresh`] decides again.
    shown: Option<Box<ProcessorInfo>>,
    /// The MACs its own answers carried (see [`Inventory::confirmed`]), and
    /// from which addresses (sorted): more than one is two devices
    /// claiming one serial.
    devices: Vec<(Mac, Vec<IpAddr>)>,
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
    fn new(fullname: &str, seen: Seen) -> Entry {
        Entry {
            by_instance: vec![(fullname.to_string(), seen)],
            shown: None,
            devices: Vec::new(),
        }
    }

    /// The record shown: [`Entry::merged`] as of the last change.
    fn shown(&self) -> &ProcessorInfo {
        self.shown.as_deref().unwrap_or(&self.by_instance[0].1.info)
    }

    /// Shows `merged` from now on. Returns what was shown if it was kept
    /// apart (else it is the only instance's record, still there).
    fn show(&mut self, merged: ProcessorInfo) -> Option<Box<ProcessorInfo>> {
        let alone = matches!(&self.by_instance[..], [(_, only)] if only.info == merged);
        std::mem::replace(&mut self.shown, (!alone).then(|| Box::new(merged)))
    }

    fn slot(&self, fullname: &str) -> Result<usize, usize> {
        self.by_instance
            .binary_search_by(|(name, _)| name.as_str().cmp(fullname))
    }

    fn seen(&self, fullname: &str) -> Option<&Seen> {
        let i = self.slot(fullname).ok()?;
        Some(&self.by_instance[i].1)
    }

    fn seen_mut(&mut self, fullname: &str) -> Option<&mut Seen> {
        let i = self.slot(fullname).ok()?;
        Some(&mut self.by_instance[i].1)
    }

    /// Files the latest record of one of its instances. The record shown
    /// until the next refresh is kept apart.
    fn file(&mut self, fullname: &str, seen: Seen) {
        match self.slot(fullname) {
            Ok(i) => {
                let before = std::mem::replace(&mut self.by_instance[i].1, seen);
                if self.shown.is_none() {
                    // It was the only one, and its record the one shown.
                    self.shown = Some(Box::new(before.info));
                }
            }
            Err(i) => {
                if self.shown.is_none() {
                    self.shown = Some(Box::new(self.by_instance[0].1.info.clone()));
                }
                insert_exact(&mut self.by_instance, i, (fullname.to_string(), seen));
            }
        }
    }

    /// Takes one of its instances away. The record shown until the next
    /// refresh is kept apart (it is what a removal reports).
    fn forget(&mut self, fullname: &str) -> Option<()> {
        let i = self.slot(fullname).ok()?;
        let (_, seen) = self.by_instance.remove(i);
        self.by_instance.shrink_to_fit();
        if self.shown.is_none() {
            // It was the only one, and its record the one shown.
            self.shown = Some(Box::new(seen.info));
        }
        Some(())
    }

    /// Notes a device (a MAC) answering from these addresses; whether it
    /// is a new one.
    fn note_device(&mut self, mac: Mac, addresses: &BTreeSet<IpAddr>) -> bool {
        let (i, new) = match self.devices.binary_search_by(|(m, _)| m.cmp(&mac)) {
            Ok(i) => (i, false),
            Err(i) => {
                insert_exact(&mut self.devices, i, (mac, Vec::new()));
                (i, true)
            }
        };
        let known = &mut self.devices[i].1;
        for address in addresses {
            if let Err(j) = known.binary_search(address) {
                insert_exact(known, j, *address);
            }
        }
        new
    }

    /// The record to show: the newest `_lutron._tcp` one when there is one
    /// (a renamed processor shows its new name), with the addresses of
    /// every instance.
    fn merged(&self) -> ProcessorInfo {
        let newest = |lutron_only: bool| {
            self.by_instance
                .iter()
                .map(|(_, s)| s)
                .filter(|s| !lutron_only || s.info.service_type.starts_with("_lutron."))
                .max_by_key(|s| s.seq)
                .map(|s| s.info.clone())
        };
        let mut shown = newest(true).or_else(|| newest(false)).unwrap_or_default();
        for (_, s) in &self.by_instance {
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
    /// Sorted (almost always one: a vector, not a set, whose node would
    /// hold room for eleven).
    all: Vec<Identity>,
    /// The processor mdns-sd's record for the name described last: the one
    /// a removal of the name is about.
    current: Option<Identity>,
}

impl Holders {
    fn add(&mut self, identity: &Identity) {
        if let Err(i) = self.all.binary_search(identity) {
            insert_exact(&mut self.all, i, identity.clone());
        }
    }

    fn remove(&mut self, identity: &Identity) {
        if let Ok(i) = self.all.binary_search(identity) {
            self.all.remove(i);
        }
    }
}

/// Inserts into a small vector, growing it by one (a vector grows to room
/// for four at once).
fn insert_exact<T>(v: &mut Vec<T>, index: usize, value: T) {
    v.reserve_exact(1);
    v.insert(index, value);
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
        if let (Some((mac, addresses)), Some(entry)) = (device, self.entries.get_mut(&identity))
            && entry.note_device(mac, &addresses)
        {
            events.extend(Self::refresh(entry));
            if let Some(w) = entry.impostor_warning(entry.shown()) {
                tracing::warn!("{w}");
            }
        }
        events
    }

    /// The processor at `host` still advertises `fullname` (an SRV answer
    /// seen by itself): it counts as seen under that name this round.
    /// Whether a processor known at that host under that name was found.
    pub fn sighted(&mut self, fullname: &str, host: &str) -> bool {
        let Some(holders) = self.names.get(fullname) else {
            return false;
        };
        let mut found = false;
        for id in &holders.all {
            if let Some(seen) = self
                .entries
                .get_mut(id)
                .and_then(|e| e.seen_mut(fullname))
                .filter(|s| s.info.host.eq_ignore_ascii_case(host))
            {
                seen.round = self.round;
                found = true;
            }
        }
        found
    }

    fn file(
        &mut self,
        fullname: &str,
        identity: Identity,
        info: ProcessorInfo,
        current: bool,
    ) -> Vec<InventoryEvent> {
        let holders = self.names.entry(fullname.to_string()).or_default();
        holders.add(&identity);
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
                let added = InventoryEvent::Added(seen.info.clone());
                self.entries.insert(identity, Entry::new(fullname, seen));
                vec![added]
            }
            Some(entry) => {
                entry.file(fullname, seen);
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
                    .is_some_and(|e| e.shown().mac == Some(mac))
        }) else {
            return;
        };
        let known = self
            .entries
            .get(identity)
            .and_then(|e| e.seen(fullname).map(|s| &s.info).or(Some(e.shown())));
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
                    .and_then(|e| e.seen(name))
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
            holders.remove(identity);
            if holders.current.as_ref() == Some(identity) {
                holders.current = None;
            }
            if holders.all.is_empty() {
                self.names.remove(fullname);
            }
        }
        let entry = self.entries.get_mut(identity)?;
        entry.forget(fullname)?;
        if entry.by_instance.is_empty() {
            let shown = self.entries.remove(identity)?.shown?;
            return Some(InventoryEvent::Removed(*shown));
        }
        Self::refresh(entry)
    }

    fn refresh(entry: &mut Entry) -> Option<InventoryEvent> {
        let merged = entry.merged();
        let changed = changes(entry.shown(), &merged);
        let before = entry.show(merged);
        if changed.is_empty() {
            return None;
        }
        // Not kept apart: the only instance's record, unchanged since (its
        // instances did not change, or it would have been kept apart).
        let before = before.unwrap_or_else(|| Box::new(entry.by_instance[0].1.info.clone()));
        Some(InventoryEvent::Changed {
            before,
            after: Box::new(entry.shown().clone()),
            changes: changed,
        })
    }

    /// The processors, sorted by identity (serial first, so by id).
    pub fn processors(&self) -> impl Iterator<Item = &ProcessorInfo> {
        self.entries.values().map(|e| e.shown())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some processor is known under this instance name.
    pub fn knows_name(&self, fullname: &str) -> bool {
        self.names.contains_key(fullname)
    }

    /// The instance names whose processor (the one mdns-sd's record for
    /// the name describes) gave no word of its own in this liveness round:
    /// the ones to ask again by name. Hidden holders of a shared name are
    /// left to [`Inventory::liveness_round`].
    pub fn unheard_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|(name, holders)| {
            let current = holders.current.as_ref()?;
            let heard = self
                .entries
                .get(current)
                .and_then(|e| e.seen(name))
                .is_some_and(|s| s.round == self.round);
            (!heard).then_some(name.as_str())
        })
    }

    /// Every DNS-SD instance name behind the inventory.
    pub fn instance_names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
