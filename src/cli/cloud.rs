//! `handoff cloud …`: the reference cloud access layer — its server, the
//! enrolment of daemons, and the operator's Place commands.
//!
//! The operator commands open the same store file as the server (redb's
//! multi-writer mode), so they work whether `cloud serve` runs or not.
//! Each acts as an account (`--as EMAIL`), the way the app acts for the
//! signed-in user, and prints one line for people or, with `--json`, one
//! JSON object.
//!
//! This file and its submodules only parse and print: what a project file,
//! a share link or a Place id is, and which site names and accounts can be
//! enrolled, is the `cloud` module's ([`crate::cloud::project_file`],
//! [`crate::cloud::share_link`], [`crate::cloud::names`]). A processor named
//! by serial or MAC is read by [`Target`], as everywhere else.

mod access;
mod daemon;
mod place;
mod print;
mod serve_config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::json;

use access::{AccessCommand, LinkCommand, ShareArgs};
use daemon::DaemonCommand;
use place::PlaceCommand;
use print::{print, refused};

use super::{CliError, shutdown_signal};
use crate::claim::Target;
use crate::cloud::authority::CloudAuthority;
use crate::cloud::certificate_file::read_certificate;
use crate::cloud::server::{RunningServer, ServerOptions};
use crate::cloud::store::{DaemonRecord, PgStore, RedbStore};
use crate::cloud::{
    AccountId, CloudError, CloudStore, Command, PlaceId, ProjectFile, account_for_enrolment,
    check_site_name, now,
};
use crate::portal::{Clock, PortalOptions, RunningPortal};
use crate::processor::{Mac, Serial};
use crate::proto::{Claimed, StatusQuery};

#[derive(Args, Debug)]
pub struct CloudArgs {
    /// The cloud's data directory (store and CA) [default: STATE_DIR/cloud]
    #[arg(long, value_name = "DIR", global = true, env = "HANDOFF_CLOUD_DATA")]
    pub data: Option<PathBuf>,

    /// Keep Places in this PostgreSQL database instead of DATA/cloud.redb
    /// (libpq URL: postgresql://USER@/DB?host=/run/postgresql); DATA still
    /// holds the cloud's CA
    #[arg(
        long,
        value_name = "URL",
        global = true,
        env = "HANDOFF_CLOUD_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: CloudCommand,
}

#[derive(Subcommand, Debug)]
pub enum CloudCommand {
    /// Serve the relay protocol (TLS 1.3, enrolled daemons only)
    Serve(ServeArgs),
    /// Issue a daemon identity bundle (key, certificate, cloud CA)
    Enroll(EnrollArgs),
    /// Enrolled daemons: list them, revoke one
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Create, activate, open, show and list Places
    #[command(subcommand)]
    Place(PlaceCommand),
    /// Share a Place with a myLutron email for a fixed duration
    Share(ShareArgs),
    /// Share links: one active per Place
    #[command(subcommand)]
    Link(LinkCommand),
    /// Manage access: who has it, for how long; revoke
    #[command(subcommand)]
    Access(AccessCommand),
    /// Remote services: can be enabled, never disabled
    #[command(subcommand, name = "remote-services")]
    RemoteServices(RemoteServicesCommand),
    /// The cloud icon of a processor's Place (green / yellow / grey)
    Status(StatusArgs),
    /// A homeowner claim with the certificate the processor signed
    Claim(ClaimArgs),
    /// Remove Home from Account
    Release(ReleaseArgs),
    /// Bring the --database to this build's schema (serve does it too)
    Migrate {
        /// JSON on stdout: the schema version before and after
        #[arg(long)]
        json: bool,
    },
    /// Copy everything in DATA/cloud.redb into a PostgreSQL database
    Copy(CopyArgs),
    /// Print a one-time sign-in link to the Places portal (15 minutes)
    SignInLink(SignInLinkArgs),
    /// Counts: Places, processors, enrolled daemons, relayed events
    Stats {
        /// JSON on stdout: the counts as one object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub listen: SocketAddr,
    /// Connections served at once; more wait to be accepted
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// A TOML file with the portal's `[web]` section (see
    /// cloud-serve.example.toml); a flag given here wins over the file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also serve the Places portal (web pages) on this address [file:
    /// `[web] listen`]
    #[arg(long, value_name = "ADDR")]
    pub web: Option<SocketAddr>,
    /// The portal's certificate chain (PEM) [default: one the cloud's CA
    /// issues for the address and localhost] [file: `cert`]
    #[arg(long, value_name = "FILE")]
    pub web_cert: Option<PathBuf>,
    /// The key of --web-cert (PEM) [file: `key`]
    #[arg(long, value_name = "FILE")]
    pub web_key: Option<PathBuf>,
    /// Serve the portal as plain HTTP (loopback only, behind a TLS proxy)
    /// [file: `plain_http`]
    #[arg(long)]
    pub web_plain_http: bool,
    /// The address people open the portal at, for links in sign-in mail
    /// [default: https://localhost:PORT] [file: `url`]
    #[arg(long, value_name = "URL")]
    pub web_url: Option<String>,
    /// Serve Prometheus metrics (GET /metrics, plain HTTP) on this
    /// address: relayed events by outcome and rule, batches, transaction
    /// time, connected daemons, TLS failures, portal requests
    #[arg(long, value_name = "ADDR", env = "HANDOFF_CLOUD_METRICS")]
    pub metrics: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct SignInLinkArgs {
    /// The account to sign in (its myLutron email)
    #[arg(long)]
    pub account: String,
    /// The portal's address [default: https://localhost:8443]
    #[arg(long, value_name = "URL", default_value = "https://localhost:8443")]
    pub web_url: String,
    /// JSON on stdout: the link and until when it works
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The PostgreSQL database to fill (migrated first; must hold no Place)
    #[arg(long, value_name = "URL")]
    pub to_database: String,
    /// JSON on stdout: what was copied, counted
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The site's name, written into the daemon's certificate
    #[arg(long)]
    pub name: String,
    /// The myLutron account the daemon acts for
    #[arg(long)]
    pub account: String,
    /// Where to write the bundle [default: DATA/daemons/NAME]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// JSON on stdout: the bundle written and the account it acts for
    #[arg(long)]
    pub json: bool,
}

/// Who acts, and how to print.
#[derive(Args, Debug)]
pub struct Actor {
    /// The account acting (its myLutron email)
    #[arg(long = "as", value_name = "EMAIL")]
    pub account: String,
    /// JSON on stdout: the result as one object (a refusal has "result":
    /// "refused", the rule and the guidance)
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RemoteServicesCommand {
    /// Enable remote services (needs the project file)
    Enable {
        #[arg(long, value_name = "FILE")]
        project_file: PathBuf,
        /// JSON on stdout: the result as one object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The processor: serial (decimal or 8-hex id) or MAC address
    pub processor: String,
    #[command(flatten)]
    pub actor: Actor,
}

#[derive(Args, Debug)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub actor: Actor,
    #[arg(long)]
    pub serial: String,
    #[arg(long)]
    pub mac: Mac,
    /// PEM of the certificate the processor signed after the button press
    #[arg(long, value_name = "FILE")]
    pub proof: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    pub place: String,
    #[command(flatten)]
    pub actor: Actor,
}

/// A `--serial` argument, read as `PROCESSOR` is everywhere: a decimal
/// serial or the 8-hex id.
fn serial_arg(text: &str) -> Result<Serial, CliError> {
    match Target::parse(text).typed_facts() {
        Some((Some(serial), _)) => Ok(serial),
        _ => Err(CliError::Failed(format!(
            "'{text}' is not a serial number or 8-hex id"
        ))),
    }
}

/// `cloud status PROCESSOR`: a serial, an 8-hex id or a MAC, as [`Target`]
/// reads it.
fn status_query(text: &str) -> Result<StatusQuery, CliError> {
    match Target::parse(text).typed_facts() {
        Some((Some(serial), _)) => Ok(StatusQuery::BySerial { query: 0, serial }),
        Some((None, Some(mac))) => Ok(StatusQuery::ByMac { query: 0, mac }),
        _ => Err(CliError::Failed(format!(
            "'{text}' is not a serial number or 8-hex id"
        ))),
    }
}

impl From<CloudError> for CliError {
    fn from(e: CloudError) -> CliError {
        CliError::Failed(e.to_string())
    }
}

/// Runs `handoff cloud …`.
///
/// # Errors
/// [`CliError`] for anything but a rule's refusal (exit code 3).
pub async fn run(args: CloudArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let database = args.database.as_deref();
    if let CloudCommand::Migrate { json } = args.command {
        return run_migrate(database, json);
    }
    let data = match args.data.or_else(|| state_dir.map(|s| s.join("cloud"))) {
        Some(data) => data,
        None => {
            return Err(CliError::Failed(
                "no data directory: pass --data DIR (or --state-dir)".into(),
            ));
        }
    };
    match args.command {
        CloudCommand::Serve(serve) => return run_serve(&data, database, serve).await,
        CloudCommand::Enroll(enroll) => return run_enroll(&data, database, enroll),
        CloudCommand::Copy(copy) => return run_copy(&data, database, copy),
        // A typo in --data must not read as "nobody is enrolled".
        CloudCommand::Daemon(_)
            if database.is_none() && !data.join(crate::cloud::store::STORE_FILE).exists() =>
        {
            return Err(CliError::Failed(format!(
                "{} holds no cloud store: nobody was enrolled there (check --data, or \
                 --database for PostgreSQL)",
                data.display()
            )));
        }
        _ => {}
    }
    let store = CloudStore::open_chosen(&data, database)?;
    let at = now();
    match args.command {
        CloudCommand::Serve(_)
        | CloudCommand::Enroll(_)
        | CloudCommand::Migrate { .. }
        | CloudCommand::Copy(_) => unreachable!("handled above"),
        CloudCommand::Place(cmd) => place::run(&store, cmd, at),
        CloudCommand::Daemon(cmd) => daemon::run(&store, cmd, at),
        CloudCommand::SignInLink(args) => {
            let account = account_for_enrolment(&args.account)?;
            let link = crate::portal::sign_in_link(
                &store,
                &account,
                &args.web_url,
                at,
                crate::portal::SIGN_IN_VALIDITY,
            )?;
            Ok(print(
                args.json,
                json!({"account": account.as_str(), "link": link, "expires": at.plus(crate::portal::SIGN_IN_VALIDITY).0}),
                || link.clone(),
            ))
        }
        CloudCommand::Share(share) => access::share(&store, share, at),
        CloudCommand::Link(cmd) => access::link(&store, cmd, at),
        CloudCommand::Access(cmd) => access::access(&store, cmd, at),
        CloudCommand::RemoteServices(RemoteServicesCommand::Enable { project_file, json }) => {
            let ProjectFile { place, project_key } = ProjectFile::read(&project_file)?;
            let cmd = Command::SetRemoteServices {
                place: place.clone(),
                key: project_key,
                enabled: true,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, json),
                Ok(_) => print(
                    json,
                    json!({"result": "applied", "place": place.0, "remote_services": true}),
                    || {
                        format!(
                            "remote services are on for Place {place} (they cannot be turned off)"
                        )
                    },
                ),
            })
        }
        CloudCommand::Status(status) => {
            let query = status_query(&status.processor)?;
            let account = AccountId::new(&status.actor.account);
            match store.status(&account, &query, at)? {
                Err(error) => Err(CliError::Failed(error.reason)),
                Ok(st) => Ok(print(
                    status.actor.json,
                    json!({"status": st.status.to_string(), "guidance": st.guidance, "access": st.access, "serial": st.serial.0,
                           "id": st.serial.id(), "mac": st.mac.to_string(), "place": st.place.as_ref().map(|p| p.0.clone())}),
                    || {
                        format!(
                            "{}: {} (serial {}, MAC {})",
                            st.status, st.guidance, st.serial, st.mac
                        )
                    },
                )),
            }
        }
        CloudCommand::Claim(claim) => {
            let proof = read_certificate(&claim.proof, "the proof")?;
            let event = Claimed {
                place: None,
                serial: serial_arg(&claim.serial)?,
                mac: claim.mac,
                proof,
                at,
                possession: None,
                model: None,
                firmware: None,
            };
            let account = AccountId::new(&claim.actor.account);
            Ok(match store.claim(&account, &event, at)? {
                Err(r) => refused(&r, claim.actor.json),
                Ok(()) => {
                    let place = store
                        .processor(event.serial)?
                        .map(|p| p.place.0)
                        .unwrap_or_default();
                    print(
                        claim.actor.json,
                        json!({"result": "applied", "place": place, "homeowner": account.as_str()}),
                        || format!("{account} claimed Place {place} as its homeowner"),
                    )
                }
            })
        }
        CloudCommand::Stats { json } => {
            let places = store.places()?.iter().count();
            let processors = store.processors()?.len();
            let daemons = store.daemons()?.len();
            let events = store.event_count()?;
            Ok(print(
                json,
                json!({"places": places, "processors": processors, "daemons": daemons, "events": events}),
                || {
                    format!(
                        "{places} Places, {processors} processors, {daemons} daemons, {events} relayed events"
                    )
                },
            ))
        }
        CloudCommand::Release(release) => {
            let cmd = Command::Release {
                place: PlaceId(release.place.clone()),
                by: AccountId::new(&release.actor.account),
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, release.actor.json),
                Ok(_) => print(
                    release.actor.json,
                    json!({"result": "applied", "place": release.place}),
                    || {
                        format!(
                            "Place {} has no homeowner now: it can be claimed again",
                            release.place
                        )
                    },
                ),
            })
        }
    }
}

fn run_enroll(data: &Path, database: Option<&str>, args: EnrollArgs) -> Result<ExitCode, CliError> {
    check_site_name(&args.name)?;
    let account = account_for_enrolment(&args.account)?;
    let store = CloudStore::open_chosen(data, database)?;
    // A revoked name, a name that acts for another account, and a bundle
    // already in --out are refused before anything is written.
    let before = store.daemons()?.into_iter().find(|d| d.name == args.name);
    if let Some(old) = &before {
        if old.revoked_at.is_some() {
            return Err(CloudError::RevokedName { name: args.name }.into());
        }
        if old.account != account {
            return Err(CliError::Failed(format!(
                "'{}' is enrolled for {}: a site name acts for one account, and its bundles \
                 stay valid until the name is revoked; enroll the site box under another name",
                args.name, old.account
            )));
        }
    }
    let authority = CloudAuthority::load_or_create(data).map_err(CloudError::from)?;
    let out = args
        .out
        .unwrap_or_else(|| data.join("daemons").join(&args.name));
    if out.join(crate::cloud::authority::BUNDLE_CERT).exists() {
        return Err(CliError::Failed(format!(
            "{} already holds an identity bundle: pick another --out (a site box's bundle is \
             never overwritten; `handoff cloud daemon revoke NAME` shuts an old one out)",
            out.display()
        )));
    }
    let bundle = authority
        .enroll(&args.name, &account, &out)
        .map_err(CloudError::from)?;
    store.add_daemon(&DaemonRecord::enrolled(&args.name, account.clone(), now()))?;
    if let Some(old) = before {
        eprintln!(
            "note: '{}' was enrolled before ({}); that bundle stays valid too: `handoff cloud \
             daemon revoke {}` shuts out every bundle of the name",
            args.name,
            crate::cloud::views::time_text(old.enrolled_at),
            args.name
        );
    }
    Ok(print(
        args.json,
        json!({"site": bundle.site, "account": account.as_str(), "bundle": bundle.dir}),
        || {
            format!(
                "enrolled {} for {account}: identity bundle in {} (copy it to the site box; \
                 `--cloud-identity {}`)",
                bundle.site,
                bundle.dir.display(),
                bundle.dir.display()
            )
        },
    ))
}

async fn run_serve(
    data: &Path,
    database: Option<&str>,
    args: ServeArgs,
) -> Result<ExitCode, CliError> {
    // The configuration first: a mistake in it is told before anything
    // is opened or bound.
    let (web, smtp) = serve_config::web_settings(&args)?;
    if database.is_some() {
        eprintln!("handoff cloud: connecting to the database and migrating its schema…");
    }
    let store = Arc::new(CloudStore::open_chosen(data, database)?);
    let metrics = Arc::new(crate::cloud::metrics::CloudMetrics::default());
    // Bound first: a taken port is refused before anything is served.
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            crate::metrics::MetricsListener::bind(addr)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?,
        ),
        None => None,
    };
    let options = ServerOptions {
        max_connections: args.max_connections,
        metrics: metrics.clone(),
        ..ServerOptions::default()
    };
    let server = RunningServer::start(data, store.clone(), args.listen, options).await?;
    let portal = match web {
        None => None,
        Some(web) => {
            let options = PortalOptions {
                listen: web.listen,
                tls: web.tls,
                data_dir: data.to_owned(),
                url: web.url,
                clock: Clock::default(),
                metrics: metrics.clone(),
                smtp,
            };
            let portal = RunningPortal::start(store.clone(), options)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!(
                "handoff cloud: serving the Places portal at {} (on {}); sign-in mail goes to {}",
                portal.url, portal.local_addr, portal.mail
            );
            Some(portal)
        }
    };
    eprintln!(
        "handoff cloud: serving the relay on {} (TLS 1.3, enrolled daemons only); {}; \
         Ctrl-C to stop",
        server.local_addr,
        store.describe()
    );
    let (stop_metrics, metrics_stopped) = crate::shutdown::shutdown_channel();
    let metrics_task = metrics_listener.map(|listener| {
        eprintln!(
            "handoff cloud: serving metrics at http://{}/metrics",
            listener.local_addr
        );
        let registry = Arc::new(metrics.registry(store.clone()));
        tokio::spawn(listener.serve(registry, metrics_stopped))
    });
    // Listening for SIGTERM before READY: systemd may stop the node the
    // moment it is ready.
    let stop = shutdown_signal();
    // Type=notify (systemd/handoff-cloud.service): ready once listening.
    // A no-op outside systemd.
    let notify = |states: &[sd_notify::NotifyState]| {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    };
    let status = format!("serving the relay on {}", server.local_addr);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    stop.await;
    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(portal) = portal {
        portal.stop().await;
    }
    server.stop().await;
    stop_metrics.fire();
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    eprintln!("handoff cloud: stopped");
    Ok(ExitCode::SUCCESS)
}

/// `cloud migrate`: connecting migrates; this says to which version.
fn run_migrate(database: Option<&str>, json: bool) -> Result<ExitCode, CliError> {
    let Some(url) = database else {
        return Err(CliError::Usage(
            "cloud migrate needs --database URL (or HANDOFF_CLOUD_DATABASE): the redb store \
             has no schema to migrate"
                .into(),
        ));
    };
    let store = PgStore::connect(url)?;
    let version = store.schema_version()?;
    Ok(print(
        json,
        json!({"database": store.describe(), "schema": version}),
        || format!("{}: schema version {version}", store.describe()),
    ))
}

/// `cloud copy --to-database URL`: the redb store in DATA into PostgreSQL.
fn run_copy(data: &Path, database: Option<&str>, args: CopyArgs) -> Result<ExitCode, CliError> {
    if database.is_some() {
        return Err(CliError::Usage(
            "cloud copy reads DATA/cloud.redb: drop --database (HANDOFF_CLOUD_DATABASE) and \
             name the target with --to-database"
                .into(),
        ));
    }
    if !data.join(crate::cloud::store::STORE_FILE).exists() {
        return Err(CliError::Failed(format!(
            "{} holds no cloud store to copy",
            data.display()
        )));
    }
    let from = RedbStore::open(data)?;
    let to = PgStore::connect(&args.to_database)?;
    eprintln!(
        "handoff cloud: copying {} into {}…",
        data.display(),
        to.describe()
    );
    let copied = crate::cloud::store::copy::copy(&from, &to)?;
    Ok(print(
        args.json,
        json!({"places": copied.places, "grants": copied.grants, "processors": copied.processors,
               "daemons": copied.daemons, "spent_proofs": copied.spent_proofs,
               "deleted_places": copied.deleted_places, "events": copied.events,
               "timeline": copied.timeline, "processor_reports": copied.reports,
               "database": to.describe()}),
        || {
            format!(
                "copied {} Places ({} grants), {} processors, {} daemons, {} spent proofs, {} \
                 deleted Place ids, {} event results, {} timeline entries and {} processor \
                 reports into {}",
                copied.places,
                copied.grants,
                copied.processors,
                copied.daemons,
                copied.spent_proofs,
                copied.deleted_places,
                copied.events,
                copied.timeline,
                copied.reports,
                to.describe()
            )
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_argument_is_read_as_target_reads_processor() {
        let by_serial = |s: u32| StatusQuery::BySerial {
            query: 0,
            serial: Serial(s),
        };
        assert_eq!(status_query("37152423").unwrap(), by_serial(37152423));
        assert_eq!(status_query("0236E6A7").unwrap(), by_serial(0x0236_e6a7));
        let mac: Mac = "02:4c:02:36:e6:a7".parse().unwrap();
        for text in ["02:4c:02:36:e6:a7", "024c0236e6a7", "02-4c-02-36-e6-a7"] {
            let query = status_query(text).unwrap();
            assert_eq!(query, StatusQuery::ByMac { query: 0, mac }, "{text}");
        }
        for bad in ["", "lutron-1", "127.0.0.1", "+1", "0236e6a7x"] {
            let e = status_query(bad).unwrap_err().to_string();
            assert_eq!(e, format!("'{bad}' is not a serial number or 8-hex id"));
        }
        assert_eq!(serial_arg("0236e6a7").unwrap(), Serial(0x0236_e6a7));
        assert!(serial_arg("02:4c:02:36:e6:a7").is_err());
    }
}
