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
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, IpMembershipRequest, MsgFlags, SockFlag, SockType, SockaddrIn,
    bind, sendmsg, setsockopt, socket, sockopt,
};
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE};
use tokio::sync::mpsc;

use super::unicast::Answers;
use crate::processor::ServiceRecord;

const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// Room for a burst of answers: a fleet of 500 answering one question is
/// about 94 packets within a millisecond, more than the default 208 KB
/// buffer holds (processor-protocol.md §5), and an answer dropped here is
/// a processor asked again one by one.
const RECEIVE_BUFFER: usize = 2 << 20;

/// The longest mDNS message: 9000 bytes with the IPv4 and UDP headers
/// (RFC 6762 §17). mdns-sd drops a longer one, and so do the listeners,
/// whose buffers have room for one byte more, to tell it apart.
const MAX_MESSAGE: usize = 9000 - 20 - 8;

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
    Ok((UdpSocket::from(fd), joined))
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
    Ok(UdpSocket::from(fd))
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

/// Whether a question sent out of `outlet` also goes to this host's own
/// sockets (IP_MULTICAST_LOOP). A legacy question goes to the LAN only,
/// except on the loopback interface, where every responder is on this
/// host: otherwise mdns-sd's socket (and the 5353 listener) would get
/// each round's question, and mdns-sd re-reads its whole cache for every
/// packet it gets (a millisecond with 500 processors). A processor is
/// never the site box itself; a simulator on this host but on another
/// interface gets no legacy question, and the rounds go back to
/// multicast after [`super::MAX_SILENT_LEGACY_ROUNDS`] unanswered ones.
pub(super) fn legacy_loops_back(outlet: &Outlet) -> bool {
    outlet.address.is_loopback()
}

/// Sends a query to the mDNS group out of each interface (by index, from
/// its address, with IP_PKTINFO: the socket is bound to every address).
/// With `legacy`, this host's own sockets hear it only on the loopback
/// interface (see [`legacy_loops_back`]). Returns how many interfaces it
/// went out on.
pub(super) fn ask(sock: &impl AsFd, interfaces: &[Outlet], query: &[u8], legacy: bool) -> usize {
    let group = SockaddrIn::from(SocketAddrV4::new(MDNS_GROUP, mdns_sd::MDNS_PORT));
    let mut sent = 0;
    for outlet in interfaces {
        if legacy
            && let Err(e) = setsockopt(sock, sockopt::IpMulticastLoop, &legacy_loops_back(outlet))
        {
            tracing::debug!(
                interface = outlet.index,
                "cannot set IP_MULTICAST_LOOP: {e}"
            );
        }
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: i32::try_from(outlet.index).unwrap_or(0),
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(outlet.address).to_be(),
            },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let result = sendmsg(
            sock.as_fd().as_raw_fd(),
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

impl Heard {
    /// The SRV alone: who still advertises the name, at which host.
    fn sighting(&self) -> Heard {
        match self {
            Heard::Record(r) => Heard::Srv {
                fullname: r.fullname.clone(),
                host: r.host.clone(),
            },
            srv @ Heard::Srv { .. } => srv.clone(),
        }
    }
}

/// Where a packet came from: the group (heard by the 5353 listener, on a
/// chosen interface) or an answer to this browse's own legacy question.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Via {
    Group,
    Asked,
}

/// Reads the 5353 listener's packets until the receiver goes, sending on
/// what they say, a burst at a time (see [`read_bursts`]). Packets that
/// came in on an interface not chosen are dropped: the socket also gets
/// what other programs' group memberships let in elsewhere.
pub(super) async fn run(
    sock: Arc<UdpSocket>,
    interfaces: Vec<Outlet>,
    tx: mpsc::UnboundedSender<(Via, Vec<Heard>)>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut heard = Vec::new();
    loop {
        let read = read_bursts(&sock, GROUP_BURST_MAX, || {
            let (len, index) = recv_with_interface(sock.as_raw_fd(), &mut buf)?;
            if len <= MAX_MESSAGE && interfaces.iter().any(|o| Some(o.index) == index) {
                heard.extend(read_packet(&buf[..len]));
            }
            Ok(())
        })
        .await;
        if let Err(e) = read {
            tracing::debug!("mDNS listener stopped: {e}");
            return;
        }
        if !send_all(&tx, Via::Group, std::mem::take(&mut heard)) {
            return;
        }
    }
}

/// Reads the answers to the legacy questions (those that echo `id`) until
/// the receiver goes. A responder may split its answer over several
/// packets (one for a whole simulated fleet, 90 packets for 500
/// processors), with one processor's SRV in one packet and its TXT in the
/// next: the packets from one address are read together, and what the
/// whole burst says is handed on at its end (see [`Bursts`]). `forget`
/// set (by a sighting that found nobody) makes the next burst be read in
/// full.
pub(super) async fn run_asker(
    sock: Arc<UdpSocket>,
    id: u16,
    forget: Arc<std::sync::atomic::AtomicBool>,
    tx: mpsc::UnboundedSender<(Via, Vec<Heard>)>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut burst = Bursts::new(id);
    loop {
        let read = read_bursts(&sock, ASKED_BURST_MAX, || {
            let (len, from) = sock.recv_from(&mut buf)?;
            if len <= MAX_MESSAGE {
                burst.absorb(from.ip(), &buf[..len]);
            }
            Ok(())
        })
        .await;
        if let Err(e) = read {
            tracing::debug!("mDNS asker stopped: {e}");
            return;
        }
        if forget.swap(false, std::sync::atomic::Ordering::Relaxed) {
            burst.forget();
        }
        if !send_all(&tx, Via::Asked, burst.finish()) {
            return;
        }
    }
}

/// Waits for a burst of packets on a non-blocking socket and reads it with
/// `read_one` (one datagram, or `WouldBlock`): what is there when the
/// first comes, then every [`BURST_GAP`] what came meanwhile, until a gap
/// brings nothing or the burst has lasted `longest` (a LAN that never
/// stops talking is still heard, a burst at a time).
///
/// The socket is in the runtime's poll set only while waiting for a
/// burst's first packet (four system calls a burst). Registered
/// throughout, every packet of a burst of 500 was an edge that woke the
/// runtime (about 120 wake-ups a liveness round, though the reader slept
/// between reads).
async fn read_bursts(
    sock: &UdpSocket,
    longest: Duration,
    mut read_one: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<()> {
    // A duplicate of the descriptor, registered for this wait alone: its
    // drop takes it out of the poll set and closes it (the socket stays).
    tokio::net::UdpSocket::from_std(sock.try_clone()?)?
        .readable()
        .await?;
    let end = tokio::time::Instant::now() + longest;
    loop {
        let mut got = false;
        loop {
            match read_one() {
                Ok(()) => got = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if !got || tokio::time::Instant::now() >= end {
            return Ok(());
        }
        tokio::time::sleep(BURST_GAP).await;
    }
}

/// The legacy answers of one round, kept as packets per responder until
/// the burst ends, and what each responder's packets said last round.
///
/// At rest every processor answers each round with the same bytes. A
/// responder whose packets are byte for byte those it sent last round is
/// not read again: its answer is the sightings (SRV name and host) of
/// last round's records, all a round needs to mark who is there. Anything
/// that changed (a record, the order of packets) is read in full.
pub(super) struct Bursts {
    id: u16,
    open: HashMap<IpAddr, Vec<Vec<u8>>>,
    bytes: usize,
    last: HashMap<IpAddr, (u64, Vec<Heard>)>,
}

impl Bursts {
    pub(super) fn new(id: u16) -> Bursts {
        Bursts {
            id,
            open: HashMap::new(),
            bytes: 0,
            last: HashMap::new(),
        }
    }

    /// Keeps a packet from `from` if it is a response (QR set) that echoes
    /// this browse's id, within the bounds.
    pub(super) fn absorb(&mut self, from: IpAddr, bytes: &[u8]) {
        let ours = bytes.len() > 2
            && u16::from_be_bytes([bytes[0], bytes[1]]) == self.id
            && bytes[2] & 0x80 != 0;
        if !ours
            || self.bytes + bytes.len() > MAX_BURST_BYTES
            || (self.open.len() >= MAX_BURST_SOURCES && !self.open.contains_key(&from))
        {
            return;
        }
        self.bytes += bytes.len();
        self.open.entry(from).or_default().push(bytes.to_vec());
    }

    /// Reads the burst that ended: what every responder said.
    pub(super) fn finish(&mut self) -> Vec<Heard> {
        self.bytes = 0;
        let mut last = HashMap::with_capacity(self.open.len());
        let mut out = Vec::new();
        for (from, packets) in self.open.drain() {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&packets, &mut hasher);
            let digest = std::hash::Hasher::finish(&hasher);
            let heard = match self.last.remove(&from) {
                Some((before, seen)) if before == digest => seen,
                _ => {
                    let mut answers = Answers::default();
                    for packet in &packets {
                        answers.absorb_packet(packet, Some(self.id));
                    }
                    heard_in(&answers)
                }
            };
            let seen = heard.iter().map(Heard::sighting).collect();
            last.insert(from, (digest, seen));
            out.extend(heard);
        }
        self.last = last;
        out
    }

    /// Reads every responder's next answer in full.
    pub(super) fn forget(&mut self) {
        self.last.clear();
    }
}

/// How long a responder's answer may pause between two of its packets
/// (they are sent back to back), and how often a burst is read.
const BURST_GAP: Duration = Duration::from_millis(20);

/// The longest burst of group traffic read before what it said is handed
/// on: a multicast round's answers (spread over 20–120 ms, RFC 6762 §6)
/// come in one or two messages, and a busy LAN is heard four times a
/// second.
const GROUP_BURST_MAX: Duration = Duration::from_millis(250);

/// The longest burst of answers to a legacy question: they come at once,
/// undelayed (RFC 6762 §6.7), within about 100 ms for 500 processors.
const ASKED_BURST_MAX: Duration = Duration::from_secs(1);

/// Bounds on one burst of answers kept before it is read: what a LAN may
/// send is not ours to hold without limit.
const MAX_BURST_SOURCES: usize = 4096;
const MAX_BURST_BYTES: usize = 4 << 20;

/// Hands on what a burst said, in one message (one wake-up of the browse
/// per burst, not per packet or record). Whether the receiver is still there.
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

    /// A responder that answers a round with the same bytes as the last is
    /// not read again: its answer is last round's sightings. A change, or
    /// a forget, reads it in full; another id or a query is not kept.
    #[test]
    fn an_unchanged_legacy_answer_is_last_rounds_sightings() {
        let from: IpAddr = Ipv4Addr::new(127, 0, 1, 1).into();
        let other: IpAddr = Ipv4Addr::new(127, 0, 1, 2).into();
        let whole = answer(120, false, true);
        let sighting = Heard::Srv {
            fullname: "Lutron Status._lutron._tcp.local.".into(),
            host: "Lutron-00000001.local.".into(),
        };
        let mut bursts = Bursts::new(0);
        bursts.absorb(from, &whole);
        let first = bursts.finish();
        assert!(matches!(&first[..], [Heard::Record(_)]), "{first:?}");
        assert!(bursts.open.is_empty());

        bursts.absorb(from, &whole);
        assert_eq!(bursts.finish(), vec![sighting.clone()]);
        // The same bytes from another responder are that responder's first.
        bursts.absorb(other, &whole);
        assert!(matches!(&bursts.finish()[..], [Heard::Record(_)]));

        // A changed answer (no TXT now) is read: an SRV alone.
        bursts.absorb(from, &answer(120, false, false));
        assert_eq!(bursts.finish(), vec![sighting.clone()]);
        bursts.absorb(from, &whole);
        assert!(matches!(&bursts.finish()[..], [Heard::Record(_)]));
        bursts.absorb(from, &whole);
        assert_eq!(bursts.finish(), vec![sighting]);
        bursts.forget();
        bursts.absorb(from, &whole);
        assert!(matches!(&bursts.finish()[..], [Heard::Record(_)]));

        // Not ours: another id, a query, a stub.
        let mut stranger = Packet::parse(&whole).unwrap();
        stranger.set_id(7);
        bursts.absorb(from, &stranger.build_bytes_vec().unwrap());
        bursts.absorb(from, &answer(120, true, true));
        bursts.absorb(from, b"\x00\x00");
        assert!(bursts.open.is_empty());
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
