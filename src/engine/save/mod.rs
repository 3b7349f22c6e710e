//! `save`: images → bundle, through the copy engine like every other command. Five
//! stages: **plan** (resolve every reference, plan the unique blob set minus what
//! base bundles carried), **lay out** (size the data files before any byte is
//! fetched, claim the bundle's name, check the free space), **download** (the copy
//! driver into a [`BundleSink`], which streams each blob into its slot), then
//! **reconcile** and **finish** (the sink drops what only failed images needed and
//! writes the meta last).

mod layout;
mod local;
mod outcome;
mod plan;

use super::copy::{copy_in_order, CopyContext, CopyImage, CopyOutcome};
use super::registries::Registries;
use super::report::Reporter;
use super::retry::RetryPolicy;
use crate::bundle::base::BaseSet;
use crate::bundle::layout::FileLayout;
use crate::bundle::meta::Kind;
use crate::bundle::naming::BundleName;
use crate::bundle::plan::{BundlePlan, MetaDraft};
use crate::transport::bundle::sink::{BundleFiles, Finished, SinkOptions};
use crate::transport::bundle::BundleSink;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub use super::resolve::ImageRequest;

#[derive(Clone, Debug)]
pub struct SaveOptions {
    pub out: PathBuf,
    pub prefix: String,
    pub files: usize,
    pub jobs: usize,
    pub bases: Vec<PathBuf>,
    pub platforms: super::platform::PlatformFilter,
    /// No data file grows past this; the bundle gets as many files as it needs.
    pub max_file_size: Option<u64>,
    /// Write `.tar.zst` data files (seekable: one zstd frame per entry).
    pub compress: bool,
    /// A local blob cache read before the network and filled after.
    pub cache: Option<super::cache::BlobCache>,
    /// Also save the signatures, attestations and SBOMs that refer to each image.
    pub with_referrers: bool,
    pub retry: RetryPolicy,
    /// What the list's tag selectors expanded to (recorded in the meta) and the
    /// lines that could not be expanded (reported and recorded as failures); its
    /// requests are the `inputs` of [`save`].
    pub expansion: super::expand::Expanded,
    /// Resolve and plan only: return the plan, write nothing.
    pub dry_run: bool,
    /// `--trust`: a `bundle:` source must carry a good signature by one of these
    /// keys (its bases too), checked before anything of it is read.
    pub trust: Option<crate::sign::Trust>,
}

pub struct SaveOutcome {
    /// Empty for a dry run.
    pub meta_path: PathBuf,
    pub summary: super::report::Summary,
    /// Each image, saved, failed or invalid (planned, for a dry run).
    pub images: Vec<super::report::ImageRecord>,
    /// What a dry run would do.
    pub plan: Option<super::report::Plan>,
}

/// What every stage of a save runs with: the options and the environment.
pub(super) struct Run<'a> {
    opts: &'a SaveOptions,
    registries: &'a Registries,
    reporter: &'a Reporter,
    cancel: &'a CancellationToken,
}

pub async fn save(
    inputs: Vec<ImageRequest>,
    opts: &SaveOptions,
    registries: &Registries,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<SaveOutcome> {
    let started = Instant::now();
    let run = Run {
        opts,
        registries,
        reporter,
        cancel,
    };
    if inputs.is_empty() {
        bail!(crate::tr!("no images to save: give references as arguments, with --list FILE, or on standard input", "没有要保存的镜像: 请以参数、--list FILE 或标准输入给出镜像引用"));
    }
    let bases = BaseSet::load(&opts.bases).with_context(|| {
        crate::tr!(
            "cannot use the base bundle given with --inc",
            "无法使用 --inc 给出的基础包"
        )
    })?;
    if !opts.dry_run {
        layout::check_writable(&opts.out)?;
    }
    // Plan, then lay out.
    let found = plan::find(&run, &inputs).await?;
    let bundle = Arc::new(plan::bundle_plan(&found.images, &bases));
    let layouts = layout::lay_out(&bundle, opts)?;
    if opts.dry_run {
        let sizes = layouts.iter().map(|l| l.size).collect();
        return Ok(outcome::dry_run(
            &bundle,
            sizes,
            opts,
            found.summary,
            started,
        ));
    }
    let (sink, name) = open_sink(&run, &inputs, &bundle, layouts, &bases, &found.summary)?;
    // Download; the sink reconciles and finishes.
    let images = plan::copy_images(&found.images, &bundle);
    let copied = download(&run, &sink, images).await;
    sink.close_bars();
    report_cache(opts, found.cached_bytes(), reporter);
    let copied = copied.map_err(|e| stopped(e, &sink, &name, &bundle, &found.summary, cancel))?;
    match sink.finished() {
        Some(Finished::Written { meta, failed }) => Ok(outcome::saved(
            &bundle,
            &failed,
            meta,
            found.summary,
            copied.bytes,
            started,
        )),
        other => Err(anyhow!(
            "internal: the bundle sink did not finish ({other:?})"
        )),
    }
}

/// Claims the bundle's name (or finds the unfinished bundle of the same save) and
/// opens the sink that writes it: its layout, and everything its meta will say
/// besides the images and blobs.
fn open_sink(
    run: &Run<'_>,
    inputs: &[ImageRequest],
    bundle: &Arc<BundlePlan>,
    layouts: Vec<FileLayout>,
    bases: &BaseSet,
    summary: &super::report::Summary,
) -> Result<(BundleSink, BundleName)> {
    let opts = run.opts;
    let now = chrono::Local::now();
    let kind = if bases.is_empty() {
        Kind::Full
    } else {
        Kind::Incremental
    };
    let fingerprint = layout::fingerprint(inputs, opts, bases);
    let name = layout::claim(opts, kind, now, &fingerprint, &layouts)?;
    let journal = name.journal.try_clone().with_context(|| {
        crate::tr!(
            "cannot use the bundle's journal",
            "无法使用镜像包的日志文件"
        )
    })?;
    let draft = MetaDraft {
        name: name.name.clone(),
        created: now.to_rfc3339(),
        kind,
        bases: bases.refs.clone(),
        platforms: opts.platforms.to_strings(),
        selections: opts.expansion.selections.clone(),
        failed: outcome::early_failures(summary),
    };
    let files = BundleFiles {
        dir: name.dir.clone(),
        name: name.name.clone(),
        journal,
        layouts,
        fingerprint,
        mtime: u64::try_from(now.timestamp()).unwrap_or(0),
        compress: opts.compress,
    };
    let options = SinkOptions {
        cache: opts.cache.clone(),
        retry: opts.retry,
        cancel: run.cancel.clone(),
        reporter: run.reporter.clone(),
    };
    Ok((BundleSink::new(bundle.clone(), draft, files, options), name))
}

/// Runs the copy driver into the bundle.
async fn download(run: &Run<'_>, sink: &BundleSink, images: Vec<CopyImage>) -> Result<CopyOutcome> {
    let none = HashMap::new();
    let ctx = CopyContext {
        sink,
        bases: &none,
        jobs: run.opts.jobs,
        reporter: run.reporter,
        cancel: run.cancel,
        dry_run: false,
        // A registry's corrupt blob fails only the images that need it.
        refuse_corrupt: false,
    };
    copy_in_order(&ctx, images).await
}

/// The error of a save that stopped before its meta: Ctrl-C or a failed write keep
/// the partial bundle for a rerun; when every image failed, nothing is kept.
fn stopped(
    e: anyhow::Error,
    sink: &BundleSink,
    name: &BundleName,
    plan: &BundlePlan,
    summary: &super::report::Summary,
    cancel: &CancellationToken,
) -> anyhow::Error {
    if cancel.is_cancelled() {
        return anyhow!(crate::tr!("interrupted: the partial bundle {} is kept in {}; run the same command again to finish it", "已中断: 未完成的镜像包 {} 保留在 {} 中; 再次运行同一命令即可完成", name.name, name.dir.display()));
    }
    if let Some(why) = sink.broken() {
        return anyhow!(crate::tr!("cannot write the bundle in {}: {why}. The partial bundle {} is kept (no meta); free space and run the same command again to finish it", "无法在 {} 中写入镜像包: {why}。未完成的镜像包 {} 已保留 (没有元数据); 请释放空间后再次运行同一命令完成", name.dir.display(), name.name));
    }
    if let Some(Finished::NothingSaved { failed }) = sink.finished() {
        let mut failures = outcome::early_failures(summary);
        failures.extend(outcome::image_failures(plan, &failed));
        return outcome::nothing_saved(&failures);
    }
    e
}

/// How much came from the local cache, and the cache kept within its limits.
fn report_cache(opts: &SaveOptions, cached: u64, reporter: &Reporter) {
    if cached > 0 {
        reporter.info(&format!(
            "{} {}",
            indicatif::HumanBytes(cached),
            crate::i18n::t("came from the local cache", "来自本地缓存")
        ));
    }
    if let Some(cache) = &opts.cache {
        if let Err(e) = cache.evict() {
            reporter.warn(&crate::tr!(
                "cannot clean the cache: {e}",
                "无法清理缓存: {e}"
            ));
        }
    }
}
