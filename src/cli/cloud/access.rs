//! `handoff cloud share`, `link …` and `access …`: the article's Share
//! Access, share links and Manage Access screens.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Actor;
use super::print::{print, refused, remaining_json, remaining_text, role_text, source_text};
use crate::cli::CliError;
use crate::cloud::share_link::new_share_link;
use crate::cloud::{
    AccessDuration, AccountId, CloudStore, Command, Event, PlaceId, Refusal, ShareLink, Timestamp,
    access_list,
};

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

fn parse_access_duration(s: &str) -> Result<AccessDuration, String> {
    AccessDuration::from_code(s)
        .ok_or_else(|| format!("'{s}' is not one of 1d, 7d, 30d, 1y, unlimited"))
}

/// `cloud share`.
pub(super) fn share(
    store: &CloudStore,
    share: ShareArgs,
    at: Timestamp,
) -> Result<ExitCode, CliError> {
    let to = AccountId::new(&share.to);
    let cmd = Command::ShareAccess {
        place: PlaceId(share.place.clone()),
        by: AccountId::new(&share.actor.account),
        email: to.clone(),
        duration: share.duration,
    };
    Ok(match store.execute(&cmd, at)? {
        Err(r) => refused(&r, share.actor.json),
        Ok(_) => print(
            share.actor.json,
            json!({"result": "applied", "place": share.place, "shared_with": to.as_str(), "for": share.duration.code()}),
            || {
                format!(
                    "shared Place {} with {to} for {}",
                    share.place, share.duration
                )
            },
        ),
    })
}

/// `cloud link new` and `cloud link redeem`.
pub(super) fn link(
    store: &CloudStore,
    cmd: LinkCommand,
    at: Timestamp,
) -> Result<ExitCode, CliError> {
    match cmd {
        LinkCommand::New {
            place,
            actor,
            duration,
        } => {
            let by = AccountId::new(&actor.account);
            Ok(
                match new_share_link(store, &PlaceId(place.clone()), &by, duration, at)? {
                    Err(r) => refused(&r, actor.json),
                    Ok(link) => {
                        let link = link.to_string();
                        print(
                            actor.json,
                            json!({"result": "applied", "place": place, "link": link, "for": duration.code()}),
                            || link.clone(),
                        )
                    }
                },
            )
        }
        LinkCommand::Redeem { place, link, actor } => {
            let by = AccountId::new(&actor.account);
            let cmd = Command::RedeemLink {
                place: PlaceId(place.clone()),
                by: by.clone(),
                link: link.parse::<ShareLink>()?,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(_) => print(
                    actor.json,
                    json!({"result": "applied", "place": place, "account": by.as_str()}),
                    || format!("{by} now has access to Place {place}"),
                ),
            })
        }
    }
}

/// `cloud access list` and `cloud access revoke`.
pub(super) fn access(
    store: &CloudStore,
    cmd: AccessCommand,
    at: Timestamp,
) -> Result<ExitCode, CliError> {
    match cmd {
        AccessCommand::List { place, actor } => {
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
        AccessCommand::Revoke {
            place,
            email,
            actor,
            force,
        } => {
            let target = AccountId::new(&email);
            let cmd = Command::RevokeAccess {
                place: PlaceId(place.clone()),
                by: AccountId::new(&actor.account),
                target: target.clone(),
                force,
            };
            Ok(match store.execute(&cmd, at)? {
                Err(r) => refused(&r, actor.json),
                Ok(events) => {
                    let deleted = events
                        .iter()
                        .any(|e| matches!(e, Event::PlaceDeleted { .. }));
                    print(
                        actor.json,
                        json!({"result": "applied", "place": place, "revoked": target.as_str(), "place_deleted": deleted}),
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
    }
}
