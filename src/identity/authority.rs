//! The processor's side: authorities and what they sign.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use super::IdentityError;
use super::keys::{KeyAlgorithm, PrivateKey, TlsIdentity};
use crate::processor::Mac;

/// How long an authority's certificate is valid. Caséta bridges issue
/// their CA for decades; twenty years outlives any installation.
const AUTHORITY_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// How long an issued certificate is valid.
const ISSUED_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Back-dating of `notBefore`, so a peer whose clock is a little behind
/// still accepts a certificate issued a moment ago.
const CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

/// A self-signed EC P-256 certificate authority with its key: a
/// processor's own CA, or a pairing authority.
pub struct CertificateAuthority {
    key: PrivateKey,
    certificate_pem: String,
    certificate_der: CertificateDer<'static>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A processor CA as a Caséta bridge makes it: `CN=SmartBridge` and the
    /// MAC's 12 hex digits (upper case), self-signed, EC P-256.
    ///
    /// # Errors
    /// [`IdentityError::KeyGeneration`] or [`IdentityError::Build`].
    pub fn processor_ca(mac: Mac) -> Result<Self, IdentityError> {
        let hex = crate::hex::encode(&mac.0).to_uppercase();
        Self::self_signed(&format!("SmartBridge{hex}"))
    }

    /// A pairing authority: the issuer of the certificates that clients and
    /// the processor show each other on the pairing port. Real processors
    /// trust the vendor's; the simulator makes its own.
    ///
    /// # Errors
    /// [`IdentityError::KeyGeneration`] or [`IdentityError::Build`].
    pub fn pairing_authority(common_name: &str) -> Result<Self, IdentityError> {
        Self::self_signed(common_name)
    }

    fn self_signed(common_name: &str) -> Result<Self, IdentityError> {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, AUTHORITY_VALIDITY);
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(key.pair())
            .map_err(|source| IdentityError::Build {
                what: "authority certificate",
                source,
            })?;
        Ok(CertificateAuthority {
            certificate_pem: cert.pem(),
            certificate_der: cert.der().clone(),
            key,
        })
    }

    /// An authority read back from its certificate and key.
    ///
    /// # Errors
    /// [`IdentityError::BadCertificate`] if the PEM is not one certificate,
    /// or [`IdentityError::KeyMismatch`] if `key` is not the certificate's.
    pub fn from_pem(certificate_pem: &str, key: PrivateKey) -> Result<Self, IdentityError> {
        let certificate_der = first_certificate(certificate_pem, "authority certificate")?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&certificate_der)
            .map_err(|e| IdentityError::BadCertificate {
                what: "authority certificate",
                reason: e.to_string(),
            })?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(CertificateAuthority {
            key,
            certificate_pem: certificate_pem.to_owned(),
            certificate_der,
        })
    }

    /// The authority's certificate, PEM: what a client is given as the
    /// `RootCertificate` and what a peer trusts.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Issues a certificate for `key`, with the one profile this authority
    /// ever issues (see [`sign_client_csr`]). The simulator uses it for its
    /// own server certificates and for the client identity it exports.
    ///
    /// # Errors
    /// [`IdentityError::Build`] if rcgen cannot build it.
    pub fn issue(&self, common_name: &str, key: PrivateKey) -> Result<TlsIdentity, IdentityError> {
        let certificate_pem = self.issue_for(common_name, Vec::new(), key.pair())?;
        Ok(TlsIdentity {
            key,
            certificate_pem,
        })
    }

    /// As [`Self::issue`], with the account's email as an rfc822Name
    /// subject alternative name: the cloud's daemon identities, which name
    /// the account a daemon acts for.
    ///
    /// # Errors
    /// [`IdentityError::Build`] if the email is not ASCII or rcgen cannot
    /// build the certificate.
    pub fn issue_for_account(
        &self,
        common_name: &str,
        email: &str,
        key: PrivateKey,
    ) -> Result<TlsIdentity, IdentityError> {
        let email =
            rcgen::string::Ia5String::try_from(email).map_err(|source| IdentityError::Build {
                what: "account name",
                source,
            })?;
        let certificate_pem = self.issue_for(
            common_name,
            vec![rcgen::SanType::Rfc822Name(email)],
            key.pair(),
        )?;
        Ok(TlsIdentity {
            key,
            certificate_pem,
        })
    }

    /// As [`Self::issue`], for a web server: the host names and IP
    /// addresses a browser will check, as DNS and IP subject alternative
    /// names (the Places portal's certificate).
    ///
    /// # Errors
    /// [`IdentityError::Build`] if a name is not ASCII or rcgen cannot
    /// build the certificate.
    pub fn issue_for_hosts(
        &self,
        common_name: &str,
        hosts: &[String],
        key: PrivateKey,
    ) -> Result<TlsIdentity, IdentityError> {
        let mut names = Vec::new();
        for host in hosts {
            names.push(match host.parse::<std::net::IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName(
                    rcgen::string::Ia5String::try_from(host.as_str()).map_err(|source| {
                        IdentityError::Build {
                            what: "host name",
                            source,
                        }
                    })?,
                ),
            });
        }
        let certificate_pem = self.issue_for(common_name, names, key.pair())?;
        Ok(TlsIdentity {
            key,
            certificate_pem,
        })
    }

    fn issue_for(
        &self,
        common_name: &str,
        subject_alt_names: Vec<rcgen::SanType>,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<String, IdentityError> {
        let build = |source| IdentityError::Build {
            what: "issued certificate",
            source,
        };
        let issuer =
            Issuer::from_ca_cert_der(&self.certificate_der, self.key.pair()).map_err(build)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(common_name);
        params.subject_alt_names = subject_alt_names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, ISSUED_VALIDITY);
        params.serial_number = Some(random_serial()?);
        Ok(params.signed_by(public_key, &issuer).map_err(build)?.pem())
    }
}

/// Signs a client's certificate request as a processor does.
///
/// The request only contributes its public key and its common name: any
/// extension it carries (basic constraints asking to be a CA, key usages,
/// names) is ignored, and the certificate always says CA:FALSE, key usage
/// digitalSignature + keyEncipherment, extended key usage serverAuth +
/// clientAuth, `CN=` the request's CN (processor-protocol.md §2).
///
/// # Errors
/// [`IdentityError::CsrRefused`] if the PEM holds no certificate request,
/// the request's signature does not verify (it was not made with the key it
/// carries), it has no common name, or its key is of a kind that cannot be
/// certified; [`IdentityError::Build`] if signing fails.
pub fn sign_client_csr(csr_pem: &str, ca: &CertificateAuthority) -> Result<String, IdentityError> {
    let refused = |reason: &str| IdentityError::CsrRefused {
        reason: reason.to_owned(),
    };
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|_| refused("it is not a PEM certificate request"))?;
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|_| refused("it is not a well-formed certificate request"))?;
    if !rest.is_empty() {
        return Err(refused("it has trailing bytes after the request"));
    }
    csr.verify_signature()
        .map_err(|_| refused("its signature does not verify with the key it carries"))?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| refused("it has no readable common name (CN)"))?;
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
        .map_err(|_| refused("its key is not RSA, EC P-256/P-384 or Ed25519"))?;
    ca.issue_for(common_name, Vec::new(), &public_key)
}

fn common_name_only(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + validity;
}

/// 16 random bytes, positive, with no leading zero byte.
fn random_serial() -> Result<SerialNumber, IdentityError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| IdentityError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The first certificate of a PEM string.
pub(crate) fn first_certificate(
    pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, IdentityError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| IdentityError::BadCertificate {
            what,
            reason: "no PEM certificate in it".to_owned(),
        })?
        .map_err(|e| IdentityError::BadCertificate {
            what,
            reason: e.to_string(),
        })
}
