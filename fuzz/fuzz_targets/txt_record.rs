//! TXT records into `ProcessorInfo`, and the legacy unicast DNS answers
//! they can come in (`handoff discover --host`).
//!
//! Input: a first byte, then either (low bit 0) a host name and an
//! instance name (each one length byte, then the bytes) followed by TXT
//! RDATA (length-prefixed strings, as on the wire), or (low bit 1) a whole
//! DNS response packet. Checks: no panic; a raw TXT string whose key is
//! UTF-8 splits and joins back to itself; every text field kept from TXT
//! is non-empty, at most `MAX_FIELD_LEN` bytes and free of control
//! characters (bad fields become warnings, never values); the record
//! prints as JSON; for a DNS answer, the follow-up query `discover --host`
//! would send for what it left out can be built (and parses).
#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use handoff::discovery::read_response;
use handoff::processor::{MAX_FIELD_LEN, ProcessorInfo, ServiceRecord, TxtEntry};
use libfuzzer_sys::fuzz_target;

const QUERIED: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let response = read_response(rest, QUERIED).expect("the follow-up query can be built");
        if let Some(response) = response {
            for record in &response.records {
                assert!(!record.addresses.is_empty(), "a record with no address");
                interpret(record);
            }
            if let Some(query) = response.follow_up {
                let query = simple_dns::Packet::parse(&query).expect("the follow-up parses");
                assert!(!query.questions.is_empty(), "a follow-up asks something");
            }
        }
        return;
    }
    let (host, rest) = take(rest);
    let (fullname, mut rdata) = take(rest);
    let mut txt = Vec::new();
    while !rdata.is_empty() {
        let (raw, tail) = take(rdata);
        let entry = TxtEntry::from_wire(raw);
        let key_len = raw.iter().position(|&b| b == b'=').unwrap_or(raw.len());
        if std::str::from_utf8(&raw[..key_len]).is_ok() {
            assert_eq!(entry.to_wire(), raw, "split and joined back");
        }
        txt.push(entry);
        rdata = tail;
    }
    let record = ServiceRecord {
        fullname: String::from_utf8_lossy(fullname).into_owned(),
        service_type: "_lutron._tcp.local.".into(),
        host: String::from_utf8_lossy(host).into_owned(),
        port: 22,
        addresses: BTreeSet::from([QUERIED]),
        txt,
    };
    interpret(&record);
});

/// One length byte, then that many bytes (fewer if the input ends).
fn take(buf: &[u8]) -> (&[u8], &[u8]) {
    match buf.split_first() {
        Some((&len, rest)) => rest.split_at(usize::from(len).min(rest.len())),
        None => (&[], &[]),
    }
}

fn interpret(record: &ServiceRecord) {
    let info = ProcessorInfo::from_record(record);
    for (name, field) in [
        ("SYSTYPE", &info.systype),
        ("CODEVER", &info.firmware),
        ("FW_STATUS", &info.fw_status),
        ("NW_STATUS", &info.nw_status),
        ("ST_STATUS", &info.st_status),
        ("CLAIM_STATUS", &info.claim_status),
    ] {
        if let Some(v) = field {
            assert!(
                !v.is_empty() && v.len() <= MAX_FIELD_LEN && !v.chars().any(char::is_control),
                "{name} kept as {v:?}"
            );
        }
    }
    if let Some(id) = info.id() {
        assert_eq!(id.len(), 8, "an id is 8 hex digits: {id}");
    }
    let _ = (info.product(), info.status_summary());
    serde_json::to_string(&info.to_json()).expect("prints as JSON");
}
