//! Fills a cloud data directory for `bench/portal`: Place `big`, created
//! by pro@example.com, shared to GRANTS accounts (`u1@example.com`…), with
//! EVENTS events in its timeline (the shares, then shares again to the
//! same accounts, each one transaction through the rules, as the operator
//! CLI and the portal apply them). With `--others N`, also N grants of
//! other accounts in Places pro@example.com has no grant in (`other-1`…,
//! 100 grants each: a creator `c1@example.com`… and 99 shares), so that
//! the store holds many grants besides the account's own.
//!
//! ```text
//! cargo run --release --example portal_fill -- --data DIR [--database URL]
//!     [--grants 1000] [--events 10000] [--others 0]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use handoff::cloud::{AccessDuration, AccountId, CloudStore, Command, PlaceId, ProjectKey};

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(arg(&args, "--data").expect("--data DIR"));
    let database = arg(&args, "--database");
    let grants: u64 = arg(&args, "--grants").map_or(1000, |n| n.parse().expect("--grants N"));
    let events: u64 = arg(&args, "--events").map_or(10_000, |n| n.parse().expect("--events N"));
    let others: u64 = arg(&args, "--others").map_or(0, |n| n.parse().expect("--others N"));
    assert!(
        grants >= 1 && events >= grants,
        "--events must be at least --grants"
    );
    let store = CloudStore::open_chosen(&data, database.as_deref()).expect("open the store");
    let place = PlaceId("big".into());
    let pro = AccountId::new("pro@example.com");
    let now = handoff::cloud::now();
    let started = Instant::now();
    store
        .create_place(
            &Command::CreatePlace {
                place: place.clone(),
                by: pro.clone(),
                key: ProjectKey("key-big".into()),
                remote_services: true,
            },
            None,
            now,
        )
        .expect("the store")
        .expect("create Place big");
    // The creation is the first event.
    for n in 1..events {
        let durations = [AccessDuration::SevenDays, AccessDuration::ThirtyDays];
        let cmd = Command::ShareAccess {
            place: place.clone(),
            by: pro.clone(),
            email: AccountId::new(&format!("u{}@example.com", (n - 1) % grants + 1)),
            duration: durations[((n - 1) / grants) as usize % 2],
        };
        store
            .execute(&cmd, now)
            .expect("the store")
            .expect("a share");
    }
    eprintln!(
        "Place big: {grants} grants, {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if others > 0 {
        let started = Instant::now();
        fill_others(&store, others, now);
        eprintln!(
            "{others} grants of other accounts in {} other Places in {:.1} s",
            others.div_ceil(100),
            started.elapsed().as_secs_f64()
        );
    }
}

/// `count` grants in Places `other-1`… of 100 grants each, none of them
/// pro@example.com's.
fn fill_others(store: &CloudStore, count: u64, now: handoff::cloud::Timestamp) {
    for n in 0..count {
        let (place, at) = (PlaceId(format!("other-{}", n / 100 + 1)), n % 100);
        let creator = AccountId::new(&format!("c{}@example.com", n / 100 + 1));
        let cmd = if at == 0 {
            Command::CreatePlace {
                place,
                by: creator,
                key: ProjectKey(format!("key-other-{n}")),
                remote_services: true,
            }
        } else {
            Command::ShareAccess {
                place,
                by: creator,
                email: AccountId::new(&format!("o{n}@example.com")),
                duration: AccessDuration::ThirtyDays,
            }
        };
        store
            .execute(&cmd, now)
            .expect("the store")
            .expect("a Place or a share");
    }
}
