//! image-transmit bundles (tar form): sites have them on their shelves, so ferry
//! verifies and uploads them, and takes their metas as bases of an increment.
//!
//! Their meta holds `datafiles:` (file name → size), `blobs:` (sha256 hex → image
//! references; a reference `https://last.img/skip/it:BASE_meta.yaml` marks a blob
//! left to a base bundle) and `manifests:` (image reference → manifest JSON). Tar
//! entries are named `<hex>.tar.gz`, `<hex>.json`, `<hex>.tar` and similar.

use super::meta::{self, BlobKind, BlobRecord, DataFile, Failure, Kind, Meta, MetaError};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest};
use crate::reference::Reference;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

const SKIP_PREFIX: &str = "https://last.img/skip/it:";

#[derive(Deserialize)]
struct TransmitMeta {
    #[serde(default)]
    datafiles: BTreeMap<String, u64>,
    #[serde(default)]
    compressor: Option<String>,
    #[serde(default)]
    blobs: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    manifests: BTreeMap<String, String>,
}

/// A converted image-transmit meta: ferry's view of it, plus the manifests, which
/// image-transmit keeps in the meta rather than in the data files.
pub struct Converted {
    pub meta: Meta,
    pub manifests: HashMap<Digest, Vec<u8>>,
}

/// Whether YAML text is an image-transmit meta rather than some other file.
pub fn looks_like(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("datafiles:") || l.starts_with("manifests:"))
}

/// The digest an image-transmit entry name stands for: `<hex>.<anything>`.
pub fn entry_digest(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next().unwrap_or(name);
    Digest::from_hex(base.split('.').next().unwrap_or("")).ok()
}

fn bundle_name(meta_file: &str) -> String {
    let base = meta_file.rsplit('/').next().unwrap_or(meta_file);
    base.trim_end_matches(".yaml")
        .trim_end_matches("_meta")
        .to_string()
}

pub fn convert(text: &str, path: &str) -> Result<Converted, MetaError> {
    let malformed = |detail: String| MetaError::Malformed {
        path: path.into(),
        detail,
    };
    let it: TransmitMeta = serde_saphyr::from_str(text)
        .map_err(|e| malformed(crate::i18n::yaml_error(&e.to_string())))?;
    if let Some(c) = it
        .compressor
        .as_deref()
        .filter(|c| !c.is_empty() && *c != "tar")
    {
        return Err(malformed(crate::tr!("image-transmit bundle compressed with {c:?}: only tar bundles are supported (squashfs is out of scope)", "image-transmit 镜像包以 {c:?} 压缩: 只支持 tar 镜像包 (不支持 squashfs)")));
    }
    let name = bundle_name(path);
    let mut images = Vec::new();
    let mut failed = Vec::new();
    let mut manifests = HashMap::new();
    let mut configs = HashSet::new();
    for (reference, json) in &it.manifests {
        let bytes = json.as_bytes().to_vec();
        let converted = Reference::parse(
            reference
                .trim_start_matches("http://")
                .trim_start_matches("https://"),
        )
        .map_err(|e| e.to_string())
        .and_then(|r| {
            RawManifest::new(bytes, None)
                .map(|m| (r, m))
                .map_err(|e| e.to_string())
        });
        match converted {
            Ok((r, (raw, parsed))) => {
                match &parsed {
                    Parsed::Image { config, .. } => {
                        configs.insert(config.digest.clone());
                    }
                    Parsed::Index { .. } => {
                        failed.push(Failure {
                            reference: reference.clone(),
                            reason: crate::tr!(
                                "an image-transmit bundle holds no child manifests for an index",
                                "image-transmit 镜像包不含索引的子清单"
                            ),
                        });
                        continue;
                    }
                }
                images.push(meta::Image {
                    reference: reference.clone(),
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    tag: r.tag.clone(),
                    digest: raw.digest.clone(),
                    media_type: raw.media_type.clone(),
                    target: None,
                    subject: None,
                    children: Vec::new(),
                });
                manifests.insert(raw.digest, raw.bytes);
            }
            Err(why) => failed.push(Failure {
                reference: reference.clone(),
                reason: why,
            }),
        }
    }
    let mut bases = Vec::new();
    let mut blobs = Vec::new();
    for (hex, refs) in &it.blobs {
        let digest = Digest::from_hex(hex).map_err(|e| malformed(e.to_string()))?;
        let base = refs
            .iter()
            .find_map(|r| r.strip_prefix(SKIP_PREFIX))
            .map(bundle_name);
        if let Some(b) = &base {
            if !bases.contains(b) {
                bases.push(b.clone());
            }
        }
        let repository = refs
            .iter()
            .filter(|r| !r.starts_with(SKIP_PREFIX))
            .find_map(|r| {
                Reference::parse(
                    r.trim_start_matches("http://")
                        .trim_start_matches("https://"),
                )
                .ok()
            })
            .map(|r| r.repository)
            .unwrap_or_default();
        blobs.push(BlobRecord {
            kind: if configs.contains(&digest) {
                BlobKind::Config
            } else {
                BlobKind::Layer
            },
            digest,
            size: 0,
            file: None,
            base,
            repository,
            offset: None,
        });
    }
    let mut meta = Meta {
        format: "image-transmit".into(),
        version: 0,
        tool: "image-transmit".into(),
        created: String::new(),
        name,
        kind: if bases.is_empty() {
            Kind::Full
        } else {
            Kind::Incremental
        },
        bases: bases
            .into_iter()
            .map(|name| meta::BaseRef {
                name,
                meta_sha256: String::new(),
            })
            .collect(),
        platforms: Vec::new(),
        files: it
            .datafiles
            .iter()
            .map(|(n, s)| DataFile {
                name: n.clone(),
                size: *s,
                sha256: String::new(),
                headers_sha256: None,
                blobs: 0,
            })
            .collect(),
        images,
        blobs,
        failed,
        selections: Vec::new(),
    };
    meta.sanitize_text();
    meta.check_names(path)?;
    Ok(Converted { meta, manifests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_an_image_transmit_meta() {
        let config = Digest::of(b"config");
        let layer = Digest::of(b"layer");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":6,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":5,"digest":"{layer}"}}]}}"#
        );
        let text = format!(
            "datafiles:\n  img_incr_202106122344_0.tar: 4096\ncompressor: tar\nblobs:\n  {}:\n  - 10.0.0.1/app/web:1.0\n  {}:\n  - https://last.img/skip/it:img_full_202106010000_meta.yaml\nmanifests:\n  10.0.0.1/app/web:1.0: '{}'\n",
            config.hex(),
            layer.hex(),
            manifest
        );
        assert!(looks_like(&text));
        let c = convert(&text, "/x/img_incr_202106122344_meta.yaml").unwrap();
        assert_eq!(c.meta.name, "img_incr_202106122344");
        assert_eq!(c.meta.kind, Kind::Incremental);
        assert_eq!(c.meta.bases[0].name, "img_full_202106010000");
        assert_eq!(c.meta.images[0].repository, "app/web");
        assert_eq!(c.manifests[&c.meta.images[0].digest], manifest.as_bytes());
        let cfg = c.meta.blobs.iter().find(|b| b.digest == config).unwrap();
        assert_eq!(
            (cfg.kind, cfg.base.as_deref(), cfg.repository.as_str()),
            (BlobKind::Config, None, "app/web")
        );
        assert_eq!(
            c.meta
                .blobs
                .iter()
                .find(|b| b.digest == layer)
                .unwrap()
                .base
                .as_deref(),
            Some("img_full_202106010000")
        );
        assert_eq!(
            entry_digest(&format!("{}.tar.gz", layer.hex())),
            Some(layer)
        );
        assert_eq!(entry_digest("nonsense.json"), None);
    }
}
