//! The one place handoff loosens TLS: its clients do not check the
//! processor's host name.
//!
//! Processors are reached by IP address, and the names in the certificates
//! real processors present do not match it, so a host-name check would
//! refuse every real processor; real clients do not check it either
//! (processor-protocol.md §2). What stands in for it is narrower than the
//! web's trust: the chain must end at the one anchor configured for that
//! port — the pairing authority on 8083, the processor's own CA (pinned at
//! the claim) on 8081 — and, once known, the main port's public key must be
//! the one seen before. On the pairing port the server's key must not be
//! the pairing identity's own: that identity is shared by every client and
//! effectively public, so a server showing it is anyone on the LAN.
//!
//! Nothing else in handoff may call `.dangerous()` or implement
//! `ServerCertVerifier`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};

use super::{TlsError, provider};

/// What the server's public key (a DER SubjectPublicKeyInfo) must be,
/// beyond chaining to the anchor.
#[derive(Clone, Debug, Default)]
pub enum ServerKey {
    /// Any key the anchor vouches for.
    #[default]
    Any,
    /// Exactly this one: the main port's key pinned at the claim.
    Pinned(Vec<u8>),
    /// Anything but this one: the pairing identity's own key, which a real
    /// processor never holds.
    NotOurs(Vec<u8>),
}

/// Verifies the server's chain against one anchor and skips the host name;
/// the server's key must also pass [`ServerKey`].
#[derive(Debug)]
pub struct AnchorOnlyNoHostNameVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    key: ServerKey,
}

impl AnchorOnlyNoHostNameVerifier {
    pub fn new(roots: Arc<RootCertStore>, key: ServerKey) -> Self {
        AnchorOnlyNoHostNameVerifier {
            roots,
            algorithms: provider().signature_verification_algorithms,
            key,
        }
    }
}

impl ServerCertVerifier for AnchorOnlyNoHostNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        // Before the chain: the pairing identity's certificate chains to the
        // anchor too, and may carry serverAuth.
        if let ServerKey::NotOurs(ours) = &self.key
            && cert.subject_public_key_info().as_ref() == ours.as_slice()
        {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(ShowsOurIdentity)),
            )));
        }
        // Chain, validity dates and the serverAuth purpose, as rustls's own
        // verifier checks them; only `verify_server_name` is left out.
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if let ServerKey::Pinned(pinned) = &self.key
            && cert.subject_public_key_info().as_ref() != pinned.as_slice()
        {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch)),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's key is not the one pinned at the claim: the error inside
/// the `rustls::Error` a pinned connection fails with (see
/// [`super::is_pin_mismatch`]).
#[derive(Debug)]
pub struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the processor's key is not the one recorded when it was claimed — another device \
             may be answering at its address; release and claim it again if it was replaced",
        )
    }
}

impl std::error::Error for PinMismatch {}

/// The pairing port showed the pairing identity's own key: the error
/// inside the `rustls::Error` (see [`super::shows_our_identity`]).
#[derive(Debug)]
pub struct ShowsOurIdentity;

impl std::fmt::Display for ShowsOurIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the server answered with the pairing identity's own certificate, which every \
             client holds: it is not a processor",
        )
    }
}

impl std::error::Error for ShowsOurIdentity {}

/// A client config that presents `chain` + `key`, sends no SNI, and trusts
/// only `roots` through [`AnchorOnlyNoHostNameVerifier`].
pub(super) fn client_config_without_host_name_check(
    roots: Arc<RootCertStore>,
    server_key: ServerKey,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnchorOnlyNoHostNameVerifier::new(
            roots, server_key,
        )));
    let mut config = match client_auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    // Bridges answer SNI with a different certificate
    // (pylutron-caseta PR 29): real clients send none.
    config.enable_sni = false;
    Ok(config)
}
