//! Frames of the pairing port (TCP 8083), processor-protocol.md §2.
//!
//! These frames have a `Header` and a `Body` but no `CommuniqueType`; the
//! kind of a frame is told by its `ContentType` (or, for the client's one
//! request, by `RequestType` and `Url`).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{MessageError, StatusCode};
use crate::leap::codec::JsonObject;

/// `ContentType` of the button-press status frame.
pub const CONTENT_TYPE_STATUS: &str = "status;plurality=single";
/// `ContentType` of the answer carrying the issued certificate.
pub const CONTENT_TYPE_SIGNING_RESULT: &str = "signing-result;plurality=single";
/// `ContentType` of a refusal.
pub const CONTENT_TYPE_EXCEPTION: &str = "exception;plurality=single";
/// The `ClientTag` real clients put on their CSR request.
pub const CSR_CLIENT_TAG: &str = "get-cert";
/// The `DeviceUID` real clients send.
pub const DEFAULT_DEVICE_UID: &str = "000000000000";
/// The permission the button press grants.
pub const PHYSICAL_ACCESS: &str = "PhysicalAccess";
/// The message of the 401 a CSR before the press gets.
pub const UNAUTHORIZED_MESSAGE: &str = "You are not authorized to perform this request";

/// The header of a pairing-port frame. Fields are declared in the order the
/// reference's frames show them, which is the order they are written in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PairingHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<StatusCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// What the client asks the processor to sign. PEM is opaque here: the
/// signer checks it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CsrParameters {
    #[serde(rename = "CSR")]
    pub csr: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    #[serde(rename = "DeviceUID")]
    pub device_uid: String,
    #[serde(rename = "Role")]
    pub role: String,
}

impl CsrParameters {
    /// A CSR with the `DeviceUID` and `Role` real clients send.
    pub fn admin(csr: impl Into<String>, display_name: impl Into<String>) -> CsrParameters {
        CsrParameters {
            csr: csr.into(),
            display_name: display_name.into(),
            device_uid: DEFAULT_DEVICE_UID.into(),
            role: "Admin".into(),
        }
    }
}

/// A frame of the pairing port, either way.
#[derive(Clone, Debug, PartialEq)]
pub enum PairingFrame {
    /// The processor's permissions; with `PhysicalAccess` it is the button
    /// press (see [`PairingFrame::physical_access`]).
    Status {
        status_code: Option<StatusCode>,
        permissions: Vec<String>,
    },
    /// The client's `Execute /pair` with `CommandType: CSR`.
    CsrRequest {
        client_tag: Option<String>,
        parameters: CsrParameters,
    },
    /// The issued certificate and the processor's root, both PEM.
    SigningResult {
        client_tag: Option<String>,
        certificate: String,
        root_certificate: String,
    },
    /// A refusal, such as the 401 before the press.
    Exception {
        status_code: StatusCode,
        client_tag: Option<String>,
        message: String,
    },
}

impl PairingFrame {
    /// What the processor sends when its button is pressed.
    pub fn physical_access() -> PairingFrame {
        PairingFrame::Status {
            status_code: Some(StatusCode::OK),
            permissions: vec!["Public".into(), PHYSICAL_ACCESS.into()],
        }
    }

    /// The client's certificate request.
    pub fn csr_request(client_tag: impl Into<String>, parameters: CsrParameters) -> PairingFrame {
        PairingFrame::CsrRequest {
            client_tag: Some(client_tag.into()),
            parameters,
        }
    }

    /// The processor's answer to a CSR it signed; `client_tag` echoes the
    /// request's.
    pub fn signing_result(
        client_tag: Option<String>,
        certificate: impl Into<String>,
        root_certificate: impl Into<String>,
    ) -> PairingFrame {
        PairingFrame::SigningResult {
            client_tag,
            certificate: certificate.into(),
            root_certificate: root_certificate.into(),
        }
    }

    /// The processor's answer to a CSR outside a button window.
    pub fn unauthorized(client_tag: Option<String>) -> PairingFrame {
        PairingFrame::Exception {
            status_code: StatusCode::UNAUTHORIZED,
            client_tag,
            message: UNAUTHORIZED_MESSAGE.into(),
        }
    }

    /// The processor's answer to a request it cannot use. Not in the
    /// reference: shaped like the 401, with `400 BadRequest`.
    pub fn bad_request(client_tag: Option<String>, message: impl Into<String>) -> PairingFrame {
        PairingFrame::Exception {
            status_code: StatusCode::BAD_REQUEST,
            client_tag,
            message: message.into(),
        }
    }

    /// Whether this is the button-press frame.
    pub fn is_physical_access(&self) -> bool {
        matches!(self, PairingFrame::Status { permissions, .. }
            if permissions.iter().any(|p| p == PHYSICAL_ACCESS))
    }

    pub fn client_tag(&self) -> Option<&str> {
        match self {
            PairingFrame::Status { .. } => None,
            PairingFrame::CsrRequest { client_tag, .. }
            | PairingFrame::SigningResult { client_tag, .. }
            | PairingFrame::Exception { client_tag, .. } => client_tag.as_deref(),
        }
    }

    /// A short description for error messages ("a 401 Unauthorized
    /// exception: …"); never quotes certificates.
    pub fn describe(&self) -> String {
        match self {
            PairingFrame::Status { permissions, .. } => {
                format!(
                    "a status frame with permissions [{}]",
                    permissions.join(", ")
                )
            }
            PairingFrame::CsrRequest { .. } => "a certificate request".into(),
            PairingFrame::SigningResult { .. } => "a signing result".into(),
            PairingFrame::Exception {
                status_code,
                message,
                ..
            } => format!("a {status_code} exception: {message}"),
        }
    }

    /// Reads a frame from the object a line held. Unknown fields are
    /// ignored.
    ///
    /// # Errors
    /// [`MessageError::UnknownFrame`] when it is no pairing frame handoff
    /// knows, [`MessageError::Malformed`] when it is one with missing or
    /// mistyped fields.
    pub fn from_object(object: JsonObject) -> Result<PairingFrame, MessageError> {
        let wire: Wire<Value> =
            serde_json::from_value(Value::Object(object)).map_err(|e| malformed("pairing", e))?;
        let Wire { header, body } = wire;
        if let Some(request) = &header.request_type {
            let url = header.url.as_deref().unwrap_or("");
            if request != "Execute" || url != "/pair" {
                return Err(MessageError::UnknownFrame {
                    summary: format!("a {request} request for '{url}'"),
                });
            }
            let body: CsrBody = serde_json::from_value(body).map_err(|e| malformed("CSR", e))?;
            if body.command_type != "CSR" {
                return Err(MessageError::Malformed {
                    what: "CSR",
                    reason: format!("CommandType is '{}', expected 'CSR'", body.command_type),
                });
            }
            return Ok(PairingFrame::CsrRequest {
                client_tag: header.client_tag,
                parameters: body.parameters,
            });
        }
        match frame_kind(&header, &body) {
            Some("status") => {
                let body: StatusBody =
                    serde_json::from_value(body).map_err(|e| malformed("status", e))?;
                Ok(PairingFrame::Status {
                    status_code: header.status_code,
                    permissions: body.status.permissions,
                })
            }
            Some("signing-result") => {
                let body: SigningBody =
                    serde_json::from_value(body).map_err(|e| malformed("signing result", e))?;
                Ok(PairingFrame::SigningResult {
                    client_tag: header.client_tag,
                    certificate: body.signing_result.certificate,
                    root_certificate: body.signing_result.root_certificate,
                })
            }
            Some("exception") => {
                let body: ExceptionBody =
                    serde_json::from_value(body).map_err(|e| malformed("exception", e))?;
                Ok(PairingFrame::Exception {
                    status_code: header.status_code.ok_or(MessageError::Malformed {
                        what: "exception",
                        reason: "no StatusCode".into(),
                    })?,
                    client_tag: header.client_tag,
                    message: body.exception.message,
                })
            }
            _ => Err(MessageError::UnknownFrame {
                summary: match &header.content_type {
                    Some(ct) => format!("ContentType '{ct}'"),
                    None => "a frame with neither ContentType nor RequestType".into(),
                },
            }),
        }
    }
}

/// The frame's kind: its `ContentType` up to `;`, else the one key of its
/// body (lutron-leap-js and others look at the body alone).
fn frame_kind<'a>(header: &'a PairingHeader, body: &Value) -> Option<&'a str> {
    if let Some(ct) = &header.content_type {
        return ct.split(';').next();
    }
    let keys = body.as_object()?;
    [
        ("Status", "status"),
        ("SigningResult", "signing-result"),
        ("Exception", "exception"),
    ]
    .into_iter()
    .find(|(key, _)| keys.contains_key(*key))
    .map(|(_, kind)| kind)
}

fn malformed(what: &'static str, e: serde_json::Error) -> MessageError {
    MessageError::Malformed {
        what,
        reason: e.to_string(),
    }
}

impl Serialize for PairingFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PairingFrame::Status {
                status_code,
                permissions,
            } => Wire {
                header: PairingHeader {
                    status_code: status_code.clone(),
                    content_type: Some(CONTENT_TYPE_STATUS.into()),
                    ..PairingHeader::default()
                },
                body: StatusBody {
                    status: PermissionList {
                        permissions: permissions.clone(),
                    },
                },
            }
            .serialize(s),
            PairingFrame::CsrRequest {
                client_tag,
                parameters,
            } => Wire {
                header: PairingHeader {
                    request_type: Some("Execute".into()),
                    url: Some("/pair".into()),
                    client_tag: client_tag.clone(),
                    ..PairingHeader::default()
                },
                body: CsrBody {
                    command_type: "CSR".into(),
                    parameters: parameters.clone(),
                },
            }
            .serialize(s),
            PairingFrame::SigningResult {
                client_tag,
                certificate,
                root_certificate,
            } => Wire {
                header: PairingHeader {
                    status_code: Some(StatusCode::OK),
                    client_tag: client_tag.clone(),
                    content_type: Some(CONTENT_TYPE_SIGNING_RESULT.into()),
                    ..PairingHeader::default()
                },
                body: SigningBody {
                    signing_result: Certificates {
                        certificate: certificate.clone(),
                        root_certificate: root_certificate.clone(),
                    },
                },
            }
            .serialize(s),
            PairingFrame::Exception {
                status_code,
                client_tag,
                message,
            } => Wire {
                header: PairingHeader {
                    status_code: Some(status_code.clone()),
                    client_tag: client_tag.clone(),
                    content_type: Some(CONTENT_TYPE_EXCEPTION.into()),
                    ..PairingHeader::default()
                },
                body: ExceptionBody {
                    exception: ExceptionMessage {
                        message: message.clone(),
                    },
                },
            }
            .serialize(s),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wire<B> {
    #[serde(rename = "Header", default)]
    header: PairingHeader,
    #[serde(rename = "Body", default)]
    body: B,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct StatusBody {
    status: PermissionList,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PermissionList {
    permissions: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CsrBody {
    command_type: String,
    parameters: CsrParameters,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SigningBody {
    signing_result: Certificates,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Certificates {
    certificate: String,
    root_certificate: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExceptionBody {
    exception: ExceptionMessage,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExceptionMessage {
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(value: Value) -> Result<PairingFrame, MessageError> {
        match value {
            Value::Object(o) => PairingFrame::from_object(o),
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn ignores_unknown_fields_everywhere() {
        let got = frame(json!({
            "Header": {"StatusCode": "200 OK", "ClientTag": "get-cert",
                       "ContentType": "signing-result;plurality=single",
                       "CorrelationID": "5a3b…"},
            "Body": {"SigningResult": {"Certificate": "C", "RootCertificate": "R",
                                       "Chain": []}},
            "Extra": 1
        }))
        .unwrap();
        assert_eq!(
            got,
            PairingFrame::signing_result(Some("get-cert".into()), "C", "R")
        );
    }

    #[test]
    fn tells_the_button_press_from_other_status_frames() {
        let press = frame(json!({"Header": {"ContentType": "status;plurality=single"},
            "Body": {"Status": {"Permissions": ["Public", "PhysicalAccess"]}}}))
        .unwrap();
        assert!(press.is_physical_access());
        let public = frame(json!({"Header": {"ContentType": "status;plurality=single"},
            "Body": {"Status": {"Permissions": ["Public"]}}}))
        .unwrap();
        assert!(!public.is_physical_access());
        assert_eq!(
            public.describe(),
            "a status frame with permissions [Public]"
        );
    }

    #[test]
    fn recognises_frames_without_content_type_by_their_body() {
        let got = frame(json!({"Header": {"StatusCode": "401 Unauthorized"},
            "Body": {"Exception": {"Message": "no"}}}))
        .unwrap();
        assert_eq!(got.describe(), "a 401 Unauthorized exception: no");
    }

    #[test]
    fn names_frames_it_does_not_know() {
        let err = frame(json!({"Header": {"ContentType": "ping;plurality=single"}, "Body": {}}))
            .unwrap_err();
        assert!(err.to_string().contains("ping;plurality=single"), "{err}");
        let err = frame(json!({"Header": {"RequestType": "Read", "Url": "/server"}})).unwrap_err();
        assert!(
            err.to_string().contains("a Read request for '/server'"),
            "{err}"
        );
        let err = frame(json!({"CommuniqueType": "ReadResponse"})).unwrap_err();
        assert!(matches!(err, MessageError::UnknownFrame { .. }), "{err:?}");
    }

    #[test]
    fn csr_request_without_its_parameters_is_malformed() {
        let err = frame(json!({"Header": {"RequestType": "Execute", "Url": "/pair"},
            "Body": {"CommandType": "CSR", "Parameters": {"CSR": "x"}}}))
        .unwrap_err();
        assert!(
            matches!(err, MessageError::Malformed { what: "CSR", .. }),
            "{err:?}"
        );
        let err = frame(json!({"Header": {"RequestType": "Execute", "Url": "/pair"},
            "Body": {"CommandType": "Reset", "Parameters": {"CSR": "x", "DisplayName": "d",
                     "DeviceUID": "0", "Role": "Admin"}}}))
        .unwrap_err();
        assert!(err.to_string().contains("'Reset'"), "{err}");
    }

    #[test]
    fn mistyped_fields_are_malformed_not_panics() {
        for bad in [
            json!({"Header": 5}),
            json!({"Header": {"StatusCode": "OK"}, "Body": {"Status": {"Permissions": []}}}),
            json!({"Header": {"ContentType": "status;plurality=single"}, "Body": {"Status": 1}}),
            json!({"Header": {"ContentType": "signing-result;plurality=single"},
                   "Body": {"SigningResult": {"Certificate": 7}}}),
            json!({"Header": {"ContentType": "exception;plurality=single"},
                   "Body": {"Exception": {"Message": "m"}}}),
        ] {
            assert!(
                matches!(frame(bad.clone()), Err(MessageError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn round_trips_every_frame() {
        for f in [
            PairingFrame::physical_access(),
            PairingFrame::csr_request("t", CsrParameters::admin("PEM", "handoff")),
            PairingFrame::signing_result(Some("t".into()), "C", "R"),
            PairingFrame::unauthorized(None),
            PairingFrame::bad_request(Some("t".into()), "why"),
        ] {
            let Value::Object(o) = serde_json::to_value(&f).unwrap() else {
                panic!("not an object")
            };
            assert_eq!(PairingFrame::from_object(o).unwrap(), f);
        }
    }
}
