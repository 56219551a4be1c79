//! Asking one host directly, for networks where multicast does not pass
//! (VLANs, mDNS repeaters, guest isolation).
//!
//! This is a "legacy unicast" DNS-SD query (RFC 6762 §6.7): sent from an
//! ephemeral port to the host's port 5353, which obliges the responder to
//! answer by unicast to that port, echoing the query id.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, QCLASS, QTYPE, Question, ResourceRecord, TYPE};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{DiscoveryError, SERVICE_TYPES};
use crate::processor::{ServiceRecord, TxtEntry};

/// Largest response accepted: far above the 9 KB that jumbo-frame LANs
/// produce, so no real answer is cut.
const MAX_PACKET: usize = 65_535;

/// How long to wait for further packets once a first answer came.
const SETTLE: Duration = Duration::from_millis(250);

/// How often an unanswered query is sent again.
const RESEND: Duration = Duration::from_secs(1);

/// What the host said so far, by record.
#[derive(Default, Debug)]
pub(super) struct Answers {
    /// Service type → instance full names.
    ptr: BTreeMap<String, BTreeSet<String>>,
    /// Instance → (target host, port).
    srv: BTreeMap<String, (String, u16)>,
    txt: BTreeMap<String, Vec<TxtEntry>>,
    /// Host name → addresses.
    addr: BTreeMap<String, BTreeSet<IpAddr>>,
    /// Whether any packet parsed.
    heard: bool,
    /// Whether one came from the queried address itself (see
    /// [`Answers::records`]).
    from_host: bool,
}

/// Absolute, lowercase-insensitive key for a DNS name: with the final dot,
/// as mdns-sd writes names.
fn fqdn(name: &Name<'_>) -> String {
    let mut s = name.to_string();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Answers {
    pub(super) fn absorb(&mut self, rr: &ResourceRecord<'_>) {
        let name = fqdn(&rr.name);
        match &rr.rdata {
            RData::PTR(ptr) => {
                if let Some(ty) = SERVICE_TYPES.iter().find(|t| same_name(t, &name)) {
                    self.ptr
                        .entry(ty.to_string())
                        .or_default()
                        .insert(fqdn(&ptr.0));
                }
            }
            RData::SRV(srv) => {
                self.srv.insert(name, (fqdn(&srv.target), srv.port));
            }
            RData::TXT(txt) => {
                let entries = txt
                    .iter_raw()
                    .map(|(k, v)| TxtEntry {
                        key: String::from_utf8_lossy(k).into_owned(),
                        value: v.map(<[u8]>::to_vec),
                    })
                    .collect();
                self.txt.insert(name, entries);
            }
            RData::A(a) => {
                self.addr
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .insert(IpAddr::V4(Ipv4Addr::from(a.address)));
            }
            RData::AAAA(a) => {
                self.addr
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .insert(IpAddr::V6(Ipv6Addr::from(a.address)));
            }
            _ => {}
        }
    }

    /// Takes in one response packet; false when it does not parse or
    /// answers another query than `id` (any id when `None`).
    pub(super) fn absorb_packet(&mut self, bytes: &[u8], id: Option<u16>) -> bool {
        let Ok(packet) = Packet::parse(bytes) else {
            return false;
        };
        if id.is_some_and(|id| packet.id() != id) {
            return false;
        }
        self.heard = true;
        for rr in packet.answers.iter().chain(&packet.additional_records) {
            self.absorb(rr);
        }
        true
    }

    fn instances(&self) -> impl Iterator<Item = (&String, &String)> {
        self.ptr
            .iter()
            .flat_map(|(ty, names)| names.iter().map(move |n| (ty, n)))
    }

    /// The questions still open: SRV/TXT of each instance, A of each host.
    /// A name that cannot be written back into a query is left out: names
    /// are kept as text, and text made from odd label bytes (not UTF-8,
    /// control characters, backslashes) need not read back as a name, or as
    /// the same one. One such name must not sink the whole query.
    fn missing(&self) -> Vec<(String, TYPE)> {
        let mut out = Vec::new();
        for (_, inst) in self.instances() {
            match self.srv.get(inst) {
                None => out.push((inst.clone(), TYPE::SRV)),
                Some((host, _)) if !self.addr.contains_key(&host.to_ascii_lowercase()) => {
                    out.push((host.clone(), TYPE::A))
                }
                Some(_) => {}
            }
            if !self.txt.contains_key(inst) {
                out.push((inst.clone(), TYPE::TXT));
            }
        }
        out.retain(|(name, _)| Name::new(name.trim_end_matches('.')).is_ok());
        out.sort_by(|a, b| (&a.0, u16::from(a.1)).cmp(&(&b.0, u16::from(b.1))));
        out.dedup();
        out
    }

    /// Every instance of a processor service type with its SRV, TXT and
    /// an address all present: what one responder's packet says in full
    /// (see [`super::listen`]).
    pub(super) fn complete_records(&self) -> Vec<ServiceRecord> {
        let mut out = Vec::new();
        for (inst, ty, (host, port)) in self.service_srvs() {
            let (Some(txt), Some(addresses)) = (
                self.txt.get(inst),
                self.addr.get(&host.to_ascii_lowercase()),
            ) else {
                continue;
            };
            out.push(ServiceRecord {
                fullname: inst.clone(),
                service_type: ty.to_string(),
                host: host.clone(),
                port: *port,
                addresses: addresses.clone(),
                txt: txt.clone(),
            });
        }
        out
    }

    /// Every SRV record of an instance of a processor service type, with
    /// the type: (instance, type, (host, port)).
    pub(super) fn service_srvs(
        &self,
    ) -> impl Iterator<Item = (&String, &'static str, &(String, u16))> {
        self.srv.iter().filter_map(|(inst, target)| {
            let ty = SERVICE_TYPES.iter().find(|t| super::is_of_type(inst, t))?;
            Some((inst, *ty, target))
        })
    }

    /// The instances the host advertised. Where the responder also answers
    /// for others (one responder for several addresses, as in a simulated
    /// fleet, or a sleep proxy), only the ones at the queried address are
    /// kept. When none is, the rest count only if the answer came from the
    /// queried address itself (a processor whose A record names another of
    /// its addresses): on a shared loopback another host's responder may
    /// take the query, and what it says is about its own processors.
    fn records(&self, queried: IpAddr) -> Vec<ServiceRecord> {
        let all: Vec<ServiceRecord> = self
            .instances()
            .map(|(ty, inst)| {
                let (host, port) = self.srv.get(inst).cloned().unwrap_or_default();
                let mut addresses = self
                    .addr
                    .get(&host.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default();
                if addresses.is_empty() {
                    // No A record came, but the address we asked answered.
                    addresses.insert(queried);
                }
                ServiceRecord {
                    fullname: inst.clone(),
                    service_type: ty.clone(),
                    host,
                    port,
                    addresses,
                    txt: self.txt.get(inst).cloned().unwrap_or_default(),
                }
            })
            .collect();
        let at_queried: Vec<ServiceRecord> = all
            .iter()
            .filter(|r| r.addresses.contains(&queried))
            .cloned()
            .collect();
        if at_queried.is_empty() && self.from_host {
            all
        } else {
            at_queried
        }
    }
}

/// What one response packet says, read as [`query_host`] reads each packet
/// (see [`read_response`]).
#[derive(Debug)]
pub struct UnicastResponse {
    /// The service records it describes; an instance with no address
    /// record is placed at the queried address.
    pub records: Vec<ServiceRecord>,
    /// The query [`query_host`] would send next for what the packet left
    /// out (SRV, TXT, A records), id 0; `None` when nothing is missing.
    pub follow_up: Option<Vec<u8>>,
}

/// Reads one response packet without a socket or query id: public so
/// that the parser can be fuzzed. `Ok(None)` when the packet does not
/// parse.
///
/// # Errors
/// [`DiscoveryError::Unicast`] when the follow-up query cannot be built
/// (the same error would end [`query_host`]).
pub fn read_response(
    packet: &[u8],
    queried: IpAddr,
) -> Result<Option<UnicastResponse>, DiscoveryError> {
    // The packet's source is not known here: read it as the host's own.
    let mut answers = Answers {
        from_host: true,
        ..Answers::default()
    };
    if !answers.absorb_packet(packet, None) {
        return Ok(None);
    }
    let missing = answers.missing();
    let follow_up = if missing.is_empty() {
        None
    } else {
        Some(
            build_query(0, &missing).map_err(|e| DiscoveryError::Unicast {
                host: queried.to_string(),
                reason: format!("cannot build query: {e}"),
            })?,
        )
    };
    Ok(Some(UnicastResponse {
        records: answers.records(queried),
        follow_up,
    }))
}

fn build_query(
    id: u16,
    questions: &[(String, TYPE)],
) -> Result<Vec<u8>, simple_dns::SimpleDnsError> {
    let mut packet = Packet::new_query(id);
    for (name, ty) in questions {
        packet.questions.push(Question::new(
            Name::new(name.trim_end_matches('.'))?,
            QTYPE::TYPE(*ty),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    packet.build_bytes_vec()
}

/// Asks `host` (port 5353) for its processor services and what they
/// advertise; returns one record per service instance it names.
///
/// # Errors
/// [`DiscoveryError::Unicast`] when the socket fails or nothing parseable
/// came back within `timeout`.
pub async fn query_host(
    host: IpAddr,
    timeout: Duration,
) -> Result<Vec<ServiceRecord>, DiscoveryError> {
    let fail = |reason: String| DiscoveryError::Unicast {
        host: host.to_string(),
        reason,
    };
    let bind: SocketAddr = match host {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let target = SocketAddr::new(host, mdns_sd::MDNS_PORT);
    let mut sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut others: BTreeSet<IpAddr> = BTreeSet::new();
    let deadline = Instant::now() + timeout;
    let mut answers = Answers::default();
    let mut questions: Vec<(String, TYPE)> = SERVICE_TYPES
        .iter()
        .map(|t| (t.to_string(), TYPE::PTR))
        .collect();
    let mut buf = vec![0u8; MAX_PACKET];

    loop {
        let id: u16 = fastrand::u16(1..);
        let query =
            build_query(id, &questions).map_err(|e| fail(format!("cannot build query: {e}")))?;
        sock.send_to(&query, target)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let round_end = Instant::now() + RESEND;
        let mut settle_at: Option<Instant> = None;
        loop {
            let wait_until = settle_at.unwrap_or(round_end).min(round_end).min(deadline);
            let received = tokio::time::timeout_at(wait_until, sock.recv_from(&mut buf)).await;
            let Ok(received) = received else { break };
            let (len, from) = received.map_err(|e| fail(e.to_string()))?;
            // A responder with several addresses (or a simulated fleet
            // sharing one) may answer from another address: the random id
            // ties answer to query, and `records` keeps only what is
            // about `host` (see there).
            tracing::trace!(%host, %from, len, "unicast DNS-SD response");
            if !answers.absorb_packet(&buf[..len], Some(id)) {
                tracing::debug!(%host, len, "unparseable or unrelated DNS response ignored");
                continue;
            }
            answers.from_host |= from.ip() == host;
            if from.ip() != host {
                others.insert(from.ip());
            }
            settle_at.get_or_insert(Instant::now() + SETTLE);
        }
        if answers.heard && answers.records(host).is_empty() && !answers.from_host {
            // Another host's responder took the query (several share the
            // address's port, as on a shared loopback): its answer is not
            // about `host`. A new source port is another draw of the
            // kernel's choice among them.
            tracing::debug!(%host, "the answer came from another host's responder; asking again");
            answers = Answers::default();
            questions = SERVICE_TYPES
                .iter()
                .map(|t| (t.to_string(), TYPE::PTR))
                .collect();
            sock = UdpSocket::bind(bind)
                .await
                .map_err(|e| fail(e.to_string()))?;
        } else if answers.heard {
            questions = answers.missing();
            if questions.is_empty() {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        if !answers.heard {
            // Unanswered: where several sockets share port 5353 (a shared
            // loopback) the query may have reached a silent one; a new
            // source port is another draw.
            sock = UdpSocket::bind(bind)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    if !answers.heard && !others.is_empty() {
        let others: Vec<String> = others.iter().map(IpAddr::to_string).collect();
        return Err(fail(format!(
            "no answer about {host} within {}; only other hosts' responders answered ({})",
            humantime::format_duration(timeout),
            others.join(", ")
        )));
    }
    if !answers.heard {
        return Err(fail(format!(
            "no answer on UDP port 5353 within {} (is it a processor, and does UDP 5353 reach it?)",
            humantime::format_duration(timeout)
        )));
    }
    Ok(answers.records(host))
}

#[cfg(test)]
mod tests {
    use simple_dns::rdata::{A, PTR, SRV, TXT};

    use super::*;

    fn rr<'a>(name: &'a str, rdata: RData<'a>) -> ResourceRecord<'a> {
        ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, 120, rdata)
    }

    #[test]
    fn a_response_reads_into_records_and_garbage_into_none() {
        let mut txt = TXT::new();
        txt.add_string("MACADDR=90:70:65:12:34:56").unwrap();
        txt.add_string("SERNUM=37152423").unwrap();
        let mut packet = Packet::new_reply(7);
        let instance = "Lutron Status._lutron._tcp.local";
        packet.answers.push(rr(
            "_lutron._tcp.local",
            RData::PTR(PTR(Name::new_unchecked(instance))),
        ));
        packet.additional_records.push(rr(
            instance,
            RData::SRV(SRV {
                priority: 0,
                weight: 0,
                port: 22,
                target: Name::new_unchecked("Lutron-0236e6a7.local"),
            }),
        ));
        packet
            .additional_records
            .push(rr(instance, RData::TXT(txt)));
        packet.additional_records.push(rr(
            "Lutron-0236e6a7.local",
            RData::A(A {
                address: u32::from(Ipv4Addr::new(10, 0, 0, 9)),
            }),
        ));
        let bytes = packet.build_bytes_vec().unwrap();
        let queried = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

        let response = read_response(&bytes, queried).unwrap().unwrap();
        assert_eq!(response.follow_up, None, "nothing left to ask");
        let records = response.records;
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.instance(), "Lutron Status");
        assert_eq!((r.host.as_str(), r.port), ("Lutron-0236e6a7.local.", 22));
        assert_eq!(
            r.addresses.iter().collect::<Vec<_>>(),
            [&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))]
        );
        assert_eq!(r.txt[0], TxtEntry::new("MACADDR", b"90:70:65:12:34:56"));

        assert!(
            read_response(&bytes[..bytes.len() - 3], queried)
                .unwrap()
                .is_none()
        );
        assert!(
            read_response(b"\x00\x07garbage", queried)
                .unwrap()
                .is_none()
        );
        let empty = Packet::new_reply(7).build_bytes_vec().unwrap();
        let empty = read_response(&empty, queried).unwrap().unwrap();
        assert!(empty.records.is_empty() && empty.follow_up.is_none());
    }

    /// On a shared loopback another host's responder may take the query:
    /// what it says about processors at other addresses is not an answer
    /// about the asked one, unless the packet came from the asked address.
    #[test]
    fn records_at_other_addresses_count_only_from_the_asked_host() {
        let instance = "Lutron Status._lutron._tcp.local";
        let mut packet = Packet::new_reply(7);
        packet.answers.push(rr(
            "_lutron._tcp.local",
            RData::PTR(PTR(Name::new_unchecked(instance))),
        ));
        packet.additional_records.push(rr(
            instance,
            RData::SRV(SRV {
                priority: 0,
                weight: 0,
                port: 22,
                target: Name::new_unchecked("Lutron-0236e6a7.local"),
            }),
        ));
        packet.additional_records.push(rr(
            "Lutron-0236e6a7.local",
            RData::A(A {
                address: u32::from(Ipv4Addr::new(127, 0, 1, 1)),
            }),
        ));
        let bytes = packet.build_bytes_vec().unwrap();
        let asked = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 2));
        let mut answers = Answers::default();
        assert!(answers.absorb_packet(&bytes, Some(7)));
        assert_eq!(answers.records(asked), vec![], "another host's answer");
        let at_one = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(answers.records(at_one).len(), 1);
        answers.from_host = true;
        assert_eq!(
            answers.records(asked).len(),
            1,
            "the asked host's own answer"
        );
    }

    /// Found by the txt_record fuzz target: a PTR naming an instance whose
    /// label is not UTF-8 (it widens past 63 bytes as text) made the
    /// follow-up query unbuildable, and `query_host` failed as a whole.
    #[test]
    fn an_instance_name_that_cannot_be_asked_for_does_not_sink_the_query() {
        let mut bytes = vec![0, 7, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        let service = b"\x07_lutron\x04_tcp\x05local\x00";
        for label in [&[0xff_u8; 22][..], b"Lutron Status"] {
            let mut target = vec![u8::try_from(label.len()).unwrap()];
            target.extend_from_slice(label);
            target.extend_from_slice(service);
            bytes.extend_from_slice(service);
            bytes.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 120, 0]);
            bytes.push(u8::try_from(target.len()).unwrap());
            bytes.extend_from_slice(&target);
        }
        let mut answers = Answers::default();
        assert!(answers.absorb_packet(&bytes, Some(7)));
        assert_eq!(answers.instances().count(), 2);
        let missing = answers.missing();
        assert_eq!(
            missing,
            [
                ("Lutron Status._lutron._tcp.local.".to_string(), TYPE::TXT),
                ("Lutron Status._lutron._tcp.local.".to_string(), TYPE::SRV),
            ]
        );
        assert!(build_query(8, &missing).is_ok());
        let queried = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let response = read_response(&bytes, queried).unwrap().unwrap();
        assert_eq!(response.records.len(), 2, "both instances are still shown");
        let follow_up = Packet::parse(response.follow_up.as_deref().unwrap()).unwrap();
        assert_eq!(follow_up.questions.len(), 2);
    }
}
