//! Relay throughput: durable events acknowledged per second, end to end
//! (outbox append with immediate durability → relay → cloud over
//! `tokio::io::duplex` → ack committed), for in-flight batch sizes 1, 64
//! and 1024, beside the disk's raw fsync rate measured in the same run (a
//! small write then `fdatasync`, as redb does per commit).
//!
//! Two clouds, both measured by default:
//! - `real`: the cloud access layer itself, `handoff::cloud::CloudStore`
//!   (redb, one durable transaction per batch of frames it has read) behind
//!   `handoff::cloud::server::serve_stream`, the protocol the TLS server
//!   runs per connection. Fsync on both sides. The events are `released`
//!   for Places the cloud does not know: each is refused by the rules and
//!   its result stored under its id, so every event still costs the cloud a
//!   lookup and a durable write (what a duplicate-proof cloud must do).
//! - `fake`: an in-process stand-in that acks every event at once, with no
//!   disk: the daemon side alone.
//!
//! ```text
//! cargo run --release --example relay_bench -- [--dir DIR] [--runs N]
//!     [--cloud real|fake|both] [--json FILE|-]
//! ```
//!
//! `--dir` chooses the disk (default: the current directory; a tmpfs such
//! as /tmp makes fsync free and the numbers meaningless). `--json FILE`
//! also writes the results as JSON (`-`: instead of the table, on stdout).
//! A measurement, not a test: nothing is asserted about time.
//!
//! With batch size B, B tasks append concurrently (so appends share
//! commits) and the relay keeps up to B events unacknowledged.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use handoff::cloud::server::{ServerOptions, serve_stream};
use handoff::cloud::{AccountId, CloudStore, PlaceId};
use handoff::outbox::{Backoff, Outbox};
use handoff::proto::{self, Ack, EventKind, HelloAck, Outcome, RelayMessage, Released};
use handoff::relay::{self, RelayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const BATCHES: [usize; 3] = [1, 64, 1024];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cloud {
    Real,
    Fake,
}

impl Cloud {
    fn name(self) -> &'static str {
        match self {
            Cloud::Real => "real",
            Cloud::Fake => "fake",
        }
    }
}

struct Args {
    dir: PathBuf,
    runs: usize,
    clouds: Vec<Cloud>,
    json: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("."),
        runs: 5,
        clouds: vec![Cloud::Real, Cloud::Fake],
        json: None,
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
            "--cloud" => {
                args.clouds = match it.next().as_deref() {
                    Some("real") => vec![Cloud::Real],
                    Some("fake") => vec![Cloud::Fake],
                    Some("both") => vec![Cloud::Real, Cloud::Fake],
                    _ => return Err("--cloud needs real, fake or both".into()),
                };
            }
            "--json" => args.json = Some(it.next().ok_or("--json needs a file (or -)")?),
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
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"median": self.median(), "min": self.min(), "max": self.max(),
            "samples": self.0})
    }
}

struct Row {
    cloud: Cloud,
    batch: usize,
    events: usize,
    rates: Samples,
    per_commit: Samples,
}

async fn bench(args: &Args) -> Result<(), String> {
    let mut fsyncs = Samples::default();
    let mut rows: Vec<Row> = Vec::new();
    for &cloud in &args.clouds {
        for &batch in &BATCHES {
            rows.push(Row {
                cloud,
                batch,
                events: events_for(batch),
                rates: Samples::default(),
                per_commit: Samples::default(),
            });
        }
    }
    for _ in 0..args.runs {
        let dir = tempfile::tempdir_in(&args.dir).map_err(|e| e.to_string())?;
        fsyncs.0.push(fsync_rate(dir.path())?);
        for row in &mut rows {
            let (rate, events_per_commit) =
                relay_rate(dir.path(), row.cloud, row.batch, row.events).await?;
            row.rates.0.push(rate);
            row.per_commit.0.push(events_per_commit);
        }
    }
    // The fake cloud's rate for the same batch: what the real one costs.
    let fake_rate = |batch: usize| {
        rows.iter()
            .find(|r| r.cloud == Cloud::Fake && r.batch == batch)
            .map(|r| r.rates.median())
    };

    if let Some(path) = &args.json {
        let out_rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "cloud": r.cloud.name(), "batch": r.batch, "events": r.events,
                    "events_per_s": r.rates.json(),
                    "daemon_events_per_commit": r.per_commit.median(),
                    "ratio_to_fsync": r.rates.median() / fsyncs.median(),
                    "ratio_to_fake": fake_rate(r.batch).map(|f| r.rates.median() / f),
                })
            })
            .collect();
        let out = serde_json::json!({
            "benchmark": "relay", "dir": args.dir, "runs": args.runs,
            "fsync_per_s": fsyncs.json(),
            "relay": out_rows,
        });
        if path == "-" {
            println!("{out}");
            return Ok(());
        }
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, format!("{out:#}\n")).map_err(|e| format!("{tmp}: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("wrote {path}");
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
        "{:>5} {:>6} {:>7} {:>26} {:>14} {:>8} {:>7}",
        "cloud", "batch", "events", "acked events/s", "daemon ev/txn", "× fsync", "× fake"
    );
    for r in &rows {
        let vs_fake = fake_rate(r.batch)
            .map(|f| format!("{:.2}", r.rates.median() / f))
            .unwrap_or_else(|| "—".into());
        println!(
            "{:>5} {:>6} {:>7} {:>10.0} ({:>6.0}–{:>6.0}) {:>14.1} {:>8.2} {:>7}",
            r.cloud.name(),
            r.batch,
            r.events,
            r.rates.median(),
            r.rates.min(),
            r.rates.max(),
            r.per_commit.median(),
            r.rates.median() / fsyncs.median(),
            vs_fake,
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

/// Events acknowledged per second, and the daemon's events per write
/// transaction.
async fn relay_rate(
    dir: &Path,
    cloud: Cloud,
    batch: usize,
    events: usize,
) -> Result<(f64, f64), String> {
    let path = dir.join(format!("outbox-{}-{batch}.redb", cloud.name()));
    let _ = std::fs::remove_file(&path);
    let outbox = Outbox::open_with(&path, Backoff::default()).map_err(|e| e.to_string())?;
    let applied = Arc::new(AtomicU64::new(0));
    let (stop, shutdown) = handoff::shutdown::shutdown_channel();
    let cloud_dir = dir.join(format!("cloud-{batch}"));
    let _ = std::fs::remove_dir_all(&cloud_dir);
    let store = match cloud {
        Cloud::Real => Some(Arc::new(
            CloudStore::open(&cloud_dir).map_err(|e| e.to_string())?,
        )),
        Cloud::Fake => None,
    };
    let connector = {
        let store = store.clone();
        let applied = Arc::clone(&applied);
        let shutdown = shutdown.clone();
        move || {
            let store = store.clone();
            let count = Arc::clone(&applied);
            let shutdown = shutdown.clone();
            async move {
                let (daemon, cloud_end) = tokio::io::duplex(256 * 1024);
                match store {
                    Some(store) => {
                        tokio::spawn(async move {
                            let options = ServerOptions::default();
                            let account = AccountId::new("bench@example.com");
                            if let Err(e) =
                                serve_stream(cloud_end, store, account, &options, shutdown).await
                            {
                                eprintln!("relay_bench: the cloud ended the connection: {e}");
                            }
                        });
                    }
                    None => {
                        tokio::spawn(fake_cloud(cloud_end, count));
                    }
                }
                Ok::<_, std::io::Error>(daemon)
            }
        }
    };
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
    stop.fire();
    task.await.map_err(|e| e.to_string())?;
    outbox.close().await;
    let _ = std::fs::remove_file(&path);
    // What the cloud kept: every event exactly once.
    let kept = match &store {
        Some(store) => store.event_count().map_err(|e| e.to_string())?,
        None => applied.load(Ordering::Relaxed),
    };
    drop(store);
    let _ = std::fs::remove_dir_all(&cloud_dir);
    if kept != total {
        return Err(format!(
            "the {} cloud kept {kept} events, not {total}",
            cloud.name()
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
