//! `handoff demo`: the story on a private network, no hardware needed.
//!
//! One cloud and one simulated site of three processors (RadioRA 3,
//! HomeWorks QSX, Caséta), each in its own Place: discovery lists them with
//! their MAC addresses; the cloud says one is yellow (a homeowner exists),
//! one grey (no remote services), one ready; the ready one is taken over
//! with its (auto-pressed) button and shared to a pro account; the access
//! list shows the result.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use clap::Args;
use tokio::time::Instant;

use super::CliError;
use super::output::{print_stdout, processor_table};
use super::relay::CloudFlags;
use crate::cli::output::outln;
use crate::cloud::authority::CloudAuthority;
use crate::cloud::server::{RunningServer, ServerOptions as CloudServerOptions};
use crate::cloud::{
    AccessDuration, AccountId, CloudStore, Command, PlaceId, ProcessorRecord, ProjectKey,
    Remaining, access_list, now,
};
use crate::discovery::{Discovery, DiscoveryOptions};
use crate::identity::{
    KeyAlgorithm, PairingAuthority, PrivateKey, SimProcessorIdentity, sign_client_csr,
};
use crate::lan::PRIVATE_LAN_ENV;
use crate::portal::{Clock, PortalOptions, RunningPortal, SIGN_IN_VALIDITY, WebTls};
use crate::processor::SystemType;
use crate::proto::Claimed;
use crate::relay::link::{CloudLink, IDENTITY_DIR};
use crate::sim::{Advertiser, FleetServers, FleetSpec, ServerOptions, build_fleet};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long to wait for the simulated site to be found
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub timeout: Duration,
    /// Keep the cloud and the Places portal serving after the story, until
    /// Ctrl-C, so that a browser on this machine can open the sign-in link
    #[arg(long)]
    pub keep: bool,
    /// Where the portal listens for this machine's browser (a loopback
    /// address)
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub web: SocketAddr,
}

/// Set for the demo inside its private network by the process outside,
/// which passes the browser's connections to this Unix socket.
const WEB_SOCKET_ENV: &str = "HANDOFF_DEMO_WEB_SOCKET";

pub async fn run(args: DemoArgs) -> Result<ExitCode, CliError> {
    let all = crate::lan::interfaces()?;
    if !crate::lan::is_private(&all) {
        if std::env::var_os(PRIVATE_LAN_ENV).is_some() {
            return Err(CliError::Failed(
                "the private network for the demo could not be set up (is `ip` from iproute2 installed?)".into(),
            ));
        }
        return reexec_in_private_lan(&args).await;
    }
    if !args.web.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "--web {}: the demo's portal listens on a loopback address only",
            args.web
        )));
    }

    let scratch = std::env::temp_dir().join(format!("handoff-demo-{}", std::process::id()));
    let result = story(&args, &all, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Three Places, one per processor: one already has a homeowner (yellow),
/// one never had remote services (grey), one is ready for a takeover.
const SITES: [(&str, &str); 3] = [
    (
        "maple-court",
        "the homeowner claimed it last year with the Lutron app",
    ),
    (
        "harbor-view",
        "the project was made without remote services",
    ),
    (
        "lake-house",
        "remote services on, and the homeowner never claimed it",
    ),
];
const INTEGRATOR: &str = "integrator@example.com";
const PRO: &str = "pro@example.com";
const CLOUD_ADDR: &str = "127.0.0.1:4433";

async fn story(
    args: &DemoArgs,
    all: &[crate::lan::Interface],
    scratch: &Path,
) -> Result<ExitCode, CliError> {
    let state = scratch.join("site");
    let data = scratch.join("cloud");
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
    let interfaces = crate::lan::choose_interfaces(all, &[])?;
    outln!(
        "A private network with one cloud (on {CLOUD_ADDR}) and one simulated site: three \
         processors on 127.0.1.1–127.0.1.3, buttons pressed 1 s after a client waits."
    );
    let authority = PairingAuthority::load_or_create(&state).map_err(crate::sim::SimError::from)?;
    let sim_identity = authority
        .export_pairing_identity(&state)
        .map_err(crate::sim::SimError::from)?;
    let servers = FleetServers::start(
        &fleet,
        &authority,
        ServerOptions {
            auto_press: Some(Duration::from_secs(1)),
            button_window: None,
            state_dir: Some(state.clone()),
            house: None,
            fault: None,
        },
    )
    .await
    .map_err(crate::sim::SimError::from)?;
    let advertiser = Advertiser::start(&fleet, &interfaces, false)?;

    // The cloud: each processor's Place, as its designer left it.
    let store = Arc::new(CloudStore::open(&data)?);
    for (p, (place, how)) in fleet.iter().zip(SITES) {
        let identity =
            SimProcessorIdentity::load_or_create(&state, p.serial, p.mac, &p.serial.host_name())
                .map_err(|e| CliError::Failed(e.to_string()))?;
        // The pro made harbor-view's project: the portal shows it to them
        // grey, with the Enable remote services control, and to no one else.
        let creator = if place == "harbor-view" {
            PRO
        } else {
            "designer@example.com"
        };
        let create = Command::CreatePlace {
            place: PlaceId(place.into()),
            by: AccountId::new(creator),
            key: ProjectKey(crate::cloud::store::fresh_secret()?),
            remote_services: place != "harbor-view",
        };
        let record = ProcessorRecord {
            place: PlaceId(place.into()),
            serial: p.serial,
            mac: p.mac.0,
            ca_der: identity.ca.certificate_der().to_vec(),
        };
        store
            .create_place(&create, Some(record), now())?
            .map_err(|r| CliError::Failed(r.to_string()))?;
        if place == "maple-court" {
            // The homeowner's app paired with the button long ago.
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
            let pem = sign_client_csr(&key.csr_pem("Lutron app")?, &identity.ca)?;
            let proof = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let claim = Claimed {
                place: None,
                serial: p.serial,
                mac: p.mac,
                proof: proof.to_vec(),
                at: now(),
                possession: None,
                model: None,
                firmware: None,
            };
            store
                .claim(&AccountId::new("homeowner@example.com"), &claim, now())?
                .map_err(|r| CliError::Failed(r.to_string()))?;
        }
        outln!(
            "  Place {place}: {} {}, {how}",
            p.system_type.product(None),
            p.serial.id()
        );
    }
    CloudAuthority::load_or_create(&data)
        .and_then(|ca| {
            ca.enroll(
                "demo site",
                &AccountId::new(INTEGRATOR),
                &state.join(IDENTITY_DIR),
            )
        })
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let addr: SocketAddr = CLOUD_ADDR
        .parse()
        .map_err(|e| CliError::Failed(format!("{e}")))?;
    let server =
        RunningServer::start(&data, store.clone(), addr, CloudServerOptions::default()).await?;
    let portal = DemoPortal::start(store.clone(), &data, args.web).await?;

    // A responder multicasts a record at most once a second (RFC 6762 §6),
    // so a query right after the site's announcements would be answered a
    // second late. Real sites have been up for days: let this one settle.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    outln!("\n1. Discover the processors over mDNS (_lutron._tcp):");
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
    outln!(
        "Found {found} of {} processors in {:.2}s, each with its MAC address and serial.",
        fleet.len(),
        elapsed.as_secs_f64()
    );
    drop(discovery);
    if found != fleet.len() {
        return Err(CliError::Failed(format!(
            "the demo found {found} of {} simulated processors",
            fleet.len()
        )));
    }

    outln!("\n2. Ask the cloud each Place's status, as {INTEGRATOR}:");
    let cloud: crate::relay::address::CloudAddresses =
        CLOUD_ADDR.parse().map_err(CliError::Failed)?;
    let link = CloudLink::new(&cloud, &state.join(IDENTITY_DIR)).map_err(CliError::Failed)?;
    for p in &fleet {
        let st = link
            .place_status(Some(p.serial), Some(p.mac), Duration::from_secs(10))
            .await
            .map_err(CliError::Failed)?;
        outln!(
            "  {:<6} {} {} — {}",
            st.status.to_string().to_uppercase(),
            p.system_type.short_name(),
            p.serial.id(),
            st.guidance
        );
    }

    let ready = &fleet[2];
    outln!(
        "\n3. Take over {} {} for {PRO} (claim with the button, share, Remove Home from Account):",
        ready.system_type.short_name(),
        ready.serial.id()
    );
    let takeover = super::takeover::TakeoverArgs {
        processor: ready.serial.id(),
        share_to: PRO.into(),
        duration: AccessDuration::ThirtyDays,
        pairing_identity: Some(sim_identity),
        standalone: true,
        button_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        json: false,
        cloud: CloudFlags {
            cloud: Some(cloud),
            cloud_identity: None,
            cloud_wait: Duration::from_secs(10),
        },
    };
    let code = super::takeover::run(takeover, Some(state.clone())).await?;

    outln!("\n4. Who has access to lake-house now (Manage Access, as {PRO}):");
    if let Some(place) = store.place(&PlaceId("lake-house".into()))? {
        match access_list(&place, &AccountId::new(PRO), now()) {
            Ok(entries) => {
                for e in entries {
                    outln!(
                        "  {:<24} {:<14} {}",
                        e.account.as_str(),
                        match e.role {
                            crate::cloud::Role::Homeowner => "homeowner",
                            crate::cloud::Role::ProInstaller => "pro installer",
                        },
                        match e.remaining {
                            Remaining::Unlimited => "unlimited".to_string(),
                            Remaining::Seconds(s) => format!("{} days left", s.div_ceil(86_400)),
                        }
                    );
                }
                outln!(
                    "  homeowner: {} (the real homeowner can claim it with the button)",
                    place.homeowner().map_or("none", |a| a.as_str())
                );
            }
            Err(r) => outln!("  refused: {r}"),
        }
    }

    portal.introduce(&store, args.keep)?;
    if args.keep {
        outln!("\nServing until Ctrl-C.");
        tokio::signal::ctrl_c()
            .await
            .map_err(CliError::io("waiting for Ctrl-C"))?;
    }
    portal.stop().await;
    server.stop().await;
    servers.stop().await;
    tokio::task::spawn_blocking(move || advertiser.stop(Duration::from_secs(1)))
        .await
        .map_err(|e| CliError::Failed(format!("stopping the simulator: {e}")))?;
    Ok(code)
}

/// The portal of the demo's cloud, and how a browser on this machine
/// reaches it.
struct DemoPortal {
    portal: RunningPortal,
    /// The Unix socket the process outside passes connections to.
    bridge: Option<tokio::task::JoinHandle<()>>,
}

impl DemoPortal {
    async fn start(
        store: Arc<CloudStore>,
        data: &Path,
        web: SocketAddr,
    ) -> Result<DemoPortal, CliError> {
        let socket = std::env::var_os(WEB_SOCKET_ENV).map(std::path::PathBuf::from);
        let options = PortalOptions {
            // Behind the bridge, any port of this network will do: the
            // browser uses the one outside.
            listen: if socket.is_some() {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                web
            },
            tls: WebTls::CloudCa,
            data_dir: data.to_owned(),
            url: Some(format!("https://localhost:{}", web.port())),
            clock: Clock::default(),
            metrics: Default::default(),
            smtp: None,
        };
        let portal = RunningPortal::start(store, options)
            .await
            .map_err(|e| CliError::Failed(format!("the Places portal: {e}")))?;
        let bridge = match socket {
            None => None,
            Some(path) => {
                let listener = tokio::net::UnixListener::bind(&path)
                    .map_err(CliError::io("listening on the demo's portal socket"))?;
                let inside = portal.local_addr;
                Some(tokio::spawn(async move {
                    while let Ok((unix, _)) = listener.accept().await {
                        tokio::spawn(async move {
                            if let Ok(tcp) = tokio::net::TcpStream::connect(inside).await {
                                pass(unix, tcp).await;
                            }
                        });
                    }
                }))
            }
        };
        Ok(DemoPortal { portal, bridge })
    }

    /// The portal's address and a sign-in link for the pro.
    fn introduce(&self, store: &CloudStore, keep: bool) -> Result<(), CliError> {
        let link = crate::portal::sign_in_link(
            store,
            &AccountId::new(PRO),
            &self.portal.url,
            now(),
            SIGN_IN_VALIDITY,
        )?;
        outln!(
            "\n5. The Places portal: {} (its certificate is from the demo cloud's CA; \
             let the browser accept it).",
            self.portal.url
        );
        outln!("   Sign in as {PRO} (works once, for 15 minutes):\n   {link}");
        outln!(
            "   {PRO} made harbor-view without remote services: the portal shows it to them \
             alone, grey, with Enable remote services (it asks twice: it cannot be undone)."
        );
        if !keep {
            outln!(
                "   The portal stops with the demo: run `handoff demo --keep` to open it in a browser."
            );
        }
        Ok(())
    }

    async fn stop(self) {
        if let Some(bridge) = self.bridge {
            bridge.abort();
        }
        self.portal.stop().await;
    }
}

/// Copies both ways until either side closes.
async fn pass<A, B>(mut a: A, mut b: B)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

/// With `--keep`: listens on `web` (loopback) outside the private
/// network and passes every connection to `socket`, where the demo inside
/// serves the portal.
async fn bridge_from_outside(
    web: SocketAddr,
    socket: std::path::PathBuf,
) -> Result<tokio::task::JoinHandle<()>, CliError> {
    if !web.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "--web {web}: the demo's portal listens on a loopback address only"
        )));
    }
    let listener = tokio::net::TcpListener::bind(web)
        .await
        .map_err(CliError::io("listening for the browser (--web)"))?;
    Ok(tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                // The demo inside may not serve yet: the browser retries.
                if let Ok(unix) = tokio::net::UnixStream::connect(&socket).await {
                    pass(tcp, unix).await;
                }
            });
        }
    }))
}

/// Runs this same command again inside a fresh private network.
async fn reexec_in_private_lan(demo: &DemoArgs) -> Result<ExitCode, CliError> {
    let exe = std::env::current_exe().map_err(CliError::io("finding this program"))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = crate::lan::private_lan_command(&exe, &args);
    // Removed when the demo ends (at drop).
    let mut bridge = None;
    let _socket_dir = if demo.keep {
        let dir = tempfile_dir()?;
        let socket = dir.path.join("portal.sock");
        cmd.env(WEB_SOCKET_ENV, &socket);
        bridge = Some(bridge_from_outside(demo.web, socket).await?);
        Some(dir)
    } else {
        None
    };
    let mut child = cmd.spawn().map_err(CliError::io(
        "starting `unshare` (util-linux) for a private network",
    ))?;
    // `unshare` and its shell exec the demo: the child is the demo itself.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut waiting = tokio::task::spawn_blocking(move || child.wait());
    let status = loop {
        tokio::select! {
            status = &mut waiting => break status,
            // Ctrl-C (or a SIGINT to this process alone) is for the demo
            // inside, which stops its servers and ends: pass it on, and
            // wait for it rather than dying first.
            Ok(()) = tokio::signal::ctrl_c(), if demo.keep => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            }
        }
    };
    let status = status
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(CliError::io("waiting for the demo in its private network"))?;
    if let Some(bridge) = bridge {
        bridge.abort();
    }
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// A private (0700) scratch directory, removed at drop.
struct ScratchDir {
    path: std::path::PathBuf,
}

fn tempfile_dir() -> Result<ScratchDir, CliError> {
    let path = std::env::temp_dir().join(format!(
        "handoff-demo-web-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    crate::identity::files::ensure_private_dir(&path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
    Ok(ScratchDir { path })
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
