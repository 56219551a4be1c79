//! Every POST that changes a Place: the same commands of the rules, in the
//! store's one transaction, as the operator CLI (`src/cli/cloud/`) runs
//! them. Each answers 303 to the page, which shows what happened once; a
//! refusal shows the rule's name and guidance, as the CLI prints them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::{Signed, SignedForm, Stop};
use super::pages::{self, Message};
use super::routes::{Fields, bad_form, blocking, html, json_response, not_found_page};
use super::{Portal, PortalError};
use crate::cloud::share_link::{issued_link, new_link_command};
use crate::cloud::{
    AccessDuration, AccountId, Command, Event, LinkSecret, Place, PlaceId, Refusal, ShareLink,
};

impl Portal {
    /// The answer after `outcome`: to a browser, 303 to the Place page
    /// with the message as the session's flash, or to the Places list
    /// when the account no longer reaches the Place (it revoked itself,
    /// released the home, or the Place is gone); to a JSON client, that
    /// page's JSON with the message.
    fn after(
        &self,
        signed: &Signed,
        id: &PlaceId,
        outcome: Result<String, Refusal>,
        new_link: Option<String>,
        json: bool,
    ) -> Result<Response, PortalError> {
        let (status, message) = match outcome {
            Ok(done) => (StatusCode::OK, Message::Done(done)),
            Err(refusal) => (StatusCode::CONFLICT, Message::refused(&refusal)),
        };
        let reachable = self.reachable(id, &signed.record.account)?;
        if !json {
            let to = match reachable {
                Some(_) => format!("/places/{}", pages::segment(&id.0)),
                None => "/".to_owned(),
            };
            return self.redirect_with(&signed.secret, &to, message, new_link, false);
        }
        let flash = super::extract::Flash {
            message,
            link: new_link,
        };
        match reachable {
            Some(place) => self.place_response(signed, &place, status, Some(flash), true, 1),
            None => self.places_page(signed, Some(flash.message), true, 1),
        }
    }
}

fn duration(form: &Fields) -> Option<AccessDuration> {
    form.get("duration")
        .and_then(|d| AccessDuration::from_code(d))
}

/// What an action did: the message (or the rules' refusal), and a share
/// link to show once.
type Outcome = (Result<String, Refusal>, Option<String>);

/// A POST on Place `id`: the Place if the account reaches it (else 404),
/// then `work` (off the async workers), then the answer with what it did.
/// `work` answers `Err(response)` for a form it cannot read, and runs its
/// command with [`Portal::run_form`] (the form's nonce in the same
/// transaction).
pub(super) async fn act(
    portal: Arc<Portal>,
    id: String,
    SignedForm { signed, form, json }: SignedForm,
    work: impl FnOnce(&Portal, &Signed, &Place, &Fields) -> Result<Result<Outcome, Response>, Stop>
    + Send
    + 'static,
) -> Response {
    blocking(move || {
        let Some(place) = portal.reachable(&PlaceId(id), &signed.record.account)? else {
            return Ok(not_found_page(Some(&signed)));
        };
        match work(&portal, &signed, &place, &form) {
            Ok(Ok((outcome, link))) => portal.after(&signed, &place.id, outcome, link, json),
            Ok(Err(response)) => Ok(response),
            Err(stop) => {
                let page = format!("/places/{}", pages::segment(&place.id.0));
                Ok(portal.stopped(&signed, &page, stop, json))
            }
        }
    })
    .await
}

pub(super) async fn share(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    act(portal, id, form, |portal, signed, place, form| {
        let (Some(email), Some(duration)) = (
            form.get("email").filter(|e| e.contains('@')),
            duration(form),
        ) else {
            return Ok(Err(bad_form(
                "a share needs an email address and one of the listed durations",
            )));
        };
        let to = AccountId::new(email);
        let cmd = Command::ShareAccess {
            place: place.id.clone(),
            by: signed.record.account.clone(),
            email: to.clone(),
            duration,
        };
        let outcome = portal
            .run_form(signed, form, &cmd)?
            .map(|_| format!("shared Place {} with {to} for {duration}", place.id));
        Ok(Ok((outcome, None)))
    })
    .await
}

pub(super) async fn new_link(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    act(portal, id, form, |portal, signed, place, form| {
        let Some(duration) = duration(form) else {
            return Ok(Err(bad_form("a link needs one of the listed durations")));
        };
        let (cmd, secret) = new_link_command(&place.id, &signed.record.account, duration)?;
        let made = portal
            .run_form(signed, form, &cmd)?
            .map(|events| issued_link(&events, secret));
        let url = made
            .as_ref()
            .ok()
            .map(|link| redeem_url(&portal.url, &place.id, link));
        let outcome = made.map(|link| {
            format!(
                "share link number {} generated (the old one no longer works); it gives {duration}",
                link.number
            )
        });
        Ok(Ok((outcome, url)))
    })
    .await
}

/// The address a share link is opened at: its number, Place and secret.
fn redeem_url(base: &str, place: &PlaceId, link: &ShareLink) -> String {
    let query = serde_urlencoded::to_string([
        ("place", place.0.as_str()),
        ("secret", link.secret.0.as_str()),
    ])
    .unwrap_or_default();
    format!("{base}/links/{}?{query}", link.number)
}

pub(super) async fn revoke(
    State(portal): State<Arc<Portal>>,
    Path((id, target)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    act(portal, id, form, move |portal, signed, place, form| {
        let target = AccountId::new(&target);
        let cmd = Command::RevokeAccess {
            place: place.id.clone(),
            by: signed.record.account.clone(),
            target: target.clone(),
            // The second, explicit confirmation of the last-person guard.
            force: form.get("force").is_some_and(|f| f == "yes"),
        };
        let outcome = portal.run_form(signed, form, &cmd)?.map(|events| {
            if events
                .iter()
                .any(|e| matches!(e, Event::PlaceDeleted { .. }))
            {
                format!(
                    "revoked {target}; Place {} had no one left and is deleted",
                    place.id
                )
            } else {
                format!("revoked {target}'s access to Place {}", place.id)
            }
        });
        Ok(Ok((outcome, None)))
    })
    .await
}

pub(super) async fn release(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    act(portal, id, form, |portal, signed, place, form| {
        if form.get("confirm").is_none_or(|c| c != "yes") {
            return Ok(Err(bad_form("tick the confirmation to remove the home from your account")));
        }
        let cmd = Command::Release {
            place: place.id.clone(),
            by: signed.record.account.clone(),
        };
        let outcome = portal.run_form(signed, form, &cmd)?.map(|_| {
            format!("Place {} has no homeowner now: it can be claimed again with the processor's button", place.id)
        });
        Ok(Ok((outcome, None)))
    })
    .await
}

/// `GET /links/{number}`: a button, so that opening (or prefetching) a
/// share link redeems nothing.
pub(super) async fn redeem_confirm(
    Path(number): Path<u64>,
    Query(query): Query<Fields>,
    signed: Signed,
) -> Response {
    let (Some(place), Some(secret)) = (query.get("place"), query.get("secret")) else {
        return bad_form("a share link names its Place and secret");
    };
    html(
        StatusCode::OK,
        pages::redeem(&signed.viewer(), number, place, secret),
    )
}

pub(super) async fn redeem(
    State(portal): State<Arc<Portal>>,
    Path(number): Path<u64>,
    SignedForm { signed, form, json }: SignedForm,
) -> Response {
    blocking(move || {
        let (Some(place), Some(secret)) = (form.get("place"), form.get("secret")) else {
            return Ok(bad_form("a share link names its Place and secret"));
        };
        let id = PlaceId(place.clone());
        let cmd = Command::RedeemLink {
            place: id.clone(),
            by: signed.record.account.clone(),
            link: ShareLink {
                number,
                secret: LinkSecret(secret.clone()),
            },
        };
        let done = match portal.run_form(&signed, &form, &cmd) {
            Ok(done) => done,
            Err(stop) => return Ok(portal.stopped(&signed, "/", stop, json)),
        };
        match done {
            Ok(_) => portal.after(
                &signed,
                &id,
                Ok(format!("you now have access to Place {id}")),
                None,
                json,
            ),
            Err(refusal) if json => Ok(json_response(
                StatusCode::CONFLICT,
                super::routes::message_json(&Message::refused(&refusal)),
            )),
            // To the Places list: the account may have no access to the Place.
            Err(refusal) => {
                portal.redirect_with(&signed.secret, "/", Message::refused(&refusal), None, false)
            }
        }
    })
    .await
}
