//! Time and size bounds on what a registry sends, so that a slow or hostile one
//! cannot hold a transfer or grow memory without end:
//!
//! - a small response (manifest, token, tag-list page, HEAD, error body, upload
//!   session) must be complete within `response_timeout` (default 120 s), however it
//!   trickles in;
//! - a blob body must keep moving: over every window of `read_timeout` seconds spent
//!   waiting for it, at least `min_rate` bytes/s on average (default 1024), else the
//!   transfer fails (and is retried, resuming where the registry allows);
//! - a blob upload must finish within `response_timeout` plus its size at
//!   `min_rate`;
//! - a tag list is at most [`MAX_TAG_PAGES`] pages of [`MAX_TAG_PAGE_BYTES`] each
//!   and [`MAX_TAGS`] tags in all.
//!
//! `read_timeout` alone (reqwest's) only bounds silence: a server that sends one
//! byte every few seconds never trips it.

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Default overall deadline for a small response.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default minimum average speed of a blob body, bytes/s (0 turns the rule off).
pub const DEFAULT_MIN_RATE: u64 = 1024;
/// Default silence allowed while reading, also the window of the speed rule.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Pages of one tag list (with `n=1000`, a million tags).
pub const MAX_TAG_PAGES: usize = 1000;
/// Bytes of one tag-list page (a registry that ignores `n` sends all tags at once:
/// 8 MiB holds some 200,000 of them).
pub const MAX_TAG_PAGE_BYTES: usize = 8 * 1024 * 1024;
/// Tags of one repository, all pages together.
pub const MAX_TAGS: usize = 250_000;

/// The bounds of one client.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub response_timeout: Duration,
    pub read_timeout: Duration,
    pub min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            min_rate: DEFAULT_MIN_RATE,
        }
    }
}

impl Limits {
    /// The deadline of a blob upload of `size` bytes: the small-response deadline
    /// plus the time the body may take at the minimum rate. `None` when the rate
    /// rule is off.
    pub fn upload_deadline(&self, size: u64) -> Option<Duration> {
        if self.min_rate == 0 {
            return None;
        }
        let secs = size / self.min_rate;
        Some(
            self.response_timeout
                .saturating_add(Duration::from_secs(secs)),
        )
    }
}

/// Why a blob body failed.
#[derive(Debug)]
pub enum BodyError {
    Http(reqwest::Error),
    /// The body moved fewer than `min_rate` bytes/s over a window of `window`.
    TooSlow {
        moved: u64,
        window: Duration,
        min_rate: u64,
    },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Http(e) => f.write_str(&super::error::describe_reqwest(e)),
            BodyError::TooSlow {
                moved,
                window,
                min_rate,
            } => f.write_str(&crate::tr!(
                "the body moved only {moved} bytes in {} s of waiting, under the minimum of {min_rate} bytes/s (--min-rate)",
                "数据在 {} 秒的等待中只传输了 {moved} 字节, 低于每秒 {min_rate} 字节的下限 (--min-rate)",
                window.as_secs()
            )),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Http(e) => Some(e),
            BodyError::TooSlow { .. } => None,
        }
    }
}

/// A blob download's response: the status and headers of reqwest's, and a body
/// stream held to the minimum-progress rule.
pub struct BlobResponse {
    resp: Response,
    limits: Limits,
}

impl BlobResponse {
    pub(crate) fn new(resp: Response, limits: Limits) -> BlobResponse {
        BlobResponse { resp, limits }
    }

    pub fn status(&self) -> StatusCode {
        self.resp.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.resp.headers()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// The body, chunk by chunk.
    pub fn bytes_stream(self) -> BlobStream {
        BlobStream {
            inner: Box::pin(self.resp.bytes_stream()),
            window: self.limits.read_timeout.max(Duration::from_secs(1)),
            min_bytes: self
                .limits
                .min_rate
                .saturating_mul(self.limits.read_timeout.as_secs().max(1)),
            min_rate: self.limits.min_rate,
            waited: Duration::ZERO,
            pending_since: None,
            moved: 0,
            failed: false,
        }
    }
}

type Inner = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A blob body that fails when it moves too slowly. Only time spent waiting for the
/// network counts: a consumer that pauses (a slow disk) does not make the registry
/// look slow.
pub struct BlobStream {
    inner: Inner,
    window: Duration,
    min_bytes: u64,
    min_rate: u64,
    waited: Duration,
    pending_since: Option<Instant>,
    moved: u64,
    failed: bool,
}

impl BlobStream {
    /// Accounts a chunk (or the end) that arrived now; an error when the window
    /// that just closed moved too little.
    fn arrived(&mut self, len: usize) -> Option<BodyError> {
        if let Some(since) = self.pending_since.take() {
            self.waited = self.waited.saturating_add(since.elapsed());
        }
        self.moved = self.moved.saturating_add(len as u64);
        if self.waited < self.window {
            return None;
        }
        if self.min_rate > 0 && self.moved < self.min_bytes {
            return Some(BodyError::TooSlow {
                moved: self.moved,
                window: self.waited,
                min_rate: self.min_rate,
            });
        }
        self.waited = Duration::ZERO;
        self.moved = 0;
        None
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => {
                if self.pending_since.is_none() {
                    self.pending_since = Some(Instant::now());
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(chunk))) => match self.arrived(chunk.len()) {
                Some(e) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(e)))
                }
                None => Poll::Ready(Some(Ok(chunk))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Http(e)))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn stream_of(chunks: Vec<Bytes>, window: Duration, min_rate: u64) -> BlobStream {
        BlobStream {
            inner: Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok))),
            window,
            min_bytes: min_rate.saturating_mul(window.as_secs().max(1)),
            min_rate,
            waited: Duration::ZERO,
            pending_since: None,
            moved: 0,
            failed: false,
        }
    }

    #[test]
    fn too_little_over_a_full_window_fails() {
        let mut s = stream_of(vec![], Duration::from_secs(2), 100);
        s.waited = Duration::from_secs(3);
        assert!(matches!(
            s.arrived(10),
            Some(BodyError::TooSlow { moved: 10, .. })
        ));
    }

    #[test]
    fn enough_over_a_window_starts_the_next() {
        let mut s = stream_of(vec![], Duration::from_secs(2), 100);
        s.waited = Duration::from_secs(3);
        assert!(s.arrived(500).is_none());
        assert_eq!((s.moved, s.waited), (0, Duration::ZERO));
    }

    #[test]
    fn a_rate_of_zero_is_off() {
        let mut s = stream_of(vec![], Duration::from_secs(1), 0);
        s.waited = Duration::from_secs(100);
        assert!(s.arrived(0).is_none());
    }

    #[tokio::test]
    async fn a_consumer_that_pauses_is_not_the_registry_being_slow() {
        // Chunks that are always ready never count as waiting.
        let chunks = vec![Bytes::from_static(b"a"); 3];
        let mut s = stream_of(chunks, Duration::from_millis(1), 1_000_000);
        while let Some(c) = s.next().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(c.is_ok());
        }
    }

    #[test]
    fn upload_deadline_is_checked_arithmetic() {
        let l = Limits {
            min_rate: 1,
            ..Limits::default()
        };
        assert!(l.upload_deadline(u64::MAX).is_some());
        let off = Limits {
            min_rate: 0,
            ..Limits::default()
        };
        assert_eq!(off.upload_deadline(10), None);
    }
}
