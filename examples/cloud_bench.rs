//! The cloud store, redb vs PostgreSQL, side by side in one run:
//!
//! - per-event cost on a Place with 10, 1,000 and 10,000 grants: the
//!   median time of one relayed event (a share to a new account, one
//!   transaction each) on that Place;
//! - events applied per second with 1, 16 and 64 daemons relaying at once
//!   (each its own account and Place, one event per transaction);
//! - serialization retries per 1,000 events when 2 nodes relay
//!   conflicting batches on one Place.
//!
//! ```text
//! cargo run --release --example cloud_bench -- [--grants 10,1000,10000]
//!     [--events N] [--daemons 1,16,64] [--dir DIR] [--only redb|postgres]
//!     [--no-settle] [--statements] [--per-event-only]
//! ```
//!
//! After a Place is filled, PostgreSQL is settled as a long-lived
//! database is (`CHECKPOINT`, then `ANALYZE`: the fill's dirty pages
//! written and its statistics known, which autovacuum and the
//! checkpointer do on their own a little later) unless `--no-settle`.
//! `--statements` loads pg_stat_statements and prints, per grant count,
//! the mean time of each statement of the measured events.
//!
//! PostgreSQL is a throwaway cluster (tests/common/postgres.rs) started
//! durable (fsync on), as redb commits with fsync. A measurement, not a
//! test: nothing is asserted about time.

#[path = "../tests/common/postgres.rs"]
mod cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use handoff::cloud::store::PgStore;
use handoff::cloud::{AccessDuration, AccountId, CloudStore, Command, PlaceId, ProjectKey};
use handoff::proto::{EventId, EventKind, NewShareLink, RelayEvent, ShareAccess};

fn migrate(url: &str) {
    PgStore::connect(url).expect("migrate");
}

fn list(args: &[String], flag: &str, default: &str) -> Vec<u64> {
    let text = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str);
    text.split(',').map(|n| n.parse().expect(flag)).collect()
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Redb,
    Postgres,
}

fn open(backend: Backend, dir: &Path) -> (CloudStore, Option<String>) {
    match backend {
        Backend::Redb => {
            let _ = std::fs::remove_dir_all(dir);
            (CloudStore::open(dir).unwrap(), None)
        }
        Backend::Postgres => {
            let url = cluster::fresh_database(migrate);
            (CloudStore::open_chosen(dir, Some(&url)).unwrap(), Some(url))
        }
    }
}

/// What the measurement does around the events on PostgreSQL.
#[derive(Clone, Copy)]
struct PgOptions {
    settle: bool,
    statements: bool,
}

fn psql(url: &str, sql: &str) -> String {
    cluster::cluster(migrate).psql_in(cluster::database_name(url), sql)
}

fn owner() -> AccountId {
    AccountId::new("owner@example.com")
}

fn create(store: &CloudStore, place: &str, by: &AccountId) {
    store
        .execute(
            &Command::CreatePlace {
                place: PlaceId(place.into()),
                by: by.clone(),
                key: ProjectKey("k".into()),
                remote_services: true,
            },
            handoff::cloud::now(),
        )
        .unwrap()
        .unwrap();
}

fn share(place: &str, daemon: &str, seq: u64, to: &str) -> RelayEvent {
    RelayEvent {
        id: EventId {
            daemon: daemon.into(),
            seq,
        },
        kind: EventKind::ShareAccess(ShareAccess {
            place: PlaceId(place.into()),
            email: to.into(),
            duration: AccessDuration::SevenDays,
        }),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time of one event on a Place that has `grants` grants.
fn per_event(backend: Backend, dir: &Path, grants: u64, events: u64, pg: PgOptions) -> Duration {
    let (store, url) = open(backend, dir);
    create(&store, "p", &owner());
    let now = handoff::cloud::now();
    let mut seq = 0;
    while seq + 1 < grants {
        let batch: Vec<RelayEvent> = (seq..(seq + 500).min(grants - 1))
            .map(|i| share("p", "fill", i, &format!("g{i}@example.com")))
            .collect();
        seq += batch.len() as u64;
        store.relay(&owner(), &batch, now).unwrap();
    }
    if let Some(url) = &url {
        if pg.settle {
            psql(url, "CHECKPOINT");
            psql(url, "ANALYZE");
        }
        if pg.statements {
            psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
            psql(url, "SELECT pg_stat_statements_reset()");
        }
    }
    let samples = (0..events)
        .map(|i| {
            let event = share("p", "bench", i, &format!("new{i}@example.com"));
            let start = Instant::now();
            store.relay(&owner(), &[event], now).unwrap();
            start.elapsed()
        })
        .collect();
    if let Some(url) = url.as_deref().filter(|_| pg.statements) {
        println!("  statements of the measured events, {grants} grants (mean ms, calls):");
        let db = cluster::database_name(url);
        let rows = psql(
            url,
            &format!(
                "SELECT round(mean_exec_time::numeric, 3), calls, \
                 left(regexp_replace(query, '\\s+', ' ', 'g'), 90) \
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                 WHERE d.datname = '{db}' ORDER BY total_exec_time DESC LIMIT 12"
            ),
        );
        for row in rows.lines() {
            println!("    {row}");
        }
        // What does not depend on the machine's load: the pages each
        // event's statements touched and the WAL they wrote.
        let totals = psql(
            url,
            &format!(
                "SELECT round(sum(shared_blks_hit + shared_blks_read)::numeric / {events}, 1), \
                 round(sum(wal_bytes) / {events}, 0) \
                 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                 WHERE d.datname = '{db}' AND query NOT LIKE '%pg_stat_statements%'"
            ),
        );
        println!("  per event: pages touched | WAL bytes: {totals}");
    }
    median(samples)
}

/// Events/s with `daemons` relaying at once, each on its own Place,
/// through `nodes` stores on one database (PostgreSQL; each node its own
/// pool and runtime, as two `cloud serve` processes would have; daemon d
/// goes to node d mod `nodes`). redb has one node only.
fn throughput(backend: Backend, dir: &Path, daemons: u64, events: u64, nodes: usize) -> f64 {
    let stores: Vec<CloudStore> = match backend {
        Backend::Redb => vec![open(backend, dir).0],
        Backend::Postgres => {
            let url = cluster::fresh_database(migrate);
            (0..nodes)
                .map(|_| CloudStore::open_chosen(dir, Some(&url)).unwrap())
                .collect()
        }
    };
    for d in 0..daemons {
        create(
            &stores[0],
            &format!("p{d}"),
            &AccountId::new(&format!("d{d}@example.com")),
        );
    }
    let per = (events / daemons).max(4);
    let start = Instant::now();
    std::thread::scope(|s| {
        for d in 0..daemons {
            let store = &stores[d as usize % stores.len()];
            s.spawn(move || {
                let account = AccountId::new(&format!("d{d}@example.com"));
                for i in 0..per {
                    let e = share(
                        &format!("p{d}"),
                        &format!("d{d}"),
                        i,
                        &format!("x{i}@e.com"),
                    );
                    // `busy`: sent again, as the daemon does.
                    while store
                        .relay(&account, std::slice::from_ref(&e), handoff::cloud::now())
                        .is_err()
                    {}
                }
            });
        }
    });
    (per * daemons) as f64 / start.elapsed().as_secs_f64()
}

/// Serialization retries per 1,000 events: 2 nodes, conflicting batches.
fn retries(dir: &Path, events: u64) -> f64 {
    let url = cluster::fresh_database(migrate);
    let nodes = [
        CloudStore::open_chosen(dir, Some(&url)).unwrap(),
        CloudStore::open_chosen(dir, Some(&url)).unwrap(),
    ];
    create(&nodes[0], "p", &owner());
    let per = events / 4;
    std::thread::scope(|s| {
        for (n, node) in nodes.iter().enumerate() {
            s.spawn(move || {
                for b in 0..per {
                    let daemon = format!("n{n}");
                    let batch = [
                        share("p", &daemon, 2 * b, &format!("n{n}-{b}@e.com")),
                        RelayEvent {
                            id: EventId {
                                daemon: daemon.clone(),
                                seq: 2 * b + 1,
                            },
                            kind: EventKind::NewShareLink(NewShareLink {
                                place: PlaceId("p".into()),
                                duration: AccessDuration::OneDay,
                            }),
                        },
                    ];
                    while node.relay(&owner(), &batch, handoff::cloud::now()).is_err() {}
                }
            });
        }
    });
    let total: u64 = nodes.iter().map(CloudStore::serialization_retries).sum();
    total as f64 * 1000.0 / (4 * per) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let grants = list(&args, "--grants", "10,1000,10000");
    let daemons = list(&args, "--daemons", "1,16,64");
    let events = list(&args, "--events", "300")[0];
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| PathBuf::from("target/bench-cloud"), PathBuf::from);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let skip = |b: &str| only.as_deref().is_some_and(|o| o != b);
    let pg = PgOptions {
        settle: !args.iter().any(|a| a == "--no-settle"),
        statements: args.iter().any(|a| a == "--statements"),
    };
    let nan = Duration::ZERO;
    // SAFETY: set before any thread is started.
    unsafe {
        std::env::set_var("HANDOFF_PG_DURABLE", "1");
        if pg.statements {
            std::env::set_var(
                "HANDOFF_PG_SETTINGS",
                "shared_preload_libraries=pg_stat_statements pg_stat_statements.track=all",
            );
        }
    };
    println!("per-event cost (median of {events} events, one transaction each)");
    println!("{:>8}  {:>10}  {:>10}", "grants", "redb", "postgres");
    for &g in &grants {
        let r = if skip("redb") {
            nan
        } else {
            per_event(Backend::Redb, &dir.join("redb"), g, events, pg)
        };
        let p = if skip("postgres") {
            nan
        } else {
            per_event(Backend::Postgres, &dir.join("pg"), g, events, pg)
        };
        println!("{g:>8}  {:>8.2}ms  {:>8.2}ms", ms(r), ms(p));
    }
    if args.iter().any(|a| a == "--per-event-only") {
        return;
    }
    println!("\nevents/s, each daemon on its own Place ({events} events in all)");
    println!(
        "{:>8}  {:>10}  {:>14}  {:>14}",
        "daemons", "redb", "postgres 1 node", "postgres 2 nodes"
    );
    for &d in &daemons {
        let r = if skip("redb") {
            0.0
        } else {
            throughput(Backend::Redb, &dir.join("redb"), d, events, 1)
        };
        let [p1, p2] = [1, 2].map(|nodes| {
            if skip("postgres") {
                0.0
            } else {
                throughput(Backend::Postgres, &dir.join("pg"), d, events, nodes)
            }
        });
        println!("{d:>8}  {r:>10.0}  {p1:>14.0}  {p2:>14.0}");
    }
    if !skip("postgres") {
        println!(
            "\nserialization retries per 1000 events, 2 nodes, conflicting batches: {:.0}",
            retries(&dir.join("pg"), events)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
