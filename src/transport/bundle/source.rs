//! [`BundleSource`]: a bundle (and the bases it leaves blobs to) as an
//! [`ImageSource`]. Images are named as upload would push them: a renamed image by
//! its new name, others by their own repository and tag.

use crate::bundle::meta::Image;
use crate::bundle::reader::{BlobLocation, Bundle};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest};
use crate::transport::{BlobRef, BlobStream, CheckedStream, ImageSource, Result, TransportError};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};

pub struct BundleSource {
    bundle: Bundle,
    /// Where every blob of the bundle and of its bases is.
    index: HashMap<Digest, BlobLocation>,
}

/// The repository and tag an image of the bundle is known by. A rename to a bare
/// name (`a -> b`) means `b:latest`, as upload pushes it.
pub fn image_name(image: &Image) -> (String, Option<String>) {
    match &image.target {
        Some(target) => {
            let (repo, tag) = crate::reference::split_short(target);
            let tag = tag
                .map(str::to_string)
                .or_else(|| (!target.contains('@')).then(|| "latest".to_string()));
            (repo.to_string(), tag)
        }
        None => (image.repository.clone(), image.tag.clone()),
    }
}

impl BundleSource {
    /// A source over `bundle` whose blobs (its own and its bases') are at `index`
    /// (see `Bundle::verify`).
    pub fn new(bundle: Bundle, index: HashMap<Digest, BlobLocation>) -> BundleSource {
        BundleSource { bundle, index }
    }

    /// Opens the bundle at `meta_path` and finds every blob of it and of its bases
    /// (beside it or in `base_dirs`), checking the data files' sizes and tar
    /// structure; blobs and manifests are checked against their digests as read.
    pub fn open(
        meta_path: &std::path::Path,
        base_dirs: &[std::path::PathBuf],
        reporter: &crate::engine::report::Reporter,
    ) -> anyhow::Result<BundleSource> {
        use anyhow::Context as _;
        let bundle = Bundle::open(meta_path).with_context(|| {
            crate::tr!(
                "cannot open bundle {}",
                "无法打开镜像包 {}",
                meta_path.display()
            )
        })?;
        let index = crate::engine::export::locate_all(&bundle, base_dirs, reporter)?;
        Ok(BundleSource::new(bundle, index))
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn images(&self) -> &[Image] {
        &self.bundle.meta.images
    }

    /// Where each blob of the bundle (and of the bases it was opened with) is.
    pub fn index(&self) -> &HashMap<Digest, BlobLocation> {
        &self.index
    }

    pub fn location(&self, digest: &Digest) -> Option<&BlobLocation> {
        self.index.get(digest)
    }

    fn endpoint(&self) -> String {
        self.describe()
    }

    /// The image a repository and tag name, by its pushed name or its saved one.
    fn find_tagged(&self, repository: &str, tag: &str) -> Option<&Image> {
        let by_name = self.images().iter().find(|i| {
            let (repo, t) = image_name(i);
            repo == repository && t.as_deref() == Some(tag)
        });
        by_name.or_else(|| {
            self.images()
                .iter()
                .find(|i| i.repository == repository && i.tag.as_deref() == Some(tag))
        })
    }

    /// Whether a manifest belongs to an image of `repository` (its top manifest or
    /// a child), by the pushed name or the saved one: a repository serves only its
    /// own manifests, as a registry does.
    fn in_repository(&self, repository: &str, digest: &Digest) -> bool {
        self.images().iter().any(|i| {
            (image_name(i).0 == repository || i.repository == repository)
                && (&i.digest == digest || i.children.iter().any(|c| &c.digest == digest))
        })
    }

    /// The media type the meta records for a manifest digest (top or child).
    fn recorded_media_type(&self, digest: &Digest) -> Option<&str> {
        self.images().iter().find_map(|i| {
            if &i.digest == digest {
                return Some(i.media_type.as_str());
            }
            i.children
                .iter()
                .find(|c| &c.digest == digest)
                .map(|c| c.media_type.as_str())
        })
    }

    /// Reads a manifest and checks its bytes against `digest`.
    pub fn read_manifest(&self, digest: &Digest) -> Result<(RawManifest, Parsed)> {
        let endpoint = self.endpoint();
        let bytes = self
            .bundle
            .manifest_bytes(digest, &self.index)
            .map_err(|e| TransportError::io(format!("{endpoint}: {digest}"), e))?;
        let media_type = self.recorded_media_type(digest);
        let (raw, parsed) =
            RawManifest::new(bytes, media_type).map_err(|e| TransportError::Invalid {
                endpoint: endpoint.clone(),
                reason: crate::tr!("manifest {digest}: {e}", "清单 {digest}: {e}"),
            })?;
        if &raw.digest != digest {
            return Err(TransportError::DigestMismatch {
                endpoint,
                what: crate::tr!("manifest {digest}", "清单 {digest}"),
                expected: digest.clone(),
                actual: raw.digest,
            });
        }
        Ok((raw, parsed))
    }
}

#[async_trait::async_trait]
impl ImageSource for BundleSource {
    fn describe(&self) -> String {
        format!("bundle:{}", self.bundle.meta_path.display())
    }

    async fn repositories(&self) -> Result<Option<Vec<String>>> {
        let repos: BTreeSet<String> = self.images().iter().map(|i| image_name(i).0).collect();
        Ok(Some(repos.into_iter().collect()))
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        let tags: BTreeSet<String> = self
            .images()
            .iter()
            .filter_map(|i| match image_name(i) {
                (repo, Some(tag)) if repo == repository => Some(tag),
                _ => None,
            })
            .collect();
        if tags.is_empty() && !self.images().iter().any(|i| image_name(i).0 == repository) {
            return Err(TransportError::NotFound {
                endpoint: self.endpoint(),
                what: crate::tr!("repository {repository}", "仓库 {repository}"),
            });
        }
        Ok(tags.into_iter().collect())
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        let digest = match reference.parse::<Digest>() {
            Ok(d) => d,
            Err(_) => self
                .find_tagged(repository, reference)
                .map(|i| i.digest.clone())
                .ok_or_else(|| TransportError::NotFound {
                    endpoint: self.endpoint(),
                    what: format!("{repository}:{reference}"),
                })?,
        };
        let known =
            self.bundle.inline_manifests.contains_key(&digest) || self.index.contains_key(&digest);
        if !known || !self.in_repository(repository, &digest) {
            return Err(TransportError::NotFound {
                endpoint: self.endpoint(),
                what: format!("{repository}@{digest}"),
            });
        }
        self.read_manifest(&digest)
    }

    async fn open_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        offset: u64,
    ) -> Result<BlobStream> {
        let loc = self
            .index
            .get(&blob.digest)
            .ok_or_else(|| TransportError::NotFound {
                endpoint: self.endpoint(),
                what: crate::tr!("blob {}", "数据块 {}", blob.digest),
            })?;
        // A damaged bundle (its entry is not the blob's size): never retried.
        if loc.size != blob.size {
            return Err(TransportError::Corrupt {
                detail: format!(
                    "{}: {}",
                    self.endpoint(),
                    crate::tr!(
                        "blob {} has {} bytes in the bundle, its manifest says {}",
                        "数据块 {} 在镜像包中有 {} 字节, 清单记录为 {}",
                        blob.digest,
                        loc.size,
                        blob.size
                    )
                ),
            });
        }
        let offset = offset.min(loc.size);
        let rx = loc.stream(offset, loc.size - offset);
        let file = loc
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = crate::tr!(
            "blob {0} in data file {1} of bundle {2}",
            "镜像包 {2} 的数据文件 {1} 中的数据块 {0}",
            blob.digest,
            file,
            self.bundle.meta.name
        );
        // A data file that cannot be read (a zstd frame that does not decode, a bad
        // sector) is a damaged bundle, like bytes with the wrong digest: typed so,
        // so that an upload is not retried over it.
        let damaged = what.clone();
        let stream: BlobStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).map(
            move |item| {
                item.map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        crate::transport::checked::CheckFailed(format!(
                            "{damaged}: {}",
                            crate::i18n::io_error(&e)
                        )),
                    )
                })
            },
        ));
        if offset > 0 {
            return Ok(stream);
        }
        Ok(CheckedStream::new(stream, blob.digest.clone(), blob.size, what).boxed())
    }

    async fn referrers(&self, _repository: &str, subject: &Digest) -> Result<Vec<Digest>> {
        Ok(self
            .images()
            .iter()
            .filter(|i| i.subject.as_ref() == Some(subject))
            .map(|i| i.digest.clone())
            .collect())
    }
}
