//! `handoff discover`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::output::{print_stdout, processor_line, processor_table};
use super::{CliError, parse_duration, shutdown_signal};
use crate::daemon::{self, ControlClient};
use crate::discovery::{
    Discovery, DiscoveryOptions, Inventory, InventoryEvent, MIN_LIVENESS, query_host,
};
use crate::processor::{ProcessorInfo, Serial};

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// How long to listen for answers
    #[arg(long, default_value = "3s", value_parser = parse_timeout)]
    pub timeout: Duration,

    /// Keep running and print one line per change (added / changed /
    /// removed) until Ctrl-C
    #[arg(long, conflicts_with_all = ["expect", "hosts"])]
    pub watch: bool,

    /// JSON: an array of processors; with --watch, one object per line
    #[arg(long)]
    pub json: bool,

    /// Browse only on this interface (repeatable) [default: every
    /// multicast-capable interface but loopback and container bridges]
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,

    /// Ask this address directly, by unicast DNS-SD, where multicast does
    /// not pass (VLANs, repeaters); repeatable
    #[arg(
        long = "host",
        value_name = "IP",
        conflicts_with = "interfaces",
        conflicts_with = "watch"
    )]
    pub hosts: Vec<IpAddr>,

    /// Stop as soon as this many processors are found; fewer by --timeout
    /// is an error (exit 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub expect: Option<u32>,

    /// With --watch: report a processor removed when it has not answered
    /// for this long
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub liveness: Duration,

    /// Browse from this process even when a daemon runs (by default the
    /// daemon's inventory is used; --interface and --host imply this)
    #[arg(long)]
    pub standalone: bool,
}

/// `--timeout`: a duration, and not zero (a browse of no time finds
/// nothing, and says so as if the LAN were empty).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(
            "a zero timeout leaves no time for any answer; give one like 3s (the default)".into(),
        );
    }
    Ok(d)
}

/// What `--expect` asks for, as a count.
fn expected(args: &DiscoverArgs) -> Option<usize> {
    args.expect.map(|n| n as usize)
}

pub async fn run(args: DiscoverArgs, sockets: &[PathBuf]) -> Result<ExitCode, CliError> {
    if args.liveness < MIN_LIVENESS {
        return Err(CliError::Failed(format!(
            "--liveness must be at least {}: each check gives processors a third of it to answer",
            humantime::format_duration(MIN_LIVENESS)
        )));
    }
    if !args.hosts.is_empty() {
        return run_unicast(&args).await;
    }
    if !args.standalone
        && args.interfaces.is_empty()
        && let Some((client, path)) = daemon_client(sockets).await
    {
        return if args.watch {
            watch_daemon(client, args.json).await
        } else {
            from_daemon(client, &args, &path).await
        };
    }
    let all = crate::lan::interfaces()?;
    let interfaces = crate::lan::choose_interfaces(&all, &args.interfaces)?;
    let options = DiscoveryOptions {
        interfaces: interfaces.clone(),
        liveness: args.watch.then_some(args.liveness),
    };
    let mut discovery = Discovery::start(options)?;
    if args.watch {
        return watch(&mut discovery, args.json).await;
    }

    let started = Instant::now();
    let deadline = started + args.timeout;
    let progress = spinner(&format!("browsing on {}", interfaces.join(", ")));
    loop {
        if expected(&args).is_some_and(|n| discovery.inventory().len() >= n) {
            break;
        }
        match tokio::time::timeout_at(deadline, discovery.next()).await {
            Err(_elapsed) => break,
            Ok(event) => {
                event?;
                progress.set_message(format!(
                    "browsing on {}: {} found",
                    interfaces.join(", "),
                    discovery.inventory().len()
                ));
            }
        }
    }
    progress.finish_and_clear();
    tracing::info!(
        found = discovery.inventory().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "discover finished"
    );
    let processors: Vec<&ProcessorInfo> = discovery.inventory().processors().collect();
    let place = format!(
        "on {} in {}",
        interfaces.join(", "),
        humantime::format_duration(args.timeout)
    );
    report(&processors, args.json, &place, expected(&args))
}

/// The first daemon that answers on one of `sockets`; a daemon that is
/// there but unusable (e.g. permission denied) is worth a warning, not a
/// failure: this process can browse by itself.
async fn daemon_client(
    sockets: &[PathBuf],
) -> Option<(ControlClient<tokio::net::UnixStream>, PathBuf)> {
    match daemon::connect_first(sockets).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("warning: cannot use the daemon ({e}); browsing from this process");
            None
        }
    }
}

/// The daemon's inventory; with --expect, asked again until that many are
/// known or --timeout passes.
async fn from_daemon(
    mut client: ControlClient<tokio::net::UnixStream>,
    args: &DiscoverArgs,
    path: &Path,
) -> Result<ExitCode, CliError> {
    let deadline = Instant::now() + args.timeout;
    let processors = loop {
        let processors = client.inventory().await?;
        let enough = expected(args).is_none_or(|n| processors.len() >= n);
        if enough || Instant::now() >= deadline {
            break processors;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tracing::info!(found = processors.len(), socket = %path.display(), "discover answered by the daemon");
    let refs: Vec<&ProcessorInfo> = processors.iter().collect();
    let place = format!("by the daemon at {}", path.display());
    report(&refs, args.json, &place, expected(args))
}

async fn watch_daemon(
    client: ControlClient<tokio::net::UnixStream>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut stream = client.watch().await?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            ev = stream.next() => ev?,
        };
        let Some(event) = event else {
            return Err(CliError::Failed(
                "the daemon stopped; the watch ends (run discover --watch again once it is back)"
                    .into(),
            ));
        };
        let kind = event.change.as_str();
        let line = if json {
            let line = WatchLineJson {
                event: kind,
                changes: &event.changes,
                processor: event.processor.to_json(),
            };
            serde_json::to_string(&line)
                .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?
        } else {
            watch_line_of(kind, &event.processor, &event.changes)
        };
        print_stdout(&format!("{line}\n")).map_err(CliError::io("writing to stdout"))?;
    }
}

/// The shape of [`crate::discovery::InventoryEventJson`], for events that
/// came through the daemon.
#[derive(serde::Serialize)]
struct WatchLineJson<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    changes: &'a [String],
    processor: crate::processor::ProcessorJson<'a>,
}

async fn run_unicast(args: &DiscoverArgs) -> Result<ExitCode, CliError> {
    let progress = spinner("asking hosts directly");
    let queries = args.hosts.iter().map(|&h| query_host(h, args.timeout));
    let results = futures_join_all(queries).await;
    progress.finish_and_clear();
    let mut inventory = Inventory::new();
    let mut failures = 0;
    // Which asked hosts answered for each serial.
    let mut answered_by: BTreeMap<Serial, BTreeSet<IpAddr>> = BTreeMap::new();
    for (host, result) in args.hosts.iter().zip(results) {
        match result {
            Ok(records) if records.is_empty() => {
                eprintln!("{host} answered but advertises no processor service");
            }
            Ok(records) => {
                for record in records {
                    let info = ProcessorInfo::from_record(&record);
                    if let Some(serial) = info.serial {
                        answered_by.entry(serial).or_default().insert(*host);
                    }
                    // Each host's answer is its own word (see
                    // Inventory::confirmed): two MACs for one serial warn.
                    inventory.confirmed(&record.fullname, info);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failures += 1;
            }
        }
    }
    let mut processors: Vec<ProcessorInfo> = inventory.processors().cloned().collect();
    for p in &mut processors {
        let Some(hosts) = p.serial.and_then(|s| answered_by.get(&s)) else {
            continue;
        };
        if hosts.len() > 1 {
            let hosts: Vec<String> = hosts.iter().map(IpAddr::to_string).collect();
            p.warnings.push(format!(
                "{} asked hosts answer for serial {} ({}): {}; one may be an impostor",
                hosts.len(),
                p.serial.map(|s| s.0).unwrap_or_default(),
                p.id().unwrap_or_default(),
                hosts.join(" and ")
            ));
        }
    }
    let processors: Vec<&ProcessorInfo> = processors.iter().collect();
    let hosts: Vec<String> = args.hosts.iter().map(|h| h.to_string()).collect();
    let place = format!(
        "on {} in {}",
        hosts.join(", "),
        humantime::format_duration(args.timeout)
    );
    let code = report(&processors, args.json, &place, expected(args))?;
    if failures > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// Prints the processors; `place` says where and how long they were looked
/// for ("on lo in 3s"), for stderr when there are none or fewer than
/// `expect`, which is a failure: a script that expects 3 processors must
/// not go on with 2.
fn report(
    processors: &[&ProcessorInfo],
    json: bool,
    place: &str,
    expect: Option<usize>,
) -> Result<ExitCode, CliError> {
    for p in processors {
        for w in &p.warnings {
            eprintln!(
                "warning: processor {} ({}): {w}",
                p.id().unwrap_or_else(|| "without serial".into()),
                p.mac
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "no MAC".into())
            );
        }
    }
    let short = expect.filter(|&n| processors.len() < n);
    if let Some(n) = short {
        eprintln!(
            "found {} of the {n} processors expected, {place}",
            processors.len()
        );
    } else if processors.is_empty() {
        eprintln!("no processors found {place}");
    }
    let text = if json {
        let items: Vec<_> = processors.iter().map(|p| p.to_json()).collect();
        let mut s = serde_json::to_string_pretty(&items)
            .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
        s.push('\n');
        s
    } else if processors.is_empty() {
        String::new()
    } else {
        processor_table(processors.iter().copied())
    };
    print_stdout(&text).map_err(CliError::io("writing to stdout"))?;
    Ok(if short.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn watch(discovery: &mut Discovery, json: bool) -> Result<ExitCode, CliError> {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            ev = discovery.next() => ev?,
        };
        let line = if json {
            serde_json::to_string(&event.to_json())
                .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?
        } else {
            watch_line(&event)
        };
        print_stdout(&format!("{line}\n")).map_err(CliError::io("writing to stdout"))?;
    }
}

fn watch_line(event: &InventoryEvent) -> String {
    let changes: &[&str] = match event {
        InventoryEvent::Changed { changes, .. } => changes,
        _ => &[],
    };
    watch_line_of(event.kind(), event.processor(), changes)
}

/// One `discover --watch` line, whether the event came from this process
/// or from the daemon.
fn watch_line_of(kind: &str, p: &ProcessorInfo, changes: &[impl AsRef<str>]) -> String {
    if kind == "changed" {
        let changes: Vec<&str> = changes.iter().map(AsRef::as_ref).collect();
        format!("changed  {}  ({})", processor_line(p), changes.join(", "))
    } else {
        format!("{kind:<7}  {}", processor_line(p))
    }
}

/// A spinner on stderr while the program waits; hidden when stderr is not
/// a terminal.
fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
