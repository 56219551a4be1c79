//! serde adapters: how the cloud's types are written in relay maps.

/// Byte strings as CBOR byte strings (serde's default for `Vec<u8>` is an
/// array of integers).
pub(super) mod byte_string {
    use serde::de::{Deserializer, Error, Visitor};
    use serde::ser::Serializer;
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// An optional byte string, left out when absent.
pub(super) mod opt_byte_string {
    use serde::de::Deserializer;
    use serde::ser::Serializer;

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`
    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        super::byte_string::deserialize(d).map(Some)
    }
}

/// A MAC address as a 6-byte byte string.
pub(super) mod mac_bytes {
    use serde::de::{Deserializer, Error};
    use serde::ser::Serializer;

    use crate::processor::Mac;

    pub fn serialize<S: Serializer>(mac: &Mac, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&mac.octets())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let bytes = super::byte_string::deserialize(d)?;
        let octets: [u8; 6] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| D::Error::custom(format!("a MAC is 6 bytes, not {}", bytes.len())))?;
        Ok(Mac(octets))
    }
}

pub(super) mod opt_mac {
    use serde::de::Deserializer;
    use serde::ser::Serializer;

    use crate::processor::Mac;

    pub fn serialize<S: Serializer>(mac: &Option<Mac>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(mac) => super::mac_bytes::serialize(mac, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mac>, D::Error> {
        super::mac_bytes::deserialize(d).map(Some)
    }
}

/// Durations as the text the CDDL lists.
pub(super) mod duration_text {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde::ser::Serializer;

    use crate::place::AccessDuration;

    pub fn serialize<S: Serializer>(d: &AccessDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AccessDuration, D::Error> {
        let text = String::deserialize(d)?;
        AccessDuration::from_code(&text)
            .ok_or_else(|| D::Error::custom(format!("unknown duration \"{text}\"")))
    }
}

/// Status as `green`, `yellow` or `grey`.
pub(super) mod status_text {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde::ser::Serializer;

    use crate::place::Status;

    pub fn serialize<S: Serializer>(st: &Status, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(st)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        match String::deserialize(d)?.as_str() {
            "green" => Ok(Status::Green),
            "yellow" => Ok(Status::Yellow),
            "grey" => Ok(Status::Grey),
            other => Err(D::Error::custom(format!("unknown status \"{other}\""))),
        }
    }
}

/// An optional duration, as [`duration_text`] (with `default` and
/// `skip_serializing_if`).
pub(super) mod opt_access_duration {
    use serde::de::Deserializer;
    use serde::ser::Serializer;

    use crate::place::AccessDuration;

    pub fn serialize<S: Serializer>(d: &Option<AccessDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<AccessDuration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

/// An optional status, as [`status_text`].
pub(super) mod opt_status_text {
    use serde::de::Deserializer;
    use serde::ser::Serializer;

    use crate::place::Status;

    pub fn serialize<S: Serializer>(st: &Option<Status>, s: S) -> Result<S::Ok, S::Error> {
        match st {
            Some(st) => super::status_text::serialize(st, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Status>, D::Error> {
        super::status_text::deserialize(d).map(Some)
    }
}
