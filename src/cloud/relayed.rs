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
use crate::proto::{EventId, EventKind};

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

/// Who hands the cloud a claim, and so what proves the sender holds the
/// proof certificate's key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Possession<'a> {
    /// A daemon relayed it as this event: the event must carry a signature
    /// by the certificate's key over [`crate::proto::possession::signed_bytes`]
    /// of this id, the daemon's account, the serial and the certificate.
    Relayed(&'a EventId),
    /// The operator, on the cloud's own host (`handoff cloud claim`): it
    /// could write the store directly, so nothing more is asked of it.
    Operator,
}

/// Turns a Claimed event into the rules' Claim, with the proof checked:
/// the processor must be registered (`record`; to the Place named, if one
/// is), the MAC must be its MAC, the proof must be signed by its CA, its
/// sender must hold its key (`possession`; refused as
/// [`Refusal::ProofWithoutKey`]) and it must not be `spent`. The proof's outcome comes back beside the command: its
/// spent key to remember if the claim is applied, or why it failed.
pub(crate) fn check_claim(
    record: Option<&ProcessorRecord>,
    account: &AccountId,
    claim: &crate::proto::Claimed,
    possession: Possession<'_>,
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
            if let Possession::Relayed(id) = possession {
                let signed = crate::proto::possession::signed_bytes(
                    id,
                    account.as_str(),
                    claim.serial,
                    &claim.proof,
                );
                proof::verify_possession(&claim.proof, &signed, claim.possession.as_deref())
                    .map_err(|reason| Refusal::ProofWithoutKey { reason })?;
            }
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
            possession: None,
            model: None,
            firmware: None,
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
            Possession::Operator,
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
            Possession::Operator,
            Timestamp(0),
            never,
        );
        assert!(matches!(other_place, Err(Refusal::UnknownProcessor { .. })));
        let wrong_mac = check_claim(
            Some(&record()),
            &who,
            &claimed([9; 6], None),
            Possession::Operator,
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
            Possession::Operator,
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

    /// A processor CA, its record, and a claim certificate with its key.
    fn real_claim() -> (ProcessorRecord, crate::identity::PrivateKey, Vec<u8>) {
        use crate::identity::{CertificateAuthority, KeyAlgorithm, PrivateKey, sign_client_csr};
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mac = Mac(record().mac);
        let ca = CertificateAuthority::processor_ca(mac).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = sign_client_csr(&key.csr_pem("handoff").unwrap(), &ca).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec();
        let record = ProcessorRecord {
            ca_der: ca.certificate_der().to_vec(),
            ..record()
        };
        (record, key, der)
    }

    /// Issue 15, attack 2: a claim certificate copied without its key
    /// (from an export, a backup, a TLS 1.2 handshake on the LAN) claims
    /// nothing, nor does a signature made for another event or account.
    #[test]
    fn claim_proof_needs_the_key_of_its_certificate() {
        use crate::proto::possession::signed_bytes;
        let (record, key, der) = real_claim();
        let who = AccountId::new("Owner@Example.com");
        let id = EventId {
            daemon: "d1".into(),
            seq: 5,
        };
        let now = Timestamp(crate::place::now().0);
        let unspent = |_: &[u8]| false;
        let with = |possession: Option<Vec<u8>>| crate::proto::Claimed {
            proof: der.clone(),
            possession,
            ..claimed(record.mac, None)
        };
        let check = |claim: &crate::proto::Claimed| {
            check_claim(
                Some(&record),
                &who,
                claim,
                Possession::Relayed(&id),
                now,
                unspent,
            )
        };
        let refused = |result: Result<CheckedClaim, Refusal>, what: &str| match result {
            Err(r @ Refusal::ProofWithoutKey { .. }) => {
                assert_eq!(r.rule(), "claim_proof_needs_the_key_of_its_certificate");
            }
            other => panic!("{what}: {other:?}"),
        };
        let serial = claimed(record.mac, None).serial;
        let sign = |k: &crate::identity::PrivateKey, id: &EventId, account: &str| {
            Some(k.sign(&signed_bytes(id, account, serial, &der)).unwrap())
        };

        // The certificate alone.
        refused(check(&with(None)), "no signature");
        // Stolen certificate, signed with the thief's own key.
        let thief = crate::identity::PrivateKey::generate(crate::identity::KeyAlgorithm::EcdsaP256)
            .unwrap();
        refused(check(&with(sign(&thief, &id, who.as_str()))), "another key");
        // The right key, but over another event id: a replay.
        let earlier = EventId {
            seq: 4,
            ..id.clone()
        };
        refused(
            check(&with(sign(&key, &earlier, who.as_str()))),
            "another event id",
        );
        // The right key, but for another account.
        refused(
            check(&with(sign(&key, &id, "thief@example.com"))),
            "another account",
        );
        // Garbage where the signature goes.
        refused(check(&with(Some(vec![0x30, 0x02, 0x01]))), "garbage");

        // The honest claim: the account as the certificate names it, in
        // any case, signed for this event.
        let (command, proof) = check(&with(sign(&key, &id, "owner@example.com"))).unwrap();
        assert!(proof.is_ok(), "{proof:?}");
        assert!(matches!(
            command,
            Command::Claim {
                press_verified: true,
                ..
            }
        ));
        // The operator on the cloud's host is not asked for a signature.
        let operator = check_claim(
            Some(&record),
            &who,
            &with(None),
            Possession::Operator,
            now,
            unspent,
        );
        assert!(operator.is_ok(), "{operator:?}");
    }
}
