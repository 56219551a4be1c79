//! Why a Place operation was refused, and what the integrator does next.
//!
//! A refusal is not a failure of handoff: it is the vendor's rule speaking.
//! So every variant names the rule (the same words as the test that pins
//! it, see [`super::rules`]) and carries the vendor's guidance, which the
//! CLI prints as the one line after the error.

use super::model::{AccessDuration, AccountId, PlaceId, Remaining};
pub(crate) use crate::place::{ASK_HOMEOWNER, NO_REMOTE_SERVICES};
use crate::processor::Serial;

const ASK_FOR_SHARE: &str = "ask the homeowner or a pro who has access to share the Place with your myLutron email, or open the original project file";

const UNRECOVERABLE: &str = "you are the only one with access and no processor is activated: revoking yourself makes the project unrecoverable unless someone holds the share link or an offline project file; share the Place with another account first, or force it to delete the Place";

/// A Place operation the rules refuse. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("no Place {place} in the cloud; {}", self.guidance())]
    NoSuchPlace { place: PlaceId },
    #[error("Place {place} already exists")]
    PlaceExists { place: PlaceId },
    #[error("Place {place} has remote services disabled; {}", self.guidance())]
    RemoteServicesDisabled { place: PlaceId },
    #[error("remote services cannot be disabled once enabled")]
    RemoteServicesCannotBeDisabled,
    #[error("that is not this Place's project file; {}", self.guidance())]
    WrongProjectKey,
    /// Remote services asked for without the project key by an account
    /// that did not create the Place.
    #[error("{by} did not create this Place, so cannot enable its remote services without the project file; {}", self.guidance())]
    NotTheCreator { by: AccountId },
    #[error("{account} has no access to this Place; {}", self.guidance())]
    NoAccess { account: AccountId },
    #[error("this system already has a homeowner; {}", self.guidance())]
    HomeownerEstablished,
    #[error("this system already has a homeowner — ask them for Remote Assistance from Installer; {}", self.guidance())]
    AlreadyHasHomeowner,
    #[error("cannot share for {requested}: {by} has only {} of access left; {}", super::views::remaining_text(*.remaining), self.guidance())]
    ShareExceedsRemainingAccess {
        by: AccountId,
        requested: AccessDuration,
        remaining: Remaining,
    },
    #[error("{target} is this Place's homeowner; {}", self.guidance())]
    TargetIsHomeowner { target: AccountId },
    /// A share to text that is not an email address (`pro@example`):
    /// access for nobody, and in a takeover the integrator locked out.
    #[error("'{target}' is not an email address ({why}); {}", self.guidance())]
    NotAnEmail {
        target: AccountId,
        why: &'static str,
    },
    #[error("this share link is no longer active; {}", self.guidance())]
    LinkNotActive,
    #[error("{target} has no access to revoke")]
    NothingToRevoke { target: AccountId },
    #[error("refusing to revoke the last access; {}", self.guidance())]
    LastAccessWithoutProcessor,
    #[error("{by} is not this Place's homeowner; {}", self.guidance())]
    NotHomeowner { by: AccountId },
    #[error("this Place has no homeowner to remove")]
    NoHomeowner,
    #[error("the button press was not verified; {}", self.guidance())]
    UnverifiedButtonPress,
    #[error("processor {serial} is not activated in this Place; {}", self.guidance())]
    UnknownProcessor { serial: Serial },
    /// The claim's proof (the certificate the processor signed after the
    /// press) did not check out against the processor CA the cloud knows.
    #[error("the claim's proof of the button press was refused: {reason}; {}", self.guidance())]
    BadClaimProof { reason: String },
    /// The proof chains to the processor CA, but its sender did not show
    /// it holds the certificate's key: a copy (from an export, a backup,
    /// a TLS 1.2 handshake on the LAN), or a signature made for another
    /// event or account.
    #[error("the claim's sender did not prove it holds the proof's key: {reason}; {}", self.guidance())]
    ProofWithoutKey { reason: String },
}

impl Refusal {
    /// The rule that refused, in the words of the test that pins it.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::NoSuchPlace { .. } => "place_operations_need_an_existing_place",
            Refusal::PlaceExists { .. } => "a_place_is_created_once",
            Refusal::RemoteServicesDisabled { .. } => "no_place_operation_without_remote_services",
            Refusal::RemoteServicesCannotBeDisabled => "remote_services_cannot_be_disabled",
            Refusal::WrongProjectKey => "project_key_must_match_the_place",
            Refusal::NotTheCreator { .. } => "remote_services_can_be_enabled_by_the_creator",
            Refusal::NoAccess { .. } => "only_accounts_with_access_manage_a_place",
            Refusal::HomeownerEstablished => "project_key_reports_yellow_once_a_homeowner_exists",
            Refusal::AlreadyHasHomeowner => "second_claim_refused_with_remote_assistance_guidance",
            Refusal::ShareExceedsRemainingAccess { .. } => {
                "share_cannot_exceed_sharers_remaining_access"
            }
            Refusal::TargetIsHomeowner { .. } => "homeowner_cannot_be_revoked_by_others",
            Refusal::NotAnEmail { .. } => "share_goes_to_an_email_address",
            Refusal::LinkNotActive => "new_share_link_disables_the_old_one",
            Refusal::NothingToRevoke { .. } => "revoke_removes_access",
            Refusal::LastAccessWithoutProcessor => "last_person_cannot_revoke_self_without_force",
            Refusal::NotHomeowner { .. } => "only_the_homeowner_releases_the_home",
            Refusal::NoHomeowner => "support_removes_a_homeowner",
            Refusal::UnverifiedButtonPress => "claim_needs_a_verified_button_press",
            Refusal::UnknownProcessor { .. } => "claim_needs_a_processor_of_the_place",
            Refusal::BadClaimProof { .. } => "claim_proof_is_checked_against_the_processor_ca",
            Refusal::ProofWithoutKey { .. } => "claim_proof_needs_the_key_of_its_certificate",
        }
    }

    /// What to do instead, in the vendor's words where the article has
    /// them.
    pub fn guidance(&self) -> &'static str {
        match self {
            Refusal::NoSuchPlace { .. } => {
                "projects started without remote services do not show up in the Places list; check the Place id or open the project file"
            }
            Refusal::PlaceExists { .. } => "open the existing Place instead",
            Refusal::RemoteServicesDisabled { .. } => NO_REMOTE_SERVICES,
            Refusal::RemoteServicesCannotBeDisabled => {
                "once a system has Remote Services enabled it cannot be disabled"
            }
            Refusal::WrongProjectKey => "locate the original project file of this system",
            Refusal::NotTheCreator { .. } => {
                "ask the account that created the Place, or open the original project file and enable remote services (Tools > Project Settings, then Transfer)"
            }
            Refusal::NoAccess { .. } => ASK_FOR_SHARE,
            Refusal::HomeownerEstablished | Refusal::AlreadyHasHomeowner => ASK_HOMEOWNER,
            Refusal::ShareExceedsRemainingAccess { .. } => {
                "you cannot share access for longer than you currently have: pick a shorter duration"
            }
            Refusal::TargetIsHomeowner { .. } => {
                "only the homeowner themselves (Remove Home from Account) or Lutron Tech Support can remove a homeowner account"
            }
            Refusal::NotAnEmail { .. } => {
                "share with the person's myLutron email address (name@company.com): check it for a typo"
            }
            Refusal::LinkNotActive => {
                "only the latest share link works, and none once a homeowner has claimed the system: ask for a new link or a share by email"
            }
            Refusal::NothingToRevoke { .. } => "Manage Access lists who has access now",
            Refusal::LastAccessWithoutProcessor => UNRECOVERABLE,
            Refusal::NotHomeowner { .. } => {
                "only the homeowner can Remove Home from Account; otherwise contact Lutron Tech Support"
            }
            Refusal::NoHomeowner => "nothing to do: the system can be claimed",
            Refusal::UnverifiedButtonPress => {
                "press the processor's button while on the same LAN and claim again"
            }
            Refusal::UnknownProcessor { .. } => {
                "claim with a processor that belongs to this system (transfer the project to it first)"
            }
            Refusal::BadClaimProof { .. } => {
                "press the processor's button and claim again from the same LAN: only the certificate the processor signs after the press proves it"
            }
            Refusal::ProofWithoutKey { .. } => {
                "claim from the machine that paired (it holds the key), or press the button and pair again: a copied certificate claims nothing"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule a refusal names has a test named after it somewhere in
    /// `src/cloud`: the rule table cannot name a test that does not exist.
    /// What a person reads: the time left as Manage Access shows it, never
    /// the type's debug form (`Seconds(604800)`).
    #[test]
    fn a_share_beyond_ones_access_says_the_time_left_as_people_read_it() {
        let refusal = Refusal::ShareExceedsRemainingAccess {
            by: AccountId::new("pro@example.com"),
            requested: AccessDuration::ThirtyDays,
            remaining: Remaining::Seconds(7 * 86_400),
        };
        let text = refusal.to_string();
        assert!(
            text.starts_with(
                "cannot share for 30 days: pro@example.com has only 7d 0h of access left;"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_rule_a_refusal_names_has_a_test_of_that_name() {
        let a = AccountId::new("a@example.com");
        let every = [
            Refusal::NoSuchPlace {
                place: PlaceId("p".into()),
            },
            Refusal::PlaceExists {
                place: PlaceId("p".into()),
            },
            Refusal::RemoteServicesDisabled {
                place: PlaceId("p".into()),
            },
            Refusal::RemoteServicesCannotBeDisabled,
            Refusal::WrongProjectKey,
            Refusal::NotTheCreator { by: a.clone() },
            Refusal::NoAccess { account: a.clone() },
            Refusal::HomeownerEstablished,
            Refusal::AlreadyHasHomeowner,
            Refusal::ShareExceedsRemainingAccess {
                by: a.clone(),
                requested: AccessDuration::OneYear,
                remaining: Remaining::Seconds(1),
            },
            Refusal::TargetIsHomeowner { target: a.clone() },
            Refusal::LinkNotActive,
            Refusal::NothingToRevoke { target: a.clone() },
            Refusal::LastAccessWithoutProcessor,
            Refusal::NotHomeowner { by: a },
            Refusal::NoHomeowner,
            Refusal::UnverifiedButtonPress,
            Refusal::UnknownProcessor { serial: Serial(1) },
            Refusal::BadClaimProof { reason: "r".into() },
            Refusal::ProofWithoutKey { reason: "r".into() },
        ];
        let mut sources = String::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cloud");
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    sources.push_str(&std::fs::read_to_string(path).unwrap());
                }
            }
        }
        for refusal in every {
            // `fn NAME(` : a test run on both stores takes the backend.
            let test = format!("fn {}(", refusal.rule());
            assert!(sources.contains(&test), "no test named {}", refusal.rule());
            assert!(!refusal.guidance().is_empty());
        }
    }
}
