//! Images waiting for an event-driven round. A set, so duplicates and bursts
//! coalesce into one round; filled while a round runs, so nothing announced then
//! is lost (the next round takes it).

use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::sync::Notify;

pub struct Queue<T = usize> {
    pending: Mutex<BTreeSet<T>>,
    notify: Notify,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            pending: Mutex::new(BTreeSet::new()),
            notify: Notify::new(),
        }
    }
}

impl<T: Ord> Queue<T> {
    /// Adds work items (list lines, tags); wakes the waiter, or leaves it a
    /// wake-up for its next wait.
    pub fn push(&self, requests: impl IntoIterator<Item = T>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let before = pending.len();
        pending.extend(requests);
        if pending.len() > before {
            self.notify.notify_one();
        }
    }

    /// Waits until something is pending (returns at once if something is).
    pub async fn wait(&self) {
        loop {
            if self.pending.lock().is_ok_and(|p| !p.is_empty()) {
                return;
            }
            self.notify.notified().await;
        }
    }

    /// Everything pending, leaving the queue empty.
    pub fn take(&self) -> BTreeSet<T> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bursts_coalesce_and_late_pushes_wait_for_the_next_take() {
        let q: Queue = Queue::default();
        for _ in 0..50 {
            q.push([3, 1, 3]);
        }
        q.wait().await;
        assert_eq!(q.take().into_iter().collect::<Vec<_>>(), vec![1, 3]);
        // Pushed "during the round": still there for the next one.
        q.push([2]);
        tokio::time::timeout(Duration::from_secs(5), q.wait())
            .await
            .unwrap();
        assert_eq!(q.take().into_iter().collect::<Vec<_>>(), vec![2]);
        // Nothing pending: wait blocks.
        assert!(tokio::time::timeout(Duration::from_millis(50), q.wait())
            .await
            .is_err());
    }
}
