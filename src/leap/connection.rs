//! A stream of frames: the codec over any byte stream, with its buffer.
//!
//! Generic over `AsyncRead + AsyncWrite`, so the same code runs over TLS
//! to a processor and over `tokio::io::duplex` in tests. TLS itself is the
//! caller's business (module `tls`).

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::codec::{CodecError, JsonObject, LineCodec};

/// How much to ask the stream for at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A line that is no frame. Unless [`CodecError::is_fatal`], only that
    /// line is lost and the next read goes on.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The peer closed the stream with part of a line unread.
    #[error("the connection closed in the middle of a message ({buffered} bytes of it arrived)")]
    ClosedMidFrame { buffered: usize },
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Frames over a byte stream.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    codec: LineCodec,
    /// Bytes read and not yet a frame.
    buffer: Vec<u8>,
    /// Set after an oversized line: the stream cannot be resynchronised,
    /// so every later read fails the same way.
    broken: Option<CodecError>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Connection<S> {
        Connection::with_codec(stream, LineCodec::new())
    }

    pub fn with_codec(stream: S, codec: LineCodec) -> Connection<S> {
        Connection {
            stream,
            codec,
            buffer: Vec::with_capacity(READ_CHUNK),
            broken: None,
        }
    }

    /// The next frame, or `None` when the peer closed the stream cleanly
    /// between frames. Blank lines are skipped.
    ///
    /// Cancel safe: bytes already read stay in the buffer, so this can sit
    /// in a `select!` next to a deadline.
    ///
    /// # Errors
    /// [`ConnectionError::Codec`] for a line that is not a JSON object
    /// (the line is consumed; fatal if oversized),
    /// [`ConnectionError::ClosedMidFrame`] for an end of stream inside a
    /// line, [`ConnectionError::Io`] when the stream fails.
    pub async fn read_frame(&mut self) -> Result<Option<JsonObject>, ConnectionError> {
        loop {
            if let Some(error) = &self.broken {
                return Err(error.clone().into());
            }
            match self.codec.check(&self.buffer) {
                Ok(Some(len)) => {
                    let decoded = self.codec.decode(&self.buffer[..len]);
                    self.consume(len);
                    match decoded {
                        Ok(Some(object)) => return Ok(Some(object)),
                        Ok(None) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    self.broken = Some(error.clone());
                    return Err(error.into());
                }
            }
            self.buffer.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    Ok(None)
                } else {
                    Err(ConnectionError::ClosedMidFrame {
                        buffered: self.buffer.len(),
                    })
                };
            }
        }
    }

    /// Writes one frame as one line, in one `write_all`, then flushes:
    /// lutron-leap-js parses each TCP read as one JSON document, so a frame
    /// must not be split across writes nor share one.
    ///
    /// Not cancel safe: a frame interrupted mid-write leaves the stream
    /// unusable.
    ///
    /// # Errors
    /// [`ConnectionError::Codec`] if `frame` is not a JSON object or is too
    /// long; [`ConnectionError::Io`] when the stream fails.
    pub async fn write_frame<T: Serialize + ?Sized>(
        &mut self,
        frame: &T,
    ) -> Result<(), ConnectionError> {
        let mut line = Vec::new();
        self.codec.encode(frame, &mut line)?;
        self.stream.write_all(&line).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Closes the write side (TLS close_notify, TCP FIN).
    ///
    /// # Errors
    /// [`ConnectionError::Io`] when the stream fails.
    pub async fn shutdown(&mut self) -> Result<(), ConnectionError> {
        Ok(self.stream.shutdown().await?)
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    fn consume(&mut self, len: usize) {
        self.buffer.drain(..len);
        // One 256 KiB line should not pin 256 KiB per connection forever.
        if self.buffer.is_empty() && self.buffer.capacity() > 4 * READ_CHUNK {
            self.buffer = Vec::with_capacity(READ_CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use serde_json::{Value, json};
    use tokio::io::{AsyncWriteExt, DuplexStream, ReadBuf, duplex};

    use super::*;
    use crate::leap::message::PairingFrame;

    fn pair() -> (Connection<DuplexStream>, DuplexStream) {
        let (ours, theirs) = duplex(64);
        (Connection::new(ours), theirs)
    }

    #[tokio::test]
    async fn reads_a_frame_that_arrives_byte_by_byte() {
        let (mut conn, mut peer) = pair();
        let writer = tokio::spawn(async move {
            for b in b"{\"a\":1}\r\n" {
                peer.write_all(&[*b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            peer
        });
        let frame = conn.read_frame().await.unwrap().unwrap();
        assert_eq!(Value::Object(frame), json!({"a": 1}));
        drop(writer.await.unwrap());
        assert!(conn.read_frame().await.unwrap().is_none(), "clean end");
    }

    #[tokio::test]
    async fn reads_several_frames_from_one_write_with_either_ending() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"{\"a\":1}\n\r\n{\"b\":2}\r\n")
            .await
            .unwrap();
        drop(peer);
        assert_eq!(
            Value::Object(conn.read_frame().await.unwrap().unwrap()),
            json!({"a": 1})
        );
        assert_eq!(
            Value::Object(conn.read_frame().await.unwrap().unwrap()),
            json!({"b": 2})
        );
        assert!(conn.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn end_of_stream_inside_a_line_is_not_a_clean_close() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"{\"a\":1}\r\n{\"Head").await.unwrap();
        drop(peer);
        assert!(conn.read_frame().await.unwrap().is_some());
        match conn.read_frame().await {
            Err(ConnectionError::ClosedMidFrame { buffered: 6 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_bad_line_costs_only_that_line() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"oops\r\n{\"ok\":true}\r\n").await.unwrap();
        let err = conn.read_frame().await.unwrap_err();
        assert!(
            matches!(err, ConnectionError::Codec(CodecError::NotJson { .. })),
            "{err:?}"
        );
        assert_eq!(
            Value::Object(conn.read_frame().await.unwrap().unwrap()),
            json!({"ok": true})
        );
    }

    #[tokio::test]
    async fn an_oversized_line_breaks_the_stream_for_good() {
        let (ours, mut peer) = duplex(64);
        let mut conn = Connection::with_codec(ours, LineCodec::with_max_line(16));
        peer.write_all(b"{\"long\":\"aaaaaaaaaaaaaaaaaaaaa\"}\r\n{\"b\":2}\r\n")
            .await
            .unwrap();
        for _ in 0..2 {
            match conn.read_frame().await {
                Err(ConnectionError::Codec(e)) if e.is_fatal() => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn writes_crlf_lines_the_peer_can_read() {
        // Room for the whole frame: the peer reads only after the write.
        let (ours, theirs) = duplex(4096);
        let (mut conn, mut peer) = (Connection::new(ours), Connection::new(theirs));
        conn.write_frame(&PairingFrame::physical_access())
            .await
            .unwrap();
        let got = peer.read_frame().await.unwrap().unwrap();
        assert!(PairingFrame::from_object(got).unwrap().is_physical_access());
        conn.shutdown().await.unwrap();
        assert!(peer.read_frame().await.unwrap().is_none());
    }

    /// Records every `poll_write`, accepting all of it.
    #[derive(Default)]
    struct WriteRecorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
    }

    impl AsyncRead for WriteRecorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for WriteRecorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn each_frame_goes_out_in_one_write_then_a_flush() {
        let mut conn = Connection::new(WriteRecorder::default());
        conn.write_frame(&json!({"a": 1})).await.unwrap();
        conn.write_frame(&PairingFrame::unauthorized(None))
            .await
            .unwrap();
        let recorder = conn.into_inner();
        assert_eq!(recorder.writes.len(), 2);
        assert_eq!(recorder.writes[0], b"{\"a\":1}\r\n");
        assert!(recorder.writes[1].ends_with(b"}}\r\n"));
        assert_eq!(recorder.flushes, 2);
    }

    #[tokio::test]
    async fn refuses_to_write_what_is_not_an_object() {
        let mut conn = Connection::new(WriteRecorder::default());
        assert!(conn.write_frame(&json!("text")).await.is_err());
        assert!(conn.into_inner().writes.is_empty());
    }
}
