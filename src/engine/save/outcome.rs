//! What a save reports: per image records, the closing summary, the plan of a dry
//! run, and the error of a save in which nothing could be saved.

use super::{SaveOptions, SaveOutcome};
use crate::bundle::meta::{BlobKind, Failure};
use crate::bundle::plan::BundlePlan;
use crate::engine::report::{ImageRecord, ImageState, Plan, Summary};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The record of image `i` of the plan in `state`.
fn image_state(plan: &BundlePlan, i: usize, state: ImageState) -> ImageRecord {
    let record = plan.images.get(i).map(|img| &img.record);
    ImageRecord {
        source: record.map(|r| r.reference.clone()).unwrap_or_default(),
        target: record.and_then(|r| r.target.clone()),
        digest: record.map(|r| r.digest.to_string()),
        bytes: plan.image_bytes(i),
        state,
        reason: None,
    }
}

/// The references that failed before anything was fetched, as the meta lists them.
pub(super) fn early_failures(summary: &Summary) -> Vec<Failure> {
    summary
        .invalid
        .iter()
        .chain(&summary.failed)
        .map(|(r, why)| Failure {
            reference: r.clone(),
            reason: why.clone(),
        })
        .collect()
}

/// The images of the plan that failed, as the meta lists them.
pub(super) fn image_failures(plan: &BundlePlan, failed: &BTreeMap<usize, String>) -> Vec<Failure> {
    failed
        .iter()
        .filter_map(|(i, why)| {
            plan.images.get(*i).map(|img| Failure {
                reference: img.record.reference.clone(),
                reason: why.clone(),
            })
        })
        .collect()
}

/// Records of the references that failed before anything was resolved.
fn early_records(summary: &Summary) -> Vec<ImageRecord> {
    let invalid = summary
        .invalid
        .iter()
        .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Invalid));
    let failed = summary
        .failed
        .iter()
        .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Failed));
    invalid.chain(failed).collect()
}

/// A finished save: every image saved or failed (with why), the summary closed.
pub(super) fn saved(
    plan: &BundlePlan,
    failed: &BTreeMap<usize, String>,
    meta_path: PathBuf,
    mut summary: Summary,
    bytes: u64,
    started: Instant,
) -> SaveOutcome {
    let mut records: Vec<ImageRecord> = (0..plan.images.len())
        .map(|i| {
            let mut r = image_state(plan, i, ImageState::Saved);
            if let Some(why) = failed.get(&i) {
                (r.state, r.reason) = (ImageState::Failed, Some(why.clone()));
            }
            r
        })
        .collect();
    records.extend(early_records(&summary));
    summary.failed.extend(
        image_failures(plan, failed)
            .into_iter()
            .map(|f| (f.reference, f.reason)),
    );
    summary.succeeded = plan.saved_images(failed);
    summary.bytes = bytes;
    summary.elapsed = started.elapsed();
    SaveOutcome {
        meta_path,
        summary,
        images: records,
        plan: None,
    }
}

/// `--dry-run`: what the save would fetch and write, and nothing written.
pub(super) fn dry_run(
    plan: &BundlePlan,
    file_sizes: Vec<u64>,
    opts: &SaveOptions,
    mut summary: Summary,
    started: Instant,
) -> SaveOutcome {
    let mut counts = Plan::default();
    for (digest, b) in &plan.blobs {
        if b.kind == BlobKind::Manifest {
            counts.manifests += 1;
        } else if b.base.is_some() {
            counts.from_bases.add(b.size);
        } else if opts
            .cache
            .as_ref()
            .is_some_and(|c| c.lookup(digest, b.size).is_some())
        {
            counts.cached.add(b.size);
        } else {
            counts.fetch.add(b.size);
        }
    }
    counts.files = file_sizes;
    let mut records: Vec<ImageRecord> = (0..plan.images.len())
        .map(|i| image_state(plan, i, ImageState::Planned))
        .collect();
    records.extend(early_records(&summary));
    summary.succeeded = plan.saved_images(&BTreeMap::new());
    summary.elapsed = started.elapsed();
    SaveOutcome {
        meta_path: PathBuf::new(),
        summary,
        images: records,
        plan: Some(counts),
    }
}

/// Every image failed: no bundle is written (a bundle of nothing would travel and
/// upload as if all were well), and the error says what failed and why.
pub(super) fn nothing_saved(failures: &[Failure]) -> anyhow::Error {
    let lines: Vec<String> = failures
        .iter()
        .map(|f| format!("\n  {}: {}", f.reference, f.reason))
        .collect();
    anyhow::anyhow!(crate::tr!(
        "no image could be saved, so no bundle was written:{}",
        "没有任何镜像保存成功, 因此没有生成镜像包:{}",
        lines.concat()
    ))
}
