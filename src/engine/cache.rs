//! A content-addressed local blob cache (cfg `cache: {pathname, keepdays, keepsize}`):
//! save and sync read it before the network, save fills it after. Entries are named
//! by digest and verified against it on every use; a corrupt entry is dropped. Old
//! entries go first when the cache outgrows its size, and entries past their age go
//! at the end of every run.

use crate::digest::{Digest, Hasher};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
    keep_for: Duration,
    max_bytes: u64,
}

const CHUNK: usize = 1 << 20;

impl BlobCache {
    /// `keep_days` default 7 and `keep_gib` default 10, as image-transmit.
    pub fn open(
        dir: &Path,
        keep_days: Option<u64>,
        keep_gib: Option<u64>,
    ) -> std::io::Result<BlobCache> {
        let cache = BlobCache {
            dir: dir.to_path_buf(),
            keep_for: Duration::from_secs(keep_days.unwrap_or(7) * 86_400),
            max_bytes: keep_gib.unwrap_or(10) << 30,
        };
        std::fs::create_dir_all(cache.dir.join("blobs/sha256"))?;
        Ok(cache)
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.blob_path())
    }

    /// The cached blob, if present with the right size (digest checked by the reader).
    pub fn lookup(&self, digest: &Digest, size: u64) -> Option<PathBuf> {
        let p = self.path(digest);
        (std::fs::metadata(&p).ok()?.len() == size).then_some(p)
    }

    /// The cached blob's path after checking its digest (a corrupt entry is dropped).
    pub fn verified(&self, digest: &Digest, size: u64) -> Option<PathBuf> {
        let p = self.lookup(digest, size)?;
        let ok = (|| -> std::io::Result<bool> {
            let mut f = File::open(&p)?;
            let mut h = Hasher::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(&h.finish() == digest);
                }
                h.update(&buf[..n]);
            }
        })()
        .unwrap_or(false);
        if !ok {
            let _ = std::fs::remove_file(&p);
        }
        ok.then_some(p)
    }

    /// Copies a cached blob into `file` at `offset`, verifying its digest on the way.
    /// Returns false (and drops the entry when it is corrupt) if it cannot serve it.
    pub fn copy_into(&self, digest: &Digest, size: u64, file: &File, offset: u64) -> bool {
        let Some(p) = self.lookup(digest, size) else {
            return false;
        };
        let copied = (|| -> std::io::Result<Digest> {
            let mut src = File::open(&p)?;
            let mut h = Hasher::new();
            let mut buf = vec![0u8; CHUNK];
            let mut pos = 0;
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                file.write_all_at(&buf[..n], offset + pos)?;
                pos += n as u64;
            }
            Ok(h.finish())
        })();
        match copied {
            Ok(d) if &d == digest => {
                let _ = File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                true
            }
            _ => {
                let _ = std::fs::remove_file(&p);
                false
            }
        }
    }

    /// Stores a verified blob from a region of `file` (written to a temporary name,
    /// then renamed, so a reader never sees half an entry).
    pub fn store_from(
        &self,
        digest: &Digest,
        size: u64,
        file: &File,
        offset: u64,
    ) -> std::io::Result<()> {
        let p = self.path(digest);
        if self.lookup(digest, size).is_some() {
            return Ok(());
        }
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        let mut out = File::create(&tmp)?;
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0;
        while pos < size {
            let n = ((size - pos) as usize).min(CHUNK);
            file.read_exact_at(&mut buf[..n], offset + pos)?;
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        out.sync_all()?;
        std::fs::rename(&tmp, &p)
    }

    /// Drops entries older than the age limit, then the oldest until the cache fits.
    pub fn evict(&self) -> std::io::Result<usize> {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> =
            std::fs::read_dir(self.dir.join("blobs/sha256"))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((m.modified().ok()?, m.len(), e.path()))
                })
                .collect();
        entries.sort();
        let now = SystemTime::now();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        let mut removed = 0;
        for (modified, len, path) in entries {
            let too_old = now.duration_since(modified).unwrap_or_default() > self.keep_for;
            if (too_old || total > self.max_bytes) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
                total -= len;
            }
        }
        Ok(removed)
    }
}

/// A source that serves the blobs the cache holds (verified) from it, and the
/// rest from `inner`: sync pushes cached blobs and save stores them without
/// fetching them again.
pub struct CachedSource {
    pub inner: crate::transport::SharedSource,
    pub cache: BlobCache,
    /// Bytes served from the cache (shared by the sources of one run).
    pub served: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CachedSource {
    pub fn new(
        inner: crate::transport::SharedSource,
        cache: BlobCache,
        served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> CachedSource {
        CachedSource {
            inner,
            cache,
            served,
        }
    }
}

#[async_trait::async_trait]
impl crate::transport::ImageSource for CachedSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn list_tags(&self, repository: &str) -> crate::transport::Result<Vec<String>> {
        self.inner.list_tags(repository).await
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> crate::transport::Result<(crate::manifest::RawManifest, crate::manifest::Parsed)> {
        self.inner.get_manifest(repository, reference).await
    }

    async fn open_blob(
        &self,
        repository: &str,
        blob: &crate::transport::BlobRef,
        offset: u64,
    ) -> crate::transport::Result<crate::transport::BlobStream> {
        let Some(path) = self.cache.verified(&blob.digest, blob.size) else {
            return self.inner.open_blob(repository, blob, offset).await;
        };
        let loc = crate::bundle::reader::BlobLocation {
            path,
            data_offset: 0,
            size: blob.size,
            compressed: false,
        };
        let offset = offset.min(blob.size);
        self.served
            .fetch_add(blob.size - offset, std::sync::atomic::Ordering::Relaxed);
        let rx = loc.stream(offset, blob.size - offset);
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> crate::transport::Result<Vec<Digest>> {
        self.inner.referrers(repository, subject).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_serves_and_drops_corrupt_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path(), None, None).unwrap();
        let data = b"some layer bytes".to_vec();
        let digest = Digest::of(&data);
        let src = tempfile::tempfile().unwrap();
        src.write_all_at(&data, 100).unwrap();
        cache
            .store_from(&digest, data.len() as u64, &src, 100)
            .unwrap();
        let dst = tempfile::tempfile().unwrap();
        assert!(cache.copy_into(&digest, data.len() as u64, &dst, 7));
        let mut back = vec![0u8; data.len()];
        dst.read_exact_at(&mut back, 7).unwrap();
        assert_eq!(back, data);
        std::fs::write(cache.path(&digest), b"XXXX layer bytes").unwrap();
        assert!(
            !cache.copy_into(&digest, data.len() as u64, &dst, 7),
            "a corrupt entry is not served"
        );
        assert!(!cache.path(&digest).exists(), "and it is dropped");
    }

    #[test]
    fn eviction_keeps_the_cache_within_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache {
            dir: dir.path().to_path_buf(),
            keep_for: Duration::from_secs(3600),
            max_bytes: 10,
        };
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        for i in 0..3u8 {
            std::fs::write(cache.path(&Digest::of(&[i])), [i; 6]).unwrap();
        }
        assert_eq!(cache.evict().unwrap(), 2);
    }
}
