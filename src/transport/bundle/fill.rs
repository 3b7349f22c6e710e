//! Streaming one blob into its slot of a data file. Each buffer is written at its
//! offset on the blocking pool while the next one arrives. The bytes are checked
//! once: by the source's checked stream when the blob streams whole, by a hash of
//! its own when it resumes after bytes already in the slot (a Range request after a
//! cut, or after a save killed mid-blob), the bytes on disk hashed first.

use crate::bundle::writer::Slot;
use crate::digest::{Digest, Hasher};
use crate::engine::retry::RetryPolicy;
use crate::registry::RegistryError;
use crate::transport::{BlobRef, BlobStream, ImageSource, TransportError};
use futures_util::StreamExt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the blob goes.
pub(super) struct SlotTarget<'a> {
    pub file: Arc<File>,
    pub slot: Slot,
    pub digest: &'a Digest,
    /// Names the blob and where it comes from, in errors.
    pub what: String,
}

/// How a fill runs: retries of cut streams, Ctrl-C, and who hears of progress.
pub(super) struct FillRun<'a> {
    pub retry: RetryPolicy,
    pub cancel: &'a CancellationToken,
    /// Hears of each stream about to be tried again.
    pub on_retry: &'a (dyn Fn(&RegistryError, Duration) + Sync),
    /// Hears of the bytes in the slot so far (written and settled), after each buffer.
    pub on_written: &'a (dyn Fn(u64) + Sync),
    /// Hears of bytes taken back (a restart from zero).
    pub on_restart: &'a (dyn Fn(u64) + Sync),
}

/// Why one pass over a stream stopped short.
enum Stop {
    /// Ctrl-C.
    Cancelled,
    /// Not worth another try: the source refused, or its bytes are not the blob's.
    Fatal(TransportError),
    /// Writing into the data file failed (disk full, I/O error).
    Write(TransportError),
    /// Worth another try, after the bytes in the slot (or from zero).
    Again {
        error: TransportError,
        from_zero: bool,
    },
}

const WRITE_BUFFER: usize = 1 << 20;

/// Why a fill failed: a source that could not give the blob, or a data file that
/// could not take it (which stops the whole save).
pub(super) enum FillError {
    Source(TransportError),
    Write(TransportError),
}

/// Fills the slot with the blob read from `source`, starting after the `from` bytes
/// already there (0 for a new blob). A stream cut short is resumed where it
/// stopped, up to the retry policy's number of tries; bytes that prove not to be
/// the blob's are fetched again from zero once they came from an earlier try, and
/// are an error when they came whole from the source.
pub(super) async fn fill(
    source: &dyn ImageSource,
    repository: &str,
    blob: &BlobRef,
    to: &SlotTarget<'_>,
    from: u64,
    run: &FillRun<'_>,
) -> Result<(), FillError> {
    let mut at = from.min(to.slot.size);
    let mut tries = 0usize;
    loop {
        let pass = async {
            // Bytes already in the slot were not checked by this stream: hash them
            // first, and the rest as it arrives.
            let hasher = if at > 0 {
                Some(hash_prefix(to, at).await?)
            } else {
                None
            };
            if at == to.slot.size {
                return finish_own(to, hasher.unwrap_or_default(), at);
            }
            let stream = source
                .open_blob(repository, blob, at)
                .await
                .map_err(Stop::Fatal)?;
            pump(stream, to, &mut at, hasher, run).await
        };
        let (error, from_zero) = match pass.await {
            Ok(()) => return Ok(()),
            Err(Stop::Cancelled) => return Err(FillError::Source(TransportError::Cancelled)),
            Err(Stop::Fatal(e)) => return Err(FillError::Source(e)),
            Err(Stop::Write(e)) => return Err(FillError::Write(e)),
            Err(Stop::Again { error, from_zero }) => (error, from_zero),
        };
        if from_zero {
            (run.on_restart)(at);
            at = 0;
        }
        tries += 1;
        if tries > run.retry.retries {
            return Err(FillError::Source(error));
        }
        let wait = backoff(run.retry, tries);
        if let TransportError::Registry(e) = &error {
            (run.on_retry)(e, wait);
        }
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(FillError::Source(TransportError::Cancelled)),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The wait before try `n` (1-based): doubling from the policy's least, capped.
fn backoff(policy: RetryPolicy, n: usize) -> Duration {
    let doublings = u32::try_from(n.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    policy
        .min_delay
        .saturating_mul(1u32 << doublings)
        .min(policy.max_delay)
}

/// The end of a pass that hashed the blob itself: the bytes are the blob's, or they
/// are fetched again from zero.
fn finish_own(to: &SlotTarget<'_>, hasher: Hasher, written: u64) -> Result<(), Stop> {
    let actual = hasher.finish();
    if &actual == to.digest {
        return Ok(());
    }
    Err(Stop::Again {
        error: TransportError::Registry(RegistryError::DigestMismatch {
            what: to.what.clone(),
            expected: to.digest.clone(),
            actual,
        }),
        from_zero: written > 0,
    })
}

/// Hashes the first `len` bytes of the slot (what an earlier try or run wrote).
async fn hash_prefix(to: &SlotTarget<'_>, len: u64) -> Result<Hasher, Stop> {
    let (file, start) = (to.file.clone(), to.slot.data_offset);
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<Hasher> {
        let mut h = Hasher::new();
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut done = 0u64;
        while done < len {
            let n = usize::try_from(len - done)
                .unwrap_or(WRITE_BUFFER)
                .min(WRITE_BUFFER);
            let chunk = buf.get_mut(..n).unwrap_or_default();
            file.read_exact_at(chunk, start.saturating_add(done))?;
            h.update(chunk);
            done += n as u64;
        }
        Ok(h)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    hashed.map_err(|e| Stop::Write(write_error(to, e)))
}

fn write_error(to: &SlotTarget<'_>, e: std::io::Error) -> TransportError {
    TransportError::Registry(RegistryError::Io {
        what: crate::tr!("writing {} into the bundle", "将 {} 写入镜像包", to.digest),
        source: e,
    })
}

/// A buffer being written (and, when the fill hashes itself, hashed) on the
/// blocking pool; gives back the buffer for reuse and the hasher.
type WriteJob = tokio::task::JoinHandle<(Vec<u8>, Option<Hasher>, std::io::Result<()>)>;

/// One pass over a stream: writes what arrives after the `at` bytes in the slot,
/// moving `at` as buffers settle, so a cut resumes after them.
async fn pump(
    mut body: BlobStream,
    to: &SlotTarget<'_>,
    at: &mut u64,
    hasher: Option<Hasher>,
    run: &FillRun<'_>,
) -> Result<(), Stop> {
    let size = to.slot.size;
    let own_hash = hasher.is_some();
    let mut hasher = hasher;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut spare: Option<Vec<u8>> = None;
    let mut in_flight: Option<(WriteJob, u64)> = None;
    let mut received = *at;
    let mut cut: Option<std::io::Error> = None;
    loop {
        let next = tokio::select! {
            _ = run.cancel.cancelled() => return Err(Stop::Cancelled),
            next = body.next() => next,
        };
        let chunk = match next {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                cut = Some(e);
                None
            }
            None => None,
        };
        if let Some(c) = &chunk {
            received = received.saturating_add(c.len() as u64);
            if received > size {
                return Err(Stop::Fatal(TransportError::Registry(
                    RegistryError::SizeMismatch {
                        what: to.what.clone(),
                        expected: size,
                        actual: received,
                    },
                )));
            }
            buf.extend_from_slice(c);
        }
        if !buf.is_empty() && (chunk.is_none() || buf.len() >= WRITE_BUFFER) {
            if let Some((job, n)) = in_flight.take() {
                let (b, h) = settle(job, n, at, to, run).await?;
                hasher = h;
                spare = Some(b);
            }
            let data = std::mem::replace(
                &mut buf,
                spare
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER)),
            );
            let n = data.len() as u64;
            in_flight = Some((write_at(to, *at, data, hasher.take()), n));
        }
        if chunk.is_none() {
            break;
        }
    }
    if let Some((job, n)) = in_flight.take() {
        hasher = settle(job, n, at, to, run).await?.1;
    }
    if let Some(e) = cut {
        return Err(stream_stopped(to, e));
    }
    if *at < size {
        return Err(Stop::Again {
            error: TransportError::Registry(RegistryError::Incomplete {
                what: to.what.clone(),
                got: *at,
                expected: size,
            }),
            from_zero: false,
        });
    }
    match (own_hash, hasher) {
        (true, Some(h)) => finish_own(to, h, *at),
        // The source checked the whole stream, up to its end.
        _ => Ok(()),
    }
}

/// What a stream error means. The source's own check failing (a digest or a size
/// that is not the descriptor's) says the bytes are not the blob's: no retry fixes
/// that. Anything else (a cut, a stall) resumes after what was written.
fn stream_stopped(to: &SlotTarget<'_>, e: std::io::Error) -> Stop {
    if crate::transport::check_failure(&e).is_some() {
        return Stop::Fatal(TransportError::Corrupt {
            detail: crate::i18n::io_error(&e),
        });
    }
    Stop::Again {
        error: TransportError::Registry(RegistryError::Transport {
            what: to.what.clone(),
            detail: crate::i18n::io_error(&e),
            retryable: true,
        }),
        from_zero: false,
    }
}

fn write_at(
    to: &SlotTarget<'_>,
    at: u64,
    mut data: Vec<u8>,
    mut hasher: Option<Hasher>,
) -> WriteJob {
    let (file, offset) = (to.file.clone(), to.slot.data_offset.saturating_add(at));
    tokio::task::spawn_blocking(move || {
        if let Some(h) = hasher.as_mut() {
            h.update(&data);
        }
        let r = file.write_all_at(&data, offset);
        data.clear();
        (data, hasher, r)
    })
}

/// Waits for a buffer in flight and counts its bytes as written.
async fn settle(
    job: WriteJob,
    n: u64,
    at: &mut u64,
    to: &SlotTarget<'_>,
    run: &FillRun<'_>,
) -> Result<(Vec<u8>, Option<Hasher>), Stop> {
    let (buf, hasher, result) = job
        .await
        .map_err(|e| Stop::Write(write_error(to, std::io::Error::other(e.to_string()))))?;
    result.map_err(|e| Stop::Write(write_error(to, e)))?;
    *at = at.saturating_add(n);
    (run.on_written)(*at);
    Ok((buf, hasher))
}
