//! What a relayed event asks of the Place rules, decided without the
//! store: the rules' command for a Place operation, and a homeowner claim
//! with its proof checked (the processor registered to the Place, its
//! MAC, the proof signed by its CA and not spent). Pure, so that every
//! store backend calls the same checks.

use super::model::{AccountId, LinkSecret, ShareLink, Timestamp};
use super::proof::{self, ProofError};
use super::refusal::Refusal;
use super::rules::Command;
use super::store::ProcessorRecord;
use crate::proto::EventKind;

/// The rules' command for a Place operation a daemon relays on its
/// account's behalf (`secret`: the new share link's, chosen by the cloud).
pub(crate) fn place_command(
    account: &AccountId,
    kind: &EventKind,
    secret: Option<String>,
) -> Option<Command> {
    let by = account.clone();
    Some(match kind {
        EventKind::ShareAccess(e) => Command::ShareAccess {
            place: e.place.clone(),
            by,
            email: AccountId::new(&e.email),
            duration: e.duration,
        },
        EventKind::NewShareLink(e) => Command::NewShareLink {
            place: e.place.clone(),
            by,
            secret: LinkSecret(secret?),
            duration: e.duration,
        },
        EventKind::RedeemLink(e) => Command::RedeemLink {
            place: e.place.clone(),
            by,
            link: ShareLink {
                number: e.link.number,
                secret: LinkSecret(e.link.secret.clone()),
            },
        },
        EventKind::RevokeAccess(e) => Command::RevokeAccess {
            place: e.place.clone(),
            by,
            target: AccountId::new(&e.email),
            force: e.force,
        },
        _ => return None,
    })
}

/// The rules' Claim, and the proof's spent key (or why it failed).
pub(crate) type CheckedClaim = (Command, Result<Vec<u8>, ProofError>);

/// Turns a Claimed event into the rules' Claim, with the proof checked:
/// the processor must be registered (`record`; to the Place named, if one
/// is), the MAC must be its MAC, and the proof must be signed by its CA and
/// not `spent`. The proof's outcome comes back beside the command: its
/// spent key to remember if the claim is applied, or why it failed.
pub(crate) fn check_claim(
    record: Option<&ProcessorRecord>,
    account: &AccountId,
    claim: &crate::proto::Claimed,
    now: Timestamp,
    mut spent: impl FnMut(&[u8]) -> bool,
) -> Result<CheckedClaim, Refusal> {
    let Some(record) = record else {
        return Err(Refusal::UnknownProcessor {
            serial: claim.serial,
        });
    };
    if claim.place.as_ref().is_some_and(|p| *p != record.place) {
        return Err(Refusal::UnknownProcessor {
            serial: claim.serial,
        });
    }
    if record.mac != claim.mac.0 {
        return Err(Refusal::BadClaimProof {
            reason: format!(
                "processor {} has MAC {}, the claim says {}",
                claim.serial,
                record.mac(),
                claim.mac
            ),
        });
    }
    let proof = match proof::verify(&[&claim.proof], &record.ca_der, now) {
        Ok(facts) => {
            if spent(facts.spent_key()) {
                return Err(Refusal::BadClaimProof {
                    reason: "this proof was already used for a claim: press the button and pair \
                             again"
                        .into(),
                });
            }
            Ok(facts.spent_key().to_vec())
        }
        Err(e) => Err(e),
    };
    let press_verified = proof.is_ok();
    Ok((
        Command::Claim {
            place: record.place.clone(),
            by: account.clone(),
            processor: claim.serial,
            press_verified,
        },
        proof,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::place::PlaceId;
    use crate::processor::{Mac, Serial};

    fn record() -> ProcessorRecord {
        ProcessorRecord {
            place: PlaceId("lake".into()),
            serial: Serial(7),
            mac: [2, 0x4c, 0, 0, 0, 7],
            ca_der: Vec::new(),
        }
    }

    fn claimed(mac: [u8; 6], place: Option<&str>) -> crate::proto::Claimed {
        crate::proto::Claimed {
            place: place.map(|p| PlaceId(p.into())),
            serial: Serial(7),
            mac: Mac(mac),
            proof: b"not a certificate".to_vec(),
            at: Timestamp(0),
        }
    }

    #[test]
    fn a_claim_is_checked_against_the_processor_record_before_its_proof() {
        let who = AccountId::new("a@b.c");
        let never = |_: &[u8]| -> bool { panic!("no proof to look up") };
        let unknown = check_claim(
            None,
            &who,
            &claimed(record().mac, None),
            Timestamp(0),
            never,
        );
        assert!(
            matches!(unknown, Err(Refusal::UnknownProcessor { .. })),
            "{unknown:?}"
        );
        let other_place = check_claim(
            Some(&record()),
            &who,
            &claimed(record().mac, Some("elsewhere")),
            Timestamp(0),
            never,
        );
        assert!(matches!(other_place, Err(Refusal::UnknownProcessor { .. })));
        let wrong_mac = check_claim(
            Some(&record()),
            &who,
            &claimed([9; 6], None),
            Timestamp(0),
            never,
        );
        assert!(
            matches!(&wrong_mac, Err(Refusal::BadClaimProof { reason }) if reason.contains("has MAC")),
            "{wrong_mac:?}"
        );
        // A proof that does not verify is not looked up, and the claim goes
        // to the rules unverified (they refuse it with their own rule).
        let (command, proof) = check_claim(
            Some(&record()),
            &who,
            &claimed(record().mac, None),
            Timestamp(0),
            never,
        )
        .unwrap();
        assert!(proof.is_err());
        assert!(matches!(
            command,
            Command::Claim {
                press_verified: false,
                ..
            }
        ));
    }
}
