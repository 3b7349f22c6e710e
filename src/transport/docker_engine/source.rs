//! [`DockerEngineSource`]: images of a docker engine, as skopeo's
//! `docker-daemon:REF` reads them: the engine's own export (`GET /images/get`,
//! what `docker save` writes) spooled to a temporary file, then read as a docker
//! archive. The engine gives no random access to blobs, so the spool is the one
//! copy on disk; it is removed with the source.

use super::api::DockerEngine;
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest};
use crate::transport::docker_archive::DockerArchiveSource;
use crate::transport::file_io::TempFile;
use crate::transport::{BlobRef, BlobStream, ImageSource, Result, TransportError};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static SPOOLS: AtomicUsize = AtomicUsize::new(0);

/// Images exported from a docker engine; see the module docs.
pub struct DockerEngineSource {
    endpoint: String,
    archive: DockerArchiveSource,
    // Declared last: removed after the archive reader is gone.
    _spool: TempFile,
}

impl DockerEngineSource {
    /// Exports `names` (`repository:tag` or image IDs, as `docker save` takes
    /// them) from `engine` into a new temporary file in `dir`, and reads it. With
    /// one name, every tag lookup means that image.
    pub async fn export(
        engine: &DockerEngine,
        names: &[String],
        dir: &Path,
    ) -> Result<DockerEngineSource> {
        let endpoint = format!("docker-daemon:{} ({})", names.join(","), engine.describe());
        let path = dir.join(format!(
            ".ferry-docker-export-{}-{}.tar",
            std::process::id(),
            SPOOLS.fetch_add(1, Ordering::Relaxed)
        ));
        let spool = TempFile::new(path.clone());
        let io = |e| TransportError::io(endpoint.clone(), e);
        // A new file only: never through a link someone left in a shared folder.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(io)?;
        engine.export(names, &mut file).await?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        let archive = tokio::task::spawn_blocking(move || DockerArchiveSource::open(&path, None))
            .await
            .map_err(|e| io(std::io::Error::other(e)))??;
        Ok(DockerEngineSource {
            endpoint,
            archive,
            _spool: spool,
        })
    }

    /// The archive the engine exported (its images, as `manifest.json` lists them).
    pub fn archive(&self) -> &DockerArchiveSource {
        &self.archive
    }
}

#[async_trait::async_trait]
impl ImageSource for DockerEngineSource {
    fn describe(&self) -> String {
        self.endpoint.clone()
    }

    async fn repositories(&self) -> Result<Option<Vec<String>>> {
        self.archive.repositories().await
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        self.archive.list_tags(repository).await
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        self.archive.get_manifest(repository, reference).await
    }

    async fn open_blob(&self, repository: &str, blob: &BlobRef, offset: u64) -> Result<BlobStream> {
        self.archive.open_blob(repository, blob, offset).await
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>> {
        self.archive.referrers(repository, subject).await
    }
}
