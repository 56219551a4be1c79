//! `handoff sim`.

use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::CliError;
use crate::atomic_file::{self, Readers};
use crate::cli::output::outln;
use crate::identity::PairingAuthority;
use crate::leap::{MAIN_PORT, PAIRING_PORT};
use crate::processor::{ProcessorInfo, SystemType};
use crate::sim::{
    Advertiser, ControlSocket, Fault, FleetServers, FleetSpec, HouseSlot, ServerOptions, SimError,
    build_fleet, check_private_network, press_from_terminal,
};

/// From this many processors on, `sim` shows its progress while it starts.
const PROGRESS_FROM: usize = 50;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub action: Option<SimAction>,

    /// How many processors to simulate
    #[arg(long, default_value_t = 1)]
    pub count: usize,

    /// Address of the first processor; the others count up from it
    #[arg(long, default_value = "127.0.1.1")]
    pub first_ip: Ipv4Addr,

    /// Product line(s), comma-separated and cycled: ra3, qsx, caseta, ra2select
    #[arg(long, default_value = "ra3", value_delimiter = ',')]
    pub system_type: Vec<SystemType>,

    /// Seed for serials and MACs: the same seed gives the same fleet
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write the fleet as JSON (same fields as `discover --json`)
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// DNS-SD instance name of the first processor (later ones get " (2)"…)
    #[arg(long, default_value = "Lutron Status")]
    pub instance_name: String,

    /// Skip mDNS probing: announce at once instead of after about a second
    #[arg(long)]
    pub no_probe: bool,

    /// Advertise on this interface only (repeatable)
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,

    /// Press each processor's button this long after a client starts
    /// waiting on its pairing port (e.g. 200ms, 5s); without it nobody
    /// presses
    #[arg(long, value_name = "DELAY", value_parser = super::parse_duration)]
    pub auto_press: Option<Duration>,

    /// Give every processor this house (JSON, see examples/house.json)
    /// instead of one generated from its serial
    #[arg(long, value_name = "FILE")]
    pub house: Option<PathBuf>,
    /// Misbehave, for tests of what a client does with an impostor:
    /// impostor-pairing (the pairing port shows the pairing identity's own
    /// certificate), names-other-mac (the processor CA names another MAC),
    /// forgets-clients (the main port refuses every client certificate, as
    /// after the processor's pairings were removed), drops-mid-read (the
    /// main port closes each connection after 6 requests)
    #[arg(long, value_enum, value_name = "FAULT")]
    pub fault: Option<Fault>,

    /// Advertise even outside a private network namespace. Simulated
    /// processors then appear on a real LAN: never on a network you share.
    #[arg(long)]
    pub really_advertise: bool,
}

/// What to do to a running fleet instead of starting one.
#[derive(Subcommand, Debug)]
pub enum SimAction {
    /// Press the pairing button of a running simulated processor (the one
    /// started with the same --state-dir)
    Press {
        /// The processor: its id (8 hex digits), serial, MAC or IP address
        processor: String,
    },
    /// Press and release a keypad or Pico button of a running simulated
    /// processor, as a person would; every main-port subscriber hears it
    PressKeypad {
        /// The processor: its id (8 hex digits), serial, MAC or IP address
        processor: String,
        /// The keypad or Pico: its device id, serial or name
        device: String,
        /// The button: its number, id or engraving
        button: String,
    },
    /// Someone enters (or leaves) an area that has an occupancy sensor
    Occupancy {
        processor: String,
        /// The area's id
        area: u32,
        /// occupied or unoccupied
        #[arg(value_parser = ["occupied", "unoccupied"])]
        state: String,
    },
    /// Print a running simulated processor's house: areas, zones with
    /// their current levels, devices, keypad buttons
    House {
        processor: String,
        /// The house as JSON (the --house file format)
        #[arg(long)]
        json: bool,
    },
}

/// Runs the fleet, or `action` on the running one. `state_dir/sim/` keeps
/// the fleet's pairing authority, its processors' CAs and its control
/// socket, and receives `sim/pairing-identity/`, what a client needs to pair
/// with it. Nothing else in `state_dir` is touched: `state_dir/pairing-identity`
/// is a real, installed identity's place.
pub async fn run(args: SimArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    if let Some(action) = &args.action {
        return act(state_dir, action).await;
    }
    let template = match &args.house {
        Some(path) => Some(std::sync::Arc::new(
            crate::sim::House::load(path).map_err(|e| CliError::Failed(e.to_string()))?,
        )),
        None => None,
    };
    if !args.really_advertise {
        check_private_network()?;
    }
    let Some(state_dir) = state_dir else {
        return Err(CliError::Failed(
            "no state directory: pass --state-dir DIR (the simulator keeps its files in \
             DIR/sim and writes DIR/sim/pairing-identity for clients)"
                .into(),
        ));
    };
    let all = crate::lan::interfaces()?;
    let interfaces = crate::lan::choose_interfaces(&all, &args.interfaces)?;
    let spec = FleetSpec {
        count: args.count,
        first_ip: args.first_ip,
        system_types: args.system_type.clone(),
        seed: args.seed,
        instance_name: args.instance_name.clone(),
        hostile_names: args.fault == Some(Fault::HostileNames),
    };
    let fleet = build_fleet(&spec).map_err(SimError::from)?;
    // Before anything is written: a `sim/` that is not ours is refused.
    crate::identity::sim_dir(&state_dir)?;
    let authority = PairingAuthority::load_or_create(&state_dir).map_err(SimError::from)?;
    let identity_dir = authority
        .export_pairing_identity(&state_dir)
        .map_err(SimError::from)?;
    // Listening before advertising: a client that finds a processor can
    // reach it at once.
    let options = ServerOptions {
        auto_press: args.auto_press,
        button_window: None,
        state_dir: Some(state_dir.clone()),
        house: template.clone(),
        fault: args.fault,
    };
    // A large fleet takes a while the first time (each processor's keys
    // are made and kept): say so, and count on a terminal.
    let bar = (fleet.len() >= PROGRESS_FROM).then(|| {
        eprintln!(
            "preparing {} simulated processors (keys made on a first run are kept in {})",
            fleet.len(),
            state_dir.join("sim").display()
        );
        let bar = indicatif::ProgressBar::new(fleet.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{pos}/{len} processors ready {wide_bar}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = FleetServers::start_with_progress(&fleet, &authority, options, |ready| {
        if let Some(bar) = &bar {
            bar.set_position(ready as u64);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let servers = started.map_err(SimError::from)?;
    let control = match ControlSocket::start(&state_dir, servers.buttons()).await {
        Ok(control) => control,
        Err(e) => {
            servers.stop().await;
            return Err(SimError::from(e).into());
        }
    };
    let advertiser = Advertiser::start(&fleet, &interfaces, !args.no_probe)?;

    // Listen for Ctrl-C and SIGTERM before the manifest says we run: a
    // SIGTERM right after it must say goodbye, not kill the process.
    // (tokio registers a unix signal handler when the stream is made.)
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            advertiser.stop(Duration::from_secs(2));
            return Err(CliError::Failed(format!("cannot listen for signals: {e}")));
        }
    };
    if let Some(path) = &args.manifest {
        // As advertised: probing may have renamed an instance.
        let infos: Vec<_> = advertiser
            .records()
            .iter()
            .map(ProcessorInfo::from_record)
            .collect();
        // Each with its house, made, encoded and dropped one at a time:
        // a thousand houses never sit in memory together.
        let mut text = b"[\n".to_vec();
        for (n, (i, p)) in infos.iter().zip(&fleet).enumerate() {
            let mut entry = serde_json::to_value(i.to_json()).unwrap_or_default();
            let house = HouseSlot::new(p.clone(), template.clone()).initial();
            entry["house"] = serde_json::to_value(&house).unwrap_or_default();
            if n > 0 {
                text.extend_from_slice(b",\n");
            }
            serde_json::to_writer_pretty(&mut text, &entry)
                .map_err(|e| CliError::Failed(format!("cannot encode the manifest: {e}")))?;
        }
        text.extend_from_slice(b"\n]");
        text.push(b'\n');
        if let Err(e) = atomic_file::write(path, &text, Readers::Anyone) {
            advertiser.stop(Duration::from_secs(2));
            return Err(CliError::Io {
                context: format!("writing the manifest {}", path.display()),
                source: e.into(),
            });
        }
    }
    let last = fleet.last().map(|p| p.address).unwrap_or(args.first_ip);
    eprintln!(
        "handoff sim: {} simulated processor{} on {}{} via {}; Ctrl-C to stop",
        fleet.len(),
        if fleet.len() == 1 { "" } else { "s" },
        args.first_ip,
        if fleet.len() > 1 {
            format!("–{last}")
        } else {
            String::new()
        },
        interfaces.join(", ")
    );
    eprintln!(
        "handoff sim: pairing on port {PAIRING_PORT}, LEAP on {MAIN_PORT} of each address; \
         pairing identity for clients in {} (pair with --pairing-identity {}); {}",
        identity_dir.display(),
        identity_dir.display(),
        match args.auto_press {
            Some(delay) => format!("buttons press themselves {delay:?} after a client waits"),
            None => "nobody presses the buttons (--auto-press DELAY)".into(),
        }
    );
    eprintln!(
        "handoff sim: press a button with `handoff sim press ID` (control socket {})",
        control.path().display()
    );
    if std::io::stdin().is_terminal() {
        press_from_terminal(servers.buttons());
        eprintln!(
            "handoff sim: or here: Enter presses every button, an id (or serial, MAC, IP) \
             then Enter presses one"
        );
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    control.stop().await;
    servers.stop().await;
    let stopping = tokio::task::spawn_blocking(move || advertiser.stop(Duration::from_secs(2)));
    let _ = stopping.await;
    eprintln!(
        "handoff sim: said goodbye for {} processor{}",
        fleet.len(),
        if fleet.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `handoff sim press|press-keypad|occupancy|house`: through the running
/// fleet's control socket.
async fn act(state_dir: Option<PathBuf>, action: &SimAction) -> Result<ExitCode, CliError> {
    let Some(state_dir) = state_dir else {
        return Err(CliError::Failed(
            "no state directory: pass the --state-dir the simulator runs with".into(),
        ));
    };
    let done = match action {
        SimAction::Press { processor } => crate::sim::press(&state_dir, processor)
            .await
            .map(|p| format!("pressed the button of {p}")),
        SimAction::PressKeypad {
            processor,
            device,
            button,
        } => crate::sim::press_keypad(&state_dir, processor, device, button)
            .await
            .map(|p| format!("pressed and released {p}")),
        SimAction::Occupancy {
            processor,
            area,
            state,
        } => crate::sim::set_occupancy(&state_dir, processor, *area, state == "occupied").await,
        SimAction::House { processor, json } => {
            let text = crate::sim::house(&state_dir, processor)
                .await
                .map_err(SimError::from)?;
            if *json {
                outln!("{text}");
            } else {
                let house: crate::sim::House = serde_json::from_str(&text)
                    .map_err(|e| CliError::Failed(format!("the simulator sent no house: {e}")))?;
                outln!("{}", crate::sim::house_text(&house).trim_end_matches('\n'));
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    outln!("{}", done.map_err(SimError::from)?);
    Ok(ExitCode::SUCCESS)
}
