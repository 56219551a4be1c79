//! `handoff discover`.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::output::{print_stdout, processor_line, processor_table};
use super::{CliError, parse_duration, shutdown_signal};
use crate::discovery::{
    Discovery, DiscoveryOptions, Inventory, InventoryEvent, MIN_LIVENESS, query_host,
};
use crate::processor::ProcessorInfo;

#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// How long to listen for answers
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
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

    /// Stop as soon as this many processors are found (else wait --timeout)
    #[arg(long, value_name = "N")]
    pub expect: Option<usize>,

    /// With --watch: report a processor removed when it has not answered
    /// for this long
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub liveness: Duration,
}

pub async fn run(args: DiscoverArgs) -> Result<ExitCode, CliError> {
    if args.liveness < MIN_LIVENESS {
        return Err(CliError::Failed(format!(
            "--liveness must be at least {}: each check gives processors a third of it to answer",
            humantime::format_duration(MIN_LIVENESS)
        )));
    }
    if !args.hosts.is_empty() {
        return run_unicast(&args).await;
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
        if args
            .expect
            .is_some_and(|n| discovery.inventory().len() >= n)
        {
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
    report(&processors, args.json, &interfaces.join(", "), args.timeout)
}

async fn run_unicast(args: &DiscoverArgs) -> Result<ExitCode, CliError> {
    let progress = spinner("asking hosts directly");
    let queries = args.hosts.iter().map(|&h| query_host(h, args.timeout));
    let results = futures_join_all(queries).await;
    progress.finish_and_clear();
    let mut inventory = Inventory::new();
    let mut failures = 0;
    for (host, result) in args.hosts.iter().zip(results) {
        match result {
            Ok(records) if records.is_empty() => {
                eprintln!("{host} answered but advertises no processor service");
            }
            Ok(records) => {
                for record in records {
                    let info = ProcessorInfo::from_record(&record);
                    inventory.resolved(&record.fullname, info);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failures += 1;
            }
        }
    }
    let processors: Vec<&ProcessorInfo> = inventory.processors().collect();
    let hosts: Vec<String> = args.hosts.iter().map(|h| h.to_string()).collect();
    let code = report(&processors, args.json, &hosts.join(", "), args.timeout)?;
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

fn report(
    processors: &[&ProcessorInfo],
    json: bool,
    searched: &str,
    timeout: Duration,
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
    if processors.is_empty() {
        eprintln!(
            "no processors found on {searched} in {}",
            humantime::format_duration(timeout)
        );
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
    Ok(ExitCode::SUCCESS)
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
    match event {
        InventoryEvent::Changed { changes, after, .. } => format!(
            "changed  {}  ({})",
            processor_line(after),
            changes.join(", ")
        ),
        other => format!("{:<7}  {}", other.kind(), processor_line(other.processor())),
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
