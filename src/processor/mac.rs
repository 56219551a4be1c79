use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit MAC address.
///
/// Integrators copy MAC addresses from labels, app screens and support
/// emails in every form, so parsing accepts `aa:bb:cc:dd:ee:ff`,
/// `AA-BB-CC-DD-EE-FF`, `aabbccddeeff` and the `aabb.ccdd.eeff` that
/// Cisco switches print (an integrator often finds a processor's MAC in a
/// switch's address table). It always prints in the lowercase
/// colon form that `discover --json` promises.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// The message names the common forms only: it travels in discovery
// warnings, whose wire vectors (proto/vectors/control) pin its text.
#[error(
    "'{input}' is not a MAC address (expected aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabbccddeeff)"
)]
pub struct MacParseError {
    input: String,
}

impl Mac {
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The 12 lowercase hex digits without separators, as LEAP's
    /// `DeviceUID` carries them.
    pub fn bare_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl FromStr for Mac {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            input: s.chars().take(64).collect(),
        };
        let bytes = s.trim().as_bytes();
        let mut out = [0u8; 6];
        match bytes.len() {
            12 => {
                for (i, pair) in bytes.chunks(2).enumerate() {
                    out[i] = crate::hex::byte(pair).ok_or_else(err)?;
                }
            }
            14 => {
                // Cisco: three dot-separated groups of four hex digits.
                if bytes[4] != b'.' || bytes[9] != b'.' {
                    return Err(err());
                }
                let digits: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'.').collect();
                if digits.len() != 12 {
                    return Err(err());
                }
                for (i, pair) in digits.chunks(2).enumerate() {
                    out[i] = crate::hex::byte(pair).ok_or_else(err)?;
                }
            }
            17 => {
                let sep = bytes[2];
                if sep != b':' && sep != b'-' {
                    return Err(err());
                }
                for (i, group) in bytes.split(|&b| b == sep).enumerate() {
                    if i >= 6 {
                        return Err(err());
                    }
                    out[i] = crate::hex::byte(group).ok_or_else(err)?;
                }
            }
            _ => return Err(err()),
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: Mac = Mac([0xa0, 0xf6, 0xfd, 0x12, 0x34, 0x56]);

    #[test]
    fn parses_colon_dash_and_bare_forms() {
        for form in [
            "a0:f6:fd:12:34:56",
            "A0:F6:FD:12:34:56",
            "A0-F6-FD-12-34-56",
            "a0-f6-fd-12-34-56",
            "a0f6fd123456",
            "A0F6FD123456",
            "a0f6.fd12.3456",
            "A0F6.FD12.3456",
            " a0:f6:fd:12:34:56 ",
        ] {
            assert_eq!(form.parse::<Mac>(), Ok(WANT), "{form}");
        }
    }

    #[test]
    fn parses_the_form_cisco_switches_print() {
        let mac: Mac = "024c.01fb.c368".parse().unwrap();
        assert_eq!(mac.to_string(), "02:4c:01:fb:c3:68");
    }

    #[test]
    fn prints_lowercase_colon_form() {
        let mac: Mac = "A0-F6-FD-12-34-56".parse().unwrap();
        assert_eq!(mac.to_string(), "a0:f6:fd:12:34:56");
        assert_eq!(mac.bare_hex(), "a0f6fd123456");
    }

    #[test]
    fn rejects_malformed_macs() {
        for bad in [
            "",
            "a0:f6:fd:12:34",
            "a0:f6:fd:12:34:56:78",
            "a0:f6-fd:12:34:56",
            "a0.f6.fd.12.34.56",
            "g0:f6:fd:12:34:56",
            "a0f6fd12345",
            "a0f6fd1234567",
            "a0::f6:fd:12:34:5",
            "+0:f6:fd:12:34:56",
            "é0:f6:fd:12:34:5",
            "a0f6.fd12.345",
            "a0f6.fd12.34567",
            "a0f.6fd12.3456",
            "a0f6:fd12:3456",
            "a0f6.fd12.34.6",
            "a0f6..d12.3456",
            "a0f6.fd12.345g",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let json = serde_json::to_string(&WANT).unwrap();
        assert_eq!(json, "\"a0:f6:fd:12:34:56\"");
        assert_eq!(serde_json::from_str::<Mac>(&json).unwrap(), WANT);
    }
}
