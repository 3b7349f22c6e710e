//! The one copy driver under every command: given images (their manifests read
//! and checked, their blobs named) and a sink, it skips images the sink already
//! has, makes every blob present (HEAD, cross-repository mount, else streamed from
//! the image's source), then writes manifests children first and tags last.
//! Failures stay per image: one refused repository does not stop the others.
//!
//! Planning (which images, from where, under what names) is the front ends' job;
//! `plan` turns what they found into [`CopyImage`]s.

mod blobs;
mod conflicts;
pub mod endpoints;
mod meter;
pub mod plan;

use super::pace::{Pace, Side};
use super::report::{ImageRecord, ImageState, Plan, Reporter, Summary};
use crate::digest::Digest;
use crate::manifest::RawManifest;
use crate::transport::{BlobRef, ImageSink, SharedSource};
use anyhow::{Context, Result};
use futures_util::{stream, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One image to copy, with everything it needs.
#[derive(Clone)]
pub struct CopyImage {
    /// The reference to name in reports.
    pub label: String,
    /// The top manifest's digest (what the tag must point at).
    pub digest: Digest,
    /// Where its blobs come from.
    pub source: SharedSource,
    pub source_repo: String,
    pub target_repo: String,
    /// The tag to set; none for an image addressed by digest only.
    pub target_tag: Option<String>,
    /// Child manifests deepest first, then the top manifest.
    pub manifests: Vec<RawManifest>,
    /// Configs and layers of the image and its children, each once.
    pub blobs: Vec<BlobRef>,
    /// A signature, attestation or other referrer: copied after the images.
    pub referrer: bool,
}

/// A blob an incremental bundle left to its base: it must already be in the sink.
#[derive(Clone, Debug)]
pub struct LeftToBase {
    /// The base bundle that carried it (named when the sink lacks it).
    pub bundle: String,
    /// Another repository of the sink where it may be.
    pub hint_repo: String,
}

/// What a copy needs besides the images.
pub struct CopyContext<'a> {
    pub sink: &'a dyn ImageSink,
    /// Blobs no source has, which base bundles carried.
    pub bases: &'a HashMap<Digest, LeftToBase>,
    pub jobs: usize,
    pub reporter: &'a Reporter,
    pub cancel: &'a CancellationToken,
    /// Plan only (`--dry-run`): the sink is asked what it has (`manifest_digest`,
    /// `has_blob`), never given anything (`prepare`, `put_blob`, `put_manifest`,
    /// `finish` are not called).
    pub dry_run: bool,
    /// A blob whose source bytes fail their digest or size check stops every
    /// manifest and tag of the run, not only those of the images that need it:
    /// `upload --verify full` refuses a damaged bundle as a whole, found out as
    /// its blobs stream out instead of by hashing it all beforehand.
    pub refuse_corrupt: bool,
}

#[derive(Debug, Default)]
pub struct CopyOutcome {
    pub succeeded: usize,
    /// Images whose tag already had the digest.
    pub unchanged: usize,
    pub failed: Vec<(String, String)>,
    pub bytes: u64,
    /// `repository[:tag]` of each image written (for `-v` and reports).
    pub written: Vec<String>,
    /// Each image and what became of it (copied, present, failed; planned for a
    /// dry run).
    pub images: Vec<ImageRecord>,
    /// What a dry run would do.
    pub plan: Option<Plan>,
    /// Blobs whose source bytes failed their check (why, naming the blob), when
    /// `refuse_corrupt` kept every manifest back.
    pub corrupt: Vec<String>,
}

impl CopyOutcome {
    /// The summary of a command whose whole work was this copy (`copy`, an upload
    /// into an engine): every image it was given counts, none was refused before.
    pub fn into_summary(self, action: &'static str, elapsed: Duration) -> Summary {
        Summary {
            action,
            total: self.succeeded + self.unchanged + self.failed.len(),
            succeeded: self.succeeded + self.unchanged,
            invalid: Vec::new(),
            failed: self.failed,
            bytes: self.bytes,
            elapsed,
            images: self.images,
            plan: self.plan,
        }
    }
}

/// The record of an image in a given state.
pub(super) fn record(p: &CopyImage, state: ImageState, reason: Option<&str>) -> ImageRecord {
    let bytes = p
        .manifests
        .iter()
        .map(|m| m.bytes.len() as u64)
        .chain(p.blobs.iter().map(|b| b.size))
        .fold(0u64, u64::saturating_add);
    ImageRecord {
        source: p.label.clone(),
        target: Some(written_name(p)),
        digest: Some(p.digest.to_string()),
        bytes,
        state,
        reason: reason.map(str::to_string),
    }
}

/// Copies the images, then their referrers (signatures after their subjects), then
/// lets the sink finish; the outcome's succeeded/unchanged numbers count only the
/// images.
pub async fn copy_in_order(ctx: &CopyContext<'_>, images: Vec<CopyImage>) -> Result<CopyOutcome> {
    if !images.is_empty() {
        ctx.sink.ready().await?;
    }
    let (referrers, images): (Vec<_>, Vec<_>) = images.into_iter().partition(|p| p.referrer);
    // Refusing a damaged source as a whole: the referrers' blobs are read (and
    // checked) with the images', before any image is tagged.
    let early: &[CopyImage] = if ctx.refuse_corrupt && !ctx.dry_run {
        &referrers
    } else {
        &[]
    };
    let mut outcome = copy(ctx, images, early).await?;
    if ctx.refuse_corrupt && !outcome.corrupt.is_empty() {
        // Nothing of a damaged source is tagged, signatures included.
        let why = refused_reason();
        for p in &referrers {
            outcome
                .images
                .push(record(p, ImageState::Failed, Some(&why)));
            outcome.failed.push((p.label.clone(), why.clone()));
        }
        return Ok(outcome);
    }
    if !referrers.is_empty() {
        let r = copy(ctx, referrers, &[]).await?;
        outcome.failed.extend(r.failed);
        outcome.bytes += r.bytes;
        outcome.written.extend(r.written);
        outcome.images.extend(r.images);
        outcome.corrupt.extend(r.corrupt);
        if let (Some(p), Some(more)) = (outcome.plan.as_mut(), r.plan.as_ref()) {
            p.merge(more);
        }
    }
    if ctx.cancel.is_cancelled() {
        return Err(interrupted());
    }
    if !ctx.dry_run {
        ctx.sink.finish().await?;
    }
    Ok(outcome)
}

/// Copies `images`: blobs, then manifests. The blobs of `early` (referrers, whose
/// manifests go in a later pass) are copied along with theirs.
async fn copy(
    ctx: &CopyContext<'_>,
    images: Vec<CopyImage>,
    early: &[CopyImage],
) -> Result<CopyOutcome> {
    let jobs = ctx
        .sink
        .concurrency_limit()
        .unwrap_or(ctx.jobs)
        .min(ctx.jobs)
        .max(1);
    // `jobs` at first, more when round trips are slow (see `pace`), starting from
    // the round trips the endpoints have seen (resolving, the target's ping).
    let source_trip = images.iter().filter_map(|p| p.source.round_trip()).max();
    let pace = Pace::new(jobs, ctx.sink.concurrency_limit().is_none())
        .seeded(source_trip, ctx.sink.round_trip());
    let pace = Arc::new(pace);
    let mut outcome = CopyOutcome {
        plan: ctx.dry_run.then(Plan::default),
        ..CopyOutcome::default()
    };
    let images = conflicts::without_tag_conflicts(images, &mut outcome, ctx.reporter);
    if images.is_empty() {
        return Ok(outcome);
    }
    let todo = skip_present(ctx, images, &pace, &mut outcome).await;

    let (needs, origin) = blob_needs(ctx, todo.iter().chain(early));
    let known_in = blobs::check_bases(ctx, &needs, &pace).await?;
    if ctx.dry_run {
        let mut plan = blobs::plan_blobs(ctx, &needs, &origin, &known_in, &pace).await;
        plan.manifests = todo.iter().map(|p| p.manifests.len()).sum();
        outcome.plan = Some(plan);
        outcome
            .images
            .extend(todo.iter().map(|p| record(p, ImageState::Planned, None)));
        return Ok(outcome);
    }

    let repositories: BTreeSet<String> = todo.iter().map(|p| p.target_repo.clone()).collect();
    let repositories: Vec<String> = repositories.into_iter().collect();
    let notes = ctx.sink.prepare(&repositories).await.with_context(|| {
        crate::tr!(
            "cannot prepare {} for the images",
            "无法为镜像准备 {}",
            ctx.sink.describe()
        )
    })?;
    for note in notes {
        ctx.reporter.info(&note);
    }

    let blob_errors = blobs::copy_blobs(ctx, &needs, &origin, &known_in, &pace, &mut outcome).await;
    if ctx.cancel.is_cancelled() {
        return Err(interrupted());
    }
    if ctx.refuse_corrupt {
        let mut corrupt: Vec<String> = blob_errors
            .values()
            .filter(|f| f.corrupt)
            .map(|f| f.why.clone())
            .collect();
        if !corrupt.is_empty() {
            corrupt.sort();
            corrupt.dedup();
            refuse_all(ctx, &todo, &blob_errors, &mut outcome);
            outcome.corrupt = corrupt;
            return Ok(outcome);
        }
    }

    write_manifests(ctx, &todo, &blob_errors, &pace, &mut outcome).await?;
    Ok(outcome)
}

type BlobNeeds = (
    BTreeMap<Digest, (BlobRef, BTreeSet<String>)>,
    HashMap<Digest, blobs::Origins>,
);

/// Which repositories need each blob, and where to read it for each (blobs left
/// to a base bundle have no source).
fn blob_needs<'a>(ctx: &CopyContext<'_>, images: impl Iterator<Item = &'a CopyImage>) -> BlobNeeds {
    let mut needs: BTreeMap<Digest, (BlobRef, BTreeSet<String>)> = BTreeMap::new();
    let mut origin: HashMap<Digest, blobs::Origins> = HashMap::new();
    for p in images {
        for b in &p.blobs {
            needs
                .entry(b.digest.clone())
                .or_insert_with(|| (b.clone(), BTreeSet::new()))
                .1
                .insert(p.target_repo.clone());
            if !ctx.bases.contains_key(&b.digest) {
                origin.entry(b.digest.clone()).or_default().add(
                    &p.target_repo,
                    &p.source,
                    &p.source_repo,
                );
            }
        }
    }
    (needs, origin)
}

/// Writes the manifests of every image whose blobs all made it, children first and
/// the tag last; an image with a failed blob fails with its first blob error.
async fn write_manifests(
    ctx: &CopyContext<'_>,
    todo: &[CopyImage],
    blob_errors: &HashMap<(Digest, String), blobs::BlobFailure>,
    pace: &Arc<Pace>,
    outcome: &mut CopyOutcome,
) -> Result<()> {
    // Manifests: children first, the tag last.
    let results: Vec<(ImageRecord, Result<(), String>)> = stream::iter(todo)
        .map(|p| async move {
            let _go = pace.enter(0).await;
            let rec = record(p, ImageState::Copied, None);
            let first_error = p
                .blobs
                .iter()
                .filter_map(|b| blob_errors.get(&(b.digest.clone(), p.target_repo.clone())))
                .min_by_key(|f| f.seq);
            if let Some(e) = first_error {
                return (rec, Err(e.why.clone()));
            }
            let r = put_manifests(ctx.sink, p).await.map_err(|e| e.to_string());
            (rec, r)
        })
        .buffer_unordered(pace.max())
        .collect()
        .await;
    if ctx.cancel.is_cancelled() {
        return Err(interrupted());
    }
    for (mut rec, r) in results {
        let label = rec.source.clone();
        match r {
            Ok(()) => {
                let name = rec.target.clone().unwrap_or_default();
                ctx.reporter.debug(&crate::tr!(
                    "{label}: written as {name}",
                    "{label}: 已写入为 {name}"
                ));
                outcome.succeeded += 1;
                outcome.written.push(name);
            }
            Err(why) => {
                ctx.reporter.warn(&format!("{label}: {why}"));
                (rec.state, rec.reason) = (ImageState::Failed, Some(why.clone()));
                outcome.failed.push((label, why));
            }
        }
        outcome.images.push(rec);
    }
    Ok(())
}

/// The reason given to images held back because the source is damaged.
fn refused_reason() -> String {
    crate::i18n::t(
        "not tagged: a blob of another image is corrupt in the source, so no image is tagged",
        "未设置标签: 源中另一个镜像的数据块已损坏, 因此不为任何镜像设置标签",
    )
    .to_string()
}

/// `refuse_corrupt`: a blob failed its check, so no image gets a manifest. Each
/// fails with its own blob's failure, or as held back.
fn refuse_all(
    ctx: &CopyContext<'_>,
    todo: &[CopyImage],
    blob_errors: &HashMap<(Digest, String), blobs::BlobFailure>,
    outcome: &mut CopyOutcome,
) {
    let held = refused_reason();
    for p in todo {
        let own = p
            .blobs
            .iter()
            .find_map(|b| blob_errors.get(&(b.digest.clone(), p.target_repo.clone())));
        let why = own.map(|f| f.why.clone()).unwrap_or_else(|| held.clone());
        ctx.reporter.warn(&format!("{}: {why}", p.label));
        outcome
            .images
            .push(record(p, ImageState::Failed, Some(&why)));
        outcome.failed.push((p.label.clone(), why));
    }
}

fn written_name(p: &CopyImage) -> String {
    match &p.target_tag {
        Some(t) => format!("{}:{t}", p.target_repo),
        None => format!("{}@{}", p.target_repo, p.digest),
    }
}

/// Images whose tag already points at the same digest are done; the rest are
/// returned. An image the sink cannot be asked about fails here, not in each blob.
async fn skip_present(
    ctx: &CopyContext<'_>,
    images: Vec<CopyImage>,
    pace: &Pace,
    outcome: &mut CopyOutcome,
) -> Vec<CopyImage> {
    let present: Vec<Result<bool, crate::transport::TransportError>> = stream::iter(&images)
        .map(|p| async move {
            let _go = pace.enter(0).await;
            // An image addressed by digest only is there when its manifest is.
            let reference = p.target_tag.as_deref().unwrap_or(p.digest.as_str());
            let found = ctx.sink.manifest_digest(&p.target_repo, reference);
            match pace.timed(Side::Sink, found).await {
                Ok(found) => Ok(found.as_ref() == Some(&p.digest)),
                Err(
                    e @ crate::transport::TransportError::Registry(
                        crate::registry::RegistryError::Transport { .. },
                    ),
                ) => Err(e),
                Err(_) => Ok(false),
            }
        })
        .buffered(pace.max())
        .collect()
        .await;
    let mut todo = Vec::new();
    for (p, present) in images.into_iter().zip(present) {
        match present {
            Err(e) => {
                let why = e.to_string();
                ctx.reporter.warn(&format!("{}: {why}", p.label));
                outcome
                    .images
                    .push(record(&p, ImageState::Failed, Some(&why)));
                outcome.failed.push((p.label, why));
            }
            Ok(true) => {
                ctx.reporter.info(&format!(
                    "{}: {} {}/{} ({})",
                    p.label,
                    crate::i18n::t("already at", "已存在于"),
                    ctx.sink.describe(),
                    p.target_repo,
                    p.digest
                ));
                outcome.unchanged += 1;
                outcome.images.push(record(&p, ImageState::Present, None));
            }
            Ok(false) => todo.push(p),
        }
    }
    todo
}

/// The error of a copy stopped by Ctrl-C: tags are set only for complete images.
fn interrupted() -> anyhow::Error {
    anyhow::anyhow!(crate::tr!(
        "interrupted: no tag was set for the images not yet complete; run the same command again to finish",
        "已中断: 尚未完成的镜像没有设置标签; 再次运行同一命令即可完成"
    ))
}

async fn put_manifests(
    sink: &dyn ImageSink,
    p: &CopyImage,
) -> Result<(), crate::transport::TransportError> {
    let Some((top, children)) = p.manifests.split_last() else {
        return Err(crate::transport::TransportError::Invalid {
            endpoint: sink.describe(),
            reason: crate::tr!("{}: no manifest", "{}: 没有清单", p.label),
        });
    };
    // Image manifests at once (they name only blobs), then nested indexes deepest
    // first, then the tagged top: nothing is written before what it names.
    let (indexes, images): (Vec<&RawManifest>, Vec<&RawManifest>) = children
        .iter()
        .partition(|m| crate::manifest::is_index(&m.media_type));
    futures_util::future::try_join_all(
        images
            .into_iter()
            .map(|m| sink.put_manifest(&p.target_repo, None, m)),
    )
    .await?;
    for m in indexes {
        sink.put_manifest(&p.target_repo, None, m).await?;
    }
    sink.put_manifest(&p.target_repo, p.target_tag.as_deref(), top)
        .await
}

/// A sink that has nothing and takes nothing: what a dry run plans against when
/// the target does not exist yet (opening it would create it).
pub(crate) struct EmptySink {
    pub name: String,
}

#[async_trait::async_trait]
impl ImageSink for EmptySink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn has_blob(&self, _repository: &str, _blob: &BlobRef) -> crate::transport::Result<bool> {
        Ok(false)
    }

    async fn put_blob(
        &self,
        _repository: &str,
        _blob: &BlobRef,
        _source: SharedSource,
        _source_repository: &str,
    ) -> crate::transport::Result<u64> {
        Err(self.refuse())
    }

    async fn put_manifest(
        &self,
        _repository: &str,
        _tag: Option<&str>,
        _manifest: &RawManifest,
    ) -> crate::transport::Result<()> {
        Err(self.refuse())
    }
}

impl EmptySink {
    fn refuse(&self) -> crate::transport::TransportError {
        crate::transport::TransportError::Unsupported {
            endpoint: self.name.clone(),
            reason: crate::i18n::t("a dry run writes nothing", "试运行不写入任何内容").into(),
        }
    }
}
