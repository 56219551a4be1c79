//! How a Place reads to people and scripts, in the same words everywhere:
//! the operator CLI (`handoff cloud … --json`) and the Places portal
//! ([`crate::portal`]) print the same field names and the same phrases.

use serde_json::{Value, json};

use super::model::{GrantSource, Place, Remaining, Role, Timestamp};
use super::store::ProcessorRecord;
use super::store::reports::ProcessorReport;
use crate::processor::Serial;

/// A moment as the timeline shows it: `2026-12-03 18:10:05 UTC`.
pub fn time_text(at: Timestamp) -> String {
    crate::identity::install::human_time(i64::try_from(at.0).unwrap_or(i64::MAX))
}

/// One timeline entry as `--json` and the portal's JSON show it.
pub fn timeline_json(entry: &super::store::timeline::TimelineEntry) -> Value {
    json!({
        "at": entry.at.0,
        "account": entry.account.as_str(),
        "site_box": entry.site_box,
        "what": entry.what,
        "result": if entry.refused.is_some() { "refused" } else { "applied" },
        "rule": entry.refused.as_ref().map(|(rule, _)| rule),
        "why": entry.refused.as_ref().map(|(_, why)| why),
    })
}

/// Time left as Manage Access shows it: `29d 23h`, `5h 10m`, `40s`.
pub fn remaining_text(r: Remaining) -> String {
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

pub fn remaining_json(r: Remaining) -> Value {
    match r {
        Remaining::Unlimited => Value::Null,
        Remaining::Seconds(s) => json!(s),
    }
}

pub fn role_text(role: Role) -> &'static str {
    match role {
        Role::Homeowner => "homeowner",
        Role::ProInstaller => "pro installer",
    }
}

pub fn source_text(source: &GrantSource) -> String {
    match source {
        GrantSource::Creator => "created the Place".into(),
        GrantSource::ProjectFile => "opened the project file".into(),
        GrantSource::Claim => "claimed with the button".into(),
        GrantSource::Share { by } => format!("shared by {by}"),
        GrantSource::Link { by } => format!("link from {by}"),
    }
}

/// One processor, with what site boxes reported of it (`null` where
/// nothing was): `model` and `firmware` as `reported_by` reported them at
/// `reported_at`, and the site box that last relayed for it
/// (`last_site_box`, at `last_contact`). Times in seconds since the epoch.
pub fn processor_json(p: &ProcessorRecord, report: Option<&ProcessorReport>) -> Value {
    let identity = report.and_then(|r| r.identity.as_ref());
    json!({
        "serial": p.serial.0, "id": p.serial.id(), "mac": p.mac().to_string(),
        "model": identity.and_then(|i| i.model.as_deref()),
        "firmware": identity.and_then(|i| i.firmware.as_deref()),
        "reported_by": identity.map(|i| i.site_box.as_str()),
        "reported_at": identity.map(|i| i.at.0),
        "last_site_box": report.map(|r| r.site_box.as_str()),
        "last_contact": report.map(|r| r.at.0),
    })
}

/// Everything the cloud holds about one Place, as `place show` and
/// `place list --json` print it (`reports`: of its processors, as
/// [`super::CloudStore::processor_reports`] reads them).
pub fn place_json(
    place: &Place,
    processors: &[ProcessorRecord],
    reports: &std::collections::HashMap<Serial, ProcessorReport>,
    at: Timestamp,
) -> Value {
    json!({
        "place": place.id.0,
        "remote_services": place.remote_services,
        "homeowner": place.homeowner().map(|a| a.as_str()),
        "share_link": place.share_link.as_ref().map(|l| json!({"number": l.link.number, "by": l.by.as_str(), "for": l.duration.code()})),
        "processors": processors.iter().filter(|p| p.place == place.id).map(|p| processor_json(p, reports.get(&p.serial))).collect::<Vec<_>>(),
        // A grey Place's creator grant is dormant: no access to list.
        "waiting_creator": place.waiting_creator().map(|a| a.as_str()),
        "access": place.grants.iter().filter(|(_, g)| place.remote_services && g.is_live(at)).map(|(a, g)| json!({
            "account": a.as_str(), "role": role_text(g.role), "remaining_s": remaining_json(g.remaining(at)), "source": source_text(&g.source)
        })).collect::<Vec<_>>(),
    })
}

/// What a command asks, in words, for a Place's timeline. Never a secret:
/// no project key, no share link secret.
pub fn command_text(cmd: &super::rules::Command) -> String {
    use super::rules::Command as C;
    match cmd {
        C::CreatePlace {
            remote_services, ..
        } => format!(
            "create the Place (remote services {})",
            if *remote_services { "on" } else { "off" }
        ),
        C::SetRemoteServices { enabled, .. } => format!(
            "turn remote services {} (project file)",
            if *enabled { "on" } else { "off" }
        ),
        C::SetRemoteServicesAsCreator { enabled, .. } => format!(
            "turn remote services {} (the Place's creator)",
            if *enabled { "on" } else { "off" }
        ),
        C::ActivateProcessor { processor, .. } => {
            format!("activate processor {processor} (project transfer)")
        }
        C::PresentProjectKey { .. } => "open the project file (Browse Local)".into(),
        C::Claim { processor, .. } => format!("claim with processor {processor}'s button"),
        C::Release { .. } => "Remove Home from Account".into(),
        C::SupportRemovesHomeowner { .. } => "support removes the homeowner".into(),
        C::ShareAccess {
            email, duration, ..
        } => format!("share with {email} for {duration}"),
        C::NewShareLink { duration, .. } => format!("generate a share link ({duration})"),
        C::RedeemLink { link, .. } => format!("redeem share link number {}", link.number),
        C::RevokeAccess { target, force, .. } => {
            format!("revoke {target}{}", if *force { " (forced)" } else { "" })
        }
    }
}
