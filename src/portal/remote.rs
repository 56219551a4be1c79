//! A grey Place (created with remote services off), as its creator sees
//! it: the page, and `POST /places/{id}/remote-services`, the Enable
//! control in two steps. The first POST answers a page saying it cannot be
//! undone, with a second form; only that form (with `confirm=yes`)
//! enables. There is no disable control: a request to turn them off is
//! refused by the rule `remote_services_cannot_be_disabled`.
//!
//! Nobody but the creator reaches a grey Place: everyone else gets 404
//! ([`super::routes`]), as for a Place that does not exist.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::json;

use super::actions::act;
use super::extract::{Flash, Signed, SignedForm};
use super::pages::{self, Message, ProcessorRow, Viewer};
use super::routes::{bad_form, html, json_response, with_message};
use super::{Portal, PortalError};
use crate::cloud::views::place_json;
use crate::cloud::{Command, Place, Status, guidance_for};

/// What the grey Place's row and page say besides the guidance: who else
/// sees it.
pub(super) const ONLY_YOU: &str =
    "Not in the Places list of anyone else until remote services are enabled.";

/// The vendor's sentence about such projects.
pub(super) const NOT_LISTED: &str =
    "Projects started without remote services enabled will not show up in your Places list.";

/// The form field of the control, and its one accepted value.
const FIELD: &str = "remote_services";
const ENABLED: &str = "enabled";

impl Portal {
    /// The page (or JSON) of a grey Place for its creator: its processors,
    /// the support line and the Enable control; no access list, no share,
    /// no link, no timeline.
    pub(super) fn grey_response(
        &self,
        signed: &Signed,
        place: &Place,
        status: StatusCode,
        flash: Option<Flash>,
        json: bool,
    ) -> Result<Response, PortalError> {
        let account = &signed.record.account;
        let now = self.now();
        let message = flash.map(|f| f.message);
        let (records, mut reports) = self.store.place_processors(&place.id)?;
        if json {
            let mut value = place_json(place, &records, &reports, now);
            value["status"] = json!(Status::Grey.to_string());
            value["guidance"] = json!(guidance_for(place, account, now));
            value["waiting_for_remote_services"] = json!(true);
            return Ok(json_response(status, with_message(value, message.as_ref())));
        }
        let processors: Vec<ProcessorRow> = records
            .into_iter()
            .map(|record| ProcessorRow {
                report: reports.remove(&record.serial),
                record,
            })
            .collect();
        Ok(html(
            status,
            grey_page(
                &signed.viewer(),
                place,
                guidance_for(place, account, now),
                &processors,
                message.as_ref(),
            ),
        ))
    }
}

/// `POST /places/{id}/remote-services`: with `remote_services=enabled`
/// and no `confirm`, the confirmation page; with `confirm=yes`, enable.
/// `disabled` (or `off`, `no`, …) asks to turn them off: refused by the
/// rules. Any other value is a bad form.
pub(super) async fn remote_services(
    State(portal): State<Arc<Portal>>,
    Path(id): Path<String>,
    form: SignedForm,
) -> Response {
    let json = form.json;
    act(portal, id, form, move |portal, signed, place, form| {
        let Some(asked) = form.get(FIELD) else {
            return Ok(Err(bad_form(
                "the remote services form says `remote_services=enabled`",
            )));
        };
        // Anything but the two plain answers is a typo, not a request to
        // turn them off.
        let enabled = match asked.as_str() {
            ENABLED => true,
            "disabled" | "disable" | "off" | "no" | "false" | "0" => false,
            _ => {
                return Ok(Err(bad_form(
                    "`remote_services` is `enabled` (they can be turned on, never off)",
                )));
            }
        };
        let confirmed = form.get("confirm").is_some_and(|c| c == "yes");
        if enabled && !confirmed {
            return Ok(Err(if json {
                json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"result": "needs_confirmation", "confirm": "yes",
                           "why": "enabling remote services cannot be undone: send confirm=yes to enable them"}),
                )
            } else {
                html(StatusCode::OK, confirm_page(&signed.viewer(), place))
            }));
        }
        let cmd = Command::SetRemoteServicesAsCreator {
            place: place.id.clone(),
            by: signed.record.account.clone(),
            enabled,
        };
        let outcome = portal.run_form(signed, form, &cmd)?.map(|events| {
            if events.is_empty() {
                format!("remote services of Place {} were on already: nothing changed", place.id)
            } else {
                format!(
                    "remote services are on for Place {}: it is in the Places list now, and they cannot be turned off",
                    place.id
                )
            }
        });
        Ok(Ok((outcome, None)))
    })
    .await
}

fn base(place: &Place) -> String {
    format!("/places/{}", pages::segment(&place.id.0))
}

fn grey_page(
    viewer: &Viewer<'_>,
    place: &Place,
    guidance: &str,
    processors: &[ProcessorRow],
    message: Option<&Message>,
) -> Markup {
    let base = base(place);
    pages::layout(
        &place.id.0,
        Some(viewer),
        message,
        html! {
            p { a href="/" { "← Places" } }
            h1 { "Place " (place.id) }
            p { (pages::status_badge(Status::Grey)) " " (guidance) }
            p { (NOT_LISTED) " " strong { (ONLY_YOU) } }
            p { "You created this Place. Until remote services are on, nobody has access to it, you included: no sharing, no share link." }

            h2 { "Processors" }
            (pages::processor_table(processors))

            h2 { "Enable remote services" }
            form method="post" action={ (base) "/remote-services" } {
                (pages::signed_fields(viewer))
                input type="hidden" name=(FIELD) value=(ENABLED);
                button type="submit" { "Enable remote services…" }
            }
            p { small { "The next page asks you to confirm: this cannot be undone." } }

            h2 { "Support" }
            p {
                label for="support-line" { "Line for support (copy it)" }
                input id="support-line" type="text" readonly value=(pages::support_text(&place.id, Status::Grey, processors));
            }
        },
    )
}

fn confirm_page(viewer: &Viewer<'_>, place: &Place) -> Markup {
    let base = base(place);
    pages::layout(
        "Enable remote services",
        Some(viewer),
        None,
        html! {
            p { a href=(base) { "← Place " (place.id) } }
            h1 { "Enable remote services for " (place.id) "?" }
            div.notice.refused role="alert" {
                p { strong { "This cannot be undone." } " Once remote services are on they can never be turned off: the designer greys the option out (Tools > Project Settings)." }
                p { "The Place then shows up in your Places list, and you can share it." }
            }
            form method="post" action={ (base) "/remote-services" } {
                (pages::signed_fields(viewer))
                input type="hidden" name=(FIELD) value=(ENABLED);
                input id="confirm-remote" type="checkbox" name="confirm" value="yes" required;
                label for="confirm-remote" { "I understand that remote services cannot be turned off again" }
                button type="submit" { "Enable remote services" }
            }
            p { a href=(base) { "Cancel: leave them off" } }
        },
    )
}
