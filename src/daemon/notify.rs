//! systemd readiness, status and watchdog (`Type=notify`). Every call is a
//! no-op when `NOTIFY_SOCKET` is not set, i.e. outside systemd.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use super::inventory::LiveInventory;
use crate::shutdown::Shutdown;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn status_line(count: usize) -> String {
    format!("{count} processors in the inventory")
}

/// The STATUS line: the inventory, and the relay's backlog when it runs.
fn full_status(live: &LiveInventory) -> String {
    let mut line = status_line(live.len());
    if let Some(relay) = live.health(0, tokio::time::Instant::now()).relay {
        line.push_str(&format!("; {} events waiting for the cloud", relay.backlog));
    }
    line
}

/// READY=1, with the whole status line (after a reload too: the backlog
/// stays on it).
pub fn ready(live: &LiveInventory) {
    send(&[NotifyState::Ready, NotifyState::Status(&full_status(live))]);
}

/// STOPPING=1.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// RELOADING=1 then READY=1 around a reload.
pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

/// How often a STATUS line is refreshed at most.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Until shutdown: a STATUS line whenever the inventory size or the
/// relay's backlog changed (at most once a second), and WATCHDOG=1 at half
/// of `WATCHDOG_USEC` when systemd asked for it. It sleeps in between: an
/// idle daemon is woken by the watchdog alone, not once a second.
pub async fn keep_systemd_informed(live: Arc<LiveInventory>, mut shutdown: Shutdown) {
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    if let Some(every) = watchdog {
        tracing::info!(
            every_ms = every.as_millis() as u64,
            "systemd watchdog enabled"
        );
    }
    let mut ping = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = full_status(&live);
    // When the next STATUS line may go: a change is shown at once, and
    // those that follow it within STATUS_EVERY together, at its end.
    let mut next = tokio::time::Instant::now();
    let mut due = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ping.tick(), if watchdog.is_some() => send(&[NotifyState::Watchdog]),
            _ = live.changed(), if due.is_none() => due = Some(next),
            _ = super::sleep_until_opt(due) => {
                due = None;
                next = tokio::time::Instant::now() + STATUS_EVERY;
                let line = full_status(&live);
                if line != shown {
                    send(&[NotifyState::Status(&line)]);
                    shown = line;
                }
            }
        }
    }
}
