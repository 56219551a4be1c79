//! Credentials kept after a claim, one directory per processor serial.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::pki_types::pem::PemObject;

use super::IdentityError;
use super::check::check_signed_certificate;
use super::files::{
    self, DIR_MODE, check_private, ensure_private_dir, read_private, write_private,
};
use super::keys::{PrivateKey, TlsIdentity};
use crate::processor::Serial;

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";
const CA_FILE: &str = "processor-ca.pem";
const SERVER_FILE: &str = "server-identity.pem";

const HINT_CLAIM: &str = "claim the processor again (`handoff claim`)";

/// The public key the processor's main port showed when it was first
/// reached: a pin on top of the processor CA, so that another device
/// holding a certificate from the same CA cannot stand in for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

/// What handoff keeps about one claimed processor.
#[derive(Debug)]
pub struct Credential {
    /// Our key and the certificate the processor issued for it.
    pub identity: TlsIdentity,
    /// The processor's CA (`RootCertificate` of the signing result): the
    /// only anchor trusted on its main port.
    pub processor_ca_pem: String,
    /// Set once the main port has been reached.
    pub server_identity: Option<ServerIdentity>,
}

impl Credential {
    /// Writes `caseta.key`, `caseta.crt` and `caseta-bridge.crt` into
    /// `dir`, the names pylutron-caseta reads.
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn export_pylutron_caseta(&self, dir: &Path) -> Result<(), IdentityError> {
        self.export(dir, ["caseta.key", "caseta.crt", "caseta-bridge.crt"])
    }

    /// Writes `lutron_caseta-<entry>-key.pem`, `-cert.pem` and `-ca.pem`
    /// into `dir`, the names Home Assistant's integration reads (`entry`
    /// is its config entry's id, usually the host).
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn export_home_assistant(&self, dir: &Path, entry: &str) -> Result<(), IdentityError> {
        self.export(
            dir,
            [
                &format!("lutron_caseta-{entry}-key.pem"),
                &format!("lutron_caseta-{entry}-cert.pem"),
                &format!("lutron_caseta-{entry}-ca.pem"),
            ],
        )
    }

    /// The export directory may be someone else's (Home Assistant's
    /// configuration directory), so its mode is left alone; the files are
    /// all 0600.
    fn export(&self, dir: &Path, [key, cert, ca]: [&str; 3]) -> Result<(), IdentityError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| IdentityError::io(dir, e))?;
        write_private(dir, key, self.identity.key.to_pem().as_bytes())?;
        write_private(dir, cert, self.identity.certificate_pem.as_bytes())?;
        write_private(dir, ca, self.processor_ca_pem.as_bytes())
    }
}

/// `<state-dir>/credentials/<serial>/` holding `key.pem`, `cert.pem`,
/// `processor-ca.pem` and, once known, `server-identity.pem`.
///
/// Each file is written atomically; a crash between two files of a save is
/// caught on load, where the certificate must match the key and chain to
/// the CA.
#[derive(Clone, Debug)]
pub struct CredentialStore {
    root: PathBuf,
}

impl CredentialStore {
    /// The store under `state_dir`; nothing is created until a save.
    pub fn new(state_dir: &Path) -> Self {
        CredentialStore {
            root: state_dir.join("credentials"),
        }
    }

    /// The directory of one processor's credential.
    pub fn dir(&self, serial: Serial) -> PathBuf {
        self.root.join(serial.0.to_string())
    }

    /// Stores `credential` for `serial`, replacing any earlier one.
    ///
    /// # Errors
    /// [`IdentityError::Io`], or [`IdentityError::Permissions`] if the store
    /// exists and is open to others.
    pub fn save(&self, serial: Serial, credential: &Credential) -> Result<(), IdentityError> {
        ensure_private_dir(&self.root)?;
        let dir = self.dir(serial);
        ensure_private_dir(&dir)?;
        write_private(&dir, KEY_FILE, credential.identity.key.to_pem().as_bytes())?;
        write_private(
            &dir,
            CERT_FILE,
            credential.identity.certificate_pem.as_bytes(),
        )?;
        write_private(&dir, CA_FILE, credential.processor_ca_pem.as_bytes())?;
        match &credential.server_identity {
            Some(server) => {
                let pem = pem_encode("PUBLIC KEY", &server.public_key_der);
                write_private(&dir, SERVER_FILE, pem.as_bytes())
            }
            None => match fs::remove_file(dir.join(SERVER_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(IdentityError::io(dir.join(SERVER_FILE), e))
                }
                _ => Ok(()),
            },
        }
    }

    /// The credential stored for `serial`.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] if there is none (or a file of it is
    /// gone), [`IdentityError::Permissions`] if a file or the directory is
    /// open to others, [`IdentityError::Corrupt`] if a file cannot be read
    /// as what it should be or the certificate does not belong with the key
    /// and CA.
    pub fn load(&self, serial: Serial) -> Result<Credential, IdentityError> {
        let dir = self.dir(serial);
        check_private(&self.root, DIR_MODE, HINT_CLAIM)?;
        check_private(&dir, DIR_MODE, HINT_CLAIM)?;
        let key_path = dir.join(KEY_FILE);
        let key = PrivateKey::from_pem(&read_private(&key_path, HINT_CLAIM)?)
            .map_err(|e| files::corrupt(key_path, e))?;
        let certificate_pem = read_private(&dir.join(CERT_FILE), HINT_CLAIM)?;
        let processor_ca_pem = read_private(&dir.join(CA_FILE), HINT_CLAIM)?;
        check_signed_certificate(&key, &certificate_pem, &processor_ca_pem)
            .map_err(|e| files::corrupt(dir.join(CERT_FILE), e))?;
        let server_path = dir.join(SERVER_FILE);
        let server_identity = if server_path.exists() {
            let pem = read_private(&server_path, HINT_CLAIM)?;
            let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| files::corrupt(server_path, e))?;
            Some(ServerIdentity {
                public_key_der: der.as_ref().to_vec(),
            })
        } else {
            None
        };
        Ok(Credential {
            identity: TlsIdentity {
                key,
                certificate_pem,
            },
            processor_ca_pem,
            server_identity,
        })
    }

    /// Forgets the credential of `serial` (on release); `Ok(false)` if
    /// there was none.
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn remove(&self, serial: Serial) -> Result<bool, IdentityError> {
        files::remove_dir(&self.dir(serial))
    }

    /// The serials that have a credential directory, in order.
    ///
    /// # Errors
    /// [`IdentityError::Io`] if the store cannot be listed.
    pub fn serials(&self) -> Result<Vec<Serial>, IdentityError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(IdentityError::io(&self.root, e)),
        };
        let mut serials = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| IdentityError::io(&self.root, e))?;
            if let Some(serial) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                serials.push(Serial(serial));
            }
        }
        serials.sort();
        Ok(serials)
    }
}

/// PEM with 64-column base64 lines and `\n` line ends.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
