//! A raw relay connection to `handoff cloud serve`, as a site daemon's
//! would be: mutual TLS with an enrolled bundle, frames sent and read one
//! by one, so a test can pipeline, resend and read every answer.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use handoff::cloud::authority::DaemonIdentity;
use handoff::proto::{self, Hello, RelayMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// One connection; `recv` waits up to 10 s for a frame, `recv_within`
/// as long as it is told.
pub struct Conn {
    pub tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr, bundle: &Path) -> std::io::Result<Conn> {
        let identity = DaemonIdentity::load(bundle).expect("bundle");
        let config =
            handoff::tls::cloud_client_config(&identity.identity, &identity.cloud_ca_pem).unwrap();
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from(handoff::tls::CLOUD_SERVER_NAME)
            .unwrap()
            .to_owned();
        let tls = TlsConnector::from(Arc::clone(&config))
            .connect(name, tcp)
            .await?;
        Ok(Conn {
            tls,
            buf: Vec::new(),
        })
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.expect("write");
        self.tls.flush().await.expect("flush");
    }

    pub async fn send(&mut self, messages: &[RelayMessage]) {
        let mut out = Vec::new();
        for m in messages {
            out.extend(proto::encode(m).unwrap());
        }
        self.send_raw(&out).await;
    }

    /// The next message, or `None` at a clean end of stream (or an error
    /// such as a refused handshake).
    pub async fn recv(&mut self) -> Option<RelayMessage> {
        self.recv_within(Duration::from_secs(10)).await
    }

    /// [`Conn::recv`], waiting up to `limit` for each read.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<RelayMessage> {
        loop {
            if let Some(len) = proto::check(&self.buf).expect("the cloud sends sane frames") {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Some(proto::decode(&frame).expect("the cloud's frame decodes"));
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(limit, self.tls.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("the cloud answers within {limit:?}"));
            match n {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub async fn hello(&mut self) {
        self.send(&[RelayMessage::Hello(Hello {
            versions: vec![1],
            software: Some("cloud test".into()),
        })])
        .await;
        match self.recv().await {
            Some(RelayMessage::HelloAck(ack)) => assert_eq!(ack.version, 1),
            other => panic!("expected hello-ack, got {other:?}"),
        }
    }
}
