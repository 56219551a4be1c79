//! The simulator's pairing authority, and the pairing identity it hands to
//! clients.
//!
//! Real clients present a certificate from the vendor's pairing authority;
//! handoff never ships that key (DESIGN.md). The simulator makes its own
//! authority once, keeps it under `<state-dir>/sim/pairing-authority/`, and
//! exports what a client needs to talk to it into
//! `<state-dir>/sim/pairing-identity/`:
//!
//! | file | what |
//! | --- | --- |
//! | `client-key.pem` | the client's private key (PKCS#8) |
//! | `client-cert.pem` | its certificate, issued by the authority |
//! | `authority-ca.pem` | the authority's certificate, to verify the processor |
//!
//! `handoff sim --state-dir DIR` writes it; `handoff pair
//! --pairing-identity DIR/sim/pairing-identity` reads it with
//! [`PairingIdentity::load`].
//!
//! Everything the simulator keeps is under `<state-dir>/sim/`, a directory
//! it marks as its own ([`sim_dir`]): `<state-dir>/pairing-identity/` is
//! where a real, installed identity lives (what `pair`, `claim` and the daemon read
//! by default), and the simulator sharing a state directory with a real
//! site must never replace it. Nor does it write into a `sim/` it did not
//! make.

use std::path::{Path, PathBuf};

use super::IdentityError;
use super::authority::CertificateAuthority;
use super::check::check_signed_certificate;
use super::files::{self, ensure_private_dir, read_private, write_private};
use super::keys::{KeyAlgorithm, PrivateKey, TlsIdentity};

/// Where a real pairing identity is installed, under the state directory:
/// what `pair`, `claim` and the daemon read when told nothing else.
pub const PAIRING_IDENTITY_DIR: &str = "pairing-identity";

/// The simulator's own directory under the state directory.
pub const SIM_DIR: &str = "sim";

/// Where the simulator exports its pairing identity, under the state
/// directory.
pub const SIM_PAIRING_IDENTITY_DIR: &str = "sim/pairing-identity";

/// The file that says a `sim/` directory is the simulator's.
const SIM_MARKER: &str = ".handoff-sim";
const SIM_MARKER_TEXT: &str = "This directory is handoff's simulator's (`handoff sim`): it \
                               may replace anything in it.\n";
/// What a `sim/` made before the marker existed holds.
const LEGACY_ENTRIES: [&str; 2] = ["pairing-authority", "processors"];

const AUTHORITY_DIR: &str = "sim/pairing-authority";
const AUTHORITY_KEY: &str = "authority-key.pem";
const AUTHORITY_CERT: &str = "authority-cert.pem";
const CLIENT_KEY: &str = "client-key.pem";
const CLIENT_CERT: &str = "client-cert.pem";
const AUTHORITY_CA: &str = "authority-ca.pem";

const AUTHORITY_NAME: &str = "handoff simulated pairing authority";
const CLIENT_NAME: &str = "handoff simulated pairing client";

const HINT_STATE: &str = "remove the directory and start the simulator again to make a new \
                          authority (clients must then use the new pairing identity)";
const HINT_PROCESSOR: &str = "remove the directory and start the simulator again: the \
                              processor gets a new CA, as after a factory reset (clients must claim it again)";
const HINT_EXPORT: &str = "install the pairing identity you were issued with `handoff \
                           pairing-identity install DIR` (or `--from-pylutron-caseta`); for the \
                           simulator, pass `--pairing-identity STATE_DIR/sim/pairing-identity`";

/// The simulator's directory under `state_dir`, made (0700, with its
/// marker) if there is none. Called before the simulator writes anything.
///
/// A `sim/` made by an earlier handoff, before the marker, holds only the
/// simulator's `pairing-authority/` and `processors/`: it is adopted.
///
/// # Errors
/// [`IdentityError::NotSimulators`] if `sim/` holds anything else and no
/// marker (nothing is written then); [`IdentityError::Permissions`] if it
/// is open to others; [`IdentityError::Io`].
pub fn sim_dir(state_dir: &Path) -> Result<PathBuf, IdentityError> {
    let dir = state_dir.join(SIM_DIR);
    let marker = dir.join(SIM_MARKER);
    if marker.exists() {
        ensure_private_dir(&dir)?;
        return Ok(dir);
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::io(&dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(IdentityError::io(&dir, e)),
    };
    let ours = entries
        .iter()
        .all(|name| LEGACY_ENTRIES.iter().any(|l| name == *l) && dir.join(name).is_dir());
    if !ours {
        return Err(IdentityError::NotSimulators { path: dir });
    }
    ensure_private_dir(&dir)?;
    write_private(&dir, SIM_MARKER, SIM_MARKER_TEXT.as_bytes())?;
    Ok(dir)
}

/// The simulator's pairing authority, with the client identity it issued.
#[derive(Debug)]
pub struct PairingAuthority {
    authority: CertificateAuthority,
    client: TlsIdentity,
}

impl PairingAuthority {
    /// Loads the authority kept under `state_dir`, or makes one and keeps
    /// it there. Two simulators must not create one in the same state
    /// directory at the same moment.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] / [`IdentityError::Corrupt`] /
    /// [`IdentityError::Permissions`] if a kept authority is incomplete,
    /// damaged or open to others; [`IdentityError::Io`].
    pub fn load_or_create(state_dir: &Path) -> Result<Self, IdentityError> {
        sim_dir(state_dir)?;
        let dir = state_dir.join(AUTHORITY_DIR);
        if dir.join(AUTHORITY_CERT).exists() {
            return Self::load(&dir);
        }
        let authority = CertificateAuthority::pairing_authority(AUTHORITY_NAME)?;
        let client =
            authority.issue(CLIENT_NAME, PrivateKey::generate(KeyAlgorithm::EcdsaP256)?)?;
        ensure_private_dir(&dir)?;
        write_private(&dir, AUTHORITY_KEY, authority.key().to_pem().as_bytes())?;
        write_private(&dir, CLIENT_KEY, client.key.to_pem().as_bytes())?;
        write_private(&dir, CLIENT_CERT, client.certificate_pem.as_bytes())?;
        // Last: its presence says the rest is there.
        write_private(&dir, AUTHORITY_CERT, authority.certificate_pem().as_bytes())?;
        Ok(PairingAuthority { authority, client })
    }

    fn load(dir: &Path) -> Result<Self, IdentityError> {
        files::check_private(dir, files::DIR_MODE, HINT_STATE)?;
        let key = read_key(&dir.join(AUTHORITY_KEY), HINT_STATE)?;
        let cert_path = dir.join(AUTHORITY_CERT);
        let authority = CertificateAuthority::from_pem(&read_private(&cert_path, HINT_STATE)?, key)
            .map_err(|e| files::corrupt(cert_path, e))?;
        let client = TlsIdentity {
            key: read_key(&dir.join(CLIENT_KEY), HINT_STATE)?,
            certificate_pem: read_private(&dir.join(CLIENT_CERT), HINT_STATE)?,
        };
        check_signed_certificate(
            &client.key,
            &client.certificate_pem,
            authority.certificate_pem(),
        )
        .map_err(|e| files::corrupt(dir.join(CLIENT_CERT), e))?;
        Ok(PairingAuthority { authority, client })
    }

    pub fn authority(&self) -> &CertificateAuthority {
        &self.authority
    }

    /// The client identity the authority issued, as exported.
    pub fn client(&self) -> &TlsIdentity {
        &self.client
    }

    /// A copy of the client identity, for the simulator's impostor fault
    /// ([`crate::sim::Fault::ImpostorPairing`]).
    ///
    /// # Errors
    /// [`IdentityError::Corrupt`]-like failures re-reading the key.
    pub fn client_copy(&self) -> Result<TlsIdentity, IdentityError> {
        Ok(TlsIdentity {
            key: PrivateKey::from_pem(self.client.key.to_pem().as_str())?,
            certificate_pem: self.client.certificate_pem.clone(),
        })
    }

    /// A fresh key and certificate for the simulator's pairing port.
    ///
    /// # Errors
    /// [`IdentityError::KeyGeneration`] or [`IdentityError::Build`].
    pub fn issue_server_identity(&self, common_name: &str) -> Result<TlsIdentity, IdentityError> {
        self.authority
            .issue(common_name, PrivateKey::generate(KeyAlgorithm::EcdsaP256)?)
    }

    /// Writes `<state_dir>/sim/pairing-identity/` (see the module docs)
    /// and returns its path.
    ///
    /// # Errors
    /// [`IdentityError::NotSimulators`] (see [`sim_dir`]),
    /// [`IdentityError::Io`] or [`IdentityError::Permissions`].
    pub fn export_pairing_identity(&self, state_dir: &Path) -> Result<PathBuf, IdentityError> {
        sim_dir(state_dir)?;
        let dir = state_dir.join(SIM_PAIRING_IDENTITY_DIR);
        ensure_private_dir(&dir)?;
        write_private(&dir, CLIENT_KEY, self.client.key.to_pem().as_bytes())?;
        write_private(&dir, CLIENT_CERT, self.client.certificate_pem.as_bytes())?;
        write_private(
            &dir,
            AUTHORITY_CA,
            self.authority.certificate_pem().as_bytes(),
        )?;
        Ok(dir)
    }
}

/// What a client presents on the pairing port, and the authority it
/// checks the processor against.
#[derive(Debug)]
pub struct PairingIdentity {
    pub identity: TlsIdentity,
    pub authority_ca_pem: String,
}

impl PairingIdentity {
    /// Reads an exported pairing identity directory.
    ///
    /// # Errors
    /// [`IdentityError::Missing`] if a file is absent,
    /// [`IdentityError::Permissions`] if the key is open to others,
    /// [`IdentityError::Corrupt`] if the files do not belong together.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let key = read_key(&dir.join(CLIENT_KEY), HINT_EXPORT)?;
        let certificate_pem = read_private(&dir.join(CLIENT_CERT), HINT_EXPORT)?;
        let authority_ca_pem = read_private(&dir.join(AUTHORITY_CA), HINT_EXPORT)?;
        check_signed_certificate(&key, &certificate_pem, &authority_ca_pem)
            .map_err(|e| files::corrupt(dir.join(CLIENT_CERT), e))?;
        Ok(PairingIdentity {
            identity: TlsIdentity {
                key,
                certificate_pem,
            },
            authority_ca_pem,
        })
    }
}

fn read_key(path: &Path, hint: &'static str) -> Result<PrivateKey, IdentityError> {
    PrivateKey::from_pem(&read_private(path, hint)?).map_err(|e| files::corrupt(path.to_owned(), e))
}

/// Where a simulated processor keeps its own CA and main-port identity.
const PROCESSORS_DIR: &str = "sim/processors";
const PROCESSOR_CA_KEY: &str = "ca-key.pem";
const PROCESSOR_CA_CERT: &str = "ca-cert.pem";
const MAIN_KEY: &str = "main-key.pem";
const MAIN_CERT: &str = "main-cert.pem";

/// A simulated processor's lasting identity: its CA (which signs clients'
/// CSRs) and its main-port certificate. A real processor keeps both across
/// reboots, so a client's pinned credential stays valid; so does the
/// simulator, under `<state-dir>/sim/processors/<id>/`.
pub struct SimProcessorIdentity {
    pub ca: CertificateAuthority,
    pub main: TlsIdentity,
}

impl SimProcessorIdentity {
    /// Loads the processor's identity, or makes and keeps it the first time.
    /// `host_name` is the main-port certificate's common name.
    ///
    /// # Errors
    /// As [`PairingAuthority::load_or_create`].
    pub fn load_or_create(
        state_dir: &Path,
        serial: crate::processor::Serial,
        mac: crate::processor::Mac,
        host_name: &str,
    ) -> Result<Self, IdentityError> {
        sim_dir(state_dir)?;
        let dir = state_dir.join(PROCESSORS_DIR).join(serial.id());
        if dir.join(PROCESSOR_CA_CERT).exists() {
            return Self::load(&dir);
        }
        let ca = CertificateAuthority::processor_ca(mac)?;
        let main = ca.issue(host_name, PrivateKey::generate(KeyAlgorithm::EcdsaP256)?)?;
        ensure_private_dir(&state_dir.join(PROCESSORS_DIR))?;
        ensure_private_dir(&dir)?;
        write_private(&dir, PROCESSOR_CA_KEY, ca.key().to_pem().as_bytes())?;
        write_private(&dir, MAIN_KEY, main.key.to_pem().as_bytes())?;
        write_private(&dir, MAIN_CERT, main.certificate_pem.as_bytes())?;
        // Last: its presence says the rest is there.
        write_private(&dir, PROCESSOR_CA_CERT, ca.certificate_pem().as_bytes())?;
        Ok(SimProcessorIdentity { ca, main })
    }

    fn load(dir: &Path) -> Result<Self, IdentityError> {
        files::check_private(dir, files::DIR_MODE, HINT_PROCESSOR)?;
        let key = read_key(&dir.join(PROCESSOR_CA_KEY), HINT_PROCESSOR)?;
        let cert_path = dir.join(PROCESSOR_CA_CERT);
        let ca = CertificateAuthority::from_pem(&read_private(&cert_path, HINT_PROCESSOR)?, key)
            .map_err(|e| files::corrupt(cert_path, e))?;
        let main = TlsIdentity {
            key: read_key(&dir.join(MAIN_KEY), HINT_PROCESSOR)?,
            certificate_pem: read_private(&dir.join(MAIN_CERT), HINT_PROCESSOR)?,
        };
        check_signed_certificate(&main.key, &main.certificate_pem, ca.certificate_pem())
            .map_err(|e| files::corrupt(dir.join(MAIN_CERT), e))?;
        Ok(SimProcessorIdentity { ca, main })
    }
}
