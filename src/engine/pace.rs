//! How much work is in flight: adaptive concurrency, so that a slow link is not
//! left idle waiting on round trips and nobody has to tune `--jobs` for it.
//!
//! On a LAN a blob costs its bytes; over a WAN or a satellite link it costs its
//! round trips (HEAD, upload session, PUT; a manifest GET), whatever its size. The
//! pace starts at `jobs` requests in flight and, once it has seen the shortest
//! round trip of the source and of the sink, allows `jobs` more for every [`STEP`]
//! of the slower of the two, up to [`RAISE`] × `jobs`. The *shortest* round trip
//! is the path's latency; a longer one is a busy server, which more requests would
//! only load further.
//!
//! Bytes stay bounded whatever the latency: a blob larger than [`LARGE`] also
//! needs one of `jobs` stream slots, so only `jobs` large transfers run at once
//! (memory, and disks that seek), while small blobs and requests go around them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Blobs above this take a stream slot.
pub const LARGE: u64 = 1024 * 1024;
/// Each step of round trip allows `jobs` more requests in flight.
pub const STEP: Duration = Duration::from_millis(10);
/// The most in flight, as a multiple of `jobs`.
pub const RAISE: usize = 8;

pub struct Pace {
    in_flight: Semaphore,
    streams: Semaphore,
    jobs: usize,
    /// Requests allowed in flight now (permits handed to `in_flight` so far).
    limit: AtomicUsize,
    max: usize,
    /// Shortest round trip seen of the source and of the sink, in microseconds
    /// (`u64::MAX`: none yet).
    shortest: [AtomicU64; 2],
}

/// Which endpoint answered.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    Source = 0,
    Sink = 1,
}

/// Leave to go ahead; released when dropped.
pub struct Ticket<'a> {
    _stream: Option<SemaphorePermit<'a>>,
    _slot: Option<SemaphorePermit<'a>>,
}

impl Pace {
    /// `jobs` in flight at first; `adaptive` lets slow round trips raise it (not
    /// for a sink that takes one stream at a time).
    pub fn new(jobs: usize, adaptive: bool) -> Pace {
        let jobs = jobs.max(1);
        Pace {
            in_flight: Semaphore::new(jobs),
            streams: Semaphore::new(jobs),
            jobs,
            limit: AtomicUsize::new(jobs),
            max: if adaptive {
                jobs.saturating_mul(RAISE)
            } else {
                jobs
            },
            shortest: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }
    }

    /// Starts from round trips already seen (by the endpoints' clients, e.g. while
    /// resolving), so that the first requests go out at the right pace.
    pub fn seeded(self, source: Option<Duration>, sink: Option<Duration>) -> Pace {
        if let Some(d) = source {
            self.observe(Side::Source, d);
        }
        if let Some(d) = sink {
            self.observe(Side::Sink, d);
        }
        self
    }

    /// The most that can ever be in flight (a bound for `buffer_unordered`).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Waits for leave to work on an item of `size` bytes (0: a request without a
    /// body worth counting). A large one waits for a stream slot first, holding no
    /// in-flight slot meanwhile, so small work goes around it.
    pub async fn enter(&self, size: u64) -> Ticket<'_> {
        let stream = if size > LARGE {
            self.streams.acquire().await.ok()
        } else {
            None
        };
        let slot = self.in_flight.acquire().await.ok();
        Ticket {
            _stream: stream,
            _slot: slot,
        }
    }

    /// Hears how long one request to `side` took to be answered (headers, not a
    /// body), and raises the limit when the shortest ones say the link is slow.
    pub fn observe(&self, side: Side, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let [source, sink] = &self.shortest;
        let mine = if matches!(side, Side::Source) {
            source
        } else {
            sink
        };
        mine.fetch_min(micros, Ordering::Relaxed);
        // A side not heard from yet (or local: microseconds) does not slow anything.
        let seen = |a: &AtomicU64| match a.load(Ordering::Relaxed) {
            u64::MAX => 0,
            v => v,
        };
        let slower = seen(source).max(seen(sink));
        let steps = usize::try_from(slower / step_micros()).unwrap_or(usize::MAX);
        let target = self
            .jobs
            .saturating_mul(steps.clamp(1, RAISE))
            .min(self.max);
        let before = self.limit.fetch_max(target, Ordering::Relaxed);
        if target > before {
            self.in_flight.add_permits(target - before);
        }
    }

    /// Times `f` as one round trip to `side` (see [`Pace::observe`]).
    pub async fn timed<T>(&self, side: Side, f: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let out = f.await;
        self.observe(side, started.elapsed());
        out
    }
}

fn step_micros() -> u64 {
    u64::try_from(STEP.as_micros()).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_round_trips_keep_jobs_slow_ones_raise_it() {
        let p = Pace::new(8, true);
        p.observe(Side::Sink, Duration::from_micros(300));
        assert_eq!(p.limit(), 8);
        p.observe(Side::Sink, Duration::from_millis(25));
        assert_eq!(p.limit(), 8, "the shortest round trip decides: 0.3 ms");

        let p = Pace::new(8, true);
        p.observe(Side::Sink, Duration::from_millis(25));
        assert_eq!(p.limit(), 16);
        p.observe(Side::Sink, Duration::from_millis(100));
        assert_eq!(p.limit(), 16, "a longer answer is a busy server");
        let p = Pace::new(8, true);
        p.observe(Side::Sink, Duration::from_millis(300));
        assert_eq!(p.limit(), 64, "at most RAISE x jobs");
        assert_eq!(p.in_flight.available_permits(), 64);

        let p = Pace::new(1, false);
        p.observe(Side::Source, Duration::from_secs(1));
        assert_eq!(p.limit(), 1, "a one-stream sink stays at one");
        p.observe(Side::Source, Duration::MAX);
    }

    #[test]
    fn the_slower_side_decides() {
        // save: a local bundle answers at once, the registry in 60 ms.
        let p = Pace::new(4, true);
        p.observe(Side::Sink, Duration::from_micros(20));
        p.observe(Side::Source, Duration::from_millis(60));
        assert_eq!(p.limit(), 24, "6 steps of 10 ms");
        p.observe(Side::Sink, Duration::from_micros(5));
        assert_eq!(p.limit(), 24, "a fast sink does not lower it");
    }

    #[tokio::test]
    async fn large_blobs_share_jobs_stream_slots_small_ones_go_around() {
        let p = Pace::new(2, true);
        p.observe(Side::Source, Duration::from_millis(100));
        let a = p.enter(LARGE + 1).await;
        let b = p.enter(LARGE + 1).await;
        // A third large blob waits for a stream slot...
        let third = tokio::time::timeout(Duration::from_millis(20), p.enter(LARGE + 1)).await;
        assert!(third.is_err());
        // ...while small ones still find in-flight slots.
        let small: Vec<Ticket<'_>> =
            futures_util::future::join_all((0..6).map(|_| p.enter(10))).await;
        assert_eq!(small.len(), 6);
        drop((a, b));
    }
}
