use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use super::{DevClass, Mac, Serial, SystemType};

/// One TXT record string, split at its first `=` (RFC 6763 §6.3).
///
/// The value stays bytes: DNS-SD values may be binary, and deciding what is
/// acceptable is [`ProcessorInfo::from_record`]'s job, not the transport's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxtEntry {
    pub key: String,
    /// `None` for a bare key without `=` (a boolean attribute).
    pub value: Option<Vec<u8>>,
}

impl TxtEntry {
    pub fn new(key: &str, value: &[u8]) -> TxtEntry {
        TxtEntry {
            key: key.to_string(),
            value: Some(value.to_vec()),
        }
    }

    /// Splits one raw TXT string as it came off the wire.
    pub fn from_wire(raw: &[u8]) -> TxtEntry {
        match raw.iter().position(|&b| b == b'=') {
            Some(eq) => TxtEntry {
                key: String::from_utf8_lossy(&raw[..eq]).into_owned(),
                value: Some(raw[eq + 1..].to_vec()),
            },
            None => TxtEntry {
                key: String::from_utf8_lossy(raw).into_owned(),
                value: None,
            },
        }
    }

    /// The raw TXT string (`key=value`).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = self.key.as_bytes().to_vec();
        if let Some(v) = &self.value {
            out.push(b'=');
            out.extend_from_slice(v);
        }
        out
    }
}

/// What DNS-SD said about one service instance, before interpretation.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ServiceRecord {
    /// The full instance name, e.g. `Lutron Status._lutron._tcp.local.`
    pub fullname: String,
    /// The service type, e.g. `_lutron._tcp.local.`
    pub service_type: String,
    /// The SRV target, e.g. `Lutron-0236e6a7.local.`
    pub host: String,
    /// The SRV port (22 on real processors; clients ignore it).
    pub port: u16,
    pub addresses: BTreeSet<IpAddr>,
    pub txt: Vec<TxtEntry>,
}

impl ServiceRecord {
    /// The instance part of the full name (`Lutron Status`).
    pub fn instance(&self) -> &str {
        self.fullname
            .strip_suffix(self.service_type.as_str())
            .map(|s| s.trim_end_matches('.'))
            .unwrap_or(&self.fullname)
    }
}

/// Longest TXT value handoff accepts for a short field such as `CODEVER`.
/// Real values are 8 to 20 bytes; anything near the 255-byte TXT string
/// limit is garbage, and it must not widen a table or a log line.
pub const MAX_FIELD_LEN: usize = 64;

/// A processor, as discovery knows it.
///
/// Parsing a TXT record never fails as a whole: a processor with a broken
/// field is still a processor on the LAN that an integrator needs to see, so
/// a bad field becomes a warning here and the rest is kept.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ProcessorInfo {
    pub serial: Option<Serial>,
    pub mac: Option<Mac>,
    pub host: String,
    pub instance: String,
    pub service_type: String,
    pub port: u16,
    pub addresses: BTreeSet<IpAddr>,
    /// The `SYSTYPE` value exactly as sent.
    pub systype: Option<String>,
    pub system_type: Option<SystemType>,
    pub devclass: Option<DevClass>,
    pub firmware: Option<String>,
    pub fw_status: Option<String>,
    pub nw_status: Option<String>,
    pub st_status: Option<String>,
    pub claim_status: Option<String>,
    pub warnings: Vec<String>,
}

impl ProcessorInfo {
    /// Interprets a DNS-SD record. Identity comes from the host name first
    /// (`Lutron-<id>.local.`, what every real client keys on), then `SERNUM`.
    pub fn from_record(record: &ServiceRecord) -> ProcessorInfo {
        let mut info = ProcessorInfo {
            host: record.host.clone(),
            instance: record.instance().to_string(),
            service_type: record.service_type.clone(),
            port: record.port,
            addresses: record.addresses.clone(),
            ..ProcessorInfo::default()
        };
        let fields = TxtFields::new(&record.txt, &mut info.warnings);

        let mut sernum = None;
        if let Some(v) = fields.get("SERNUM", &mut info.warnings) {
            match v.parse::<Serial>() {
                Ok(s) => sernum = Some(s),
                Err(_) => info.warnings.push(format!(
                    "SERNUM '{v}' is not a decimal serial number; ignored"
                )),
            }
        }
        let from_host = Serial::from_host_name(&record.host);
        if record.host.is_empty() {
            info.warnings.push("no host name (SRV record)".into());
        } else if from_host.is_none() {
            info.warnings.push(format!(
                "host name '{}' is not Lutron-<8 hex digits>.local.",
                super::printable(&record.host)
            ));
        }
        info.serial = match (from_host, sernum) {
            (Some(h), Some(s)) if h != s => {
                info.warnings.push(format!(
                    "host name says serial {h} ({}) but SERNUM says {s} ({}); using the host name's",
                    h.id(),
                    s.id()
                ));
                Some(h)
            }
            (h, s) => h.or(s),
        };

        if let Some(v) = fields.get("MACADDR", &mut info.warnings) {
            match v.parse::<Mac>() {
                Ok(m) => info.mac = Some(m),
                Err(e) => info.warnings.push(format!("MACADDR: {e}; ignored")),
            }
        } else if !fields.has("MACADDR") {
            info.warnings.push("no MACADDR in TXT record".into());
        }

        if let Some(v) = fields.get("DEVCLASS", &mut info.warnings) {
            match DevClass::parse(&v) {
                Some(d) => info.devclass = Some(d),
                None => info
                    .warnings
                    .push(format!("DEVCLASS '{v}' is not 8 hex digits; ignored")),
            }
        }

        info.systype = fields.get("SYSTYPE", &mut info.warnings);
        let by_devclass = info.devclass.and_then(|d| d.system_type());
        info.system_type = match (&info.systype, by_devclass) {
            (Some(st), dc) => {
                let t = SystemType::from_systype(st);
                if let Some(dc) = dc.filter(|dc| !matches!(t, SystemType::Unknown(_)) && *dc != t) {
                    info.warnings.push(format!(
                        "SYSTYPE '{st}' and DEVCLASS {} disagree ({} vs {}); using SYSTYPE",
                        info.devclass.map(|d| d.to_string()).unwrap_or_default(),
                        t.short_name(),
                        dc.short_name()
                    ));
                }
                Some(t)
            }
            (None, dc) => dc,
        };

        info.firmware = fields.get("CODEVER", &mut info.warnings);
        info.fw_status = fields.get("FW_STATUS", &mut info.warnings);
        info.nw_status = fields.get("NW_STATUS", &mut info.warnings);
        info.st_status = fields.get("ST_STATUS", &mut info.warnings);
        info.claim_status = fields.get("CLAIM_STATUS", &mut info.warnings);
        info
    }

    /// The 8-hex id, when the serial is known.
    pub fn id(&self) -> Option<String> {
        self.serial.map(|s| s.id())
    }

    /// The human product name.
    pub fn product(&self) -> String {
        match &self.system_type {
            Some(t) => t.product(self.devclass),
            None => "unknown Lutron device".into(),
        }
    }

    /// The product name shortened for a table (see
    /// [`SystemType::product_short`]).
    pub fn product_short(&self) -> String {
        match &self.system_type {
            Some(t) => t.product_short(self.devclass),
            None => "unknown".into(),
        }
    }

    /// A short status for a table: system status, plus the claim state
    /// where the processor advertises one.
    pub fn status_summary(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(s) = &self.st_status {
            parts.push(s);
        }
        if let Some(c) = &self.claim_status {
            parts.push(c);
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }

    /// The JSON shape `discover --json` prints and `sim --manifest` writes.
    pub fn to_json(&self) -> ProcessorJson<'_> {
        ProcessorJson {
            id: self.id(),
            serial: self.serial,
            mac: self.mac,
            host: &self.host,
            addresses: self.addresses.iter().map(|a| a.to_string()).collect(),
            system_type: self.systype.as_deref(),
            product: self.product(),
            firmware: self.firmware.as_deref(),
            devclass: self.devclass.map(|d| d.to_string()),
            instance: &self.instance,
            service_type: &self.service_type,
            port: self.port,
            fw_status: self.fw_status.as_deref(),
            nw_status: self.nw_status.as_deref(),
            st_status: self.st_status.as_deref(),
            claim_status: self.claim_status.as_deref(),
            warnings: &self.warnings,
        }
    }
}

/// The JSON form of a [`ProcessorInfo`]; field names are DESIGN.md's.
#[derive(Serialize, Debug)]
pub struct ProcessorJson<'a> {
    pub id: Option<String>,
    pub serial: Option<Serial>,
    pub mac: Option<Mac>,
    pub host: &'a str,
    pub addresses: Vec<String>,
    pub system_type: Option<&'a str>,
    pub product: String,
    pub firmware: Option<&'a str>,
    pub devclass: Option<String>,
    pub instance: &'a str,
    pub service_type: &'a str,
    pub port: u16,
    pub fw_status: Option<&'a str>,
    pub nw_status: Option<&'a str>,
    pub st_status: Option<&'a str>,
    pub claim_status: Option<&'a str>,
    pub warnings: &'a [String],
}

/// TXT entries by key, with RFC 6763's rules: keys are case-insensitive and
/// only the first occurrence of a key counts.
struct TxtFields<'a> {
    entries: Vec<&'a TxtEntry>,
}

impl<'a> TxtFields<'a> {
    fn new(txt: &'a [TxtEntry], warnings: &mut Vec<String>) -> TxtFields<'a> {
        let mut entries: Vec<&TxtEntry> = Vec::new();
        for e in txt {
            if e.key.is_empty() {
                if e.value.is_some() {
                    warnings.push("TXT string with an empty key; ignored".into());
                }
                continue;
            }
            if entries
                .iter()
                .any(|seen| seen.key.eq_ignore_ascii_case(&e.key))
            {
                warnings.push(format!(
                    "TXT key {} appears more than once; the first is used",
                    super::printable(&e.key)
                ));
                continue;
            }
            entries.push(e);
        }
        TxtFields { entries }
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key.eq_ignore_ascii_case(key))
    }

    /// The value of `key` as text, or `None` with a warning when it is
    /// present but unusable (no value, empty, not UTF-8, control characters,
    /// oversized).
    fn get(&self, key: &str, warnings: &mut Vec<String>) -> Option<String> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.key.eq_ignore_ascii_case(key))?;
        let Some(raw) = &entry.value else {
            warnings.push(format!("{key} has no value; ignored"));
            return None;
        };
        match super::field_text(raw) {
            Ok(text) => Some(text.to_string()),
            Err(why) => {
                warnings.push(format!("{key} {why}; ignored"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra3_txt() -> Vec<TxtEntry> {
        vec![
            TxtEntry::new("MACADDR", b"a0:f6:fd:12:34:56"),
            TxtEntry::new("CODEVER", b"26.00.14f000"),
            TxtEntry::new("DEVCLASS", b"081B0101"),
            TxtEntry::new("FW_STATUS", b"1:NoUpdate"),
            TxtEntry::new("NW_STATUS", b"11:InternetWorking"),
            TxtEntry::new("ST_STATUS", b"good"),
            TxtEntry::new("SYSTYPE", b"RadioRa3Processor"),
        ]
    }

    fn record(host: &str, txt: Vec<TxtEntry>) -> ServiceRecord {
        ServiceRecord {
            fullname: "Lutron Status._lutron._tcp.local.".into(),
            service_type: "_lutron._tcp.local.".into(),
            host: host.into(),
            port: 22,
            addresses: ["192.0.2.10".parse().unwrap()].into_iter().collect(),
            txt,
        }
    }

    fn with(key: &str, value: Option<&[u8]>) -> Vec<TxtEntry> {
        let mut txt: Vec<TxtEntry> = ra3_txt().into_iter().filter(|e| e.key != key).collect();
        txt.push(TxtEntry {
            key: key.into(),
            value: value.map(|v| v.to_vec()),
        });
        txt
    }

    fn without(key: &str) -> Vec<TxtEntry> {
        ra3_txt().into_iter().filter(|e| e.key != key).collect()
    }

    const HOST: &str = "Lutron-0236e6a7.local.";

    #[test]
    fn complete_record_parses_without_warnings() {
        let info = ProcessorInfo::from_record(&record(HOST, ra3_txt()));
        assert_eq!(info.warnings, Vec::<String>::new());
        assert_eq!(info.serial, Some(Serial(37152423)));
        assert_eq!(info.id().as_deref(), Some("0236e6a7"));
        assert_eq!(info.mac, Some("a0:f6:fd:12:34:56".parse().unwrap()));
        assert_eq!(info.system_type, Some(SystemType::RadioRa3));
        assert_eq!(info.systype.as_deref(), Some("RadioRa3Processor"));
        assert_eq!(info.devclass, DevClass::parse("081B0101"));
        assert_eq!(info.firmware.as_deref(), Some("26.00.14f000"));
        assert_eq!(info.st_status.as_deref(), Some("good"));
        assert_eq!(info.instance, "Lutron Status");
        assert_eq!(info.product(), "RadioRA 3 Processor");
    }

    #[test]
    fn every_missing_key_keeps_the_rest() {
        for e in ra3_txt() {
            let info = ProcessorInfo::from_record(&record(HOST, without(&e.key)));
            assert_eq!(info.serial, Some(Serial(37152423)), "without {}", e.key);
            let others_present = [
                ("MACADDR", info.mac.is_some()),
                ("CODEVER", info.firmware.is_some()),
                ("DEVCLASS", info.devclass.is_some()),
                ("FW_STATUS", info.fw_status.is_some()),
                ("NW_STATUS", info.nw_status.is_some()),
                ("ST_STATUS", info.st_status.is_some()),
                ("SYSTYPE", info.systype.is_some()),
            ];
            for (k, present) in others_present {
                assert_eq!(present, k != e.key, "without {}: {k}", e.key);
            }
            // The product line still comes through from the other key.
            assert_eq!(
                info.system_type,
                Some(SystemType::RadioRa3),
                "without {}",
                e.key
            );
        }
        let no_mac = ProcessorInfo::from_record(&record(HOST, without("MACADDR")));
        assert_eq!(
            no_mac.warnings,
            vec!["no MACADDR in TXT record".to_string()]
        );
    }

    #[test]
    fn empty_values_are_warnings_not_failures() {
        for e in ra3_txt() {
            let info = ProcessorInfo::from_record(&record(HOST, with(&e.key, Some(b""))));
            assert_eq!(info.warnings, vec![format!("{} is empty; ignored", e.key)]);
            assert_eq!(info.serial, Some(Serial(37152423)));
        }
    }

    #[test]
    fn bare_keys_without_a_value_are_warnings() {
        let info = ProcessorInfo::from_record(&record(HOST, with("CODEVER", None)));
        assert_eq!(info.firmware, None);
        assert_eq!(
            info.warnings,
            vec!["CODEVER has no value; ignored".to_string()]
        );
        assert!(info.mac.is_some());
    }

    #[test]
    fn oversized_values_are_dropped_with_a_warning() {
        // A TXT string is at most 255 bytes: "CODEVER=" plus 247.
        let long = vec![b'9'; 247];
        let entry = TxtEntry::new("CODEVER", &long);
        assert_eq!(entry.to_wire().len(), 255);
        let info = ProcessorInfo::from_record(&record(HOST, with("CODEVER", Some(&long))));
        assert_eq!(info.firmware, None);
        assert_eq!(
            info.warnings,
            vec!["CODEVER is 247 bytes long (at most 64 expected); ignored".to_string()]
        );
        assert_eq!(info.system_type, Some(SystemType::RadioRa3));
    }

    #[test]
    fn non_utf8_values_are_dropped_with_a_warning() {
        let info =
            ProcessorInfo::from_record(&record(HOST, with("SYSTYPE", Some(&[0xff, 0xfe, b'R']))));
        assert_eq!(info.systype, None);
        assert_eq!(
            info.warnings,
            vec!["SYSTYPE is not UTF-8; ignored".to_string()]
        );
        // DEVCLASS still names the product line.
        assert_eq!(info.system_type, Some(SystemType::RadioRa3));
    }

    #[test]
    fn control_characters_are_refused() {
        let info =
            ProcessorInfo::from_record(&record(HOST, with("ST_STATUS", Some(b"good\x1b[2J"))));
        assert_eq!(info.st_status, None);
        assert_eq!(
            info.warnings,
            vec!["ST_STATUS contains control characters; ignored".to_string()]
        );
    }

    #[test]
    fn wrong_types_are_warnings() {
        let info = ProcessorInfo::from_record(&record(HOST, with("MACADDR", Some(b"not-a-mac"))));
        assert_eq!(info.mac, None);
        assert_eq!(info.warnings.len(), 1);
        assert!(info.warnings[0].starts_with("MACADDR: 'not-a-mac' is not a MAC address"));

        let info = ProcessorInfo::from_record(&record(HOST, with("DEVCLASS", Some(b"0x81B01"))));
        assert_eq!(info.devclass, None);
        assert_eq!(
            info.warnings,
            vec!["DEVCLASS '0x81B01' is not 8 hex digits; ignored".to_string()]
        );

        let info = ProcessorInfo::from_record(&record(HOST, with("SERNUM", Some(b"12ab"))));
        assert_eq!(info.serial, Some(Serial(37152423)));
        assert_eq!(
            info.warnings,
            vec!["SERNUM '12ab' is not a decimal serial number; ignored".to_string()]
        );

        let info = ProcessorInfo::from_record(&record(HOST, with("SERNUM", Some(b"99999999999"))));
        assert_eq!(info.serial, Some(Serial(37152423)));
        assert_eq!(info.warnings.len(), 1);
    }

    #[test]
    fn serial_comes_from_host_name_then_sernum() {
        // Host name alone.
        let info = ProcessorInfo::from_record(&record(HOST, ra3_txt()));
        assert_eq!(info.serial, Some(Serial(0x0236e6a7)));

        // SERNUM alone (host name not in the Lutron form).
        let info = ProcessorInfo::from_record(&record(
            "qsx-closet.local.",
            with("SERNUM", Some(b"37152423")),
        ));
        assert_eq!(info.serial, Some(Serial(37152423)));
        assert_eq!(
            info.warnings,
            vec!["host name 'qsx-closet.local.' is not Lutron-<8 hex digits>.local.".to_string()]
        );
    }

    #[test]
    fn serial_and_host_name_disagreement_keeps_the_host_name() {
        let info = ProcessorInfo::from_record(&record(HOST, with("SERNUM", Some(b"12345678"))));
        assert_eq!(info.serial, Some(Serial(37152423)));
        assert_eq!(info.warnings.len(), 1);
        assert!(
            info.warnings[0].contains("SERNUM says 12345678"),
            "{:?}",
            info.warnings
        );
        // Agreement is not a warning.
        let info = ProcessorInfo::from_record(&record(HOST, with("SERNUM", Some(b"37152423"))));
        assert_eq!(info.warnings, Vec::<String>::new());
    }

    #[test]
    fn no_serial_anywhere_is_kept_without_id() {
        let info = ProcessorInfo::from_record(&record("", ra3_txt()));
        assert_eq!(info.serial, None);
        assert_eq!(info.id(), None);
        assert!(info.mac.is_some());
        assert_eq!(info.warnings, vec!["no host name (SRV record)".to_string()]);
    }

    #[test]
    fn systype_and_devclass_disagreement_keeps_systype() {
        let info = ProcessorInfo::from_record(&record(HOST, with("DEVCLASS", Some(b"08110201"))));
        assert_eq!(info.system_type, Some(SystemType::RadioRa3));
        assert_eq!(info.warnings.len(), 1);
        assert!(info.warnings[0].contains("disagree"));
    }

    #[test]
    fn unknown_systype_is_kept_as_sent() {
        let info = ProcessorInfo::from_record(&record(HOST, with("SYSTYPE", Some(b"Athena"))));
        assert_eq!(info.system_type, Some(SystemType::Unknown("Athena".into())));
        assert_eq!(info.systype.as_deref(), Some("Athena"));
        assert_eq!(info.product(), "unknown (Athena)");
        assert_eq!(info.warnings, Vec::<String>::new());
    }

    #[test]
    fn keys_are_case_insensitive_and_first_wins() {
        let mut txt = ra3_txt();
        txt.insert(0, TxtEntry::new("codever", b"01.02.03"));
        let info = ProcessorInfo::from_record(&record(HOST, txt));
        assert_eq!(info.firmware.as_deref(), Some("01.02.03"));
        assert_eq!(
            info.warnings,
            vec!["TXT key CODEVER appears more than once; the first is used".to_string()]
        );
    }

    #[test]
    fn wire_strings_split_at_the_first_equals() {
        assert_eq!(
            TxtEntry::from_wire(b"A=b=c"),
            TxtEntry {
                key: "A".into(),
                value: Some(b"b=c".to_vec())
            }
        );
        assert_eq!(
            TxtEntry::from_wire(b"flag"),
            TxtEntry {
                key: "flag".into(),
                value: None
            }
        );
        assert_eq!(TxtEntry::from_wire(b"K=").value, Some(vec![]));
        assert_eq!(TxtEntry::from_wire(b"").key, "");
        let garbage = TxtEntry::from_wire(&[0xff, b'=', 0xfe]);
        let info = ProcessorInfo::from_record(&record(HOST, vec![garbage]));
        assert_eq!(info.serial, Some(Serial(37152423)));
    }

    #[test]
    fn json_uses_design_field_names() {
        let info = ProcessorInfo::from_record(&record(HOST, ra3_txt()));
        let v = serde_json::to_value(info.to_json()).unwrap();
        assert_eq!(v["id"], "0236e6a7");
        assert_eq!(v["serial"], 37152423);
        assert_eq!(v["mac"], "a0:f6:fd:12:34:56");
        assert_eq!(v["host"], HOST);
        assert_eq!(v["addresses"], serde_json::json!(["192.0.2.10"]));
        assert_eq!(v["system_type"], "RadioRa3Processor");
        assert_eq!(v["product"], "RadioRA 3 Processor");
        assert_eq!(v["firmware"], "26.00.14f000");
        assert_eq!(v["devclass"], "081B0101");
    }

    /// Host names and TXT keys come from any device on the LAN: a warning
    /// quoting them must not carry a terminal escape or a line break into
    /// stderr or a log.
    #[test]
    fn warnings_quote_host_names_and_txt_keys_without_control_characters() {
        let mut txt = ra3_txt();
        txt.push(TxtEntry::new("X\x1b[2J\nY", b"1"));
        txt.push(TxtEntry::new("x\x1b[2J\ny", b"2"));
        let info = ProcessorInfo::from_record(&record("evil\x1b]0;pwned\x07\n.local.", txt));
        assert_eq!(info.warnings.len(), 2, "{:?}", info.warnings);
        for w in &info.warnings {
            assert!(!w.chars().any(char::is_control), "{w:?}");
        }
        assert!(
            info.warnings[0].contains("x\\u{1b}[2J\\ny"),
            "{:?}",
            info.warnings
        );
        assert!(
            info.warnings[1].contains("evil\\u{1b}]0;pwned\\u{7}\\n.local."),
            "{:?}",
            info.warnings
        );
    }
}
