//! Reading relay frames off any byte stream, cancel-safely.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::RelayError;
use crate::proto::{self, RelayMessage};

/// Buffers bytes until [`proto::check`] finds a whole frame.
pub(super) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(super) fn new(inner: R) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: Vec::new(),
        }
    }

    /// The next message. Cancel safe: bytes are only taken off the stream
    /// together with their addition to the buffer, so a `select!` may drop
    /// this future at any await without losing a byte.
    ///
    /// # Errors
    /// [`RelayError::Closed`] at the end of the stream (between frames),
    /// [`RelayError::Garbage`] for a frame that does not decode or a stream
    /// that ends inside one, [`RelayError::Io`].
    pub(super) async fn read_frame(&mut self) -> Result<RelayMessage, RelayError> {
        loop {
            if let Some(msg) = self.try_frame()? {
                return Ok(msg);
            }
            let mut chunk = [0u8; 8192];
            let n = self
                .inner
                .read(&mut chunk)
                .await
                .map_err(|e| RelayError::Io(e.to_string()))?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Err(RelayError::Closed);
                }
                return Err(RelayError::Garbage(proto::ProtoError::Truncated {
                    need: proto::check(&self.buf)
                        .ok()
                        .flatten()
                        .unwrap_or(proto::HEADER_LEN),
                    have: self.buf.len(),
                }));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A message already buffered, without reading.
    ///
    /// # Errors
    /// [`RelayError::Garbage`] when the buffered frame does not decode.
    pub(super) fn try_frame(&mut self) -> Result<Option<RelayMessage>, RelayError> {
        let Some(len) = proto::check(&self.buf).map_err(RelayError::Garbage)? else {
            return Ok(None);
        };
        let msg = proto::decode(&self.buf[..len]);
        self.buf.drain(..len);
        msg.map(Some).map_err(RelayError::Garbage)
    }
}
