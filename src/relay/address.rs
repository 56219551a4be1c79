//! Where the cloud is: one `host:port`, or several nodes of one Place
//! service to fail over between (`--cloud A,B`, or `[cloud] address` as a
//! list). The same parser checks the flag and the configuration, so a typo
//! is refused before anything is sent, with the same words either way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `host:port` pair; the host is a name, an IPv4 address or a bracketed
/// IPv6 address (`[2001:db8::1]:4433`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudAddress {
    pub host: String,
    pub port: u16,
}

impl FromStr for CloudAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{}' is not host:port ({why})", s.escape_debug());
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| bad("unclosed '['"))?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            inner
        } else {
            if host.contains(':') {
                return Err(bad("write an IPv6 address in brackets: [2001:db8::1]:4433"));
            }
            host
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'));
        if !name_ok {
            return Err(bad("not a host name or address"));
        }
        Ok(CloudAddress {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for CloudAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One or more cloud addresses, in the order to try them. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudAddresses(Vec<CloudAddress>);

impl CloudAddresses {
    pub fn as_slice(&self) -> &[CloudAddress] {
        &self.0
    }
}

impl From<CloudAddress> for CloudAddresses {
    fn from(one: CloudAddress) -> Self {
        CloudAddresses(vec![one])
    }
}

/// `A` or `A,B,…` (spaces around commas allowed); every entry is checked,
/// and a repeated one is refused (it would only slow a failover).
impl FromStr for CloudAddresses {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let list = s
            .split(',')
            .map(|one| one.trim().parse())
            .collect::<Result<Vec<CloudAddress>, _>>()?;
        CloudAddresses::try_from(list)
    }
}

impl TryFrom<Vec<CloudAddress>> for CloudAddresses {
    type Error = String;

    fn try_from(list: Vec<CloudAddress>) -> Result<Self, String> {
        if list.is_empty() {
            return Err("no cloud address: give host:port, or several as A,B".into());
        }
        for (i, a) in list.iter().enumerate() {
            if list[..i].contains(a) {
                return Err(format!("the cloud address {a} is listed twice"));
            }
        }
        Ok(CloudAddresses(list))
    }
}

impl fmt::Display for CloudAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// One address as a string, several as a list (what the file had).
impl Serialize for CloudAddresses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.collect_str(one),
            many => s.collect_seq(many.iter().map(ToString::to_string)),
        }
    }
}

/// `address = "A"`, `address = "A,B"` or `address = ["A", "B"]`.
impl<'de> Deserialize<'de> for CloudAddresses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let parsed = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"host:port\" or a list of them, like [\"a:4433\", \"b:4433\"]",
            )
        })? {
            OneOrMany::One(s) => s.parse(),
            OneOrMany::Many(list) => list
                .iter()
                .map(|s| s.trim().parse())
                .collect::<Result<Vec<_>, _>>()
                .and_then(CloudAddresses::try_from),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_its_order_and_prints_as_it_parses() {
        let list: CloudAddresses = "a.example:4433, [::1]:4434,192.0.2.7:443".parse().unwrap();
        let shown: Vec<String> = list.as_slice().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a.example:4433", "[::1]:4434", "192.0.2.7:443"]);
        assert_eq!(list.to_string(), "a.example:4433,[::1]:4434,192.0.2.7:443");
        assert_eq!(list.to_string().parse::<CloudAddresses>().unwrap(), list);
    }

    #[test]
    fn empty_entries_and_repeats_are_refused() {
        for bad in ["", "a:1,", ",a:1", "a:1,,b:2"] {
            let e = bad.parse::<CloudAddresses>().unwrap_err();
            assert!(e.contains("host:port"), "{bad:?}: {e}");
        }
        let e = "a:1,b:2,a:1".parse::<CloudAddresses>().unwrap_err();
        assert!(e.contains("a:1 is listed twice"), "{e}");
    }
}
