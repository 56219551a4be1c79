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

use std::collections::{HashMap, HashSet};
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

/// An interface the browse uses: where questions go out, and the IPv4
/// address they leave from (a legacy question's answers come back to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Outlet {
    pub index: u32,
    pub address: Ipv4Addr,
}

/// Opens the listening socket on the named interfaces (their IPv4
/// addresses join the mDNS group), and returns it with the interfaces it
/// joined on (where [`ask`] sends, and the only ones [`run`] hears).
pub(super) fn open(interfaces: &[String]) -> std::io::Result<(UdpSocket, Vec<Outlet>)> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    // Which interface each packet came in on: only the chosen ones count.
    setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, mdns_sd::MDNS_PORT)),
    )?;
    let all = crate::lan::interfaces().map_err(std::io::Error::other)?;
    let mut joined = Vec::new();
    for interface in all.iter().filter(|i| interfaces.contains(&i.name)) {
        let index = nix::net::if_::if_nametoindex(interface.name.as_str())?;
        for address in &interface.addresses {
            if let IpAddr::V4(v4) = address {
                let request = IpMembershipRequest::new(MDNS_GROUP, Some(*v4));
                // Already joined through another address of the interface.
                if let Err(e) = setsockopt(&fd, sockopt::IpAddMembership, &request)
                    && e != nix::errno::Errno::EADDRINUSE
                {
                    return Err(e.into());
                }
                if !joined.iter().any(|o: &Outlet| o.index == index) {
                    joined.push(Outlet {
                        index,
                        address: *v4,
                    });
                }
            }
        }
    }
    Ok((UdpSocket::from_std(std::net::UdpSocket::from(fd))?, joined))
}

/// Opens the socket that asks legacy questions (RFC 6762 §6.7): from an
/// ephemeral port, so every responder answers it by unicast, to this
/// socket alone. mdns-sd never sees those answers: a liveness round costs
/// its daemon nothing (it re-reads its whole cache for every packet it
/// gets, which made each round's burst of answers the idle daemon's main
/// cost).
pub(super) fn open_asker() -> std::io::Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // The answers to one question come as one burst (processor-protocol.md §5).
    let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    // RFC 6762 §11: mDNS packets are sent with IP TTL 255.
    setsockopt(&fd, sockopt::IpMulticastTtl, &255u8)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    )?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// The one question of a liveness round: every instance of these service
/// types. With `id` 0 it is asked by multicast (QM) from port 5353, so
/// that every responder answers to the group, where both this socket and
/// mdns-sd's cache hear it; with another id it is a legacy question, sent
/// from [`open_asker`]'s socket and answered to it alone, echoing the id.
/// `None` when no type is given.
pub(super) fn round_query(types: &[&str], id: u16) -> Option<Vec<u8>> {
    let mut packet = Packet::new_query(id);
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

/// Sends a query to the mDNS group out of each interface (by index, from
/// its address, with IP_PKTINFO: the socket is bound to every address).
/// Returns how many interfaces it went out on.
pub(super) fn ask(sock: &UdpSocket, interfaces: &[Outlet], query: &[u8]) -> usize {
    let group = SockaddrIn::from(SocketAddrV4::new(MDNS_GROUP, mdns_sd::MDNS_PORT));
    let mut sent = 0;
    for outlet in interfaces {
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: i32::try_from(outlet.index).unwrap_or(0),
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(outlet.address).to_be(),
            },
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
            Err(e) => tracing::debug!(
                interface = outlet.index,
                "cannot send the liveness query: {e}"
            ),
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

/// Where a packet came from: the group (heard by the 5353 listener, on a
/// chosen interface) or an answer to this browse's own legacy question.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Via {
    Group,
    Asked,
}

/// Reads the 5353 listener's packets until the receiver goes, sending on
/// what each says. Packets that came in on an interface not chosen are
/// dropped: the socket also gets what other programs' group memberships
/// let in elsewhere.
pub(super) async fn run(
    sock: std::sync::Arc<UdpSocket>,
    interfaces: Vec<Outlet>,
    tx: mpsc::UnboundedSender<(Via, Vec<Heard>)>,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let got = sock
            .async_io(tokio::io::Interest::READABLE, || {
                recv_with_interface(sock.as_raw_fd(), &mut buf)
            })
            .await;
        let (len, index) = match got {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("mDNS listener stopped: {e}");
                return;
            }
        };
        if !interfaces.iter().any(|o| Some(o.index) == index) {
            continue;
        }
        if !send_all(&tx, Via::Group, read_packet(&buf[..len])) {
            return;
        }
    }
}

/// Reads the answers to the legacy questions (those that echo `id`) until
/// the receiver goes. A responder may split its answer over several
/// packets (one for a whole simulated fleet, 90 packets for 500
/// processors), with one processor's SRV in one packet and its TXT in the
/// next: the packets from one address are read together, and what they
/// say is handed on once that address has been quiet for [`BURST_GAP`].
pub(super) async fn run_asker(
    sock: std::sync::Arc<UdpSocket>,
    id: u16,
    tx: mpsc::UnboundedSender<(Via, Vec<Heard>)>,
) {
    let mut buf = vec![0u8; 65_535];
    let mut burst: HashMap<IpAddr, Answers> = HashMap::new();
    let mut packets = 0usize;
    loop {
        let got = if burst.is_empty() {
            sock.recv_from(&mut buf).await.map(Some)
        } else {
            match tokio::time::timeout(BURST_GAP, sock.recv_from(&mut buf)).await {
                Ok(got) => got.map(Some),
                Err(_) => Ok(None),
            }
        };
        let (len, from) = match got {
            Ok(Some(got)) => got,
            Ok(None) => {
                packets = 0;
                for (_, answers) in burst.drain() {
                    if !send_all(&tx, Via::Asked, heard_in(&answers)) {
                        return;
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::debug!("mDNS asker stopped: {e}");
                return;
            }
        };
        let bytes = &buf[..len];
        // A response (QR set) to this browse's question.
        if bytes.get(2).is_none_or(|flags| flags & 0x80 == 0) {
            continue;
        }
        if burst.len() >= MAX_BURST_SOURCES && !burst.contains_key(&from.ip()) {
            continue;
        }
        if packets < MAX_BURST_PACKETS
            && burst
                .entry(from.ip())
                .or_default()
                .absorb_packet(bytes, Some(id))
        {
            packets += 1;
        }
    }
}

/// How long a responder's answer may pause between two of its packets
/// (they are sent back to back).
const BURST_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// Bounds on one burst of answers kept before it is read: what a LAN may
/// send is not ours to hold without limit.
const MAX_BURST_SOURCES: usize = 4096;
const MAX_BURST_PACKETS: usize = 8192;

/// Hands on what one packet said, in one message (one wake-up of the
/// browse per packet, not per record). Whether the receiver is still there.
fn send_all(tx: &mpsc::UnboundedSender<(Via, Vec<Heard>)>, via: Via, heard: Vec<Heard>) -> bool {
    if heard.is_empty() {
        return true;
    }
    tracing::trace!(?via, "{heard:?}");
    tx.send((via, heard)).is_ok()
}

/// One datagram and the index of the interface it came in on.
fn recv_with_interface(fd: i32, buf: &mut [u8]) -> std::io::Result<(usize, Option<u32>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::libc::in_pktinfo);
    let msg = nix::sys::socket::recvmsg::<SockaddrIn>(
        fd,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let index = msg.cmsgs()?.find_map(|c| match c {
        nix::sys::socket::ControlMessageOwned::Ipv4PacketInfo(info) => {
            u32::try_from(info.ipi_ifindex).ok()
        }
        _ => None,
    });
    Ok((msg.bytes, index))
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
    heard_in(&answers)
}

/// Whole records where the answers hold SRV, TXT and an address, else the
/// SRV alone.
fn heard_in(answers: &Answers) -> Vec<Heard> {
    let mut heard: Vec<Heard> = answers
        .complete_records()
        .into_iter()
        .map(Heard::Record)
        .collect();
    let complete: HashSet<String> = heard
        .iter()
        .filter_map(|h| match h {
            Heard::Record(r) => Some(r.fullname.clone()),
            Heard::Srv { .. } => None,
        })
        .collect();
    for (inst, _, (host, _)) in answers.service_srvs() {
        if !complete.contains(inst) {
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

    /// A responder's answer split over two packets (SRV in one, TXT and
    /// address in the next, as mdns-sd splits a fleet's answer): each
    /// packet alone is only a sighting; read together, a whole record.
    #[test]
    fn an_answer_split_over_packets_is_one_record_when_read_together() {
        let (srv_only, whole) = (answer(120, false, false), answer(120, false, true));
        let mut first = Packet::parse(&srv_only).unwrap();
        first.additional_records.clear();
        let whole = Packet::parse(&whole).unwrap();
        let mut second = Packet::new_reply(7);
        second.answers.push(whole.answers[1].clone());
        second.additional_records = whole.additional_records.clone();
        let (first, second) = (
            first.build_bytes_vec().unwrap(),
            second.build_bytes_vec().unwrap(),
        );
        assert!(matches!(&read_packet(&first)[..], [Heard::Srv { .. }]));
        assert!(read_packet(&second).is_empty());
        let mut together = Answers::default();
        assert!(together.absorb_packet(&first, None));
        assert!(together.absorb_packet(&second, None));
        let heard = heard_in(&together);
        let [Heard::Record(r)] = &heard[..] else {
            panic!("{heard:?}")
        };
        assert_eq!(r.host, "Lutron-00000001.local.");
        assert_eq!(r.txt.len(), 1);
    }

    /// One packet asks for every instance of both types, by multicast (a
    /// unicast-response bit would send the answers to one socket only).
    #[test]
    fn the_round_query_is_one_multicast_ptr_question_per_type() {
        let bytes = round_query(&crate::discovery::SERVICE_TYPES, 0).unwrap();
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
        assert_eq!(packet.id(), 0);
        assert_eq!(round_query(&[], 0), None);
        // A legacy question carries its id, for the answers to echo.
        let legacy = round_query(&crate::discovery::SERVICE_TYPES, 4242).unwrap();
        assert_eq!(Packet::parse(&legacy).unwrap().id(), 4242);
    }
}
