//! `handoff cloud …`: the reference cloud access layer — its server, the
//! enrolment of daemons, and the operator's Place commands.
//!
//! The operator commands open the same store file as the server (redb's
//! multi-writer mode), so they work whether `cloud serve` runs or not.
//! Each acts as an account (`--as EMAIL`), the way the app acts for the
//! signed-in user, and prints one line for people or, with `--json`, one
//! JSON object.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CliError, shutdown_signal};
use crate::cloud::authority::CloudAuthority;
use crate::cloud::server::{RunningServer, ServerOptions};
use crate::cloud::store::{DaemonRecord, ProcessorRecord};
use crate::cloud::{
    AccessDuration, AccountId, CloudError, CloudStore, Command, GrantSource, LinkSecret, Place,
    PlaceId, ProjectKey, Refusal, Remaining, Role, ShareLink, access_list, now, places_for,
};
use crate::processor::{Mac, Serial};
use crate::proto::{Claimed, StatusQuery};

#[derive(Args, Debug)]
pub struct CloudArgs {
    /// The cloud's data directory (store and CA) [default: STATE_DIR/cloud]
    #[arg(long, value_name = "DIR", global = true, env = "HANDOFF_CLOUD_DATA")]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CloudCommand,
}

#[derive(Subcommand, Debug)]
pub enum CloudCommand {
    /// Serve the relay protocol (TLS 1.3, enrolled daemons only)
    Serve(ServeArgs),
    /// Issue a daemon identity bundle (key, certificate, cloud CA)
    Enroll(EnrollArgs),
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

#[derive(Args, Debug)]
pub struct ProcessorFlags {
    /// The processor's serial number (decimal, or its 8-hex id)
    #[arg(long, requires_all = ["mac", "processor_ca"])]
    pub serial: Option<String>,
    /// The processor's MAC address
    #[arg(long, requires_all = ["serial", "processor_ca"])]
    pub mac: Option<Mac>,
    /// PEM of the processor's CA (the RootCertificate it signs claims with)
    #[arg(long, value_name = "FILE", requires_all = ["serial", "mac"])]
    pub processor_ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlaceCommand {
    /// Start a project in the cloud; writes its project file
    Create {
        #[command(flatten)]
        actor: Actor,
        /// The project file to write (it holds the Place's key; mode 0600)
        #[arg(long, value_name = "FILE")]
        project_file: PathBuf,
        /// The Place id [default: a fresh random one]
        #[arg(long)]
        id: Option<String>,
        /// Enable remote services now (they can be enabled later, never disabled)
        #[arg(long)]
        remote_services: bool,
        #[command(flatten)]
        processor: ProcessorFlags,
    },
    /// Transfer the project to a processor: registers its CA for claims
    Activate {
        #[arg(long, value_name = "FILE")]
        project_file: PathBuf,
        #[command(flatten)]
        processor: ProcessorFlags,
        /// JSON on stdout: the result as one object
        #[arg(long)]
        json: bool,
    },
    /// Browse Local: open the project file (grants access when green)
    Open {
        #[command(flatten)]
        actor: Actor,
        #[arg(long, value_name = "FILE")]
        project_file: PathBuf,
    },
    /// Everything the cloud holds about one Place (operator view)
    Show {
        place: String,
        /// JSON on stdout: the Place as the cloud holds it
        #[arg(long)]
        json: bool,
    },
    /// Every Place, or with --as the account's Places list
    List {
        #[arg(long = "as", value_name = "EMAIL")]
        account: Option<String>,
        /// JSON on stdout: an array of Places
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ShareArgs {
    pub place: String,
    #[command(flatten)]
    pub actor: Actor,
    /// The myLutron email to share with
    #[arg(long)]
    pub to: String,
    /// For how long: 1d, 7d, 30d, 1y or unlimited
    #[arg(long = "for", value_parser = parse_access_duration, default_value = "7d")]
    pub duration: AccessDuration,
}

#[derive(Subcommand, Debug)]
pub enum LinkCommand {
    /// Generate the Place's share link (disables the old one)
    New {
        place: String,
        #[command(flatten)]
        actor: Actor,
        #[arg(long = "for", value_parser = parse_access_duration, default_value = "7d")]
        duration: AccessDuration,
    },
    /// Redeem a share link (NUMBER:SECRET, as `link new` prints it)
    Redeem {
        place: String,
        link: String,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccessCommand {
    /// Who has access and for how long
    List {
        place: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Revoke an account's access (never the homeowner's)
    Revoke {
        place: String,
        /// The account to revoke
        email: String,
        #[command(flatten)]
        actor: Actor,
        /// Revoke the last access even though the Place is then deleted
        #[arg(long)]
        force: bool,
    },
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

fn parse_access_duration(s: &str) -> Result<AccessDuration, String> {
    AccessDuration::from_code(s)
        .ok_or_else(|| format!("'{s}' is not one of 1d, 7d, 30d, 1y, unlimited"))
}

fn parse_serial(s: &str) -> Result<Serial, CliError> {
    s.parse::<Serial>()
        .ok()
        .or_else(|| Serial::from_id(s))
        .ok_or_else(|| CliError::Failed(format!("'{s}' is not a serial number or 8-hex id")))
}

/// The project file: what opening a project in the designer stands for.
#[derive(Serialize, Deserialize)]
struct ProjectFile {
    place: PlaceId,
    project_key: String,
}

fn read_project_file(path: &Path) -> Result<(PlaceId, ProjectKey), CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(format!(
        "reading the project file {}",
        path.display()
    )))?;
    let file: ProjectFile = serde_json::from_str(&text).map_err(|e| {
        CliError::Failed(format!(
            "{} is not a handoff project file: {e}",
            path.display()
        ))
    })?;
    Ok((file.place, ProjectKey(file.project_key)))
}

impl From<CloudError> for CliError {
    fn from(e: CloudError) -> CliError {
        CliError::Failed(e.to_string())
    }
}

/// A refusal is the vendor's rule speaking: its own exit code (3), the
/// rule, and what to do.
fn refused(refusal: &Refusal, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"result": "refused", "rule": refusal.rule(), "why": refusal.to_string(), "guidance": refusal.guidance()})
        );
    }
    eprintln!("refused: {refusal}");
    eprintln!("  (rule: {})", refusal.rule());
    ExitCode::from(3)
}

fn print(json: bool, value: Value, human: impl FnOnce() -> String) -> ExitCode {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
    ExitCode::SUCCESS
}

/// Time left as Manage Access shows it: `29d 23h`, `5h 10m`, `40s`.
fn remaining_text(r: Remaining) -> String {
    let Remaining::Seconds(s) = r else {
        return "unlimited".into();
    };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn remaining_json(r: Remaining) -> Value {
    match r {
        Remaining::Unlimited => Value::Null,
        Remaining::Seconds(s) => json!(s),
    }
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Homeowner => "homeowner",
        Role::ProInstaller => "pro installer",
    }
}

fn source_text(source: &GrantSource) -> String {
    match source {
        GrantSource::Creator => "created the Place".into(),
        GrantSource::ProjectFile => "opened the project file".into(),
        GrantSource::Claim => "claimed with the button".into(),
        GrantSource::Share { by } => format!("shared by {by}"),
        GrantSource::Link { by } => format!("link from {by}"),
    }
}

fn place_json(place: &Place, processors: &[ProcessorRecord], at: crate::cloud::Timestamp) -> Value {
    json!({
        "place": place.id.0,
        "remote_services": place.remote_services,
        "homeowner": place.homeowner().map(|a| a.as_str()),
        "share_link": place.share_link.as_ref().map(|l| json!({"number": l.link.number, "by": l.by.as_str(), "for": l.duration.code()})),
        "processors": processors.iter().filter(|p| p.place == place.id).map(|p| json!({"serial": p.serial.0, "id": p.serial.id(), "mac": p.mac().to_string()})).collect::<Vec<_>>(),
        "access": place.grants.iter().filter(|(_, g)| g.is_live(at)).map(|(a, g)| json!({
            "account": a.as_str(), "role": role_text(g.role), "remaining_s": remaining_json(g.remaining(at)), "source": source_text(&g.source)
        })).collect::<Vec<_>>(),
    })
}

/// Runs `handoff cloud …`.
///
/// # Errors
/// [`CliError`] for anything but a rule's refusal (exit code 3).
pub async fn run(args: CloudArgs, state_dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let data = match args.data.or_else(|| state_dir.map(|s| s.join("cloud"))) {
        Some(data) => data,
        None => {
            return Err(CliError::Failed(
                "no data directory: pass --data DIR (or --state-dir)".into(),
            ));
        }
    };
    match args.command {
        CloudCommand::Serve(serve) => return run_serve(&data, serve).await,
        CloudCommand::Enroll(enroll) => return run_enroll(&data, enroll),
        _ => {}
    }
    let store = CloudStore::open(&data)?;
    let at = now();
    match args.command {
        CloudCommand::Serve(_) | CloudCommand::Enroll(_) => unreachable!("handled above"),
        CloudCommand::Place(cmd) => place(&store, cmd, at),
        CloudCommand::Share(share) => {
            let cmd = Command::ShareAccess {
                place: PlaceId(share.place.clone()),
                by: AccountId::new(&share.actor.account),
                email: AccountId::new(&share.to),
                duration: share.duration,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, share.actor.json),
                Ok(_) => print(
                    share.actor.json,
                    json!({"result": "applied", "place": share.place, "shared_with": AccountId::new(&share.to).as_str(), "for": share.duration.code()}),
                    || {
                        format!(
                            "shared Place {} with {} for {}",
                            share.place,
                            AccountId::new(&share.to),
                            share.duration
                        )
                    },
                ),
            })
        }
        CloudCommand::Link(LinkCommand::New {
            place,
            actor,
            duration,
        }) => {
            let secret = crate::cloud::store::fresh_secret()?;
            let cmd = Command::NewShareLink {
                place: PlaceId(place.clone()),
                by: AccountId::new(&actor.account),
                secret: LinkSecret(secret.clone()),
                duration,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(events) => {
                    let number = events
                        .iter()
                        .find_map(|e| match e {
                            crate::cloud::Event::ShareLinkCreated { number, .. } => Some(*number),
                            _ => None,
                        })
                        .unwrap_or_default();
                    let link = format!("{number}:{secret}");
                    print(
                        actor.json,
                        json!({"result": "applied", "place": place, "link": link, "for": duration.code()}),
                        || link.clone(),
                    )
                }
            })
        }
        CloudCommand::Link(LinkCommand::Redeem { place, link, actor }) => {
            let (number, secret) = link
                .split_once(':')
                .and_then(|(n, s)| Some((n.parse::<u64>().ok()?, s)))
                .ok_or_else(|| {
                    CliError::Failed(format!(
                        "'{link}' is not a share link: it looks like NUMBER:SECRET"
                    ))
                })?;
            let cmd = Command::RedeemLink {
                place: PlaceId(place.clone()),
                by: AccountId::new(&actor.account),
                link: ShareLink {
                    number,
                    secret: LinkSecret(secret.to_owned()),
                },
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(_) => print(
                    actor.json,
                    json!({"result": "applied", "place": place, "account": AccountId::new(&actor.account).as_str()}),
                    || {
                        format!(
                            "{} now has access to Place {place}",
                            AccountId::new(&actor.account)
                        )
                    },
                ),
            })
        }
        CloudCommand::Access(AccessCommand::List { place, actor }) => {
            let id = PlaceId(place.clone());
            let Some(p) = store.place(&id)? else {
                return Ok(refused(&Refusal::NoSuchPlace { place: id }, actor.json));
            };
            Ok(match access_list(&p, &AccountId::new(&actor.account), at) {
                Err(r) => refused(&r, actor.json),
                Ok(entries) => print(
                    actor.json,
                    json!({"place": place, "access": entries.iter().map(|e| json!({
                        "account": e.account.as_str(), "role": role_text(e.role),
                        "remaining_s": remaining_json(e.remaining), "source": source_text(&e.source)
                    })).collect::<Vec<_>>()}),
                    || {
                        entries
                            .iter()
                            .map(|e| {
                                format!(
                                    "{}  {}  {}  ({})",
                                    e.account,
                                    role_text(e.role),
                                    remaining_text(e.remaining),
                                    source_text(&e.source)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    },
                ),
            })
        }
        CloudCommand::Access(AccessCommand::Revoke {
            place,
            email,
            actor,
            force,
        }) => {
            let cmd = Command::RevokeAccess {
                place: PlaceId(place.clone()),
                by: AccountId::new(&actor.account),
                target: AccountId::new(&email),
                force,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(events) => {
                    let deleted = events
                        .iter()
                        .any(|e| matches!(e, crate::cloud::Event::PlaceDeleted { .. }));
                    print(
                        actor.json,
                        json!({"result": "applied", "place": place, "revoked": AccountId::new(&email).as_str(), "place_deleted": deleted}),
                        || {
                            if deleted {
                                format!(
                                    "revoked {email}; Place {place} had no one left and is deleted"
                                )
                            } else {
                                format!("revoked {email}'s access to Place {place}")
                            }
                        },
                    )
                }
            })
        }
        CloudCommand::RemoteServices(RemoteServicesCommand::Enable { project_file, json }) => {
            let (place, key) = read_project_file(&project_file)?;
            let cmd = Command::SetRemoteServices {
                place: place.clone(),
                key,
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
            let query = match status.processor.parse::<Mac>() {
                Ok(mac) if status.processor.len() >= 12 => StatusQuery::ByMac { query: 0, mac },
                _ => StatusQuery::BySerial {
                    query: 0,
                    serial: parse_serial(&status.processor)?,
                },
            };
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
            let pem = std::fs::read(&claim.proof).map_err(CliError::io(format!(
                "reading the proof {}",
                claim.proof.display()
            )))?;
            let der = CertificateDer::from_pem_slice(&pem).map_err(|e| {
                CliError::Failed(format!(
                    "{} holds no PEM certificate: {e}",
                    claim.proof.display()
                ))
            })?;
            let event = Claimed {
                place: None,
                serial: parse_serial(&claim.serial)?,
                mac: claim.mac,
                proof: der.to_vec(),
                at,
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

fn processor_record(
    place: &PlaceId,
    flags: &ProcessorFlags,
) -> Result<Option<ProcessorRecord>, CliError> {
    let (Some(serial), Some(mac), Some(ca)) = (&flags.serial, flags.mac, &flags.processor_ca)
    else {
        return Ok(None);
    };
    let pem = std::fs::read(ca).map_err(CliError::io(format!(
        "reading the processor CA {}",
        ca.display()
    )))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| CliError::Failed(format!("{} holds no PEM certificate: {e}", ca.display())))?;
    Ok(Some(ProcessorRecord {
        place: place.clone(),
        serial: parse_serial(serial)?,
        mac: mac.0,
        ca_der: der.to_vec(),
    }))
}

fn place(
    store: &CloudStore,
    cmd: PlaceCommand,
    at: crate::cloud::Timestamp,
) -> Result<ExitCode, CliError> {
    match cmd {
        PlaceCommand::Create {
            actor,
            project_file,
            id,
            remote_services,
            processor,
        } => {
            if project_file.exists() {
                return Err(CliError::Failed(format!(
                    "{} exists: a project file is written once (pick another path)",
                    project_file.display()
                )));
            }
            let place = PlaceId(match id {
                Some(id) => id,
                None => format!("place-{}", &crate::cloud::store::fresh_secret()?[..12]),
            });
            let key = crate::cloud::store::fresh_secret()?;
            let record = processor_record(&place, &processor)?;
            let cmd = Command::CreatePlace {
                place: place.clone(),
                by: AccountId::new(&actor.account),
                key: ProjectKey(key.clone()),
                remote_services,
            };
            if let Err(r) = store.create_place(&cmd, record, at)? {
                return Ok(refused(&r, actor.json));
            }
            let file = ProjectFile {
                place: place.clone(),
                project_key: key,
            };
            let mut text = serde_json::to_vec_pretty(&file)
                .map_err(|e| CliError::Failed(format!("cannot encode the project file: {e}")))?;
            text.push(b'\n');
            write_private_file(&project_file, &text)?;
            Ok(print(
                actor.json,
                json!({"result": "applied", "place": place.0, "remote_services": remote_services, "project_file": project_file}),
                || place.0.clone(),
            ))
        }
        PlaceCommand::Activate {
            project_file,
            processor,
            json,
        } => {
            let (place, key) = read_project_file(&project_file)?;
            let Some(record) = processor_record(&place, &processor)? else {
                return Err(CliError::Failed(
                    "name the processor: --serial, --mac and --processor-ca".into(),
                ));
            };
            let serial = record.serial;
            Ok(match store.activate_processor(record, &key, at)? {
                Err(r) => refused(&r, json),
                Ok(_) => print(
                    json,
                    json!({"result": "applied", "place": place.0, "serial": serial.0}),
                    || format!("processor {serial} is activated in Place {place}"),
                ),
            })
        }
        PlaceCommand::Open {
            actor,
            project_file,
        } => {
            let (place, key) = read_project_file(&project_file)?;
            let cmd = Command::PresentProjectKey {
                place: place.clone(),
                by: AccountId::new(&actor.account),
                key,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(_) => print(
                    actor.json,
                    json!({"result": "applied", "place": place.0, "status": "green"}),
                    || {
                        format!(
                            "green: {} has access to Place {place}",
                            AccountId::new(&actor.account)
                        )
                    },
                ),
            })
        }
        PlaceCommand::Show { place, json } => {
            let id = PlaceId(place);
            let Some(p) = store.place(&id)? else {
                return Ok(refused(&Refusal::NoSuchPlace { place: id }, json));
            };
            let processors = store.processors()?;
            let value = place_json(&p, &processors, at);
            Ok(print(json, value.clone(), || {
                serde_json::to_string_pretty(&value).unwrap_or_default()
            }))
        }
        PlaceCommand::List { account, json } => {
            let places = store.places()?;
            match account {
                Some(account) => {
                    let account = AccountId::new(&account);
                    let list = places_for(&places, &account, at);
                    Ok(print(
                        json,
                        json!(list.iter().map(|p| json!({"place": p.place.0, "role": role_text(p.role), "remaining_s": remaining_json(p.remaining)})).collect::<Vec<_>>()),
                        || {
                            list.iter()
                                .map(|p| format!("{}  {}  {}", p.place, role_text(p.role), remaining_text(p.remaining)))
                                .collect::<Vec<_>>()
                                .join("\n")
                        },
                    ))
                }
                None => {
                    let processors = store.processors()?;
                    let all: Vec<Value> = places
                        .iter()
                        .map(|p| place_json(p, &processors, at))
                        .collect();
                    Ok(print(json, json!(all), || {
                        places
                            .iter()
                            .map(|p| {
                                format!(
                                    "{}  remote services {}  homeowner {}",
                                    p.id,
                                    if p.remote_services { "on" } else { "off" },
                                    p.homeowner().map_or("-", |a| a.as_str())
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    }))
                }
            }
        }
    }
}

/// Writes a file holding a secret: 0600, whole or not at all.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CliError::Failed(format!("{} is not a file path", path.display())))?;
    crate::identity::files::write_private(dir, name, contents)
        .map_err(|e| CliError::Failed(e.to_string()))
}

fn run_enroll(data: &Path, args: EnrollArgs) -> Result<ExitCode, CliError> {
    if args.name.trim().is_empty() || args.name.contains(['/', '\0']) {
        return Err(CliError::Failed(format!(
            "'{}' cannot be a site name: use letters, digits, spaces or dashes",
            args.name
        )));
    }
    if !args.account.contains('@') {
        return Err(CliError::Failed(format!(
            "'{}' is not an email address (the myLutron account)",
            args.account
        )));
    }
    let store = CloudStore::open(data)?;
    let authority = CloudAuthority::load_or_create(data).map_err(CloudError::from)?;
    let out = args
        .out
        .unwrap_or_else(|| data.join("daemons").join(&args.name));
    let account = AccountId::new(&args.account);
    let bundle = authority
        .enroll(&args.name, &account, &out)
        .map_err(CloudError::from)?;
    store.add_daemon(&DaemonRecord {
        name: args.name.clone(),
        account: account.clone(),
        enrolled_at: now(),
    })?;
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

async fn run_serve(data: &Path, args: ServeArgs) -> Result<ExitCode, CliError> {
    let store = Arc::new(CloudStore::open(data)?);
    let options = ServerOptions {
        max_connections: args.max_connections,
        ..ServerOptions::default()
    };
    let server = RunningServer::start(data, store.clone(), args.listen, options).await?;
    eprintln!(
        "handoff cloud: serving the relay on {} (TLS 1.3, enrolled daemons only); data in {}; \
         Ctrl-C to stop",
        server.local_addr,
        store.path().display()
    );
    shutdown_signal().await;
    server.stop().await;
    eprintln!("handoff cloud: stopped");
    Ok(ExitCode::SUCCESS)
}
