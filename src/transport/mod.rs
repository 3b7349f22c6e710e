//! Endpoints: where images live. Every endpoint is an [`ImageSource`], an
//! [`ImageSink`], or both, and every command is one copy between two of them
//! (see `engine::copy`). The traits are the only currency between commands: raw
//! manifest bytes with their media type, blobs as checked byte streams.
//!
//! Addressing follows the registry's model: a *repository* (`library/nginx`) and a
//! *reference* inside it (a tag or a `sha256:` digest). Endpoints that hold one
//! nameless image (a docker archive of one image, an OCI layout entry without a
//! name) accept any repository.

pub mod archive_feed;
pub mod blocking;
pub mod bundle;
pub mod checked;
pub mod containerd;
pub mod docker_archive;
pub mod docker_engine;
pub mod feed_sink;
pub mod file_io;
pub mod image_names;
pub mod oci_layout;
pub mod registry;
pub mod spec;

use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest};
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;

pub use checked::{check_failure, CheckedStream};
pub use spec::{parse_transport, TransportSpec};

/// A blob's bytes as they arrive; an error ends the stream.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Why an endpoint could not do what was asked. Kept typed until printed, so the
/// engine decides on retries and reports without reading message text.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("{0}")]
    Bundle(#[from] crate::bundle::reader::BundleError),
    #[error("{0}")]
    DockerEngine(#[from] docker_engine::DockerEngineError),
    #[error("{0}")]
    Containerd(#[from] containerd::ContainerdError),
    #[error("{}", crate::tr!("{} not found in {}", "{} 中没有 {}", .what, .endpoint))]
    NotFound { endpoint: String, what: String },
    #[error("{}", crate::tr!("{}: {} has digest {}, expected {}", "{}: {} 的摘要为 {}, 应为 {}", .endpoint, .what, .actual, .expected))]
    DigestMismatch {
        endpoint: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    /// The source's bytes of a blob are not the blob's (a [`CheckedStream`]
    /// failed): a damaged bundle or file, not a network fault; never retried.
    #[error("{detail}")]
    Corrupt { detail: String },
    #[error("{}", crate::tr!("{}: {}", "{}: {}", .endpoint, .reason))]
    Unsupported { endpoint: String, reason: String },
    #[error("{}", crate::tr!("{}: {}", "{}: {}", .endpoint, .reason))]
    Invalid { endpoint: String, reason: String },
    #[error("{}: {}", .endpoint, crate::i18n::io_error(.source))]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", crate::i18n::t("interrupted", "已中断"))]
    Cancelled,
}

impl TransportError {
    /// Worth another try (a network fault, a 5xx), as the registry client decides.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Registry(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether the source handed out bytes that failed their digest or size check.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, TransportError::Corrupt { .. })
    }

    pub fn io(endpoint: impl Into<String>, source: std::io::Error) -> TransportError {
        TransportError::Io {
            endpoint: endpoint.into(),
            source,
        }
    }
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// A source as sinks hold it while they read from it.
pub type SharedSource = std::sync::Arc<dyn ImageSource>;

/// A blob as a manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// Where images come from. Implementations check what they hand out: a manifest's
/// bytes match the digest asked for, and a blob stream opened at offset 0 fails at
/// its end (or as soon as it runs over `size`) when its bytes are not the blob's.
#[async_trait::async_trait]
pub trait ImageSource: Send + Sync {
    /// Names the endpoint in messages (`docker://host`, `bundle:PATH`, `oci:DIR`).
    fn describe(&self) -> String;

    /// The repositories this source can list without being told (a bundle, a
    /// layout, an archive); `None` for a registry, whose catalog is not asked.
    async fn repositories(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// The tags of a repository.
    async fn list_tags(&self, repository: &str) -> Result<Vec<String>>;

    /// A manifest by tag or digest: the exact bytes, media type and digest.
    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)>;

    /// Streams a blob's bytes from `offset` on; checked against `blob` when
    /// `offset` is 0.
    async fn open_blob(&self, repository: &str, blob: &BlobRef, offset: u64) -> Result<BlobStream>;

    /// The digests of manifests that refer to `subject` (signatures, attestations,
    /// SBOMs), from the referrers API where the source has one; empty by default.
    async fn referrers(&self, _repository: &str, _subject: &Digest) -> Result<Vec<Digest>> {
        Ok(Vec::new())
    }

    /// The shortest round trip seen to this source so far (a remote one), so the
    /// engine starts at the right pace (see `engine::pace`).
    fn round_trip(&self) -> Option<std::time::Duration> {
        None
    }
}

/// How progress names the blobs going into a sink: the label of its bytes bar and
/// the word for one blob done (`push`/`sent` for a registry, `save`/`saved` for a
/// bundle).
#[derive(Clone, Copy, Debug)]
pub struct ProgressWords {
    pub bar: &'static str,
    pub blob_done: &'static str,
}

/// Where images go. The engine calls, per image: `has_blob` (and `mount_blob`)
/// to skip what is there, `put_blob` for the rest, then `put_manifest` children
/// first and the tagged top manifest last; `finish` once at the end of the run.
#[async_trait::async_trait]
pub trait ImageSink: Send + Sync {
    fn describe(&self) -> String;

    /// Whether the sink stores indexes (manifest lists). A docker archive, a docker
    /// engine or containerd's import take one platform's image: for them the engine
    /// picks the child that `--platform` (else the host's) names.
    fn supports_index(&self) -> bool {
        true
    }

    /// How many blobs the sink takes at once; `Some(1)` for a sink that writes one
    /// stream (an archive), `None` to let the engine decide.
    fn concurrency_limit(&self) -> Option<usize> {
        None
    }

    /// The words progress uses for this sink's work.
    fn progress_words(&self) -> ProgressWords {
        ProgressWords {
            bar: crate::i18n::t("push", "推送"),
            blob_done: crate::i18n::t("sent", "已发送"),
        }
    }

    /// The shortest round trip seen to this sink so far (a remote one).
    fn round_trip(&self) -> Option<std::time::Duration> {
        None
    }

    /// Checks once, before any work, that the sink can be reached at all, so a dead
    /// target fails the run once instead of every image and blob on its own.
    async fn ready(&self) -> Result<()> {
        Ok(())
    }

    /// Makes the repositories about to be written ready (Harbor projects); returns
    /// notes worth showing.
    async fn prepare(&self, _repositories: &[String]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The digest the sink holds under `reference` (a tag or digest), so an image
    /// already there is skipped; `None` when absent or when the sink cannot tell.
    async fn manifest_digest(&self, _repository: &str, _reference: &str) -> Result<Option<Digest>> {
        Ok(None)
    }

    /// Whether the sink already has this blob (so it need not be sent).
    async fn has_blob(&self, repository: &str, blob: &BlobRef) -> Result<bool>;

    /// Asks the sink to take the blob from another of its repositories without
    /// sending the bytes; `Ok(false)` when it cannot (the default).
    async fn mount_blob(&self, _repository: &str, _blob: &BlobRef, _from: &str) -> Result<bool> {
        Ok(false)
    }

    /// Takes a blob, reading it from `source` (which it may reopen at an offset to
    /// retry or resume; shared, so a sink may read it from a task of its own).
    /// Returns the bytes it read.
    async fn put_blob(
        &self,
        repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64>;

    /// Takes a manifest's exact bytes; `tag` is set for the top manifest of a
    /// tagged image, `None` for children and digest-only images.
    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()>;

    /// Ends the run: writes an index, closes an archive, hands a load to an engine.
    /// Nothing a sink wrote is complete before this returns.
    async fn finish(&self) -> Result<()> {
        Ok(())
    }
}
