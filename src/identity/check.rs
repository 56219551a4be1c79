//! What a client checks in a processor's signing result before keeping it.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::IdentityError;
use super::authority::first_certificate;
use super::keys::PrivateKey;

/// Checks that `certificate_pem` certifies our `key`, and that it chains to
/// `root_pem` by signature: the leaf, then any intermediates that follow it
/// in the same PEM (RadioRA 3 goes through a per-processor intermediate),
/// each signed by the next, the last one by the root.
///
/// Validity dates are left to the TLS handshake, which checks them against
/// the clock at each connection.
///
/// # Errors
/// [`IdentityError::BadCertificate`] if either PEM is unreadable,
/// [`IdentityError::KeyMismatch`] if the leaf is for another key,
/// [`IdentityError::NotSignedByRoot`] if a signature in the chain fails.
pub fn check_signed_certificate(
    key: &PrivateKey,
    certificate_pem: &str,
    root_pem: &str,
) -> Result<(), IdentityError> {
    let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IdentityError::BadCertificate {
            what: "signed certificate",
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(IdentityError::BadCertificate {
            what: "signed certificate",
            reason: "no PEM certificate in it".to_owned(),
        });
    }
    let root_der = first_certificate(root_pem, "root certificate")?;
    let root = parse(&root_der, "root certificate")?;
    let parsed = chain
        .iter()
        .map(|der| parse(der, "signed certificate"))
        .collect::<Result<Vec<_>, _>>()?;

    if parsed[0].public_key().raw != key.public_key_der().as_slice() {
        return Err(IdentityError::KeyMismatch);
    }
    for (i, cert) in parsed.iter().enumerate() {
        let issuer = parsed.get(i + 1).unwrap_or(&root);
        if cert.issuer() != issuer.subject() {
            return Err(IdentityError::NotSignedByRoot {
                reason: format!(
                    "certificate '{}' names issuer '{}', not '{}'",
                    cert.subject(),
                    cert.issuer(),
                    issuer.subject()
                ),
            });
        }
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| IdentityError::NotSignedByRoot {
                reason: format!(
                    "the signature on '{}' does not verify ({e})",
                    cert.subject()
                ),
            })?;
    }
    Ok(())
}

fn parse<'a>(
    der: &'a CertificateDer<'_>,
    what: &'static str,
) -> Result<X509Certificate<'a>, IdentityError> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok((&[], cert)) => Ok(cert),
        Ok(_) => Err(IdentityError::BadCertificate {
            what,
            reason: "trailing bytes after the certificate".to_owned(),
        }),
        Err(e) => Err(IdentityError::BadCertificate {
            what,
            reason: e.to_string(),
        }),
    }
}
