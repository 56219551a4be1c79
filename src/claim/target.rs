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

    /// The processors among `known` whose id, serial or MAC is one or two
    /// keystrokes from what was typed, in the form that was close (closest
    /// first, each once), for a "did you mean" hint: ids and MACs are
    /// copied by hand from labels. Addresses get no hint: a neighbour's
    /// address is another processor, not a typo.
    pub fn nearest<'a>(&self, known: impl IntoIterator<Item = &'a ProcessorInfo>) -> Vec<String> {
        let typed = self.typed_forms();
        let mut found: Vec<(usize, String)> = Vec::new();
        for p in known {
            let forms = [
                p.id(),
                p.serial.map(|s| s.0.to_string()),
                p.mac.map(|m| m.bare_hex()),
            ];
            let best = forms
                .iter()
                .enumerate()
                .filter_map(|(i, form)| Some((i, form.as_ref()?)))
                .flat_map(|(i, form)| typed.iter().map(move |t| (edit_distance(t, form), i)))
                .filter(|(d, _)| (1..=2).contains(d))
                .min();
            if let Some((distance, i)) = best {
                let shown = match i {
                    2 => p.mac.map(|m| m.to_string()),
                    _ => forms[i].clone(),
                };
                if let Some(shown) = shown
                    && !found.iter().any(|(_, s)| *s == shown)
                {
                    found.push((distance, shown));
                }
            }
        }
        found.sort();
        found.into_iter().map(|(_, s)| s).collect()
    }

    /// What was typed, in the lowercase forms [`Target::nearest`] compares.
    fn typed_forms(&self) -> Vec<String> {
        match self {
            Target::Serial(serial) => vec![serial.0.to_string(), format!("{:08}", serial.0)],
            Target::Id(id) => vec![id.clone()],
            Target::Mac(mac) => vec![mac.bare_hex()],
            Target::Address(_) => Vec::new(),
            Target::HostName(name) => {
                let bare = name.trim_end_matches('.').to_ascii_lowercase();
                let bare = bare.strip_suffix(".local").unwrap_or(&bare);
                let bare = bare.strip_prefix("lutron-").unwrap_or(bare).to_owned();
                let digits: String = bare.chars().filter(|c| !":-.".contains(*c)).collect();
                vec![bare, digits]
            }
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

/// Levenshtein distance: insertions, deletions and substitutions (ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
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
    /// The model and firmware discovery advertised, to report to the
    /// cloud with the claim; `None` when not advertised.
    pub model: Option<String>,
    pub firmware: Option<String>,
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
            model: None,
            firmware: None,
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
            model: p.system_type.as_ref().map(|_| p.product()),
            firmware: p.firmware.clone(),
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
/// [`ClaimError::NotFound`] (or [`ClaimError::NotFoundNear`] when a
/// processor that answered has a nearly equal id, serial or MAC),
/// [`ClaimError::NoAddress`], or a discovery failure.
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
                let near = target.nearest(discovery.inventory().processors());
                return Err(if near.is_empty() {
                    ClaimError::NotFound {
                        target: target.to_string(),
                        searched,
                        waited: timeout,
                    }
                } else {
                    ClaimError::NotFoundNear {
                        target: target.to_string(),
                        searched,
                        waited: timeout,
                        near: near.join(" or "),
                    }
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
    fn a_typo_in_an_id_serial_or_mac_suggests_the_processor_meant() {
        let p = processor();
        let mut other = processor();
        other.serial = Some(Serial(0x00f7_469e));
        other.mac = "02:4c:00:f7:46:9e".parse().ok();
        let known = [p, other];
        let hint = |typed: &str| Target::parse(typed).nearest(&known);
        // One digit wrong, one swapped pair, one missing, one extra.
        assert_eq!(hint("00f7469f"), ["00f7469e"]);
        assert_eq!(hint("0236e67a"), ["0236e6a7"]);
        assert_eq!(hint("0236e6a"), ["0236e6a7"]);
        assert_eq!(hint("37152433"), ["37152423"]);
        assert_eq!(hint("02:4c:00:f7:46:9f"), ["02:4c:00:f7:46:9e"]);
        assert_eq!(hint("024c.00f7.469f"), ["02:4c:00:f7:46:9e"]);
        assert_eq!(hint("lutron-00f7469f"), ["00f7469e"]);
        // Too far from every known one, or an address: no guess.
        assert!(hint("12345678").is_empty());
        assert!(hint("deadbeef").is_empty());
        assert!(hint("127.0.1.2").is_empty());
        assert!(hint("02:4c:00:00:00:00").is_empty());
    }

    #[test]
    fn edit_distance_counts_keystrokes() {
        assert_eq!(edit_distance("00f7469e", "00f7469e"), 0);
        assert_eq!(edit_distance("00f7469e", "00f7469f"), 1);
        assert_eq!(edit_distance("00f7469e", "00f746e9"), 2);
        assert_eq!(edit_distance("00f7469e", "0f7469e"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
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
