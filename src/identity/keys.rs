//! Private keys and certificate requests.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, SigningKey};
use zeroize::Zeroizing;

use super::IdentityError;

/// The kind of key a client generates.
///
/// RSA-2048 is the default because that is what real clients send the
/// processor (pylutron-caseta, Home Assistant, the vendor's apps): a
/// processor firmware that only ever saw RSA requests is not where handoff
/// should find out whether it accepts EC ones. EC P-256 is there for the
/// simulator and for tests, where it is faster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    #[default]
    Rsa2048,
    EcdsaP256,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa2048 => "RSA-2048",
            KeyAlgorithm::EcdsaP256 => "EC P-256",
        })
    }
}

/// A private key: a client's, a server's or an authority's.
///
/// Its `Debug` names the algorithm only; the key itself comes out through
/// [`PrivateKey::to_pem`], and only to be written to a 0600 file or handed
/// to rustls.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm_name())
            .finish_non_exhaustive()
    }
}

/// A private key in PEM (PKCS#8), wiped from memory when dropped. It has no
/// `Debug` and no `Display`, so it cannot end up in a log by accident.
pub struct PrivateKeyPem(Zeroizing<String>);

impl PrivateKeyPem {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl PrivateKey {
    /// A fresh key of this kind.
    ///
    /// # Errors
    /// [`IdentityError::KeyGeneration`] if the crypto library fails.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, IdentityError> {
        let alg = match algorithm {
            KeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        };
        let pair = KeyPair::generate_for(alg)
            .map_err(|source| IdentityError::KeyGeneration { algorithm, source })?;
        Ok(PrivateKey { pair })
    }

    /// Reads a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM key.
    ///
    /// # Errors
    /// [`IdentityError::BadKey`] if it is not such a key. The message never
    /// quotes the input.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let pair = KeyPair::from_pem(pem).map_err(|e| IdentityError::BadKey {
            reason: e.to_string(),
        })?;
        Ok(PrivateKey { pair })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> PrivateKeyPem {
        PrivateKeyPem(Zeroizing::new(self.pair.serialize_pem()))
    }

    /// The DER SubjectPublicKeyInfo of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// Signs `message` with the key's own scheme: RSA PKCS#1 v1.5 SHA-256,
    /// or ECDSA P-256 SHA-256 (ASN.1 DER). The claim's proof of possession
    /// ([`crate::proto::possession`]).
    ///
    /// # Errors
    /// [`IdentityError::BadKey`] if the crypto library refuses (the error
    /// never quotes the key).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.pair.sign(message).map_err(|e| IdentityError::BadKey {
            reason: e.to_string(),
        })
    }

    /// The key's algorithm, when it is one handoff generates.
    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        let alg = self.pair.algorithm();
        if alg == &rcgen::PKCS_RSA_SHA256 {
            Some(KeyAlgorithm::Rsa2048)
        } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyAlgorithm::EcdsaP256)
        } else {
            None
        }
    }

    fn algorithm_name(&self) -> String {
        match self.algorithm() {
            Some(a) => a.to_string(),
            None => format!("{:?}", self.pair.algorithm()),
        }
    }

    /// A certificate request in PEM, with `CN=<display_name>` and nothing
    /// else, as real clients send it (processor-protocol.md §2 step 3):
    /// the processor decides the rest.
    ///
    /// # Errors
    /// [`IdentityError::Build`] if the name cannot be encoded.
    pub fn csr_pem(&self, display_name: &str) -> Result<String, IdentityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, display_name);
        let build = |source| IdentityError::Build {
            what: "certificate request",
            source,
        };
        params
            .serialize_request(&self.pair)
            .map_err(build)?
            .pem()
            .map_err(build)
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// A key and the certificate issued for it: what one side of a TLS
/// connection presents.
#[derive(Debug)]
pub struct TlsIdentity {
    pub key: PrivateKey,
    /// PEM of the certificate, leaf first, then any intermediates.
    pub certificate_pem: String,
}
