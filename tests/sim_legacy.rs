//! Legacy unicast queries (RFC 6762 §6.7, from a port other than 5353)
//! to a simulated fleet: each processor answers from its own address, as
//! a real one does, never the fleet from one address.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::Sim;
use simple_dns::{CLASS, Name, Packet, QCLASS, QTYPE, Question, TYPE};

fn ptr_query(id: u16) -> Vec<u8> {
    let mut packet = Packet::new_query(id);
    packet.questions.push(Question::new(
        Name::new_unchecked("_lutron._tcp.local"),
        QTYPE::TYPE(TYPE::PTR),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().unwrap()
}

/// Sends `query` to `to` from an ephemeral port and gathers every reply
/// that comes within `window` (a collection window, not a timing check).
fn replies(to: SocketAddr, query: &[u8], window: Duration) -> Vec<(SocketAddr, Vec<u8>)> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    sock.send_to(query, to).unwrap();
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < end {
        if let Ok((len, from)) = sock.recv_from(&mut buf) {
            out.push((from, buf[..len].to_vec()));
        }
    }
    out
}

/// The serial each reply describes, by the address it came from.
fn serials_by_source(replies: &[(SocketAddr, Vec<u8>)], id: u16) -> BTreeMap<IpAddr, u64> {
    let mut out = BTreeMap::new();
    for (from, bytes) in replies {
        assert_eq!(from.port(), 5353, "a legacy answer leaves from port 5353");
        let packet = Packet::parse(bytes).unwrap();
        assert_eq!(packet.id(), id, "a legacy answer echoes the query id");
        let read = handoff::discovery::read_response(bytes, from.ip())
            .unwrap()
            .unwrap();
        assert_eq!(
            read.records.len(),
            1,
            "one processor per answer, from {from}"
        );
        let info = handoff::processor::ProcessorInfo::from_record(&read.records[0]);
        let old = out.insert(from.ip(), u64::from(info.serial.unwrap().0));
        assert_eq!(old, None, "{from} answered twice");
    }
    out
}

fn manifest_serials(sim: &Sim) -> BTreeMap<IpAddr, u64> {
    sim.manifest
        .iter()
        .map(|p| {
            let address = p["addresses"][0].as_str().unwrap().parse().unwrap();
            (address, p["serial"].as_u64().unwrap())
        })
        .collect()
}

lan_test! {
    fn legacy_answers_to_the_group_leave_from_each_processors_own_address() {
        let sim = Sim::start(&["--count", "5", "--system-type", "ra3,qsx,caseta", "--seed", "151", "--no-probe"]);
        let group: SocketAddr = "224.0.0.251:5353".parse().unwrap();
        let got = replies(group, &ptr_query(4242), Duration::from_secs(1));
        assert_eq!(serials_by_source(&got, 4242), manifest_serials(&sim), "{got:?}");
    }
}

lan_test! {
    fn a_legacy_query_to_one_address_is_answered_by_that_processor_alone() {
        let sim = Sim::start(&["--count", "4", "--seed", "152", "--no-probe"]);
        for (address, serial) in manifest_serials(&sim) {
            let got = replies(SocketAddr::new(address, 5353), &ptr_query(77), Duration::from_millis(500));
            assert_eq!(serials_by_source(&got, 77), BTreeMap::from([(address, serial)]));
        }
    }
}
