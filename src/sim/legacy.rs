//! Answers to legacy unicast queries (RFC 6762 §6.7: a query from a source
//! port other than 5353), sent from each simulated processor's own address,
//! as a real processor's answer leaves from its own.
//!
//! mdns-sd keeps the multicast side (probing, announcements, answers to the
//! group), but it answers legacy queries too, and from whatever address
//! the kernel picks for the interface (127.0.0.1 on a loopback), for the
//! whole fleet in one packet. It has no setting to stop that, so the
//! simulator stops the queries from reaching it: its sockets get a socket
//! filter that keeps only datagrams from port 5353 (see
//! [`MdnsSocketsFilter`]). What it no longer hears is answered here:
//! - a legacy query to the group (discovery's liveness rounds) is read by
//!   one socket bound to the group address, which hears nothing else, and
//!   every processor with something to say answers from its own socket;
//! - a query to one processor's address (`discover --host`) reaches that
//!   processor's socket, bound to its address and port 5353, which the
//!   kernel prefers over mdns-sd's wildcard one; only that processor
//!   answers.
//!
//! The answer is built by [`answer`], a pure function of the query and one
//! processor's records.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use simple_dns::rdata::{A, PTR, RData, SRV, TXT};
use simple_dns::{CLASS, Name, OPCODE, Packet, PacketFlag, QTYPE, ResourceRecord, TYPE};
use socket2::{Domain, Protocol, SockFilter, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::processor::ServiceRecord;

const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_PORT: u16 = mdns_sd::MDNS_PORT;

/// RFC 6762 §6.7: records in a legacy answer carry a TTL of at most 10 s.
const LEGACY_TTL: u32 = 10;

/// Queries bigger than this are not read whole (RFC 6762 §17 allows
/// 9,000 bytes on jumbo-frame LANs).
const MAX_QUERY: usize = 9_000;

/// Why the responder could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    #[error("cannot listen for legacy mDNS queries on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot join the mDNS group on {interface}: {source}")]
    Join {
        interface: String,
        source: io::Error,
    },
    #[error("cannot list this process's sockets: {0}")]
    Sockets(io::Error),
    #[error("cannot keep legacy queries from mDNS's socket: {0}")]
    Filter(io::Error),
}

/// The running responder; dropping it stops it.
pub struct LegacyResponder {
    _tasks: JoinSet<()>,
}

/// One processor: its records and the socket its answers leave from.
struct Answering {
    record: ServiceRecord,
    socket: Arc<UdpSocket>,
}

impl LegacyResponder {
    /// Starts answering legacy queries for these processors, each
    /// advertised as `record` (with the name probing left it) at `address`,
    /// from the group on the named interfaces and at each address.
    ///
    /// # Errors
    /// [`LegacyError::Bind`] when an address's port 5353 cannot be bound;
    /// [`LegacyError::Join`] when the group cannot be joined.
    pub fn start(
        processors: impl IntoIterator<Item = (ServiceRecord, Ipv4Addr)>,
        interfaces: &[String],
    ) -> Result<LegacyResponder, LegacyError> {
        let mut tasks = JoinSet::new();
        let mut all = Vec::new();
        for (record, address) in processors {
            let addr = SocketAddr::V4(SocketAddrV4::new(address, MDNS_PORT));
            let socket = Arc::new(
                own_socket(addr)
                    .and_then(UdpSocket::from_std)
                    .map_err(|source| LegacyError::Bind { addr, source })?,
            );
            let one = Arc::new(Answering { record, socket });
            tasks.spawn(serve_address(one.clone()));
            all.push(one);
        }
        let group = group_socket(interfaces)?;
        tasks.spawn(serve_group(group, all));
        Ok(LegacyResponder { _tasks: tasks })
    }
}

/// A processor's socket: its address, port 5353 (shared with mdns-sd's
/// wildcard socket), TTL 255 (RFC 6762 §11).
fn own_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_ttl_v4(255)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The socket that hears queries to the group on the named interfaces
/// only: bound to the group address (so no unicast datagram meant for
/// mdns-sd lands here), with `IP_MULTICAST_ALL` off (so only the
/// memberships made here count, each on its interface).
fn group_socket(interfaces: &[String]) -> Result<UdpSocket, LegacyError> {
    let addr = SocketAddr::V4(SocketAddrV4::new(MDNS_GROUP, MDNS_PORT));
    let bind = |source| LegacyError::Bind { addr, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(bind)?;
    let setup = || -> io::Result<()> {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_multicast_all_v4(false)?;
        socket.bind(&addr.into())
    };
    setup().map_err(bind)?;
    let all = crate::lan::interfaces().map_err(|e| LegacyError::Sockets(io::Error::other(e)))?;
    for interface in all.iter().filter(|i| interfaces.contains(&i.name)) {
        let Some(v4) = interface.addresses.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }) else {
            continue;
        };
        socket
            .join_multicast_v4(&MDNS_GROUP, &v4)
            .map_err(|source| LegacyError::Join {
                interface: interface.name.clone(),
                source,
            })?;
    }
    UdpSocket::from_std(socket.into()).map_err(bind)
}

/// One query read off `socket`, with its sender. The buffer is made once
/// a datagram is there: a thousand idle processors hold none.
async fn next_query(socket: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
    loop {
        socket.readable().await?;
        let mut buf = vec![0u8; MAX_QUERY];
        match socket.try_recv_from(&mut buf) {
            Ok((len, from)) => {
                buf.truncate(len);
                return Ok((buf, from));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Queries to one processor's address: it alone answers.
async fn serve_address(one: Arc<Answering>) {
    loop {
        let (query, from) = match next_query(&one.socket).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(host = %one.record.host, "legacy mDNS responder stopped: {e}");
                return;
            }
        };
        if let Some(reply) = answer(&query, &one.record, from.port() != MDNS_PORT) {
            send(&one, &reply, from);
        }
    }
}

/// Legacy queries to the group: every processor with an answer sends it.
/// Queries from port 5353 are mdns-sd's to answer, by multicast.
async fn serve_group(socket: UdpSocket, all: Vec<Arc<Answering>>) {
    loop {
        let (query, from) = match next_query(&socket).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("legacy mDNS responder stopped: {e}");
                return;
            }
        };
        if from.port() == MDNS_PORT {
            continue;
        }
        for one in &all {
            if let Some(reply) = answer(&query, &one.record, true) {
                send(one, &reply, from);
            }
        }
    }
}

/// A datagram that does not fit the socket's buffer now is lost, as on a
/// LAN: the querier asks again.
fn send(one: &Answering, reply: &[u8], to: SocketAddr) {
    if let Err(e) = one.socket.try_send_to(reply, to) {
        tracing::debug!(host = %one.record.host, %to, "legacy mDNS answer not sent: {e}");
    }
}

fn same_name(name: &Name<'_>, text: &str) -> bool {
    let name = name.to_string();
    name.trim_end_matches('.')
        .eq_ignore_ascii_case(text.trim_end_matches('.'))
}

/// The answer one processor gives to `query`, or `None` when it has none
/// (or the bytes are not a standard query). `legacy`: the querier's source
/// port is not 5353, so the answer echoes the questions, its records live
/// at most 10 s and none has the cache-flush bit (RFC 6762 §6.7).
///
/// Answers: PTR for its service type (and the DNS-SD meta-query), SRV and
/// TXT for its instance, A for its host, with the records a client asks
/// for next as additional records, as mdns-sd sends them.
pub fn answer(query: &[u8], record: &ServiceRecord, legacy: bool) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    if query.has_flags(PacketFlag::RESPONSE) || query.opcode() != OPCODE::StandardQuery {
        return None;
    }
    let ttl = |normal: u32| if legacy { LEGACY_TTL } else { normal };
    let instance = Name::new(record.fullname.trim_end_matches('.')).ok()?;
    let service = Name::new(record.service_type.trim_end_matches('.')).ok()?;
    let host = Name::new(record.host.trim_end_matches('.')).ok()?;
    let srv = ResourceRecord::new(
        instance.clone(),
        CLASS::IN,
        ttl(120),
        RData::SRV(SRV {
            priority: 0,
            weight: 0,
            port: record.port,
            target: host.clone(),
        }),
    );
    let mut txt = TXT::new();
    for entry in &record.txt {
        txt.add_attribute(&entry.key, entry.value.as_deref()).ok()?;
    }
    let txt = ResourceRecord::new(instance.clone(), CLASS::IN, ttl(4500), RData::TXT(txt));
    let addresses: Vec<ResourceRecord<'_>> = record
        .addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(ResourceRecord::new(
                host.clone(),
                CLASS::IN,
                ttl(120),
                RData::A(A {
                    address: u32::from(*v4),
                }),
            )),
            IpAddr::V6(_) => None,
        })
        .collect();

    let mut answers: Vec<ResourceRecord<'_>> = Vec::new();
    let mut additional: Vec<ResourceRecord<'_>> = Vec::new();
    let wants = |q: QTYPE, ty: TYPE| q == QTYPE::TYPE(ty) || q == QTYPE::ANY;
    for q in &query.questions {
        if same_name(&q.qname, &record.service_type) && wants(q.qtype, TYPE::PTR) {
            answers.push(ResourceRecord::new(
                service.clone(),
                CLASS::IN,
                ttl(4500),
                RData::PTR(PTR(instance.clone())),
            ));
            additional.push(srv.clone());
            additional.push(txt.clone());
            additional.extend(addresses.iter().cloned());
        } else if same_name(&q.qname, "_services._dns-sd._udp.local") && wants(q.qtype, TYPE::PTR) {
            answers.push(ResourceRecord::new(
                q.qname.clone(),
                CLASS::IN,
                ttl(4500),
                RData::PTR(PTR(service.clone())),
            ));
        } else if same_name(&q.qname, &record.fullname) {
            if wants(q.qtype, TYPE::SRV) {
                answers.push(srv.clone());
                additional.extend(addresses.iter().cloned());
            }
            if wants(q.qtype, TYPE::TXT) {
                answers.push(txt.clone());
            }
        } else if same_name(&q.qname, &record.host) && wants(q.qtype, TYPE::A) {
            answers.extend(addresses.iter().cloned());
        }
    }
    if answers.is_empty() {
        return None;
    }
    let mut seen = HashSet::new();
    answers.retain(|rr| seen.insert(format!("{rr:?}")));
    additional.retain(|rr| seen.insert(format!("{rr:?}")));

    let mut reply = Packet::new_reply(if legacy { query.id() } else { 0 });
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if legacy {
        reply.questions = query.questions.clone();
    }
    reply.answers = answers;
    reply.additional_records = additional;
    reply.build_bytes_vec_compressed().ok()
}

/// Keeps legacy queries from mdns-sd's sockets: those opened between
/// [`MdnsSocketsFilter::before`] and [`MdnsSocketsFilter::apply`] that are
/// bound to UDP port 5353 get a classic BPF filter that drops every
/// datagram whose source port is not 5353. mdns-sd offers no way to stop
/// answering legacy queries, and its socket is its own; a duplicate of the
/// descriptor (pidfd_getfd on this very process) reaches the same socket.
pub struct MdnsSocketsFilter {
    before: HashSet<u64>,
}

impl MdnsSocketsFilter {
    /// Notes the UDP port 5353 sockets this process has now (which are not
    /// mdns-sd's, or not the new daemon's).
    ///
    /// # Errors
    /// [`LegacyError::Sockets`] when /proc/self/fd cannot be read.
    pub fn before() -> Result<MdnsSocketsFilter, LegacyError> {
        let before = mdns_sockets()
            .map_err(LegacyError::Sockets)?
            .into_iter()
            .map(|(inode, _)| inode)
            .collect();
        Ok(MdnsSocketsFilter { before })
    }

    /// Filters every UDP port 5353 socket opened since [`Self::before`];
    /// returns how many.
    ///
    /// # Errors
    /// [`LegacyError::Sockets`] / [`LegacyError::Filter`].
    pub fn apply(self) -> Result<usize, LegacyError> {
        // ldh [0] (the UDP source port: a UDP socket's filter sees the UDP
        // header first); jeq 5353 ? accept : drop.
        let program = [
            SockFilter::new(0x28, 0, 0, 0),
            SockFilter::new(0x15, 0, 1, u32::from(MDNS_PORT)),
            SockFilter::new(0x06, 0, 0, u32::MAX),
            SockFilter::new(0x06, 0, 0, 0),
        ];
        let mut filtered = 0;
        for (inode, fd) in mdns_sockets().map_err(LegacyError::Sockets)? {
            if self.before.contains(&inode) {
                continue;
            }
            SockRef::from(&fd)
                .attach_filter(&program)
                .map_err(LegacyError::Filter)?;
            filtered += 1;
        }
        Ok(filtered)
    }
}

/// This process's UDP sockets bound to port 5353 (wildcard addresses:
/// sockets bound to one address are the responder's own), by inode, each
/// with a duplicate of its descriptor.
fn mdns_sockets() -> io::Result<Vec<(u64, OwnedFd)>> {
    use nix::sys::socket::{SockaddrStorage, getsockname, getsockopt, sockopt};
    let pidfd = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(raw) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(name) = getsockname::<SockaddrStorage>(raw) else {
            continue;
        };
        let wildcard_5353 = match (name.as_sockaddr_in(), name.as_sockaddr_in6()) {
            (Some(v4), _) => v4.port() == MDNS_PORT && v4.ip() == Ipv4Addr::UNSPECIFIED,
            (_, Some(v6)) => v6.port() == MDNS_PORT && v6.ip().is_unspecified(),
            _ => false,
        };
        if !wildcard_5353 {
            continue;
        }
        // Closed since it was listed: not ours to filter any more.
        let Ok(fd) =
            rustix::process::pidfd_getfd(&pidfd, raw, rustix::process::PidfdGetfdFlags::empty())
        else {
            continue;
        };
        if getsockopt(&fd.as_fd(), sockopt::SockType)
            .is_ok_and(|t| t == nix::sys::socket::SockType::Datagram)
        {
            out.push((inode, fd));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use simple_dns::{QCLASS, Question};

    use super::*;
    use crate::processor::SystemType;
    use crate::sim::SimProcessor;

    fn query(id: u16, questions: &[(&str, TYPE)]) -> Vec<u8> {
        let mut packet = Packet::new_query(id);
        for (name, ty) in questions {
            packet.questions.push(Question::new(
                Name::new_unchecked(name),
                QTYPE::TYPE(*ty),
                QCLASS::CLASS(CLASS::IN),
                false,
            ));
        }
        packet.build_bytes_vec().unwrap()
    }

    fn record() -> ServiceRecord {
        SimProcessor::fixture(SystemType::HomeWorksQsx).record()
    }

    #[test]
    fn a_legacy_ptr_question_gets_the_whole_record_echoing_id_and_question() {
        let bytes = answer(
            &query(4242, &[("_lutron._tcp.local", TYPE::PTR)]),
            &record(),
            true,
        )
        .expect("an answer");
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.id(), 4242);
        assert!(reply.has_flags(PacketFlag::RESPONSE));
        assert_eq!(reply.questions.len(), 1, "the question is echoed");
        let all: Vec<_> = reply
            .answers
            .iter()
            .chain(&reply.additional_records)
            .collect();
        assert!(all.iter().all(|rr| rr.ttl <= 10 && !rr.cache_flush));
        let records = crate::discovery::read_response(&bytes, "127.0.1.1".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(records.follow_up, None, "nothing left to ask");
        assert_eq!(records.records, vec![record()]);
    }

    #[test]
    fn questions_about_others_get_no_answer_and_garbage_none() {
        let r = record();
        assert_eq!(
            answer(&query(1, &[("_hue._tcp.local", TYPE::PTR)]), &r, true),
            None
        );
        assert_eq!(
            answer(&query(1, &[("Lutron-00000001.local", TYPE::A)]), &r, true),
            None
        );
        assert_eq!(answer(b"\x00\x01garbage", &r, true), None);
        // A response is not a question.
        let reply = answer(&query(1, &[("_lutron._tcp.local", TYPE::PTR)]), &r, true).unwrap();
        assert_eq!(answer(&reply, &r, true), None);
    }

    #[test]
    fn host_and_instance_questions_are_answered_by_name_in_any_case() {
        let r = record();
        let host = r.host.to_uppercase();
        let bytes = answer(
            &query(9, &[(host.trim_end_matches('.'), TYPE::A)]),
            &r,
            true,
        )
        .unwrap();
        let reply = Packet::parse(&bytes).unwrap();
        assert!(matches!(
            reply.answers[..],
            [ResourceRecord {
                rdata: RData::A(_),
                ..
            }]
        ));
        let instance = r.fullname.trim_end_matches('.');
        let bytes = answer(
            &query(9, &[(instance, TYPE::SRV), (instance, TYPE::TXT)]),
            &r,
            true,
        )
        .unwrap();
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.answers.len(), 2);
    }

    #[test]
    fn a_unicast_query_from_port_5353_gets_full_ttls_and_no_echo() {
        let bytes = answer(
            &query(7, &[("_lutron._tcp.local", TYPE::PTR)]),
            &record(),
            false,
        )
        .unwrap();
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.id(), 0);
        assert!(reply.questions.is_empty());
        assert_eq!(reply.answers[0].ttl, 4500);
    }
}
