//! Output for people and scripts, and files written whole or not at all.

use std::io::Write;

use crate::processor::ProcessorInfo;

/// The columns of the processor table.
const HEADERS: [&str; 6] = ["ID", "PRODUCT", "ADDRESSES", "MAC", "FIRMWARE", "STATUS"];

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

fn row(p: &ProcessorInfo) -> [String; 6] {
    let addresses = if p.addresses.is_empty() {
        "-".to_string()
    } else {
        p.addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    [
        or_dash(p.id()),
        p.product(),
        addresses,
        or_dash(p.mac.map(|m| m.to_string())),
        or_dash(p.firmware.clone()),
        p.status_summary(),
    ]
}

/// A table of processors, one per line, columns padded.
pub fn processor_table<'a>(processors: impl IntoIterator<Item = &'a ProcessorInfo>) -> String {
    let rows: Vec<[String; 6]> = processors.into_iter().map(row).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                l.push_str(cell);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADERS.map(String::from));
    for r in &rows {
        line(r);
    }
    out
}

/// One line describing a processor, for `--watch`.
pub fn processor_line(p: &ProcessorInfo) -> String {
    row(p).join("  ")
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a
/// message, so it ends quietly.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{ServiceRecord, TxtEntry};

    #[test]
    fn table_aligns_columns_and_dashes_missing_facts() {
        let full = ProcessorInfo::from_record(&ServiceRecord {
            fullname: "Lutron Status._lutron._tcp.local.".into(),
            service_type: "_lutron._tcp.local.".into(),
            host: "Lutron-0236e6a7.local.".into(),
            port: 22,
            addresses: ["127.0.1.1".parse().unwrap()].into_iter().collect(),
            txt: vec![
                TxtEntry::new("MACADDR", b"02:4c:02:36:e6:a7"),
                TxtEntry::new("CODEVER", b"23.06.28f000"),
                TxtEntry::new("SYSTYPE", b"RadioRa3Processor"),
                TxtEntry::new("ST_STATUS", b"good"),
            ],
        });
        let bare = ProcessorInfo::default();
        let table = processor_table([&full, &bare]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID        PRODUCT"), "{table}");
        assert!(
            lines[1].starts_with("0236e6a7  RadioRA 3 Processor"),
            "{table}"
        );
        assert!(lines[1].ends_with("23.06.28f000  good"), "{table}");
        assert!(
            lines[2].starts_with("-         unknown Lutron device"),
            "{table}"
        );
        let mac_col = lines[0].find("MAC").unwrap();
        assert_eq!(&lines[1][mac_col..mac_col + 17], "02:4c:02:36:e6:a7");
    }
}
