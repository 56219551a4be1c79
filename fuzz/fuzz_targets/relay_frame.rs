//! The CBOR relay frame codec (`proto/relay.cddl`).
//!
//! Input: bytes as they arrive on a relay connection. They are cut into
//! frames with `check` as the reader does, and each frame is decoded;
//! the whole input is also decoded as one frame. Checks: no panic; `check`
//! never claims more than is buffered and only an oversized prefix is
//! fatal; the error frame answering any decode error can be sent; and
//! whatever decodes re-encodes (unless it is of a kind this build does not
//! know, which is decoded but never sent) to a frame that decodes to the
//! same message and re-encodes to the same bytes. Byte equality with the
//! input is not expected: unknown keys are dropped and the input need not
//! be in deterministic encoding.
#![no_main]

use handoff::proto::{self, ErrorFrame, EventKind, ProtoError, RelayMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match proto::check(buf) {
            Ok(Some(n)) => {
                assert!(
                    n >= proto::HEADER_LEN && n <= buf.len(),
                    "check claimed {n}"
                );
                let whole = &buf[..n];
                assert!(
                    !matches!(
                        proto::decode(whole),
                        Err(ProtoError::Truncated { .. } | ProtoError::Oversized { .. })
                    ),
                    "check and decode disagree on where a frame ends"
                );
                frame(whole);
                buf = &buf[n..];
            }
            Ok(None) => break,
            Err(e) => {
                assert!(e.is_fatal(), "check failed with a non-fatal {e:?}");
                assert!(matches!(
                    proto::decode(buf),
                    Err(ProtoError::Oversized { .. })
                ));
                break;
            }
        }
    }
    frame(data);
});

fn frame(bytes: &[u8]) {
    match proto::decode(bytes) {
        Ok(msg) => round_trip(&msg),
        Err(e) => {
            let answer = RelayMessage::Error(ErrorFrame::for_decode_error(&e));
            let sent = proto::encode(&answer).expect("the error frame answering it encodes");
            assert_eq!(proto::decode(&sent), Ok(answer));
        }
    }
}

fn round_trip(msg: &RelayMessage) {
    let unknown = match msg {
        RelayMessage::Unknown { .. } => true,
        RelayMessage::Event(e) => matches!(e.kind, EventKind::Unknown { .. }),
        _ => false,
    };
    match proto::encode(msg) {
        Ok(bytes) => {
            assert!(!unknown, "an unknown kind was encoded: {msg:?}");
            assert_eq!(proto::check(&bytes), Ok(Some(bytes.len())));
            let again = proto::decode(&bytes).expect("our own frame decodes");
            assert_eq!(&again, msg, "decode(encode(m)) == m");
            assert_eq!(proto::encode(&again).expect("encodes again"), bytes);
        }
        Err(e) => assert!(unknown, "a decoded {msg:?} does not encode: {e}"),
    }
}
