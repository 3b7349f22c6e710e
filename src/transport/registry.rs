//! The registry endpoint (`docker://`): a source and a sink over one registry
//! [`Client`]. Retries live here, once, around each whole request (the engine and
//! the commands never wrap a call in a retry of their own); a streamed upload body
//! is rebuilt from the source for each try.

use super::{
    BlobRef, BlobStream, CheckedStream, ImageSink, ImageSource, Result, SharedSource,
    TransportError,
};
use crate::digest::Digest;
use crate::engine::retry::{retry, RetryPolicy};
use crate::manifest::{Parsed, RawManifest};
use crate::registry::{Client, RegistryError, UploadStart};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hears each request that is about to be tried again (for the progress log).
pub type RetryNotice = Arc<dyn Fn(&RegistryError, Duration) + Send + Sync>;

/// How a registry endpoint retries: the policy, Ctrl-C, and who hears of retries.
#[derive(Clone)]
pub struct Retrying {
    pub policy: RetryPolicy,
    pub cancel: CancellationToken,
    pub notice: RetryNotice,
}

impl Retrying {
    pub fn new(policy: RetryPolicy, cancel: CancellationToken, notice: RetryNotice) -> Retrying {
        Retrying {
            policy,
            cancel,
            notice,
        }
    }

    /// Retries that the reporter's log hears of.
    pub fn for_reporter(
        policy: RetryPolicy,
        cancel: &CancellationToken,
        reporter: &crate::engine::report::Reporter,
    ) -> Retrying {
        let reporter = reporter.clone();
        Retrying::new(
            policy,
            cancel.clone(),
            Arc::new(move |e, d| reporter.retrying(e, d)),
        )
    }

    /// Runs `op` with the retry policy.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let notice = self.notice.clone();
        retry(self.policy, &self.cancel, &move |e, d| notice(e, d), op).await
    }
}

/// One registry, as a source and as a sink.
#[derive(Clone)]
pub struct RegistryEndpoint {
    client: Arc<Client>,
    retrying: Retrying,
    /// Whether it is a Harbor (asked once, beside the first ping).
    harbor: Arc<tokio::sync::OnceCell<bool>>,
    /// Set once it answered a ping: a front end that checked early (sync, while
    /// the source resolves) makes the engine's check free.
    ready: Arc<std::sync::OnceLock<()>>,
}

impl RegistryEndpoint {
    pub fn new(client: Arc<Client>, retrying: Retrying) -> RegistryEndpoint {
        RegistryEndpoint {
            client,
            retrying,
            harbor: Arc::default(),
            ready: Arc::default(),
        }
    }

    async fn is_harbor(&self) -> bool {
        *self
            .harbor
            .get_or_init(|| async { self.client.is_harbor().await })
            .await
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    pub fn retrying(&self) -> &Retrying {
        &self.retrying
    }
}

/// Streams `resp`'s body, dropping the first `skip` bytes (a registry that answered
/// a Range request from an earlier offset than asked, or ignored it).
fn body_from(resp: crate::registry::BlobResponse, skip: u64) -> BlobStream {
    let mut skip = skip;
    Box::pin(resp.bytes_stream().filter_map(move |chunk| {
        let out = match chunk {
            Err(e) => Some(Err(std::io::Error::other(e))),
            Ok(mut c) => {
                if skip > 0 {
                    let n = usize::try_from(skip).unwrap_or(usize::MAX).min(c.len());
                    let _ = c.split_to(n);
                    skip -= n as u64;
                }
                (!c.is_empty()).then_some(Ok(c))
            }
        };
        std::future::ready(out)
    }))
}

#[async_trait::async_trait]
impl ImageSource for RegistryEndpoint {
    fn describe(&self) -> String {
        self.client.host().to_string()
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        Ok(self.retrying.run(|| self.client.tags(repository)).await?)
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        Ok(self
            .retrying
            .run(|| self.client.get_manifest(repository, reference))
            .await?)
    }

    async fn open_blob(&self, repository: &str, blob: &BlobRef, offset: u64) -> Result<BlobStream> {
        let (resp, start) = self
            .retrying
            .run(|| self.client.get_blob(repository, &blob.digest, offset))
            .await?;
        let body = body_from(resp, offset.saturating_sub(start));
        if offset == 0 {
            let what = crate::tr!(
                "blob {0} in {1}/{repository}",
                "{1}/{repository} 中的数据块 {0}",
                blob.digest,
                self.client.host()
            );
            return Ok(CheckedStream::new(body, blob.digest.clone(), blob.size, what).boxed());
        }
        Ok(body)
    }

    fn round_trip(&self) -> Option<Duration> {
        self.client.round_trip()
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>> {
        let found = self
            .retrying
            .run(|| self.client.referrers(repository, subject))
            .await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.digest)
            .collect())
    }
}

#[async_trait::async_trait]
impl ImageSink for RegistryEndpoint {
    fn describe(&self) -> String {
        self.client.host().to_string()
    }

    fn round_trip(&self) -> Option<Duration> {
        self.client.round_trip()
    }

    async fn ready(&self) -> Result<()> {
        if self.ready.get().is_some() {
            return Ok(());
        }
        let notice = self.retrying.notice.clone();
        let on_retry = move |e: &RegistryError, d: Duration| notice(e, d);
        // Whether it is a Harbor (for `prepare`) is asked meanwhile: no round trip
        // of its own later.
        let (unreachable, _) = tokio::join!(
            crate::engine::retry::unreachable(
                &self.client,
                self.retrying.policy,
                &self.retrying.cancel,
                &on_retry,
            ),
            self.is_harbor()
        );
        match unreachable {
            Some(e) => Err(e.into()),
            None => {
                let _ = self.ready.set(());
                Ok(())
            }
        }
    }

    /// Harbor refuses pushes into projects that do not exist: create them (private).
    async fn prepare(&self, repositories: &[String]) -> Result<Vec<String>> {
        if repositories.is_empty() || !self.is_harbor().await {
            return Ok(Vec::new());
        }
        let mut projects: Vec<String> = repositories
            .iter()
            .filter_map(|r| r.split('/').next().map(str::to_string))
            .collect();
        projects.sort();
        projects.dedup();
        let created = self.client.harbor_ensure_projects(&projects).await?;
        if created.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![crate::tr!(
            "created Harbor projects (private): {}",
            "已创建 Harbor 项目 (私有): {}",
            created.join(", ")
        )])
    }

    async fn manifest_digest(&self, repository: &str, reference: &str) -> Result<Option<Digest>> {
        Ok(self
            .retrying
            .run(|| self.client.manifest_digest(repository, reference))
            .await?)
    }

    async fn has_blob(&self, repository: &str, blob: &BlobRef) -> Result<bool> {
        Ok(self
            .retrying
            .run(|| self.client.blob_exists(repository, &blob.digest))
            .await?
            .is_some())
    }

    async fn mount_blob(&self, repository: &str, blob: &BlobRef, from: &str) -> Result<bool> {
        let started = self
            .retrying
            .run(|| {
                self.client
                    .start_upload(repository, &blob.digest, Some(from))
            })
            .await?;
        Ok(matches!(started, UploadStart::Mounted))
    }

    async fn put_blob(
        &self,
        repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64> {
        let corrupt = CorruptSlot::default();
        let body = stream_body(
            source,
            source_repository.to_string(),
            blob.clone(),
            corrupt.clone(),
        );
        let pushed = self
            .retrying
            .run(|| async {
                let r = self
                    .client
                    .push_blob(repository, &blob.digest, blob.size, &body)
                    .await;
                // Bytes that failed their check stay wrong on the next try.
                match (r, corrupt.get()) {
                    (Err(_), Some(detail)) => Err(RegistryError::Protocol {
                        what: String::new(),
                        detail,
                    }),
                    (r, _) => r,
                }
            })
            .await;
        match (pushed, corrupt.get()) {
            (Err(_), Some(detail)) => Err(TransportError::Corrupt { detail }),
            (r, _) => {
                r?;
                Ok(blob.size)
            }
        }
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let reference = tag
            .map(str::to_string)
            .unwrap_or_else(|| manifest.digest.to_string());
        Ok(self
            .retrying
            .run(|| {
                self.client.put_manifest(
                    repository,
                    &reference,
                    &manifest.media_type,
                    &manifest.bytes,
                )
            })
            .await?)
    }
}

/// Where a request body notes that its source's bytes failed their check, so the
/// upload's error says "corrupt" (and is not retried) instead of "connection reset".
#[derive(Clone, Default)]
struct CorruptSlot(Arc<std::sync::Mutex<Option<String>>>);

impl CorruptSlot {
    fn note(&self, e: &std::io::Error) {
        if let Some(failed) = super::check_failure(e) {
            if let Ok(mut slot) = self.0.lock() {
                slot.get_or_insert_with(|| failed.to_string());
            }
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// A request body for `len` bytes of a blob from `offset`, read from the source on
/// a task of its own; rebuilt for every try of the upload. A whole blob is sent
/// from the checked stream, one chunk behind: its last chunk goes out only once
/// the stream has ended with the digest and size right, so the registry never gets
/// the complete body of bytes that are not the blob's (the upload fails instead).
/// The chunks of a chunked upload are hashed in turn (see [`RangeHashes`]), and the
/// one that ends the blob is held back the same way.
fn stream_body(
    source: SharedSource,
    source_repository: String,
    blob: BlobRef,
    corrupt: CorruptSlot,
) -> impl Fn(u64, u64) -> std::io::Result<reqwest::Body> + Send + Sync {
    let hashes = RangeHashes::default();
    move |offset, len| {
        let (source, repo, blob) = (source.clone(), source_repository.clone(), blob.clone());
        let (corrupt, hashes) = (corrupt.clone(), hashes.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::spawn(async move {
            let whole = offset == 0 && len == blob.size;
            // A chunk is hashed on from the state the chunks before it left; with
            // none (a chunk out of order), the blob is read again from its start.
            let (open_at, from) = match hashes.at(offset) {
                Some(h) => (offset, h),
                None => (0, crate::digest::Hasher::new()),
            };
            let stream = match source.open_blob(&repo, &blob, open_at).await {
                Ok(s) => s,
                Err(e) => {
                    let e = if e.is_corrupt() {
                        let failed = super::checked::CheckFailed(e.to_string());
                        std::io::Error::new(std::io::ErrorKind::InvalidData, failed)
                    } else {
                        std::io::Error::other(e.to_string())
                    };
                    corrupt.note(&e);
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let sent = if whole {
                send_checked(stream, &tx).await
            } else {
                let range = Range {
                    skip: offset - open_at,
                    offset,
                    len,
                };
                send_range(stream, range, from, &blob, &*source, &hashes, &tx).await
            };
            if let Err(e) = sent {
                corrupt.note(&e);
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }
}

/// The hash of a blob's first N bytes, for each N where a chunk of a chunked
/// upload ended: the next chunk goes on hashing from there, and the last one is
/// checked against the digest before its last piece is sent. A chunk sent again (a
/// retry, a smaller chunk after `413`) starts from the state its start recorded.
#[derive(Clone, Default)]
struct RangeHashes(Arc<std::sync::Mutex<std::collections::HashMap<u64, crate::digest::Hasher>>>);

impl RangeHashes {
    fn at(&self, offset: u64) -> Option<crate::digest::Hasher> {
        if offset == 0 {
            return Some(crate::digest::Hasher::new());
        }
        self.0.lock().ok()?.get(&offset).cloned()
    }

    fn record(&self, end: u64, hasher: &crate::digest::Hasher) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(end, hasher.clone());
        }
    }
}

type BodyTx = tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>;

/// Sends a whole (checked) blob stream one chunk behind, so an error at its end
/// (the digest check) arrives before the body is complete. `Ok` also when the
/// request stopped reading.
async fn send_checked(mut stream: BlobStream, tx: &BodyTx) -> std::io::Result<()> {
    let mut held: Option<bytes::Bytes> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(prev) = held.replace(chunk) {
            if tx.send(Ok(prev)).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(last) = held {
        let _ = tx.send(Ok(last)).await;
    }
    Ok(())
}

/// One chunk of a chunked upload: `len` bytes from `offset`, read from a stream
/// that starts `skip` bytes before `offset` (hashed, not sent).
struct Range {
    skip: u64,
    offset: u64,
    len: u64,
}

/// Sends a chunk of a blob, hashing it on from `hasher` (the state at the stream's
/// start). The chunk that ends the blob is sent one piece behind, its last piece
/// only once the whole blob's digest is right; an earlier one records its end
/// state for the next. `Ok` also when the request stopped reading.
async fn send_range(
    mut stream: BlobStream,
    range: Range,
    mut hasher: crate::digest::Hasher,
    blob: &BlobRef,
    source: &dyn ImageSource,
    hashes: &RangeHashes,
    tx: &BodyTx,
) -> std::io::Result<()> {
    let end = range
        .offset
        .checked_add(range.len)
        .filter(|e| *e <= blob.size)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                crate::tr!(
                    "chunk past the end of {}",
                    "分块超出了 {} 的末尾",
                    blob.digest
                ),
            )
        })?;
    let last = end == blob.size;
    let (mut skip, mut left) = (range.skip, range.len);
    let mut held: Option<bytes::Bytes> = None;
    while left > 0 {
        let mut chunk = match stream.next().await {
            Some(c) => c?,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    crate::tr!(
                        "source of {} ended early",
                        "{} 的源数据提前结束",
                        blob.digest
                    ),
                ))
            }
        };
        if skip > 0 {
            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
            hasher.update(chunk.get(..n).unwrap_or_default());
            skip -= n as u64;
            chunk = chunk.slice(n..);
            if chunk.is_empty() {
                continue;
            }
        }
        if chunk.len() as u64 > left {
            chunk.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        left -= chunk.len() as u64;
        hasher.update(&chunk);
        let out = if last {
            match held.replace(chunk) {
                Some(prev) => prev,
                None => continue,
            }
        } else {
            chunk
        };
        if tx.send(Ok(out)).await.is_err() {
            return Ok(());
        }
    }
    if last {
        let actual = hasher.finish();
        if actual != blob.digest {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                super::checked::CheckFailed(crate::tr!(
                    "blob {} from {}: bytes have digest {actual}, expected {} (corrupt or altered)",
                    "来自 {1} 的数据块 {0}: 内容摘要为 {actual}, 应为 {2} (已损坏或被修改)",
                    blob.digest,
                    source.describe(),
                    blob.digest
                )),
            ));
        }
    } else {
        hashes.record(end, &hasher);
    }
    if let Some(last) = held {
        let _ = tx.send(Ok(last)).await;
    }
    Ok(())
}

impl From<TransportError> for RegistryError {
    fn from(e: TransportError) -> RegistryError {
        match e {
            TransportError::Registry(r) => r,
            TransportError::Cancelled => RegistryError::Cancelled,
            other => RegistryError::Protocol {
                what: String::new(),
                detail: other.to_string(),
            },
        }
    }
}
