//! How `handoff cloud …` prints: one line (or one table) for people, one
//! JSON object with `--json`, and a refusal as the rule that spoke.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cloud::store::ProcessorRecord;
use crate::cloud::{GrantSource, Place, Refusal, Remaining, Role, Timestamp};

/// A refusal is the vendor's rule speaking: its own exit code (3), the
/// rule, and what to do.
pub(super) fn refused(refusal: &Refusal, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"result": "refused", "rule": refusal.rule(), "why": refusal.to_string(), "guidance": refusal.guidance()})
        );
    }
    eprintln!("refused: {refusal}");
    eprintln!("  (rule: {})", refusal.rule());
    ExitCode::from(3)
}

pub(super) fn print(json: bool, value: Value, human: impl FnOnce() -> String) -> ExitCode {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
    ExitCode::SUCCESS
}

/// Time left as Manage Access shows it: `29d 23h`, `5h 10m`, `40s`.
pub(super) fn remaining_text(r: Remaining) -> String {
    let Remaining::Seconds(s) = r else {
        return "unlimited".into();
    };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub(super) fn remaining_json(r: Remaining) -> Value {
    match r {
        Remaining::Unlimited => Value::Null,
        Remaining::Seconds(s) => json!(s),
    }
}

pub(super) fn role_text(role: Role) -> &'static str {
    match role {
        Role::Homeowner => "homeowner",
        Role::ProInstaller => "pro installer",
    }
}

pub(super) fn source_text(source: &GrantSource) -> String {
    match source {
        GrantSource::Creator => "created the Place".into(),
        GrantSource::ProjectFile => "opened the project file".into(),
        GrantSource::Claim => "claimed with the button".into(),
        GrantSource::Share { by } => format!("shared by {by}"),
        GrantSource::Link { by } => format!("link from {by}"),
    }
}

/// Everything the cloud holds about one Place, as `place show` and
/// `place list --json` print it.
pub(super) fn place_json(place: &Place, processors: &[ProcessorRecord], at: Timestamp) -> Value {
    json!({
        "place": place.id.0,
        "remote_services": place.remote_services,
        "homeowner": place.homeowner().map(|a| a.as_str()),
        "share_link": place.share_link.as_ref().map(|l| json!({"number": l.link.number, "by": l.by.as_str(), "for": l.duration.code()})),
        "processors": processors.iter().filter(|p| p.place == place.id).map(|p| json!({"serial": p.serial.0, "id": p.serial.id(), "mac": p.mac().to_string()})).collect::<Vec<_>>(),
        "access": place.grants.iter().filter(|(_, g)| g.is_live(at)).map(|(a, g)| json!({
            "account": a.as_str(), "role": role_text(g.role), "remaining_s": remaining_json(g.remaining(at)), "source": source_text(&g.source)
        })).collect::<Vec<_>>(),
    })
}
