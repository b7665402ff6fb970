//! Part bodies. When the part sizes are known (the host sent Content-Length), a part streams:
//! the bytes pass from the download to its UploadPart through a channel with room for a few
//! chunks, so a copy holds a few chunks whatever the part size. Otherwise parts are buffered:
//! a fixed set of `parts in flight + 1` buffers of exactly the part size, each allocated once
//! and reused, so a copy's memory is the same for any video size and no buffer ever grows,
//! moves or is copied whole.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Chunks of a streamed part waiting for the connection to S3 to take them.
const STREAM_CHUNKS: usize = 4;

/// A streamed part of exactly `len` bytes: the writer the copy sends its bytes to, and the
/// body the part's UploadPart reads them from.
pub(super) fn streamed(len: u64) -> (PartWriter, PartBody) {
    let (tx, rx) = mpsc::channel(STREAM_CHUNKS);
    (
        PartWriter { tx, remaining: len },
        PartBody { rx, len, sent: 0 },
    )
}

/// The sending end of a streamed part.
pub(super) struct PartWriter {
    tx: mpsc::Sender<Bytes>,
    remaining: u64,
}

/// The part's request has ended before taking all its bytes: it failed.
pub(super) struct PartClosed;

impl PartWriter {
    /// Bytes the part still takes.
    pub(super) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Sends the part's next bytes (no more than [`remaining`](Self::remaining)); waits while
    /// the connection to S3 is behind, which holds the download back.
    pub(super) async fn send(&mut self, bytes: Bytes) -> Result<(), PartClosed> {
        debug_assert!(
            bytes.len() as u64 <= self.remaining,
            "more bytes than the part takes"
        );
        self.remaining -= bytes.len() as u64;
        self.tx.send(bytes).await.map_err(|_| PartClosed)
    }
}

/// The body of a streamed part. Should the writer go away before the part is whole (the copy
/// failed), the body ends in an error, so S3 never receives a short part as if it were whole.
pub(super) struct PartBody {
    rx: mpsc::Receiver<Bytes>,
    len: u64,
    sent: u64,
}

impl Body for PartBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sent == self.len {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => {
                self.sent += bytes.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(format!(
                "the copy stopped after {} of the part's {} bytes",
                self.sent, self.len
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

/// The buffers of one copy. A part handed to the upload as [`Bytes`] comes back here when the
/// last reference to it is dropped (its UploadPart is done, retries included).
pub(super) struct PartBuffers {
    size: usize,
    /// Buffers that may still be allocated.
    unallocated: usize,
    free: mpsc::UnboundedReceiver<Vec<u8>>,
    back: mpsc::UnboundedSender<Vec<u8>>,
}

impl PartBuffers {
    /// Up to `count` buffers of `size` bytes, allocated when first needed.
    pub(super) fn new(size: usize, count: usize) -> Self {
        let (back, free) = mpsc::unbounded_channel();
        Self {
            size,
            unallocated: count,
            free,
            back,
        }
    }

    /// An empty buffer: a returned one, a new one while fewer than `count` exist, or the next
    /// one returned.
    pub(super) async fn take(&mut self) -> PartBuffer {
        PartBuffer {
            data: self.next().await,
            size: self.size,
            back: self.back.clone(),
        }
    }

    /// Gives a frozen `buffer` fresh (empty) memory to fill.
    pub(super) async fn refill(&mut self, buffer: &mut PartBuffer) {
        debug_assert_eq!(buffer.data.capacity(), 0, "refill of a buffer still in use");
        buffer.data = self.next().await;
    }

    async fn next(&mut self) -> Vec<u8> {
        match self.free.try_recv() {
            Ok(data) => data,
            Err(_) if self.unallocated > 0 => {
                self.unallocated -= 1;
                Vec::with_capacity(self.size)
            }
            // The caller waits for a part to land before it asks for another buffer, and a
            // landed part's body has been dropped, so this is a short wait; should a body
            // outlive its request anyway, a fresh buffer keeps the copy going.
            Err(_) => match tokio::time::timeout(RETURN_WAIT, self.free.recv()).await {
                Ok(Some(data)) => data,
                _ => {
                    tracing::debug!(size = self.size, "no part buffer came back; allocating one");
                    Vec::with_capacity(self.size)
                }
            },
        }
    }
}

/// How long [`PartBuffers::take`] waits for a buffer to come back before allocating one.
const RETURN_WAIT: Duration = Duration::from_secs(2);

/// A buffer being filled with the next part's bytes.
pub(super) struct PartBuffer {
    data: Vec<u8>,
    size: usize,
    back: mpsc::UnboundedSender<Vec<u8>>,
}

impl PartBuffer {
    /// Appends as much of `bytes` as fits below the part size; returns how much it took.
    pub(super) fn fill(&mut self, bytes: &[u8]) -> usize {
        debug_assert!(self.data.capacity() >= self.size, "fill of a frozen buffer");
        let n = bytes.len().min(self.size - self.data.len());
        self.data.extend_from_slice(&bytes[..n]);
        n
    }

    /// Whether the buffer holds a whole part.
    pub(super) fn is_full(&self) -> bool {
        self.data.len() == self.size
    }

    /// The bytes so far.
    #[cfg(test)]
    pub(super) fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// The part as a body for S3, without a copy; its memory returns to the pool when the
    /// body and every clone of it are dropped. The buffer is left without memory: give it
    /// more with [`PartBuffers::refill`] before filling it again.
    pub(super) fn freeze(&mut self) -> Bytes {
        Bytes::from_owner(Returning {
            data: std::mem::take(&mut self.data),
            back: self.back.clone(),
        })
    }
}

/// A part's bytes on their way to S3; dropped, they go back to the pool, emptied.
struct Returning {
    data: Vec<u8>,
    back: mpsc::UnboundedSender<Vec<u8>>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        // The pool is gone once the copy has ended; the buffer is then simply freed.
        let _ = self.back.send(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_streamed_part_is_whole_or_ends_in_an_error() {
        use http_body_util::BodyExt;
        let (mut writer, body) = streamed(10);
        let read = tokio::spawn(body.collect());
        writer
            .send(Bytes::from_static(b"01234"))
            .await
            .ok()
            .unwrap();
        writer
            .send(Bytes::from_static(b"56789"))
            .await
            .ok()
            .unwrap();
        assert_eq!(writer.remaining(), 0);
        let whole = read.await.unwrap().ok().unwrap().to_bytes();
        assert_eq!(&whole[..], b"0123456789");

        let (mut writer, body) = streamed(10);
        let read = tokio::spawn(body.collect());
        writer.send(Bytes::from_static(b"0123")).await.ok().unwrap();
        drop(writer);
        let Err(err) = read.await.unwrap() else {
            panic!("a short part is an error")
        };
        assert!(
            err.to_string().contains("after 4 of the part's 10 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn buffers_are_reused_and_never_grow() {
        let mut pool = PartBuffers::new(10, 2);
        let mut a = pool.take().await;
        assert_eq!(a.fill(b"0123456"), 7);
        assert_eq!(a.fill(b"789abc"), 3);
        assert!(a.is_full());
        let first = a.as_slice().as_ptr();
        let body = a.freeze();
        assert!(a.as_slice().is_empty() && !a.is_full());
        assert_eq!(&body[..], b"0123456789");
        let clone = body.clone();
        drop(body);
        let b = pool.take().await; // the second buffer: the first is still referenced
        assert_ne!(b.as_slice().as_ptr(), first);
        drop(clone);
        pool.refill(&mut a).await;
        assert!(a.as_slice().is_empty());
        assert_eq!(a.data.as_ptr(), first, "the first buffer came back");
        assert!(a.data.capacity() >= 10);
    }
}
