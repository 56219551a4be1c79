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
//! the one seen before.
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

/// Verifies the server's chain against one anchor and skips the host name.
/// Optionally, the server's public key must also be `pinned_public_key`
/// (a DER SubjectPublicKeyInfo).
#[derive(Debug)]
pub struct AnchorOnlyNoHostNameVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    pinned_public_key: Option<Vec<u8>>,
}

impl AnchorOnlyNoHostNameVerifier {
    pub fn new(roots: Arc<RootCertStore>, pinned_public_key: Option<Vec<u8>>) -> Self {
        AnchorOnlyNoHostNameVerifier {
            roots,
            algorithms: provider().signature_verification_algorithms,
            pinned_public_key,
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
        // Chain, validity dates and the serverAuth purpose, as rustls's own
        // verifier checks them; only `verify_server_name` is left out.
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if let Some(pinned) = &self.pinned_public_key
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

/// A client config that presents `chain` + `key`, sends no SNI, and trusts
/// only `roots` through [`AnchorOnlyNoHostNameVerifier`].
pub(super) fn client_config_without_host_name_check(
    roots: Arc<RootCertStore>,
    pinned_public_key: Option<Vec<u8>>,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnchorOnlyNoHostNameVerifier::new(
            roots,
            pinned_public_key,
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
