//! Queues events in a state directory's outbox, as the daemon would while
//! the cloud is out of reach: COUNT `share-access` events for PLACE
//! (`pro{i}@example.com`, seven days). Used by `bench/faults.sh`; there is
//! no CLI that queues an event without a processor.
//!
//! ```text
//! cargo run --release --example queue_events -- STATE_DIR PLACE COUNT [FIRST]
//! ```
//!
//! Emails are numbered from FIRST (default 0), so that two runs can queue
//! distinct grants. Appends go in groups of up to 64 at once (they share a
//! commit, as concurrent appends in the daemon do), and every append that
//! returned is on disk.
//!
//! Prints `queued N` on stdout, N being the appends that succeeded. The
//! first failed append (a full disk, for instance) stops the run: its
//! error is printed as one line on stderr, and the exit code is 1 — the
//! events queued before it stay queued.

use std::path::PathBuf;

use handoff::cloud::{AccessDuration, PlaceId};
use handoff::outbox::{FILE_NAME, Outbox};
use handoff::proto::{EventKind, ShareAccess};

/// Appends in flight at once.
const GROUP: usize = 64;

struct Args {
    state: PathBuf,
    place: String,
    count: usize,
    first: usize,
}

fn args() -> Result<Args, String> {
    let usage = "usage: queue_events STATE_DIR PLACE COUNT [FIRST]";
    let mut it = std::env::args().skip(1);
    let state = it.next().ok_or(usage)?.into();
    let place = it.next().ok_or(usage)?;
    let number = |s: Option<String>, what: &str| -> Result<usize, String> {
        s.ok_or(usage.to_string())?
            .parse()
            .map_err(|_| format!("{what} must be a number"))
    };
    let count = number(it.next(), "COUNT")?;
    let first = match it.next() {
        Some(s) => number(Some(s), "FIRST")?,
        None => 0,
    };
    if it.next().is_some() {
        return Err(usage.into());
    }
    Ok(Args {
        state,
        place,
        count,
        first,
    })
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("queue_events: {e}");
            std::process::exit(2);
        }
    };
    let (queued, error) = queue(&args).await;
    println!("queued {queued}");
    if let Some(e) = error {
        eprintln!("queue_events: {e}");
        std::process::exit(1);
    }
}

/// Appends the events; returns how many are on disk and the first error.
async fn queue(args: &Args) -> (usize, Option<String>) {
    let outbox = match Outbox::open(args.state.join(FILE_NAME)) {
        Ok(o) => o,
        Err(e) => return (0, Some(e.to_string())),
    };
    let mut queued = 0;
    let mut error = None;
    let mut next = args.first;
    let end = args.first + args.count;
    while next < end && error.is_none() {
        let group = (next..end.min(next + GROUP))
            .map(|i| {
                let outbox = outbox.clone();
                let kind = EventKind::ShareAccess(ShareAccess {
                    place: PlaceId(args.place.clone()),
                    email: format!("pro{i}@example.com"),
                    duration: AccessDuration::SevenDays,
                });
                tokio::spawn(async move { outbox.append(kind).await })
            })
            .collect::<Vec<_>>();
        next = end.min(next + GROUP);
        for task in group {
            match task.await {
                Ok(Ok(_)) => queued += 1,
                Ok(Err(e)) => {
                    error.get_or_insert(e.to_string());
                }
                Err(e) => {
                    error.get_or_insert(format!("append task failed: {e}"));
                }
            }
        }
    }
    outbox.close().await;
    (queued, error)
}
