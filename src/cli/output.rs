//! Output for people and scripts, and files written whole or not at all.

use std::io::Write;

use crate::processor::ProcessorInfo;

/// The columns of the processor table; STATUS comes last.
const HEADERS: [&str; 7] = [
    "ID", "SERIAL", "PRODUCT", "ADDRESS", "MAC", "FIRMWARE", "STATUS",
];

/// The width the table keeps to: a terminal's default, and what a line in
/// a support ticket or a printed handover sheet holds.
pub const TABLE_WIDTH: usize = 80;

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

/// At most `max` characters of `s`, with "…" where it was cut: text from the
/// LAN may be any length (control characters escaped first).
fn fit(s: &str, max: usize) -> String {
    let s = crate::processor::printable(s);
    if s.chars().count() <= max {
        return s.into_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The cells of one processor: the id labels and support read as 8 hex
/// digits and as the decimal serial; one address, "+N" for more.
fn row(p: &ProcessorInfo) -> [String; 7] {
    let mut addresses = p.addresses.iter();
    let address = match (addresses.next(), addresses.len()) {
        (None, _) => "-".to_string(),
        (Some(a), 0) => a.to_string(),
        (Some(a), more) => format!("{a}+{more}"),
    };
    [
        or_dash(p.id()),
        or_dash(p.serial.map(|s| s.0.to_string())),
        fit(&p.product_short(), 14),
        address,
        or_dash(p.mac.map(|m| m.to_string())),
        fit(p.firmware.as_deref().unwrap_or("-"), 14),
        p.status_summary(),
    ]
}

/// A table of processors, one per line, columns padded, within
/// [`TABLE_WIDTH`] for usual values. A status that does not fit after the
/// other columns goes on, at its ", " separators, on the next lines, under
/// its column as far as the width allows; where even a short status would
/// not fit, FIRMWARE is left out (`--json` has every field).
pub fn processor_table<'a>(processors: impl IntoIterator<Item = &'a ProcessorInfo>) -> String {
    let rows: Vec<[String; 7]> = processors.into_iter().map(row).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let status = HEADERS.len() - 1;
    let mut shown: Vec<usize> = (0..status).collect();
    let start = |shown: &[usize]| shown.iter().map(|&i| widths[i] + 2).sum::<usize>();
    // Room for "good" (or the header) at least.
    if start(&shown) + 6 > TABLE_WIDTH {
        shown.retain(|&i| HEADERS[i] != "FIRMWARE");
    }
    let start = start(&shown);
    let mut out = String::new();
    let mut emit = |cells: &[String; 7]| {
        let mut line = String::new();
        for &i in &shown {
            line.push_str(&cells[i]);
            line.push_str(&" ".repeat(widths[i] - cells[i].chars().count() + 2));
        }
        let room = TABLE_WIDTH.saturating_sub(start);
        let mut parts = status_lines(&cells[status], room).into_iter();
        if let Some(first) = parts.next() {
            if first.chars().count() <= room {
                line.push_str(&first);
            } else {
                out.push_str(line.trim_end());
                out.push('\n');
                line = continuation(start, &first);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for rest in parts {
            out.push_str(&continuation(start, &rest));
            out.push('\n');
        }
    };
    emit(&HEADERS.map(String::from));
    for r in &rows {
        emit(r);
    }
    out
}

/// A continuation line: `text` under the status column, or further left
/// so that it ends within the width.
fn continuation(start: usize, text: &str) -> String {
    let indent = start.min(TABLE_WIDTH.saturating_sub(text.chars().count()));
    format!("{}{text}", " ".repeat(indent))
}

/// A status split at its ", " separators into lines of at most `room`
/// characters where it can be; a part longer than that has a line of its
/// own, cut to the table's width.
fn status_lines(status: &str, room: usize) -> Vec<String> {
    if status.chars().count() <= room {
        return vec![status.to_string()];
    }
    let parts: Vec<&str> = status.split(", ").collect();
    let mut lines: Vec<String> = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        let piece = if n + 1 == parts.len() {
            part.to_string()
        } else {
            format!("{part},")
        };
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + piece.chars().count() <= room => {
                l.push(' ');
                l.push_str(&piece);
            }
            _ => lines.push(fit(&piece, TABLE_WIDTH)),
        }
    }
    lines
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

/// What went wrong writing the CLI's own lines ([`outln!`]) other than a
/// closed pipe, kept so that the command ends non-zero with it.
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Writes one line of a command's output, as `println!` would, but never
/// panics: a closed pipe (`| head`) drops the rest quietly, and any other
/// error (a full disk under `> file`) drops the rest and is reported once
/// when the command ends ([`stdout_failure`]). A command such as `takeover`
/// must finish its steps whatever became of its standard output.
pub fn line(args: std::fmt::Arguments<'_>) {
    static CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    use std::sync::atomic::Ordering;
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.write_all(b"\n")) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_FAILED.set(e.to_string());
        }
    }
}

/// The error that stopped [`line`]'s output, other than a closed pipe.
pub fn stdout_failure() -> Option<&'static str> {
    STDOUT_FAILED.get().map(String::as_str)
}

/// `println!` for the CLI: see [`line`].
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Stdout for output written piece by piece: once the reader has gone
/// (`| head`), the rest is dropped quietly, as [`print_stdout`] does, so
/// that a closed pipe is neither an error nor the end of files written
/// beside it.
pub struct QuietStdout<W = std::io::Stdout> {
    out: W,
    closed: bool,
}

impl QuietStdout {
    pub fn new() -> QuietStdout {
        QuietStdout::over(std::io::stdout())
    }
}

impl<W: Write> QuietStdout<W> {
    pub fn over(out: W) -> QuietStdout<W> {
        QuietStdout { out, closed: false }
    }

    fn quiet(&mut self, r: std::io::Result<()>) -> std::io::Result<()> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

impl<W: Write> Write for QuietStdout<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.closed {
            let r = self.out.write_all(buf);
            self.quiet(r)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.quiet(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::{ServiceRecord, TxtEntry};

    /// A writer whose reader went away after `room` bytes.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.got.len() >= self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room - self.got.len());
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_drops_the_rest_quietly_but_other_errors_stay() {
        let mut out = QuietStdout::over(Pipe {
            got: Vec::new(),
            room: 5,
        });
        out.write_all(b"abc").unwrap();
        out.write_all(b"defgh").unwrap();
        out.write_all(b"more").unwrap();
        out.flush().unwrap();
        assert_eq!(out.out.got, b"abcde");
        assert!(out.closed);

        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = QuietStdout::over(Full);
        assert!(
            out.write_all(b"x").is_err(),
            "a full disk is still an error"
        );
    }

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
        assert!(
            lines[0].starts_with("ID        SERIAL    PRODUCT"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("0236e6a7  37152423  RA3      127.0.1.1"),
            "{table}"
        );
        assert!(lines[1].ends_with("23.06.28f000  good"), "{table}");
        assert!(
            lines[2].starts_with("-         -         unknown  -"),
            "{table}"
        );
        let mac_col = lines[0].find("MAC").unwrap();
        assert_eq!(&lines[1][mac_col..mac_col + 17], "02:4c:02:36:e6:a7");
    }

    #[test]
    fn a_status_that_does_not_fit_goes_on_under_its_column() {
        let mut p = ProcessorInfo::from_record(&ServiceRecord {
            fullname: "Lutron Status._lutron._tcp.local.".into(),
            service_type: "_lutron._tcp.local.".into(),
            host: "Lutron-0236e6a7.local.".into(),
            port: 22,
            addresses: ["192.168.100.200".parse().unwrap()].into_iter().collect(),
            txt: vec![
                TxtEntry::new("MACADDR", b"02:4c:02:36:e6:a7"),
                TxtEntry::new("CODEVER", b"26.00.14f000"),
                TxtEntry::new("SYSTYPE", b"HWQSProcessor"),
                TxtEntry::new("ST_STATUS", b"good"),
                TxtEntry::new("CLAIM_STATUS", b"Unclaimed"),
            ],
        });
        let table = processor_table([&p]);
        for line in table.lines() {
            assert!(line.chars().count() <= TABLE_WIDTH, "{table}");
        }
        assert!(table.contains("02:4c:02:36:e6:a7"), "{table}");
        assert!(
            table.contains("good") && table.contains("Unclaimed"),
            "{table}"
        );
        // A status too long for any line is cut, never wider than the table.
        p.st_status = Some("x".repeat(200));
        let table = processor_table([&p]);
        for line in table.lines() {
            assert!(line.chars().count() <= TABLE_WIDTH, "{table}");
        }
    }
}
