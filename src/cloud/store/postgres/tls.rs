//! TLS to the cloud database, when the `--database` URL asks for it.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` only, and no
//! `sslrootcert`; libpq's URLs also say `verify-ca`, `verify-full` and
//! where the CA is. So those two parameters are taken out of the URL here
//! and the rest is handed to tokio-postgres with `sslmode=require`:
//!
//! - no `sslmode`, `disable`, `allow` or `prefer`: no TLS (a Unix socket,
//!   or a private network), as before;
//! - `require`, `verify-ca`, `verify-full`: TLS through tokio-postgres-rustls
//!   on the tree's one crypto provider (aws-lc-rs), and the server's
//!   certificate must chain to `sslrootcert=FILE` (PEM). `verify-full`
//!   also checks that it names the host; `require` and `verify-ca` check
//!   the chain only. libpq's `require` checks nothing at all without a
//!   root file; here an unchecked certificate is refused instead (a TLS
//!   session to whoever answers protects nothing), so `sslrootcert` is
//!   required.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::cloud::CloudError;

/// What the URL asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    Plain,
    Tls { root: PathBuf, check_name: bool },
}

/// Splits `url` into what tokio-postgres reads and the TLS it asks for.
///
/// # Errors
/// An `sslmode` this build does not know, or TLS without `sslrootcert`.
pub(super) fn split(url: &str) -> Result<(String, Wanted), CloudError> {
    let is_uri = url.starts_with("postgresql://") || url.starts_with("postgres://");
    let (mut rest, mut mode, mut root) = (Vec::new(), None, None);
    let (head, params): (&str, Vec<&str>) = if is_uri {
        match url.split_once('?') {
            Some((head, query)) => (head, query.split('&').collect()),
            None => (url, Vec::new()),
        }
    } else {
        ("", url.split_whitespace().collect())
    };
    for param in params {
        match param.split_once('=') {
            Some(("sslmode", v)) => mode = Some(decode(v)),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(decode(v))),
            _ => rest.push(param),
        }
    }
    let wanted = match mode.as_deref() {
        None => Wanted::Plain,
        // tokio-postgres does not know `allow`; without a TLS connector
        // `prefer` is plain anyway.
        Some("disable" | "allow" | "prefer") => {
            rest.push("sslmode=disable");
            Wanted::Plain
        }
        Some(mode @ ("require" | "verify-ca" | "verify-full")) => {
            let Some(root) = root else {
                return Err(CloudError::Failed(format!(
                    "the --database URL asks for TLS (sslmode={mode}) but names no CA: add \
                     sslrootcert=FILE, the PEM certificate of the CA that signed the database \
                     server's certificate"
                )));
            };
            rest.push("sslmode=require");
            Wanted::Tls {
                root,
                check_name: mode == "verify-full",
            }
        }
        Some(other) => {
            return Err(CloudError::Failed(format!(
                "the --database URL has sslmode={other}: use disable, prefer, require, verify-ca \
                 or verify-full"
            )));
        }
    };
    let joined = if is_uri {
        if rest.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", rest.join("&"))
        }
    } else {
        rest.join(" ")
    };
    Ok((joined, wanted))
}

/// `%xx` escapes of a URL's query value (a path's `/` may be `%2F`).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client configuration: TLS 1.2 and 1.3 (PostgreSQL servers speak
/// both), trusting only the certificates in `root`.
///
/// # Errors
/// The file cannot be read or holds no usable certificate.
pub(super) fn client_config(
    root: &std::path::Path,
    check_name: bool,
) -> Result<ClientConfig, CloudError> {
    let unusable = |why: String| {
        CloudError::Failed(format!(
            "the database CA in sslrootcert={}: {why}",
            root.display()
        ))
    };
    let pem = std::fs::read(root).map_err(|e| unusable(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| unusable(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| unusable(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(unusable("no certificate in it".into()));
    }
    let provider = crate::tls::provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| unusable(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(e.to_string()))?;
    let config = if check_name {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
    }
    .with_no_client_auth();
    Ok(config)
}

/// `verify-ca`: the chain is checked as [`WebPkiServerVerifier`] does,
/// but not the name in it.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_key_value_strings() {
        let (url, wanted) = split(
            "postgresql://u@db.example:5432/h?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://u@db.example:5432/h?application_name=a&sslmode=require"
        );
        assert_eq!(
            wanted,
            Wanted::Tls {
                root: "/etc/ca.pem".into(),
                check_name: true
            }
        );
        let (url, wanted) =
            split("host=db dbname=h sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(url, "host=db dbname=h sslmode=require");
        assert_eq!(
            wanted,
            Wanted::Tls {
                root: "/ca.pem".into(),
                check_name: false
            }
        );
        let socket = "postgresql://postgres@/h?host=/run/postgresql";
        assert_eq!(split(socket).unwrap(), (socket.to_owned(), Wanted::Plain));
        assert_eq!(
            split("postgresql://p@/h?sslmode=prefer").unwrap().0,
            "postgresql://p@/h?sslmode=disable"
        );
    }

    #[test]
    fn tls_without_a_ca_or_an_unknown_mode_is_refused_in_one_line() {
        for (url, says) in [
            ("postgresql://p@db/h?sslmode=require", "sslrootcert=FILE"),
            (
                "postgresql://p@db/h?sslmode=verify-full",
                "sslrootcert=FILE",
            ),
            (
                "postgresql://p@db/h?sslmode=sometimes",
                "use disable, prefer",
            ),
        ] {
            let e = split(url).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains('\n'), "{url}: {e}");
        }
        let e = client_config(std::path::Path::new("/nonexistent/ca.pem"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslrootcert=/nonexistent/ca.pem"), "{e}");
    }
}
