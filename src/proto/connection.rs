//! Frames over any byte stream, in the manner of mini-redis's
//! `connection.rs`: the one reader and writer of the relay and control
//! protocols, used by the control socket (both ends), the relay client and
//! the cloud's relay server. Generic over `AsyncRead` / `AsyncWrite`, so
//! the same code runs over TLS, a Unix socket and `tokio::io::duplex` in
//! tests.
//!
//! A [`FrameConnection`] owns a read buffer (bytes wait there until
//! [`check`] finds a whole frame) and a write buffer (encoded frames wait
//! there until written). Either half of a split stream can be one, so a
//! server can wait for the next frame while it writes.
//!
//! Reading is cancel-safe: bytes leave the stream only together with their
//! addition to the buffer, so a `select!` may drop [`FrameConnection::read_frame`]
//! at any await without losing a byte. [`FrameConnection::write_some`] is
//! the cancel-safe step of writing, for a writer that reads meanwhile.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf, split};

use super::error::ProtoError;
use super::frame::{FrameMessage, HEADER_LEN, check, decode_as, encode_message};

/// Spare room below which the read buffer grows before a read.
const MIN_SPARE: usize = 1024;
/// How much it grows by.
const GROW_BY: usize = 8 * 1024;

/// Why a frame could not be read or written: the stream failed, or the
/// bytes are not a frame (see [`ProtoError`], which an error frame can
/// answer).
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] ProtoError),
}

/// A byte stream read and written one frame at a time.
#[derive(Debug)]
pub struct FrameConnection<S> {
    stream: S,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    /// How much of `write_buf` is already on the stream.
    written: usize,
}

impl<S> FrameConnection<S> {
    pub fn new(stream: S) -> FrameConnection<S> {
        FrameConnection {
            stream,
            read_buf: Vec::with_capacity(4096),
            write_buf: Vec::new(),
            written: 0,
        }
    }

    /// The stream, e.g. for its TLS session.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Whether queued bytes are still to be written.
    pub fn has_pending(&self) -> bool {
        self.written < self.write_buf.len()
    }
}

impl<S: AsyncRead + AsyncWrite> FrameConnection<S> {
    /// A reading and a writing connection over the two halves of one
    /// stream; bytes already buffered go with the reading one.
    pub fn split(self) -> (FrameConnection<ReadHalf<S>>, FrameConnection<WriteHalf<S>>) {
        let (r, w) = split(self.stream);
        let reader = FrameConnection {
            stream: r,
            read_buf: self.read_buf,
            write_buf: Vec::new(),
            written: 0,
        };
        let writer = FrameConnection {
            stream: w,
            read_buf: Vec::new(),
            write_buf: self.write_buf,
            written: self.written,
        };
        (reader, writer)
    }
}

impl<S: AsyncRead + Unpin> FrameConnection<S> {
    /// The next message; `None` when the peer closed between frames.
    ///
    /// # Errors
    /// [`FrameIoError::Frame`] for an oversized prefix (refused before its
    /// body is buffered, and fatal: see [`ProtoError::is_fatal`]), a frame
    /// that does not decode (consumed, so the next read starts after it), or
    /// a stream that ends inside a frame ([`ProtoError::Truncated`] with
    /// what the prefix announced); [`FrameIoError::Io`] when reading fails.
    pub async fn read_frame<M: FrameMessage>(&mut self) -> Result<Option<M>, FrameIoError> {
        loop {
            if let Some(msg) = self.try_read_frame()? {
                return Ok(Some(msg));
            }
            if self.read_buf.capacity() - self.read_buf.len() < MIN_SPARE {
                self.read_buf.reserve(GROW_BY);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                if self.read_buf.is_empty() {
                    return Ok(None);
                }
                let need = match self.read_buf.first_chunk::<HEADER_LEN>() {
                    Some(p) => HEADER_LEN + u32::from_be_bytes(*p) as usize,
                    None => HEADER_LEN,
                };
                return Err(ProtoError::Truncated {
                    need,
                    have: self.read_buf.len(),
                }
                .into());
            }
        }
    }

    /// A message already buffered, without reading: what arrived together
    /// with the last one.
    ///
    /// # Errors
    /// As [`FrameConnection::read_frame`], for the bytes buffered.
    pub fn try_read_frame<M: FrameMessage>(&mut self) -> Result<Option<M>, ProtoError> {
        let Some(len) = check(&self.read_buf)? else {
            return Ok(None);
        };
        let decoded = decode_as(&self.read_buf[..len]);
        self.read_buf.drain(..len);
        decoded.map(Some)
    }
}

impl<S: AsyncWrite + Unpin> FrameConnection<S> {
    /// Encodes `msg` behind whatever is queued, without writing.
    ///
    /// # Errors
    /// [`ProtoError::Unencodable`]; nothing is queued.
    pub fn queue_frame<M: FrameMessage>(&mut self, msg: &M) -> Result<(), ProtoError> {
        let frame = encode_message(msg)?;
        if !self.has_pending() {
            self.write_buf.clear();
            self.written = 0;
        }
        self.write_buf.extend_from_slice(&frame);
        Ok(())
    }

    /// One step of writing: some of the queued bytes (`Some(count)`,
    /// `Some(0)` when the peer takes no more), or a flush when none are
    /// queued (`None`). Cancel safe: one await, on a cancel-safe call.
    ///
    /// # Errors
    /// When the stream fails.
    pub async fn write_some(&mut self) -> std::io::Result<Option<usize>> {
        if !self.has_pending() {
            return self.stream.flush().await.map(|()| None);
        }
        let n = self.stream.write(&self.write_buf[self.written..]).await?;
        self.written += n;
        Ok(Some(n))
    }

    /// Writes everything queued, in one write where the stream takes it,
    /// and flushes.
    ///
    /// # Errors
    /// When the stream fails or takes no more.
    pub async fn flush_frames(&mut self) -> std::io::Result<()> {
        while self.has_pending() {
            if self.write_some().await? == Some(0) {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
        }
        self.stream.flush().await
    }

    /// Encodes and sends one message, flushed.
    ///
    /// # Errors
    /// [`FrameIoError::Frame`] for a message that cannot be encoded,
    /// [`FrameIoError::Io`] when the peer is gone.
    pub async fn write_frame<M: FrameMessage>(&mut self, msg: &M) -> Result<(), FrameIoError> {
        self.queue_frame(msg)?;
        Ok(self.flush_frames().await?)
    }

    /// Closes the writing side, so the peer reads an end of stream.
    ///
    /// # Errors
    /// When the stream fails; callers closing anyway ignore it.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{ControlMessage, Request};
    use crate::proto::{RelayMessage, encode_message};

    fn health(request: u64) -> ControlMessage {
        ControlMessage::Health(Request { request })
    }

    fn bytes_of(msgs: &[ControlMessage]) -> Vec<u8> {
        msgs.iter()
            .flat_map(|m| encode_message(m).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn frames_cross_a_stream_split_at_every_byte() {
        let msgs = vec![health(1), ControlMessage::Inventory(Request { request: 2 })];
        let bytes = bytes_of(&msgs);
        let (client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let mut client = client;
            for b in bytes {
                client.write_all(&[b]).await.unwrap();
            }
        });
        let mut conn = FrameConnection::new(server);
        for m in &msgs {
            assert_eq!(
                conn.read_frame::<ControlMessage>().await.unwrap().as_ref(),
                Some(m)
            );
        }
        writer.await.unwrap();
        assert!(conn.read_frame::<ControlMessage>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn two_frames_in_one_read_are_both_delivered_the_second_without_reading() {
        let msgs = vec![health(1), health(2)];
        let (mut client, server) = tokio::io::duplex(4096);
        client.write_all(&bytes_of(&msgs)).await.unwrap();
        let mut conn = FrameConnection::new(server);
        assert_eq!(conn.read_frame().await.unwrap(), Some(health(1)));
        // Already buffered: no read needed (the client is still open).
        assert_eq!(conn.try_read_frame().unwrap(), Some(health(2)));
        assert_eq!(conn.try_read_frame::<ControlMessage>().unwrap(), None);
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_truncated() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[0, 0, 0, 9, 0xa1]).await.unwrap();
        drop(client);
        let mut conn = FrameConnection::new(server);
        let err = conn.read_frame::<ControlMessage>().await.unwrap_err();
        assert!(
            matches!(
                err,
                FrameIoError::Frame(ProtoError::Truncated { need: 13, have: 5 })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_ending_inside_the_prefix_is_truncated() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[0, 0]).await.unwrap();
        drop(client);
        let mut conn = FrameConnection::new(server);
        let err = conn.read_frame::<RelayMessage>().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "received a truncated frame: 2 of 4 bytes",
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_its_body() {
        let (mut client, server) = tokio::io::duplex(64);
        // The peer stays connected and sends nothing more: the error must
        // come from the prefix alone.
        client.write_all(&[0x7f, 0, 0, 0]).await.unwrap();
        let mut conn = FrameConnection::new(server);
        let err = conn.read_frame::<ControlMessage>().await.unwrap_err();
        assert!(
            matches!(&err, FrameIoError::Frame(e @ ProtoError::Oversized { .. }) if e.is_fatal()),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn garbage_is_consumed_and_the_next_frame_still_reads() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut bytes = vec![0, 0, 0, 3, 0xff, 0xfe, 0xfd];
        bytes.extend(bytes_of(&[health(7)]));
        client.write_all(&bytes).await.unwrap();
        let mut conn = FrameConnection::new(server);
        let err = conn.read_frame::<ControlMessage>().await.unwrap_err();
        assert!(
            matches!(err, FrameIoError::Frame(ProtoError::NotCbor { .. })),
            "{err:?}"
        );
        assert_eq!(conn.read_frame().await.unwrap(), Some(health(7)));
    }

    #[tokio::test]
    async fn written_frames_are_the_codec_s_bytes_and_split_halves_carry_them() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let (mut reader, mut writer) = FrameConnection::new(ours).split();
        writer.queue_frame(&health(1)).unwrap();
        writer.queue_frame(&health(2)).unwrap();
        assert!(writer.has_pending());
        writer.flush_frames().await.unwrap();
        assert!(!writer.has_pending());
        writer.write_frame(&health(3)).await.unwrap();
        let want = bytes_of(&[health(1), health(2), health(3)]);
        let mut got = vec![0; want.len()];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);

        theirs.write_all(&bytes_of(&[health(4)])).await.unwrap();
        assert_eq!(reader.read_frame().await.unwrap(), Some(health(4)));
        writer.shutdown().await.unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_write_to_a_peer_that_left_fails() {
        let (ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let mut conn = FrameConnection::new(ours);
        let err = conn.write_frame(&health(1)).await.unwrap_err();
        assert!(matches!(err, FrameIoError::Io(_)), "{err:?}");
    }
}
