//! The CBOR control frame codec (`proto/control.cddl`): what the daemon
//! reads from any local user allowed on its socket.
//!
//! Seeds: proto/vectors/control/, framed (house-* and inspect included).
//!
//! Checks: no panic; `check` never claims more than is buffered and only
//! an oversized prefix is fatal; the error frame answering any decode
//! error can be sent; whatever decodes (but an unknown kind) re-encodes to
//! a frame that decodes to the same message and re-encodes to the same
//! bytes.
#![no_main]

use handoff::proto::control::{self, ControlError, ControlMessage};
use handoff::proto::{self, ProtoError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match proto::check(buf) {
            Ok(Some(n)) => {
                assert!(n >= proto::HEADER_LEN && n <= buf.len(), "check claimed {n}");
                frame(&buf[..n]);
                buf = &buf[n..];
            }
            Ok(None) => break,
            Err(e) => {
                assert!(e.is_fatal(), "check failed with a non-fatal {e:?}");
                assert!(matches!(control::decode(buf), Err(ProtoError::Oversized { .. })));
                break;
            }
        }
    }
    frame(data);
});

fn frame(bytes: &[u8]) {
    match control::decode(bytes) {
        Ok(ControlMessage::Unknown { .. }) => {}
        Ok(msg) => {
            let sent = control::encode(&msg).expect("a decoded message encodes");
            let again = control::decode(&sent).expect("what we send decodes");
            assert_eq!(again, msg);
            assert_eq!(control::encode(&again).expect("encodes"), sent);
        }
        Err(e) => {
            let answer = ControlMessage::Error(ControlError::for_decode_error(&e));
            let sent = control::encode(&answer).expect("the error frame answering it encodes");
            assert_eq!(control::decode(&sent), Ok(answer));
        }
    }
}
