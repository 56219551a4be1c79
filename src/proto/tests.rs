//! The frame codec and the message mapping, at their edges.

use ciborium::Value;

use super::vectors::{MAC, event, id, samples};
use super::*;
use crate::cloud::{AccessDuration, Refusal, Timestamp};
use crate::processor::Serial;

/// A frame holding `value`, whatever it is.
fn frame_of(value: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    ciborium::into_writer(value, &mut body).unwrap();
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// The map `msg` encodes to, to be tampered with.
fn value_of(msg: &RelayMessage) -> Value {
    let frame = encode(msg).unwrap();
    ciborium::from_reader(&frame[HEADER_LEN..]).unwrap()
}

#[test]
fn every_message_round_trips() {
    for (name, msg) in samples() {
        let frame = encode(&msg).unwrap();
        assert_eq!(check(&frame), Ok(Some(frame.len())), "{name}");
        assert_eq!(decode(&frame), Ok(msg), "{name}");
    }
}

#[test]
fn samples_cover_every_kind() {
    let samples = samples();
    for kind in RelayMessage::KINDS {
        assert!(samples.iter().any(|(_, m)| m.kind() == kind), "{kind}");
    }
    for kind in EventKind::KINDS {
        let found = samples
            .iter()
            .any(|(_, m)| matches!(m, RelayMessage::Event(e) if e.kind.kind() == kind));
        assert!(found, "{kind}");
    }
}

#[test]
fn check_waits_for_the_header_and_the_body() {
    let frame = encode(&samples()[0].1).unwrap();
    for n in 0..frame.len() {
        assert_eq!(check(&frame[..n]), Ok(None), "{n} bytes");
    }
    let mut two = frame.clone();
    two.extend_from_slice(&frame);
    assert_eq!(check(&two), Ok(Some(frame.len())));
}

#[test]
fn oversized_prefix_is_refused_before_the_body_arrives() {
    assert_eq!(check(&[0, 1, 0, 0]), Ok(None), "exactly 64 KiB may follow");
    for prefix in [0x0001_0001u32, 0xffff_ffff] {
        let err = check(&prefix.to_be_bytes()).unwrap_err();
        assert_eq!(
            err,
            ProtoError::Oversized {
                len: u64::from(prefix),
                limit: MAX_ITEM
            }
        );
        assert!(err.is_fatal());
        assert_eq!(decode(&prefix.to_be_bytes()), Err(err));
    }
}

/// A claim whose item is exactly `size` bytes, padded through its proof.
fn claim_of_size(size: usize) -> RelayMessage {
    let claim = |proof_len: usize| {
        event(
            1,
            EventKind::Claimed(Claimed {
                place: None,
                serial: Serial(1),
                mac: MAC,
                proof: vec![0xaa; proof_len],
                at: Timestamp(0),
                possession: None,
                model: None,
                firmware: None,
            }),
        )
    };
    // An empty proof is one byte (0x40); a proof of n bytes is n plus a
    // header of 1, 2, 3 or 5 bytes.
    let base = encode(&claim(0)).unwrap().len() - HEADER_LEN - 1;
    let fits = |n: usize| -> usize {
        let header = match n {
            0..=23 => 1,
            24..=255 => 2,
            256..=65535 => 3,
            _ => 5,
        };
        base + header + n
    };
    let n = [1, 2, 3, 5]
        .into_iter()
        .map(|h| size - base - h)
        .find(|&n| fits(n) == size)
        .unwrap();
    claim(n)
}

#[test]
fn an_item_of_exactly_64_kib_passes_and_one_byte_more_does_not() {
    let msg = claim_of_size(MAX_ITEM);
    let frame = encode(&msg).unwrap();
    assert_eq!(frame.len(), HEADER_LEN + MAX_ITEM);
    assert_eq!(&frame[..4], &[0, 1, 0, 0]);
    assert_eq!(check(&frame), Ok(Some(frame.len())));
    assert_eq!(check(&frame[..frame.len() - 1]), Ok(None));
    assert_eq!(decode(&frame), Ok(msg));

    let over = claim_of_size(MAX_ITEM + 1);
    let err = encode(&over).unwrap_err();
    assert!(matches!(err, ProtoError::Unencodable { .. }), "{err:?}");
    assert!(err.to_string().contains("65537 bytes"), "{err}");
}

#[test]
fn garbage_is_a_decode_error_that_says_what_was_wrong() {
    let cases: [(&[u8], &str); 3] = [
        (&[0, 0, 0, 1, 0xff], "break"),
        // A map announcing 5 entries, then nothing.
        (&[0, 0, 0, 1, 0xa5], "ends before its last byte"),
        // A text string of invalid UTF-8.
        (&[0, 0, 0, 3, 0x62, 0xc3, 0x28], "syntax at byte 0"),
    ];
    for (frame, want) in cases {
        let err = decode(frame).unwrap_err();
        assert!(matches!(err, ProtoError::NotCbor { .. }), "{err:?}");
        assert!(err.to_string().contains(want), "{frame:?}: {err}");
        assert!(!err.is_fatal());
        assert_eq!(err.code(), error_code::MALFORMED);
    }
    assert_eq!(decode(&[0, 0, 0, 0]), Err(ProtoError::Empty));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let mut body = vec![0x81; 10_000];
    body.push(0x00);
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend(body);
    let err = decode(&frame).unwrap_err();
    assert!(err.to_string().contains("nested too deeply"), "{err}");
}

#[test]
fn a_frame_holds_exactly_one_item() {
    let mut frame = encode(&samples()[1].1).unwrap();
    // A second item inside the announced length.
    frame.push(0x00);
    let len = u32::try_from(frame.len() - HEADER_LEN).unwrap();
    frame[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode(&frame), Err(ProtoError::TrailingBytes { count: 1 }));
    // Bytes past the announced length.
    let mut frame = encode(&samples()[1].1).unwrap();
    frame.extend_from_slice(&[1, 2]);
    assert_eq!(decode(&frame), Err(ProtoError::TrailingBytes { count: 2 }));
    let frame = encode(&samples()[1].1).unwrap();
    assert!(matches!(
        decode(&frame[..frame.len() - 1]),
        Err(ProtoError::Truncated { .. })
    ));
}

#[test]
fn an_item_that_is_not_a_map_is_an_error() {
    for (value, found) in [
        (Value::Array(vec![text("k"), text("hello")]), "an array"),
        (Value::Integer(7.into()), "an integer"),
        (text("hello"), "a text string"),
        (Value::Null, "null"),
    ] {
        let err = decode(&frame_of(&value)).unwrap_err();
        assert_eq!(err, ProtoError::NotAMap { found }, "{value:?}");
    }
}

#[test]
fn unknown_kinds_decode_so_they_can_be_answered() {
    let frame = frame_of(&map(vec![
        ("k", text("frobnicate")),
        ("x", Value::Bool(true)),
    ]));
    let msg = decode(&frame).unwrap();
    assert_eq!(
        msg,
        RelayMessage::Unknown {
            kind: "frobnicate".into()
        }
    );
    assert!(matches!(encode(&msg), Err(ProtoError::Unencodable { .. })));

    let ev = map(vec![("k", text("teleport")), ("p", text("x"))]);
    let frame = frame_of(&map(vec![
        ("k", text("event")),
        (
            "id",
            Value::Array(vec![text("d"), Value::Integer(9.into())]),
        ),
        ("ev", ev),
    ]));
    let Ok(RelayMessage::Event(e)) = decode(&frame) else {
        panic!("{:?}", decode(&frame));
    };
    assert_eq!(e.id.seq, 9);
    assert_eq!(
        e.kind,
        EventKind::Unknown {
            kind: "teleport".into()
        }
    );
}

#[test]
fn the_kind_must_be_one_text_k() {
    for value in [
        map(vec![("v", Value::Array(vec![]))]),
        map(vec![("k", Value::Integer(1.into()))]),
        map(vec![("k", text("hello")), ("k", text("error"))]),
    ] {
        assert_eq!(decode(&frame_of(&value)), Err(ProtoError::MissingKind));
    }
}

/// Adds `("zz", …)` to the map, and to the nested event map if any.
fn with_unknown_fields(value: Value) -> Value {
    let Value::Map(entries) = value else {
        unreachable!()
    };
    let mut out: Vec<(Value, Value)> = entries
        .into_iter()
        .map(|(k, v)| match (&k, v) {
            (Value::Text(t), v @ Value::Map(_)) if t == "ev" => (k, with_unknown_fields(v)),
            (_, v) => (k, v),
        })
        .collect();
    out.insert(
        0,
        (
            text("zz"),
            Value::Array(vec![Value::Null, Value::Bytes(vec![1])]),
        ),
    );
    Value::Map(out)
}

#[test]
fn unknown_fields_are_ignored() {
    for (name, msg) in samples() {
        let frame = frame_of(&with_unknown_fields(value_of(&msg)));
        assert_ne!(frame, encode(&msg).unwrap());
        assert_eq!(decode(&frame), Ok(msg.clone()), "{name}");
    }
}

/// `msg`'s map with `key` (in the nested event map when `in_event`) set to
/// `value`, or removed when `value` is `None`.
fn tampered(msg: &RelayMessage, in_event: bool, key: &str, value: Option<Value>) -> Vec<u8> {
    fn set(entries: &mut Vec<(Value, Value)>, key: &str, value: Option<Value>) {
        entries.retain(|(k, _)| k != &text(key));
        if let Some(v) = value {
            entries.push((text(key), v));
        }
    }
    let Value::Map(mut entries) = value_of(msg) else {
        unreachable!()
    };
    if in_event {
        for (k, v) in &mut entries {
            if let (true, Value::Map(ev)) = (k == &text("ev"), v) {
                set(ev, key, value.clone());
            }
        }
    } else {
        set(&mut entries, key, value);
    }
    frame_of(&Value::Map(entries))
}

#[test]
fn fields_that_do_not_fit_are_errors_that_name_the_kind() {
    let s = samples();
    let get = |name: &str| s.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let claimed = get("event-claimed");
    let cases = [
        (
            tampered(&claimed, true, "mac", Some(Value::Bytes(vec![1; 5]))),
            "event claimed",
            "6 bytes, not 5",
        ),
        (tampered(&claimed, true, "sn", None), "event claimed", "sn"),
        (
            tampered(
                &claimed,
                true,
                "sn",
                Some(Value::Integer((1u64 << 33).into())),
            ),
            "event claimed",
            "",
        ),
        (
            tampered(&get("event-share-access"), true, "dur", Some(text("2w"))),
            "event share-access",
            "unknown duration \"2w\"",
        ),
        (
            tampered(&get("ack-refused"), false, "rule", None),
            "ack",
            "needs \"rule\" and \"why\"",
        ),
        (
            tampered(&get("ack-applied"), false, "r", Some(text("maybe"))),
            "ack",
            "unknown result",
        ),
        (
            tampered(
                &get("status-query-mac"),
                false,
                "sn",
                Some(Value::Integer(1.into())),
            ),
            "status-query",
            "exactly one",
        ),
        (
            tampered(&get("status-query-mac"), false, "mac", None),
            "status-query",
            "exactly one",
        ),
        (
            tampered(&get("status"), false, "st", Some(text("blue"))),
            "status",
            "unknown status \"blue\"",
        ),
        (
            tampered(&claimed, false, "ev", Some(text("claimed"))),
            "event",
            "\"ev\" is not a map",
        ),
        (
            tampered(&claimed, false, "id", Some(Value::Array(vec![text("d")]))),
            "event",
            "",
        ),
        (
            tampered(&get("hello"), false, "v", Some(text("1"))),
            "hello",
            "",
        ),
    ];
    for (frame, kind, reason) in cases {
        match decode(&frame) {
            Err(ProtoError::Invalid { kind: k, reason: r }) => {
                assert_eq!(k, kind, "{r}");
                assert!(r.contains(reason), "{kind}: {r}");
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

#[test]
fn keys_are_written_in_deterministic_order() {
    // Shorter keys first, then by byte, at every depth; unset optional
    // fields are left out rather than written as null.
    let frame = encode(&samples()[2].1).unwrap();
    let Value::Map(top) = ciborium::from_reader(&frame[HEADER_LEN..]).unwrap() else {
        unreachable!()
    };
    let keys = |m: &[(Value, Value)]| -> Vec<String> {
        m.iter()
            .map(|(k, _)| k.as_text().unwrap_or("?").to_owned())
            .collect()
    };
    assert_eq!(keys(&top), ["k", "ev", "id"]);
    let ev = top[1].1.as_map().unwrap();
    assert_eq!(keys(ev), ["k", "p", "at", "sn", "mac", "pop", "proof"]);
}

#[test]
fn a_refusal_travels_with_its_rule_and_guidance() {
    let refusal = Refusal::ShareExceedsRemainingAccess {
        by: crate::place::AccountId::new("a@b.c"),
        requested: AccessDuration::OneYear,
        remaining: crate::place::Remaining::Seconds(5),
    };
    let ack = RelayMessage::Ack(Ack {
        id: id(3),
        outcome: Outcome::Refused {
            rule: refusal.rule().into(),
            guidance: refusal.guidance().into(),
        },
        link: None,
    });
    let Ok(RelayMessage::Ack(back)) = decode(&encode(&ack).unwrap()) else {
        panic!()
    };
    assert_eq!(
        back.outcome,
        Outcome::Refused {
            rule: "share_cannot_exceed_sharers_remaining_access".into(),
            guidance: refusal.guidance().into(),
        }
    );
}

#[test]
fn a_decode_error_becomes_an_error_frame() {
    let err = decode(&frame_of(&Value::Null)).unwrap_err();
    let frame = ErrorFrame::for_decode_error(&err);
    assert_eq!(frame.code, error_code::MALFORMED);
    assert!(frame.reason.contains("not a map"), "{}", frame.reason);
    let oversized = check(&[0xff; 4]).unwrap_err();
    assert_eq!(
        ErrorFrame::for_decode_error(&oversized).code,
        error_code::TOO_LARGE
    );
    let msg = RelayMessage::Error(frame);
    assert_eq!(decode(&encode(&msg).unwrap()), Ok(msg));
}

/// Random bytes and mutated frames: nothing panics, `check` never claims
/// more than it holds, and whatever decodes to a known message re-encodes
/// to a frame that decodes to the same message. A fixed seed keeps
/// failures reproducible.
#[test]
fn survives_random_and_mutated_input() {
    let mut rng = fastrand::Rng::with_seed(0xcb04);
    let seeds: Vec<Vec<u8>> = samples().iter().map(|(_, m)| encode(m).unwrap()).collect();
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut buf: Vec<u8> = if round % 4 == 0 {
            (0..rng.usize(0..80)).map(|_| rng.u8(..)).collect()
        } else {
            let mut b = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(HEADER_LEN.min(b.len() - 1)..b.len());
                match rng.u8(..4) {
                    0 => b[at] = rng.u8(..),
                    1 => b[at] ^= 1 << rng.u8(..8),
                    2 => b.insert(at, rng.u8(..)),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            if round % 3 == 0 {
                // Keep the prefix honest so the mutation reaches the body.
                let len = u32::try_from(b.len().saturating_sub(HEADER_LEN)).unwrap();
                b[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
            }
            b
        };
        while let Ok(Some(n)) = check(&buf) {
            assert!((HEADER_LEN..=buf.len()).contains(&n));
            if let Ok(msg) = decode(&buf[..n]) {
                decoded += 1;
                if let Ok(again) = encode(&msg) {
                    assert_eq!(decode(&again), Ok(msg));
                }
            }
            buf.drain(..n);
        }
        let _ = decode(&buf);
    }
    assert!(decoded > 1000, "the mutations reach the decoder: {decoded}");
}
