//! The portal's routes, who may see what, and the pages' data.
//!
//! Order of checks, for every route but sign-in: a session (else the
//! sign-in page), then on a POST the CSRF token (else 403), then access to
//! the Place (else 404, never 403: whether a Place exists is nobody's
//! business but its people's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::Markup;
use serde_json::{Value, json};

use super::extract::{Flash, Signed, SignedForm};
use super::pages::{self, AccessRow, DurationChoice, Message, Paging, PlacePage, PlaceRow, Revoke};
use super::session::{
    self, PRE_SESSION_COOKIE, SESSION_COOKIE, SESSION_LIFETIME, SIGN_IN_VALIDITY,
};
use super::{Portal, PortalError, actions, csrf};
use crate::cloud::rules::{self, Command};
use crate::cloud::store::fresh_secret;
use crate::cloud::store::portal::{SessionRecord, SignIn};
use crate::cloud::store::timeline::{Contact, TimelineEntry};
use crate::cloud::views::{place_json, remaining_json, role_text, timeline_json};
use crate::cloud::{
    AccessDuration, AccountId, CloudError, LinkSecret, Place, PlaceId, Refusal, Timestamp,
    access_list, guidance_for, status_for,
};

/// Rows on one page of the Places list: about 45 KB of HTML.
const PAGE_ROWS: usize = 100;

/// How many of a Place's events a page of its timeline shows.
const TIMELINE_SHOWN: usize = 100;

/// The client's address, for the per-client sign-in limit.
#[derive(Clone, Copy, Debug)]
pub struct Client(pub IpAddr);

pub(super) type Fields = HashMap<String, String>;

pub(super) fn router(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/", get(places))
        .route("/sign-in", get(sign_in_form).post(sign_in_request))
        .route("/sign-in/{token}", get(sign_in_confirm).post(sign_in_use))
        .route("/sign-out", post(sign_out))
        .route("/places/{id}", get(place))
        .route("/places/{id}/share", post(actions::share))
        .route("/places/{id}/links", post(actions::new_link))
        .route(
            "/places/{id}/access/{account}/revoke",
            post(actions::revoke),
        )
        .route("/places/{id}/release", post(actions::release))
        .route(
            "/places/{id}/remote-services",
            post(super::remote::remote_services),
        )
        .route("/links/{number}", get(actions::redeem_confirm))
        .route("/links/{number}/redeem", post(actions::redeem))
        .fallback(not_found)
        .layer(axum::middleware::map_response(hardening))
        .layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            measure,
        ))
        .with_state(portal)
}

/// Counts each request for the metrics, by the route it matched (as
/// declared: `/places/{id}`, never a Place's id) and its status.
async fn measure(
    State(portal): State<Arc<Portal>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Methods a client makes up would each be a new series.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let (status, took) = (response.status().as_u16(), started.elapsed());
    portal.metrics.portal_request(&route, &method, status, took);
    response
}

/// Headers every answer carries: no script may run, nothing is framed or
/// cached, and no URL (a sign-in link) leaks through a Referer.
async fn hardening(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Runs the blocking part of a route (the store's transactions) off the
/// async workers.
pub(super) async fn blocking(
    work: impl FnOnce() -> Result<Response, PortalError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => failed(&e),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The answer when the store (or the randomness) failed: logged, and a
/// page that says so.
pub(super) fn failed(e: &PortalError) -> Response {
    tracing::error!(error = %e, "portal: a request failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::notice("Something failed", &e.to_string(), None),
    )
}

pub(super) fn bad_form(what: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        pages::notice("Bad form", what, None),
    )
}

pub(super) fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

pub(super) fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

pub(super) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// The sign-in page, coming back to `uri` afterwards.
pub(super) fn to_sign_in(method: &axum::http::Method, uri: &Uri) -> Response {
    let next = if method == axum::http::Method::GET {
        uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
    } else {
        page_of_action(uri.path())
    };
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    see_other(&format!("/sign-in?{query}"))
}

/// The page a form was sent from, to come back to after signing in: an
/// action's own URL has no page (`/places/ID/share` is POST only), and the
/// form is not sent again by a sign-in.
fn page_of_action(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["places", id, ..] => format!("/places/{id}"),
        ["links", number, "redeem"] => format!("/links/{number}"),
        _ => "/".into(),
    }
}

impl Portal {
    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The Place if `account` has access to it now, or created it grey
    /// (its grant dormant until remote services are on: it sees the grey
    /// page, [`super::remote`]); `None` is a 404.
    pub(super) fn reachable(
        &self,
        id: &PlaceId,
        account: &AccountId,
    ) -> Result<Option<Place>, CloudError> {
        let now = self.now();
        Ok(self
            .store
            .place(id)?
            .filter(|p| p.access(account, now).is_some() || p.is_waiting_creator(account)))
    }

    /// Rows of the Places list: `page` (from 1) of [`PAGE_ROWS`], or every
    /// row; and how many Places the account reaches in all.
    fn place_rows(
        &self,
        account: &AccountId,
        page: Option<usize>,
    ) -> Result<(Vec<PlaceRow>, usize), CloudError> {
        let now = self.now();
        let (skip, take) = match page {
            None => (0, usize::MAX),
            Some(page) => (page.saturating_sub(1).saturating_mul(PAGE_ROWS), PAGE_ROWS),
        };
        let (places, total) = self.store.account_places(account, now, skip, take)?;
        let mut counts: HashMap<&PlaceId, usize> = places.iter().map(|p| (&p.id, 0)).collect();
        for p in self.store.processors()? {
            if let Some(n) = counts.get_mut(&p.place) {
                *n += 1;
            }
        }
        // A grey Place's creator sees it, grey, with its dormant grant.
        let shown: Vec<_> = places
            .iter()
            .filter_map(|p| match p.access(account, now) {
                Some(grant) => Some((p, grant)),
                None if p.is_waiting_creator(account) => Some((p, p.grants.get(account)?)),
                None => None,
            })
            .collect();
        let ids: Vec<&PlaceId> = shown.iter().map(|(p, _)| &p.id).collect();
        let mut contacts = self.store.last_contacts(&ids)?;
        let rows = shown
            .into_iter()
            .map(|(p, grant)| PlaceRow {
                id: p.id.clone(),
                status: status_for(p, account, now),
                guidance: guidance_for(p, account, now),
                role: grant.role,
                remaining: grant.remaining(now),
                processors: counts.get(&p.id).copied().unwrap_or(0),
                last_contact: contacts.remove(&p.id),
                waiting: p.is_waiting_creator(account),
            })
            .collect();
        Ok((rows, total))
    }

    /// The Place page's data: what the rules would answer to each control,
    /// asked before the click (dry runs of [`rules::apply`]).
    pub(super) fn place_page(
        &self,
        place: &Place,
        account: &AccountId,
        new_link: Option<String>,
        (timeline, timeline_total): (Vec<TimelineEntry>, u64),
        timeline_page: usize,
    ) -> Result<PlacePage, CloudError> {
        let now = self.now();
        let would = |cmd: Command| rules::apply(Some(place), &cmd, now).map(|_| ());
        let grant = place.access(account, now).ok_or_else(|| {
            CloudError::Failed("the Place page of an account without access".into())
        })?;
        let (records, mut reports) = self.store.place_processors(&place.id)?;
        let processors: Vec<_> = records
            .into_iter()
            .map(|record| pages::ProcessorRow {
                report: reports.remove(&record.serial),
                record,
            })
            .collect();
        let access = access_list(place, account, now)
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let revoke = match rules::check_revoke(place, account, &entry.account, false, now) {
                    Ok(_) => Revoke::Allowed,
                    Err(Refusal::LastAccessWithoutProcessor) => Revoke::LastPerson,
                    Err(r) => Revoke::Refused(r.to_string()),
                };
                AccessRow { entry, revoke }
            })
            .collect();
        // Anyone not yet in the Place: whom the share goes to does not
        // change whether its duration is allowed.
        let someone = AccountId::new("someone@handoff.invalid");
        let durations = AccessDuration::ALL
            .into_iter()
            .map(|duration| DurationChoice {
                duration,
                refused: would(Command::ShareAccess {
                    place: place.id.clone(),
                    by: account.clone(),
                    email: someone.clone(),
                    duration,
                })
                .err()
                .map(|_| {
                    format!(
                        "longer than your own access ({} left)",
                        crate::cloud::views::remaining_text(grant.remaining(now))
                    )
                }),
            })
            .collect();
        let link = match would(Command::NewShareLink {
            place: place.id.clone(),
            by: account.clone(),
            secret: LinkSecret(String::new()),
            duration: AccessDuration::OneDay,
        }) {
            Ok(()) | Err(Refusal::ShareExceedsRemainingAccess { .. }) => {
                Ok(place.share_link.as_ref().map(|l| l.link.number))
            }
            Err(r) => Err(r.to_string()),
        };
        let may_release = would(Command::Release {
            place: place.id.clone(),
            by: account.clone(),
        })
        .is_ok();
        Ok(PlacePage {
            row: PlaceRow {
                id: place.id.clone(),
                status: status_for(place, account, now),
                guidance: guidance_for(place, account, now),
                role: grant.role,
                remaining: grant.remaining(now),
                processors: processors.len(),
                last_contact: self.store.last_contacts(&[&place.id])?.remove(&place.id),
                waiting: false,
            },
            processors,
            access,
            durations,
            link,
            new_link,
            may_release,
            timeline,
            timeline_total,
            timeline_page,
            timeline_per_page: TIMELINE_SHOWN,
        })
    }

    /// The Place page (or its JSON): timeline page `timeline_page` (from
    /// 1), with what the last POST did.
    pub(super) fn place_response(
        &self,
        signed: &Signed,
        place: &Place,
        status: StatusCode,
        flash: Option<Flash>,
        json: bool,
        timeline_page: usize,
    ) -> Result<Response, PortalError> {
        let account = &signed.record.account;
        if place.is_waiting_creator(account) {
            return self.grey_response(signed, place, status, flash, json);
        }
        let (message, new_link) = flash.map_or((None, None), |f| (Some(f.message), f.link));
        let skip = timeline_page
            .saturating_sub(1)
            .saturating_mul(TIMELINE_SHOWN);
        let (timeline, timeline_total) =
            self.store.timeline_page(&place.id, skip, TIMELINE_SHOWN)?;
        if json {
            let now = self.now();
            let (processors, reports) = self.store.place_processors(&place.id)?;
            let mut value = place_json(place, &processors, &reports, now);
            value["status"] = json!(status_for(place, account, now).to_string());
            value["guidance"] = json!(guidance_for(place, account, now));
            if let Some(link) = &new_link {
                value["link"] = json!(link);
            }
            value["timeline"] = timeline.iter().map(timeline_json).collect();
            value["timeline_total"] = json!(timeline_total);
            value["last_contact"] =
                contact_json(self.store.last_contacts(&[&place.id])?.get(&place.id));
            return Ok(json_response(status, with_message(value, message.as_ref())));
        }
        let page = self.place_page(
            place,
            account,
            new_link,
            (timeline, timeline_total),
            timeline_page,
        )?;
        Ok(html(
            status,
            pages::place(&signed.viewer(), &page, message.as_ref()),
        ))
    }

    /// Page `page` of the Places list (its JSON is the whole list, as the
    /// CLI's `place list --json`), with what the last POST did.
    pub(super) fn places_page(
        &self,
        signed: &Signed,
        message: Option<Message>,
        json: bool,
        page: usize,
    ) -> Result<Response, PortalError> {
        let (rows, total) = self.place_rows(&signed.record.account, (!json).then_some(page))?;
        if json {
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let (role, remaining) = if r.waiting {
                        ("creator", Value::Null)
                    } else {
                        (role_text(r.role), remaining_json(r.remaining))
                    };
                    json!({"place": r.id.0, "role": role, "remaining_s": remaining,
                           "status": r.status.to_string(), "guidance": r.guidance, "processors": r.processors,
                           "last_contact": contact_json(r.last_contact.as_ref()),
                           "waiting_for_remote_services": r.waiting})
                })
                .collect();
            return Ok(json_response(
                StatusCode::OK,
                with_message(json!(list), message.as_ref()),
            ));
        }
        Ok(html(
            StatusCode::OK,
            pages::places(
                &signed.viewer(),
                &rows,
                Paging {
                    page,
                    pages: total.div_ceil(PAGE_ROWS).max(1),
                    total,
                },
                message.as_ref(),
            ),
        ))
    }
}

fn contact_json(contact: Option<&Contact>) -> Value {
    contact.map_or(
        Value::Null,
        |c| json!({"site_box": c.site_box, "at": c.at.0}),
    )
}

/// A JSON answer to a POST: what it did, as the CLI's `--json` says it
/// (`result`, and a refusal's `rule`, `why`, `guidance`).
pub(super) fn message_json(message: &Message) -> Value {
    match message {
        Message::Done(text) => json!({"result": "applied", "message": text}),
        Message::Refused {
            rule,
            why,
            guidance,
        } => json!({"result": "refused", "rule": rule, "why": why, "guidance": guidance}),
    }
}

/// The page's data with what the last POST did (`data`, beside an
/// applied message).
pub(super) fn with_message(value: Value, message: Option<&Message>) -> Value {
    match message {
        None => value,
        Some(m @ Message::Done(_)) => {
            let mut out = message_json(m);
            out["data"] = value;
            out
        }
        Some(m) => message_json(m),
    }
}

/// A page number from the query's `key`: absent is 1; 0, a negative or a
/// word is `None` (a 400, [`no_such_page`]).
fn page_number(query: &Fields, key: &str) -> Option<usize> {
    match query.get(key).map(|p| p.parse::<usize>()) {
        None => Some(1),
        Some(Ok(page)) if page >= 1 => Some(page),
        Some(_) => None,
    }
}

fn no_such_page(key: &str, signed: &Signed) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        pages::notice(
            "No such page",
            &format!("`{key}` is a page number, from 1."),
            Some(&signed.viewer()),
        ),
    )
}

async fn places(
    State(portal): State<Arc<Portal>>,
    Query(query): Query<Fields>,
    signed: Signed,
    headers: HeaderMap,
) -> Response {
    blocking(move || {
        let Some(page) = page_number(&query, "page") else {
            return Ok(no_such_page("page", &signed));
        };
        let message = portal.take_flash(&signed)?.map(|f| f.message);
        portal.places_page(&signed, message, wants_json(&headers), page)
    })
    .await
}

async fn place(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    Query(query): Query<Fields>,
    signed: Signed,
    headers: HeaderMap,
) -> Response {
    blocking(move || {
        let Some(page) = page_number(&query, "timeline_page") else {
            return Ok(no_such_page("timeline_page", &signed));
        };
        match portal.reachable(&PlaceId(id), &signed.record.account)? {
            // What a POST did to a Place now out of reach is on the list.
            None if signed.record.flash.is_some() => Ok(see_other("/")),
            None => Ok(not_found_page(Some(&signed))),
            Some(p) => {
                let flash = portal.take_flash(&signed)?;
                portal.place_response(
                    &signed,
                    &p,
                    StatusCode::OK,
                    flash,
                    wants_json(&headers),
                    page,
                )
            }
        }
    })
    .await
}

pub(super) fn not_found_page(signed: Option<&Signed>) -> Response {
    html(
        StatusCode::NOT_FOUND,
        pages::notice(
            "Not found",
            "There is nothing here, or nothing you have access to.",
            signed.map(Signed::viewer).as_ref(),
        ),
    )
}

async fn not_found() -> Response {
    not_found_page(None)
}

pub(super) fn forbidden() -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::notice(
            "Form expired",
            "This form's security token is missing or wrong (CSRF): reload the page and try again.",
            None,
        ),
    )
}

/// The pre-session CSRF value of this browser, and the cookie to set when
/// it had none.
fn pre_session(headers: &HeaderMap, secure: bool) -> Result<(String, Option<String>), CloudError> {
    let cookies = headers.get(COOKIE).and_then(|v| v.to_str().ok());
    Ok(match session::cookie(cookies, PRE_SESSION_COOKIE) {
        Some(value) => (value.to_owned(), None),
        None => {
            let value = fresh_secret()?;
            let cookie = session::set_cookie(PRE_SESSION_COOKIE, &value, 3600, secure);
            (value, Some(cookie))
        }
    })
}

fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

fn pre_session_ok(headers: &HeaderMap, form: &Fields) -> bool {
    let cookies = headers.get(COOKIE).and_then(|v| v.to_str().ok());
    session::cookie(cookies, PRE_SESSION_COOKIE)
        .is_some_and(|expected| csrf::matches(expected, form.get("csrf").map(String::as_str)))
}

async fn sign_in_form(
    State(portal): State<Arc<Portal>>,
    Query(query): Query<Fields>,
    headers: HeaderMap,
) -> Response {
    blocking(move || {
        let (token, cookie) = pre_session(&headers, portal.secure)?;
        let next = session::local_target(query.get("next").map(String::as_str));
        // After a request (POST/redirect/GET): which address the link went
        // to, as the form's owner typed it.
        let sent = query.get("sent").and_then(|e| mail_address(e));
        let drop_note = (sent.is_some() && portal.mailer.is_drop()).then(|| {
            Message::Done(
                "this Place service writes its mail as .eml files into DATA/mail/ (it has no \
                 [smtp] relay)"
                    .into(),
            )
        });
        Ok(with_cookie(
            html(
                StatusCode::OK,
                pages::sign_in(
                    &token,
                    &next,
                    sent.as_ref().map(AccountId::as_str),
                    drop_note.as_ref(),
                ),
            ),
            cookie,
        ))
    })
    .await
}

/// An email address a sign-in mail may go to: it has an `@`, no
/// whitespace or control character (nothing to inject into a header),
/// fits an address's 254 bytes, and is one an SMTP relay can be given
/// (lettre's parse), so that it is refused before it counts.
fn mail_address(text: &str) -> Option<AccountId> {
    let text = text.trim();
    let fine = text.len() <= 254
        && text.contains('@')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && text.parse::<lettre::Address>().is_ok();
    fine.then(|| AccountId::new(text))
}

/// What the sign-in form asked for, once checked and counted: the answer
/// already, or a link to send.
enum Asked {
    Answer(Response),
    Send {
        account: AccountId,
        link: String,
        csrf: String,
        next: String,
    },
}

async fn sign_in_request(
    State(portal): State<Arc<Portal>>,
    Extension(Client(client)): Extension<Client>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let checking = portal.clone();
    let asked =
        tokio::task::spawn_blocking(move || ask_sign_in(&checking, client, &headers, &form));
    let (account, link, csrf, next) = match asked.await {
        Ok(Ok(Asked::Send {
            account,
            link,
            csrf,
            next,
        })) => (account, link, csrf, next),
        Ok(Ok(Asked::Answer(response))) => return response,
        Ok(Err(e)) => return failed(&e),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // The request counted already: a failed send is not free to repeat.
    if let Err(e) = portal.mailer.send(&account, &link, portal.now()).await {
        tracing::warn!(%account, error = %e, "portal: the sign-in mail could not be sent");
        let message = Message::Refused {
            rule: "sign_in_mail_is_sent".into(),
            why: "the sign-in mail could not be sent".into(),
            guidance: "try again in a few minutes, or ask the operator of this Place service \
                       for a sign-in link (`handoff cloud sign-in-link`)"
                .into(),
        };
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::sign_in(&csrf, &next, None, Some(&message)),
        );
    }
    let query = serde_urlencoded::to_string([("sent", account.as_str()), ("next", next.as_str())])
        .unwrap_or_default();
    see_other(&format!("/sign-in?{query}"))
}

/// Checks the sign-in form and the limits, and issues the link.
fn ask_sign_in(
    portal: &Portal,
    client: IpAddr,
    headers: &HeaderMap,
    form: &Fields,
) -> Result<Asked, PortalError> {
    if !pre_session_ok(headers, form) {
        return Ok(Asked::Answer(forbidden()));
    }
    let csrf = form.get("csrf").cloned().unwrap_or_default();
    let next = session::local_target(form.get("next").map(String::as_str));
    let Some(account) = form.get("email").and_then(|e| mail_address(e)) else {
        let message = Message::Done("that is not an email address: nothing was sent".into());
        return Ok(Asked::Answer(html(
            StatusCode::BAD_REQUEST,
            pages::sign_in(&csrf, &next, None, Some(&message)),
        )));
    };
    let now = portal.now();
    let admitted = match portal.limits.lock() {
        Ok(mut limits) => limits.admit(&account, client, now),
        Err(_) => Err(session::Limited::Client),
    };
    if let Err(limit) = admitted {
        let why = match limit {
            session::Limited::Address => "too many sign-in links were asked for this address",
            session::Limited::Client => "too many sign-in links were asked from this computer",
        };
        return Ok(Asked::Answer(html(
            StatusCode::TOO_MANY_REQUESTS,
            pages::notice(
                "Try again later",
                &format!("{why}: wait 15 minutes, or use a link already sent"),
                None,
            ),
        )));
    }
    let mut link =
        super::sign_in_link(&portal.store, &account, &portal.url, now, SIGN_IN_VALIDITY)?;
    if next != "/" {
        link.push('?');
        link.push_str(&serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default());
    }
    Ok(Asked::Send {
        account,
        link,
        csrf,
        next,
    })
}

async fn sign_in_confirm(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    Query(query): Query<Fields>,
    headers: HeaderMap,
) -> Response {
    blocking(move || {
        let (csrf, cookie) = pre_session(&headers, portal.secure)?;
        let next = session::local_target(query.get("next").map(String::as_str));
        let action = format!("/sign-in/{}", pages::segment(&token));
        Ok(with_cookie(
            html(
                StatusCode::OK,
                pages::confirm_sign_in(&action, &csrf, &next),
            ),
            cookie,
        ))
    })
    .await
}

async fn sign_in_use(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    blocking(move || {
        if !pre_session_ok(&headers, &form) {
            return Ok(forbidden());
        }
        let now = portal.now();
        let why = match portal.store.use_sign_in(&token, now)? {
            SignIn::Accepted(account) => {
                let secret = fresh_secret()?;
                let record = SessionRecord {
                    account,
                    expires: now.plus(SESSION_LIFETIME),
                    csrf: fresh_secret()?,
                    flash: None,
                };
                portal.store.put_session(&secret, &record, now)?;
                let next = session::local_target(form.get("next").map(String::as_str));
                let cookie =
                    session::set_cookie(SESSION_COOKIE, &secret, SESSION_LIFETIME, portal.secure);
                return Ok(with_cookie(see_other(&next), Some(cookie)));
            }
            SignIn::Used => "this sign-in link was used already: a link signs in once",
            SignIn::Expired => "this sign-in link has expired: a link works for 15 minutes",
            SignIn::Unknown => "this is not a sign-in link of this service",
        };
        Ok(html(
            StatusCode::GONE,
            pages::notice(
                "Sign-in link refused",
                &format!("{why}. Ask for a new one on the sign-in page."),
                None,
            ),
        ))
    })
    .await
}

async fn sign_out(
    State(portal): State<Arc<Portal>>,
    form: Result<SignedForm, Response>,
) -> Response {
    // Signed out already (or never in): the sign-in page, as asked.
    let SignedForm { signed, .. } = match form {
        Ok(form) => form,
        Err(answer) if answer.status() == StatusCode::SEE_OTHER => return see_other("/sign-in"),
        Err(answer) => return answer,
    };
    blocking(move || {
        portal.store.end_session(&signed.secret)?;
        let cookie = session::set_cookie(SESSION_COOKIE, "", 0, portal.secure);
        Ok(with_cookie(see_other("/sign-in"), Some(cookie)))
    })
    .await
}
