//! The vectors of `proto/vectors/relay/`: one CBOR item per file (no length
//! prefix), each with a `.diag` twin in CBOR diagnostic notation. Every
//! file decodes, re-encodes byte for byte, and equals what handoff's own
//! types write for it; every twin parses (with the `cbor-diag` crate) to
//! the same bytes; and every message and event kind has a vector.
//!
//! `HANDOFF_WRITE_VECTORS=1 cargo test --lib proto::vectors` rewrites the
//! `.cbor` files from [`samples`] (and a `.diag` where none exists, to be
//! read by eye before it is committed).

use std::path::PathBuf;

use super::vector_files::{check_diag_twins, check_samples_have_vectors, decode_every_vector};
use super::*;
use crate::place::{AccessDuration, PlaceId, Status, Timestamp};
use crate::processor::{Mac, Serial};

pub(super) const MAC: Mac = Mac([0xa0, 0xf6, 0xfd, 0x12, 0x34, 0x56]);

pub(super) fn id(seq: u64) -> EventId {
    EventId {
        daemon: "d-7f3a".into(),
        seq,
    }
}

pub(super) fn place() -> PlaceId {
    PlaceId("place-1".into())
}

pub(super) fn event(seq: u64, kind: EventKind) -> RelayMessage {
    RelayMessage::Event(RelayEvent { id: id(seq), kind })
}

/// One message per vector file of `proto/vectors/relay/`, by file stem.
pub(super) fn samples() -> Vec<(&'static str, RelayMessage)> {
    vec![
        (
            "hello",
            RelayMessage::Hello(Hello {
                versions: vec![1],
                software: Some("handoff 0.1.0".into()),
            }),
        ),
        ("hello-ack", RelayMessage::HelloAck(HelloAck { version: 1 })),
        (
            "event-claimed",
            event(
                1,
                EventKind::Claimed(Claimed {
                    place: Some(place()),
                    serial: Serial(37152423),
                    mac: MAC,
                    // A placeholder: the codec carries the DER, it does
                    // not parse it (a real one is some 500 bytes).
                    proof: vec![0x30, 0x82, 0x01, 0x0a, 0x30, 0x81, 0xb0],
                    at: Timestamp(1_790_000_000),
                    // Likewise a placeholder: an ECDSA signature's DER
                    // shape, some 70 bytes in a real event.
                    possession: Some(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]),
                    model: None,
                    firmware: None,
                }),
            ),
        ),
        (
            // As a daemon that knows the processor's model and firmware
            // sends it; "event-claimed" is the older daemons' frame.
            "event-claimed-reported",
            event(
                7,
                EventKind::Claimed(Claimed {
                    place: None,
                    serial: Serial(37152423),
                    mac: MAC,
                    proof: vec![0x30, 0x82, 0x01, 0x0a, 0x30, 0x81, 0xb0],
                    at: Timestamp(1_790_000_000),
                    possession: Some(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]),
                    model: Some("RadioRA 3 Processor".into()),
                    firmware: Some("26.00.14f000".into()),
                }),
            ),
        ),
        (
            "event-released",
            event(
                2,
                EventKind::Released(Released {
                    place: Some(place()),
                    serial: None,
                }),
            ),
        ),
        (
            "event-share-access",
            event(
                3,
                EventKind::ShareAccess(ShareAccess {
                    place: place(),
                    email: "pro@example.com".into(),
                    duration: AccessDuration::SevenDays,
                }),
            ),
        ),
        (
            "event-new-share-link",
            event(
                4,
                EventKind::NewShareLink(NewShareLink {
                    place: place(),
                    duration: AccessDuration::ThirtyDays,
                }),
            ),
        ),
        (
            "event-redeem-link",
            event(
                5,
                EventKind::RedeemLink(RedeemLink {
                    place: place(),
                    link: IssuedLink {
                        number: 2,
                        secret: "s3cr3t".into(),
                    },
                }),
            ),
        ),
        (
            "event-revoke-access",
            event(
                6,
                EventKind::RevokeAccess(RevokeAccess {
                    place: place(),
                    email: "pro@example.com".into(),
                    force: true,
                }),
            ),
        ),
        (
            "ack-applied",
            RelayMessage::Ack(Ack {
                id: id(4),
                outcome: Outcome::Applied,
                link: Some(IssuedLink {
                    number: 3,
                    secret: "n3w".into(),
                }),
            }),
        ),
        (
            "ack-duplicate",
            RelayMessage::Ack(Ack {
                id: id(2),
                outcome: Outcome::Duplicate,
                link: None,
            }),
        ),
        (
            "ack-refused",
            RelayMessage::Ack(Ack {
                id: id(1),
                outcome: Outcome::Refused {
                    // The cloud's Refusal::AlreadyHasHomeowner, as it
                    // writes it (proto stays independent of the cloud).
                    rule: "second_claim_refused_with_remote_assistance_guidance".into(),
                    guidance: crate::place::ASK_HOMEOWNER.into(),
                },
                link: None,
            }),
        ),
        (
            "status-query-mac",
            RelayMessage::StatusQuery(StatusQuery::ByMac { query: 7, mac: MAC }),
        ),
        (
            "status-query-serial",
            RelayMessage::StatusQuery(StatusQuery::BySerial {
                query: 8,
                serial: Serial(37152423),
            }),
        ),
        (
            "status",
            RelayMessage::PlaceStatus(PlaceStatus {
                query: 7,
                status: Status::Yellow,
                guidance: Status::Yellow.guidance().into(),
                serial: Serial(37152423),
                mac: MAC,
                place: None,
                access: None,
            }),
        ),
        (
            "status-green-no-access",
            RelayMessage::PlaceStatus(PlaceStatus {
                query: 9,
                status: Status::Green,
                guidance: crate::place::NO_HOMEOWNER_YET.into(),
                serial: Serial(37152423),
                mac: MAC,
                place: None,
                access: Some(false),
            }),
        ),
        (
            "error",
            RelayMessage::Error(ErrorFrame {
                code: error_code::UNKNOWN_KIND.into(),
                reason: "unknown message kind \"frobnicate\"".into(),
                id: None,
                query: None,
            }),
        ),
        (
            "error-busy",
            RelayMessage::Error(ErrorFrame {
                code: error_code::BUSY.into(),
                reason: "the cloud database is busy: send the event again later".into(),
                id: Some(EventId {
                    daemon: "lake-house".into(),
                    seq: 42,
                }),
                query: None,
            }),
        ),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/vectors/relay")
}

#[test]
fn every_sample_has_a_vector_that_it_encodes_to() {
    check_samples_have_vectors(&dir(), &samples());
}

#[test]
fn every_vector_decodes_and_re_encodes_byte_for_byte() {
    let decoded: Vec<(PathBuf, RelayMessage)> = decode_every_vector(&dir(), samples().len());
    let kinds: Vec<&str> = decoded.iter().map(|(_, m)| m.kind()).collect();
    let events: Vec<&str> = decoded
        .iter()
        .filter_map(|(_, m)| match m {
            RelayMessage::Event(e) => Some(e.kind.kind()),
            _ => None,
        })
        .collect();
    for kind in RelayMessage::KINDS {
        assert!(kinds.contains(&kind), "no vector for {kind}");
    }
    for kind in EventKind::KINDS {
        assert!(events.contains(&kind), "no vector for event {kind}");
    }
}

#[test]
fn every_vector_has_a_diagnostic_twin_that_matches() {
    check_diag_twins(&dir(), samples().iter().map(|(stem, _)| *stem));
}
