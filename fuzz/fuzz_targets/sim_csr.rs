//! The simulator's CSR handling: `handoff::identity::sign_client_csr`, which
//! the simulated pairing port runs on every client's `CSR` field.
//!
//! Input: a mode byte, then
//! - mode 0: the CSR field as text (lossy UTF-8), as a client sends it;
//! - mode 1: DER, wrapped in `CERTIFICATE REQUEST` PEM armour;
//! - mode 2: the parts of a `CertificationRequestInfo` (a key byte, a
//!   version byte, a subject `Name` of one length byte plus bytes, then the
//!   raw `[0]` attributes, e.g. an extension request asking for CA:TRUE),
//!   which the harness completes with its own key and signs, so that
//!   arbitrary requests get past the signature check.
//!
//! Checks: no panic; whatever is issued is one certificate, issued by the
//! simulator's CA, for the request's key and common name, with
//! basicConstraints present and CA:FALSE and no keyCertSign usage.
#![no_main]

use std::sync::OnceLock;

use handoff::identity::{CertificateAuthority, sign_client_csr};
use handoff::processor::Mac;
use libfuzzer_sys::fuzz_target;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, X509Certificate};

struct Fixture {
    ca: CertificateAuthority,
    ed25519: KeyPair,
    p256: KeyPair,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        ca: CertificateAuthority::processor_ca(Mac([0x90, 0x70, 0x65, 0x12, 0x34, 0x56]))
            .expect("CA"),
        ed25519: KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key"),
        p256: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let csr = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => armour(rest),
        _ => match signed_request(rest) {
            Some(der) => armour(&der),
            None => return,
        },
    };
    let fixture = fixture();
    match sign_client_csr(&csr, &fixture.ca) {
        Ok(issued) => check_issued(&csr, &issued, &fixture.ca),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn armour(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

/// DER: `tag`, the definite length of `content`, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A request whose info holds the fuzzer's version, subject and attributes
/// and the harness's key, signed with that key.
fn signed_request(input: &[u8]) -> Option<Vec<u8>> {
    let (&choice, rest) = input.split_first()?;
    let (&version, rest) = rest.split_first()?;
    let (&subject_len, rest) = rest.split_first()?;
    let (subject, attributes) = rest.split_at(usize::from(subject_len).min(rest.len()));
    let fixture = fixture();
    // AlgorithmIdentifier DER: Ed25519 (1.3.101.112) or ecdsa-with-SHA256.
    let (key, algorithm): (&KeyPair, &[u8]) = if choice & 1 == 0 {
        (
            &fixture.ed25519,
            &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        )
    } else {
        (
            &fixture.p256,
            &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
        )
    };
    let mut info = vec![0x02, 0x01, version];
    info.extend_from_slice(subject);
    info.extend_from_slice(&key.subject_public_key_info());
    info.extend_from_slice(attributes);
    let info = der(0x30, &info);
    let mut signature = vec![0];
    signature.extend(key.sign(&info).ok()?);
    let mut request = info;
    request.extend_from_slice(algorithm);
    request.extend(der(0x03, &signature));
    Some(der(0x30, &request))
}

fn check_issued(csr_pem: &str, issued: &str, ca: &CertificateAuthority) {
    // Read as the library reads it (rustls' PEM reader is more lenient
    // than the pem crate's, about base64 padding for one).
    let csr_der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .expect("a signed request was PEM");
    let (_, csr) =
        X509CertificationRequest::from_der(csr_der.as_ref()).expect("a signed request parses");
    let cert_pem = pem::parse(issued).expect("the issued certificate is PEM");
    assert_eq!(cert_pem.tag(), "CERTIFICATE");
    let (rest, cert) = X509Certificate::from_der(cert_pem.contents()).expect("it parses");
    assert!(rest.is_empty(), "trailing bytes after the certificate");

    let constraints = cert
        .basic_constraints()
        .expect("one basicConstraints at most")
        .expect("basicConstraints is present");
    assert!(
        !constraints.value.ca,
        "issued a CA certificate for {csr_pem}"
    );
    if let Some(usage) = cert.key_usage().expect("one keyUsage at most") {
        assert!(
            !usage.value.key_cert_sign(),
            "issued keyCertSign for {csr_pem}"
        );
    }

    let (_, ca_cert) = X509Certificate::from_der(ca.certificate_der()).expect("CA parses");
    assert_eq!(
        cert.issuer(),
        ca_cert.subject(),
        "issued by the simulator's CA"
    );
    cert.verify_signature(Some(ca_cert.public_key()))
        .expect("signed by the simulator's CA");
    let info = &csr.certification_request_info;
    assert_eq!(
        cert.public_key().subject_public_key.data,
        info.subject_pki.subject_public_key.data,
        "certifies the request's key"
    );
    let common_name = |name: &x509_parser::x509::X509Name| {
        name.iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(common_name(cert.subject()), common_name(&info.subject));
    assert!(common_name(cert.subject()).is_some());
}
