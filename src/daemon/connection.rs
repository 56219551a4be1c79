//! Frames over any byte stream, in the manner of mini-redis's
//! `connection.rs`: a reader that owns its buffer and a writer, generic
//! over `AsyncRead` / `AsyncWrite` so the same code runs over the Unix
//! socket and over `tokio::io::duplex` in tests. Split in two halves so a
//! server can wait for the client's next frame while it writes events.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::{FrameMessage, HEADER_LEN, ProtoError, check, decode_as, encode_message};

/// Reads whole frames. [`FrameReader::read`] is cancel-safe: bytes read
/// stay in the buffer for the next call.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] ProtoError),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The next message; `None` when the peer closed between frames.
    ///
    /// # Errors
    /// [`FrameIoError::Frame`] for an oversized prefix (refused before its
    /// body is buffered), a frame that does not decode, or a stream that
    /// ends inside a frame; [`FrameIoError::Io`] when reading fails.
    pub async fn read<M: FrameMessage>(&mut self) -> Result<Option<M>, FrameIoError> {
        loop {
            if let Some(len) = check(&self.buf)? {
                let decoded = decode_as(&self.buf[..len]);
                self.buf.drain(..len);
                return Ok(Some(decoded?));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let need = match self.buf.first_chunk::<HEADER_LEN>() {
                    Some(p) => HEADER_LEN + u32::from_be_bytes(*p) as usize,
                    None => HEADER_LEN,
                };
                return Err(ProtoError::Truncated {
                    need,
                    have: self.buf.len(),
                }
                .into());
            }
        }
    }
}

/// Writes whole frames.
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W) -> FrameWriter<W> {
        FrameWriter { inner }
    }

    /// Encodes and sends one message, flushed.
    ///
    /// # Errors
    /// [`FrameIoError::Frame`] for a message that cannot be encoded,
    /// [`FrameIoError::Io`] when the peer is gone.
    pub async fn write<M: FrameMessage>(&mut self, msg: &M) -> Result<(), FrameIoError> {
        let frame = encode_message(msg)?;
        self.inner.write_all(&frame).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Closes the writing half, so the peer reads an end of stream.
    pub async fn shutdown(&mut self) {
        let _ = self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{ControlMessage, Request};

    #[tokio::test]
    async fn frames_cross_a_stream_split_at_every_byte() {
        let msgs = vec![
            ControlMessage::Health(Request { request: 1 }),
            ControlMessage::Inventory(Request { request: 2 }),
        ];
        let mut bytes = Vec::new();
        for m in &msgs {
            bytes.extend(crate::proto::control::encode(m).unwrap());
        }
        let (client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let mut client = client;
            for b in bytes {
                client.write_all(&[b]).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(server);
        for m in &msgs {
            assert_eq!(
                reader.read::<ControlMessage>().await.unwrap().as_ref(),
                Some(m)
            );
        }
        writer.await.unwrap();
        assert!(reader.read::<ControlMessage>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_truncated() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[0, 0, 0, 9, 0xa1]).await.unwrap();
        drop(client);
        let mut reader = FrameReader::new(server);
        let err = reader.read::<ControlMessage>().await.unwrap_err();
        assert!(
            matches!(
                err,
                FrameIoError::Frame(ProtoError::Truncated { need: 13, have: 5 })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_its_body() {
        let (mut client, server) = tokio::io::duplex(64);
        // The peer stays connected and sends nothing more: the error must
        // come from the prefix alone.
        client.write_all(&[0x7f, 0, 0, 0]).await.unwrap();
        let mut reader = FrameReader::new(server);
        let err = reader.read::<ControlMessage>().await.unwrap_err();
        assert!(
            matches!(err, FrameIoError::Frame(ProtoError::Oversized { .. })),
            "{err:?}"
        );
    }
}
