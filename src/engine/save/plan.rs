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
use crate::engine::resolve::{resolve_requests, ImageRequest, ResolveContext, ResolvedImage};
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
    /// The repository the copy engine writes it to inside the bundle: where it
    /// lives (a registry's repository, or a file's), so that its blobs are read
    /// from its own source.
    pub target: String,
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

/// Resolves every request (registry references, and files or engines named by
/// their transport) and the referrers of what the registries gave; one source per
/// registry, reading through the local cache when there is one. Images stay in
/// the order of their lines.
pub(super) async fn find(run: &Run<'_>, inputs: &[ImageRequest]) -> Result<Found> {
    let Run {
        opts,
        registries,
        reporter,
        cancel,
    } = *run;
    let mut remote = Vec::new();
    let mut local_lines = Vec::new();
    for (i, request) in inputs.iter().enumerate() {
        match super::local::local_spec(request) {
            Some(spec) => local_lines.push((i, request, spec)),
            None => remote.push(request.clone()),
        }
    }
    let context = ResolveContext {
        platforms: &opts.platforms,
        jobs: opts.jobs,
        policy: opts.retry,
        registries,
        reporter,
        cancel,
    };
    let resolved = resolve_requests(&remote, &context).await;
    let local = super::local::resolve(run, local_lines).await;
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
        failed: list_failed
            .iter()
            .cloned()
            .chain(resolved.failed)
            .chain(local.failed)
            .collect(),
        ..Summary::default()
    };
    let mut images = resolved.images;
    if images.is_empty() && local.images.is_empty() {
        return Err(outcome::nothing_saved(&outcome::early_failures(&summary)));
    }
    if opts.with_referrers {
        let found =
            crate::engine::referrers::discover(&images, registries, opts.retry, reporter, cancel)
                .await;
        images.extend(found);
    }
    let cached = Arc::new(AtomicU64::new(0));
    let line: HashMap<&str, usize> = inputs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.input.as_str(), i))
        .collect();
    let mut ordered: Vec<(usize, SaveImage)> = from_registries(run, images, &cached)?
        .into_iter()
        .map(|img| {
            // Referrers (not lines of their own) go after every line's images.
            let at = line
                .get(img.resolved.input.as_str())
                .copied()
                .unwrap_or(usize::MAX);
            (at, img)
        })
        .chain(local.images)
        .collect();
    ordered.sort_by_key(|(at, _)| *at);
    Ok(Found {
        images: ordered.into_iter().map(|(_, img)| img).collect(),
        summary,
        cached,
    })
}

/// Registry images with their sources: one per registry, through the local
/// cache when there is one. Each goes to its own repository in the bundle, so
/// its blobs are read where it lives and a repository that refuses a blob fails
/// only its own images.
fn from_registries(
    run: &Run<'_>,
    images: Vec<ResolvedImage>,
    cached: &Arc<AtomicU64>,
) -> Result<Vec<SaveImage>> {
    let retrying = Retrying::for_reporter(run.opts.retry, run.cancel, run.reporter);
    let mut sources: HashMap<String, SharedSource> = HashMap::new();
    let mut out = Vec::new();
    for resolved in images {
        let host = resolved.reference.registry.clone();
        let source = match sources.get(&host) {
            Some(s) => s.clone(),
            None => {
                let endpoint: SharedSource = Arc::new(RegistryEndpoint::new(
                    run.registries.client(&host)?,
                    retrying.clone(),
                ));
                let source: SharedSource = match &run.opts.cache {
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
        let target = format!(
            "{}/{}",
            resolved.reference.registry, resolved.reference.repository
        );
        out.push(SaveImage {
            resolved,
            source,
            target,
        });
    }
    Ok(out)
}

/// The bundle's images and blobs, blobs left to a base bundle marked as such.
pub(super) fn bundle_plan(images: &[SaveImage], bases: &BaseSet) -> BundlePlan {
    let mut plan = BundlePlan::default();
    for SaveImage {
        resolved: img,
        target,
        ..
    } in images
    {
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
                target: target.clone(),
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
        .map(|img| {
            let mut copy =
                from_resolved(&img.resolved, img.source.clone(), img.target.clone(), None);
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
