use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::MessageError;

/// A LEAP `StatusCode`: an HTTP-like number and a reason written without
/// spaces, `"200 OK"`, `"204 NoContent"`, `"401 Unauthorized"`.
///
/// The reason is kept as received so that a code handoff does not know
/// (`"201 Created"`) goes back out byte for byte. Decisions look at
/// [`StatusCode::code`] only.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StatusCode {
    code: u16,
    reason: Cow<'static, str>,
}

impl StatusCode {
    pub const OK: StatusCode = StatusCode::known(200, "OK");
    /// QSX answers a bare `/device` with it, and no body.
    pub const NO_CONTENT: StatusCode = StatusCode::known(204, "NoContent");
    pub const BAD_REQUEST: StatusCode = StatusCode::known(400, "BadRequest");
    /// What a CSR gets before the button press.
    pub const UNAUTHORIZED: StatusCode = StatusCode::known(401, "Unauthorized");
    pub const NOT_FOUND: StatusCode = StatusCode::known(404, "NotFound");
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode::known(405, "MethodNotAllowed");
    pub const INTERNAL_SERVER_ERROR: StatusCode = StatusCode::known(500, "InternalServerError");

    const fn known(code: u16, reason: &'static str) -> StatusCode {
        StatusCode {
            code,
            reason: Cow::Borrowed(reason),
        }
    }

    /// Any other code, with its reason as it should appear on the wire.
    pub fn new(code: u16, reason: impl Into<String>) -> StatusCode {
        StatusCode {
            code,
            reason: Cow::Owned(reason.into()),
        }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.reason)
        }
    }
}

impl FromStr for StatusCode {
    type Err = MessageError;

    /// Three digits (100–599), then optionally a space and a reason.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MessageError::StatusCode(s.chars().take(40).collect());
        let (digits, reason) = s.split_once(' ').unwrap_or((s, ""));
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let code: u16 = digits.parse().map_err(|_| err())?;
        if !(100..600).contains(&code) {
            return Err(err());
        }
        Ok(StatusCode::new(code, reason))
    }
}

impl Serialize for StatusCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_status_seen_on_processors() {
        for (text, want) in [
            ("200 OK", StatusCode::OK),
            ("204 NoContent", StatusCode::NO_CONTENT),
            ("400 BadRequest", StatusCode::BAD_REQUEST),
            ("401 Unauthorized", StatusCode::UNAUTHORIZED),
            ("404 NotFound", StatusCode::NOT_FOUND),
            ("405 MethodNotAllowed", StatusCode::METHOD_NOT_ALLOWED),
            ("500 InternalServerError", StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let got: StatusCode = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), text);
        }
    }

    #[test]
    fn keeps_unknown_reasons_byte_for_byte() {
        let created: StatusCode = "201 Created".parse().unwrap();
        assert_eq!((created.code(), created.reason()), (201, "Created"));
        assert!(created.is_success());
        assert_eq!(created.to_string(), "201 Created");
        let bare: StatusCode = "204".parse().unwrap();
        assert_eq!(bare.to_string(), "204");
        assert!(!StatusCode::UNAUTHORIZED.is_success());
    }

    #[test]
    fn rejects_what_is_not_a_status() {
        for bad in [
            "",
            "OK",
            "20 OK",
            "2000 OK",
            "099 Low",
            "600 High",
            "+20 OK",
            "２００ OK",
        ] {
            assert!(bad.parse::<StatusCode>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn is_a_json_string_on_the_wire() {
        let json = serde_json::to_string(&StatusCode::NO_CONTENT).unwrap();
        assert_eq!(json, "\"204 NoContent\"");
        let back: StatusCode = serde_json::from_str(&json).unwrap();
        assert_eq!(back, StatusCode::NO_CONTENT);
        assert!(serde_json::from_str::<StatusCode>("200").is_err());
        assert!(serde_json::from_str::<StatusCode>("\"OK 200\"").is_err());
    }
}
