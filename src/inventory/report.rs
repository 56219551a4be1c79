//! The handover report in three forms, each written area by area as the
//! house is read: JSON (for scripts), Markdown (also what a terminal
//! shows), and one self-contained HTML file for the homeowner. Everything
//! that came from the processor is escaped: a name is data, never markup.

use std::io::Write;

use serde_json::{Value, json};

use super::{AreaReport, Counts, ProcessorFacts, ProjectFacts, Sink};

/// Several sinks fed at once.
pub struct Fanout(pub Vec<Box<dyn Sink + Send>>);

impl Sink for Fanout {
    fn start(&mut self, p: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.start(p, project))
    }
    fn area(&mut self, area: &AreaReport) -> std::io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.area(area))
    }
    fn finish(&mut self, counts: &Counts, warnings: &[String]) -> std::io::Result<()> {
        self.0
            .iter_mut()
            .try_for_each(|s| s.finish(counts, warnings))
    }
}

/// `{"processor":…,"project":…,"areas":[…],"counts":…,"warnings":[…]}`,
/// each area with its `zones` and `devices` (and their `buttons`).
pub struct JsonReport<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonReport<W> {
    pub fn new(out: W) -> Self {
        JsonReport { out, first: true }
    }
}

impl<W: Write> Sink for JsonReport<W> {
    fn start(&mut self, p: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()> {
        write!(
            self.out,
            "{{\"processor\":{},\"project\":{},\"areas\":[",
            json!(p),
            json!(project)
        )
    }
    fn area(&mut self, area: &AreaReport) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, area)?;
        Ok(())
    }
    fn finish(&mut self, counts: &Counts, warnings: &[String]) -> std::io::Result<()> {
        writeln!(
            self.out,
            "],\"counts\":{},\"warnings\":{}}}",
            json!(counts),
            json!(warnings)
        )?;
        self.out.flush()
    }
}

fn level_text(level: &Value) -> String {
    match level {
        Value::Number(n) => format!("{n}%"),
        Value::String(s) => s.clone(),
        _ => "unknown".into(),
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "—".into(), ToString::to_string)
}

/// Markdown; table cells escape `|`, `\` and line breaks.
pub struct MarkdownReport<W: Write> {
    out: W,
}

impl<W: Write> MarkdownReport<W> {
    pub fn new(out: W) -> Self {
        MarkdownReport { out }
    }
}

fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl<W: Write> Sink for MarkdownReport<W> {
    fn start(&mut self, p: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(o, "# Handover report: {}\n", md(&project.name))?;
        writeln!(o, "| | |\n|---|---|")?;
        writeln!(o, "| Project type | {} |", md(&project.product_type))?;
        writeln!(
            o,
            "| Processor | {} ({}) |",
            md(&p.model),
            md(&p.device_type)
        )?;
        writeln!(o, "| Serial | {} |", opt(&p.serial))?;
        writeln!(o, "| MAC | {} |", md(&p.macs.join(", ")))?;
        writeln!(o, "| Firmware | {} |", md(&opt(&p.firmware)))?;
        writeln!(o, "| Address | {} |\n", md(&p.address))
    }
    fn area(&mut self, a: &AreaReport) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(o, "## {} (area {})\n", md(&a.area.name), md(&a.area.id))?;
        if !a.zones.is_empty() {
            writeln!(o, "| Zone | Type | Level |\n|---|---|---|")?;
            for z in &a.zones {
                writeln!(
                    o,
                    "| {} | {} | {} |",
                    md(&z.name),
                    md(&z.zone_type),
                    md(&level_text(&z.level))
                )?;
            }
            writeln!(o)?;
        }
        if !a.devices.is_empty() {
            writeln!(
                o,
                "| Device | Type | Model | Serial | Firmware | Buttons |\n|---|---|---|---|---|---|"
            )?;
            for d in &a.devices {
                let buttons: Vec<String> = d
                    .buttons
                    .iter()
                    .map(|b| format!("{}: {}", opt(&b.number), b.engraving))
                    .collect();
                writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    md(&d.name),
                    md(&d.device_type),
                    md(&d.model),
                    opt(&d.serial),
                    md(&opt(&d.firmware)),
                    md(&buttons.join("; "))
                )?;
            }
            writeln!(o)?;
        }
        Ok(())
    }
    fn finish(&mut self, c: &Counts, warnings: &[String]) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(
            o,
            "## Totals\n\n{} areas, {} zones, {} devices, {} buttons\n",
            c.areas, c.zones, c.devices, c.buttons
        )?;
        for (t, n) in c.zones_by_type.iter().chain(&c.devices_by_type) {
            writeln!(o, "- {}: {n}", md(t))?;
        }
        if !warnings.is_empty() {
            writeln!(o, "\n## Warnings\n")?;
            for w in warnings {
                writeln!(o, "- {}", md(w))?;
            }
        }
        o.flush()
    }
}

/// HTML text: `&`, `<`, `>`, quotes escaped.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One HTML file, its style inline: no script, nothing fetched.
pub struct HtmlReport<W: Write> {
    out: W,
}

impl<W: Write> HtmlReport<W> {
    pub fn new(out: W) -> Self {
        HtmlReport { out }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}\
th{background:#f3f3f3}h2{border-bottom:1px solid #ddd}.warn{color:#a40}";

impl<W: Write> Sink for HtmlReport<W> {
    fn start(&mut self, p: &ProcessorFacts, project: &ProjectFacts) -> std::io::Result<()> {
        let o = &mut self.out;
        let title = html(&project.name);
        writeln!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Handover report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>Handover report: {title}</h1>\n<table>"
        )?;
        for (k, v) in [
            ("Project type", html(&project.product_type)),
            (
                "Processor",
                format!("{} ({})", html(&p.model), html(&p.device_type)),
            ),
            ("Serial", opt(&p.serial)),
            ("MAC", html(&p.macs.join(", "))),
            ("Firmware", html(&opt(&p.firmware))),
            ("Address", html(&p.address)),
        ] {
            writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>")?;
        }
        writeln!(o, "</table>")
    }
    fn area(&mut self, a: &AreaReport) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(
            o,
            "<section>\n<h2>{} <small>(area {})</small></h2>",
            html(&a.area.name),
            html(&a.area.id)
        )?;
        if !a.zones.is_empty() {
            writeln!(
                o,
                "<table>\n<tr><th>Zone</th><th>Type</th><th>Level</th></tr>"
            )?;
            for z in &a.zones {
                writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html(&z.name),
                    html(&z.zone_type),
                    html(&level_text(&z.level))
                )?;
            }
            writeln!(o, "</table>")?;
        }
        if !a.devices.is_empty() {
            writeln!(
                o,
                "<table>\n<tr><th>Device</th><th>Type</th><th>Model</th><th>Serial</th>\
                 <th>Firmware</th><th>Buttons</th></tr>"
            )?;
            for d in &a.devices {
                let buttons: Vec<String> = d
                    .buttons
                    .iter()
                    .map(|b| format!("{}: {}", opt(&b.number), html(&b.engraving)))
                    .collect();
                writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html(&d.name),
                    html(&d.device_type),
                    html(&d.model),
                    opt(&d.serial),
                    html(&opt(&d.firmware)),
                    buttons.join("<br>")
                )?;
            }
            writeln!(o, "</table>")?;
        }
        writeln!(o, "</section>")
    }
    fn finish(&mut self, c: &Counts, warnings: &[String]) -> std::io::Result<()> {
        let o = &mut self.out;
        writeln!(
            o,
            "<section>\n<h2>Totals</h2>\n<p>{} areas, {} zones, {} devices, {} buttons</p>\n<table>",
            c.areas, c.zones, c.devices, c.buttons
        )?;
        for (t, n) in c.zones_by_type.iter().chain(&c.devices_by_type) {
            writeln!(o, "<tr><td>{}</td><td>{n}</td></tr>", html(t))?;
        }
        writeln!(o, "</table>\n</section>")?;
        if !warnings.is_empty() {
            writeln!(o, "<section class=\"warn\">\n<h2>Warnings</h2>\n<ul>")?;
            for w in warnings {
                writeln!(o, "<li>{}</li>", html(w))?;
            }
            writeln!(o, "</ul>\n</section>")?;
        }
        writeln!(o, "</body>\n</html>")?;
        o.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{AreaItem, ButtonItem, DeviceItem, ZoneItem};

    fn area() -> AreaReport {
        AreaReport {
            area: AreaItem {
                id: "5".into(),
                name: "Kid's <Room> & \"den\"".into(),
                parent: None,
            },
            zones: vec![ZoneItem {
                id: "7".into(),
                name: "<script>alert(1)</script>".into(),
                zone_type: "Dimmed".into(),
                level: json!(40),
            }],
            devices: vec![DeviceItem {
                id: "8".into(),
                name: "Pico | 1".into(),
                device_type: "Pico3ButtonRaiseLower".into(),
                model: "PJ2".into(),
                serial: Some(1),
                firmware: None,
                buttons: vec![ButtonItem {
                    id: "9".into(),
                    number: Some(2),
                    engraving: "<b>On</b>".into(),
                }],
            }],
        }
    }

    #[test]
    fn html_escapes_everything_from_the_processor() {
        let mut out = Vec::new();
        let mut r = HtmlReport::new(&mut out);
        r.start(&ProcessorFacts::default(), &ProjectFacts::default())
            .unwrap();
        r.area(&area()).unwrap();
        r.finish(&Counts::default(), &["a <warning>".into()])
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("<script>"), "{text}");
        assert!(!text.contains("<b>On"), "{text}");
        assert!(text.contains("Kid&#39;s &lt;Room&gt; &amp; &quot;den&quot;"));
        assert!(text.contains("a &lt;warning&gt;"));
    }

    #[test]
    fn json_is_one_document_with_every_area() {
        let mut out = Vec::new();
        let mut r = JsonReport::new(&mut out);
        r.start(&ProcessorFacts::default(), &ProjectFacts::default())
            .unwrap();
        r.area(&area()).unwrap();
        r.area(&area()).unwrap();
        r.finish(&Counts::default(), &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["areas"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["areas"][0]["devices"][0]["buttons"][0]["engraving"],
            "<b>On</b>"
        );
    }
}
