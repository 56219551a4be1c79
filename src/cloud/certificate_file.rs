//! The certificates an operator hands the cloud as PEM files: a processor's
//! CA when a Place is created or a processor activated, and the proof a
//! processor signed for `cloud claim`. The checks of what they say are
//! [`super::proof`]'s; this only reads them.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::CloudError;

/// The DER of the first certificate in the PEM file at `path`; `what` names
/// it in the error ("the processor CA", "the proof").
///
/// # Errors
/// [`CloudError::Io`] when the file cannot be read,
/// [`CloudError::NoPemCertificate`] when it holds no certificate.
pub fn read_certificate(path: &Path, what: &str) -> Result<Vec<u8>, CloudError> {
    let pem = std::fs::read(path)
        .map_err(CloudError::io(format!("reading {what} {}", path.display())))?;
    let der = CertificateDer::from_pem_slice(&pem).map_err(|e| CloudError::NoPemCertificate {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(der.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CertificateAuthority;
    use crate::processor::Mac;

    #[test]
    fn a_pem_file_gives_its_certificate_and_anything_else_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::processor_ca(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.certificate_pem()).unwrap();
        assert_eq!(
            read_certificate(&good, "the processor CA").unwrap(),
            ca.certificate_der().to_vec()
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = read_certificate(&junk, "the proof").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{} holds no PEM certificate: ", junk.display())),
            "{e}"
        );

        let missing = dir.path().join("missing.pem");
        let e = read_certificate(&missing, "the proof").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("reading the proof {}: ", missing.display())),
            "{e}"
        );
    }
}
