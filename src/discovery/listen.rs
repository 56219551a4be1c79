//! Listening to every mDNS answer on the LAN, packet by packet.
//!
//! mdns-sd keeps one SRV and one TXT record per instance name, so where
//! several processors advertise the same name (real sites have many
//! `Lutron Status`), its events describe now one, now another, and say
//! nothing about the others (see [`super::Inventory::hidden`]). Each answer
//! packet, though, comes from one responder: its SRV, TXT and address
//! records belong together. This socket shares port 5353 with mdns-sd and
//! hands on every complete record that a packet carries, so a processor
//! behind a shared name is seen whenever it answers.

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, ControlMessage, IpMembershipRequest, MsgFlags, SockFlag, SockType, SockaddrIn,
    bind, sendmsg, setsockopt, socket, sockopt,
};
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::unicast::Answers;
use crate::processor::ServiceRecord;

const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// Room for a burst of answers: a fleet of 500 answering one question is
/// about 94 packets within a millisecond, more than the default 208 KB
/// buffer holds (processor-protocol.md §5), and an answer dropped here is
/// a processor asked again one by one.
const RECEIVE_BUFFER: usize = 2 << 20;

/// Opens the listening socket on the named interfaces (their IPv4
/// addresses join the mDNS group), and returns it with the indexes of
/// the interfaces it joined on (where [`ask`] sends).
pub(super) fn open(interfaces: &[String]) -> std::io::Result<(UdpSocket, Vec<u32>)> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, mdns_sd::MDNS_PORT)),
    )?;
    let all = crate::lan::interfaces().map_err(std::io::Error::other)?;
    let mut joined = Vec::new();
    for interface in all.iter().filter(|i| interfaces.contains(&i.name)) {
        if interface.addresses.iter().any(IpAddr::is_ipv4) {
            joined.push(nix::net::if_::if_nametoindex(interface.name.as_str())?);
        }
        for address in &interface.addresses {
            if let IpAddr::V4(v4) = address {
                let request = IpMembershipRequest::new(MDNS_GROUP, Some(*v4));
                // Already joined through another address of the interface.
                if let Err(e) = setsockopt(&fd, sockopt::IpAddMembership, &request)
                    && e != nix::errno::Errno::EADDRINUSE
                {
                    return Err(e.into());
                }
            }
        }
    }
    Ok((UdpSocket::from_std(std::net::UdpSocket::from(fd))?, joined))
}

/// The one question of a liveness round: every instance of these service
/// types, asked by multicast (QM) from port 5353 so that every responder
/// answers to the group, where both this socket and mdns-sd's cache hear
/// it. Built once per round; `None` when no type is given.
pub(super) fn round_query(types: &[&str]) -> Option<Vec<u8>> {
    let mut packet = Packet::new_query(0);
    for ty in types {
        let name = Name::new(ty.trim_end_matches('.')).ok()?;
        packet.questions.push(Question::new(
            name,
            QTYPE::TYPE(TYPE::PTR),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    if packet.questions.is_empty() {
        return None;
    }
    packet.build_bytes_vec().ok()
}

/// Sends a query to the mDNS group out of each interface (by index, with
/// IP_PKTINFO: the socket is bound to every address). Returns how many
/// interfaces it went out on.
pub(super) fn ask(sock: &UdpSocket, interfaces: &[u32], query: &[u8]) -> usize {
    let group = SockaddrIn::from(SocketAddrV4::new(MDNS_GROUP, mdns_sd::MDNS_PORT));
    let mut sent = 0;
    for index in interfaces {
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: i32::try_from(*index).unwrap_or(0),
            ipi_spec_dst: nix::libc::in_addr { s_addr: 0 },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let result = sendmsg(
            sock.as_raw_fd(),
            &[IoSlice::new(query)],
            &[ControlMessage::Ipv4PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&group),
        );
        match result {
            Ok(_) => sent += 1,
            Err(e) => tracing::debug!(interface = index, "cannot send the liveness query: {e}"),
        }
    }
    sent
}

/// What one answer packet says about one instance.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Heard {
    /// SRV, TXT and an address: the whole record, from one responder.
    Record(ServiceRecord),
    /// An SRV alone (an answer to a liveness check): the processor at
    /// `host` still advertises `fullname`.
    Srv { fullname: String, host: String },
}

/// Reads packets until the receiver goes, sending on what each says.
pub(super) async fn run(sock: std::sync::Arc<UdpSocket>, tx: mpsc::UnboundedSender<Heard>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, from) = match sock.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("mDNS listener stopped: {e}");
                return;
            }
        };
        for heard in read_packet(&buf[..len]) {
            tracing::trace!(%from, "{heard:?}");
            if tx.send(heard).is_err() {
                return;
            }
        }
    }
}

/// What one answer packet says about processor service instances: whole
/// records where it carries SRV, TXT and an address, else the SRV alone.
/// Queries are skipped (their known answers are the asker's cache, not the
/// responder's word), and so are goodbyes (TTL 0), which mdns-sd reports
/// as removals.
pub fn read_packet(bytes: &[u8]) -> Vec<Heard> {
    let Ok(packet) = Packet::parse(bytes) else {
        return Vec::new();
    };
    if !packet.has_flags(PacketFlag::RESPONSE) {
        return Vec::new();
    }
    let records = || packet.answers.iter().chain(&packet.additional_records);
    if records().any(|rr| rr.ttl == 0 && matches!(rr.rdata, RData::SRV(_))) {
        return Vec::new();
    }
    let mut answers = Answers::default();
    for rr in records() {
        answers.absorb(rr);
    }
    let mut heard: Vec<Heard> = answers
        .complete_records()
        .into_iter()
        .map(Heard::Record)
        .collect();
    for (inst, _, (host, _)) in answers.service_srvs() {
        if !heard
            .iter()
            .any(|h| matches!(h, Heard::Record(r) if r.fullname == *inst))
        {
            heard.push(Heard::Srv {
                fullname: inst.clone(),
                host: host.clone(),
            });
        }
    }
    heard
}

#[cfg(test)]
mod tests {
    use simple_dns::rdata::{A, SRV, TXT};
    use simple_dns::{CLASS, Name, ResourceRecord};

    use super::*;

    fn rr<'a>(name: &'a str, ttl: u32, rdata: RData<'a>) -> ResourceRecord<'a> {
        ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, ttl, rdata)
    }

    fn answer(ttl: u32, query: bool, with_txt: bool) -> Vec<u8> {
        let instance = "Lutron Status._lutron._tcp.local";
        let mut packet = if query {
            Packet::new_query(0)
        } else {
            Packet::new_reply(0)
        };
        let mut txt = TXT::new();
        txt.add_string("MACADDR=02:4c:00:00:00:01").unwrap();
        packet.answers.push(rr(
            instance,
            ttl,
            RData::SRV(SRV {
                priority: 0,
                weight: 0,
                port: 22,
                target: Name::new_unchecked("Lutron-00000001.local"),
            }),
        ));
        if with_txt {
            packet.answers.push(rr(instance, ttl, RData::TXT(txt)));
        }
        packet.additional_records.push(rr(
            "Lutron-00000001.local",
            ttl,
            RData::A(A {
                address: u32::from(Ipv4Addr::new(127, 0, 1, 1)),
            }),
        ));
        packet.build_bytes_vec().unwrap()
    }

    #[test]
    fn an_answer_with_srv_txt_and_address_is_one_record() {
        let heard = read_packet(&answer(120, false, true));
        let [Heard::Record(r)] = &heard[..] else {
            panic!("{heard:?}")
        };
        assert_eq!(r.fullname, "Lutron Status._lutron._tcp.local.");
        assert_eq!(r.service_type, "_lutron._tcp.local.");
        assert_eq!(r.host, "Lutron-00000001.local.");
        assert_eq!(r.addresses.iter().next().unwrap().to_string(), "127.0.1.1");
        assert_eq!(r.txt.len(), 1);
    }

    #[test]
    fn an_answer_without_txt_is_a_sighting_of_the_srv() {
        let heard = read_packet(&answer(120, false, false));
        assert_eq!(
            heard,
            vec![Heard::Srv {
                fullname: "Lutron Status._lutron._tcp.local.".into(),
                host: "Lutron-00000001.local.".into()
            }]
        );
    }

    #[test]
    fn queries_goodbyes_and_garbage_carry_nothing() {
        assert_eq!(read_packet(&answer(120, true, true)), vec![]);
        assert_eq!(read_packet(&answer(0, false, true)), vec![]);
        assert_eq!(read_packet(b"\x00\x00\x84"), vec![]);
    }

    /// One packet asks for every instance of both types, by multicast (a
    /// unicast-response bit would send the answers to one socket only).
    #[test]
    fn the_round_query_is_one_multicast_ptr_question_per_type() {
        let bytes = round_query(&crate::discovery::SERVICE_TYPES).unwrap();
        let packet = Packet::parse(&bytes).unwrap();
        assert!(!packet.has_flags(PacketFlag::RESPONSE));
        let asked: Vec<String> = packet
            .questions
            .iter()
            .map(|q| {
                assert_eq!(q.qtype, QTYPE::TYPE(TYPE::PTR));
                assert!(!q.unicast_response);
                q.qname.to_string()
            })
            .collect();
        assert_eq!(asked, vec!["_lutron._tcp.local", "_leap._tcp.local"]);
        assert_eq!(round_query(&[]), None);
    }
}
