//! [`DockerArchiveSource`]: images out of a `docker save` archive.
//!
//! The tar file is scanned once, headers only; blobs are then read by seeking to
//! their entries. Each image is a `manifest.json` entry (`Config`, `RepoTags`,
//! `Layers`). Its manifest is:
//!
//! - when the archive also carries an OCI layout (docker ≥ 25 writes `index.json`
//!   and `blobs/sha256/...`), the exact manifest blob whose config is the
//!   entry's, so a copy through the archive keeps the manifest digest;
//! - otherwise (a legacy archive: `<id>/layer.tar`, `<hex>.json`), a docker v2
//!   schema 2 manifest built from the config and the layer files, as skopeo
//!   does: each layer's digest is the sha256 of its file, its media type
//!   `application/vnd.docker.image.rootfs.diff.tar` for a plain tar and
//!   `...tar.gzip` for a gzip file. Such a manifest is new: its digest is not
//!   the one the image had in any registry (the config digest, the image ID, is).

use super::scan::{Region, TarIndex};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, DOCKER_MANIFEST, MAX_MANIFEST_BYTES};
use crate::transport::file_io::{hash_region, read_region, region_stream};
use crate::transport::image_names::{best_match, repositories, tags_in};
use crate::transport::oci_layout::{parse_index, LayoutEntry, MAX_INDEX_BYTES};
use crate::transport::{BlobRef, BlobStream, CheckedStream, ImageSource, Result, TransportError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The media types of a layer file in a synthesised manifest.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// `manifest.json` and `index.json` are small; this bounds memory against hostile ones.
const MAX_TOC_BYTES: u64 = MAX_INDEX_BYTES;

/// One `manifest.json` entry.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

impl ArchiveEntry {
    pub fn names(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }
}

/// An image's manifest once worked out (synthesising one hashes every layer).
type Resolved = Arc<(RawManifest, Parsed)>;

struct Inner {
    file: PathBuf,
    tar: TarIndex,
    images: Vec<ArchiveEntry>,
    /// `index.json`'s entries when the archive carries an OCI layout.
    layout: Vec<LayoutEntry>,
    selected: Option<usize>,
    /// Each image's manifest, once worked out.
    resolved: Mutex<Vec<Option<Resolved>>>,
    /// Where each blob is: `blobs/sha256/<hex>` entries, and the config and layer
    /// files of images whose manifest was synthesised.
    blobs: Mutex<HashMap<Digest, Region>>,
}

/// A docker archive as a source; see the module docs.
#[derive(Clone)]
pub struct DockerArchiveSource {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Every name the archive's images carry (RepoTags), as stored.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.images
            .iter()
            .flat_map(|e| e.names())
            .map(String::as_str)
    }

    fn endpoint(&self) -> String {
        format!("docker-archive:{}", self.file.display())
    }

    fn invalid(&self, reason: String) -> TransportError {
        TransportError::Invalid {
            endpoint: self.endpoint(),
            reason,
        }
    }

    fn io(&self, e: std::io::Error) -> TransportError {
        TransportError::io(self.endpoint(), e)
    }

    fn region(&self, name: &str) -> Result<Region> {
        self.tar.get(name).ok_or_else(|| {
            self.invalid(crate::tr!(
                "{name} is named in manifest.json but is not in the archive",
                "manifest.json 中列出的 {name} 不在归档中"
            ))
        })
    }

    fn read(&self, region: Region, limit: u64) -> Result<Vec<u8>> {
        read_region(&self.file, region.offset, region.size, limit).map_err(|e| self.io(e))
    }

    /// A manifest stored as a blob of the archive's OCI layout, checked against
    /// its digest; `None` when the archive has no such blob.
    fn manifest_blob(
        &self,
        digest: &Digest,
        media_type: Option<&str>,
    ) -> Result<Option<(RawManifest, Parsed)>> {
        let Some(region) = self.tar.get(&digest.blob_path()) else {
            return Ok(None);
        };
        let bytes = self.read(region, MAX_MANIFEST_BYTES as u64)?;
        let (raw, parsed) = RawManifest::new(bytes, media_type).map_err(|e| {
            self.invalid(crate::tr!("manifest {digest}: {e}", "清单 {digest}: {e}"))
        })?;
        if &raw.digest != digest {
            return Err(TransportError::DigestMismatch {
                endpoint: self.endpoint(),
                what: crate::tr!("manifest {digest}", "清单 {digest}"),
                expected: digest.clone(),
                actual: raw.digest,
            });
        }
        Ok(Some((raw, parsed)))
    }

    /// The image manifest of the archive's OCI layout whose config is `config`
    /// (looking one level into indexes).
    fn layout_manifest(&self, config: &Digest) -> Result<Option<(RawManifest, Parsed)>> {
        let mut candidates: Vec<(Digest, String)> = self
            .layout
            .iter()
            .map(|e| (e.digest.clone(), e.media_type.clone()))
            .collect();
        let mut looked = 0;
        while let Some((digest, media_type)) = candidates.pop() {
            looked += 1;
            if looked > 10_000 {
                break;
            }
            let Some((raw, parsed)) = self.manifest_blob(&digest, Some(&media_type))? else {
                continue;
            };
            match &parsed {
                Parsed::Image { config: c, .. } if &c.digest == config => {
                    return Ok(Some((raw, parsed)))
                }
                Parsed::Image { .. } => {}
                Parsed::Index { manifests } => candidates.extend(
                    manifests
                        .iter()
                        .map(|d| (d.digest.clone(), d.media_type.clone())),
                ),
            }
        }
        Ok(None)
    }

    /// The digest of a file of the archive: from its `blobs/sha256/<hex>` name
    /// (checked when its bytes stream), else by hashing it.
    fn file_digest(&self, name: &str, region: Region) -> Result<Digest> {
        let named = super::scan::normalise(name)
            .and_then(|n| n.strip_prefix("blobs/sha256/").map(str::to_string))
            .and_then(|hex| Digest::from_hex(&hex).ok());
        match named {
            Some(d) => Ok(d),
            None => hash_region(&self.file, region.offset, region.size).map_err(|e| self.io(e)),
        }
    }

    /// A docker v2 schema 2 manifest for a legacy entry; see the module docs.
    fn synthesise(&self, entry: &ArchiveEntry) -> Result<(RawManifest, Parsed)> {
        let config = self.region(&entry.config)?;
        let config_digest =
            hash_region(&self.file, config.offset, config.size).map_err(|e| self.io(e))?;
        let mut found = vec![(config_digest.clone(), config)];
        let mut layers = Vec::new();
        for name in &entry.layers {
            let region = self.region(name)?;
            let digest = self.file_digest(name, region)?;
            let magic = self.read(
                Region {
                    offset: region.offset,
                    size: region.size.min(2),
                },
                2,
            )?;
            let media_type = if magic == [0x1f, 0x8b] {
                DOCKER_LAYER_GZIP
            } else {
                DOCKER_LAYER_TAR
            };
            layers.push(format!(
                r#"{{"mediaType":"{media_type}","size":{},"digest":"{digest}"}}"#,
                region.size
            ));
            found.push((digest, region));
        }
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":{},"digest":"{config_digest}"}},"layers":[{}]}}"#,
            config.size,
            layers.join(",")
        );
        let manifest =
            RawManifest::new(text.into_bytes(), None).map_err(|e| self.invalid(e.to_string()))?;
        lock(&self.blobs).extend(found);
        Ok(manifest)
    }

    /// The manifest of image `i` (worked out once; blocking: may hash files).
    fn resolve(&self, i: usize) -> Result<Resolved> {
        if let Some(Some(done)) = lock(&self.resolved).get(i) {
            return Ok(done.clone());
        }
        let entry = self
            .images
            .get(i)
            .ok_or_else(|| self.invalid(format!("image #{i}")))?;
        let from_layout = if self.layout.is_empty() {
            None
        } else {
            let config = self.region(&entry.config)?;
            self.layout_manifest(&self.file_digest(&entry.config, config)?)?
        };
        let resolved = Arc::new(match from_layout {
            Some(m) => m,
            None => self.synthesise(entry)?,
        });
        if let Some(slot) = lock(&self.resolved).get_mut(i) {
            *slot = Some(resolved.clone());
        }
        Ok(resolved)
    }

    /// Which image `repository:tag` names: by `RepoTags`, else the one image
    /// picked at open (REF given, or the only image).
    fn find_tagged(&self, repository: &str, tag: &str) -> Result<usize> {
        let named = self
            .images
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.names().iter().map(move |n| (n.as_str(), i)));
        match best_match(named, repository, tag) {
            Ok(Some(i)) => Ok(i),
            Ok(None) => self.selected.ok_or_else(|| TransportError::NotFound {
                endpoint: self.endpoint(),
                what: format!("{repository}:{tag}"),
            }),
            Err(names) => Err(self.invalid(crate::tr!(
                "{repository}:{tag} is ambiguous: it could be {}",
                "{repository}:{tag} 有歧义: 可能是 {}",
                names.join(", ")
            ))),
        }
    }

    fn get_manifest(&self, repository: &str, reference: &str) -> Result<(RawManifest, Parsed)> {
        let Ok(digest) = reference.parse::<Digest>() else {
            let i = self.find_tagged(repository, reference)?;
            return Ok((*self.resolve(i)?).clone());
        };
        let hint = self
            .layout
            .iter()
            .find(|e| e.digest == digest)
            .map(|e| e.media_type.as_str());
        if let Some(found) = self.manifest_blob(&digest, hint)? {
            return Ok(found);
        }
        for i in 0..self.images.len() {
            let m = self.resolve(i)?;
            if m.0.digest == digest {
                return Ok((*m).clone());
            }
        }
        Err(TransportError::NotFound {
            endpoint: self.endpoint(),
            what: format!("{repository}@{digest}"),
        })
    }

    /// Where a blob is, working out the images' manifests if it is not known yet
    /// (the files of a legacy archive are known by digest only after hashing).
    fn blob_region(&self, digest: &Digest) -> Result<Region> {
        if let Some(r) = lock(&self.blobs).get(digest) {
            return Ok(*r);
        }
        for i in 0..self.images.len() {
            self.resolve(i)?;
            if let Some(r) = lock(&self.blobs).get(digest) {
                return Ok(*r);
            }
        }
        Err(TransportError::NotFound {
            endpoint: self.endpoint(),
            what: crate::tr!("blob {digest}", "数据块 {digest}"),
        })
    }
}

impl DockerArchiveSource {
    /// Opens the archive at `file` (scanning its headers: blocking). `reference`
    /// is REF of `docker-archive:FILE:REF`: a name from `RepoTags`, or `@N` for
    /// the N-th image (as skopeo takes it). Without it, an archive of one image
    /// answers every tag lookup with that image.
    pub fn open(file: &Path, reference: Option<&str>) -> Result<DockerArchiveSource> {
        let endpoint = format!("docker-archive:{}", file.display());
        let invalid = |reason: String| TransportError::Invalid {
            endpoint: endpoint.clone(),
            reason,
        };
        let tar = TarIndex::scan(file).map_err(|e| invalid(e.to_string()))?;
        let read_toc = |name: &str| -> Result<Option<Vec<u8>>> {
            match tar.get(name) {
                None => Ok(None),
                Some(r) => read_region(file, r.offset, r.size, MAX_TOC_BYTES)
                    .map(Some)
                    .map_err(|e| invalid(format!("{name}: {}", crate::i18n::io_error(&e)))),
            }
        };
        let manifest = read_toc("manifest.json")?.ok_or_else(|| {
            invalid(
                crate::i18n::t(
                    "no manifest.json: not a docker archive",
                    "没有 manifest.json: 不是 docker 归档",
                )
                .to_string(),
            )
        })?;
        let images: Vec<ArchiveEntry> = serde_json::from_slice(&manifest)
            .map_err(|e| invalid(format!("manifest.json: {e}")))?;
        let layout = match read_toc("index.json")? {
            Some(bytes) => parse_index(&bytes).map_err(|e| invalid(format!("index.json: {e}")))?,
            None => Vec::new(),
        };
        let mut blobs = HashMap::new();
        for name in tar.names() {
            let Some(hex) = name.strip_prefix("blobs/sha256/") else {
                continue;
            };
            if let (Ok(d), Some(r)) = (Digest::from_hex(hex), tar.get(name)) {
                blobs.insert(d, r);
            }
        }
        let selected = match reference {
            None => (images.len() == 1).then_some(0),
            Some(r) => Some(select(&images, r).ok_or_else(|| TransportError::NotFound {
                endpoint: endpoint.clone(),
                what: r.to_string(),
            })?),
        };
        Ok(DockerArchiveSource {
            inner: Arc::new(Inner {
                file: file.to_path_buf(),
                tar,
                resolved: Mutex::new(vec![None; images.len()]),
                images,
                layout,
                selected,
                blobs: Mutex::new(blobs),
            }),
        })
    }

    /// The images (`manifest.json` entries), in order.
    pub fn images(&self) -> &[ArchiveEntry] {
        &self.inner.images
    }

    /// The image REF picked, or the only one.
    pub fn selected(&self) -> Option<usize> {
        self.inner.selected
    }

    /// The manifest of image `i` (see the module docs for where it comes from).
    pub async fn image_manifest(&self, i: usize) -> Result<(RawManifest, Parsed)> {
        let inner = self.inner.clone();
        blocking(move || inner.resolve(i).map(|m| (*m).clone())).await
    }
}

/// The image that REF names: `@N`, or a `RepoTags` name (`repo` means `repo:latest`).
fn select(images: &[ArchiveEntry], reference: &str) -> Option<usize> {
    if let Some(n) = reference.strip_prefix('@') {
        return n.parse().ok().filter(|i| *i < images.len());
    }
    let (repo, tag) = crate::reference::split_short(reference);
    let tag = tag.unwrap_or("latest");
    let named = images
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.names().iter().map(move |n| (n.as_str(), i)));
    best_match(named, repo, tag).ok().flatten()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::io("docker-archive", std::io::Error::other(e)))?
}

#[async_trait::async_trait]
impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.inner.endpoint()
    }

    async fn repositories(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(repositories(self.inner.names())))
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        Ok(tags_in(self.inner.names(), repository))
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        let inner = self.inner.clone();
        let (repository, reference) = (repository.to_string(), reference.to_string());
        blocking(move || inner.get_manifest(&repository, &reference)).await
    }

    async fn open_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        offset: u64,
    ) -> Result<BlobStream> {
        let inner = self.inner.clone();
        let digest = blob.digest.clone();
        let region = blocking(move || inner.blob_region(&digest)).await?;
        if region.size != blob.size {
            return Err(self.inner.invalid(crate::tr!(
                "blob {} has {} bytes in the archive, its manifest says {}",
                "数据块 {} 在归档中有 {} 字节, 清单记录为 {}",
                blob.digest,
                region.size,
                blob.size
            )));
        }
        let offset = offset.min(region.size);
        // Checked: region.offset + region.size is within the file (see scan).
        let stream = region_stream(
            &self.inner.file,
            region.offset + offset,
            region.size - offset,
        )
        .await
        .map_err(|e| self.inner.io(e))?;
        if offset > 0 {
            return Ok(stream);
        }
        let what = crate::tr!(
            "blob {0} of {1}",
            "{1} 中的数据块 {0}",
            blob.digest,
            self.inner.endpoint()
        );
        Ok(CheckedStream::new(stream, blob.digest.clone(), blob.size, what).boxed())
    }
}
