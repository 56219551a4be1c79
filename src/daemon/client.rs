//! The CLI's side of the control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::UnixStream;

use super::DaemonError;
use crate::processor::ProcessorInfo;
use crate::proto::control::{
    ClaimRequest, ControlMessage, Done, HealthReport, OutcomeRequest, Progress, Queued,
    ReleaseRequest, Request, TakeoverRequest, WatchEvent, error_code,
};
use crate::proto::{FrameConnection, FrameIoError};

/// How long a client waits for the daemon to answer one frame.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `inspect` waits for the next frame of a house: an area can
/// take the daemon many requests, each of which it gives up on after 10 s.
const HOUSE_FRAME_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to the daemon.
pub struct ControlClient<S> {
    reader: FrameConnection<ReadHalf<S>>,
    writer: FrameConnection<WriteHalf<S>>,
    next_request: u64,
    path: PathBuf,
}

/// Connects to the daemon at `path`; `None` when no daemon runs there (no
/// socket file, or nobody listening on it).
///
/// # Errors
/// [`DaemonError::Io`] for anything else (e.g. permission denied: the
/// socket is there but this user may not use it).
pub async fn connect(path: &Path) -> Result<Option<ControlClient<UnixStream>>, DaemonError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, UnixStream::connect(path)).await {
        Err(_) => Err(DaemonError::NoAnswer {
            path: path.to_path_buf(),
        }),
        Ok(Ok(stream)) => Ok(Some(ControlClient::new(stream, path))),
        Ok(Err(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Ok(Err(e)) => Err(DaemonError::Io {
            context: format!("connecting to the daemon at {}", path.display()),
            source: e,
        }),
    }
}

/// Connects to the first daemon that answers on one of `paths`, in order.
///
/// # Errors
/// The first error [`connect`] met, when no daemon answered anywhere.
pub async fn connect_first(
    paths: &[PathBuf],
) -> Result<Option<(ControlClient<UnixStream>, PathBuf)>, DaemonError> {
    let mut first_error = None;
    for path in paths {
        match connect(path).await {
            Ok(Some(client)) => return Ok(Some((client, path.clone()))),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ControlClient<S> {
    pub fn new(stream: S, path: &Path) -> ControlClient<S> {
        let (r, w) = tokio::io::split(stream);
        ControlClient {
            reader: FrameConnection::new(r),
            writer: FrameConnection::new(w),
            next_request: 1,
            path: path.to_path_buf(),
        }
    }

    async fn request(&mut self, make: fn(Request) -> ControlMessage) -> Result<u64, DaemonError> {
        let request = self.take_request();
        self.writer
            .write_frame(&make(Request { request }))
            .await
            .map_err(|e| self.failed(e))?;
        Ok(request)
    }

    fn take_request(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        request
    }

    /// Hands `event` to the daemon's outbox and waits up to `wait` for the
    /// cloud's answer (the daemon answers `queued` when none came).
    ///
    /// # Errors
    /// [`DaemonError::Refused`] (e.g. `not-implemented`: the daemon runs no
    /// relay), or the connection failing.
    pub async fn queue(
        &mut self,
        event: crate::proto::EventKind,
        wait: Duration,
    ) -> Result<Queued, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Queue(Box::new(crate::proto::control::QueueRequest {
            request,
            event,
            wait_ms: millis(wait),
        }));
        self.queued_answer(msg, request, wait).await
    }

    /// What became of an event queued earlier, waiting up to `wait` for the
    /// cloud's answer.
    ///
    /// # Errors
    /// As [`ControlClient::queue`]; `unknown-event` when the daemon's
    /// outbox never held it.
    pub async fn outcome(
        &mut self,
        id: crate::proto::EventId,
        wait: Duration,
    ) -> Result<Queued, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Outcome(OutcomeRequest {
            request,
            id,
            wait_ms: millis(wait),
        });
        self.queued_answer(msg, request, wait).await
    }

    /// Sends `msg` and waits up to `limit` for its one answer, which `pick`
    /// takes apart (`None`: an answer of another kind).
    async fn one_answer<T>(
        &mut self,
        msg: ControlMessage,
        request: u64,
        limit: Duration,
        pick: impl FnOnce(ControlMessage) -> Option<T>,
    ) -> Result<T, DaemonError> {
        self.writer
            .write_frame(&msg)
            .await
            .map_err(|e| self.failed(e))?;
        match self.answer_within(request, limit).await? {
            Some(answer) => {
                let kind = answer.kind().to_owned();
                pick(answer).ok_or(DaemonError::Unexpected { kind })
            }
            None => Err(self.closed().await),
        }
    }

    async fn queued_answer(
        &mut self,
        msg: ControlMessage,
        request: u64,
        wait: Duration,
    ) -> Result<Queued, DaemonError> {
        self.one_answer(msg, request, wait + ANSWER_TIMEOUT, |m| match m {
            ControlMessage::Queued(q) => Some(q),
            _ => None,
        })
        .await
    }

    /// Asks the daemon for Remove Home from Account (the credential is
    /// forgotten once the cloud applied it), waiting up to `wait` for the
    /// cloud; with `unpair`, only to forget the credential.
    ///
    /// # Errors
    /// [`DaemonError::Refused`] with code `failed` (nothing of that name is
    /// paired with the daemon, or it relays to no cloud), or the connection
    /// failing.
    pub async fn release(
        &mut self,
        processor: &str,
        wait: Duration,
        unpair: bool,
    ) -> Result<Done, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Release(ReleaseRequest {
            request,
            processor: processor.to_owned(),
            wait_ms: millis(wait),
            unpair,
        });
        self.one_answer(msg, request, wait + ANSWER_TIMEOUT, |m| match m {
            ControlMessage::Done(done) => Some(*done),
            _ => None,
        })
        .await
    }

    /// Asks the daemon to claim a processor; `on_progress` hears every
    /// step (the button countdown). When `cancel` resolves, the client
    /// half-closes its side, which cancels the claim, and waits for the
    /// daemon's last word: `cancelled` when nothing was stored, or `done`
    /// when the claim had already been stored.
    ///
    /// # Errors
    /// [`DaemonError::Refused`] (`failed`, `busy`, `cancelled`, …), or the
    /// connection failing.
    pub async fn claim(
        &mut self,
        mut req: ClaimRequest,
        on_progress: impl FnMut(&Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Done, DaemonError> {
        req.request = self.take_request();
        let request = req.request;
        // Long enough for the daemon to find the processor, wait out the
        // button window and hear from the cloud; a daemon that says
        // nothing for longer has hung.
        let patience = Duration::from_secs(req.button_s.unwrap_or(600))
            + Duration::from_millis(req.wait_ms)
            + Duration::from_secs(30);
        let msg = ControlMessage::Claim(Box::new(req));
        self.perform(msg, request, patience, on_progress, cancel)
            .await
    }

    /// Asks the daemon to take a processor over, as [`ControlClient::claim`]
    /// does a claim: every step and the countdown to `on_progress`, `cancel`
    /// stops it between steps (or in the button wait).
    ///
    /// # Errors
    /// As [`ControlClient::claim`].
    pub async fn takeover(
        &mut self,
        mut req: TakeoverRequest,
        on_progress: impl FnMut(&Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Done, DaemonError> {
        req.request = self.take_request();
        let request = req.request;
        // The longest silence: the button window, or one step's wait for
        // the cloud (status, claim, share, release each wait at most that).
        let patience = Duration::from_secs(req.button_s.unwrap_or(600))
            + 2 * Duration::from_millis(req.wait_ms)
            + Duration::from_secs(30);
        let msg = ControlMessage::Takeover(Box::new(req));
        self.perform(msg, request, patience, on_progress, cancel)
            .await
    }

    /// Sends a request answered by `progress` frames and one `done`.
    async fn perform(
        &mut self,
        msg: ControlMessage,
        request: u64,
        patience: Duration,
        mut on_progress: impl FnMut(&Progress),
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Done, DaemonError> {
        self.writer
            .write_frame(&msg)
            .await
            .map_err(|e| self.failed(e))?;
        tokio::pin!(cancel);
        let mut cancelled = false;
        loop {
            let answer = if cancelled {
                self.answer_within(request, patience).await?
            } else {
                tokio::select! {
                    answer = self.answer_within(request, patience) => answer?,
                    () = &mut cancel => {
                        cancelled = true;
                        let _ = self.writer.shutdown().await;
                        continue;
                    }
                }
            };
            match answer {
                Some(ControlMessage::Progress(p)) => on_progress(&p),
                Some(ControlMessage::Done(done)) => return Ok(*done),
                Some(other) => {
                    return Err(DaemonError::Unexpected {
                        kind: other.kind().into(),
                    });
                }
                None => return Err(self.closed().await),
            }
        }
    }

    fn failed(&self, e: FrameIoError) -> DaemonError {
        DaemonError::Control {
            path: self.path.clone(),
            source: e,
        }
    }

    /// The next answer to `request`; an error frame becomes
    /// [`DaemonError::Refused`], the end of the stream `None`.
    async fn answer(&mut self, request: u64) -> Result<Option<ControlMessage>, DaemonError> {
        self.answer_within(request, ANSWER_TIMEOUT).await
    }

    async fn answer_within(
        &mut self,
        request: u64,
        limit: Duration,
    ) -> Result<Option<ControlMessage>, DaemonError> {
        let read = tokio::time::timeout(limit, self.reader.read_frame::<ControlMessage>());
        let msg = match read.await {
            Err(_) => {
                return Err(DaemonError::NoAnswer {
                    path: self.path.clone(),
                });
            }
            Ok(r) => r.map_err(|e| self.failed(e))?,
        };
        match msg {
            None => Ok(None),
            Some(ControlMessage::Error(e)) => Err(DaemonError::Refused {
                code: e.code,
                reason: e.reason,
            }),
            Some(m) if m.request() == Some(request) => Ok(Some(m)),
            Some(m) => Err(DaemonError::Unexpected {
                kind: m.kind().to_owned(),
            }),
        }
    }

    async fn closed(&self) -> DaemonError {
        DaemonError::Closed {
            path: self.path.clone(),
        }
    }

    /// The daemon's inventory, by id.
    ///
    /// # Errors
    /// As [`ControlClient::health`].
    pub async fn inventory(&mut self) -> Result<Vec<ProcessorInfo>, DaemonError> {
        let request = self.request(ControlMessage::Inventory).await?;
        let mut all = Vec::new();
        loop {
            match self.answer(request).await? {
                Some(ControlMessage::Processors(p)) => {
                    all.extend(p.list);
                    if !p.more {
                        return Ok(all);
                    }
                }
                Some(other) => {
                    return Err(DaemonError::Unexpected {
                        kind: other.kind().to_owned(),
                    });
                }
                None => return Err(self.closed().await),
            }
        }
    }

    /// The house of a claimed processor, read by the daemon with the
    /// credential it keeps, into `sink` as it streams in (an area at a
    /// time: an area split over frames is joined first). Returns the
    /// report's warnings.
    ///
    /// # Errors
    /// [`DaemonError::Refused`]: `not-implemented` before anything reached
    /// the sink (the daemon holds no credential for it, so the caller may
    /// read with its own), `failed` with what happened and what to do; a
    /// sink that fails; or the connection failing. After any error the
    /// sink holds part of a report, not to be kept.
    pub async fn inspect(
        &mut self,
        processor: &str,
        wait: Duration,
        sink: &mut dyn crate::inventory::Sink,
    ) -> Result<Vec<String>, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Inspect(crate::proto::control::InspectRequest {
            request,
            processor: processor.to_owned(),
            wait_ms: millis(wait),
        });
        self.writer
            .write_frame(&msg)
            .await
            .map_err(|e| self.failed(e))?;
        let written = |e: std::io::Error| DaemonError::Io {
            context: "writing the report".into(),
            source: e,
        };
        let mut limit = wait + ANSWER_TIMEOUT;
        let mut started = false;
        let mut warnings = Vec::new();
        let mut area: Option<crate::inventory::AreaReport> = None;
        loop {
            let answer = match self.answer_within(request, limit).await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Err(self.closed().await),
                // Only a refusal before the report began lets the caller
                // read it another way.
                Err(DaemonError::Refused { code, reason })
                    if started && code == error_code::NOT_IMPLEMENTED =>
                {
                    return Err(DaemonError::Refused {
                        code: error_code::FAILED.into(),
                        reason,
                    });
                }
                Err(e) => return Err(e),
            };
            // Each area may take the daemon many requests to the processor.
            limit = HOUSE_FRAME_TIMEOUT;
            match answer {
                ControlMessage::HouseStart(start) if !started => {
                    started = true;
                    sink.start(&start.processor, &start.project)
                        .map_err(written)?;
                }
                ControlMessage::HouseArea(part) if started => {
                    let part = *part;
                    let whole = match area.take() {
                        Some(mut joined) if joined.area == part.area.area => {
                            joined.zones.extend(part.area.zones);
                            joined.devices.extend(part.area.devices);
                            joined
                        }
                        Some(_) => {
                            return Err(DaemonError::Unexpected {
                                kind: "house-area of another area before the last one ended".into(),
                            });
                        }
                        None => part.area,
                    };
                    if part.more {
                        area = Some(whole);
                    } else {
                        sink.area(&whole).map_err(written)?;
                    }
                }
                ControlMessage::HouseWarnings(w) if started && area.is_none() => {
                    warnings.extend(w.list);
                }
                ControlMessage::HouseEnd(end) if started && area.is_none() => {
                    sink.finish(&end.counts, &warnings).map_err(written)?;
                    return Ok(warnings);
                }
                other => {
                    return Err(DaemonError::Unexpected {
                        kind: other.kind().to_owned(),
                    });
                }
            }
        }
    }

    /// Asks the cloud, through the daemon's link, about a processor.
    ///
    /// # Errors
    /// [`DaemonError::Refused`]: `not-implemented` (the daemon relays to no
    /// cloud), `failed` (the cloud does not know it, cannot be reached);
    /// or the connection failing.
    pub async fn status(
        &mut self,
        processor: &str,
        wait: Duration,
    ) -> Result<crate::proto::control::StatusReport, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Status(crate::proto::control::StatusRequest {
            request,
            processor: processor.to_owned(),
            wait_ms: millis(wait),
        });
        self.one_answer(msg, request, wait + ANSWER_TIMEOUT, |m| match m {
            ControlMessage::StatusReport(report) => Some(*report),
            _ => None,
        })
        .await
    }

    /// Asks the daemon to read its configuration again; the settings that
    /// wait for its restart.
    ///
    /// # Errors
    /// [`DaemonError::Refused`] with code `failed` and the refusal, or the
    /// connection failing.
    pub async fn reload(&mut self) -> Result<Vec<String>, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Reload(Request { request });
        self.one_answer(msg, request, ANSWER_TIMEOUT, |m| match m {
            ControlMessage::Reloaded(r) => Some(r.later),
            _ => None,
        })
        .await
    }

    /// The daemon's health.
    ///
    /// # Errors
    /// [`DaemonError::Refused`] (an error frame), [`DaemonError::Closed`],
    /// [`DaemonError::NoAnswer`], [`DaemonError::Control`] (the stream
    /// broke or carried garbage), [`DaemonError::Unexpected`].
    pub async fn health(&mut self) -> Result<HealthReport, DaemonError> {
        let request = self.take_request();
        let msg = ControlMessage::Health(Request { request });
        self.one_answer(msg, request, ANSWER_TIMEOUT, |m| match m {
            ControlMessage::HealthReport(h) => Some(h),
            _ => None,
        })
        .await
    }

    /// Starts a watch: every processor the daemon knows as `added`, then
    /// each change.
    ///
    /// # Errors
    /// As [`ControlClient::health`].
    pub async fn watch(mut self) -> Result<WatchStream<S>, DaemonError> {
        let request = self.request(ControlMessage::Watch).await?;
        Ok(WatchStream {
            client: self,
            request,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The events of a watch.
pub struct WatchStream<S> {
    client: ControlClient<S>,
    request: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WatchStream<S> {
    /// The next change; waits as long as it takes. `None` when the daemon
    /// ended the stream (it stopped).
    ///
    /// # Errors
    /// As [`ControlClient::health`], e.g. `Refused` with code `lagged`.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, DaemonError> {
        let c = &mut self.client;
        let msg = c
            .reader
            .read_frame::<ControlMessage>()
            .await
            .map_err(|e| c.failed(e))?;
        match msg {
            None => Ok(None),
            Some(ControlMessage::Event(ev)) if ev.request == self.request => Ok(Some(*ev)),
            Some(ControlMessage::Error(e)) => Err(DaemonError::Refused {
                code: e.code,
                reason: e.reason,
            }),
            Some(other) => Err(DaemonError::Unexpected {
                kind: other.kind().to_owned(),
            }),
        }
    }
}
