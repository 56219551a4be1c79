//! A site daemon's identity bundle for the cloud, as `handoff cloud enroll`
//! writes it: `key.pem`, `cert.pem` (`CN=` the site name, an rfc822Name
//! SAN = the account it acts for) and `cloud-ca.pem`, the only anchor the
//! daemon trusts for the cloud. The site side loads it to open the relay;
//! the cloud reads the same names off a verified client certificate.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::files::{self, read_private};
use super::{IdentityError, PrivateKey, TlsIdentity, check_signed_certificate};
use crate::place::AccountId;

/// Files of a daemon identity bundle.
pub const BUNDLE_KEY: &str = "key.pem";
pub const BUNDLE_CERT: &str = "cert.pem";
pub const BUNDLE_CA: &str = "cloud-ca.pem";

const HINT_BUNDLE: &str = "enroll again with `handoff cloud enroll --name SITE --account EMAIL` \
                           and copy the bundle to the site box";

/// A daemon's identity bundle, as `handoff cloud enroll` wrote it.
#[derive(Debug)]
pub struct DaemonIdentity {
    pub identity: TlsIdentity,
    pub cloud_ca_pem: String,
    pub site: String,
    pub account: AccountId,
    pub dir: PathBuf,
}

impl DaemonIdentity {
    /// Reads and checks a bundle: the certificate is for the key and
    /// signed by the bundled cloud CA, and names a site and an account.
    ///
    /// # Errors
    /// [`IdentityError`] naming the file and what to do.
    pub fn load(dir: &Path) -> Result<DaemonIdentity, IdentityError> {
        files::check_private(dir, files::DIR_MODE, HINT_BUNDLE)?;
        let key_path = dir.join(BUNDLE_KEY);
        let key = PrivateKey::from_pem(&read_private(&key_path, HINT_BUNDLE)?)
            .map_err(|e| files::corrupt(key_path, e))?;
        let cert_path = dir.join(BUNDLE_CERT);
        let certificate_pem = read_private(&cert_path, HINT_BUNDLE)?;
        let cloud_ca_pem = read_private(&dir.join(BUNDLE_CA), HINT_BUNDLE)?;
        check_signed_certificate(&key, &certificate_pem, &cloud_ca_pem)
            .map_err(|e| files::corrupt(cert_path.clone(), e))?;
        let der = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|e| {
            files::corrupt(
                cert_path.clone(),
                IdentityError::BadCertificate {
                    what: "daemon certificate",
                    reason: e.to_string(),
                },
            )
        })?;
        let (site, account) = names_of(&der).ok_or_else(|| {
            files::corrupt(
                cert_path,
                IdentityError::BadCertificate {
                    what: "daemon certificate",
                    reason: "it names no site (CN) or no account (email)".into(),
                },
            )
        })?;
        Ok(DaemonIdentity {
            identity: TlsIdentity {
                key,
                certificate_pem,
            },
            cloud_ca_pem,
            site,
            account,
            dir: dir.to_owned(),
        })
    }
}

/// The site name (CN) and account (rfc822Name SAN) a daemon certificate
/// carries; what the server reads off a verified client certificate.
pub fn names_of(der: &[u8]) -> Option<(String, AccountId)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let site = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    let san = cert.subject_alternative_name().ok()??;
    let email = san.value.general_names.iter().find_map(|n| match n {
        GeneralName::RFC822Name(email) => Some(AccountId::new(email)),
        _ => None,
    })?;
    Some((site, email))
}
