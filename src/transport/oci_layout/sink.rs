//! [`OciLayoutSink`]: writes images into an OCI image layout, adding to what the
//! layout holds already.
//!
//! - Blobs go to `blobs/sha256/<hex>` through a temporary file beside them and a
//!   rename, checked against their digest and size as they are written. A blob
//!   the layout has already is kept when its bytes hash right (`has_blob` says so)
//!   and rewritten when they do not (an earlier run was cut short, a disk lied).
//! - Manifests are written as their exact bytes. The top manifest of a tagged
//!   image gets an `index.json` entry (its own media type, digest, size and the
//!   `ref.name` annotation), replacing an entry of the same name; other entries
//!   are kept. A top manifest put without a tag and not named as a child by
//!   another manifest of the run gets an entry named `repository@digest`, so it
//!   stays reachable.
//! - Names follow the sink's [`RefNaming`]: `repository:tag` (ferry's export), or
//!   the tag as given when the sink was opened as `oci:DIR:REF`.
//! - [`finish`](ImageSink::finish) writes `index.json` and `oci-layout`, each
//!   through a temporary file and a rename. A run that stops before it leaves
//!   the old `index.json` in place (and blobs that nothing names yet).

use super::{parse_index, LayoutEntry, MAX_INDEX_BYTES, OCI_LAYOUT_FILE, REF_NAME};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, OCI_INDEX};
use crate::transport::file_io::{
    copy_checked, read_region, write_atomically, StreamRead, TempFile,
};
use crate::transport::image_names::RefNaming;
use crate::transport::{BlobRef, ImageSink, Result, SharedSource, TransportError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A manifest put without a tag: named at `finish` unless it is a child.
struct Untagged {
    repository: String,
    digest: Digest,
    media_type: String,
    size: u64,
}

#[derive(Default)]
struct State {
    /// `index.json`'s entries as they will be written (unknown fields kept).
    entries: Vec<serde_json::Value>,
    /// Blobs known intact in this run (written, or found and hashed).
    intact: HashSet<Digest>,
    untagged: Vec<Untagged>,
    /// Manifests named as children by an index put in this run.
    children: HashSet<Digest>,
}

pub struct OciLayoutSink {
    dir: PathBuf,
    naming: RefNaming,
    state: Mutex<State>,
    /// Makes temporary file names unique among concurrent writes.
    temp_counter: AtomicU64,
}

fn entry_name(entry: &serde_json::Value) -> Option<&str> {
    entry["annotations"][REF_NAME].as_str()
}

impl OciLayoutSink {
    /// Opens (creating it if needed) the layout at `dir` for writing. An existing
    /// `index.json` must be an OCI index: its entries are kept.
    pub fn create(dir: &Path, naming: RefNaming) -> Result<OciLayoutSink> {
        let endpoint = format!("oci:{}", dir.display());
        let io = |e| TransportError::io(endpoint.clone(), e);
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io)?;
        let index_path = dir.join("index.json");
        let mut state = State::default();
        match std::fs::metadata(&index_path) {
            Ok(m) => {
                let bytes = read_region(&index_path, 0, m.len(), MAX_INDEX_BYTES).map_err(io)?;
                let invalid = |reason: String| TransportError::Invalid {
                    endpoint: endpoint.clone(),
                    reason: crate::tr!(
                        "index.json exists and is not an OCI index: {reason}",
                        "index.json 已存在, 但不是 OCI 索引: {reason}"
                    ),
                };
                // Checked like the source checks it (digest grammar), kept as written.
                parse_index(&bytes).map_err(invalid)?;
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
                state.entries = value["manifests"].as_array().cloned().unwrap_or_default();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        Ok(OciLayoutSink {
            dir: dir.to_path_buf(),
            naming,
            state: Mutex::new(state),
            temp_counter: AtomicU64::new(0),
        })
    }

    fn endpoint(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A temporary file in `blobs/sha256/`, so the rename stays on one file system.
    fn temp_for(&self, digest: &Digest) -> TempFile {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.partial-{}-{n}", digest.hex(), std::process::id());
        TempFile::new(self.dir.join("blobs/sha256").join(name))
    }

    /// The entries `index.json` will have, as [`LayoutEntry`]s (for tests and
    /// reports).
    pub fn entries(&self) -> Vec<LayoutEntry> {
        let value = serde_json::json!({ "manifests": self.state().entries });
        serde_json::to_vec(&value)
            .ok()
            .and_then(|b| parse_index(&b).ok())
            .unwrap_or_default()
    }

    /// Adds or replaces the entry named `name`.
    fn set_entry(&self, name: &str, manifest: &RawManifest) {
        let entry = serde_json::json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.bytes.len(),
            "annotations": { REF_NAME: name },
        });
        let mut state = self.state();
        state.entries.retain(|e| entry_name(e) != Some(name));
        state.entries.push(entry);
    }
}

/// Whether the file at `path` holds exactly the blob (`size` bytes, `digest`).
fn intact(path: &Path, digest: &Digest, size: u64) -> bool {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == size);
    is_file && crate::transport::file_io::hash_region(path, 0, size).is_ok_and(|d| &d == digest)
}

#[async_trait::async_trait]
impl ImageSink for OciLayoutSink {
    fn describe(&self) -> String {
        self.endpoint()
    }

    async fn has_blob(&self, _repository: &str, blob: &BlobRef) -> Result<bool> {
        if self.state().intact.contains(&blob.digest) {
            return Ok(true);
        }
        let path = self.dir.join(blob.digest.blob_path());
        let (digest, size) = (blob.digest.clone(), blob.size);
        let ok = tokio::task::spawn_blocking(move || intact(&path, &digest, size))
            .await
            .unwrap_or(false);
        if ok {
            self.state().intact.insert(blob.digest.clone());
        }
        Ok(ok)
    }

    async fn put_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64> {
        if self.state().intact.contains(&blob.digest) {
            return Ok(0);
        }
        let stream = source.open_blob(source_repository, blob, 0).await?;
        let tmp = self.temp_for(&blob.digest);
        let dest = self.dir.join(blob.digest.blob_path());
        let (digest, size) = (blob.digest.clone(), blob.size);
        let handle = tokio::runtime::Handle::current();
        let endpoint = self.endpoint();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(
                crate::transport::file_io::CHUNK,
                std::fs::File::create(tmp.path())?,
            );
            copy_checked(
                &mut StreamRead::new(handle, stream),
                &mut out,
                &digest,
                size,
            )?;
            out.into_inner().map_err(|e| e.into_error())?;
            tmp.keep(&dest)
        })
        .await
        .map_err(|e| TransportError::io(endpoint.clone(), std::io::Error::other(e)))?
        .map_err(|e| TransportError::io(format!("{endpoint}: {}", blob.digest), e))?;
        self.state().intact.insert(blob.digest.clone());
        Ok(blob.size)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(TransportError::DigestMismatch {
                endpoint: self.endpoint(),
                what: crate::tr!("manifest {}", "清单 {}", manifest.digest),
                expected: manifest.digest.clone(),
                actual,
            });
        }
        let (_, parsed) = RawManifest::new(manifest.bytes.clone(), Some(&manifest.media_type))
            .map_err(|e| TransportError::Invalid {
                endpoint: self.endpoint(),
                reason: crate::tr!("manifest {}: {e}", "清单 {}: {e}", manifest.digest),
            })?;
        let size = manifest.bytes.len() as u64;
        if !self.state().intact.contains(&manifest.digest) {
            let path = self.dir.join(manifest.digest.blob_path());
            let (tmp, bytes, digest) = (
                self.temp_for(&manifest.digest),
                manifest.bytes.clone(),
                manifest.digest.clone(),
            );
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                if intact(&path, &digest, size) {
                    return Ok(());
                }
                std::fs::write(tmp.path(), &bytes)?;
                tmp.keep(&path)
            })
            .await
            .map_err(|e| TransportError::io(self.endpoint(), std::io::Error::other(e)))?
            .map_err(|e| TransportError::io(self.endpoint(), e))?;
            self.state().intact.insert(manifest.digest.clone());
        }
        if let Parsed::Index { manifests } = &parsed {
            let mut state = self.state();
            state
                .children
                .extend(manifests.iter().map(|d| d.digest.clone()));
        }
        match tag {
            Some(tag) => self.set_entry(&self.naming.name(repository, tag), manifest),
            None => self.state().untagged.push(Untagged {
                repository: repository.to_string(),
                digest: manifest.digest.clone(),
                media_type: manifest.media_type.clone(),
                size,
            }),
        }
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        let index = {
            let mut state = self.state();
            let untagged = std::mem::take(&mut state.untagged);
            for u in untagged {
                let named = state
                    .entries
                    .iter()
                    .any(|e| e["digest"].as_str() == Some(u.digest.as_str()));
                if named || state.children.contains(&u.digest) {
                    continue;
                }
                let name = format!("{}@{}", u.repository, u.digest);
                state
                    .entries
                    .retain(|e| entry_name(e) != Some(name.as_str()));
                state.entries.push(serde_json::json!({
                    "mediaType": u.media_type,
                    "digest": u.digest,
                    "size": u.size,
                    "annotations": { REF_NAME: name },
                }));
            }
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": state.entries,
            })
        };
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| TransportError::io(self.endpoint(), std::io::Error::other(e)))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            write_atomically(&dir.join("oci-layout"), OCI_LAYOUT_FILE)?;
            write_atomically(&dir.join("index.json"), &bytes)
        })
        .await
        .map_err(|e| TransportError::io(self.endpoint(), std::io::Error::other(e)))?
        .map_err(|e| TransportError::io(self.endpoint(), e))
    }
}
