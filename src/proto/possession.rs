//! The bytes a `claimed` event's proof of possession signs.
//!
//! The claim proof (the certificate the processor signed after its button
//! was pressed) can be copied: from an export, a backup, or a TLS 1.2
//! handshake seen on the LAN. Its key cannot, short of the machine that
//! paired. So the sender signs, with that key, what makes this claim this
//! claim: the event id (no replay under another id), the account the cloud
//! will make homeowner (no reuse for another account), the processor's
//! serial and the certificate itself. proto/relay.cddl defines the same
//! bytes (`claim-possession`); the vector is pinned below.
//!
//! The signature scheme follows the certificate's key: RSA PKCS#1 v1.5
//! with SHA-256 for RSA keys, ECDSA P-256 with SHA-256 (ASN.1 DER) for
//! P-256 keys — what handoff's claim keys are.

use ciborium::Value;

use super::relay::EventId;
use crate::place::AccountId;
use crate::processor::Serial;

/// The first element: what the signature is for, and its version.
pub const CONTEXT: &str = "handoff claim possession v1";

/// `[CONTEXT, [daemon, seq], account, serial, certificate]` as
/// deterministic CBOR (RFC 8949 §4.2.1: shortest integers, definite
/// lengths). `account` is normalised as the cloud names accounts (trimmed,
/// lowercase).
pub fn signed_bytes(id: &EventId, account: &str, serial: Serial, certificate: &[u8]) -> Vec<u8> {
    let item = Value::Array(vec![
        Value::Text(CONTEXT.into()),
        Value::Array(vec![
            Value::Text(id.daemon.clone()),
            Value::Integer(id.seq.into()),
        ]),
        Value::Text(AccountId::new(account).as_str().to_owned()),
        Value::Integer(serial.0.into()),
        Value::Bytes(certificate.to_vec()),
    ]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = ciborium::into_writer(&item, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of proto/relay.cddl's `claim-possession`, byte for byte.
    #[test]
    fn signed_bytes_are_the_vector_of_the_cddl() {
        let id = EventId {
            daemon: "d-7f3a".into(),
            seq: 13,
        };
        let bytes = signed_bytes(&id, " Owner@Example.com", Serial(37152423), &[0x30, 0x82]);
        assert_eq!(
            crate::hex::encode(&bytes),
            "85781b68616e646f666620636c61696d20706f7373657373696f6e2076318266642d37\
             6633610d716f776e6572406578616d706c652e636f6d1a0236e6a7423082"
        );
        // Each part changes the bytes.
        let other_id = EventId {
            seq: 14,
            ..id.clone()
        };
        assert_ne!(
            signed_bytes(
                &other_id,
                "owner@example.com",
                Serial(37152423),
                &[0x30, 0x82]
            ),
            bytes
        );
        assert_ne!(
            signed_bytes(&id, "other@example.com", Serial(37152423), &[0x30, 0x82]),
            bytes
        );
        assert_ne!(
            signed_bytes(&id, "owner@example.com", Serial(1), &[0x30, 0x82]),
            bytes
        );
        assert_ne!(
            signed_bytes(&id, "owner@example.com", Serial(37152423), &[0x30]),
            bytes
        );
    }
}
