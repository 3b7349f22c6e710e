//! [`OciLayoutSource`]: reads images out of an OCI image layout.

use super::{parse_index, LayoutEntry, MAX_INDEX_BYTES};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, MAX_MANIFEST_BYTES};
use crate::transport::file_io::{read_region, region_stream};
use crate::transport::image_names::{best_match, repositories, tags_in};
use crate::transport::{BlobRef, BlobStream, CheckedStream, ImageSource, Result, TransportError};
use std::path::{Path, PathBuf};

/// An OCI layout as a source. Tag lookups go through the `ref.name` of the
/// `index.json` entries; digest lookups reach any manifest blob of the layout
/// (children of an index too). Every manifest is checked against its digest and
/// every blob streams through a [`CheckedStream`].
pub struct OciLayoutSource {
    /// As the user gave it, for messages.
    dir: PathBuf,
    /// The same, with symbolic links resolved: blob files must be under it.
    root: PathBuf,
    entries: Vec<LayoutEntry>,
}

impl OciLayoutSource {
    /// Every name the layout's index gives an entry (`org.opencontainers.image.ref.name`).
    fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| e.name.as_deref())
    }

    /// Opens the layout at `dir`: reads `oci-layout` and `index.json` (small files;
    /// blocking).
    pub fn open(dir: &Path) -> Result<OciLayoutSource> {
        let endpoint = format!("oci:{}", dir.display());
        let io = |e| TransportError::io(endpoint.clone(), e);
        let root = dir.canonicalize().map_err(io)?;
        let marker = read_small(&root.join("oci-layout"), 64 * 1024).map_err(|e| {
            TransportError::Invalid {
                endpoint: endpoint.clone(),
                reason: crate::tr!(
                    "not an OCI image layout (oci-layout: {})",
                    "不是 OCI 镜像布局 (oci-layout: {})",
                    crate::i18n::io_error(&e)
                ),
            }
        })?;
        let version = serde_json::from_slice::<serde_json::Value>(&marker)
            .ok()
            .and_then(|v| v["imageLayoutVersion"].as_str().map(str::to_string));
        if !version.as_deref().is_some_and(|v| v.starts_with("1.")) {
            return Err(TransportError::Invalid {
                endpoint,
                reason: crate::i18n::t(
                    "oci-layout does not name image layout version 1.x",
                    "oci-layout 没有注明镜像布局版本 1.x",
                )
                .to_string(),
            });
        }
        let index = read_small(&root.join("index.json"), MAX_INDEX_BYTES).map_err(io)?;
        let entries = parse_index(&index).map_err(|e| TransportError::Invalid {
            endpoint: endpoint.clone(),
            reason: crate::tr!("index.json: {e}", "index.json: {e}"),
        })?;
        Ok(OciLayoutSource {
            dir: dir.to_path_buf(),
            root,
            entries,
        })
    }

    /// The `index.json` entries, in order.
    pub fn entries(&self) -> &[LayoutEntry] {
        &self.entries
    }

    fn endpoint(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    /// The file of a blob, refused when it is not a regular file inside the layout
    /// (a symbolic link out of it, a directory).
    fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        let path = self.root.join(digest.blob_path());
        let not_found = || TransportError::NotFound {
            endpoint: self.endpoint(),
            what: crate::tr!("blob {digest}", "数据块 {digest}"),
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(TransportError::io(self.endpoint(), e)),
        };
        let inside = path
            .canonicalize()
            .is_ok_and(|real| real.starts_with(&self.root));
        if !meta.file_type().is_file() || !inside {
            return Err(TransportError::Invalid {
                endpoint: self.endpoint(),
                reason: crate::tr!(
                    "{} is not a regular file inside the layout",
                    "{} 不是布局内的普通文件",
                    digest.blob_path()
                ),
            });
        }
        Ok(path)
    }

    /// Reads a manifest blob and checks it: its digest, the size its descriptor
    /// gave (if one did), the 4 MiB limit. `media_type` is the descriptor's, for a
    /// manifest without a `mediaType` field.
    pub fn read_manifest(
        &self,
        digest: &Digest,
        media_type: Option<&str>,
        size: Option<u64>,
    ) -> Result<(RawManifest, Parsed)> {
        let path = self.blob_file(digest)?;
        let what = crate::tr!("manifest {digest}", "清单 {digest}");
        let len = std::fs::metadata(&path)
            .map_err(|e| TransportError::io(self.endpoint(), e))?
            .len();
        let invalid = |reason: String| TransportError::Invalid {
            endpoint: self.endpoint(),
            reason: format!("{what}: {reason}"),
        };
        if let Some(size) = size.filter(|s| *s != len) {
            return Err(invalid(crate::tr!(
                "{len} bytes in the layout, its descriptor says {size}",
                "布局中有 {len} 字节, 描述符记录为 {size}"
            )));
        }
        let bytes = read_region(&path, 0, len, MAX_MANIFEST_BYTES as u64)
            .map_err(|e| invalid(crate::i18n::io_error(&e)))?;
        let (raw, parsed) =
            RawManifest::new(bytes, media_type).map_err(|e| invalid(e.to_string()))?;
        if &raw.digest != digest {
            return Err(TransportError::DigestMismatch {
                endpoint: self.endpoint(),
                what,
                expected: digest.clone(),
                actual: raw.digest,
            });
        }
        Ok((raw, parsed))
    }

    /// The entry a repository and tag name (see `image_names::match_name`).
    fn find_tagged(&self, repository: &str, tag: &str) -> Result<&LayoutEntry> {
        let named = self
            .entries
            .iter()
            .filter_map(|e| e.name.as_deref().map(|n| (n, e)));
        match best_match(named, repository, tag) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(TransportError::NotFound {
                endpoint: self.endpoint(),
                what: format!("{repository}:{tag}"),
            }),
            Err(names) => Err(TransportError::Invalid {
                endpoint: self.endpoint(),
                reason: crate::tr!(
                    "{repository}:{tag} is ambiguous: it could be {}",
                    "{repository}:{tag} 有歧义: 可能是 {}",
                    names.join(", ")
                ),
            }),
        }
    }
}

/// Reads a small file whole, refusing one over `limit` bytes.
fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let len = std::fs::metadata(path)?.len();
    read_region(path, 0, len, limit)
}

#[async_trait::async_trait]
impl ImageSource for OciLayoutSource {
    fn describe(&self) -> String {
        self.endpoint()
    }

    /// The repositories of entries named `repository:tag`; entries named by a bare
    /// tag have no repository and are listed by `list_tags` of any repository.
    async fn repositories(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(repositories(self.names())))
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        Ok(tags_in(self.names(), repository))
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        if let Ok(digest) = reference.parse::<Digest>() {
            let known = self.entries.iter().find(|e| e.digest == digest);
            return self.read_manifest(
                &digest,
                known.map(|e| e.media_type.as_str()),
                known.map(|e| e.size),
            );
        }
        let entry = self.find_tagged(repository, reference)?;
        self.read_manifest(&entry.digest, Some(&entry.media_type), Some(entry.size))
    }

    async fn open_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        offset: u64,
    ) -> Result<BlobStream> {
        let path = self.blob_file(&blob.digest)?;
        let len = std::fs::metadata(&path)
            .map_err(|e| TransportError::io(self.endpoint(), e))?
            .len();
        if len != blob.size {
            return Err(TransportError::Invalid {
                endpoint: self.endpoint(),
                reason: crate::tr!(
                    "blob {} has {len} bytes in the layout, its manifest says {}",
                    "数据块 {} 在布局中有 {len} 字节, 清单记录为 {}",
                    blob.digest,
                    blob.size
                ),
            });
        }
        let offset = offset.min(len);
        let stream = region_stream(&path, offset, len - offset)
            .await
            .map_err(|e| TransportError::io(self.endpoint(), e))?;
        if offset > 0 {
            return Ok(stream);
        }
        let what = crate::tr!(
            "blob {0} of {1}",
            "{1} 中的数据块 {0}",
            blob.digest,
            self.endpoint()
        );
        Ok(CheckedStream::new(stream, blob.digest.clone(), blob.size, what).boxed())
    }
}
