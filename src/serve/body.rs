//! A blob's bytes on their way to the client, never ahead of their check.
//!
//! The source's stream is opened at offset 0, so it is hashed from the first byte
//! to the last (see `ImageSource::open_blob`), whatever part the client asked for:
//! bytes before the range are read and dropped, bytes after it are read so that the
//! digest can be checked. One chunk is always held back until the next one (or the
//! clean end of the stream) arrives, so a blob whose bytes are not its digest's ends
//! the response early with an error: the client sees a body cut short, never wrong
//! bytes presented as complete.

use crate::transport::BlobStream;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct RangeBody {
    inner: BlobStream,
    /// Bytes of the blob seen so far.
    pos: u64,
    /// The range sent: `start..end` (end exclusive).
    start: u64,
    end: u64,
    held: Option<Bytes>,
    done: bool,
}

impl RangeBody {
    /// Sends bytes `start..end` of the blob that `inner` streams from its start.
    pub fn new(inner: BlobStream, start: u64, end: u64) -> RangeBody {
        RangeBody {
            inner,
            pos: 0,
            start,
            end,
            held: None,
            done: false,
        }
    }

    /// The part of `chunk` (which starts at blob offset `at`) inside the range.
    fn slice(&self, chunk: &Bytes, at: u64) -> Option<Bytes> {
        let len = u64::try_from(chunk.len()).ok()?;
        let from = self.start.max(at);
        let to = self.end.min(at.checked_add(len)?);
        if from >= to {
            return None;
        }
        let a = usize::try_from(from - at).ok()?;
        let b = usize::try_from(to - at).ok()?;
        Some(chunk.slice(a..b))
    }
}

impl Stream for RangeBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let at = this.pos;
                    this.pos = this.pos.saturating_add(chunk.len() as u64);
                    if let Some(part) = this.slice(&chunk, at) {
                        if let Some(ready) = this.held.replace(part) {
                            return Poll::Ready(Some(Ok(ready)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.held = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(this.held.take().map(Ok));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::transport::CheckedStream;
    use futures_util::StreamExt;

    fn chunks(data: &'static [u8], size: usize) -> BlobStream {
        Box::pin(futures_util::stream::iter(
            data.chunks(size).map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    async fn collect(body: RangeBody) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut body = Box::pin(body);
        while let Some(item) = body.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    #[tokio::test]
    async fn ranges_come_out_exact() {
        let data: &'static [u8] = b"0123456789abcdefghij";
        for (start, end) in [(0, 20), (3, 7), (0, 1), (19, 20), (5, 20)] {
            for size in [1, 3, 7, 64] {
                let (out, ok) = collect(RangeBody::new(chunks(data, size), start, end)).await;
                assert!(ok);
                assert_eq!(
                    out,
                    &data[start as usize..end as usize],
                    "{start}..{end}/{size}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_corrupt_blob_never_comes_out_whole() {
        let good: &'static [u8] = b"0123456789abcdefghij";
        let bad: &'static [u8] = b"0123456789abcdefghiX";
        let digest = Digest::of(good);
        for (start, end) in [(0, 20), (0, 5), (15, 20)] {
            let checked =
                CheckedStream::new(chunks(bad, 4), digest.clone(), 20, "blob".into()).boxed();
            let (out, ok) = collect(RangeBody::new(checked, start, end)).await;
            assert!(!ok, "{start}..{end}: error reported");
            assert!(
                (out.len() as u64) < end - start,
                "{start}..{end}: cut short, got {}",
                out.len()
            );
        }
    }
}
