//! The portal's pages as maud templates: checked when the crate compiles,
//! every interpolation HTML-escaped. No script anywhere: every control is
//! a link or a form, and every status is an icon *and* a word.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::cloud::store::ProcessorRecord;
use crate::cloud::store::reports::{ProcessorReport, ReportedIdentity};
use crate::cloud::store::timeline::{Contact, TimelineEntry};
use crate::cloud::views::{remaining_text, role_text, source_text, time_text};
use crate::cloud::{AccessDuration, AccessEntry, AccountId, PlaceId, Remaining, Role, Status};

/// Under this much time left, the Places list and Manage Access flag it.
pub const SOON: u64 = 3 * 24 * 3600;

/// What the last POST did, shown above the page it redirected to.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Message {
    Done(String),
    /// The rules said no: the same rule name and guidance as the CLI.
    Refused {
        rule: String,
        why: String,
        guidance: String,
    },
}

impl Message {
    pub fn refused(refusal: &crate::cloud::Refusal) -> Message {
        Message::Refused {
            rule: refusal.rule().to_owned(),
            why: refusal.to_string(),
            guidance: refusal.guidance().to_owned(),
        }
    }
}

/// Who is looking, for the header and the forms.
pub struct Viewer<'a> {
    pub account: &'a AccountId,
    csrf: &'a str,
    /// The page's nonce; each form adds its number, so each form of the
    /// page is sent once ([`super::extract`]).
    nonce: &'a str,
    forms: std::cell::Cell<u32>,
}

impl<'a> Viewer<'a> {
    pub fn new(account: &'a AccountId, csrf: &'a str, nonce: &'a str) -> Viewer<'a> {
        Viewer {
            account,
            csrf,
            nonce,
            forms: std::cell::Cell::new(0),
        }
    }
}

/// The hidden fields every form of a signed-in page carries: the
/// session's CSRF token and this form's own nonce.
pub(super) fn signed_fields(viewer: &Viewer<'_>) -> Markup {
    let n = viewer.forms.get();
    viewer.forms.set(n + 1);
    html! {
        input type="hidden" name="csrf" value=(viewer.csrf);
        input type="hidden" name="form" value={ (viewer.nonce) "-" (n) };
    }
}

/// One line of the Places list.
pub struct PlaceRow {
    pub id: PlaceId,
    pub status: Status,
    pub guidance: &'static str,
    pub role: Role,
    pub remaining: Remaining,
    pub processors: usize,
    /// The last event a site box relayed for the Place.
    pub last_contact: Option<Contact>,
    /// A grey Place the account created: its grant is dormant (no role
    /// in effect, no time running) and nobody else sees the Place.
    pub waiting: bool,
}

/// Whether (and how) a line of Manage Access can be revoked, as the rules
/// would answer: known before the click.
pub enum Revoke {
    Allowed,
    /// The last person, no processor activated: the Place would be gone.
    LastPerson,
    Refused(String),
}

pub struct AccessRow {
    pub entry: AccessEntry,
    pub revoke: Revoke,
}

/// A duration of the Share form, refused (with why) when it is longer
/// than the account's own access.
pub struct DurationChoice {
    pub duration: AccessDuration,
    pub refused: Option<String>,
}

/// A processor of the Place page, with what site boxes reported of it.
pub struct ProcessorRow {
    pub record: ProcessorRecord,
    pub report: Option<ProcessorReport>,
}

pub struct PlacePage {
    pub row: PlaceRow,
    pub processors: Vec<ProcessorRow>,
    pub access: Vec<AccessRow>,
    pub durations: Vec<DurationChoice>,
    /// `Err`: why no link can be generated.
    pub link: Result<Option<u64>, String>,
    /// A link just generated: shown once.
    pub new_link: Option<String>,
    pub may_release: bool,
    /// A page of the Place's events, newest first, and how many it has.
    pub timeline: Vec<TimelineEntry>,
    pub timeline_total: u64,
    /// Which page of the timeline (from 1), of `per_page` events.
    pub timeline_page: usize,
    pub timeline_per_page: usize,
}

const CSS: &str = include_str!("portal.css");

pub(super) fn layout(
    title: &str,
    viewer: Option<&Viewer<'_>>,
    message: Option<&Message>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · handoff Places" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/" { "handoff Places" }
                    @if let Some(v) = viewer {
                        span.who { "Signed in as " strong { (v.account) } }
                        form method="post" action="/sign-out" {
                            (signed_fields(v))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if let Some(m) = message { (message_box(m)) }
                    (body)
                }
            }
        }
    }
}

fn message_box(message: &Message) -> Markup {
    match message {
        Message::Done(text) => html! { p.notice.done role="status" { "Done: " (text) } },
        Message::Refused {
            rule,
            why,
            guidance,
        } => html! {
            div.notice.refused role="alert" {
                p { strong { "Refused: " } (why) }
                p { "Rule: " code { (rule) } }
                p { "What to do: " (guidance) }
            }
        },
    }
}

/// The designer's cloud icon: a shape, a colour and the word, so that
/// colour is never the only sign.
pub(super) fn status_badge(status: Status) -> Markup {
    let (class, word) = match status {
        Status::Green => ("green", "Green"),
        Status::Yellow => ("yellow", "Yellow"),
        Status::Grey => ("grey", "Grey"),
    };
    html! {
        span class={ "status " (class) } {
            svg viewBox="0 0 24 16" width="24" height="16" aria-hidden="true" {
                path d="M6 15h12a5 5 0 0 0 0-10 7 7 0 0 0-13 2 4 4 0 0 0 1 8z" {}
            }
            " " (word)
        }
    }
}

fn contact(c: Option<&Contact>) -> Markup {
    match c {
        None => html! { "none yet" },
        Some(c) => html! { (c.site_box) ", " (time_text(c.at)) },
    }
}

/// The Place page's processors: what the cloud knows (serial, MAC) and
/// what site boxes reported, each cell saying which.
pub(super) fn processor_table(processors: &[ProcessorRow]) -> Markup {
    html! {
        @if processors.is_empty() {
            p { "No processor is activated in this Place yet." }
        } @else {
            table {
                thead { tr { th { "Serial" } th { "ID" } th { "MAC" } th { "Model" } th { "Firmware" } th { "Last relayed by" } } }
                tbody {
                    @for p in processors {
                        @let identity = p.report.as_ref().and_then(|r| r.identity.as_ref());
                        tr {
                            td { (p.record.serial) } td { (p.record.serial.id()) } td { (p.record.mac()) }
                            td { (reported(identity, |i| i.model.as_deref())) }
                            td { (reported(identity, |i| i.firmware.as_deref())) }
                            td { @match &p.report { None => { (NOT_REPORTED) }, Some(r) => { (r.site_box) ", " (time_text(r.at)) } } }
                        }
                    }
                }
            }
            p { small { "Model and firmware are what a site box reported; the cloud does not check them." } }
        }
    }
}

const NOT_REPORTED: &str = "not reported yet";

/// A field a site box reported, said as its claim: "reported by SITE-BOX
/// at TIME".
fn reported(
    identity: Option<&ReportedIdentity>,
    field: impl Fn(&ReportedIdentity) -> Option<&str>,
) -> Markup {
    match identity.and_then(|i| Some((i, field(i)?))) {
        None => html! { (NOT_REPORTED) },
        Some((i, value)) => html! {
            (value) br; small { "reported by " (i.site_box) " at " (time_text(i.at)) }
        },
    }
}

fn remaining(r: Remaining) -> Markup {
    match r {
        Remaining::Seconds(s) if s < SOON => html! {
            span.soon { "⚠ " (remaining_text(r)) " — ends soon" }
        },
        _ => html! { (remaining_text(r)) },
    }
}

/// `/sign-in`: ask for the email; `sent` once a link is on its way.
pub fn sign_in(csrf: &str, next: &str, sent: Option<&str>, message: Option<&Message>) -> Markup {
    layout(
        "Sign in",
        None,
        message,
        html! {
            h1 { "Sign in" }
            @if let Some(email) = sent {
                p.notice.done role="status" {
                    "A sign-in link for " strong { (email) } " is on its way. It works once, for 15 minutes. "
                }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="email" { "Your myLutron email" }
                input id="email" type="email" name="email" required autocomplete="email";
                button type="submit" { "Email me a sign-in link" }
            }
        },
    )
}

/// `GET /sign-in/{token}`: a button, so that a mail scanner that fetches
/// the link does not sign in.
pub fn confirm_sign_in(action: &str, csrf: &str, next: &str) -> Markup {
    layout(
        "Sign in",
        None,
        None,
        html! {
            h1 { "Sign in" }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A page that only says something (an error, a refused sign-in link).
pub fn notice(title: &str, text: &str, viewer: Option<&Viewer<'_>>) -> Markup {
    layout(
        title,
        viewer,
        None,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/" { "Back to your Places" } }
        },
    )
}

/// `/`: every Place the account reaches.
pub fn places(
    viewer: &Viewer<'_>,
    rows: &[PlaceRow],
    paging: Paging,
    message: Option<&Message>,
) -> Markup {
    layout(
        "Places",
        Some(viewer),
        message,
        html! {
            h1 { "Places" }
            @if paging.pages > 1 {
                (pager(paging))
            }
            @if rows.is_empty() && paging.total > 0 {
                p { "This page is past the last of your " (paging.total) " Place" @if paging.total != 1 { "s" } "." }
            } @else if rows.is_empty() {
                p { "No Place is shared with you yet: ask the homeowner or a pro with access to share one with your email, or open a share link." }
            } @else {
                table {
                    thead { tr { th { "Place" } th { "Status" } th { "Role" } th { "Time left" } th { "Processors" } th { "Last contact from a site box" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { a href={ "/places/" (segment(&r.id.0)) } { (r.id) } }
                                @if r.waiting {
                                    td { (status_badge(r.status)) br; small { (r.guidance) " " strong { (super::remote::ONLY_YOU) } } }
                                    td { "creator (no access until remote services are on)" }
                                    td { "—" }
                                } @else {
                                    td { (status_badge(r.status)) br; small { (r.guidance) } }
                                    td { (role_text(r.role)) }
                                    td { (remaining(r.remaining)) }
                                }
                                td { (r.processors) }
                                td { (contact(r.last_contact.as_ref())) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Which page of the Places list is shown.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    /// From 1.
    pub page: usize,
    pub pages: usize,
    /// Places the account reaches.
    pub total: usize,
}

fn pager(p: Paging) -> Markup {
    html! {
        nav aria-label="Pages of the Places list" {
            p {
                "Page " (p.page) " of " (p.pages) " (" (p.total) " Places). "
                @if p.page > 1 {
                    a href={ "/?page=" (p.page.min(p.pages + 1) - 1) } rel="prev" { "← Previous page" }
                    " "
                }
                @if p.page < p.pages {
                    a href={ "/?page=" (p.page + 1) } rel="next" { "Next page →" }
                }
            }
        }
    }
}

/// `/places/{id}`: processors, Manage Access, Share, the share link.
pub fn place(viewer: &Viewer<'_>, page: &PlacePage, message: Option<&Message>) -> Markup {
    let id = &page.row.id;
    let base = format!("/places/{}", segment(&id.0));
    layout(
        &id.0,
        Some(viewer),
        message,
        html! {
            p { a href="/" { "← Places" } }
            h1 { "Place " (id) }
            p { (status_badge(page.row.status)) " " (page.row.guidance) }
            p { "Your role: " (role_text(page.row.role)) "; time left: " (remaining(page.row.remaining)) }
            p { "Remote services: on. They cannot be turned off (the designer greys the option out)." }

            h2 { "Processors" }
            p { "Last contact from a site box: " (contact(page.row.last_contact.as_ref())) }
            (processor_table(&page.processors))

            h2 { "Manage Access" }
            table {
                thead { tr { th { "Account" } th { "Role" } th { "Where it came from" } th { "Time left" } th { "Revoke" } } }
                tbody {
                    @for a in &page.access {
                        tr {
                            td { (a.entry.account) }
                            td { (role_text(a.entry.role)) }
                            td { (source_text(&a.entry.source)) }
                            td { (remaining(a.entry.remaining)) }
                            td { (revoke_cell(viewer, &base, a)) }
                        }
                    }
                }
            }

            h2 { "Share Access" }
            form method="post" action={ (base) "/share" } {
                (signed_fields(viewer))
                label for="share-email" { "Email to share with" }
                input id="share-email" type="email" name="email" required;
                label for="share-duration" { "Access duration" }
                (duration_select("share-duration", &page.durations))
                button type="submit" { "Share" }
            }

            h2 { "Share link" }
            @match &page.link {
                Err(why) => p.refused-inline { "No share link can be generated: " (why) },
                Ok(current) => {
                    @if let Some(link) = &page.new_link {
                        p { label for="new-link" { "The new link (shown once: copy it now)" } }
                        input id="new-link" type="text" readonly value=(link);
                    }
                    form method="post" action={ (base) "/links" } {
                        (signed_fields(viewer))
                        label for="link-duration" { "Access the link gives" }
                        (duration_select("link-duration", &page.durations))
                        button type="submit" { "Generate New Link" }
                        @if let Some(n) = current {
                            p { small { "The current link (number " (n) ") stops working when you generate a new one." } }
                        }
                    }
                }
            }

            @if page.may_release {
                h2 { "Remove Home from Account" }
                form method="post" action={ (base) "/release" } {
                    (signed_fields(viewer))
                    input id="release-confirm" type="checkbox" name="confirm" value="yes" required;
                    label for="release-confirm" { "I understand this account stops being the homeowner; the system can be claimed again with the processor's button" }
                    button type="submit" { "Remove Home from Account" }
                }
            }

            h2 id="timeline" { "Timeline" }
            (timeline(page, &base))

            h2 { "Support" }
            p {
                label for="support-line" { "Line for support (copy it)" }
                input id="support-line" type="text" readonly value=(support_line(page));
            }
        },
    )
}

/// Every event of the Place, applied or refused, newest first: the rule
/// that spoke, who asked, and through which site box.
fn timeline(page: &PlacePage, base: &str) -> Markup {
    let first = (page.timeline_page - 1) * page.timeline_per_page;
    let pages = (page.timeline_total as usize)
        .div_ceil(page.timeline_per_page)
        .max(1);
    html! {
        @if page.timeline.is_empty() && page.timeline_total > 0 {
            p { "This page is past the oldest of the Place's " (page.timeline_total) " events." }
            p { a href=(base) { "Back to the newest events" } }
        } @else if page.timeline.is_empty() {
            p { "No event yet." }
        } @else {
            @if pages > 1 {
                nav aria-label="Pages of the timeline" {
                    p {
                        small { "Events " (first + 1) "–" (first + page.timeline.len()) " of " (page.timeline_total) ", newest first. " }
                        @if page.timeline_page > 1 {
                            a href={ (base) "?timeline_page=" (page.timeline_page - 1) "#timeline" } rel="prev" { "← Newer events" }
                            " "
                        }
                        @if page.timeline_page < pages {
                            a href={ (base) "?timeline_page=" (page.timeline_page + 1) "#timeline" } rel="next" { "Older events →" }
                        }
                    }
                }
            }
            table.timeline {
                thead { tr { th { "When" } th { "Account" } th { "Site box" } th { "What was asked" } th { "Result" } } }
                tbody {
                    @for e in &page.timeline {
                        tr {
                            td { (time_text(e.at)) }
                            td { (e.account) }
                            td { @if let Some(site) = &e.site_box { (site) } @else { "operator or portal" } }
                            td { (e.what) }
                            td {
                                @match &e.refused {
                                    None => "applied",
                                    Some((rule, why)) => span.refused-inline { "refused: " code { (rule) } " — " (why) },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn revoke_cell(viewer: &Viewer<'_>, base: &str, row: &AccessRow) -> Markup {
    let action = format!(
        "{base}/access/{}/revoke",
        segment(row.entry.account.as_str())
    );
    let label = format!("Revoke {}", row.entry.account);
    match &row.revoke {
        Revoke::Allowed => html! {
            form method="post" action=(action) {
                (signed_fields(viewer))
                button type="submit" aria-label=(label) { "Revoke" }
            }
        },
        Revoke::LastPerson => {
            let check = format!("force-{}", segment(row.entry.account.as_str()));
            html! {
                form method="post" action=(action) {
                    (signed_fields(viewer))
                    p.refused-inline { "You are the last person with access and no processor is activated: revoking deletes the Place for good." }
                    input id=(check) type="checkbox" name="force" value="yes";
                    label for=(check) { "Yes, delete the Place: it cannot be recovered" }
                    button type="submit" aria-label=(label) { "Revoke" }
                }
            }
        }
        Revoke::Refused(why) => html! { span.refused-inline { "Not revocable: " (why) } },
    }
}

fn duration_select(id: &str, choices: &[DurationChoice]) -> Markup {
    html! {
        select id=(id) name="duration" {
            @for c in choices {
                @if let Some(why) = &c.refused {
                    option value=(c.duration.code()) disabled { (c.duration) " — not available: " (why) }
                } @else {
                    option value=(c.duration.code()) selected[c.duration == AccessDuration::SevenDays] { (c.duration) }
                }
            }
        }
    }
}

fn support_line(page: &PlacePage) -> String {
    support_text(&page.row.id, page.row.status, &page.processors)
}

/// The line for support: the Place, its status, its processors.
pub(super) fn support_text(id: &PlaceId, status: Status, processors: &[ProcessorRow]) -> String {
    let processors: Vec<String> = processors
        .iter()
        .map(|p| format!("serial {} MAC {}", p.record.serial, p.record.mac()))
        .collect();
    format!(
        "Place {}; status {}; {}",
        id,
        status,
        if processors.is_empty() {
            "no processor".into()
        } else {
            processors.join(", ")
        }
    )
}

/// A path segment, percent-encoded (an account in a URL has an `@`, a
/// Place id could have anything).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /links/{number}`: redeem on a click, never on opening.
pub fn redeem(viewer: &Viewer<'_>, number: u64, place: &str, secret: &str) -> Markup {
    layout(
        "Share link",
        Some(viewer),
        None,
        html! {
            h1 { "Share link" }
            p { "This link gives your account access to Place " strong { (place) } "." }
            form method="post" action={ "/links/" (number) "/redeem" } {
                (signed_fields(viewer))
                input type="hidden" name="place" value=(place);
                input type="hidden" name="secret" value=(secret);
                button type="submit" { "Redeem link" }
            }
        },
    )
}

#[cfg(test)]
mod processor_table_tests {
    use super::*;
    use crate::cloud::store::reports::ProcessorReport;
    use crate::place::Timestamp;
    use crate::processor::Serial;

    fn row(report: Option<ProcessorReport>) -> ProcessorRow {
        ProcessorRow {
            record: ProcessorRecord {
                place: crate::place::PlaceId("lake".into()),
                serial: Serial(0x0236_e6a7),
                mac: [2, 0x4c, 2, 0x36, 0xe6, 0xa7],
                ca_der: Vec::new(),
            },
            report,
        }
    }

    #[test]
    fn a_processor_row_says_who_reported_what_and_never_leaves_a_cell_empty() {
        let never = processor_table(&[row(None)]).into_string();
        assert_eq!(
            never.matches("<td>not reported yet</td>").count(),
            3,
            "{never}"
        );
        assert!(!never.contains("<td></td>"), "{never}");

        // A site box that reported only a hostile model: escaped, said as
        // its claim; the firmware it did not report is "not reported yet".
        let (report, _) = ProcessorReport::after(
            None,
            Serial(0x0236_e6a7),
            "lake-box",
            (Some("<script>alert(1)</script>"), None),
            Timestamp(1_796_000_000),
        );
        let page = processor_table(&[row(Some(report))]).into_string();
        assert!(!page.contains("<script>"), "{page}");
        let when = crate::cloud::views::time_text(Timestamp(1_796_000_000));
        assert!(
            page.contains(&format!(
                "<td>&lt;script&gt;alert(1)&lt;/script&gt;<br><small>reported by lake-box at {when}</small></td>"
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!("<td>lake-box, {when}</td>")),
            "{page}"
        );
        assert_eq!(
            page.matches("<td>not reported yet</td>").count(),
            1,
            "{page}"
        );
    }
}
