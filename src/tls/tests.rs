//! Real handshakes over an in-memory pipe, one per behaviour.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::{AlertDescription, CertificateError, ClientConfig, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::identity::{
    CertificateAuthority, KeyAlgorithm, PrivateKey, ServerIdentity, sign_client_csr,
};
use crate::processor::Mac;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the server saw of a completed handshake.
#[derive(Debug)]
struct Accepted {
    sni: Option<String>,
    version: Option<ProtocolVersion>,
}

/// Runs one handshake. The server writes two bytes once it accepts, and
/// the client reads them: with TLS 1.3 a client learns that its
/// certificate was refused only on its first read.
async fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
) -> (io::Result<()>, io::Result<Accepted>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server_side = async move {
        let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
        let (_, conn) = tls.get_ref();
        let accepted = Accepted {
            sni: conn.server_name().map(str::to_owned),
            version: conn.protocol_version(),
        };
        tls.write_all(b"ok").await?;
        tls.flush().await?;
        Ok(accepted)
    };
    let client_side = async move {
        let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ok");
        Ok(())
    };
    tokio::join!(client_side, server_side)
}

fn rustls_error(result: &io::Result<impl std::fmt::Debug>) -> rustls::Error {
    let err = result.as_ref().expect_err("the handshake must fail");
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err}"))
        .clone()
}

fn ec_key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key")
}

fn authority(name: &str) -> CertificateAuthority {
    CertificateAuthority::pairing_authority(name).expect("authority")
}

fn pairing_identity(authority: &CertificateAuthority) -> PairingIdentity {
    PairingIdentity {
        identity: authority.issue("client", ec_key()).expect("client"),
        authority_ca_pem: authority.certificate_pem().to_owned(),
    }
}

fn pairing_server(authority: &CertificateAuthority) -> Arc<ServerConfig> {
    let server = authority.issue("pairing server", ec_key()).expect("server");
    pairing_server_config(&server, authority.certificate_pem()).expect("server config")
}

/// A processor CA and a credential it issued through a CSR, as at a claim.
fn claimed(mac_last: u8) -> (CertificateAuthority, Credential) {
    let ca = CertificateAuthority::processor_ca(Mac([2, 0, 0, 0, 0, mac_last])).expect("CA");
    let key = ec_key();
    let certificate_pem =
        sign_client_csr(&key.csr_pem("handoff").expect("CSR"), &ca).expect("signed");
    let credential = Credential {
        identity: TlsIdentity {
            key,
            certificate_pem,
        },
        processor_ca_pem: ca.certificate_pem().to_owned(),
        server_identity: None,
    };
    (ca, credential)
}

fn main_server(ca: &CertificateAuthority) -> (TlsIdentity, Arc<ServerConfig>) {
    let server = ca.issue("main port", ec_key()).expect("server");
    let config = main_server_config(&server, ca.certificate_pem()).expect("server config");
    (server, config)
}

#[tokio::test]
async fn pairing_handshake_succeeds_over_tls_1_3_and_1_2_without_sni() {
    let a = authority("authority A");
    let identity = pairing_identity(&a);
    let server = pairing_server(&a);
    for (versions, expected) in [
        (VERSIONS, ProtocolVersion::TLSv1_3),
        (&[&rustls::version::TLS12][..], ProtocolVersion::TLSv1_2),
    ] {
        let client = client_config(
            &identity.identity,
            &identity.authority_ca_pem,
            danger::ServerKey::Any,
            versions,
        )
        .expect("client config");
        let (c, s) = handshake(client, server.clone(), processor_server_name(LOCALHOST)).await;
        c.expect("client side");
        let accepted = s.expect("server side");
        assert_eq!(accepted.version, Some(expected));
        assert_eq!(accepted.sni, None, "no SNI may be sent");
    }
}

#[tokio::test]
async fn no_sni_is_sent_even_for_a_dns_name_and_the_name_is_not_checked() {
    let a = authority("authority A");
    let client = pairing_client_config(&pairing_identity(&a)).expect("client config");
    let name = ServerName::try_from("not-the-processor.example").expect("name");
    let (c, s) = handshake(client, pairing_server(&a), name).await;
    c.expect("a name the certificate does not carry is accepted");
    assert_eq!(s.expect("server side").sni, None);
}

#[tokio::test]
async fn pairing_server_refuses_a_client_of_another_authority_with_bad_certificate() {
    let a = authority("authority A");
    let b = authority("authority B");
    // Trusts A for the server, but presents B's certificate.
    let stranger = PairingIdentity {
        identity: b.issue("client", ec_key()).expect("client"),
        authority_ca_pem: a.certificate_pem().to_owned(),
    };
    for versions in [VERSIONS, &[&rustls::version::TLS12][..]] {
        let client = client_config(
            &stranger.identity,
            &stranger.authority_ca_pem,
            danger::ServerKey::Any,
            versions,
        )
        .expect("client config");
        let (c, s) = handshake(client, pairing_server(&a), processor_server_name(LOCALHOST)).await;
        assert!(s.is_err(), "the server must refuse");
        assert_eq!(
            rustls_error(&c),
            rustls::Error::AlertReceived(AlertDescription::BadCertificate)
        );
    }
}

/// Issue 15, attack 1: anyone holding the (shared, effectively public)
/// pairing identity answers on 8083 with it. It chains to the authority,
/// so only the key check stops it, in the handshake, before any frame.
#[tokio::test]
async fn pairing_client_refuses_a_server_showing_the_pairing_identity() {
    let a = authority("authority A");
    let identity = pairing_identity(&a);
    let client = pairing_client_config(&identity).expect("client config");
    let impostor =
        pairing_server_config(&identity.identity, a.certificate_pem()).expect("server config");
    let (c, _s) = handshake(client, impostor, processor_server_name(LOCALHOST)).await;
    let error = rustls_error(&c);
    assert!(shows_our_identity(&error), "{error:?}");
}

#[tokio::test]
async fn pairing_client_refuses_a_server_of_another_authority() {
    let a = authority("authority A");
    let b = authority("authority B");
    let client = pairing_client_config(&pairing_identity(&a)).expect("client config");
    // B's server, which would accept A's clients.
    let server_identity = b.issue("impostor", ec_key()).expect("server");
    let server = pairing_server_config(&server_identity, a.certificate_pem()).expect("config");
    let (c, s) = handshake(client, server, processor_server_name(LOCALHOST)).await;
    assert!(s.is_err());
    assert_eq!(
        rustls_error(&c),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn servers_require_a_client_certificate() {
    let a = authority("authority A");
    let roots = Arc::new(root_store(a.certificate_pem()).expect("roots"));
    let anonymous = danger::client_config_without_host_name_check(
        roots,
        danger::ServerKey::Any,
        None,
        VERSIONS,
    )
    .expect("client config");
    let (c, s) = handshake(
        Arc::new(anonymous),
        pairing_server(&a),
        processor_server_name(LOCALHOST),
    )
    .await;
    assert!(c.is_err() && s.is_err(), "{c:?} / {s:?}");
}

#[tokio::test]
async fn main_port_handshake_with_the_issued_certificate_and_no_sni() {
    let (ca, credential) = claimed(1);
    let (_, server) = main_server(&ca);
    let client = main_client_config(&credential).expect("client config");
    let (c, s) = handshake(client, server, processor_server_name(LOCALHOST)).await;
    c.expect("client side");
    assert_eq!(s.expect("server side").sni, None);
}

#[tokio::test]
async fn main_port_refuses_a_certificate_issued_by_another_processor() {
    let (ca, _) = claimed(1);
    let (_, other_credential) = claimed(2);
    let (_, server) = main_server(&ca);
    // Trust the right CA, present the other processor's certificate.
    let stranger = Credential {
        processor_ca_pem: ca.certificate_pem().to_owned(),
        ..other_credential
    };
    let client = main_client_config(&stranger).expect("client config");
    let (c, s) = handshake(client, server, processor_server_name(LOCALHOST)).await;
    assert!(s.is_err());
    assert_eq!(
        rustls_error(&c),
        rustls::Error::AlertReceived(AlertDescription::BadCertificate)
    );
}

#[tokio::test]
async fn main_port_client_trusts_only_its_processors_ca() {
    let (ca, credential) = claimed(1);
    let (other_ca, _) = claimed(2);
    // Another processor's server that would accept our certificate.
    let server_identity = other_ca.issue("main port", ec_key()).expect("server");
    let server = main_server_config(&server_identity, ca.certificate_pem()).expect("config");
    let client = main_client_config(&credential).expect("client config");
    let (c, s) = handshake(client, server, processor_server_name(LOCALHOST)).await;
    assert!(s.is_err());
    assert_eq!(
        rustls_error(&c),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[tokio::test]
async fn main_port_client_holds_the_server_to_its_pinned_key() {
    let (ca, mut credential) = claimed(1);
    let (server_identity, server) = main_server(&ca);

    credential.server_identity = Some(ServerIdentity {
        public_key_der: server_identity.key.public_key_der(),
    });
    let client = main_client_config(&credential).expect("client config");
    let (c, _) = handshake(client, server.clone(), processor_server_name(LOCALHOST)).await;
    c.expect("the pinned key is accepted");

    // Same CA, another key: a second device with a certificate from it.
    credential.server_identity = Some(ServerIdentity {
        public_key_der: ec_key().public_key_der(),
    });
    let client = main_client_config(&credential).expect("client config");
    let (c, s) = handshake(client, server, processor_server_name(LOCALHOST)).await;
    assert!(s.is_err());
    match rustls_error(&c) {
        rustls::Error::InvalidCertificate(CertificateError::Other(e)) => {
            assert!(e.to_string().contains("not the one recorded"), "{e}");
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
}

#[test]
fn configs_refuse_an_anchor_that_is_not_a_certificate() {
    let a = authority("authority A");
    let mut identity = pairing_identity(&a);
    identity.authority_ca_pem = "nothing here".to_owned();
    assert!(matches!(
        pairing_client_config(&identity),
        Err(TlsError::BadCertificate { .. })
    ));
}
