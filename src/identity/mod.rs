//! Keys, certificate requests, certificates and the files that keep them.
//!
//! Both sides of the pairing handshake (processor-protocol.md §2) live here:
//!
//! - the client's: [`PrivateKey`] (RSA-2048 by default, as real clients
//!   send RSA requests; EC P-256 on request), [`PrivateKey::csr_pem`], and
//!   [`check_signed_certificate`] once the processor has answered;
//! - the processor's (the simulator's): [`CertificateAuthority`] — a
//!   Caséta-style processor CA (`CN=SmartBridge<12 hex of the MAC>`) or a
//!   pairing authority — and [`sign_client_csr`], which decides what a
//!   client certificate may be whatever the request asked for;
//! - what stays on disk: [`CredentialStore`] (one directory per processor
//!   serial, with exports in the layouts pylutron-caseta and Home Assistant
//!   read) and the simulator's persistent [`PairingAuthority`], which hands
//!   clients a [`PairingIdentity`] in `DIR/sim/pairing-identity/`;
//! - an issued pairing identity a user installs ([`install`]) in
//!   `DIR/pairing-identity/`, where `claim` and the daemon look for it.
//!
//! Private keys never appear in `Debug` output or logs: [`PrivateKey`]'s
//! `Debug` names only its algorithm, and its PEM comes out as a
//! [`PrivateKeyPem`] that is wiped when dropped. Key files are mode 0600 in
//! directories of mode 0700, written atomically ([`files`]).
//!
//! Everything uses one cryptographic provider, aws-lc-rs (through rcgen,
//! x509-parser's `verify-aws` and rustls): it is the only one of rcgen's
//! back ends that can generate RSA keys, so no second RSA crate is needed.

mod authority;
mod check;
pub mod daemon;
pub mod files;
pub mod install;
mod keys;
mod simulator;
mod store;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;

use std::path::PathBuf;

pub use authority::{CertificateAuthority, sign_client_csr};
pub use check::check_signed_certificate;
pub use keys::{KeyAlgorithm, PrivateKey, PrivateKeyPem, TlsIdentity};
pub use simulator::{
    PAIRING_IDENTITY_DIR, PairingAuthority, PairingIdentity, SIM_DIR, SIM_PAIRING_IDENTITY_DIR,
    SimProcessorIdentity, sim_dir,
};
pub use store::{Credential, CredentialStore, ServerIdentity};

/// Why a key, request, certificate or credential file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("could not generate a {algorithm} key: {source}")]
    KeyGeneration {
        algorithm: KeyAlgorithm,
        source: rcgen::Error,
    },
    #[error("could not build the {what}: {source}")]
    Build {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("the certificate request was refused: {reason}")]
    CsrRefused { reason: String },
    #[error("the {what} is not usable: {reason}")]
    BadCertificate { what: &'static str, reason: String },
    #[error("the system's random number generator failed")]
    Random,
    #[error("the private key is not usable: {reason}")]
    BadKey { reason: String },
    #[error(
        "the processor signed a certificate for a different key than ours — \
         pair again; if it happens twice, something between us and the processor \
         is rewriting the answer"
    )]
    KeyMismatch,
    #[error(
        "the signed certificate does not chain to the root certificate the processor \
         returned: {reason}"
    )]
    NotSignedByRoot { reason: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is missing — {hint}", .path.display())]
    Missing { path: PathBuf, hint: &'static str },
    #[error(
        "{} has mode {mode:04o}, readable by others; run `chmod {expected:04o} {}` \
         if you trust its content, or remove it",
        .path.display(), .path.display()
    )]
    Permissions {
        path: PathBuf,
        mode: u32,
        expected: u32,
    },
    #[error("{} is damaged: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{} holds files the simulator did not make (it has no .handoff-sim marker); \
         refusing to touch it: use another --state-dir, or move it away",
        .path.display()
    )]
    NotSimulators { path: PathBuf },
    #[error("{reason}; nothing was installed")]
    NotAnIdentity { reason: String },
    #[error(
        "{} already holds a different pairing identity; pass --force to replace it (the \
         old one is then kept beside it as {}.bak-<time>)",
        .path.display(), .path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    )]
    IdentityExists { path: PathBuf },
}

impl IdentityError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IdentityError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<crate::atomic_file::AtomicFileError> for IdentityError {
    fn from(e: crate::atomic_file::AtomicFileError) -> Self {
        IdentityError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
