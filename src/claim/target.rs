//! Which processor the integrator means, and where it is.
//!
//! `PROCESSOR` on the command line is any of: serial (decimal), the 8-hex
//! id of its host name, MAC address, host name, or IP address (DESIGN.md).
//! Discovery turns it into a [`Resolved`] processor with an address and
//! what its advertisement says about it; `--address` skips discovery and
//! keeps only what the argument itself says.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::ClaimError;
use crate::discovery::{Discovery, DiscoveryOptions};
use crate::processor::{Mac, ProcessorInfo, Serial};

/// What the integrator typed as `PROCESSOR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// All decimal digits: a serial; eight of them may also be an id.
    Serial(Serial),
    /// Eight hex digits (not all decimal).
    Id(String),
    Mac(Mac),
    Address(IpAddr),
    HostName(String),
}

impl Target {
    /// Reads `PROCESSOR`. Never fails: what is nothing else is a host name.
    pub fn parse(s: &str) -> Target {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Target::Address(ip);
        }
        if !s.is_empty()
            && s.len() <= 10
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(serial) = s.parse::<Serial>()
        {
            return Target::Serial(serial);
        }
        if s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Target::Id(s.to_ascii_lowercase());
        }
        if let Ok(mac) = s.parse::<Mac>() {
            return Target::Mac(mac);
        }
        Target::HostName(s.to_owned())
    }

    /// Whether the discovered processor `p` is the one meant.
    pub fn matches(&self, p: &ProcessorInfo) -> bool {
        match self {
            // Eight decimal digits are read both ways.
            Target::Serial(serial) => {
                p.serial == Some(*serial) || p.id() == Some(serial.0.to_string())
            }
            Target::Id(id) => p.id().as_deref() == Some(id.as_str()),
            Target::Mac(mac) => p.mac == Some(*mac),
            Target::Address(ip) => p.addresses.contains(ip),
            Target::HostName(name) => same_host(&p.host, name),
        }
    }

    /// The serial this names for sure, to check the processor against
    /// when there is no discovery (`--address`).
    /// What the name itself says: the serial (a serial, or an 8-hex id)
    /// or the MAC; `None` for a name that must be looked up (an address, a
    /// host name, an id that is not hex).
    pub fn typed_facts(&self) -> Option<(Option<Serial>, Option<Mac>)> {
        match self {
            Target::Serial(serial) => Some((Some(*serial), None)),
            Target::Id(id) => Serial::from_id(id).map(|serial| (Some(serial), None)),
            Target::Mac(mac) => Some((None, Some(*mac))),
            _ => None,
        }
    }

    fn expected_serial(&self) -> Option<Serial> {
        match self {
            Target::Serial(serial) => Some(*serial),
            Target::Id(id) => u32::from_str_radix(id, 16).ok().map(Serial),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Serial(s) => write!(f, "serial {}", s.0),
            Target::Id(id) => write!(f, "id {id}"),
            Target::Mac(mac) => write!(f, "MAC {mac}"),
            Target::Address(ip) => write!(f, "address {ip}"),
            Target::HostName(h) => write!(f, "host {h}"),
        }
    }
}

/// `Lutron-0236e6a7.local.`, `lutron-0236e6a7.local` and `Lutron-0236e6a7`
/// are one host.
fn same_host(advertised: &str, typed: &str) -> bool {
    let bare = |s: &str| {
        let s = s.trim_end_matches('.');
        let s = s.strip_suffix(".local").unwrap_or(s);
        s.to_ascii_lowercase()
    };
    bare(advertised) == bare(typed)
}

/// The processor to claim: where it is, and what we were told it is
/// before any authenticated channel existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub address: IpAddr,
    /// What the claim must find over the main port; `None` when nothing
    /// said it (an `--address` claim naming the processor by address).
    pub serial: Option<Serial>,
    pub mac: Option<Mac>,
    /// "RadioRA 3 Processor", or "processor" when not advertised.
    pub product: String,
    /// Where the facts came from, for messages: "discovery" or "the
    /// command line".
    pub source: &'static str,
}

impl Resolved {
    /// "RadioRA 3 Processor 0236e6a7 (MAC 02:4c:…) at 127.0.1.1".
    pub fn describe(&self) -> String {
        let mut s = self.product.clone();
        if let Some(serial) = self.serial {
            s.push(' ');
            s.push_str(&serial.id());
        }
        if let Some(mac) = self.mac {
            s.push_str(&format!(" (MAC {mac})"));
        }
        s.push_str(&format!(" at {}", self.address));
        s
    }

    /// Built from the command line alone: `--address IP` and `PROCESSOR`.
    pub fn from_address(address: IpAddr, target: &Target) -> Resolved {
        Resolved {
            address,
            serial: target.expected_serial(),
            mac: match target {
                Target::Mac(mac) => Some(*mac),
                _ => None,
            },
            product: "processor".into(),
            source: "the command line",
        }
    }

    /// What discovery said of `p`; `None` when it advertises no address.
    pub fn from_discovery(p: &ProcessorInfo) -> Option<Resolved> {
        // IPv4 first: processors are set up on IPv4 and the simulator
        // listens there; a link-local IPv6 address needs a scope.
        let address = p
            .addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| p.addresses.iter().next())?;
        Some(Resolved {
            address: *address,
            serial: p.serial,
            mac: p.mac,
            product: p.product(),
            source: "discovery",
        })
    }
}

/// Finds the processor `target` names, the one way every command does
/// (claim, status, takeover): on the interfaces `allow` lists, or when it
/// is empty on those discovery chooses by default
/// ([`crate::lan::choose_interfaces`]; on a private test network, its
/// loopback). Browsing on no interface at all would find nothing and say
/// nothing useful, which is what `status` by address once did.
///
/// # Errors
/// As [`discover`], and [`ClaimError::Lan`] when no interface fits.
pub async fn resolve(
    target: &Target,
    allow: &[String],
    timeout: Duration,
) -> Result<Resolved, ClaimError> {
    let all = crate::lan::interfaces()?;
    let interfaces = crate::lan::choose_interfaces(&all, allow)?;
    discover(target, interfaces, timeout).await
}

/// Browses on `interfaces` until `target` is found or `timeout` passes.
/// Use [`resolve`], which chooses the interfaces.
///
/// # Errors
/// [`ClaimError::NotFound`], [`ClaimError::NoAddress`], or a discovery failure.
pub async fn discover(
    target: &Target,
    interfaces: Vec<String>,
    timeout: Duration,
) -> Result<Resolved, ClaimError> {
    let mut discovery = Discovery::start(DiscoveryOptions {
        interfaces: interfaces.clone(),
        liveness: None,
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = discovery
            .inventory()
            .processors()
            .find(|p| target.matches(p))
        {
            return Resolved::from_discovery(p).ok_or_else(|| ClaimError::NoAddress {
                target: target.to_string(),
            });
        }
        match tokio::time::timeout_at(deadline, discovery.next()).await {
            Ok(event) => {
                event?;
            }
            Err(_elapsed) => {
                let searched = if interfaces.is_empty() {
                    "no interface".to_owned()
                } else {
                    interfaces.join(", ")
                };
                return Err(ClaimError::NotFound {
                    target: target.to_string(),
                    searched,
                    waited: timeout,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{ServiceRecord, TxtEntry};

    fn processor() -> ProcessorInfo {
        ProcessorInfo::from_record(&ServiceRecord {
            fullname: "Lutron Status._lutron._tcp.local.".into(),
            service_type: "_lutron._tcp.local.".into(),
            host: "Lutron-0236e6a7.local.".into(),
            port: 22,
            addresses: ["127.0.1.1".parse().unwrap()].into_iter().collect(),
            txt: vec![
                TxtEntry::new("MACADDR", b"02:4c:02:36:e6:a7"),
                TxtEntry::new("SERNUM", b"37152423"),
                TxtEntry::new("SYSTYPE", b"RadioRa3Processor"),
            ],
        })
    }

    #[test]
    fn every_form_of_processor_names_the_same_processor() {
        let p = processor();
        assert_eq!(p.id().as_deref(), Some("0236e6a7"));
        for typed in [
            "37152423",
            "0236e6a7",
            "0236E6A7",
            "02:4c:02:36:e6:a7",
            "024c0236e6a7",
            "127.0.1.1",
            "Lutron-0236e6a7.local.",
            "lutron-0236e6a7",
        ] {
            assert!(Target::parse(typed).matches(&p), "{typed}");
        }
        for other in [
            "37152424",
            "0236e6a8",
            "02:4c:02:36:e6:a8",
            "127.0.1.2",
            "lutron-1",
        ] {
            assert!(!Target::parse(other).matches(&p), "{other}");
        }
    }

    #[test]
    fn eight_decimal_digits_are_also_read_as_an_id() {
        let mut p = processor();
        p.serial = Some(Serial(0x1234_5678));
        assert!(Target::parse("12345678").matches(&p));
    }

    #[test]
    fn an_address_claim_expects_what_the_argument_names() {
        let ip: IpAddr = "127.0.1.1".parse().unwrap();
        let by_id = Resolved::from_address(ip, &Target::parse("0236e6a7"));
        assert_eq!(by_id.serial, Some(Serial(0x0236_e6a7)));
        let by_mac = Resolved::from_address(ip, &Target::parse("02:4c:02:36:e6:a7"));
        assert_eq!(
            by_mac.mac.map(|m| m.to_string()).as_deref(),
            Some("02:4c:02:36:e6:a7")
        );
        let by_ip = Resolved::from_address(ip, &Target::parse("127.0.1.1"));
        assert_eq!((by_ip.serial, by_ip.mac), (None, None));
    }
}
