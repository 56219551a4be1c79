//! Keys, requests, the processor's signing profile and the client's checks.
//! Files: `tests_files.rs`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::*;
use crate::processor::Mac;

pub(super) fn ec_key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("EC key")
}

pub(super) fn authority() -> CertificateAuthority {
    CertificateAuthority::pairing_authority("test authority").expect("authority")
}

fn cert_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = cert_der(pem);
    let (_, cert) = X509Certificate::from_der(der.as_ref()).expect("certificate DER");
    f(&cert)
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("CN")
        .to_owned()
}

fn pem(label: &str, der: &[u8]) -> String {
    store::pem_encode(label, der)
}

#[test]
fn rsa_2048_is_the_default_client_key_and_its_request_names_the_display_name() {
    let key = PrivateKey::generate(KeyAlgorithm::default()).expect("RSA key");
    assert_eq!(key.algorithm(), Some(KeyAlgorithm::Rsa2048));
    let csr_pem = key.csr_pem("handoff on laptop").expect("CSR");
    assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));

    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).expect("PEM");
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).expect("DER");
    csr.verify_signature().expect("self-signed request");
    let info = &csr.certification_request_info;
    let cn = info.subject.iter_common_name().next().expect("CN");
    assert_eq!(cn.as_str().expect("text"), "handoff on laptop");
    match info.subject_pki.parsed().expect("key") {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        other => panic!("expected an RSA key, got {other:?}"),
    }
}

#[test]
fn issued_certificate_has_the_processor_profile_whatever_the_key() {
    let ca = authority();
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let key = PrivateKey::generate(alg).expect("key");
        let csr = key.csr_pem("Living room iPad").expect("CSR");
        let cert = sign_client_csr(&csr, &ca).expect("signed");
        with_cert(&cert, |c| {
            assert_eq!(common_name(c), "Living room iPad");
            let bc = c.basic_constraints().expect("one").expect("present");
            assert!(!bc.value.ca, "CA:FALSE");
            let ku = c.key_usage().expect("one").expect("present").value;
            assert!(ku.digital_signature() && ku.key_encipherment());
            assert!(!ku.key_cert_sign() && !ku.crl_sign());
            let eku = c.extended_key_usage().expect("one").expect("present").value;
            assert!(eku.server_auth && eku.client_auth && !eku.any);
            assert_eq!(c.public_key().raw, key.public_key_der().as_slice());
        });
        check_signed_certificate(&key, &cert, ca.certificate_pem()).expect("chains to the CA");
    }
}

#[test]
fn a_request_to_be_a_ca_still_gets_ca_false() {
    let key = ec_key();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sneaky");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let csr = params
        .serialize_request(key.pair())
        .expect("CSR")
        .pem()
        .expect("PEM");
    // The request really asks for it, so the test would see a leak.
    let der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()).expect("PEM");
    let (_, parsed) = X509CertificationRequest::from_der(der.as_ref()).expect("DER");
    assert!(
        parsed
            .requested_extensions()
            .expect("extensions")
            .any(|e| matches!(
                e,
                x509_parser::extensions::ParsedExtension::BasicConstraints(bc) if bc.ca
            ))
    );

    let cert = sign_client_csr(&csr, &authority()).expect("signed");
    with_cert(&cert, |c| {
        assert!(
            !c.basic_constraints()
                .expect("one")
                .expect("present")
                .value
                .ca
        );
        assert!(
            !c.key_usage()
                .expect("one")
                .expect("present")
                .value
                .key_cert_sign()
        );
        assert_eq!(common_name(c), "sneaky");
    });
}

#[test]
fn a_request_whose_signature_does_not_verify_is_refused() {
    let csr = ec_key().csr_pem("tampered").expect("CSR");
    let mut der = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        .expect("PEM")
        .as_ref()
        .to_vec();
    // The signature is the request's last field: change its last byte.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = sign_client_csr(&pem("CERTIFICATE REQUEST", &der), &authority())
        .expect_err("a bad signature must be refused");
    assert!(
        matches!(&err, IdentityError::CsrRefused { reason } if reason.contains("signature")),
        "{err}"
    );
}

#[test]
fn garbage_instead_of_a_request_is_refused() {
    let ca = authority();
    for garbage in [
        "",
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        let err = sign_client_csr(garbage, &ca).expect_err("garbage");
        assert!(matches!(err, IdentityError::CsrRefused { .. }), "{err}");
    }
    // A certificate is not a request either.
    let err = sign_client_csr(ca.certificate_pem(), &ca).expect_err("a certificate");
    assert!(matches!(err, IdentityError::CsrRefused { .. }), "{err}");
}

#[test]
fn processor_ca_is_a_long_lived_self_signed_p256_smartbridge_ca() {
    let ca =
        CertificateAuthority::processor_ca(Mac([0xb8, 0xd3, 0xc5, 0x0a, 0x1b, 0x2c])).expect("CA");
    with_cert(ca.certificate_pem(), |c| {
        assert_eq!(common_name(c), "SmartBridgeB8D3C50A1B2C");
        assert_eq!(c.subject(), c.issuer());
        c.verify_signature(None).expect("self-signed");
        assert!(
            c.basic_constraints()
                .expect("one")
                .expect("present")
                .value
                .ca
        );
        match c.public_key().parsed().expect("key") {
            x509_parser::public_key::PublicKey::EC(point) => assert_eq!(point.key_size(), 256),
            other => panic!("expected EC P-256, got {other:?}"),
        }
        let years = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp())
            / (365 * 24 * 3600);
        assert!(years >= 15, "valid for {years} years");
    });
}

#[test]
fn client_check_refuses_a_certificate_for_another_key() {
    let ca = authority();
    let ours = ec_key();
    let theirs = ec_key();
    let cert = sign_client_csr(&theirs.csr_pem("x").expect("CSR"), &ca).expect("signed");
    let err = check_signed_certificate(&ours, &cert, ca.certificate_pem()).expect_err("mismatch");
    assert!(matches!(err, IdentityError::KeyMismatch), "{err}");
}

#[test]
fn client_check_refuses_a_certificate_not_signed_by_the_returned_root() {
    let signer = authority();
    let impostor = authority(); // same name, other key
    let key = ec_key();
    let cert = sign_client_csr(&key.csr_pem("x").expect("CSR"), &signer).expect("signed");
    let err =
        check_signed_certificate(&key, &cert, impostor.certificate_pem()).expect_err("wrong root");
    assert!(
        matches!(err, IdentityError::NotSignedByRoot { .. }),
        "{err}"
    );
    let err = check_signed_certificate(&key, "not pem", signer.certificate_pem())
        .expect_err("no certificate");
    assert!(matches!(err, IdentityError::BadCertificate { .. }), "{err}");
}

#[test]
fn debug_output_never_shows_a_private_key() {
    let key = ec_key();
    let pem = key.to_pem();
    let body = pem
        .as_str()
        .lines()
        .nth(1)
        .expect("a base64 line")
        .to_owned();
    let ca = authority();
    let identity = ca.issue("x", ec_key()).expect("issued");
    for shown in [
        format!("{key:?}"),
        format!("{ca:?}"),
        format!("{identity:?}"),
        format!("{:?}", ca.key()),
    ] {
        assert!(!shown.contains(&body[..20]), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
    assert_eq!(
        format!("{key:?}"),
        "PrivateKey { algorithm: \"EC P-256\", .. }"
    );
}

#[test]
fn a_key_survives_pem_and_an_authority_its_certificate_and_key() {
    let ca = authority();
    let key = PrivateKey::from_pem(ca.key().to_pem().as_str()).expect("key back");
    let back = CertificateAuthority::from_pem(ca.certificate_pem(), key).expect("CA back");
    let client = ec_key();
    let cert = sign_client_csr(&client.csr_pem("x").expect("CSR"), &back).expect("signed");
    check_signed_certificate(&client, &cert, ca.certificate_pem()).expect("same authority");

    let err = CertificateAuthority::from_pem(ca.certificate_pem(), ec_key()).expect_err("key");
    assert!(matches!(err, IdentityError::KeyMismatch), "{err}");
    assert!(matches!(
        PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(IdentityError::BadKey { .. })
    ));
}
