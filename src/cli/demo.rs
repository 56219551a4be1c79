//! `handoff demo`: the story on a private network, no hardware needed.
//!
//! For now: a simulated site of three processors (RadioRA 3, HomeWorks QSX,
//! Caséta), found by discovery, listed with their MAC addresses.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use super::CliError;
use super::output::{print_stdout, processor_table};
use crate::discovery::{Discovery, DiscoveryOptions};
use crate::lan::PRIVATE_LAN_ENV;
use crate::processor::SystemType;
use crate::sim::{Advertiser, FleetSpec, build_fleet};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long to wait for the simulated site to be found
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: DemoArgs) -> Result<ExitCode, CliError> {
    let all = crate::lan::interfaces()?;
    if !crate::lan::is_private(&all) {
        if std::env::var_os(PRIVATE_LAN_ENV).is_some() {
            return Err(CliError::Failed(
                "the private network for the demo could not be set up (is `ip` from iproute2 installed?)".into(),
            ));
        }
        return reexec_in_private_lan().await;
    }

    let spec = FleetSpec {
        count: 3,
        system_types: vec![
            SystemType::RadioRa3,
            SystemType::HomeWorksQsx,
            SystemType::CasetaSmartBridge,
        ],
        seed: 2026,
        ..FleetSpec::default()
    };
    let fleet = build_fleet(&spec).map_err(crate::sim::SimError::from)?;
    let interfaces = crate::lan::choose_interfaces(&all, &[])?;
    println!("A private network with one simulated site: three processors on 127.0.1.1–127.0.1.3.");
    let advertiser = Advertiser::start(&fleet, &interfaces, false)?;
    // A responder multicasts a record at most once a second (RFC 6762 §6),
    // so a query right after the site's announcements would be answered a
    // second late. Real sites have been up for days: let this one settle.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    println!("Discovering processors over mDNS (_lutron._tcp)…");
    let started = Instant::now();
    let mut discovery = Discovery::start(DiscoveryOptions {
        interfaces,
        liveness: None,
    })?;
    let deadline = started + args.timeout;
    while discovery.inventory().len() < fleet.len() {
        match tokio::time::timeout_at(deadline, discovery.next()).await {
            Err(_) => break,
            Ok(ev) => {
                ev?;
            }
        }
    }
    let elapsed = started.elapsed();
    let found = discovery.inventory().len();
    print_stdout(&processor_table(discovery.inventory().processors()))
        .map_err(CliError::io("writing to stdout"))?;
    println!(
        "Found {found} of {} processors in {:.2}s, each with its MAC address and serial.",
        fleet.len(),
        elapsed.as_secs_f64()
    );
    drop(discovery);
    tokio::task::spawn_blocking(move || advertiser.stop(Duration::from_secs(1)))
        .await
        .map_err(|e| CliError::Failed(format!("stopping the simulator: {e}")))?;
    if found != fleet.len() {
        return Err(CliError::Failed(format!(
            "the demo found {found} of {} simulated processors",
            fleet.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs this same command again inside a fresh private network.
async fn reexec_in_private_lan() -> Result<ExitCode, CliError> {
    let exe = std::env::current_exe().map_err(CliError::io("finding this program"))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = crate::lan::private_lan_command(&exe, &args);
    let status = tokio::task::spawn_blocking(move || cmd.status())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(CliError::io(
            "starting `unshare` (util-linux) for a private network",
        ))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
