//! `handoff cloud place …`: create, activate, open, show and list Places.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::print::{place_json, print, refused, remaining_text, role_text};
use super::{Actor, serial_arg};
use crate::cli::CliError;
use crate::cloud::certificate_file::read_certificate;
use crate::cloud::store::ProcessorRecord;
use crate::cloud::{
    AccountId, CloudStore, Command, PlaceId, Places, ProjectFile, Refusal, Timestamp,
    mint_place_id, places_for,
};
use crate::processor::Mac;

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

/// The processor `flags` name for `place`, when they name one.
fn processor_record(
    place: &PlaceId,
    flags: &ProcessorFlags,
) -> Result<Option<ProcessorRecord>, CliError> {
    let (Some(serial), Some(mac), Some(ca)) = (&flags.serial, flags.mac, &flags.processor_ca)
    else {
        return Ok(None);
    };
    let ca_der = read_certificate(ca, "the processor CA")?;
    Ok(Some(ProcessorRecord {
        place: place.clone(),
        serial: serial_arg(serial)?,
        mac: mac.0,
        ca_der,
    }))
}

/// `cloud place …`.
pub(super) fn run(
    store: &CloudStore,
    cmd: PlaceCommand,
    at: Timestamp,
) -> Result<ExitCode, CliError> {
    match cmd {
        PlaceCommand::Create {
            actor,
            project_file,
            id,
            remote_services,
            processor,
        } => {
            // Checked first, as `create` does again, so that an existing
            // file is what is reported even when the processor is wrong too.
            ProjectFile::ensure_absent(&project_file)?;
            let place = match id {
                Some(id) => PlaceId(id),
                None => mint_place_id()?,
            };
            let record = processor_record(&place, &processor)?;
            let by = AccountId::new(&actor.account);
            Ok(
                match ProjectFile::create(
                    store,
                    &project_file,
                    place,
                    &by,
                    remote_services,
                    record,
                    at,
                )? {
                    Err(r) => refused(&r, actor.json),
                    Ok(file) => print(
                        actor.json,
                        json!({"result": "applied", "place": file.place.0, "remote_services": remote_services, "project_file": project_file}),
                        || file.place.0.clone(),
                    ),
                },
            )
        }
        PlaceCommand::Activate {
            project_file,
            processor,
            json,
        } => {
            let file = ProjectFile::read(&project_file)?;
            let Some(record) = processor_record(&file.place, &processor)? else {
                return Err(CliError::Failed(
                    "name the processor: --serial, --mac and --processor-ca".into(),
                ));
            };
            let serial = record.serial;
            let place = file.place;
            Ok(
                match store.activate_processor(record, &file.project_key, at)? {
                    Err(r) => refused(&r, json),
                    Ok(_) => print(
                        json,
                        json!({"result": "applied", "place": place.0, "serial": serial.0}),
                        || format!("processor {serial} is activated in Place {place}"),
                    ),
                },
            )
        }
        PlaceCommand::Open {
            actor,
            project_file,
        } => {
            let ProjectFile { place, project_key } = ProjectFile::read(&project_file)?;
            let by = AccountId::new(&actor.account);
            let cmd = Command::PresentProjectKey {
                place: place.clone(),
                by: by.clone(),
                key: project_key,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(_) => print(
                    actor.json,
                    json!({"result": "applied", "place": place.0, "status": "green"}),
                    || format!("green: {by} has access to Place {place}"),
                ),
            })
        }
        PlaceCommand::Show { place, json } => {
            let id = PlaceId(place);
            let Some(p) = store.place(&id)? else {
                return Ok(refused(&Refusal::NoSuchPlace { place: id }, json));
            };
            let processors = store.processors()?;
            let reports = store.processor_reports(&serials(&processors))?;
            let value = place_json(&p, &processors, &reports, at);
            Ok(print(json, value.clone(), || {
                serde_json::to_string_pretty(&value).unwrap_or_default()
            }))
        }
        PlaceCommand::List { account, json } => {
            if let Some(account) = account {
                // Only the Places the account has a grant in are read.
                let account = AccountId::new(&account);
                let (reached, _) = store.account_places(&account, at, 0, usize::MAX)?;
                let list = places_for(&Places::from_places(reached), &account, at);
                return Ok(print(
                    json,
                    json!(list.iter().map(|p| json!({"place": p.place.0, "role": role_text(p.role), "remaining_s": super::print::remaining_json(p.remaining)})).collect::<Vec<_>>()),
                    || {
                        list.iter()
                            .map(|p| format!("{}  {}  {}", p.place, role_text(p.role), remaining_text(p.remaining)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    },
                ));
            }
            let places = store.places()?;
            let processors = store.processors()?;
            let reports = store.processor_reports(&serials(&processors))?;
            let all: Vec<Value> = places
                .iter()
                .map(|p| place_json(p, &processors, &reports, at))
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

fn serials(processors: &[crate::cloud::store::ProcessorRecord]) -> Vec<crate::processor::Serial> {
    processors.iter().map(|p| p.serial).collect()
}
