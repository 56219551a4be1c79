use super::vectors::{odd_bridge, ra3, samples};
use super::*;
use crate::proto::{HEADER_LEN, check};

fn frame_of(value: &Value) -> Vec<u8> {
    let mut item = Vec::new();
    ciborium::into_writer(value, &mut item).unwrap();
    let mut frame = u32::try_from(item.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&item);
    frame
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
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
fn a_processor_comes_back_as_discovery_read_it() {
    // Warnings, two addresses, the product line from DEVCLASS alone.
    for p in [ra3(), odd_bridge()] {
        let back = ProcessorInfo::try_from(ProcessorWire::from(&p)).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.product(), p.product());
    }
    assert!(!odd_bridge().warnings.is_empty());
    assert!(odd_bridge().systype.is_none() && odd_bridge().system_type.is_some());
}

#[test]
fn unknown_kinds_decode_so_they_can_be_answered() {
    let frame = frame_of(&map(vec![
        ("k", Value::Text("frobnicate".into())),
        ("r", Value::Integer(9.into())),
    ]));
    assert_eq!(
        decode(&frame),
        Ok(ControlMessage::Unknown {
            kind: "frobnicate".into()
        })
    );
    assert_eq!(
        ControlError::for_unserved_kind("frobnicate").code,
        error_code::UNKNOWN_KIND
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let frame = frame_of(&map(vec![
        ("k", Value::Text("health".into())),
        ("r", Value::Integer(4.into())),
        ("verbose", Value::Bool(true)),
    ]));
    assert_eq!(
        decode(&frame),
        Ok(ControlMessage::Health(Request { request: 4 }))
    );
}

#[test]
fn garbage_and_oversized_frames_are_errors_with_their_codes() {
    let oversized = check(&[0, 1, 0, 1]).unwrap_err();
    assert_eq!(
        ControlError::for_decode_error(&oversized).code,
        error_code::TOO_LARGE
    );
    for frame in [
        &[0, 0, 0, 3, 0xff, 0xff, 0xff][..],
        &[0, 0, 0, 1, 0x01][..],
        &[0, 0, 0, 0][..],
    ] {
        let err = decode(frame).unwrap_err();
        assert_eq!(
            ControlError::for_decode_error(&err).code,
            error_code::MALFORMED,
            "{err}"
        );
    }
}

#[test]
fn fields_that_do_not_fit_are_errors_that_name_the_kind() {
    let no_request = frame_of(&map(vec![("k", Value::Text("inventory".into()))]));
    assert!(
        matches!(decode(&no_request), Err(ProtoError::Invalid { kind, .. }) if kind == "inventory")
    );

    let mut wire = to_value(&ProcessorWire::from(&ra3())).unwrap();
    if let Value::Map(entries) = &mut wire {
        for (k, v) in entries.iter_mut() {
            if k == &Value::Text("addrs".into()) {
                *v = Value::Array(vec![Value::Text("not-an-ip".into())]);
            }
        }
    }
    let frame = frame_of(&map(vec![
        ("k", Value::Text("processors".into())),
        ("r", Value::Integer(1.into())),
        ("list", Value::Array(vec![wire])),
    ]));
    match decode(&frame) {
        Err(ProtoError::Invalid { kind, reason }) => {
            assert_eq!(kind, "processors");
            assert!(reason.contains("not-an-ip"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ProtoError> {
    crate::proto::relay::to_value(v)
}

fn fleet(n: u32) -> Vec<ProcessorInfo> {
    (0..n)
        .map(|i| {
            let mut p = ra3();
            p.serial = Some(crate::processor::Serial(0x0100_0000 + i));
            p.host = format!("Lutron-{:08x}.local.", 0x0100_0000 + i);
            p.warnings = vec![format!("warning number {i} about something long enough")];
            p
        })
        .collect()
}

#[test]
fn a_large_inventory_is_split_into_frames_that_each_fit() {
    let all = fleet(1000);
    let frames = processors_frames(7, all.clone()).unwrap();
    assert!(frames.len() > 2, "{} frames", frames.len());
    let mut back = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let bytes = encode(f).unwrap();
        assert!(bytes.len() - HEADER_LEN <= MAX_ITEM);
        let ControlMessage::Processors(p) = decode(&bytes).unwrap() else {
            panic!("{f:?}")
        };
        assert_eq!(p.request, 7);
        assert_eq!(p.more, i + 1 < frames.len(), "frame {i}");
        back.extend(p.list);
    }
    assert_eq!(back, all);
}

#[test]
fn an_empty_inventory_is_one_empty_frame() {
    assert_eq!(
        processors_frames(1, Vec::new()).unwrap(),
        vec![ControlMessage::Processors(Processors {
            request: 1,
            list: vec![],
            more: false
        })]
    );
}

#[test]
fn random_bytes_never_panic_the_decoder() {
    let mut rng = fastrand::Rng::with_seed(6);
    let valid: Vec<Vec<u8>> = samples().iter().map(|(_, m)| encode(m).unwrap()).collect();
    for round in 0..5000 {
        let mut buf = if round % 2 == 0 {
            let n = rng.usize(0..64);
            (0..n).map(|_| rng.u8(..)).collect::<Vec<u8>>()
        } else {
            valid[rng.usize(..valid.len())].clone()
        };
        if !buf.is_empty() {
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(..buf.len());
                buf[i] = rng.u8(..);
            }
        }
        if let Ok(Some(n)) = check(&buf) {
            assert!(n <= buf.len());
            if let Ok(msg) = decode(&buf[..n])
                && !matches!(msg, ControlMessage::Unknown { .. })
            {
                assert_eq!(decode(&encode(&msg).unwrap()), Ok(msg));
            }
        }
    }
}

#[test]
fn a_claim_without_a_processor_is_malformed_and_optional_fields_default() {
    let frame = frame_of(&map(vec![
        ("k", Value::Text("claim".into())),
        ("r", Value::Integer(9.into())),
    ]));
    assert!(
        matches!(decode(&frame), Err(ProtoError::Invalid { .. })),
        "{:?}",
        decode(&frame)
    );
    let frame = frame_of(&map(vec![
        ("k", Value::Text("claim".into())),
        ("r", Value::Integer(9.into())),
        ("proc", Value::Text("0236e6a7".into())),
    ]));
    match decode(&frame) {
        Ok(ControlMessage::Claim(c)) => {
            assert_eq!(c.processor, "0236e6a7");
            assert_eq!((c.button_s, c.wait_ms, c.key), (None, 0, None));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_done_with_a_mac_of_the_wrong_length_is_refused() {
    let cloud = Value::Map(vec![
        (
            Value::Text("id".into()),
            Value::Array(vec![Value::Text("d".into()), Value::Integer(1.into())]),
        ),
        (Value::Text("res".into()), Value::Text("queued".into())),
    ]);
    let claimed = Value::Map(vec![
        (Value::Text("id".into()), Value::Text("0236e6a7".into())),
        (Value::Text("sn".into()), Value::Integer(37152423.into())),
        (Value::Text("mac".into()), Value::Bytes(vec![1, 2, 3])),
        (Value::Text("addr".into()), Value::Text("127.0.1.1".into())),
        (Value::Text("product".into()), Value::Text("p".into())),
        (
            Value::Text("uid".into()),
            Value::Text("000000000000".into()),
        ),
        (Value::Text("dir".into()), Value::Text("/d".into())),
        (Value::Text("files".into()), Value::Array(vec![])),
    ]);
    let frame = frame_of(&map(vec![
        ("k", Value::Text("done".into())),
        ("r", Value::Integer(6.into())),
        ("claimed", claimed),
        ("cloud", cloud),
    ]));
    assert!(
        matches!(decode(&frame), Err(ProtoError::Invalid { .. })),
        "{:?}",
        decode(&frame)
    );
}

#[test]
fn a_claim_naming_an_unknown_key_kind_does_not_decode() {
    // The key kind is typed on the wire: "dsa" is refused at decode, once,
    // not passed on as text for the daemon to judge.
    let claim = |key: &str| {
        frame_of(&map(vec![
            ("k", Value::Text("claim".into())),
            ("r", Value::Integer(6.into())),
            ("proc", Value::Text("0236e6a7".into())),
            ("key", Value::Text(key.into())),
        ]))
    };
    match decode(&claim("ec")) {
        Ok(ControlMessage::Claim(c)) => assert_eq!(c.key, Some(KeyKind::Ec)),
        other => panic!("{other:?}"),
    }
    assert!(decode(&claim("dsa")).is_err());
}
