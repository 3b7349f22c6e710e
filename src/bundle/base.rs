//! The base bundles of an increment: which blobs they already carried, and where.

use super::meta::{BaseRef, BlobKind, Meta, MetaError};
use crate::digest::Digest;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct BaseBlob {
    /// The bundle whose data files hold the blob.
    pub bundle: std::sync::Arc<str>,
    pub repository: String,
}

#[derive(Default)]
pub struct BaseSet {
    pub refs: Vec<BaseRef>,
    blobs: HashMap<Digest, BaseBlob>,
}

impl BaseSet {
    /// Loads every `--inc` meta; any that is missing, unreadable, not a ferry meta or
    /// of an unknown version is an error, before anything is downloaded.
    pub fn load(paths: &[PathBuf]) -> Result<BaseSet, MetaError> {
        let mut set = BaseSet::default();
        for path in paths {
            let loaded = Meta::load_any(path)?;
            set.add_owned(loaded.meta, loaded.sha256);
        }
        Ok(set)
    }

    /// [`BaseSet::add`], taking the records instead of copying them (a base of
    /// 20,000 blobs is read on every increment).
    pub fn add_owned(&mut self, meta: Meta, meta_sha256: String) {
        let bundle: std::sync::Arc<str> = meta.name.as_str().into();
        self.blobs.reserve(meta.blobs.len());
        for b in meta.blobs {
            if b.kind == BlobKind::Manifest {
                continue;
            }
            let bundle = match b.base {
                Some(base) => base.into(),
                None => bundle.clone(),
            };
            self.blobs.entry(b.digest).or_insert(BaseBlob {
                bundle,
                repository: b.repository,
            });
        }
        self.refs.push(BaseRef {
            name: meta.name,
            meta_sha256,
        });
    }

    pub fn add(&mut self, meta: &Meta, meta_sha256: String) {
        for b in &meta.blobs {
            // Manifests are carried by every bundle anyway; only configs and layers
            // are skipped by an increment.
            if b.kind == BlobKind::Manifest {
                continue;
            }
            // A blob with no base lives in this bundle's data files (image-transmit
            // metas do not say which file).
            let bundle = b.base.as_deref().unwrap_or(&meta.name).into();
            self.blobs.entry(b.digest.clone()).or_insert(BaseBlob {
                bundle,
                repository: b.repository.clone(),
            });
        }
        self.refs.push(BaseRef {
            name: meta.name.clone(),
            meta_sha256,
        });
    }

    pub fn get(&self, digest: &Digest) -> Option<&BaseBlob> {
        self.blobs.get(digest)
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }
}
