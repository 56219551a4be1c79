//! The tokio driver of [`PairingClient`]: it only moves frames and timers.
//! The processor's side is driven by the simulator, which owns the
//! listener, the signer and the virtual button.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::connection::{Connection, ConnectionError};
use super::pairing::{
    ClientAction, Disconnect, PairingClient, PairingClientConfig, PairingError, SignedCertificate,
    Stage,
};

/// Pairs over `conn`, already connected (and, for a real processor,
/// TLS-authenticated) to the pairing port: waits for the press, sends the
/// CSR, returns what the processor signed. The button deadline starts now.
///
/// # Errors
/// Every [`PairingError`]: each names the processor and says what to do.
pub async fn pair<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    config: PairingClientConfig,
) -> Result<SignedCertificate, PairingError> {
    pair_reporting(conn, config, |_| {}).await
}

/// As [`pair`], calling `on_stage` each time the handshake moves on (the
/// button pressed, the request sent), so that a caller can stop its
/// countdown the moment the press arrives.
///
/// # Errors
/// As [`pair`].
pub async fn pair_reporting<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    config: PairingClientConfig,
    mut on_stage: impl FnMut(Stage),
) -> Result<SignedCertificate, PairingError> {
    let processor = config.processor.clone();
    let mut client = PairingClient::new(Instant::now().into_std(), config);
    let mut stage = client.stage();
    loop {
        if client.stage() != stage {
            stage = client.stage();
            on_stage(stage);
        }
        let Some(deadline) = client.poll_timeout() else {
            return Err(PairingError::Finished { processor });
        };
        let read = tokio::select! {
            read = conn.read_frame() => read,
            () = tokio::time::sleep_until(Instant::from_std(deadline)) => {
                client.handle_timeout(Instant::now().into_std())?;
                continue;
            }
        };
        let now = Instant::now().into_std();
        let how = match read {
            Ok(Some(object)) => match client.handle_frame(now, object)? {
                Some(ClientAction::Send(frame)) => match conn.write_frame(&frame).await {
                    Ok(()) => continue,
                    Err(e) => Disconnect::Error(e.to_string()),
                },
                Some(ClientAction::Paired(signed)) => return Ok(signed),
                None => continue,
            },
            Err(ConnectionError::Codec(e)) => {
                client.handle_malformed(now, &e)?;
                continue;
            }
            Ok(None) => Disconnect::Clean,
            Err(ConnectionError::ClosedMidFrame { .. }) => Disconnect::MidFrame,
            Err(ConnectionError::Io(e)) => Disconnect::Error(e.to_string()),
        };
        client.handle_disconnect(now, how)?;
        // Only a finished pairing survives a disconnect, and it returned.
        return Err(PairingError::Finished { processor });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;
    use crate::leap::message::{CsrParameters, PairingFrame};

    fn config() -> PairingClientConfig {
        PairingClientConfig::new(
            "Smart Bridge 0236e6a7",
            CsrParameters::admin("CSR", "handoff"),
        )
    }

    #[tokio::test]
    async fn pairs_with_a_processor_over_a_stream() {
        let (ours, theirs) = duplex(4096);
        let processor = tokio::spawn(async move {
            let mut conn = Connection::new(theirs);
            conn.write_frame(&PairingFrame::physical_access())
                .await
                .unwrap();
            let request = conn.read_frame().await.unwrap().unwrap();
            let PairingFrame::CsrRequest {
                client_tag,
                parameters,
            } = PairingFrame::from_object(request).unwrap()
            else {
                panic!("not a CSR")
            };
            assert_eq!(parameters.csr, "CSR");
            let result = PairingFrame::signing_result(client_tag, "CERT", "ROOT");
            conn.write_frame(&result).await.unwrap();
        });
        let signed = pair(&mut Connection::new(ours), config()).await.unwrap();
        assert_eq!(
            (
                signed.certificate.as_str(),
                signed.root_certificate.as_str()
            ),
            ("CERT", "ROOT")
        );
        processor.await.unwrap();
    }

    #[tokio::test]
    async fn gives_up_when_the_button_deadline_passes() {
        let (ours, _theirs) = duplex(4096);
        let config = PairingClientConfig {
            button_timeout: Duration::from_millis(30),
            ..config()
        };
        let err = pair(&mut Connection::new(ours), config).await.unwrap_err();
        assert!(
            matches!(err, PairingError::ButtonNotPressed { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn reports_a_processor_that_hangs_up_mid_message() {
        let (ours, mut theirs) = duplex(4096);
        theirs.write_all(b"{\"Header\":").await.unwrap();
        drop(theirs);
        let err = pair(&mut Connection::new(ours), config())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PairingError::ProcessorClosed {
                processor: "Smart Bridge 0236e6a7".into(),
                stage: Stage::AwaitingButton,
                how: Disconnect::MidFrame,
            }
        );
    }

    #[tokio::test]
    async fn reports_garbage_from_the_processor() {
        let (ours, mut theirs) = duplex(4096);
        theirs.write_all(b"SSH-2.0-dropbear\r\n").await.unwrap();
        let err = pair(&mut Connection::new(ours), config())
            .await
            .unwrap_err();
        assert!(matches!(err, PairingError::Malformed { .. }), "{err:?}");
    }
}
