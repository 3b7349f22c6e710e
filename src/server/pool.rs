//! The connections being served, and which of them sit idle between requests.
//!
//! When every slot is taken, the accept loop asks the connection idle longest to
//! close, so a new client is served instead of waiting behind kept-alive
//! connections that may never send another request (a few hundred of those would
//! otherwise lock the server out for as long as the attacker keeps them open).
//! A connection is idle while no request of it is in the service or has its
//! response still being sent: a fresh one that has sent nothing yet, one between
//! keep-alive requests, one still dripping a request head.
//!
//! With none idle, a busy connection whose client has kept the server waiting
//! for [`STALLED`] is closed instead, the one stalled longest first: waiting to
//! write (the client takes its answer a few bytes at a time, often enough that
//! `--idle-timeout` never fires: a slow-read attack), or waiting for the rest of a
//! request body (dripped a byte at a time). A client that reads and sends as fast
//! as the network goes is never stalled that long; a reader that is can resume
//! with a `Range` request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a busy connection's client may keep the server waiting to write
/// before the connection may be closed to make room for a new client.
pub(super) const STALLED: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct Pool {
    members: Mutex<Members>,
    /// Signalled when a connection becomes idle (one more to close for room).
    became_idle: Notify,
}

#[derive(Default)]
struct Members {
    next: u64,
    all: HashMap<u64, Arc<Conn>>,
}

struct Conn {
    /// Requests in the service or with their response still being sent.
    in_service: AtomicUsize,
    /// When `in_service` last dropped to zero (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// Fired to ask the connection to close for a new client.
    evict: CancellationToken,
    /// Since when the server has been waiting to write to the client (the
    /// client does not take what it asked for); `None` while writes go through.
    write_blocked_since: Mutex<Option<Instant>>,
    /// Since when the request in service has been receiving its body; `None`
    /// once it is whole (or was dropped), and for a request without one.
    receiving_since: Mutex<Option<Instant>>,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.in_service.load(Ordering::SeqCst) == 0
    }

    /// How long a busy connection has been waiting on its client to take its
    /// answer, when that is [`STALLED`] or more.
    fn stalled(&self, now: Instant) -> Option<Duration> {
        if self.is_idle() {
            return None;
        }
        let since = [
            *lock(&self.write_blocked_since),
            *lock(&self.receiving_since),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(now.saturating_duration_since(since)).filter(|d| *d >= STALLED)
    }

    /// Whether it may be closed for a new client: idle, or stalled by its client.
    fn can_go(&self, now: Instant) -> bool {
        self.is_idle() || self.stalled(now).is_some()
    }

    fn wrote(&self, blocked: bool) {
        let mut since = lock(&self.write_blocked_since);
        match (blocked, since.is_some()) {
            (true, false) => *since = Some(Instant::now()),
            (false, true) => *since = None,
            _ => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Adds a just-accepted connection; it leaves the pool when the member drops.
    pub(super) fn join(self: &Arc<Self>) -> Member {
        let conn = Arc::new(Conn {
            in_service: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evict: CancellationToken::new(),
            write_blocked_since: Mutex::new(None),
            receiving_since: Mutex::new(None),
        });
        let mut members = lock(&self.members);
        let id = members.next;
        members.next = members.next.wrapping_add(1);
        members.all.insert(id, conn.clone());
        Member {
            pool: self.clone(),
            id,
            conn,
        }
    }

    /// Asks the connection idle longest to close, else the busy one stalled longest
    /// by its client (see [`STALLED`]), unless one asked before is still closing.
    /// Returns whether one is on its way out.
    pub(super) fn evict_oldest_idle(&self) -> bool {
        let members = lock(&self.members);
        let now = Instant::now();
        if members
            .all
            .values()
            .any(|c| c.evict.is_cancelled() && c.can_go(now))
        {
            return true;
        }
        let candidates = || members.all.values().filter(|c| !c.evict.is_cancelled());
        let oldest_idle = candidates()
            .filter(|c| c.is_idle())
            .min_by_key(|c| *lock(&c.idle_since));
        let chosen = oldest_idle.or_else(|| candidates().max_by_key(|c| c.stalled(now)));
        match chosen.filter(|c| c.can_go(now)) {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }

    /// Waits until some connection becomes idle.
    pub(super) async fn became_idle(&self) {
        self.became_idle.notified().await
    }
}

/// A connection's place in the pool.
pub(super) struct Member {
    pool: Arc<Pool>,
    id: u64,
    conn: Arc<Conn>,
}

impl Member {
    /// Marks a request as in service until the returned guard drops (with the
    /// response body, once it is sent).
    pub(super) fn busy(&self) -> Busy {
        self.conn.in_service.fetch_add(1, Ordering::SeqCst);
        Busy {
            pool: self.pool.clone(),
            conn: self.conn.clone(),
        }
    }

    /// Whether it may close now that it was asked to: idle, or stalled by its
    /// client (see [`STALLED`]).
    pub(super) fn can_go(&self) -> bool {
        self.conn.can_go(Instant::now())
    }

    /// A request in service with its body watched: while the body is still
    /// arriving, the time counts towards [`STALLED`].
    pub(super) fn receiving<B: hyper::body::Body>(
        &self,
        req: hyper::Request<B>,
    ) -> hyper::Request<Receiving<B>> {
        let conn = self.conn.clone();
        req.map(|inner| {
            let guard = (!inner.is_end_stream()).then(|| {
                *lock(&conn.receiving_since) = Some(Instant::now());
                ReceivingGuard { conn }
            });
            Receiving { inner, guard }
        })
    }

    /// `io` with its writes watched: a write the client makes wait counts towards
    /// [`STALLED`].
    pub(super) fn watch<T>(&self, io: T) -> Watched<T> {
        Watched {
            inner: io,
            conn: self.conn.clone(),
        }
    }

    /// Completes when the connection is asked to close for a new client.
    pub(super) async fn evicted(&self) {
        self.conn.evict.cancelled().await
    }
}

/// A request body that notes on its connection when it has all arrived (see
/// [`Member::receiving`]).
pub(super) struct Receiving<B> {
    inner: B,
    guard: Option<ReceivingGuard>,
}

/// Clears the connection's `receiving_since` when the body is whole or dropped.
struct ReceivingGuard {
    conn: Arc<Conn>,
}

impl Drop for ReceivingGuard {
    fn drop(&mut self) {
        *lock(&self.conn.receiving_since) = None;
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Receiving<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(poll, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.guard = None;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket, noting when the client keeps the server waiting to write
/// (see [`Member::watch`]).
pub(super) struct Watched<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> Watched<T> {
    fn note<R>(&self, poll: &Poll<std::io::Result<R>>) {
        self.conn.wrote(poll.is_pending());
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        lock(&self.pool.members).all.remove(&self.id);
    }
}

/// One request in service (see [`Member::busy`]).
pub(super) struct Busy {
    pool: Arc<Pool>,
    conn: Arc<Conn>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.conn.in_service.fetch_sub(1, Ordering::SeqCst) == 1 {
            *lock(&self.conn.idle_since) = Instant::now();
            self.pool.became_idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_idle_longest_is_asked_to_close_and_busy_ones_never() {
        let pool = Arc::new(Pool::default());
        let kept_alive = pool.join();
        let busy = pool.join();
        let silent = pool.join();
        let request = busy.busy();
        std::thread::sleep(std::time::Duration::from_millis(5));
        // A request that ended just now: idle, but not for long.
        drop(kept_alive.busy());
        assert!(pool.evict_oldest_idle());
        assert!(
            silent.conn.evict.is_cancelled(),
            "idle since it was accepted"
        );
        assert!(!kept_alive.conn.evict.is_cancelled());
        // While that one is closing, no second one is asked.
        assert!(pool.evict_oldest_idle());
        assert!(!kept_alive.conn.evict.is_cancelled());
        drop(silent);
        assert!(pool.evict_oldest_idle());
        assert!(kept_alive.conn.evict.is_cancelled());
        drop(kept_alive);
        // Only a busy connection left: nothing to close until its request ends.
        assert!(!pool.evict_oldest_idle());
        assert!(!busy.conn.evict.is_cancelled());
        drop(request);
        assert!(pool.evict_oldest_idle());
        assert!(busy.conn.evict.is_cancelled());
    }

    #[test]
    fn a_busy_connection_stalled_by_its_client_makes_room_and_a_flowing_one_never() {
        let pool = Arc::new(Pool::default());
        let flowing = pool.join();
        let stalled = pool.join();
        let _a = flowing.busy();
        let _b = stalled.busy();
        let long_ago = Instant::now() - STALLED - Duration::from_secs(1);
        // Blocked only just now: not yet stalled.
        flowing.conn.wrote(true);
        assert!(!pool.evict_oldest_idle(), "nothing may go yet");
        *lock(&stalled.conn.write_blocked_since) = Some(long_ago);
        assert!(pool.evict_oldest_idle());
        assert!(stalled.conn.evict.is_cancelled());
        assert!(!flowing.conn.evict.is_cancelled());
        // A write that goes through clears the stall.
        stalled.conn.wrote(false);
        assert!(!stalled.can_go());
    }

    #[test]
    fn a_request_body_still_arriving_counts_towards_the_stall_until_it_is_whole() {
        let pool = Arc::new(Pool::default());
        let member = pool.join();
        let _busy = member.busy();
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"x"));
        let req = member.receiving(hyper::Request::new(body));
        assert!(lock(&member.conn.receiving_since).is_some());
        *lock(&member.conn.receiving_since) = Some(Instant::now() - STALLED);
        assert!(member.can_go(), "dripping its body for too long");
        drop(req);
        assert!(lock(&member.conn.receiving_since).is_none());
        assert!(!member.can_go());
        // No body: nothing to wait for.
        let empty = member.receiving(hyper::Request::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
        ));
        assert!(lock(&member.conn.receiving_since).is_none());
        drop(empty);
    }
}
