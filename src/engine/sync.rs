//! `sync`: registry → registry with the same engine and no files. Resolve every
//! reference at the source, then push: images whose target tag already has the
//! source digest are skipped without touching their blobs, blobs the target has are
//! skipped or cross-mounted, the rest stream from the source straight to the target.

use super::copy::{copy_in_order, plan, CopyContext, CopyImage};
use super::platform::PlatformFilter;
use super::registries::Registries;
use super::report::{Reporter, Summary};
use super::resolve::{resolve_requests, ImageRequest, ResolveContext, ResolvedImage};
use super::retry::RetryPolicy;
use super::upload::Destination;
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::SharedSource;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub destination: Destination,
    pub jobs: usize,
    pub retry: RetryPolicy,
    pub platforms: PlatformFilter,
    /// A local blob cache: blobs found (and verified) there are pushed from it.
    pub cache: Option<super::cache::BlobCache>,
    /// Also copy the signatures, attestations and SBOMs that refer to each image.
    pub with_referrers: bool,
    /// `--require-cosign`: copy only images signed by this cosign key.
    pub require_cosign: Option<std::sync::Arc<crate::sign::cosign::CosignKey>>,
    /// Plan only (`--dry-run`): ask the target what it has, write nothing.
    pub dry_run: bool,
}

/// One round of copying every requested image.
pub async fn sync(
    requests: &[ImageRequest],
    opts: &SyncOptions,
    registries: &Registries,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Summary> {
    let started = Instant::now();
    if requests.is_empty() {
        bail!(crate::tr!("no images to sync: give references as arguments, with --list FILE, or on standard input", "没有要同步的镜像: 请以参数、--list FILE 或标准输入给出镜像引用"));
    }
    let retrying = Retrying::for_reporter(opts.retry, cancel, reporter);
    let sink = RegistryEndpoint::new(registries.client(&opts.destination.host)?, retrying.clone());
    // The target is checked while the source resolves: its round trip is not
    // waited for again (the engine's check finds it done).
    let context = ResolveContext {
        platforms: &opts.platforms,
        jobs: opts.jobs,
        policy: opts.retry,
        registries,
        reporter,
        cancel,
    };
    let (resolved, ready) = tokio::join!(
        resolve_requests(requests, &context),
        crate::transport::ImageSink::ready(&sink)
    );
    if !resolved.images.is_empty() {
        ready?;
    }
    if cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted before anything was copied",
            "在复制开始前中断"
        ));
    }
    let mut resolved = resolved;
    if opts.with_referrers {
        let found =
            super::referrers::discover(&resolved.images, registries, opts.retry, reporter, cancel)
                .await;
        resolved.images.extend(found);
    }
    let mut refused = Vec::new();
    if let Some(key) = &opts.require_cosign {
        refused = cosign_policy(&mut resolved.images, key, registries).await;
    }
    // One source per registry, reading through the cache where there is one.
    let mut sources: HashMap<String, SharedSource> = HashMap::new();
    let mut images = Vec::new();
    for img in &resolved.images {
        let host = &img.reference.registry;
        let source = match sources.get(host) {
            Some(s) => s.clone(),
            None => {
                let endpoint: SharedSource = Arc::new(RegistryEndpoint::new(
                    registries.client(host)?,
                    retrying.clone(),
                ));
                let source: SharedSource = match &opts.cache {
                    Some(cache) => Arc::new(super::cache::CachedSource::new(
                        endpoint,
                        cache.clone(),
                        Default::default(),
                    )),
                    None => endpoint,
                };
                sources.insert(host.clone(), source.clone());
                source
            }
        };
        images.push(copy_image(img, source, &opts.destination));
    }
    let ctx = CopyContext {
        sink: &sink,
        bases: &HashMap::new(),
        jobs: opts.jobs,
        reporter,
        cancel,
        dry_run: opts.dry_run,
        refuse_corrupt: false,
    };
    let outcome = copy_in_order(&ctx, images).await?;
    let mut failed = resolved.failed;
    failed.extend(refused);
    failed.extend(outcome.failed);
    Ok(Summary {
        action: "sync",
        total: requests.len(),
        succeeded: outcome.succeeded + outcome.unchanged,
        invalid: resolved.invalid,
        failed,
        bytes: outcome.bytes,
        elapsed: started.elapsed(),
        images: outcome.images,
        plan: outcome.plan,
    })
}

/// `--require-cosign`: drops every image without a good cosign signature by `key`
/// in its source repository, and everything that refers to it; returns why.
async fn cosign_policy(
    images: &mut Vec<ResolvedImage>,
    key: &crate::sign::cosign::CosignKey,
    registries: &Registries,
) -> Vec<(String, String)> {
    use std::collections::HashSet;
    let mut refused = HashSet::new();
    let mut reasons = Vec::new();
    for (i, img) in images.iter().enumerate() {
        if img.subject.is_some() {
            continue;
        }
        let verdict = match registries.client(&img.reference.registry) {
            Ok(client) => {
                let source = crate::sign::cosign::RegistrySignatures {
                    client: &client,
                    repository: &img.reference.repository,
                };
                crate::sign::cosign::check_image(key, &img.top.digest, &source)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = verdict {
            refused.insert(i);
            reasons.push((img.input.clone(), why));
        }
    }
    let shape: Vec<_> = images
        .iter()
        .map(|m| {
            (
                m.manifests().map(|r| r.digest.clone()).collect(),
                m.subject.clone(),
            )
        })
        .collect();
    let held = crate::sign::cosign::hold_back(&shape, &refused);
    let mut i = 0;
    images.retain(|_| {
        let keep = !held.contains(&i);
        i += 1;
        keep
    });
    reasons
}

/// Where a resolved image goes: renamed (`SOURCE -> TARGET`) or rewritten path.
fn copy_image(img: &ResolvedImage, source: SharedSource, dst: &Destination) -> CopyImage {
    let (target_repo, target_tag) = dst.target_for(
        &img.reference.repository,
        img.reference.tag.clone(),
        img.rename.as_deref(),
    );
    plan::from_resolved(img, source, target_repo, target_tag)
}
