//! Turning what the front ends found into [`CopyImage`]s: resolved registry images
//! (sync, copy) and the images of a bundle (upload, export, copy).

use super::{CopyImage, LeftToBase};
use crate::bundle::meta::Image;
use crate::digest::Digest;
use crate::engine::resolve::{Manifests, ResolvedImage};
use crate::manifest::{Parsed, RawManifest};
use crate::transport::bundle::BundleSource;
use crate::transport::{BlobRef, SharedSource};
use std::collections::HashMap;

/// Configs and layers a manifest names, without foreign layers.
pub fn manifest_blobs(parsed: &Parsed) -> Vec<BlobRef> {
    match parsed {
        Parsed::Image { config, layers } => std::iter::once(config)
            .chain(layers.iter().filter(|l| !l.is_foreign()))
            .map(|d| BlobRef {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            })
            .collect(),
        Parsed::Index { .. } => Vec::new(),
    }
}

/// A resolved registry image, to copy to `target_repo[:target_tag]`.
pub fn from_resolved(
    img: &ResolvedImage,
    source: SharedSource,
    target_repo: String,
    target_tag: Option<String>,
) -> CopyImage {
    let found = Manifests {
        top: img.top.clone(),
        children: img.children.clone(),
        blobs: img.blobs.clone(),
    };
    let mut copy = from_manifests(
        &img.input,
        &found,
        source,
        &img.reference.repository,
        target_repo,
        target_tag,
    );
    copy.referrer = img.subject.is_some();
    copy
}

/// An image found at any source (see `resolve_manifests`), to copy to
/// `target_repo[:target_tag]`.
pub fn from_manifests(
    label: &str,
    found: &Manifests,
    source: SharedSource,
    source_repo: &str,
    target_repo: String,
    target_tag: Option<String>,
) -> CopyImage {
    let mut manifests: Vec<RawManifest> =
        found.children.iter().rev().map(|c| c.raw.clone()).collect();
    manifests.push(found.top.clone());
    CopyImage {
        label: label.to_string(),
        digest: found.top.digest.clone(),
        source,
        source_repo: source_repo.to_string(),
        target_repo,
        target_tag,
        manifests,
        blobs: found
            .blobs
            .iter()
            .map(|b| BlobRef {
                digest: b.digest.clone(),
                size: b.size,
                media_type: String::new(),
            })
            .collect(),
        referrer: false,
    }
}

/// An image of a bundle with its manifests read back and checked against their
/// digests, and its blobs' sizes in the bundle against them, to copy to
/// `target_repo[:target_tag]`.
pub fn from_bundle(
    source: &std::sync::Arc<BundleSource>,
    image: &Image,
    target_repo: String,
    target_tag: Option<String>,
) -> Result<CopyImage, String> {
    let read = |digest: &Digest| source.read_manifest(digest).map_err(|e| e.to_string());
    let (top, parsed) = read(&image.digest)?;
    let mut blobs = manifest_blobs(&parsed);
    let mut manifests = Vec::new();
    for child in image.children.iter().rev() {
        let (raw, parsed) = read(&child.digest)?;
        blobs.extend(manifest_blobs(&parsed));
        manifests.push(raw);
    }
    manifests.push(top);
    // The bundle's entry of a blob (its tar header, its meta record) must have the
    // size the manifest gives it: a bundle that says otherwise is damaged, found
    // before anything is pushed rather than when that blob's turn comes.
    for b in &blobs {
        if let Some(loc) = source.location(&b.digest).filter(|l| l.size != b.size) {
            return Err(crate::tr!(
                "blob {} has {} bytes in the bundle, its manifest says {}",
                "数据块 {} 在镜像包中有 {} 字节, 清单记录为 {}",
                b.digest,
                loc.size,
                b.size
            ));
        }
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    blobs.dedup_by(|a, b| a.digest == b.digest);
    let (source_repo, _) = crate::transport::bundle::source::image_name(image);
    Ok(CopyImage {
        referrer: image.subject.is_some(),
        label: image.reference.clone(),
        digest: image.digest.clone(),
        source: source.clone(),
        source_repo,
        target_repo,
        target_tag,
        manifests,
        blobs,
    })
}

/// The blobs a bundle left to its bases, with where in the target to look for them.
pub fn bundle_bases(
    source: &BundleSource,
    target_repository: &dyn Fn(&str) -> String,
) -> HashMap<Digest, LeftToBase> {
    source
        .bundle()
        .meta
        .blobs
        .iter()
        .filter(|rec| source.location(&rec.digest).is_none())
        .filter_map(|rec| {
            rec.base.as_ref().map(|base| {
                (
                    rec.digest.clone(),
                    LeftToBase {
                        bundle: base.clone(),
                        hint_repo: target_repository(&rec.repository),
                    },
                )
            })
        })
        .collect()
}
