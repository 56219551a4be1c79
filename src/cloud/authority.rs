//! The cloud's own CA, and the identities it issues.
//!
//! `handoff cloud serve` and `handoff cloud enroll` share one CA, kept in
//! `DATA/ca/` (0700; key 0600). It issues:
//! - the server's certificate (made fresh at each start, never written);
//! - one identity bundle per enrolled daemon: `key.pem`, `cert.pem`
//!   (`CN=` the site name, an rfc822Name SAN = the account it acts for)
//!   and `cloud-ca.pem`, the only anchor the daemon trusts for the cloud.
//!
//! The relay runs over TLS 1.3 with mutual authentication: a client whose
//! certificate this CA did not issue is refused in the handshake, before a
//! byte of the protocol. The daemon checks the cloud by its CA alone (no
//! host name: the CA is private to this cloud and issues nothing else a
//! client could be shown).

use std::path::Path;

use super::model::AccountId;
pub use crate::identity::daemon::{BUNDLE_CA, BUNDLE_CERT, BUNDLE_KEY, DaemonIdentity, names_of};
use crate::identity::files::{self, ensure_private_dir, read_private, write_private};
use crate::identity::{CertificateAuthority, IdentityError, KeyAlgorithm, PrivateKey, TlsIdentity};

const CA_DIR: &str = "ca";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CA_NAME: &str = "handoff cloud access layer CA";
const SERVER_NAME: &str = "handoff-cloud";
const WEB_NAME: &str = "handoff Places portal";

const HINT_CA: &str = "the cloud's CA is damaged: restore DATA/ca from a backup (a new CA means \
                       every daemon must be enrolled again)";

/// The cloud's CA, loaded from or created in `DATA/ca/`.
#[derive(Debug)]
pub struct CloudAuthority {
    ca: CertificateAuthority,
}

impl CloudAuthority {
    /// # Errors
    /// [`IdentityError`] when the directory cannot be made or a kept CA is
    /// incomplete, damaged or open to others.
    pub fn load_or_create(data_dir: &Path) -> Result<CloudAuthority, IdentityError> {
        let dir = data_dir.join(CA_DIR);
        if dir.join(CA_CERT).exists() {
            files::check_private(&dir, files::DIR_MODE, HINT_CA)?;
            let key = PrivateKey::from_pem(&read_private(&dir.join(CA_KEY), HINT_CA)?)
                .map_err(|e| files::corrupt(dir.join(CA_KEY), e))?;
            let cert_path = dir.join(CA_CERT);
            let ca = CertificateAuthority::from_pem(&read_private(&cert_path, HINT_CA)?, key)
                .map_err(|e| files::corrupt(cert_path, e))?;
            return Ok(CloudAuthority { ca });
        }
        let ca = CertificateAuthority::pairing_authority(CA_NAME)?;
        ensure_private_dir(&dir)?;
        write_private(&dir, CA_KEY, ca.key().to_pem().as_bytes())?;
        // Last: its presence says the key is there.
        write_private(&dir, CA_CERT, ca.certificate_pem().as_bytes())?;
        Ok(CloudAuthority { ca })
    }

    pub fn certificate_pem(&self) -> &str {
        self.ca.certificate_pem()
    }

    /// The CA's private key, for what is derived from it (the share-link
    /// key, [`crate::cloud::store::LinkKey`]). Never logged or written
    /// anywhere else.
    pub fn key_pem(&self) -> crate::identity::PrivateKeyPem {
        self.ca.key().to_pem()
    }

    /// A fresh certificate for the relay server.
    ///
    /// # Errors
    /// [`IdentityError`] if a key cannot be made.
    pub fn server_identity(&self) -> Result<TlsIdentity, IdentityError> {
        self.ca
            .issue(SERVER_NAME, PrivateKey::generate(KeyAlgorithm::EcdsaP256)?)
    }

    /// A fresh certificate for the Places portal, naming `hosts` (the
    /// listen address and `localhost`): a browser that trusts this CA
    /// (`DATA/ca/ca.pem`) accepts it.
    ///
    /// # Errors
    /// [`IdentityError`] if a key cannot be made or a name is unusable.
    pub fn web_identity(&self, hosts: &[String]) -> Result<TlsIdentity, IdentityError> {
        self.ca.issue_for_hosts(
            WEB_NAME,
            hosts,
            PrivateKey::generate(KeyAlgorithm::EcdsaP256)?,
        )
    }

    /// Issues a daemon identity for `site`, acting for `account`, and
    /// writes the bundle into `out` (0700, files 0600, each atomically).
    ///
    /// # Errors
    /// [`IdentityError`] when the name is unusable or a file cannot be
    /// written.
    pub fn enroll(
        &self,
        site: &str,
        account: &AccountId,
        out: &Path,
    ) -> Result<DaemonIdentity, IdentityError> {
        let identity = self.ca.issue_for_account(
            site,
            account.as_str(),
            PrivateKey::generate(KeyAlgorithm::EcdsaP256)?,
        )?;
        ensure_private_dir(out)?;
        write_private(out, BUNDLE_KEY, identity.key.to_pem().as_bytes())?;
        write_private(out, BUNDLE_CA, self.ca.certificate_pem().as_bytes())?;
        // Last: a bundle with a certificate is complete.
        write_private(out, BUNDLE_CERT, identity.certificate_pem.as_bytes())?;
        Ok(DaemonIdentity {
            identity,
            cloud_ca_pem: self.ca.certificate_pem().to_owned(),
            site: site.to_owned(),
            account: account.clone(),
            dir: out.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_enrolled_bundles_load_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = CloudAuthority::load_or_create(&data).unwrap();
        let again = CloudAuthority::load_or_create(&data).unwrap();
        assert_eq!(first.certificate_pem(), again.certificate_pem());
        let out = dir.path().join("bundle");
        first
            .enroll("Lake House", &AccountId::new("Pro@Example.com"), &out)
            .unwrap();
        let bundle = DaemonIdentity::load(&out).unwrap();
        assert_eq!(bundle.site, "Lake House");
        assert_eq!(bundle.account.as_str(), "pro@example.com");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(BUNDLE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_bundle_from_another_cloud_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let ours = CloudAuthority::load_or_create(&dir.path().join("a")).unwrap();
        let theirs = CloudAuthority::load_or_create(&dir.path().join("b")).unwrap();
        let out = dir.path().join("bundle");
        theirs
            .enroll("site", &AccountId::new("a@b.c"), &out)
            .unwrap();
        // Swap in our CA: the certificate no longer chains to it.
        write_private(&out, BUNDLE_CA, ours.certificate_pem().as_bytes()).unwrap();
        assert!(DaemonIdentity::load(&out).is_err());
    }
}
