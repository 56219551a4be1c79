//! rustls configurations for the processor's two ports, both sides.
//!
//! | port | client (handoff) | server (simulator) |
//! | --- | --- | --- |
//! | pairing, 8083 | [`pairing_client_config`]: presents the pairing identity, trusts the pairing authority | [`pairing_server_config`]: certificate from the pairing authority, requires a client certificate from it |
//! | main, 8081 | [`main_client_config`]: presents the issued certificate, trusts the processor CA only (and the pinned key, once known) | [`main_server_config`]: requires a client certificate from its processor CA |
//!
//! Clients send no SNI and do not check the host name (processor-protocol.md
//! §2); that loosening lives in [`danger`] and nowhere else. Servers refuse
//! a client certificate from anyone but their authority with the alert real
//! processors send, 42 "bad certificate". Both TLS 1.2 and 1.3 are offered.
//!
//! Every configuration uses [`provider`], aws-lc-rs: the one crypto
//! provider in handoff's dependency tree.

pub mod danger;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};

use crate::identity::{Credential, PairingIdentity, TlsIdentity};

/// TLS 1.3 first, then 1.2, which older processors and clients speak.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("the {what} is not usable: {reason}")]
    BadCertificate { what: &'static str, reason: String },
    #[error("the private key is not usable by TLS: {reason}")]
    BadKey { reason: String },
    #[error("could not set up TLS: {0}")]
    Config(#[source] rustls::Error),
    #[error("could not set up client-certificate checks: {0}")]
    ClientVerifier(#[from] VerifierBuilderError),
}

/// The crypto provider of every configuration: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// Whether a TLS failure is [`danger::PinMismatch`]: the processor
/// showed a key other than the one pinned at the claim.
pub fn is_pin_mismatch(error: &rustls::Error) -> bool {
    match error {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<danger::PinMismatch>().is_some()
        }
        _ => false,
    }
}

/// Whether a TLS failure is [`danger::ShowsOurIdentity`]: the pairing
/// port answered with the pairing identity's own key.
pub fn shows_our_identity(error: &rustls::Error) -> bool {
    match error {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<danger::ShowsOurIdentity>().is_some()
        }
        _ => false,
    }
}

/// The name to pass to `TlsConnector::connect` for a processor at `ip`.
/// With these configurations it is neither sent (no SNI) nor checked.
pub fn processor_server_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

/// For `handoff claim`: the pairing port, presenting `identity`.
///
/// # Errors
/// [`TlsError`] if the identity's key, certificate or authority is unusable.
pub fn pairing_client_config(identity: &PairingIdentity) -> Result<Arc<ClientConfig>, TlsError> {
    client_config(
        &identity.identity,
        &identity.authority_ca_pem,
        danger::ServerKey::NotOurs(identity.identity.key.public_key_der()),
        VERSIONS,
    )
}

/// For talking to a claimed processor's main port with its credential.
///
/// # Errors
/// [`TlsError`] if the credential's key, certificate or CA is unusable.
pub fn main_client_config(credential: &Credential) -> Result<Arc<ClientConfig>, TlsError> {
    let pin = credential
        .server_identity
        .as_ref()
        .map_or(danger::ServerKey::Any, |s| {
            danger::ServerKey::Pinned(s.public_key_der.clone())
        });
    client_config(
        &credential.identity,
        &credential.processor_ca_pem,
        pin,
        VERSIONS,
    )
}

/// For the simulator's pairing port: `server` is its certificate from the
/// pairing authority, and clients must show one from the same authority.
///
/// # Errors
/// [`TlsError`] if a certificate or key is unusable.
pub fn pairing_server_config(
    server: &TlsIdentity,
    authority_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(server, authority_ca_pem, VERSIONS)
}

/// For the simulator's main port: clients must show a certificate from
/// `processor_ca_pem`, the CA that signed their CSR at pairing.
///
/// # Errors
/// [`TlsError`] if a certificate or key is unusable.
pub fn main_server_config(
    server: &TlsIdentity,
    processor_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(server, processor_ca_pem, VERSIONS)
}

/// The relay runs on TLS 1.3 only.
const RELAY_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The name a daemon gives the cloud in its handshake. The cloud is
/// checked against its CA alone (see [`danger`]), so this is only the SNI.
pub const CLOUD_SERVER_NAME: &str = "handoff-cloud";

/// For `handoff cloud serve`: TLS 1.3, and every client must show a
/// certificate from the cloud's CA (an enrolled daemon).
///
/// # Errors
/// [`TlsError`] if a certificate or key is unusable.
pub fn cloud_server_config(
    server: &TlsIdentity,
    cloud_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(server, cloud_ca_pem, RELAY_VERSIONS)
}

/// For the daemon's relay: TLS 1.3, presenting its enrolled identity, and
/// trusting only the cloud CA of its bundle.
///
/// # Errors
/// [`TlsError`] if the bundle's key, certificate or CA is unusable.
pub fn cloud_client_config(
    identity: &TlsIdentity,
    cloud_ca_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config(
        identity,
        cloud_ca_pem,
        danger::ServerKey::Any,
        RELAY_VERSIONS,
    )
}

/// For the Places portal: TLS 1.2 and 1.3 (browsers), no client
/// certificate, HTTP/1.1 offered by ALPN.
///
/// # Errors
/// [`TlsError`] if the key or certificate is unusable.
pub fn web_server_config(server: &TlsIdentity) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = chain_and_key(server)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client_config(
    identity: &TlsIdentity,
    anchor_pem: &str,
    pin: danger::ServerKey,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = Arc::new(root_store(anchor_pem)?);
    let auth = Some(chain_and_key(identity)?);
    danger::client_config_without_host_name_check(roots, pin, auth, versions).map(Arc::new)
}

fn server_config(
    server: &TlsIdentity,
    client_ca_pem: &str,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = Arc::new(root_store(client_ca_pem)?);
    let inner = WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
    let (chain, key) = chain_and_key(server)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(BadCertificateAlert(inner)))
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    Ok(Arc::new(config))
}

fn root_store(anchor_pem: &str) -> Result<RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        what: "trust anchor",
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(anchor_pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(roots)
}

fn chain_and_key(
    identity: &TlsIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            what: "certificate",
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadCertificate {
            what: "certificate",
            reason: "no PEM certificate in it".to_owned(),
        });
    }
    // The message of a PEM error never quotes the key.
    let key = PrivateKeyDer::from_pem_slice(identity.key.to_pem().as_bytes()).map_err(|e| {
        TlsError::BadKey {
            reason: e.to_string(),
        }
    })?;
    Ok((chain, key))
}

/// rustls's client-certificate verifier, except that every refusal goes out
/// as alert 42 "bad certificate", as real processors send it
/// (processor-protocol.md §2; homebridge-lutron issue 117): rustls would
/// send "unknown CA" for a certificate from another authority. The real
/// reason is logged here, since the error the handshake returns then says
/// only "bad encoding".
#[derive(Debug)]
struct BadCertificateAlert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for BadCertificateAlert {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| {
                tracing::info!(error = %e, "refused a client certificate");
                Error::InvalidCertificate(CertificateError::BadEncoding)
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
