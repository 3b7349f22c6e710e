//! The connections being served, and which of them sit idle between requests.
//!
//! When every slot is taken, the accept loop asks the connection idle longest to
//! close, so a new client is served instead of waiting behind kept-alive
//! connections that may never send another request (a few hundred of those would
//! otherwise lock the server out for as long as the attacker keeps them open).
//! A connection is idle while no request of it is in the service or has its
//! response still being sent: a fresh one that has sent nothing yet, one between
//! keep-alive requests, one still dripping a request head.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.in_service.load(Ordering::SeqCst) == 0
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

    /// Asks the connection idle longest to close, unless an idle one asked before
    /// is still closing. Returns whether one is on its way out.
    pub(super) fn evict_oldest_idle(&self) -> bool {
        let members = lock(&self.members);
        let idle = || members.all.values().filter(|c| c.is_idle());
        if idle().any(|c| c.evict.is_cancelled()) {
            return true;
        }
        let oldest = idle()
            .filter(|c| !c.evict.is_cancelled())
            .min_by_key(|c| *lock(&c.idle_since));
        match oldest {
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

    pub(super) fn is_idle(&self) -> bool {
        self.conn.is_idle()
    }

    /// Completes when the connection is asked to close for a new client.
    pub(super) async fn evicted(&self) {
        self.conn.evict.cancelled().await
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
}
