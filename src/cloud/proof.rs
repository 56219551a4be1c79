//! The claim proof: the certificate a processor signed after its button
//! was pressed, checked against the processor CA registered for the Place.
//!
//! A daemon that was not on site cannot make one: only the processor holds
//! its CA's key, and it signs only after the press (processor-protocol.md
//! §2). So the cloud accepts a Claimed event only with a proof that
//! - parses as one X.509 certificate (then any intermediates, leaf first,
//!   as RadioRA 3 sends them) and chains by signature to the registered CA;
//! - is valid at `now` (an expired or not-yet-valid proof is refused);
//! - is an end-entity certificate (CA:FALSE) for client authentication, the
//!   one profile processors issue;
//! - has not been used for a claim before (a proof is spent once, so a
//!   copy of someone else's old proof claims nothing).
//!
//! Pure: `now` comes in; what was spent is the store's to remember, keyed by
//! [`ProofFacts::spent_key`].

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::model::Timestamp;

/// Why a proof was refused. The text goes back to the daemon in the
/// refusal, so it says what is wrong in words an integrator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof is not a certificate ({0})")]
    Unreadable(String),
    #[error("the registered processor CA is unreadable ({0})")]
    BadAuthority(String),
    #[error("the proof was not signed by this processor's CA ({0})")]
    Foreign(String),
    #[error("the proof expired at {not_after} (now {now}, seconds since the epoch)")]
    Expired { not_after: i64, now: u64 },
    #[error("the proof is not valid before {not_before} (now {now}, seconds since the epoch)")]
    NotYetValid { not_before: i64, now: u64 },
    #[error("the proof is a CA certificate, which no processor issues to a client")]
    IsCa,
    #[error("the proof is not a client-authentication certificate")]
    NotForClients,
}

/// What a valid proof tells the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofFacts {
    /// The leaf's serial number as the processor CA wrote it: with the
    /// processor's serial, what makes a proof spent.
    pub certificate_serial: Vec<u8>,
    /// The leaf's subject, for the log.
    pub subject: String,
}

impl ProofFacts {
    /// The key under which a spent proof is remembered.
    pub fn spent_key(&self) -> &[u8] {
        &self.certificate_serial
    }
}

/// Checks `chain` (DER, leaf first, then intermediates) against the
/// registered processor CA (`ca_der`) at `now`.
///
/// # Errors
/// A [`ProofError`] naming the first thing wrong.
pub fn verify(chain: &[&[u8]], ca_der: &[u8], now: Timestamp) -> Result<ProofFacts, ProofError> {
    if chain.is_empty() {
        return Err(ProofError::Unreadable("it is empty".into()));
    }
    let ca = parse(ca_der).map_err(ProofError::BadAuthority)?;
    let parsed = chain
        .iter()
        .map(|der| parse(der).map_err(ProofError::Unreadable))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, cert) in parsed.iter().enumerate() {
        let issuer = parsed.get(i + 1).unwrap_or(&ca);
        if cert.issuer() != issuer.subject() {
            return Err(ProofError::Foreign(format!(
                "'{}' names issuer '{}', the CA is '{}'",
                cert.subject(),
                cert.issuer(),
                issuer.subject()
            )));
        }
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                ProofError::Foreign(format!("the signature on '{}': {e}", cert.subject()))
            })?;
    }
    let leaf = &parsed[0];
    let validity = leaf.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let at = i64::try_from(now.0).unwrap_or(i64::MAX);
    if at < not_before {
        return Err(ProofError::NotYetValid {
            not_before,
            now: now.0,
        });
    }
    if at > not_after {
        return Err(ProofError::Expired {
            not_after,
            now: now.0,
        });
    }
    match leaf.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(ProofError::IsCa),
        Ok(_) => {}
        Err(e) => return Err(ProofError::Unreadable(e.to_string())),
    }
    match leaf.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth || eku.value.any => {}
        Ok(_) => return Err(ProofError::NotForClients),
        Err(e) => return Err(ProofError::Unreadable(e.to_string())),
    }
    Ok(ProofFacts {
        certificate_serial: leaf.raw_serial().to_vec(),
        subject: leaf.subject().to_string(),
    })
}

/// Checks that `signature` is the proof certificate's (`proof_der`) key
/// signing `message`, with the scheme its key calls for: RSA PKCS#1 v1.5
/// SHA-256 or ECDSA P-256 SHA-256 (proto/relay.cddl, `claim-possession`).
///
/// # Errors
/// A sentence: no signature, or one that does not verify with that key.
pub fn verify_possession(
    proof_der: &[u8],
    message: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), String> {
    use x509_parser::asn1_rs::BitString;
    use x509_parser::oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256,
    };
    use x509_parser::x509::AlgorithmIdentifier;
    let Some(signature) = signature else {
        return Err("the event carries no proof of possession (\"pop\")".into());
    };
    let cert = parse(proof_der)?;
    let key = cert.public_key();
    let scheme = if key.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
        OID_PKCS1_SHA256WITHRSA
    } else if key.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        OID_SIG_ECDSA_WITH_SHA256
    } else {
        return Err(format!(
            "the certificate's key ({}) is neither RSA nor EC P-256",
            key.algorithm.algorithm
        ));
    };
    let verifies = x509_parser::verify::verify_signature(
        key,
        &AlgorithmIdentifier::new(scheme, None),
        &BitString::new(0, signature),
        message,
    )
    .is_ok();
    if verifies {
        Ok(())
    } else {
        Err(
            "the proof of possession is not a signature by the certificate's key over this \
             event, account and serial"
                .into(),
        )
    }
}

/// Checks that `ca_der` can sign proofs: one certificate, CA:TRUE. Done
/// when a processor is registered, so that a typo is caught then and not
/// at the claim.
///
/// # Errors
/// [`ProofError::BadAuthority`].
pub fn check_authority(ca_der: &[u8]) -> Result<(), ProofError> {
    let ca = parse(ca_der).map_err(ProofError::BadAuthority)?;
    match ca.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Ok(()),
        Ok(_) => Err(ProofError::BadAuthority(format!(
            "'{}' is not a CA certificate",
            ca.subject()
        ))),
        Err(e) => Err(ProofError::BadAuthority(e.to_string())),
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok((&[], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{CertificateAuthority, KeyAlgorithm, PrivateKey, sign_client_csr};
    use crate::processor::Mac;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn processor_ca(last: u8) -> CertificateAuthority {
        CertificateAuthority::processor_ca(Mac([0x02, 0x4c, 0, 0, 0, last])).unwrap()
    }

    /// What the processor hands back after the button press.
    fn signed_by(ca: &CertificateAuthority) -> Vec<u8> {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = sign_client_csr(&key.csr_pem("handoff").unwrap(), ca).unwrap();
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn claim_proof_signed_by_the_registered_processor_ca_is_accepted() {
        let ca = processor_ca(1);
        let proof = signed_by(&ca);
        let facts = verify(&[&proof], ca.certificate_der(), NOW).unwrap();
        assert!(!facts.certificate_serial.is_empty());
        assert!(facts.subject.contains("handoff"), "{}", facts.subject);
    }

    #[test]
    fn claim_proof_from_another_processor_is_refused() {
        let (ours, theirs) = (processor_ca(1), processor_ca(2));
        let proof = signed_by(&theirs);
        let err = verify(&[&proof], ours.certificate_der(), NOW).unwrap_err();
        assert!(matches!(err, ProofError::Foreign(_)), "{err}");
    }

    #[test]
    fn forged_claim_proof_is_refused() {
        // Same issuer name, another key: a CA made up to look like ours.
        let ours = processor_ca(1);
        let forger = processor_ca(1);
        let proof = signed_by(&forger);
        let err = verify(&[&proof], ours.certificate_der(), NOW).unwrap_err();
        assert!(
            matches!(err, ProofError::Foreign(ref r) if r.contains("signature")),
            "{err}"
        );
        // And a flipped byte in the signature of a real one.
        let mut tampered = signed_by(&ours);
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert!(verify(&[&tampered], ours.certificate_der(), NOW).is_err());
    }

    #[test]
    fn expired_claim_proof_is_refused() {
        let ca = processor_ca(1);
        let proof = signed_by(&ca);
        let far = Timestamp(NOW.0 + 40 * 365 * 24 * 3600);
        let err = verify(&[&proof], ca.certificate_der(), far).unwrap_err();
        assert!(matches!(err, ProofError::Expired { .. }), "{err}");
        let early = Timestamp(1_000_000_000);
        let err = verify(&[&proof], ca.certificate_der(), early).unwrap_err();
        assert!(matches!(err, ProofError::NotYetValid { .. }), "{err}");
    }

    #[test]
    fn garbage_claim_proof_is_refused_without_panic() {
        let ca = processor_ca(1);
        for junk in [
            &b""[..],
            b"\x30",
            b"not a certificate",
            &[0x30, 0x82, 0xff, 0xff],
        ] {
            assert!(verify(&[junk], ca.certificate_der(), NOW).is_err());
        }
        assert!(verify(&[], ca.certificate_der(), NOW).is_err());
        // The CA's own certificate is not a proof: it is CA:TRUE.
        let err = verify(&[ca.certificate_der()], ca.certificate_der(), NOW).unwrap_err();
        assert!(
            matches!(err, ProofError::Foreign(_) | ProofError::IsCa),
            "{err}"
        );
    }
}
