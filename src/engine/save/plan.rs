//! Stage 1, plan: every reference resolved at its source (manifests only), the
//! referrers found when asked for, and the bundle's plan: its images and the unique
//! blobs they need, minus what base bundles carried.

use super::outcome;
use super::Run;
use crate::bundle::base::BaseSet;
use crate::bundle::meta;
use crate::bundle::plan::{BundlePlan, PlannedImage};
use crate::engine::copy::{plan::from_resolved, CopyImage};
use crate::engine::report::Summary;
use crate::engine::resolve::{resolve_requests, ImageRequest, ResolvedImage};
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::SharedSource;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An image to save and where its blobs come from.
pub(super) struct SaveImage {
    pub resolved: ResolvedImage,
    pub source: SharedSource,
}

/// What the plan stage found.
pub(super) struct Found {
    pub images: Vec<SaveImage>,
    /// Every reference counted, and those that were invalid or failed before
    /// anything was fetched.
    pub summary: Summary,
    /// Bytes the sources served from the local cache.
    cached: Arc<AtomicU64>,
}

impl Found {
    pub fn cached_bytes(&self) -> u64 {
        self.cached.load(Ordering::Relaxed)
    }
}

/// Resolves every request and the referrers of what it found; one source per
/// registry, reading through the local cache when there is one.
pub(super) async fn find(run: &Run<'_>, inputs: &[ImageRequest]) -> Result<Found> {
    let Run {
        opts,
        registries,
        reporter,
        cancel,
    } = *run;
    let resolved = resolve_requests(
        inputs,
        &opts.platforms,
        opts.jobs,
        opts.retry,
        registries,
        reporter,
        cancel,
    )
    .await;
    if cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted before any download; nothing was written",
            "在下载开始前中断; 没有写入任何内容"
        ));
    }
    let (list_invalid, list_failed) = (&opts.expansion.invalid, &opts.expansion.failed);
    let summary = Summary {
        action: "save",
        total: inputs.len() + list_invalid.len() + list_failed.len(),
        invalid: list_invalid
            .iter()
            .cloned()
            .chain(resolved.invalid)
            .collect(),
        failed: list_failed.iter().cloned().chain(resolved.failed).collect(),
        ..Summary::default()
    };
    let mut images = resolved.images;
    if images.is_empty() {
        return Err(outcome::nothing_saved(&outcome::early_failures(&summary)));
    }
    if opts.with_referrers {
        let found =
            crate::engine::referrers::discover(&images, registries, opts.retry, reporter, cancel)
                .await;
        images.extend(found);
    }
    let cached = Arc::new(AtomicU64::new(0));
    let retrying = Retrying::for_reporter(opts.retry, cancel, reporter);
    let mut sources: HashMap<String, SharedSource> = HashMap::new();
    let mut out = Vec::new();
    for resolved in images {
        let host = resolved.reference.registry.clone();
        let source = match sources.get(&host) {
            Some(s) => s.clone(),
            None => {
                let endpoint: SharedSource = Arc::new(RegistryEndpoint::new(
                    registries.client(&host)?,
                    retrying.clone(),
                ));
                let source: SharedSource = match &opts.cache {
                    Some(cache) => Arc::new(crate::engine::cache::CachedSource::new(
                        endpoint,
                        cache.clone(),
                        cached.clone(),
                    )),
                    None => endpoint,
                };
                sources.insert(host, source.clone());
                source
            }
        };
        out.push(SaveImage { resolved, source });
    }
    Ok(Found {
        images: out,
        summary,
        cached,
    })
}

/// The repository an image is copied to inside the bundle: its own source
/// repository, so each image's blobs are read where that image lives and a
/// repository that refuses a blob fails only its own images.
fn target_of(img: &ResolvedImage) -> String {
    format!("{}/{}", img.reference.registry, img.reference.repository)
}

/// The bundle's images and blobs, blobs left to a base bundle marked as such.
pub(super) fn bundle_plan(images: &[SaveImage], bases: &BaseSet) -> BundlePlan {
    let mut plan = BundlePlan::default();
    for SaveImage { resolved: img, .. } in images {
        let manifests: Vec<&crate::manifest::RawManifest> = img.manifests().collect();
        let sizes: Vec<u64> = manifests.iter().map(|m| m.bytes.len() as u64).collect();
        let blobs: Vec<_> = img
            .blobs
            .iter()
            .map(|b| (b.digest.clone(), b.size, b.kind))
            .collect();
        plan.add_image(
            PlannedImage {
                record: image_record(img),
                target: target_of(img),
                manifests: manifests.iter().map(|m| m.digest.clone()).collect(),
                blobs: img.blobs.iter().map(|b| b.digest.clone()).collect(),
            },
            &sizes,
            &blobs,
            bases,
        );
    }
    plan
}

/// The images as the copy engine takes them: each to its own repository, with
/// only the blobs the data files hold (those left to a base are not fetched).
pub(super) fn copy_images(images: &[SaveImage], plan: &BundlePlan) -> Vec<CopyImage> {
    images
        .iter()
        .map(|SaveImage { resolved, source }| {
            let mut copy = from_resolved(resolved, source.clone(), target_of(resolved), None);
            copy.blobs.retain(|b| plan.is_stored(&b.digest));
            copy
        })
        .collect()
}

fn image_record(img: &ResolvedImage) -> meta::Image {
    meta::Image {
        reference: img.input.clone(),
        registry: img.reference.registry.clone(),
        repository: img.reference.repository.clone(),
        tag: img.reference.tag.clone(),
        digest: img.top.digest.clone(),
        media_type: img.top.media_type.clone(),
        target: img.rename.clone(),
        subject: img.subject.clone(),
        children: img
            .children
            .iter()
            .map(|c| meta::ChildManifest {
                digest: c.raw.digest.clone(),
                media_type: c.raw.media_type.clone(),
                platform: c.platform.clone(),
            })
            .collect(),
    }
}
