//! The test vectors of `proto/vectors/processor/`: each real frame of
//! processor-protocol.md, one line per file. Every file is decoded with the
//! codec and the message types, re-encoded to the same JSON value, and
//! compared with what handoff's own constructors write.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::codec::{JsonObject, LineCodec};
use super::message::{Communique, CsrParameters, PairingFrame, StatusCode};

enum Port {
    Pairing,
    Main,
}

struct Vector {
    file: &'static str,
    port: Port,
    /// What handoff's constructor writes for this frame.
    ours: Value,
    /// Whether ours must match the file byte for byte, or (where the
    /// reference's examples disagree on header order) as a JSON value.
    byte_exact: bool,
}

fn vectors() -> Vec<Vector> {
    let device_request = Communique::read_request("<echo>", "/device");
    vec![
        Vector {
            file: "pairing-physical-access.json",
            port: Port::Pairing,
            ours: to_line_value(&PairingFrame::physical_access()),
            byte_exact: true,
        },
        Vector {
            file: "pairing-csr-request.json",
            port: Port::Pairing,
            ours: to_line_value(&PairingFrame::csr_request(
                "get-cert",
                CsrParameters::admin("-----BEGIN CERTIFICATE REQUEST-----…", "<name>"),
            )),
            byte_exact: true,
        },
        Vector {
            file: "pairing-signing-result.json",
            port: Port::Pairing,
            ours: to_line_value(&PairingFrame::signing_result(
                Some("get-cert".into()),
                "<PEM>",
                "<PEM>",
            )),
            byte_exact: true,
        },
        Vector {
            file: "pairing-unauthorized.json",
            port: Port::Pairing,
            ours: to_line_value(&PairingFrame::unauthorized(Some("get-cert".into()))),
            byte_exact: true,
        },
        Vector {
            file: "main-read-request.json",
            port: Port::Main,
            ours: to_line_value(&Communique::read_request("<uuid>", "/device")),
            byte_exact: true,
        },
        Vector {
            file: "main-read-response-device.json",
            port: Port::Main,
            ours: to_line_value(&Communique::response_to(
                &device_request,
                StatusCode::OK,
                Some("MultipleDeviceDefinition".into()),
                Some(json!({"Devices": []})),
            )),
            byte_exact: true,
        },
        Vector {
            file: "main-ping-response.json",
            port: Port::Main,
            ours: to_line_value(&Communique::ping_response(
                &Communique::ping_request(None),
                1.124,
            )),
            byte_exact: false,
        },
    ]
}

/// Our frame as a line, kept as a JSON string value so that both the bytes
/// and the value can be compared.
fn to_line_value<T: serde::Serialize>(frame: &T) -> Value {
    let mut line = Vec::new();
    LineCodec::new().encode(frame, &mut line).unwrap();
    Value::String(String::from_utf8(line).unwrap())
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/vectors/processor")
}

fn decode_one_line(bytes: &[u8]) -> JsonObject {
    let codec = LineCodec::new();
    let len = codec.check(bytes).unwrap().expect("a whole line");
    assert_eq!(len, bytes.len(), "exactly one line");
    codec.decode(bytes).unwrap().expect("not blank")
}

#[test]
fn every_vector_file_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = vectors().iter().map(|v| v.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn vectors_decode_and_reencode_to_the_same_value() {
    let codec = LineCodec::new();
    for v in vectors() {
        let bytes = std::fs::read(dir().join(v.file)).unwrap();
        let object = decode_one_line(&bytes);
        let original = Value::Object(object.clone());
        let mut line = Vec::new();
        match v.port {
            Port::Pairing => {
                let frame = PairingFrame::from_object(object).unwrap();
                codec.encode(&frame, &mut line).unwrap();
            }
            Port::Main => {
                let communique = Communique::from_object(object).unwrap();
                codec.encode(&communique, &mut line).unwrap();
            }
        }
        assert_eq!(
            Value::Object(decode_one_line(&line)),
            original,
            "{}",
            v.file
        );
    }
}

#[test]
fn our_constructors_write_the_vectors() {
    for v in vectors() {
        let bytes = std::fs::read(dir().join(v.file)).unwrap();
        let Value::String(ours) = &v.ours else {
            unreachable!()
        };
        let file_line = std::str::from_utf8(&bytes).unwrap().trim_end();
        let our_line = ours.strip_suffix("\r\n").unwrap();
        if v.byte_exact {
            assert_eq!(our_line, file_line, "{}", v.file);
        } else {
            assert_eq!(
                Value::Object(decode_one_line(ours.as_bytes())),
                Value::Object(decode_one_line(&bytes)),
                "{}",
                v.file
            );
        }
    }
}
