//! The control socket server: accepts CLI connections, a bounded number at
//! a time, and answers `inventory`, `watch` and `health` from the live
//! inventory. A client that sends garbage gets an error frame and loses
//! its own connection, nobody else's.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use super::inventory::LiveInventory;
use super::work::{Peer, Work};
use crate::proto::control::{
    ControlError, ControlMessage, Done, Progress, Queued, Reloaded, WatchEvent, error_code,
    processors_frames,
};
use crate::proto::{FrameConnection, FrameIoError};
use crate::shutdown::{Shutdown, shutdown_channel};

/// How long a connection may sit without sending a whole request before it
/// is closed, so idle or trickling clients cannot hold every slot.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one frame may take to reach a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown`, then waits for its connections to
/// end (each ends on the same shutdown).
pub async fn serve(
    listener: UnixListener,
    live: Arc<LiveInventory>,
    work: Arc<Work>,
    max_connections: usize,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(10);
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            // Who asks, for the log of what the daemon does for them.
                            let peer = stream.peer_cred().ok().map(|c| Peer { uid: c.uid(), gid: c.gid() });
                            let (live, work, shutdown) = (live.clone(), work.clone(), shutdown.clone());
                            connections.spawn(serve_connection(stream, peer, live, work, shutdown, slot));
                        }
                        Err(_) => {
                            tracing::warn!(max_connections, "control socket: refusing a client, all slots taken");
                            connections.spawn(refuse_busy(stream));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "control socket: accept failed; retrying in {backoff:?}");
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn refuse_busy<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let (_, w) = tokio::io::split(stream);
    let mut writer = FrameConnection::new(w);
    let busy = ControlMessage::Error(ControlError::new(
        error_code::BUSY,
        "the daemon serves as many clients as it allows; try again",
        None,
    ));
    let _ = timeout(WRITE_TIMEOUT, writer.write_frame(&busy)).await;
}

/// Serves one client until it closes, misbehaves, or the daemon stops.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: Option<Peer>,
    live: Arc<LiveInventory>,
    work: Arc<Work>,
    mut shutdown: Shutdown,
    _slot: OwnedSemaphorePermit,
) {
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameConnection::new(r);
    let mut writer = FrameConnection::new(w);
    loop {
        let read = tokio::select! {
            _ = shutdown.wait() => return,
            read = timeout(IDLE_TIMEOUT, reader.read_frame::<ControlMessage>()) => read,
        };
        let msg = match read {
            Err(_idle) => {
                tracing::debug!("control socket: closing an idle client");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(msg))) => msg,
            Ok(Err(FrameIoError::Io(e))) => {
                tracing::debug!(error = %e, "control socket: client read failed");
                return;
            }
            Ok(Err(FrameIoError::Frame(e))) => {
                // Garbage or an oversized prefix: nothing after it can be
                // trusted to start a frame. Say why, then close.
                tracing::warn!(error = %e, "control socket: bad frame from a client; closing it");
                let _ = send(
                    &mut writer,
                    &ControlMessage::Error(ControlError::for_decode_error(&e)),
                )
                .await;
                let _ = writer.shutdown().await;
                return;
            }
        };
        if let Some(what) = acts_on(&msg) {
            let peer_uid = peer.map_or_else(|| "-".into(), |p| p.uid.to_string());
            if let Err(why) = work.may_act(peer) {
                tracing::warn!(
                    peer_uid,
                    request = msg.kind(),
                    processor = what,
                    "control socket: refused a request to act from outside act_group"
                );
                let refusal = ControlError::new(error_code::FAILED, why, msg.request());
                if send(&mut writer, &ControlMessage::Error(refusal))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            // The journal says who asked.
            tracing::info!(
                peer_uid,
                request = msg.kind(),
                processor = what,
                "control socket: work asked"
            );
        }
        let answered = match msg {
            ControlMessage::Inventory(r) => answer_inventory(&mut writer, &live, r.request).await,
            ControlMessage::Health(r) => {
                let report = live.health(r.request, Instant::now());
                send(&mut writer, &ControlMessage::HealthReport(report)).await
            }
            ControlMessage::Watch(r) => {
                stream_watch(reader, writer, &live, r.request, shutdown).await;
                return;
            }
            ControlMessage::Queue(q) => {
                let answer = if work.relay_outbox().is_none() {
                    ControlMessage::Error(ControlError::new(
                        error_code::NOT_IMPLEMENTED,
                        "this daemon runs no relay (no [cloud] address configured); use the outbox directly",
                        Some(q.request),
                    ))
                } else {
                    let wait = Duration::from_millis(q.wait_ms);
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        queued = work.queue(q.event, wait) => match queued {
                            Ok(cloud) => ControlMessage::Queued(Queued { request: q.request, cloud }),
                            Err(why) => ControlMessage::Error(ControlError::new(
                                error_code::INTERNAL, why, Some(q.request),
                            )),
                        },
                    }
                };
                send(&mut writer, &answer).await
            }
            ControlMessage::Outcome(o) => {
                let request = o.request;
                let answer = tokio::select! {
                    _ = shutdown.wait() => return,
                    answer = work.outcome(o) => match answer {
                        Ok(cloud) => ControlMessage::Queued(Queued { request, cloud }),
                        Err(e) => ControlMessage::Error(e),
                    },
                };
                send(&mut writer, &answer).await
            }
            ControlMessage::Status(req) => {
                let answer = tokio::select! {
                    _ = shutdown.wait() => return,
                    answer = work.status(req) => match answer {
                        Ok(report) => ControlMessage::StatusReport(Box::new(report)),
                        Err(e) => ControlMessage::Error(e),
                    },
                };
                send(&mut writer, &answer).await
            }
            ControlMessage::Reload(r) => {
                let answer = tokio::select! {
                    _ = shutdown.wait() => return,
                    answer = work.reload(r.request) => match answer {
                        Ok(later) => ControlMessage::Reloaded(Reloaded { request: r.request, later }),
                        Err(e) => ControlMessage::Error(e),
                    },
                };
                send(&mut writer, &answer).await
            }
            ControlMessage::Release(req) => {
                let answer = tokio::select! {
                    _ = shutdown.wait() => return,
                    answer = work.release(req) => match answer {
                        Ok(done) => ControlMessage::Done(Box::new(done)),
                        Err(e) => ControlMessage::Error(e),
                    },
                };
                send(&mut writer, &answer).await
            }
            ControlMessage::Claim(req) => {
                let (work, live, request) = (work.clone(), live.clone(), req.request);
                let claim = move |tx, cancelled| async move {
                    let done = work.claim(*req, tx, cancelled).await;
                    live.counters().claim(&done);
                    done
                };
                if !serve_work(&mut reader, &mut writer, request, shutdown.clone(), claim).await {
                    return;
                }
                Ok(())
            }
            ControlMessage::Takeover(req) => {
                let (work, live, request) = (work.clone(), live.clone(), req.request);
                let takeover = move |tx, cancelled| async move {
                    let done = work.takeover(*req, tx, cancelled).await;
                    live.counters().takeover(&done);
                    done
                };
                if !serve_work(
                    &mut reader,
                    &mut writer,
                    request,
                    shutdown.clone(),
                    takeover,
                )
                .await
                {
                    return;
                }
                Ok(())
            }
            ControlMessage::Inspect(req) => {
                serve_inspect(&mut writer, &work, req, shutdown.clone()).await
            }
            ControlMessage::Unknown { kind } => {
                tracing::debug!(kind, "control socket: unserved kind");
                send(
                    &mut writer,
                    &ControlMessage::Error(ControlError::for_unserved_kind(&kind)),
                )
                .await
            }
            answer => {
                let why = format!("\"{}\" is an answer, not a request", answer.kind());
                let err = ControlError::new(error_code::UNKNOWN_KIND, why, answer.request());
                send(&mut writer, &ControlMessage::Error(err)).await
            }
        };
        if answered.is_err() {
            return;
        }
    }
}

/// Reads a house for this client and streams it: the reading fills a
/// bounded queue (see [`crate::daemon::work`]'s inspect) while this drains
/// it onto the connection. A client gone stops the reading at its next
/// frame; the daemon stopping stops both.
async fn serve_inspect<W: AsyncWrite + Unpin>(
    writer: &mut FrameConnection<W>,
    work: &Work,
    req: crate::proto::control::InspectRequest,
    mut shutdown: Shutdown,
) -> Result<(), ()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(super::work::HOUSE_QUEUE);
    let read = work.inspect(req, tx);
    let drain = async {
        while let Some(msg) = rx.recv().await {
            send(writer, &msg).await?;
        }
        Ok(())
    };
    tokio::select! {
        _ = shutdown.wait() => Err(()),
        (_, drained) = async { tokio::join!(read, drain) } => drained,
    }
}

/// The processor a request acts on (claim, release, takeover), or `"-"`
/// for one that changes the daemon (reload); `None` for requests that
/// only read.
fn acts_on(msg: &ControlMessage) -> Option<&str> {
    match msg {
        ControlMessage::Claim(c) => Some(&c.processor),
        ControlMessage::Release(r) => Some(&r.processor),
        ControlMessage::Takeover(t) => Some(&t.processor),
        ControlMessage::Reload(_) => Some("-"),
        _ => None,
    }
}

/// Runs a claim or takeover for this client, streaming its progress, and
/// answers `done` or an error. Anything the client sends meanwhile, or its
/// going away, cancels the work, as does the daemon stopping. Returns
/// whether the connection may carry another request.
async fn serve_work<R, W, F, Fut>(
    reader: &mut FrameConnection<R>,
    writer: &mut FrameConnection<W>,
    request: u64,
    mut shutdown: Shutdown,
    start: F,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Progress>, Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<Done, ControlError>> + Send + 'static,
{
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let (cancel, cancelled) = shutdown_channel();
    let mut task = tokio::spawn(start(tx, cancelled));
    let mut cancelling = false;
    let mut client_gone = false;
    let ended = loop {
        tokio::select! {
            biased;
            Some(step) = progress.recv() => {
                if !client_gone && send(writer, &ControlMessage::Progress(step)).await.is_err() {
                    client_gone = true;
                    cancelling = true;
                    cancel.fire();
                }
            }
            ended = &mut task => break ended,
            _ = reader.read_frame::<ControlMessage>(), if !cancelling => {
                tracing::info!(request, "control socket: the client cancelled its work");
                cancelling = true;
                cancel.fire();
            }
            () = shutdown.wait(), if !cancelling => {
                cancelling = true;
                cancel.fire();
            }
        }
    };
    if client_gone {
        return false;
    }
    while let Ok(step) = progress.try_recv() {
        if send(writer, &ControlMessage::Progress(step)).await.is_err() {
            return false;
        }
    }
    let answer = match ended {
        Ok(Ok(done)) => ControlMessage::Done(Box::new(done)),
        Ok(Err(e)) => ControlMessage::Error(e),
        Err(e) => {
            tracing::error!(error = %e, "control socket: a claim or takeover task failed");
            ControlMessage::Error(ControlError::new(
                error_code::INTERNAL,
                "the daemon's task failed; see its log",
                Some(request),
            ))
        }
    };
    if let ControlMessage::Error(e) = &answer {
        tracing::warn!(request, code = %e.code, why = %e.reason, "control socket: work not done");
    }
    send(writer, &answer).await.is_ok() && !cancelling
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut FrameConnection<W>,
    msg: &ControlMessage,
) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, writer.write_frame(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "control socket: write failed");
            Err(())
        }
        Err(_) => {
            tracing::debug!("control socket: client does not read; closing it");
            Err(())
        }
    }
}

async fn answer_inventory<W: AsyncWrite + Unpin>(
    writer: &mut FrameConnection<W>,
    live: &LiveInventory,
    request: u64,
) -> Result<(), ()> {
    let frames = match processors_frames(request, live.snapshot()) {
        Ok(frames) => frames,
        Err(e) => {
            tracing::error!(error = %e, "control socket: cannot encode the inventory");
            let err = ControlError::new(error_code::INTERNAL, e.to_string(), Some(request));
            return send(writer, &ControlMessage::Error(err)).await;
        }
    };
    for frame in &frames {
        send(writer, frame).await?;
    }
    Ok(())
}

/// Every processor known now as `added`, then every change, until the
/// client closes, falls behind, or the daemon stops.
async fn stream_watch<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: FrameConnection<R>,
    mut writer: FrameConnection<W>,
    live: &LiveInventory,
    request: u64,
    mut shutdown: Shutdown,
) {
    let (snapshot, mut changes) = live.subscribe();
    for p in snapshot {
        let ev = crate::discovery::InventoryEvent::Added(p);
        let msg = ControlMessage::Event(Box::new(WatchEvent::of(request, &ev)));
        if send(&mut writer, &msg).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            // A watch carries no further requests: the client closing (or
            // sending anything) ends it.
            _ = reader.read_frame::<ControlMessage>() => return,
            change = changes.recv() => match change {
                Ok(ev) => {
                    let msg = ControlMessage::Event(Box::new(WatchEvent::of(request, &ev)));
                    if send(&mut writer, &msg).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "control socket: a watching client fell behind; closing it");
                    let why = format!("this client fell {missed} changes behind; watch again");
                    let err = ControlError::new(error_code::LAGGED, why, Some(request));
                    let _ = send(&mut writer, &ControlMessage::Error(err)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::client::ControlClient;
    use crate::discovery::InventoryEvent;
    use crate::processor::{ProcessorInfo, Serial};
    use crate::proto::control::Request;
    use crate::shutdown::shutdown_channel;

    fn test_work(dir: &std::path::Path, live: &Arc<LiveInventory>) -> Arc<Work> {
        let settings = super::super::work::ClaimSettings {
            pairing_identity: dir.join("pairing-identity"),
            button_timeout: Duration::from_secs(180),
            act_group: None,
        };
        Arc::new(Work::new(
            dir.to_owned(),
            settings,
            live.clone(),
            None,
            None,
        ))
    }

    fn processor(serial: u32) -> ProcessorInfo {
        ProcessorInfo {
            serial: Some(Serial(serial)),
            host: Serial(serial).host_name(),
            instance: format!("P{serial}"),
            service_type: "_lutron._tcp.local.".into(),
            ..ProcessorInfo::default()
        }
    }

    #[tokio::test]
    async fn clients_past_the_bound_are_told_busy_and_served_once_a_slot_frees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let live = Arc::new(LiveInventory::new(Instant::now()));
        let (trigger, shutdown) = shutdown_channel();
        let work = test_work(dir.path(), &live);
        let server = tokio::spawn(serve(listener, live, work, 1, shutdown));

        let first = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut first = ControlClient::new(first, &path);
        first.health().await.unwrap();
        let second = tokio::net::UnixStream::connect(&path).await.unwrap();
        let err = ControlClient::new(second, &path)
            .health()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, crate::daemon::DaemonError::Refused { code, .. } if code == error_code::BUSY),
            "{err}"
        );
        drop(first);
        // The slot frees when the server sees the first client go.
        let mut third = loop {
            let s = tokio::net::UnixStream::connect(&path).await.unwrap();
            let mut c = ControlClient::new(s, &path);
            if c.health().await.is_ok() {
                break c;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(third.inventory().await.unwrap(), vec![]);
        trigger.fire();
        server.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_watcher_that_falls_behind_is_told_it_lagged() {
        let live = Arc::new(LiveInventory::new(Instant::now()));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (_trigger, shutdown) = shutdown_channel();
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let work = test_work(dir.path(), &live);
        tokio::spawn(serve_connection(
            server,
            None,
            live.clone(),
            work,
            shutdown,
            slot,
        ));
        let (r, w) = tokio::io::split(client);
        let (mut reader, mut writer) = (FrameConnection::new(r), FrameConnection::new(w));
        writer
            .write_frame(&ControlMessage::Watch(Request { request: 3 }))
            .await
            .unwrap();
        while live.watchers() == 0 {
            tokio::task::yield_now().await;
        }
        // More changes than a watcher may fall behind, with the server
        // never scheduled in between (one thread, no await).
        let n = u32::try_from(super::super::inventory::WATCH_BACKLOG).unwrap() + 10;
        for serial in 1..=n {
            live.apply(InventoryEvent::Added(processor(serial)), Instant::now());
        }
        match reader.read_frame::<ControlMessage>().await.unwrap() {
            Some(ControlMessage::Error(e)) => {
                assert_eq!((e.code.as_str(), e.request), (error_code::LAGGED, Some(3)));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            reader
                .read_frame::<ControlMessage>()
                .await
                .unwrap()
                .is_none()
        );
    }
}
