//! [`DockerArchiveSink`]: writes a `docker load` archive file through
//! [`ArchiveWriter`], as `FILE.partial` renamed to FILE by `finish` (removed if
//! the run ends before).
//!
//! A docker archive holds single-platform container images: the sink takes no
//! indexes (the engine picks a platform's child), and refuses, naming why, a
//! manifest whose config is not an image config (a cosign signature, an
//! attestation, an artifact): docker, podman and skopeo all reject an archive
//! holding one. Blobs may come in any order, each manifest after its blobs.
//!
//! Names (`RepoTags`) follow the sink's [`RefNaming`]: `repository:tag`, where
//! the engine passes the repository with its registry host, as `docker save`
//! names images (`127.0.0.1:5000/library/base:1`); or, for
//! `docker-archive:FILE:REF`, REF as given (`:latest` added when it has no tag).
//! An image put without a tag is written without a name.

use super::writer::ArchiveWriter;
use crate::manifest::{Parsed, RawManifest};
use crate::transport::file_io::{StreamRead, TempFile};
use crate::transport::image_names::RefNaming;
use crate::transport::{BlobRef, ImageSink, Result, SharedSource, TransportError};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// The config media types of container images.
pub const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];

type FileWriter = ArchiveWriter<BufWriter<File>>;

/// The writer and its temporary file; `None` once finished or spoilt.
struct Open {
    writer: FileWriter,
    partial: TempFile,
}

pub struct DockerArchiveSink {
    file: PathBuf,
    naming: RefNaming,
    open: tokio::sync::Mutex<Option<Open>>,
}

impl DockerArchiveSink {
    /// Starts writing the archive `file` (as `file.partial` until `finish`).
    pub fn create(file: &Path, naming: RefNaming) -> Result<DockerArchiveSink> {
        let mut name = file.as_os_str().to_os_string();
        name.push(".partial");
        let partial = TempFile::new(PathBuf::from(name));
        let f = File::create(partial.path()).map_err(|e| {
            TransportError::io(format!("docker-archive:{}", partial.path().display()), e)
        })?;
        let writer = ArchiveWriter::new(BufWriter::with_capacity(
            crate::transport::file_io::CHUNK,
            f,
        ));
        Ok(DockerArchiveSink {
            file: file.to_path_buf(),
            naming,
            open: tokio::sync::Mutex::new(Some(Open { writer, partial })),
        })
    }

    fn endpoint(&self) -> String {
        format!("docker-archive:{}", self.file.display())
    }

    fn closed(&self) -> TransportError {
        TransportError::Invalid {
            endpoint: self.endpoint(),
            reason: crate::i18n::t(
                "the archive was given up after an earlier error",
                "之前的错误使归档已放弃",
            )
            .to_string(),
        }
    }

    /// The `RepoTags` name of an image put with `tag`.
    fn repo_tag(&self, repository: &str, tag: &str) -> String {
        let name = self.naming.name(repository, tag);
        match crate::reference::split_short(&name) {
            (_, Some(_)) => name,
            (_, None) => format!("{name}:latest"),
        }
    }

    /// Runs `f` on the writer on a blocking thread; an error that spoilt the
    /// writer gives the archive up.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut FileWriter) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut guard = self.open.lock().await;
        let mut open = guard.take().ok_or_else(|| self.closed())?;
        let (open, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut open.writer);
            (open, r)
        })
        .await
        .map_err(|e| TransportError::io(self.endpoint(), std::io::Error::other(e)))?;
        // A spoilt writer is dropped, and the partial file with it.
        if !open.writer.is_spoilt() {
            *guard = Some(open);
        }
        result.map_err(|e| TransportError::io(self.endpoint(), e))
    }
}

/// Refuses what a docker archive cannot hold: indexes, and manifests that are
/// not container images.
fn image_parts(
    endpoint: &str,
    manifest: &RawManifest,
) -> Result<(crate::digest::Digest, Vec<crate::digest::Digest>)> {
    let (_, parsed) = RawManifest::new(manifest.bytes.clone(), Some(&manifest.media_type))
        .map_err(|e| TransportError::Invalid {
            endpoint: endpoint.to_string(),
            reason: crate::tr!("manifest {}: {e}", "清单 {}: {e}", manifest.digest),
        })?;
    match parsed {
        Parsed::Index { .. } => Err(TransportError::Unsupported {
            endpoint: endpoint.to_string(),
            reason: crate::tr!(
                "{} is a multi-platform index; a docker archive holds one platform's image (choose one with --platform)",
                "{} 是多平台索引; docker 归档只能放单一平台的镜像 (请用 --platform 选择)",
                manifest.digest
            ),
        }),
        Parsed::Image { config, .. } if !IMAGE_CONFIG_TYPES.contains(&config.media_type.as_str()) => {
            Err(TransportError::Unsupported {
                endpoint: endpoint.to_string(),
                reason: crate::tr!(
                    "{} is not a container image (its config is {:?}: a signature, attestation or other artifact); docker, podman and skopeo cannot load it from a docker archive",
                    "{} 不是容器镜像 (其配置类型为 {:?}: 签名、证明或其他制品); docker、podman 和 skopeo 无法从 docker 归档加载它",
                    manifest.digest,
                    config.media_type
                ),
            })
        }
        Parsed::Image { config, layers } => Ok((
            config.digest,
            layers
                .into_iter()
                .filter(|l| !l.is_foreign())
                .map(|l| l.digest)
                .collect(),
        )),
    }
}

#[async_trait::async_trait]
impl ImageSink for DockerArchiveSink {
    fn describe(&self) -> String {
        self.endpoint()
    }

    fn supports_index(&self) -> bool {
        false
    }

    fn concurrency_limit(&self) -> Option<usize> {
        Some(1)
    }

    async fn has_blob(&self, _repository: &str, blob: &BlobRef) -> Result<bool> {
        let guard = self.open.lock().await;
        let open = guard.as_ref().ok_or_else(|| self.closed())?;
        Ok(open.writer.has_blob(&blob.digest))
    }

    async fn put_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64> {
        if self.has_blob("", blob).await? {
            return Ok(0);
        }
        let stream = source.open_blob(source_repository, blob, 0).await?;
        let handle = tokio::runtime::Handle::current();
        let (digest, size) = (blob.digest.clone(), blob.size);
        self.with_writer(move |w| w.add_blob(&digest, size, &mut StreamRead::new(handle, stream)))
            .await?;
        Ok(blob.size)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let (config, layers) = image_parts(&self.endpoint(), manifest)?;
        let repo_tags: Vec<String> = tag
            .map(|t| self.repo_tag(repository, t))
            .into_iter()
            .collect();
        let manifest = manifest.clone();
        self.with_writer(move |w| w.add_image(repo_tags, &manifest, &config, &layers))
            .await
    }

    async fn finish(&self) -> Result<()> {
        let mut guard = self.open.lock().await;
        let open = guard.take().ok_or_else(|| self.closed())?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let out = open.writer.finish()?;
            let f = out.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            open.partial.keep(&file)
        })
        .await
        .map_err(|e| TransportError::io(self.endpoint(), std::io::Error::other(e)))?
        .map_err(|e| TransportError::io(self.endpoint(), e))
    }
}
