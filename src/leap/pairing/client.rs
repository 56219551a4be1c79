//! handoff's side of the handshake: wait for the press, send the CSR,
//! take the certificate.

use std::fmt;
use std::time::{Duration, Instant};

use super::{
    DEFAULT_BUTTON_WINDOW, DEFAULT_STEP_TIMEOUT, Disconnect, PairingError, SignedCertificate,
};
use crate::leap::codec::{CodecError, JsonObject};
use crate::leap::message::{CSR_CLIENT_TAG, CsrParameters, MessageError, PairingFrame};

/// How to pair, and how to name the processor in errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingClientConfig {
    /// The processor as the integrator knows it, e.g. "RadioRA 3 processor
    /// 0236e6a7 at 192.168.1.20"; every error names it.
    pub processor: String,
    /// How long to wait for the press.
    pub button_timeout: Duration,
    /// How long to wait for the certificate once the CSR is sent.
    pub step_timeout: Duration,
    /// The tag the answer must echo.
    pub client_tag: String,
    pub csr: CsrParameters,
}

impl PairingClientConfig {
    /// The timeouts and tag of pylutron-caseta, which real processors are
    /// known to accept.
    pub fn new(processor: impl Into<String>, csr: CsrParameters) -> PairingClientConfig {
        PairingClientConfig {
            processor: processor.into(),
            button_timeout: DEFAULT_BUTTON_WINDOW,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            client_tag: CSR_CLIENT_TAG.into(),
            csr,
        }
    }
}

/// Where the handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    AwaitingButton,
    AwaitingCertificate,
    Paired,
    Failed,
}

impl Stage {
    /// What the integrator can do after the processor closed the
    /// connection at this stage.
    pub(super) fn hint(&self) -> &'static str {
        match self {
            Stage::AwaitingButton => {
                "another client may be pairing with it, or it restarted; run the command again"
            }
            _ => "it may have restarted; press the button and run the command again",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::AwaitingButton => "while waiting for its button to be pressed",
            Stage::AwaitingCertificate => "after the button press, before sending the certificate",
            Stage::Paired => "after pairing",
            Stage::Failed => "after pairing failed",
        })
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientAction {
    /// Write this frame.
    Send(PairingFrame),
    /// Done: keep these, close the connection.
    Paired(SignedCertificate),
}

#[derive(Debug)]
enum State {
    AwaitingButton,
    AwaitingCertificate,
    Paired,
    Failed(PairingError),
}

/// The client machine. Create it when the connection is up; errors are
/// final, and later calls return the same error.
#[derive(Debug)]
pub struct PairingClient {
    config: PairingClientConfig,
    state: State,
    deadline: Instant,
}

impl PairingClient {
    /// Starts waiting for the press; the button deadline runs from `now`.
    pub fn new(now: Instant, config: PairingClientConfig) -> PairingClient {
        let deadline = now + config.button_timeout;
        PairingClient {
            config,
            state: State::AwaitingButton,
            deadline,
        }
    }

    pub fn stage(&self) -> Stage {
        match self.state {
            State::AwaitingButton => Stage::AwaitingButton,
            State::AwaitingCertificate => Stage::AwaitingCertificate,
            State::Paired => Stage::Paired,
            State::Failed(_) => Stage::Failed,
        }
    }

    /// When to call [`PairingClient::handle_timeout`]; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingButton | State::AwaitingCertificate => Some(self.deadline),
            State::Paired | State::Failed(_) => None,
        }
    }

    /// Fails the handshake once its deadline is reached (at the deadline
    /// exactly, not after it).
    ///
    /// # Errors
    /// [`PairingError::ButtonNotPressed`] or [`PairingError::NoAnswer`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PairingError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if now < self.deadline {
            return Ok(());
        }
        let processor = self.config.processor.clone();
        match self.state {
            State::AwaitingButton => self.fail(PairingError::ButtonNotPressed {
                processor,
                waited: self.config.button_timeout,
            }),
            State::AwaitingCertificate => self.fail(PairingError::NoAnswer {
                processor,
                waited: self.config.step_timeout,
            }),
            State::Paired | State::Failed(_) => Ok(()),
        }
    }

    /// A frame arrived.
    ///
    /// # Errors
    /// Any [`PairingError`] but `Finished`, as the frame warrants; a frame
    /// arriving at or after the deadline fails as the timeout would have.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        object: JsonObject,
    ) -> Result<Option<ClientAction>, PairingError> {
        self.handle_timeout(now)?;
        let processor = self.config.processor.clone();
        if matches!(self.state, State::Paired) {
            return Err(PairingError::Finished { processor });
        }
        let frame = match PairingFrame::from_object(object) {
            Ok(frame) => frame,
            Err(MessageError::UnknownFrame { summary }) => {
                let got = format!("a frame handoff does not know ({summary})");
                return self.fail(self.unexpected(got)).map(|()| None);
            }
            Err(e) => {
                let reason = e.to_string();
                return self
                    .fail(PairingError::Malformed { processor, reason })
                    .map(|()| None);
            }
        };
        match (&self.state, frame) {
            (State::AwaitingButton, frame) if frame.is_physical_access() => {
                self.state = State::AwaitingCertificate;
                self.deadline = now + self.config.step_timeout;
                Ok(Some(ClientAction::Send(PairingFrame::csr_request(
                    self.config.client_tag.clone(),
                    self.config.csr.clone(),
                ))))
            }
            // A second press re-announces what we already know.
            (State::AwaitingCertificate, frame) if frame.is_physical_access() => Ok(None),
            (
                State::AwaitingCertificate,
                PairingFrame::SigningResult {
                    client_tag,
                    certificate,
                    root_certificate,
                },
            ) => {
                if client_tag.as_deref() != Some(&self.config.client_tag) {
                    let expected = self.config.client_tag.clone();
                    let got = client_tag.unwrap_or_else(|| "(none)".into());
                    return self
                        .fail(PairingError::WrongClientTag {
                            processor,
                            expected,
                            got,
                        })
                        .map(|()| None);
                }
                if certificate.trim().is_empty() || root_certificate.trim().is_empty() {
                    let reason = "its signing result holds no certificate".into();
                    return self
                        .fail(PairingError::Malformed { processor, reason })
                        .map(|()| None);
                }
                self.state = State::Paired;
                Ok(Some(ClientAction::Paired(SignedCertificate {
                    certificate,
                    root_certificate,
                })))
            }
            (
                State::AwaitingCertificate,
                PairingFrame::Exception {
                    status_code,
                    message,
                    ..
                },
            ) => {
                let error = if status_code.code() == 401 {
                    PairingError::Unauthorized { processor, message }
                } else {
                    PairingError::Refused {
                        processor,
                        status: status_code,
                        message,
                    }
                };
                self.fail(error).map(|()| None)
            }
            (_, frame) => self.fail(self.unexpected(frame.describe())).map(|()| None),
        }
    }

    /// A line could not be read as JSON.
    ///
    /// # Errors
    /// [`PairingError::Malformed`], unless pairing already succeeded.
    pub fn handle_malformed(
        &mut self,
        now: Instant,
        error: &CodecError,
    ) -> Result<(), PairingError> {
        self.handle_timeout(now)?;
        if matches!(self.state, State::Paired) {
            return Ok(());
        }
        let processor = self.config.processor.clone();
        let reason = error.to_string();
        self.fail(PairingError::Malformed { processor, reason })
    }

    /// The connection ended.
    ///
    /// # Errors
    /// [`PairingError::ProcessorClosed`], naming the stage, unless pairing
    /// already succeeded.
    pub fn handle_disconnect(&mut self, now: Instant, how: Disconnect) -> Result<(), PairingError> {
        self.handle_timeout(now)?;
        let stage = self.stage();
        if stage == Stage::Paired {
            return Ok(());
        }
        let processor = self.config.processor.clone();
        self.fail(PairingError::ProcessorClosed {
            processor,
            stage,
            how,
        })
    }

    fn unexpected(&self, got: String) -> PairingError {
        let processor = self.config.processor.clone();
        match self.state {
            State::AwaitingButton => PairingError::UnexpectedBeforeButton { processor, got },
            _ => PairingError::UnexpectedAfterRequest { processor, got },
        }
    }

    /// Makes `error` final; returns it, or the earlier one if there was one.
    fn fail(&mut self, error: PairingError) -> Result<(), PairingError> {
        if let State::Failed(first) = &self.state {
            return Err(first.clone());
        }
        self.state = State::Failed(error.clone());
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leap::codec::LineCodec;
    use crate::leap::message::StatusCode;
    use serde_json::Value;

    const PROCESSOR: &str = "RadioRA 3 processor 0236e6a7 at 192.168.1.20";

    fn config() -> PairingClientConfig {
        PairingClientConfig::new(
            PROCESSOR,
            CsrParameters::admin("-----BEGIN CSR-----", "handoff"),
        )
    }

    fn object(frame: &PairingFrame) -> JsonObject {
        match serde_json::to_value(frame).unwrap() {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    fn signing_result(tag: &str) -> PairingFrame {
        PairingFrame::signing_result(Some(tag.into()), "CERT for handoff", "ROOT")
    }

    #[test]
    fn client_reports_a_401_as_a_closed_window() {
        let mut client = PairingClient::new(Instant::now(), config());
        let now = Instant::now();
        client
            .handle_frame(now, object(&PairingFrame::physical_access()))
            .unwrap();
        let err = client
            .handle_frame(
                now,
                object(&PairingFrame::unauthorized(Some("get-cert".into()))),
            )
            .unwrap_err();
        assert!(matches!(err, PairingError::Unauthorized { .. }), "{err:?}");
        assert!(
            err.to_string().contains("the button window had closed"),
            "{err}"
        );
    }

    #[test]
    fn client_names_a_first_frame_that_is_not_the_press() {
        let mut client = PairingClient::new(Instant::now(), config());
        let err = client
            .handle_frame(
                Instant::now(),
                object(&PairingFrame::bad_request(None, "who are you")),
            )
            .unwrap_err();
        assert!(
            matches!(err, PairingError::UnexpectedBeforeButton { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("a 400 BadRequest exception: who are you"),
            "{err}"
        );
        // The error is final.
        assert_eq!(client.handle_timeout(Instant::now()), Err(err));
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn client_rejects_a_status_frame_without_physical_access() {
        let mut client = PairingClient::new(Instant::now(), config());
        let public = PairingFrame::Status {
            status_code: Some(StatusCode::OK),
            permissions: vec!["Public".into()],
        };
        let err = client
            .handle_frame(Instant::now(), object(&public))
            .unwrap_err();
        assert!(err.to_string().contains("permissions [Public]"), "{err}");
    }

    #[test]
    fn client_rejects_a_signing_result_with_another_tag() {
        let now = Instant::now();
        let mut client = PairingClient::new(now, config());
        client
            .handle_frame(now, object(&PairingFrame::physical_access()))
            .unwrap();
        let err = client
            .handle_frame(now, object(&signing_result("other")))
            .unwrap_err();
        assert_eq!(
            err,
            PairingError::WrongClientTag {
                processor: PROCESSOR.into(),
                expected: "get-cert".into(),
                got: "other".into()
            }
        );
    }

    #[test]
    fn client_gives_up_exactly_ten_seconds_after_its_csr() {
        let t0 = Instant::now();
        let mut client = PairingClient::new(t0, config());
        let pressed = t0 + Duration::from_secs(60);
        let sent = client
            .handle_frame(pressed, object(&PairingFrame::physical_access()))
            .unwrap();
        assert!(matches!(
            sent,
            Some(ClientAction::Send(PairingFrame::CsrRequest { .. }))
        ));
        assert_eq!(client.poll_timeout(), Some(pressed + DEFAULT_STEP_TIMEOUT));
        assert_eq!(
            client.handle_timeout(pressed + Duration::from_millis(9_999)),
            Ok(())
        );
        // An answer arriving at the deadline is too late.
        let late = client.handle_frame(
            pressed + DEFAULT_STEP_TIMEOUT,
            object(&signing_result("get-cert")),
        );
        let err = late.unwrap_err();
        assert!(matches!(err, PairingError::NoAnswer { .. }), "{err:?}");
        assert!(err.to_string().contains("within 10 s"), "{err}");
    }

    #[test]
    fn client_reports_unreadable_lines_as_malformed() {
        let mut client = PairingClient::new(Instant::now(), config());
        let codec_error = LineCodec::new().decode(b"<html>\n").unwrap_err();
        let err = client
            .handle_malformed(Instant::now(), &codec_error)
            .unwrap_err();
        assert!(matches!(err, PairingError::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains("not JSON"), "{err}");
        let oversized = CodecError::Oversized { limit: 262_144 };
        let mut client = PairingClient::new(Instant::now(), config());
        let err = client
            .handle_malformed(Instant::now(), &oversized)
            .unwrap_err();
        assert!(
            err.to_string().contains("longer than 262144 bytes"),
            "{err}"
        );
    }

    #[test]
    fn client_rejects_an_empty_certificate() {
        let now = Instant::now();
        let mut client = PairingClient::new(now, config());
        client
            .handle_frame(now, object(&PairingFrame::physical_access()))
            .unwrap();
        let empty = PairingFrame::signing_result(Some("get-cert".into()), "", "ROOT");
        let err = client.handle_frame(now, object(&empty)).unwrap_err();
        assert!(matches!(err, PairingError::Malformed { .. }), "{err:?}");
    }
}
