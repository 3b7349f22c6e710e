//! A blob stream that checks itself: hashed and counted as it flows, it fails as
//! soon as it runs past the declared size, and at its end when the digest or the
//! size is not the one the manifest named. Every source wraps what it hands out in
//! one, so no command can pass on bytes that were not checked.

use super::BlobStream;
use crate::digest::{Digest, Hasher};
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct CheckedStream {
    inner: BlobStream,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    seen: u64,
    what: String,
}

impl CheckedStream {
    /// Wraps `inner`, which must yield exactly the blob `expected` of `size` bytes.
    /// `what` names the blob and where it came from in the error.
    pub fn new(inner: BlobStream, expected: Digest, size: u64, what: String) -> CheckedStream {
        CheckedStream {
            inner,
            hasher: Some(Hasher::new()),
            expected,
            size,
            seen: 0,
            what,
        }
    }

    pub fn boxed(self) -> BlobStream {
        Box::pin(self)
    }

    fn fail(&mut self, detail: String) -> Poll<Option<std::io::Result<Bytes>>> {
        self.hasher = None;
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            CheckFailed(format!("{}: {detail}", self.what)),
        ))))
    }
}

/// The error inside the `InvalidData` I/O error a [`CheckedStream`] ends with: the
/// bytes are not the blob's (digest or size). Typed, so a sink can tell a corrupt
/// source from a network fault without reading message text (see [`check_failure`]).
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// The failed check an I/O error carries, when a [`CheckedStream`] raised it.
pub fn check_failure(e: &std::io::Error) -> Option<&CheckFailed> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CheckFailed>())
}

impl Stream for CheckedStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.hasher.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen = this.seen.saturating_add(chunk.len() as u64);
                if this.seen > this.size {
                    let (seen, size) = (this.seen, this.size);
                    return this.fail(crate::tr!(
                        "size does not match its descriptor: more than the {size} bytes declared ({seen} so far)",
                        "大小与描述不符: 超过声明的 {size} 字节 (已收到 {seen})"
                    ));
                }
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let Some(hasher) = this.hasher.take() else {
                    return Poll::Ready(None);
                };
                if this.seen != this.size {
                    let (seen, size) = (this.seen, this.size);
                    this.hasher = Some(Hasher::new());
                    return this.fail(crate::tr!(
                        "size does not match its descriptor: ended after {seen} of {size} bytes",
                        "大小与描述不符: 只收到 {size} 字节中的 {seen} 字节"
                    ));
                }
                let actual = hasher.finish();
                if actual != this.expected {
                    let expected = this.expected.clone();
                    this.hasher = Some(Hasher::new());
                    return this.fail(crate::tr!(
                        "bytes have digest {actual}, expected {expected} (corrupt or altered)",
                        "内容摘要为 {actual}, 应为 {expected} (已损坏或被修改)"
                    ));
                }
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn stream_of(parts: Vec<&'static [u8]>) -> BlobStream {
        Box::pin(futures_util::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    async fn drain(mut s: CheckedStream) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn good_bytes_pass_bad_bytes_fail() {
        let d = Digest::of(b"hello world");
        let ok = CheckedStream::new(
            stream_of(vec![b"hello ", b"world"]),
            d.clone(),
            11,
            "x".into(),
        );
        assert_eq!(drain(ok).await.unwrap(), b"hello world");
        let bad = CheckedStream::new(
            stream_of(vec![b"hello ", b"w0rld"]),
            d.clone(),
            11,
            "x".into(),
        );
        let err = drain(bad).await.unwrap_err();
        assert!(
            check_failure(&err).is_some(),
            "a typed check failure: {err}"
        );
        let short = CheckedStream::new(stream_of(vec![b"hello "]), d.clone(), 11, "x".into());
        assert!(drain(short).await.is_err());
        let long = CheckedStream::new(stream_of(vec![b"hello world!!"]), d, 11, "x".into());
        assert!(drain(long).await.is_err());
    }
}
