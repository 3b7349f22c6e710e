//! Retries around whole operations: exponential backoff with jitter, `Retry-After`
//! honoured, and Ctrl-C ending the wait at once.

use crate::registry::RegistryError;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries after the first one.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// Runs `op` until it succeeds, fails with an error that a retry cannot fix, runs
/// out of tries, or `cancel` fires. `on_retry` hears each retried error.
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
    op: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter();
    let attempt = op
        .retry(backoff)
        .when(|e: &RegistryError| e.is_retryable())
        .adjust(|e: &RegistryError, d| {
            d.map(|d| {
                e.retry_after()
                    .map(|r| r.min(Duration::from_secs(300)))
                    .unwrap_or(d)
            })
        })
        .notify(|e: &RegistryError, d| on_retry(e, d));
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(RegistryError::Cancelled),
        r = attempt => r,
    }
}

/// Why `client` cannot be used at all (connection refused, DNS, TLS..., or the
/// credentials refused), after the usual retries; `None` when it answers, whatever
/// it answers (a 401 for one repository is an answer). Checked once per registry,
/// so a dead one fails its run or images at once, with one reason, instead of
/// every request retrying (or collecting its own 401) on its own.
pub async fn unreachable(
    client: &crate::registry::Client,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Option<RegistryError> {
    match retry(policy, cancel, on_retry, || client.ping()).await {
        Err(e @ RegistryError::Transport { .. }) => Some(e),
        Err(e) if e.is_auth_failure() => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_then_succeeds() {
        let calls = AtomicUsize::new(0);
        let r = retry(fast(), &CancellationToken::new(), &|_, _| {}, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(RegistryError::Status {
                    what: "x".into(),
                    status: 503,
                    message: String::new(),
                    retry_after: None,
                })
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_a_404() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), _> = retry(fast(), &CancellationToken::new(), &|_, _| {}, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(RegistryError::NotFound {
                what: "x".into(),
                message: String::new(),
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn cancellation_stops_waiting() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r: Result<(), _> = retry(fast(), &cancel, &|_, _| {}, std::future::pending).await;
        assert!(matches!(r, Err(RegistryError::Cancelled)));
    }
}
