//! Communiqués of the main port (TCP 8081), processor-protocol.md §3.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use super::{MessageError, StatusCode};
use crate::leap::codec::JsonObject;

/// Where a client pings.
pub const PING_URL: &str = "/server/1/status/ping";
/// Where older clients ping.
pub const LEGACY_PING_URL: &str = "/server/status/ping";
/// `MessageBodyType` of a ping answer.
pub const PING_BODY_TYPE: &str = "OnePingResponse";

/// The `CommuniqueType` of a main-port message. Types handoff does not
/// know are kept as they came, so they can be logged and answered.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum CommuniqueType {
    ReadRequest,
    ReadResponse,
    CreateRequest,
    CreateResponse,
    UpdateRequest,
    UpdateResponse,
    SubscribeRequest,
    SubscribeResponse,
    DeleteRequest,
    DeleteResponse,
    ExceptionResponse,
    Other(String),
}

const KNOWN_TYPES: [(CommuniqueType, &str); 11] = [
    (CommuniqueType::ReadRequest, "ReadRequest"),
    (CommuniqueType::ReadResponse, "ReadResponse"),
    (CommuniqueType::CreateRequest, "CreateRequest"),
    (CommuniqueType::CreateResponse, "CreateResponse"),
    (CommuniqueType::UpdateRequest, "UpdateRequest"),
    (CommuniqueType::UpdateResponse, "UpdateResponse"),
    (CommuniqueType::SubscribeRequest, "SubscribeRequest"),
    (CommuniqueType::SubscribeResponse, "SubscribeResponse"),
    (CommuniqueType::DeleteRequest, "DeleteRequest"),
    (CommuniqueType::DeleteResponse, "DeleteResponse"),
    (CommuniqueType::ExceptionResponse, "ExceptionResponse"),
];

impl CommuniqueType {
    pub fn as_str(&self) -> &str {
        match self {
            CommuniqueType::Other(s) => s,
            known => KNOWN_TYPES
                .iter()
                .find(|(t, _)| t == known)
                .map_or("", |(_, name)| name),
        }
    }

    pub fn parse(s: &str) -> CommuniqueType {
        KNOWN_TYPES
            .iter()
            .find(|(_, name)| *name == s)
            .map_or_else(|| CommuniqueType::Other(s.into()), |(t, _)| t.clone())
    }

    pub fn is_request(&self) -> bool {
        self.as_str().ends_with("Request")
    }

    /// The type that answers this request type (`ReadRequest` →
    /// `ReadResponse`), or `None` when this is no request.
    pub fn response(&self) -> Option<CommuniqueType> {
        let stem = self.as_str().strip_suffix("Request")?;
        Some(CommuniqueType::parse(&format!("{stem}Response")))
    }
}

impl fmt::Display for CommuniqueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CommuniqueType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CommuniqueType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| CommuniqueType::parse(&s))
    }
}

/// The header of a communiqué.
///
/// Written in the orders the reference shows: a request (no status) as
/// `ClientTag, Url`; a response as `StatusCode, Url, MessageBodyType,
/// ClientTag`. `ContentType` comes last. Order carries no meaning to any
/// known client; it is kept so that captures compare byte for byte.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Header {
    #[serde(default)]
    pub status_code: Option<StatusCode>,
    #[serde(default)]
    pub url: Option<String>,
    /// Mandatory on responses in practice: lutron-leap-js drops a response
    /// without a `MessageBodyType` it knows, and its request times out.
    #[serde(default)]
    pub message_body_type: Option<String>,
    #[serde(default)]
    pub client_tag: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
}

impl Serialize for Header {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.status_code.is_some() {
            ResponseOrder {
                status_code: self.status_code.as_ref(),
                url: self.url.as_ref(),
                message_body_type: self.message_body_type.as_ref(),
                client_tag: self.client_tag.as_ref(),
                content_type: self.content_type.as_ref(),
            }
            .serialize(s)
        } else {
            RequestOrder {
                client_tag: self.client_tag.as_ref(),
                url: self.url.as_ref(),
                message_body_type: self.message_body_type.as_ref(),
                content_type: self.content_type.as_ref(),
            }
            .serialize(s)
        }
    }
}

/// A request header's fields, in the order they are written.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestOrder<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_tag: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_body_type: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a String>,
}

/// A response header's fields, in the order they are written.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseOrder<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<&'a StatusCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_body_type: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_tag: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a String>,
}

/// A main-port message. The body stays JSON: handoff reads a few fields
/// of a few bodies and passes the rest through.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Communique {
    #[serde(rename = "CommuniqueType")]
    pub communique_type: CommuniqueType,
    #[serde(rename = "Header", default)]
    pub header: Header,
    #[serde(rename = "Body", default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl Communique {
    /// A request of any type, with an optional body.
    pub fn request(
        communique_type: CommuniqueType,
        client_tag: Option<String>,
        url: impl Into<String>,
        body: Option<Value>,
    ) -> Communique {
        Communique {
            communique_type,
            header: Header {
                client_tag,
                url: Some(url.into()),
                ..Header::default()
            },
            body,
        }
    }

    /// `ReadRequest` for `url`.
    pub fn read_request(client_tag: impl Into<String>, url: impl Into<String>) -> Communique {
        Communique::request(
            CommuniqueType::ReadRequest,
            Some(client_tag.into()),
            url,
            None,
        )
    }

    /// The ping pylutron-caseta sends after pairing (it sends no tag).
    pub fn ping_request(client_tag: Option<String>) -> Communique {
        Communique::request(CommuniqueType::ReadRequest, client_tag, PING_URL, None)
    }

    /// The answer to `request`: the matching response type, its `Url` and
    /// `ClientTag` echoed. A request of unknown shape is answered with an
    /// `ExceptionResponse`.
    pub fn response_to(
        request: &Communique,
        status_code: StatusCode,
        message_body_type: Option<String>,
        body: Option<Value>,
    ) -> Communique {
        Communique {
            communique_type: request
                .communique_type
                .response()
                .unwrap_or(CommuniqueType::ExceptionResponse),
            header: Header {
                status_code: Some(status_code),
                url: request.header.url.clone(),
                message_body_type,
                client_tag: request.header.client_tag.clone(),
                content_type: None,
            },
            body,
        }
    }

    /// The ping answer, with the `LEAPVersion` the processor reports.
    pub fn ping_response(request: &Communique, leap_version: f64) -> Communique {
        Communique::response_to(
            request,
            StatusCode::OK,
            Some(PING_BODY_TYPE.into()),
            Some(json!({"PingResponse": {"LEAPVersion": leap_version}})),
        )
    }

    /// `204 NoContent` without a body, as QSX answers a bare `/device`.
    pub fn no_content(request: &Communique) -> Communique {
        Communique::response_to(request, StatusCode::NO_CONTENT, None, None)
    }

    pub fn status(&self) -> Option<&StatusCode> {
        self.header.status_code.as_ref()
    }

    pub fn url(&self) -> Option<&str> {
        self.header.url.as_deref()
    }

    pub fn client_tag(&self) -> Option<&str> {
        self.header.client_tag.as_deref()
    }

    /// The `LEAPVersion` of a ping answer.
    pub fn leap_version(&self) -> Option<f64> {
        self.body
            .as_ref()?
            .get("PingResponse")?
            .get("LEAPVersion")?
            .as_f64()
    }

    /// Reads a communiqué from the object a line held. Unknown fields are
    /// ignored.
    ///
    /// # Errors
    /// [`MessageError::Malformed`] when `CommuniqueType` is missing or a
    /// field has the wrong type.
    pub fn from_object(object: JsonObject) -> Result<Communique, MessageError> {
        serde_json::from_value(Value::Object(object)).map_err(|e| MessageError::Malformed {
            what: "communiqué",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Communique, MessageError> {
        match serde_json::from_str(text).unwrap() {
            Value::Object(o) => Communique::from_object(o),
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn request_headers_put_the_tag_first() {
        let json = serde_json::to_string(&Communique::read_request("t1", "/project")).unwrap();
        assert_eq!(
            json,
            r#"{"CommuniqueType":"ReadRequest","Header":{"ClientTag":"t1","Url":"/project"}}"#
        );
    }

    #[test]
    fn responses_echo_url_and_tag_after_the_status() {
        let request = Communique::read_request("t1", "/device");
        let response = Communique::response_to(
            &request,
            StatusCode::OK,
            Some("MultipleDeviceDefinition".into()),
            Some(json!({"Devices": []})),
        );
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"CommuniqueType":"ReadResponse","Header":{"StatusCode":"200 OK","Url":"/device","MessageBodyType":"MultipleDeviceDefinition","ClientTag":"t1"},"Body":{"Devices":[]}}"#
        );
    }

    #[test]
    fn no_content_has_no_body() {
        let request = Communique::read_request("t", "/device");
        let json = serde_json::to_string(&Communique::no_content(&request)).unwrap();
        assert_eq!(
            json,
            r#"{"CommuniqueType":"ReadResponse","Header":{"StatusCode":"204 NoContent","Url":"/device","ClientTag":"t"}}"#
        );
    }

    #[test]
    fn reads_the_leap_version_of_a_ping_answer() {
        let got = parse(r#"{"CommuniqueType":"ReadResponse","Header":{"MessageBodyType":"OnePingResponse","StatusCode":"200 OK","Url":"/server/1/status/ping"},"Body":{"PingResponse":{"LEAPVersion":3.247}}}"#).unwrap();
        assert_eq!(got.leap_version(), Some(3.247));
        assert_eq!(got.status(), Some(&StatusCode::OK));
        assert_eq!(got.url(), Some(PING_URL));
    }

    #[test]
    fn keeps_unknown_communique_types_and_ignores_unknown_fields() {
        let got = parse(
            r#"{"CommuniqueType":"PingRequest","Header":{"Url":"/x","Extra":[1]},"Cookie":1}"#,
        )
        .unwrap();
        assert_eq!(
            got.communique_type,
            CommuniqueType::Other("PingRequest".into())
        );
        assert_eq!(
            got.communique_type.response(),
            Some(CommuniqueType::Other("PingResponse".into()))
        );
        let json = serde_json::to_string(&got).unwrap();
        assert_eq!(
            json,
            r#"{"CommuniqueType":"PingRequest","Header":{"Url":"/x"}}"#
        );
    }

    #[test]
    fn a_line_without_communique_type_is_malformed() {
        assert!(parse(r#"{"Header":{"Url":"/x"}}"#).is_err());
        assert!(parse(r#"{"CommuniqueType":3}"#).is_err());
        assert!(
            parse(r#"{"CommuniqueType":"ReadResponse","Header":{"StatusCode":"OK"}}"#).is_err()
        );
    }

    #[test]
    fn request_types_know_their_response_types() {
        for (request, response) in [
            (CommuniqueType::ReadRequest, CommuniqueType::ReadResponse),
            (
                CommuniqueType::SubscribeRequest,
                CommuniqueType::SubscribeResponse,
            ),
            (
                CommuniqueType::DeleteRequest,
                CommuniqueType::DeleteResponse,
            ),
        ] {
            assert!(request.is_request());
            assert_eq!(request.response(), Some(response));
        }
        assert_eq!(CommuniqueType::ReadResponse.response(), None);
    }
}
