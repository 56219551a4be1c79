//! The JSON line codec of the pairing and main ports, and the typed
//! messages read from its objects.
//!
//! Input: bytes as they arrive on either port, cut into lines with the real
//! 256 KiB cap (and read as messages), then again with a 64-byte cap (framing
//! only), so that oversized lines are reached too. Checks: no panic; `check` never claims more than is
//! buffered and every line it delimits ends in `\n`; only an oversized
//! line is fatal; a pairing frame re-encodes to a line that decodes to the
//! same frame; a main-port communiqué re-encodes to a line that reads back
//! as a communiqué with the same type and header (its body may hold floats,
//! which serde_json does not promise to re-read bit for bit).
#![no_main]

use handoff::leap::LineCodec;
use handoff::leap::message::{Communique, PairingFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The real cap, with the messages; then a 64-byte cap, framing only,
    // so that oversized lines are reached too.
    split(&LineCodec::new(), data, true);
    split(&LineCodec::with_max_line(64), data, false);
});

fn split(codec: &LineCodec, data: &[u8], read_messages: bool) {
    let mut buf = data;
    loop {
        match codec.check(buf) {
            Ok(Some(n)) => {
                assert!(n <= buf.len() && buf[n - 1] == b'\n', "check claimed {n}");
                line(codec, &buf[..n], read_messages);
                buf = &buf[n..];
            }
            Ok(None) => {
                // What is left has no line end yet: decode it as a caller
                // at end of stream would.
                line(codec, buf, read_messages);
                break;
            }
            Err(e) => {
                assert!(e.is_fatal(), "check failed with a non-fatal {e:?}");
                let _ = e.to_string();
                break;
            }
        }
    }
}

fn line(codec: &LineCodec, bytes: &[u8], read_messages: bool) {
    match codec.decode(bytes) {
        Ok(Some(object)) if read_messages => messages(object),
        Ok(_) => {}
        Err(e) => {
            if e.is_fatal() {
                assert!(
                    bytes.len() > codec.max_line(),
                    "fatal {e:?} on a short line"
                );
            }
            let _ = e.to_string();
        }
    }
}

/// A codec without a cap, to re-read what was re-encoded.
const UNCAPPED: LineCodec = LineCodec::with_max_line(usize::MAX - 2);

fn reencode<T: serde::Serialize>(value: &T) -> handoff::leap::JsonObject {
    let mut out = Vec::new();
    UNCAPPED
        .encode(value, &mut out)
        .expect("a decoded message encodes");
    assert_eq!(UNCAPPED.check(&out), Ok(Some(out.len())), "one whole line");
    UNCAPPED
        .decode(&out)
        .expect("our own line decodes")
        .expect("our own line is not blank")
}

fn messages(object: handoff::leap::JsonObject) {
    match PairingFrame::from_object(object.clone()) {
        Ok(frame) => {
            let _ = (
                frame.describe(),
                frame.client_tag(),
                frame.is_physical_access(),
            );
            let again = PairingFrame::from_object(reencode(&frame)).expect("re-reads");
            assert_eq!(again, frame, "a pairing frame survives a round trip");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match Communique::from_object(object) {
        Ok(c) => {
            let _ = (c.status(), c.url(), c.client_tag(), c.leap_version());
            let _ = c.communique_type.response();
            let again = Communique::from_object(reencode(&c)).expect("re-reads");
            assert_eq!(again.communique_type, c.communique_type);
            assert_eq!(again.header, c.header);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
