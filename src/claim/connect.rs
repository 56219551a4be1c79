//! Connecting to the processor's two ports for a claim: the pairing port,
//! where the button is pressed and our CSR signed, then the main port, where
//! the new certificate must get us in and the processor must say who it is.
//!
//! The protocol on each port is `leap`'s ([`crate::leap::pair_reporting`],
//! [`MainClient`]); what is here is the TLS around it (which identity, which
//! anchor, the pinned key) and turning each way it fails into a
//! [`ClaimError`] that tells the integrator what to do.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::{AlertDescription, ClientConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{ClaimError, ClaimProgress, Resolved};
use crate::identity::{Credential, PairingIdentity, ServerIdentity};
use crate::leap::pairing::{PairingClientConfig, PairingError, SignedCertificate, Stage};
use crate::leap::{
    Connection, CsrParameters, MAIN_PORT, MainClient, PAIRING_PORT, ThisDevice, pair_reporting,
};
use crate::processor::{Mac, Serial};
use crate::tls;

/// How long each connection and answer may take (pylutron-caseta's).
const STEP: Duration = Duration::from_secs(10);

/// What the processor said about itself over the authenticated channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainPortIdentity {
    pub serial: Serial,
    pub macs: Vec<Mac>,
    /// The main port's public key, pinned from now on.
    pub server: ServerIdentity,
    /// The MACs the certificates on the way name (the processor CA, the
    /// main port's chain), where the product names itself in them.
    pub certificate_macs: Vec<Mac>,
}

/// Pairs: connects to 8083 with the pairing identity, waits for the
/// press (telling `progress`), sends `csr`, returns what was signed.
pub async fn pair(
    processor: &Resolved,
    identity: &PairingIdentity,
    csr: CsrParameters,
    button_timeout: Duration,
    progress: &mut dyn ClaimProgress,
) -> Result<SignedCertificate, ClaimError> {
    let name = processor.describe();
    let config = tls::pairing_client_config(identity)?;
    let stream = match connect(config, processor.address, PAIRING_PORT).await {
        Ok(stream) => stream,
        Err(e) if refused_our_certificate(&e) => {
            return Err(ClaimError::PairingIdentityRefused { processor: name });
        }
        Err(e) if rustls_error(&e).is_some_and(tls::shows_our_identity) => {
            return Err(ClaimError::ImpostorOnPairingPort { processor: name });
        }
        Err(e) if rejected_their_certificate(&e) => {
            return Err(ClaimError::PairingIdentityUntrusted {
                processor: name,
                reason: e.to_string(),
            });
        }
        Err(e) if is_stalled_handshake(&e) => {
            return Err(ClaimError::HandshakeStalled {
                processor: name,
                port: PAIRING_PORT,
            });
        }
        Err(e) => {
            return Err(ClaimError::Unreachable {
                processor: name,
                port: PAIRING_PORT,
                reason: e.to_string(),
            });
        }
    };
    let mut conn = Connection::new(AlertWatch::new(stream));
    let mut config = PairingClientConfig::new(name.clone(), csr);
    config.button_timeout = button_timeout;
    config.step_timeout = STEP;
    progress.waiting_for_button(processor, button_timeout);
    let result = pair_reporting(&mut conn, config, |stage| {
        if stage == Stage::AwaitingCertificate {
            progress.button_pressed();
        }
    })
    .await;
    let refused = conn.get_ref().refused;
    let _ = conn.shutdown().await;
    match result {
        Ok(signed) => Ok(signed),
        Err(_) if refused => Err(ClaimError::PairingIdentityRefused { processor: name }),
        Err(PairingError::ButtonNotPressed { waited, .. }) => Err(ClaimError::ButtonNotPressed {
            processor: processor.product.clone(),
            which: which(processor),
            waited,
        }),
        Err(PairingError::ProcessorClosed { stage, how, .. }) => {
            Err(ClaimError::ProcessorVanished {
                processor: name,
                detail: format!("it closed the connection {stage}{how}"),
            })
        }
        Err(e) => Err(ClaimError::Pairing(e)),
    }
}

/// "0236e6a7, MAC 02:4c:…, at 127.0.1.1": which processor to walk to.
fn which(p: &Resolved) -> String {
    let mut parts = Vec::new();
    if let Some(serial) = p.serial {
        parts.push(serial.id());
    }
    if let Some(mac) = p.mac {
        parts.push(format!("MAC {mac}"));
    }
    parts.push(format!("at {}", p.address));
    parts.join(", ")
}

/// Opens the main port with the stored credential (the pinned key
/// checked), for a caller that reads more than the identity.
///
/// # Errors
/// [`ClaimError::IdentityChanged`] when the processor shows another key;
/// [`ClaimError::CredentialRefused`] when it no longer accepts ours;
/// [`ClaimError::MainPortRefused`] otherwise.
pub async fn open_main_port(
    processor: &Resolved,
    credential: &Credential,
) -> Result<TlsStream<TcpStream>, ClaimError> {
    let name = processor.describe();
    let config = tls::main_client_config(credential)?;
    connect(config, processor.address, MAIN_PORT)
        .await
        .map_err(|e| {
            // With a pin, any certificate failure means the processor is
            // not the one claimed (a reset gives it a new CA, too).
            let pinned = credential.server_identity.is_some();
            if rustls_error(&e).is_some_and(|r| {
                tls::is_pin_mismatch(r)
                    || (pinned && matches!(r, rustls::Error::InvalidCertificate(_)))
            }) {
                ClaimError::IdentityChanged {
                    processor: name.clone(),
                }
            } else if refused_our_certificate(&e) {
                ClaimError::CredentialRefused {
                    processor: name.clone(),
                }
            } else if is_stalled_handshake(&e) {
                ClaimError::HandshakeStalled {
                    processor: name.clone(),
                    port: MAIN_PORT,
                }
            } else {
                ClaimError::MainPortRefused {
                    processor: name.clone(),
                    reason: e.to_string(),
                }
            }
        })
}

/// Whether an I/O error on an open main-port connection is the processor
/// refusing our certificate (TLS 1.3 says so after the handshake, at the
/// first read).
pub fn is_credential_refusal(e: &io::Error) -> bool {
    refused_our_certificate(e)
}

/// Reads who the processor is over the main port, with the credential.
///
/// # Errors
/// As [`open_main_port`], and [`ClaimError::MainPortProtocol`].
pub async fn read_identity(
    processor: &Resolved,
    credential: &Credential,
) -> Result<MainPortIdentity, ClaimError> {
    let name = processor.describe();
    let stream = open_main_port(processor, credential).await?;
    let server = server_identity(&stream).ok_or_else(|| ClaimError::MainPortRefused {
        processor: name.clone(),
        reason: "it showed no readable certificate".into(),
    })?;
    let mut ders: Vec<Vec<u8>> =
        rustls::pki_types::CertificateDer::pem_slice_iter(credential.processor_ca_pem.as_bytes())
            .filter_map(Result::ok)
            .map(|c| c.to_vec())
            .collect();
    if let Some(chain) = stream.get_ref().1.peer_certificates() {
        ders.extend(chain.iter().map(|c| c.to_vec()));
    }
    let certificate_macs = named_macs(ders.iter().map(Vec::as_slice));
    let ThisDevice { serial, macs } = MainClient::new(stream, "handoff-claim", STEP)
        .this_device()
        .await
        .map_err(|e| ClaimError::MainPortProtocol {
            processor: name.clone(),
            reason: e.to_string(),
        })?;
    Ok(MainPortIdentity {
        serial,
        macs,
        server,
        certificate_macs,
    })
}

/// The MACs these certificates (DER) name in a subject common name of the
/// form `SmartBridge<12 hex digits>`, the Caséta bridge's CA
/// (processor-protocol.md §2). Certificates that do not parse or name
/// otherwise are skipped.
pub fn named_macs<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> Vec<Mac> {
    let mut macs = Vec::new();
    for der in ders {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            continue;
        };
        for cn in cert.subject().iter_common_name() {
            let Some(hex) = cn.as_str().ok().and_then(|s| s.strip_prefix("SmartBridge")) else {
                continue;
            };
            if let Some(mac) = mac_from_hex(hex)
                && !macs.contains(&mac)
            {
                macs.push(mac);
            }
        }
    }
    macs
}

fn mac_from_hex(hex: &str) -> Option<Mac> {
    crate::hex::decode(hex)?.try_into().ok().map(Mac)
}

fn server_identity(stream: &TlsStream<TcpStream>) -> Option<ServerIdentity> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(ServerIdentity {
        public_key_der: cert.public_key().raw.to_vec(),
    })
}

async fn connect(
    config: Arc<ClientConfig>,
    ip: IpAddr,
    port: u16,
) -> io::Result<TlsStream<TcpStream>> {
    let deadline = tokio::time::Instant::now() + STEP;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect((ip, port)))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no TCP connection within 10 s",
            ))
        })?;
    // Small request/response frames, each its own write: without this,
    // Nagle holds a frame until the previous one is acknowledged, and the
    // peer's delayed ACK adds ~40 ms per round trip.
    tcp.set_nodelay(true)?;
    let handshake = TlsConnector::from(config).connect(tls::processor_server_name(ip), tcp);
    tokio::time::timeout_at(deadline, handshake)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, HandshakeStalled)))
}

/// The TCP connection opened but the TLS handshake did not finish in
/// time: small packets pass and the big ones (the processor's certificate
/// chain) do not, as where two subnets disagree on the MTU.
#[derive(Debug)]
struct HandshakeStalled;

impl std::fmt::Display for HandshakeStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the TLS handshake stalled after the TCP connection opened"
        )
    }
}

impl std::error::Error for HandshakeStalled {}

fn is_stalled_handshake(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<HandshakeStalled>())
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The processor sent an alert saying our certificate is not acceptable
/// (real processors send 42 "bad certificate").
fn refused_our_certificate(e: &io::Error) -> bool {
    matches!(
        rustls_error(e),
        Some(rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRequired
        ))
    )
}

/// We did not accept the processor's certificate.
fn rejected_their_certificate(e: &io::Error) -> bool {
    matches!(rustls_error(e), Some(rustls::Error::InvalidCertificate(_)))
}

/// A stream that remembers whether the peer refused our certificate: under
/// TLS 1.3 that alert arrives on the first read after the handshake, deep
/// inside the pairing driver, which keeps only its text.
struct AlertWatch<S> {
    inner: S,
    refused: bool,
}

impl<S> AlertWatch<S> {
    fn new(inner: S) -> Self {
        AlertWatch {
            inner,
            refused: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AlertWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &poll
            && refused_our_certificate(e)
        {
            this.refused = true;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AlertWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CertificateAuthority;

    /// A Caséta bridge's CA writes its MAC upper case; any case reads.
    #[test]
    fn a_bridge_cas_common_name_names_its_mac() {
        let mac = Mac([0x02, 0x4c, 0xab, 0xcd, 0xef, 0x01]);
        let ca = CertificateAuthority::processor_ca(mac).unwrap();
        assert_eq!(named_macs([ca.certificate_der().as_ref()]), vec![mac]);
        assert_eq!(mac_from_hex("024cabcdef01"), Some(mac));
        for bad in [
            "024cabcdef0",
            "024cabcdef012",
            "024cabcdef0g",
            "+24cabcdef01",
            "",
        ] {
            assert_eq!(mac_from_hex(bad), None, "{bad:?}");
        }
    }
}
