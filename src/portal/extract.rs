//! Who a request is from, checked once for every route: [`Signed`] (a
//! live session, else the sign-in page) and [`SignedForm`] (that, plus a
//! form whose CSRF token is the session's, else 403).
//!
//! A form carries a nonce (`form`, [`super::pages`] puts a fresh one in
//! each), kept in the store in the transaction of what the form does
//! ([`Portal::run_form`]): a refresh or the back button sending it again
//! acts once, on any `cloud serve` node, and a form whose action failed
//! (a store error) can be sent again. A client that sends no nonce (a
//! script asking for JSON) opts out.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages::{Message, Viewer};
use super::routes::{Fields, forbidden, json_response, to_sign_in, wants_json};
use super::session::{self, SESSION_COOKIE};
use super::{Portal, PortalError, csrf};
use crate::cloud::store::portal::{SentForm, SessionRecord};
use crate::cloud::{CloudError, Command, Event, Refusal};

/// A signed-in request: the session's secret and record.
pub(super) struct Signed {
    pub secret: String,
    pub record: SessionRecord,
    /// A fresh nonce for the forms of the page this request gets.
    pub nonce: String,
}

impl Signed {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer::new(&self.record.account, &self.record.csrf, &self.nonce)
    }
}

impl Portal {
    /// The live session the request's cookie opens.
    pub(super) fn signed_in(&self, headers: &HeaderMap) -> Result<Option<Signed>, CloudError> {
        let cookies = headers.get(COOKIE).and_then(|v| v.to_str().ok());
        let Some(secret) = session::cookie(cookies, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(record) = self.store.session(secret, self.now())? else {
            return Ok(None);
        };
        Ok(Some(Signed {
            secret: secret.to_owned(),
            record,
            nonce: crate::cloud::store::fresh_secret()?,
        }))
    }
}

/// Runs the store's part of an extractor off the async workers; a failure
/// is the error page.
async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PortalError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(super::routes::failed(&e)),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

impl FromRequestParts<Arc<Portal>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &Arc<Portal>,
    ) -> Result<Signed, Response> {
        let (portal, headers) = (portal.clone(), parts.headers.clone());
        off_workers(move || Ok(portal.signed_in(&headers)?))
            .await?
            .ok_or_else(|| to_sign_in(&parts.method, &parts.uri))
    }
}

/// A signed-in POST with its form: CSRF checked, its nonce (if any) well
/// formed; whether it was sent before is asked with what it does.
pub(super) struct SignedForm {
    pub signed: Signed,
    pub form: Fields,
    /// The client asked for JSON (`Accept: application/json`).
    pub json: bool,
}

/// The longest form nonce kept (the portal's are 32 hex digits).
const NONCE_MAX: usize = 64;

impl FromRequest<Arc<Portal>> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, portal: &Arc<Portal>) -> Result<SignedForm, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, portal).await?;
        let json = wants_json(&parts.headers);
        let Form(form) = Form::<Fields>::from_request(Request::from_parts(parts, body), portal)
            .await
            .map_err(IntoResponse::into_response)?;
        if !csrf::matches(&signed.record.csrf, form.get("csrf").map(String::as_str)) {
            return Err(forbidden());
        }
        let Some(nonce) = form.get("form").cloned() else {
            return Ok(SignedForm { signed, form, json });
        };
        if nonce.is_empty()
            || nonce.len() > NONCE_MAX
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(super::routes::bad_form(
                "this form's nonce is not one the portal made",
            ));
        }
        Ok(SignedForm { signed, form, json })
    }
}

/// Why a form's action stopped short of an answer of its own.
pub(super) enum Stop {
    /// The store (or the randomness) failed: nothing was done, and the
    /// form's nonce was not kept, so it can be sent again.
    Failed(PortalError),
    /// The form was sent before (a refresh or the back button): not done
    /// again.
    SentAlready,
}

impl<E: Into<PortalError>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Failed(e.into())
    }
}

impl Portal {
    /// Runs `cmd` for the form `fields` of `signed`'s session: its nonce
    /// (if it carries one) is kept in the same store transaction as the
    /// command ([`crate::cloud::CloudStore::execute_form`]).
    pub(super) fn run_form(
        &self,
        signed: &Signed,
        fields: &Fields,
        cmd: &Command,
    ) -> Result<Result<Vec<Event>, Refusal>, Stop> {
        let sent = fields.get("form").map(|nonce| SentForm {
            session: &signed.secret,
            nonce,
            expires: signed.record.expires,
        });
        self.store
            .execute_form(cmd, self.now(), sent.as_ref())?
            .ok_or(Stop::SentAlready)
    }

    /// The answer when `stop` came: the error page, or back to `path`'s
    /// page saying the form was not done again.
    pub(super) fn stopped(&self, signed: &Signed, path: &str, stop: Stop, json: bool) -> Response {
        let again = Message::Done(
            "this form was sent already (a refresh or the back button): it was not done again"
                .into(),
        );
        let answer = match stop {
            Stop::Failed(e) => Err(e),
            Stop::SentAlready => {
                self.redirect_with(&signed.secret, &back_to(path), again, None, json)
            }
        };
        answer.unwrap_or_else(|e| super::routes::failed(&e))
    }
}

/// The page a form at `path` belongs to: its Place's page, else the
/// Places list.
fn back_to(path: &str) -> String {
    match path
        .strip_prefix("/places/")
        .and_then(|rest| rest.split('/').next())
    {
        Some(id) if !id.is_empty() => format!("/places/{id}"),
        _ => "/".to_owned(),
    }
}

impl Portal {
    /// The answer to a POST (POST/redirect/GET): `message` (and a new
    /// share link to show once) kept as the session's one-shot flash,
    /// then 303 to `to`, so a refresh shows the page and sends nothing.
    /// A JSON client gets the message as JSON at once.
    pub(super) fn redirect_with(
        &self,
        secret: &str,
        to: &str,
        message: Message,
        link: Option<String>,
        json: bool,
    ) -> Result<Response, PortalError> {
        if json {
            let status = match message {
                Message::Done(_) => StatusCode::OK,
                Message::Refused { .. } => StatusCode::CONFLICT,
            };
            let mut value = super::routes::message_json(&message);
            if let Some(link) = link {
                value["link"] = serde_json::json!(link);
            }
            return Ok(json_response(status, value));
        }
        let flash = Flash { message, link };
        let text = serde_json::to_string(&flash)
            .map_err(|e| CloudError::Failed(format!("cannot encode a message: {e}")))?;
        self.store.swap_flash(secret, Some(&text))?;
        Ok(super::routes::see_other(to))
    }

    /// The session's one-shot flash, taken (the next page shows none).
    pub(super) fn take_flash(&self, signed: &Signed) -> Result<Option<Flash>, PortalError> {
        if signed.record.flash.is_none() {
            return Ok(None);
        }
        let taken = self.store.swap_flash(&signed.secret, None)?;
        Ok(taken.and_then(|text| serde_json::from_str(&text).ok()))
    }
}

/// What a POST did, carried to the page it redirects to.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Flash {
    pub message: Message,
    /// A share link just generated: shown once, on that page.
    pub link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_goes_back_to_its_place_or_to_the_list() {
        assert_eq!(back_to("/places/p%201/share"), "/places/p%201");
        assert_eq!(back_to("/places/p/access/a%40b/revoke"), "/places/p");
        assert_eq!(back_to("/links/3/redeem"), "/");
        assert_eq!(back_to("/sign-out"), "/");
        assert_eq!(back_to("/places/"), "/");
    }
}
