//! Tests of the inventory, fed as mdns-sd and the listener feed it.

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

/// The warning lists the devices by MAC, each with its addresses in
/// order, whatever order they answered in.
#[test]
fn the_impostor_warning_lists_devices_by_mac_and_addresses_in_order() {
    let mut inv = Inventory::new();
    let n = name("Lutron Status");
    let real = info("Lutron Status", 1, "127.0.1.1", "1.0");
    let mut moved = real.clone();
    moved.addresses = ["127.0.0.7".parse().unwrap()].into_iter().collect();
    let mut low = info("Lutron Status (2)", 1, "127.0.9.9", "1.0");
    low.mac = Some("02:00:00:00:00:00".parse().unwrap());
    inv.confirmed(&n, real);
    inv.confirmed(&n, moved);
    assert!(inv.processors().next().unwrap().warnings.is_empty());
    inv.confirmed(&name("Lutron Status (2)"), low);
    assert_eq!(
        inv.processors().next().unwrap().warnings,
        vec![
            "2 devices answer for serial 1 (00000001): MAC 02:00:00:00:00:00 at 127.0.9.9 \
             and MAC 02:00:00:00:00:01 at 127.0.0.7,127.0.1.1; one may be an impostor"
                .to_string()
        ]
    );
}

/// Three names for one processor, filed out of order and taken away
/// from the middle: it shows the newest name it still has, and goes with
/// the last one.
#[test]
fn names_of_one_processor_come_and_go_in_any_order() {
    let mut inv = Inventory::new();
    let at = |instance| info(instance, 5, "127.0.1.5", "1.0");
    assert_eq!(inv.resolved(&name("B"), at("B")).len(), 1);
    assert_eq!(inv.resolved(&name("C"), at("C")).len(), 1);
    assert_eq!(inv.resolved(&name("A"), at("A")).len(), 1);
    assert_eq!(inv.processors().next().unwrap().instance, "A");
    assert_eq!(inv.removed(&name("B")), vec![]);
    assert!(!inv.knows_name(&name("B")));
    let ev = inv.removed(&name("A"));
    assert!(
        matches!(&ev[..], [InventoryEvent::Changed { changes, after, .. }]
            if changes == &vec!["instance"] && after.instance == "C"),
        "{ev:?}"
    );
    assert_eq!(inv.len(), 1);
    let ev = inv.removed(&name("C"));
    assert!(matches!(&ev[..], [InventoryEvent::Removed(p)] if p.instance == "C"));
    assert!(inv.is_empty());
    assert_eq!(inv.instance_names().count(), 0);
}

/// Processors hidden behind one name that all fall silent go in one
/// round, by id.
#[test]
fn hidden_holders_of_a_name_that_fall_silent_go_by_id() {
    let mut inv = Inventory::new();
    let n = name("Lutron Status");
    let holders: Vec<ProcessorInfo> = [30, 10, 20]
        .into_iter()
        .map(|serial| info("Lutron Status", serial, "127.0.1.1", "1.0"))
        .collect();
    for p in &holders {
        inv.resolved(&n, p.clone());
    }
    assert_eq!(inv.liveness_round(), vec![]);
    assert_eq!(inv.liveness_round(), vec![]);
    assert_eq!(
        inv.liveness_round(),
        vec![
            InventoryEvent::Removed(holders[1].clone()),
            InventoryEvent::Removed(holders[0].clone())
        ]
    );
    // The name's current holder stays.
    assert_eq!(inv.processors().collect::<Vec<_>>(), vec![&holders[2]]);
}

/// A change reports the record shown before it, whether that was the
/// only instance's record (most processors) or one merged from several;
/// a removal reports the last one shown.
#[test]
fn changes_and_removals_report_the_record_shown_before_them() {
    let mut inv = Inventory::new();
    let (a, a2) = (name("A"), name("A (2)"));
    let v1 = info("A", 1, "127.0.1.1", "1.0");
    let v2 = info("A", 1, "127.0.1.1", "2.0");
    assert_eq!(
        inv.resolved(&a, v1.clone()),
        vec![InventoryEvent::Added(v1.clone())]
    );
    let ev = inv.resolved(&a, v2.clone());
    assert!(
        matches!(&ev[..], [InventoryEvent::Changed { before, after, .. }]
            if **before == v1 && **after == v2),
        "{ev:?}"
    );
    assert_eq!(inv.confirmed(&a, v2.clone()), vec![]);
    // Another device for the serial, under another name and address.
    let mut other = info("A (2)", 1, "127.0.9.9", "2.0");
    other.mac = Some("02:00:00:00:00:99".parse().unwrap());
    let ev = inv.resolved(&a2, other.clone());
    assert!(
        matches!(&ev[..], [InventoryEvent::Changed { before, after, changes }]
            if **before == v2 && after.instance == "A (2)"
                && changes == &vec!["addresses", "mac", "instance"]),
        "{ev:?}"
    );
    // Heard from it directly: a warning, not an event.
    assert_eq!(inv.confirmed(&a2, other), vec![]);
    let shown = inv.processors().next().unwrap().clone();
    assert_eq!(shown.addresses.len(), 2);
    assert_eq!(shown.warnings.len(), 1, "{shown:?}");
    // The other name goes: back to A's record, with the warning (both
    // devices were heard).
    let ev = inv.removed(&a2);
    let [InventoryEvent::Changed { before, after, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(**before, shown);
    assert_eq!((&after.instance, after.warnings.len()), (&v2.instance, 1));
    let last = inv.processors().next().unwrap().clone();
    assert_eq!(inv.removed(&a), vec![InventoryEvent::Removed(last)]);
    assert!(inv.is_empty());
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

/// A round asks again by name only the processors that gave no word of
/// their own in it: an answer (whole record or SRV alone) counts, and a
/// name's silent processor is asked again while a hidden holder is not.
#[test]
fn only_names_unheard_in_the_round_are_asked_again() {
    let mut inv = Inventory::new();
    let (na, nb, nc) = (name("A"), name("B"), name("C"));
    let a = info("A", 1, "127.0.1.1", "1.0");
    let b = info("B", 2, "127.0.1.2", "1.0");
    let c = info("C", 3, "127.0.1.3", "1.0");
    inv.resolved(&na, a.clone());
    inv.resolved(&nb, b.clone());
    inv.resolved(&nc, c.clone());
    // Heard when resolved, in round 0.
    assert_eq!(inv.unheard_names().count(), 0);
    assert_eq!(inv.liveness_round(), vec![]);
    let mut unheard: Vec<&str> = inv.unheard_names().collect();
    unheard.sort();
    assert_eq!(unheard, vec![na.as_str(), nb.as_str(), nc.as_str()]);
    inv.confirmed(&na, a.clone());
    inv.sighted(&nc, &c.host);
    assert_eq!(inv.unheard_names().collect::<Vec<_>>(), vec![nb.as_str()]);
    // Another host's SRV under the name is not B's word.
    inv.sighted(&nb, &a.host);
    assert_eq!(inv.unheard_names().collect::<Vec<_>>(), vec![nb.as_str()]);
    // The next round starts everyone unheard again.
    assert_eq!(inv.liveness_round(), vec![]);
    assert_eq!(inv.unheard_names().count(), 3);
}
