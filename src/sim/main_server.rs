//! A simulated processor's main port (8081): newline JSON communiqués over
//! mutual TLS, answered by [`super::main_routes::respond`]. A bad line is
//! answered with `400 BadRequest` and the connection goes on; a line too
//! long to skip is answered so, then the connection is closed, since
//! nothing after it can be trusted to start a frame.

use tokio::io::{AsyncRead, AsyncWrite};

use super::SimProcessor;
use super::main_routes::{respond, unreadable};
use crate::leap::connection::{Connection, ConnectionError};
use crate::leap::message::Communique;

/// Why a main-port connection ended badly; logged, never fatal to the
/// fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MainPortError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("the client sent a line too long to skip: {0}")]
    Unreadable(String),
}

/// Serves one TLS-authenticated connection until it ends; logs how it
/// ended.
pub async fn serve_main_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    processor: &SimProcessor,
) {
    let mut connection = Connection::new(stream);
    match serve(&mut connection, processor).await {
        Ok(()) => {}
        Err(e) => tracing::info!(
            id = %processor.serial.id(), serial = %processor.serial, mac = %processor.mac,
            "main-port connection ended: {e}"
        ),
    }
    let _ = connection.shutdown().await;
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    processor: &SimProcessor,
) -> Result<(), MainPortError> {
    loop {
        let answer = match connection.read_frame().await {
            Ok(None) => return Ok(()),
            Ok(Some(object)) => match Communique::from_object(object.clone()) {
                Ok(request) => respond(processor, &request),
                Err(e) => unreadable(Some(&object), e.to_string()),
            },
            Err(ConnectionError::Codec(e)) if e.is_fatal() => {
                connection
                    .write_frame(&unreadable(None, e.to_string()))
                    .await?;
                return Err(MainPortError::Unreadable(e.to_string()));
            }
            Err(ConnectionError::Codec(e)) => unreadable(None, e.to_string()),
            Err(e) => return Err(e.into()),
        };
        connection.write_frame(&answer).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;
    use crate::leap::message::StatusCode;
    use crate::processor::{Mac, Serial, SystemType};

    fn processor() -> SimProcessor {
        SimProcessor {
            serial: Serial(12_345_678),
            mac: Mac([0x02, 0x4c, 0, 0xbc, 0x61, 0x4e]),
            address: std::net::Ipv4Addr::new(127, 0, 1, 1),
            system_type: SystemType::HomeWorksQsx,
            instance: "Lutron Status".into(),
        }
    }

    async fn answer(conn: &mut Connection<tokio::io::DuplexStream>) -> Communique {
        let object = tokio::time::timeout(Duration::from_secs(5), conn.read_frame())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("an answer, not the end");
        Communique::from_object(object).unwrap()
    }

    #[tokio::test]
    async fn garbage_gets_400_and_the_connection_goes_on() {
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move { serve_main_connection(theirs, &processor()).await });
        let mut raw = ours;
        raw.write_all(b"not json\r\n{\"Header\":{\"ClientTag\":\"x\"}}\r\n")
            .await
            .unwrap();
        let mut conn = Connection::new(raw);
        for tag in [None, Some("x")] {
            let r = answer(&mut conn).await;
            assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
            assert_eq!(r.client_tag(), tag);
            assert!(r.header.message_body_type.is_some());
        }
        conn.write_frame(&Communique::read_request("t", "/device"))
            .await
            .unwrap();
        let r = answer(&mut conn).await;
        assert_eq!(r.status(), Some(&StatusCode::NO_CONTENT));
        assert_eq!(r.body, None::<Value>);
    }

    #[tokio::test]
    async fn an_oversized_line_gets_400_then_the_connection_closes() {
        let (ours, theirs) = duplex(1 << 20);
        tokio::spawn(async move { serve_main_connection(theirs, &processor()).await });
        let mut raw = ours;
        let line = vec![b'a'; crate::leap::MAX_LINE + 10];
        // The server stops reading once it sees the line is too long, so
        // the write may fail part-way: that is fine.
        let _ = raw.write_all(&line).await;
        let mut conn = Connection::new(raw);
        let r = answer(&mut conn).await;
        assert_eq!(r.status(), Some(&StatusCode::BAD_REQUEST));
        assert!(conn.read_frame().await.unwrap().is_none(), "closed");
    }
}
