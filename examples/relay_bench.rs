//! Relay throughput: durable events acknowledged per second, end to end
//! (outbox append with immediate durability → relay → in-process fake
//! cloud over `tokio::io::duplex` → ack committed), for in-flight batch
//! sizes 1, 64 and 1024, beside the disk's raw fsync rate measured in the
//! same run (a small write then `fdatasync`, as redb does per commit).
//!
//! ```text
//! cargo run --release --example relay_bench -- [--dir DIR] [--runs N] [--json]
//! ```
//!
//! `--dir` chooses the disk (default: the current directory; a tmpfs such
//! as /tmp makes fsync free and the numbers meaningless). A measurement,
//! not a test: nothing is asserted about time.
//!
//! With batch size B, B tasks append concurrently (so appends share
//! commits) and the relay keeps up to B events unacknowledged.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use handoff::cloud::PlaceId;
use handoff::outbox::{Backoff, Outbox};
use handoff::proto::{self, Ack, EventKind, HelloAck, Outcome, RelayMessage, Released};
use handoff::relay::{self, RelayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

const BATCHES: [usize; 3] = [1, 64, 1024];

struct Args {
    dir: PathBuf,
    runs: usize,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("."),
        runs: 3,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => args.dir = it.next().ok_or("--dir needs a directory")?.into(),
            "--runs" => {
                args.runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--json" => args.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bench(&args).await {
        eprintln!("relay_bench: {e}");
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
}

async fn bench(args: &Args) -> Result<(), String> {
    let mut fsyncs = Samples::default();
    let mut relay: Vec<(usize, usize, Samples, Samples)> = Vec::new();
    for &batch in &BATCHES {
        relay.push((
            batch,
            events_for(batch),
            Samples::default(),
            Samples::default(),
        ));
    }
    for _ in 0..args.runs {
        let dir = tempfile::tempdir_in(&args.dir).map_err(|e| e.to_string())?;
        fsyncs.0.push(fsync_rate(dir.path())?);
        for (batch, events, rates, per_commit) in &mut relay {
            let (rate, events_per_commit) = relay_rate(dir.path(), *batch, *events).await?;
            rates.0.push(rate);
            per_commit.0.push(events_per_commit);
        }
    }

    if args.json {
        let rows: Vec<_> = relay
            .iter()
            .map(|(batch, events, rates, per_commit)| {
                serde_json::json!({
                    "batch": batch, "events": events,
                    "events_per_s": {"median": rates.median(), "min": rates.min(), "max": rates.max()},
                    "events_per_commit": per_commit.median(),
                    "ratio_to_fsync": rates.median() / fsyncs.median(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "dir": args.dir, "runs": args.runs,
            "fsync_per_s": {"median": fsyncs.median(), "min": fsyncs.min(), "max": fsyncs.max()},
            "relay": rows,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "disk: {} — {} run(s), median (min–max)",
        args.dir.display(),
        args.runs
    );
    println!(
        "raw fsync (64 B write + fdatasync): {:.0}/s ({:.0}–{:.0})",
        fsyncs.median(),
        fsyncs.min(),
        fsyncs.max()
    );
    println!(
        "{:>6} {:>7} {:>26} {:>14} {:>9}",
        "batch", "events", "acked events/s", "events/commit", "× fsync"
    );
    for (batch, events, rates, per_commit) in &relay {
        println!(
            "{:>6} {:>7} {:>10.0} ({:>6.0}–{:>6.0}) {:>14.1} {:>9.2}",
            batch,
            events,
            rates.median(),
            rates.min(),
            rates.max(),
            per_commit.median(),
            rates.median() / fsyncs.median()
        );
    }
    Ok(())
}

fn events_for(batch: usize) -> usize {
    match batch {
        1 => 300,
        b if b < 512 => 5_000,
        _ => 20_000,
    }
}

/// Small writes, each followed by `fdatasync`, for about a second.
fn fsync_rate(dir: &Path) -> Result<f64, String> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) || n < 10 {
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        file.write_all(&n.to_be_bytes().repeat(8))
            .map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(path);
    Ok(rate)
}

/// Events acknowledged per second, and events per write transaction.
async fn relay_rate(dir: &Path, batch: usize, events: usize) -> Result<(f64, f64), String> {
    let path = dir.join(format!("outbox-{batch}.redb"));
    let _ = std::fs::remove_file(&path);
    let outbox = Outbox::open_with(&path, Backoff::default()).map_err(|e| e.to_string())?;
    let applied = Arc::new(AtomicU64::new(0));
    let cloud_count = Arc::clone(&applied);
    let connector = move || {
        let count = Arc::clone(&cloud_count);
        async move {
            let (daemon, cloud) = tokio::io::duplex(256 * 1024);
            tokio::spawn(fake_cloud(cloud, count));
            Ok::<_, std::io::Error>(daemon)
        }
    };
    let (stop, shutdown) = watch::channel(false);
    let (status_tx, mut status) = relay::status_channel(&outbox);
    let config = RelayConfig {
        max_in_flight: batch,
        ..RelayConfig::default()
    };

    let start = Instant::now();
    let task = tokio::spawn(relay::run(
        outbox.clone(),
        connector,
        config,
        shutdown,
        status_tx,
    ));
    let per_task = events / batch;
    let producers: Vec<_> = (0..batch)
        .map(|t| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    let kind = EventKind::Released(Released {
                        place: Some(PlaceId(format!("bench-{t}-{n}"))),
                        serial: None,
                    });
                    outbox.append(kind).await?;
                }
                Ok::<_, handoff::outbox::OutboxError>(())
            })
        })
        .collect();
    for p in producers {
        p.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let total = (per_task * batch) as u64;
    status
        .wait_for(|s| s.acknowledged >= total)
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = start.elapsed().as_secs_f64();
    let commits = outbox.commits();
    stop.send(true).map_err(|e| e.to_string())?;
    task.await.map_err(|e| e.to_string())?;
    outbox.close().await;
    let _ = std::fs::remove_file(&path);
    if applied.load(Ordering::Relaxed) != total {
        return Err(format!(
            "the fake cloud applied {} events, not {total}",
            applied.load(Ordering::Relaxed)
        ));
    }
    // Every event costs an append and an ack; both share commits.
    Ok((
        total as f64 / elapsed,
        2.0 * total as f64 / commits.max(1) as f64,
    ))
}

/// Answers hello, then acks every event as applied.
async fn fake_cloud(stream: DuplexStream, applied: Arc<AtomicU64>) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut out = Vec::new();
        while let Ok(Some(len)) = proto::check(&buf) {
            let msg = proto::decode(&buf[..len]);
            buf.drain(..len);
            let reply = match msg {
                Ok(RelayMessage::Hello(_)) => RelayMessage::HelloAck(HelloAck { version: 1 }),
                Ok(RelayMessage::Event(ev)) => {
                    applied.fetch_add(1, Ordering::Relaxed);
                    RelayMessage::Ack(Ack {
                        id: ev.id,
                        outcome: Outcome::Applied,
                        link: None,
                    })
                }
                _ => return,
            };
            match proto::encode(&reply) {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(_) => return,
            }
        }
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            return;
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
