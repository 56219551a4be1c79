//! The vectors of `proto/vectors/control/`, checked as those of
//! `proto/vectors/relay/` are (see `super::super::vectors`): one CBOR item
//! per file with a `.diag` twin; every file decodes, re-encodes byte for
//! byte and equals what handoff writes for its sample; every kind has one.
//!
//! `HANDOFF_WRITE_VECTORS=1 cargo test --lib proto::control::vectors`
//! rewrites the `.cbor` files (and writes a `.diag` where none exists).

use std::path::PathBuf;

use super::*;
use crate::processor::{ServiceRecord, TxtEntry};
use crate::proto::vector_files::{
    check_diag_twins, check_samples_have_vectors, decode_every_vector,
};

/// A RadioRA 3 processor as the simulator advertises one.
pub(super) fn ra3() -> ProcessorInfo {
    ProcessorInfo::from_record(&ServiceRecord {
        fullname: "Lutron Status._lutron._tcp.local.".into(),
        service_type: "_lutron._tcp.local.".into(),
        host: "Lutron-0236e6a7.local.".into(),
        port: 22,
        addresses: ["127.0.1.1".parse().unwrap()].into_iter().collect(),
        txt: vec![
            TxtEntry::new("MACADDR", b"a0:f6:fd:12:34:56"),
            TxtEntry::new("CODEVER", b"22.08.15f000"),
            TxtEntry::new("DEVCLASS", b"081B0101"),
            TxtEntry::new("FW_STATUS", b"1:NoUpdate"),
            TxtEntry::new("NW_STATUS", b"InternetWorking"),
            TxtEntry::new("ST_STATUS", b"good"),
            TxtEntry::new("SYSTYPE", b"RadioRa3Processor"),
        ],
    })
}

/// A Caséta bridge without SYSTYPE and with a broken MAC: warnings, and
/// the product line from DEVCLASS.
pub(super) fn odd_bridge() -> ProcessorInfo {
    ProcessorInfo::from_record(&ServiceRecord {
        fullname: "Lutron Status (2)._leap._tcp.local.".into(),
        service_type: "_leap._tcp.local.".into(),
        host: "Lutron-00a1b2c3.local.".into(),
        port: 22,
        addresses: ["127.0.1.2".parse().unwrap(), "fe80::1".parse().unwrap()]
            .into_iter()
            .collect(),
        txt: vec![
            TxtEntry::new("MACADDR", b"not-a-mac"),
            TxtEntry::new("CODEVER", b"08.25.17f000"),
            TxtEntry::new("DEVCLASS", b"08050100"),
        ],
    })
}

fn changed(mut p: ProcessorInfo) -> ProcessorInfo {
    p.addresses = ["127.0.2.1".parse().unwrap()].into_iter().collect();
    p.firmware = Some("22.09.01f000".into());
    p
}

/// One message per vector file of `proto/vectors/control/`, by file stem.
pub(super) fn samples() -> Vec<(&'static str, ControlMessage)> {
    vec![
        (
            "inventory",
            ControlMessage::Inventory(Request { request: 1 }),
        ),
        ("watch", ControlMessage::Watch(Request { request: 2 })),
        ("health", ControlMessage::Health(Request { request: 3 })),
        (
            "processors",
            ControlMessage::Processors(Processors {
                request: 1,
                list: vec![odd_bridge(), ra3()],
                more: false,
            }),
        ),
        (
            "processors-more",
            ControlMessage::Processors(Processors {
                request: 1,
                list: vec![ra3()],
                more: true,
            }),
        ),
        (
            "event-added",
            ControlMessage::Event(Box::new(WatchEvent {
                request: 2,
                change: Change::Added,
                changes: vec![],
                processor: ra3(),
            })),
        ),
        (
            "event-changed",
            ControlMessage::Event(Box::new(WatchEvent {
                request: 2,
                change: Change::Changed,
                changes: vec!["addresses".into(), "firmware".into()],
                processor: changed(ra3()),
            })),
        ),
        (
            "event-removed",
            ControlMessage::Event(Box::new(WatchEvent {
                request: 2,
                change: Change::Removed,
                changes: vec![],
                processor: ra3(),
            })),
        ),
        (
            "health-report",
            ControlMessage::HealthReport(HealthReport {
                request: 3,
                processors: 2,
                uptime_ms: 86_400_000,
                last_event_ms: Some(1_250),
                pid: 4242,
                software: "handoff 0.1.0".into(),
                relay: None,
            }),
        ),
        (
            "health-report-relay",
            ControlMessage::HealthReport(HealthReport {
                request: 3,
                processors: 0,
                uptime_ms: 5_000,
                last_event_ms: None,
                pid: 4242,
                software: "handoff 0.1.0".into(),
                relay: Some(RelayHealth {
                    backlog: 3,
                    oldest_unsent_ms: Some(90_000),
                    cloud: None,
                    account: None,
                    connected: None,
                    last_error: None,
                    last_error_code: None,
                }),
            }),
        ),
        (
            "health-report-relay-cloud",
            ControlMessage::HealthReport(HealthReport {
                request: 3,
                processors: 2,
                uptime_ms: 5_000,
                last_event_ms: Some(400),
                pid: 4242,
                software: "handoff 0.1.0".into(),
                relay: Some(RelayHealth {
                    backlog: 0,
                    oldest_unsent_ms: None,
                    cloud: Some("cloud.example.net:4433".into()),
                    account: Some("site-box@integrator.example".into()),
                    connected: None,
                    last_error: None,
                    last_error_code: None,
                }),
            }),
        ),
        (
            "health-report-relay-revoked",
            ControlMessage::HealthReport(HealthReport {
                request: 3,
                processors: 2,
                uptime_ms: 5_000,
                last_event_ms: Some(400),
                pid: 4242,
                software: "handoff 0.1.0".into(),
                relay: Some(RelayHealth {
                    backlog: 1,
                    oldest_unsent_ms: Some(30_000),
                    cloud: Some("cloud.example.net:4433".into()),
                    account: Some("site-box@integrator.example".into()),
                    connected: Some(false),
                    last_error: Some(
                        "the cloud reported an error (revoked): the cloud's operator revoked \
                         this site box's identity ('site-a')"
                            .into(),
                    ),
                    last_error_code: Some("revoked".into()),
                }),
            }),
        ),
        (
            "queue",
            ControlMessage::Queue(Box::new(QueueRequest {
                request: 4,
                event: crate::proto::EventKind::Released(crate::proto::Released {
                    place: None,
                    serial: Some(crate::processor::Serial(0x0236_e6a7)),
                }),
                wait_ms: 10_000,
            })),
        ),
        (
            "queued",
            ControlMessage::Queued(Queued {
                request: 4,
                cloud: CloudResult {
                    id: event_id(),
                    result: "refused".into(),
                    rule: Some("only_the_homeowner_releases_the_home".into()),
                    why: Some("only the homeowner can Remove Home from Account".into()),
                    link: None,
                },
            }),
        ),
        (
            "outcome",
            ControlMessage::Outcome(OutcomeRequest {
                request: 5,
                id: event_id(),
                wait_ms: 10_000,
            }),
        ),
        (
            "claim",
            ControlMessage::Claim(Box::new(ClaimRequest {
                request: 6,
                processor: "0236e6a7".into(),
                address: None,
                button_s: Some(180),
                key: Some(KeyKind::Ec),
                device_uid: None,
                wait_ms: 10_000,
                homeowner: false,
            })),
        ),
        (
            "claim-homeowner",
            ControlMessage::Claim(Box::new(ClaimRequest {
                request: 6,
                processor: "0236e6a7".into(),
                address: Some("127.0.1.1".into()),
                button_s: None,
                key: None,
                device_uid: None,
                wait_ms: 10_000,
                homeowner: true,
            })),
        ),
        (
            "release",
            ControlMessage::Release(ReleaseRequest {
                request: 7,
                processor: "a0:f6:fd:12:34:56".into(),
                wait_ms: 10_000,
                unpair: false,
            }),
        ),
        (
            "release-unpair",
            ControlMessage::Release(ReleaseRequest {
                request: 7,
                processor: "0236e6a7".into(),
                wait_ms: 0,
                unpair: true,
            }),
        ),
        (
            "progress-button",
            ControlMessage::Progress(Progress {
                request: 6,
                step: step::BUTTON.into(),
                left_ms: Some(180_000),
                what: Some(
                    "RadioRA 3 Processor 0236e6a7 (MAC a0:f6:fd:12:34:56) at 127.0.1.1".into(),
                ),
            }),
        ),
        (
            "progress-pressed",
            ControlMessage::Progress(Progress {
                request: 6,
                step: step::PRESSED.into(),
                left_ms: None,
                what: None,
            }),
        ),
        (
            "done-claimed",
            ControlMessage::Done(Box::new(Done {
                request: 6,
                claimed: Some(ClaimedProcessor {
                    id: "0236e6a7".into(),
                    serial: crate::processor::Serial(0x0236_e6a7),
                    mac: Some(crate::processor::Mac([0xa0, 0xf6, 0xfd, 0x12, 0x34, 0x56])),
                    address: "127.0.1.1".into(),
                    product: "RadioRA 3 Processor".into(),
                    device_uid: "024c02000001".into(),
                    ca_sha256: Some(
                        "5C:1F:0B:7E:93:A4:D2:66:18:C0:4F:E9:2B:71:D8:03:AA:56:9E:E1:37:0C:\
                         B5:62:F8:44:1D:9A:C3:70:2E:B8"
                            .into(),
                    ),
                    dir: "/var/lib/handoff/credentials/37152423".into(),
                    files: vec![
                        "/var/lib/handoff/credentials/37152423/key.pem".into(),
                        "/var/lib/handoff/credentials/37152423/cert.pem".into(),
                    ],
                }),
                released: None,
                takeover: None,
                cloud: Some(CloudResult {
                    id: crate::proto::EventId {
                        daemon: "d-7f3a".into(),
                        seq: 13,
                    },
                    result: "applied".into(),
                    rule: None,
                    why: None,
                    link: None,
                }),
            })),
        ),
        (
            "done-released",
            ControlMessage::Done(Box::new(Done {
                request: 7,
                claimed: None,
                released: Some(ReleasedProcessor {
                    id: "0236e6a7".into(),
                    serial: crate::processor::Serial(0x0236_e6a7),
                }),
                takeover: None,
                cloud: Some(CloudResult {
                    id: crate::proto::EventId {
                        daemon: "d-7f3a".into(),
                        seq: 14,
                    },
                    result: "queued".into(),
                    rule: None,
                    why: Some("no answer from cloud.example:4433 in time".into()),
                    link: None,
                }),
            })),
        ),
        ("reload", ControlMessage::Reload(Request { request: 8 })),
        (
            "reloaded",
            ControlMessage::Reloaded(Reloaded {
                request: 8,
                later: vec!["state directory".into()],
            }),
        ),
        (
            "status",
            ControlMessage::Status(StatusRequest {
                request: 9,
                processor: "127.0.1.1".into(),
                wait_ms: 10_000,
            }),
        ),
        (
            "status-report",
            ControlMessage::StatusReport(Box::new(StatusReport {
                request: 9,
                status: crate::place::Status::Green,
                guidance: "the Place is ready: claim it with the button".into(),
                serial: crate::processor::Serial(0x0236_e6a7),
                mac: crate::processor::Mac([0xa0, 0xf6, 0xfd, 0x12, 0x34, 0x56]),
                place: Some(crate::place::PlaceId("lake-house".into())),
                account: "integrator@example.com".into(),
                access: None,
            })),
        ),
        (
            "takeover",
            ControlMessage::Takeover(Box::new(TakeoverRequest {
                request: 10,
                processor: "0236e6a7".into(),
                share_to: "pro@example.com".into(),
                duration: Some(crate::place::AccessDuration::ThirtyDays),
                button_s: Some(180),
                wait_ms: 10_000,
            })),
        ),
        (
            "progress-takeover",
            ControlMessage::Progress(Progress {
                request: 10,
                step: step::TAKEOVER.into(),
                left_ms: None,
                what: Some("green: no homeowner yet, so integrator@example.com can claim it".into()),
            }),
        ),
        (
            "done-takeover",
            ControlMessage::Done(Box::new(Done {
                request: 10,
                claimed: None,
                released: None,
                takeover: Some(TakeoverResult {
                    result: "done".into(),
                    place: Some("lake-house".into()),
                    serial: Some(crate::processor::Serial(0x0236_e6a7)),
                    share_to: Some("pro@example.com".into()),
                    duration: Some(crate::place::AccessDuration::ThirtyDays),
                    until: Some("2026-12-23T17:00:00Z".into()),
                    account: Some("integrator@example.com".into()),
                    ..TakeoverResult::default()
                }),
                cloud: None,
            })),
        ),
        (
            "done-takeover-not-applicable",
            ControlMessage::Done(Box::new(Done {
                request: 10,
                claimed: None,
                released: None,
                takeover: Some(TakeoverResult {
                    result: "not-applicable".into(),
                    status: Some(crate::place::Status::Yellow),
                    why: Some("a homeowner account is established: ask the homeowner for Remote Assistance from Installer".into()),
                    serial: Some(crate::processor::Serial(0x0236_e6a7)),
                    mac: Some(crate::processor::Mac([0xa0, 0xf6, 0xfd, 0x12, 0x34, 0x56])),
                    ..TakeoverResult::default()
                }),
                cloud: None,
            })),
        ),
        (
            "inspect",
            ControlMessage::Inspect(InspectRequest {
                request: 9,
                processor: "0236e6a7".into(),
                wait_ms: 5000,
            }),
        ),
        (
            "house-start",
            ControlMessage::HouseStart(Box::new(house_start())),
        ),
        (
            "house-area",
            ControlMessage::HouseArea(Box::new(HouseArea {
                request: 9,
                area: kitchen(),
                more: false,
            })),
        ),
        (
            "house-area-more",
            ControlMessage::HouseArea(Box::new(HouseArea {
                request: 9,
                area: crate::inventory::AreaReport {
                    zones: Vec::new(),
                    ..kitchen()
                },
                more: true,
            })),
        ),
        (
            "house-warnings",
            ControlMessage::HouseWarnings(HouseWarnings {
                request: 9,
                list: vec![
                    "device 31 (Hall) has type \"Mystery\", which handoff does not know; kept as read"
                        .into(),
                ],
            }),
        ),
        (
            "house-end",
            ControlMessage::HouseEnd(Box::new(HouseEnd {
                request: 9,
                counts: crate::inventory::Counts {
                    areas: 1,
                    zones: 2,
                    devices: 1,
                    buttons: 2,
                    zones_by_type: [("Dimmed".to_string(), 1), ("Shade".to_string(), 1)]
                        .into_iter()
                        .collect(),
                    devices_by_type: [("SunnataKeypad".to_string(), 1)].into_iter().collect(),
                },
            })),
        ),
        (
            "error",
            ControlMessage::Error(ControlError::new(
                error_code::UNKNOWN_KIND,
                "unknown message kind \"frobnicate\"",
                None,
            )),
        ),
    ]
}

fn house_start() -> HouseStart {
    HouseStart {
        request: 9,
        processor: crate::inventory::ProcessorFacts {
            name: "Processor".into(),
            device_type: "RadioRa3Processor".into(),
            model: "JanusProcRA3".into(),
            serial: Some(37_152_423),
            firmware: Some("23.06.28f000".into()),
            macs: vec!["02:4c:02:36:e6:a7".into()],
            address: "127.0.1.1".into(),
        },
        project: crate::inventory::ProjectFacts {
            name: "Lakeside".into(),
            product_type: "Lutron RadioRA 3 Project".into(),
        },
    }
}

/// An area with a dimmer at 75 %, a shade at an unknown level and a
/// keypad; its parent is another area.
fn kitchen() -> crate::inventory::AreaReport {
    use crate::inventory::{AreaItem, AreaReport, ButtonItem, DeviceItem, ZoneItem};
    AreaReport {
        area: AreaItem {
            id: "4".into(),
            name: "Kitchen".into(),
            parent: Some("1".into()),
        },
        zones: vec![
            ZoneItem {
                id: "12".into(),
                name: "Island".into(),
                zone_type: "Dimmed".into(),
                level: serde_json::json!(75),
            },
            ZoneItem {
                id: "13".into(),
                name: "Window".into(),
                zone_type: "Shade".into(),
                level: serde_json::Value::Null,
            },
        ],
        devices: vec![DeviceItem {
            id: "31".into(),
            name: "Door".into(),
            device_type: "SunnataKeypad".into(),
            model: "RRST-W4B-XX".into(),
            serial: Some(90_000_031),
            firmware: None,
            buttons: vec![
                ButtonItem {
                    id: "311".into(),
                    number: Some(1),
                    engraving: "Cook".into(),
                },
                ButtonItem {
                    id: "312".into(),
                    number: Some(2),
                    engraving: "Dine".into(),
                },
            ],
        }],
    }
}

fn event_id() -> crate::proto::EventId {
    crate::proto::EventId {
        daemon: "d-7f3a".into(),
        seq: 12,
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/vectors/control")
}

#[test]
fn every_sample_has_a_vector_that_it_encodes_to() {
    check_samples_have_vectors(&dir(), &samples());
}

#[test]
fn every_vector_decodes_and_re_encodes_byte_for_byte() {
    let decoded: Vec<(PathBuf, ControlMessage)> = decode_every_vector(&dir(), samples().len());
    for kind in ControlMessage::KINDS {
        assert!(
            decoded.iter().any(|(_, m)| m.kind() == kind),
            "no vector for {kind}"
        );
    }
}

#[test]
fn every_vector_has_a_diagnostic_twin_that_matches() {
    check_diag_twins(&dir(), samples().iter().map(|(stem, _)| *stem));
}
