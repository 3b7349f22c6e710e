//! `save`: registry → bundle. Resolve every reference, plan the unique blob set
//! (minus what base bundles carried), lay the data files out, then download blobs
//! concurrently straight into their tar entries.

use super::registries::Registries;
use super::report::{ImageRecord, ImageState, Plan, Reporter, Summary};
use super::resolve::{resolve_requests, ResolvedImage};
use super::retry::{retry, RetryPolicy};
use crate::bundle::base::BaseSet;
use crate::bundle::layout;
use crate::bundle::meta::{self, BlobKind, BlobRecord, DataFile, Failure, Kind, Meta};
use crate::bundle::naming;
use crate::bundle::writer::{BundleWriter, Slot};
use crate::digest::{Digest, Hasher};
use crate::registry::{Client, RegistryError};
use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
}

pub struct SaveOutcome {
    /// Empty for a dry run.
    pub meta_path: PathBuf,
    pub summary: Summary,
    /// Each image, saved, failed or invalid (planned, for a dry run).
    pub images: Vec<super::report::ImageRecord>,
    /// What a dry run would do.
    pub plan: Option<super::report::Plan>,
}

/// One blob the bundle needs, with where to fetch it and who needs it.
struct PlannedBlob {
    size: u64,
    kind: BlobKind,
    /// Index into the resolved images of the first image that needs it.
    first_image: usize,
    images: Vec<usize>,
    /// The base bundle that carried it, when this is an increment.
    base: Option<crate::bundle::base::BaseBlob>,
}

pub use super::resolve::ImageRequest;

pub async fn save(
    inputs: Vec<ImageRequest>,
    opts: &SaveOptions,
    registries: &Registries,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<SaveOutcome> {
    let started = Instant::now();
    if inputs.is_empty() {
        bail!(crate::tr!("no images to save: give references as arguments, with --list FILE, or on standard input", "没有要保存的镜像: 请以参数、--list FILE 或标准输入给出镜像引用"));
    }
    let bases = BaseSet::load(&opts.bases).with_context(|| {
        crate::tr!(
            "cannot use the base bundle given with --inc",
            "无法使用 --inc 给出的基础包"
        )
    })?;
    let kind = if bases.is_empty() {
        Kind::Full
    } else {
        Kind::Incremental
    };
    if !opts.dry_run {
        check_writable(&opts.out)?;
    }

    let resolved = resolve_requests(
        &inputs,
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
    let mut summary = Summary {
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
    // Failures before anything was resolved (a list line, a reference).
    let early_failures = summary.failed.len();
    let mut failures: Vec<Failure> = summary
        .invalid
        .iter()
        .chain(&summary.failed)
        .map(|(r, why)| Failure {
            reference: r.clone(),
            reason: why.clone(),
        })
        .collect();
    let mut images = resolved.images;
    if images.is_empty() {
        return Err(nothing_saved(&failures));
    }
    if opts.with_referrers {
        let found =
            super::referrers::discover(&images, registries, opts.retry, reporter, cancel).await;
        images.extend(found);
    }
    let on_retry = |e: &RegistryError, d: Duration| reporter.retrying(e, d);

    // Plan the unique blob set.
    let mut blobs: BTreeMap<Digest, PlannedBlob> = BTreeMap::new();
    let mut manifest_bytes: HashMap<Digest, &[u8]> = HashMap::new();
    for (i, img) in images.iter().enumerate() {
        for m in img.manifests() {
            manifest_bytes.insert(m.digest.clone(), &m.bytes);
            note_blob(
                &mut blobs,
                &m.digest,
                m.bytes.len() as u64,
                BlobKind::Manifest,
                i,
                None,
            );
        }
        for b in &img.blobs {
            note_blob(
                &mut blobs,
                &b.digest,
                b.size,
                b.kind,
                i,
                bases.get(&b.digest).cloned(),
            );
        }
    }
    let to_store: Vec<(Digest, u64)> = blobs
        .iter()
        .filter(|(_, b)| b.base.is_none())
        .map(|(d, b)| (d.clone(), b.size))
        .collect();
    let max_file = to_store.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let _ = max_file;

    let now = chrono::Local::now();
    let fingerprint = fingerprint(&inputs, opts, &bases);
    if opts.max_file_size.is_some_and(|max| {
        to_store.iter().any(|(_, s)| {
            layout::entry_span(*s)
                .and_then(|n| n.checked_add(layout::END_OF_ARCHIVE))
                .is_none_or(|n| n > max)
        })
    }) {
        let (d, s) = to_store
            .iter()
            .max_by_key(|(_, s)| *s)
            .cloned()
            .unwrap_or((Digest::of(b""), 0));
        bail!(crate::tr!(
            "blob {d} ({}) is larger than the maximum data file size {}; nothing was downloaded",
            "数据块 {d} ({}) 大于数据文件的大小上限 {}; 没有下载任何内容",
            indicatif::HumanBytes(s),
            indicatif::HumanBytes(opts.max_file_size.unwrap_or(0))
        ));
    }
    // Sizes come from the registry: a layout that cannot exist, or that does not fit
    // in the free space, is refused before anything is written.
    let layouts = match opts.max_file_size {
        Some(max) => layout::plan_capped(&to_store, opts.files, max),
        None => layout::plan(&to_store, opts.files),
    }
    .context(crate::tr!("nothing was downloaded", "没有下载任何内容"))?;
    if opts.dry_run {
        let sizes: Vec<u64> = layouts.iter().map(|l| l.size).collect();
        return Ok(dry_run_outcome(
            &images, &blobs, sizes, opts, summary, started,
        ));
    }
    let name =
        naming::choose(&opts.out, &opts.prefix, kind, now, &fingerprint).with_context(|| {
            crate::tr!(
                "cannot claim a bundle name in {}",
                "无法在 {} 中预留镜像包名称",
                opts.out.display()
            )
        })?;
    let mtime = now.timestamp().max(0) as u64;
    crate::bundle::space::check_bundle_fits(&name.dir, &name.name, &layouts, opts.compress)
        .context(crate::tr!("nothing was downloaded", "没有下载任何内容"))?;
    let journal = name.journal.try_clone().with_context(|| {
        crate::tr!(
            "cannot use the bundle's journal",
            "无法使用镜像包的日志文件"
        )
    })?;
    let mut writer = BundleWriter::create(
        &name.dir,
        &name.name,
        journal,
        layouts,
        &fingerprint,
        mtime,
        opts.compress,
    )
    .with_context(|| {
        crate::tr!(
            "cannot create the data files in {}",
            "无法在 {} 中创建数据文件",
            name.dir.display()
        )
    })?;
    if !writer.resumed().is_empty() {
        let n = writer.resumed().len();
        let blobs = crate::i18n::plural(n as u64, "blob", "blobs");
        reporter.info(&crate::tr!(
            "resuming {}: {blobs} already saved",
            "继续未完成的 {}: 已保存 {n} 个数据块",
            name.name
        ));
    }
    for (digest, bytes) in &manifest_bytes {
        if !writer.resumed().contains(digest) {
            writer.write_small(digest, bytes).with_context(|| {
                crate::tr!(
                    "cannot write a manifest into the bundle",
                    "无法将清单写入镜像包"
                )
            })?;
        }
    }

    // Download the configs and layers, largest first.
    let mut downloads: Vec<(&Digest, &PlannedBlob)> = blobs
        .iter()
        .filter(|(d, b)| {
            b.base.is_none() && b.kind != BlobKind::Manifest && !writer.resumed().contains(*d)
        })
        .collect();
    downloads.sort_by(|a, b| b.1.size.cmp(&a.1.size).then_with(|| a.0.cmp(b.0)));
    let total_bytes: u64 = downloads.iter().map(|(_, b)| b.size).sum();
    let bar = reporter.bytes_bar(total_bytes, crate::i18n::t("save", "保存"));
    // Per data file bars (when few enough to read), and images completed.
    let mut per_file = vec![0u64; writer.file_count()];
    for (d, b) in &downloads {
        if let Some(slot) = writer.slot(d) {
            per_file[slot.file] += b.size;
        }
    }
    let file_bars: Vec<ProgressBar> = if per_file.len() <= 8 {
        per_file
            .iter()
            .enumerate()
            .map(|(i, n)| reporter.part_bar(*n, &crate::tr!("file {}", "文件 {}", i + 1)))
            .collect()
    } else {
        Vec::new()
    };
    let images_bar = reporter.count_bar(images.len() as u64, crate::i18n::t("images", "镜像"));
    let pending: Vec<AtomicUsize> = (0..images.len()).map(|_| AtomicUsize::new(0)).collect();
    for (_, b) in &downloads {
        for &i in &b.images {
            pending[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    for (p, img) in pending.iter().zip(&images) {
        if p.load(Ordering::Relaxed) == 0 {
            images_bar.inc(1);
            reporter.image_saved(&img.input);
        }
    }
    let writer_ref = &writer;
    let cached_bytes = AtomicU64::new(0);
    let cached_bytes = &cached_bytes;
    // Each result: the blob, whether it was saved, and the images whose own
    // repository could not serve it (another repository may have, for the others).
    type BlobResult = (Digest, Result<(), RegistryError>, Vec<(usize, String)>);
    let results: Vec<BlobResult> = stream::iter(downloads)
        .map(|(digest, planned)| {
            let images = &images;
            let bar = &bar;
            let file_bar = writer_ref.slot(digest).and_then(|s| file_bars.get(s.file));
            let (images_bar, pending) = (&images_bar, &pending);
            let on_retry = &on_retry;
            async move {
                let mut refused: Vec<(usize, String)> = Vec::new();
                let r = async {
                    let slot = writer_ref
                        .slot(digest)
                        .ok_or_else(|| RegistryError::Protocol {
                            what: digest.to_string(),
                            detail: crate::tr!("blob missing from the layout", "数据块不在布局中"),
                        })?;
                    let bars: Vec<&ProgressBar> =
                        [Some(bar), file_bar].into_iter().flatten().collect();
                    let file = writer_ref.file_handle(slot.file);
                    if from_cache(opts.cache.as_ref(), digest, &slot, &file).await {
                        bars.iter().for_each(|b| b.inc(slot.size));
                        cached_bytes.fetch_add(slot.size, Ordering::Relaxed);
                    } else {
                        // The blob may be fetched from any repository of an image
                        // that needs it: a repository that lacks it (or refuses
                        // access) fails only its own images.
                        let mut last = None;
                        let mut tried: Vec<(&str, &str)> = Vec::new();
                        for &i in &planned.images {
                            let r = &images[i].reference;
                            if tried.contains(&(r.registry.as_str(), r.repository.as_str())) {
                                continue;
                            }
                            tried.push((&r.registry, &r.repository));
                            let result = match registries.client(&r.registry) {
                                Ok(client) => {
                                    download_blob(
                                        &client,
                                        &r.repository,
                                        digest,
                                        &slot,
                                        file.clone(),
                                        opts.retry,
                                        cancel,
                                        &bars,
                                        on_retry,
                                    )
                                    .await
                                }
                                Err(e) => Err(e),
                            };
                            match result {
                                Ok(()) => {
                                    last = None;
                                    break;
                                }
                                Err(
                                    e @ (RegistryError::NotFound { .. }
                                    | RegistryError::Denied { .. }),
                                ) => {
                                    let why = e.to_string();
                                    refused.extend(
                                        planned
                                            .images
                                            .iter()
                                            .filter(|&&j| {
                                                images[j].reference.registry == r.registry
                                                    && images[j].reference.repository
                                                        == r.repository
                                            })
                                            .map(|&j| (j, why.clone())),
                                    );
                                    last = Some(e);
                                }
                                Err(e) => {
                                    last = Some(e);
                                    break;
                                }
                            }
                        }
                        if let Some(e) = last {
                            return Err(e);
                        }
                        if let Some(cache) = opts.cache.clone() {
                            let (d, s) = (digest.clone(), slot.clone());
                            let stored = tokio::task::spawn_blocking(move || {
                                cache.store_from(&d, s.size, &file, s.data_offset)
                            })
                            .await;
                            if let Ok(Err(e)) = stored {
                                reporter.warn(&crate::tr!(
                                    "cannot store {digest} in the cache: {e}",
                                    "无法将 {digest} 存入缓存: {e}"
                                ));
                            }
                        }
                    }
                    writer_ref.mark_done(digest).map_err(|e| RegistryError::Io {
                        what: digest.to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
                .await;
                if r.is_ok() {
                    let size = indicatif::HumanBytes(planned.size);
                    reporter.debug(&crate::tr!(
                        "blob {digest} saved ({size})",
                        "数据块 {digest} 已保存 ({size})"
                    ));
                    for &i in &planned.images {
                        if pending[i].fetch_sub(1, Ordering::Relaxed) == 1 {
                            images_bar.inc(1);
                            if let Some(img) = images.get(i) {
                                let name = &img.input;
                                reporter.image_saved(name);
                                reporter.debug(&crate::tr!(
                                    "{name}: every blob saved",
                                    "{name}: 所有数据块已保存"
                                ));
                            }
                        }
                    }
                }
                (digest.clone(), r, refused)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    images_bar.finish_and_clear();
    if cached_bytes.load(Ordering::Relaxed) > 0 {
        reporter.info(&format!(
            "{} {}",
            indicatif::HumanBytes(cached_bytes.load(Ordering::Relaxed)),
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
    file_bars.iter().for_each(ProgressBar::finish_and_clear);
    if cancel.is_cancelled() {
        bail!(crate::tr!("interrupted: the partial bundle {} is kept in {}; run the same command again to finish it", "已中断: 未完成的镜像包 {} 保留在 {} 中; 再次运行同一命令即可完成", name.name, name.dir.display()));
    }

    // A blob that could not be written (disk full, I/O error) stops the save: the
    // partial files and journal stay, so the same command resumes once there is room.
    if let Some(e) = results.iter().find_map(|(_, r, _)| match r {
        Err(e @ RegistryError::Io { .. }) => Some(e),
        _ => None,
    }) {
        bail!(crate::tr!("cannot write the bundle in {}: {e}. The partial bundle {} is kept (no meta); free space and run the same command again to finish it", "无法在 {} 中写入镜像包: {e}。未完成的镜像包 {} 已保留 (没有元数据); 请释放空间后再次运行同一命令完成", name.dir.display(), name.name));
    }

    // Images that lost a blob fail; the blobs only they needed are dropped.
    let mut failed_images: HashMap<usize, String> = HashMap::new();
    for (digest, r, refused) in &results {
        if let Err(e) = r {
            for &i in &blobs[digest].images {
                failed_images.entry(i).or_insert_with(|| e.to_string());
            }
        }
        for (i, why) in refused {
            failed_images.entry(*i).or_insert_with(|| why.clone());
        }
    }
    if !failed_images.is_empty() {
        let keep: HashSet<Digest> = blobs
            .iter()
            .filter(|(_, b)| b.images.iter().any(|i| !failed_images.contains_key(i)))
            .map(|(d, _)| d.clone())
            .collect();
        writer.retain(&keep, mtime).with_context(|| {
            crate::tr!(
                "cannot rewrite the data files without the failed images' blobs",
                "无法在去掉失败镜像的数据块后重写数据文件"
            )
        })?;
        blobs.retain(|d, _| keep.contains(d));
    }
    let mut meta_images = Vec::new();
    for (i, img) in images.iter().enumerate() {
        if let Some(why) = failed_images.get(&i) {
            reporter.warn(&format!("{}: {why}", img.input));
            summary.failed.push((img.input.clone(), why.clone()));
            failures.push(Failure {
                reference: img.input.clone(),
                reason: why.clone(),
            });
        } else {
            meta_images.push(image_record(img));
        }
    }
    summary.succeeded = meta_images.iter().filter(|i| i.subject.is_none()).count();
    summary.bytes = total_bytes;
    if summary.succeeded == 0 {
        writer.abandon();
        return Err(nothing_saved(&failures));
    }

    let file_names = writer.file_names();
    let blob_records: Vec<BlobRecord> = blobs
        .iter()
        .map(|(d, b)| BlobRecord {
            digest: d.clone(),
            size: b.size,
            kind: b.kind,
            file: if b.base.is_none() {
                writer.slot(d).map(|s| file_names[s.file].0.clone())
            } else {
                None
            },
            base: b.base.as_ref().map(|x| x.bundle.clone()),
            repository: b
                .base
                .as_ref()
                .map(|x| x.repository.clone())
                .unwrap_or_else(|| images[b.first_image].reference.repository.clone()),
            offset: None,
        })
        .collect();
    let meta_path = writer
        .finish(|sums, offsets| Meta {
            format: meta::FORMAT_NAME.into(),
            version: meta::FORMAT_VERSION,
            tool: concat!("ferry ", env!("CARGO_PKG_VERSION")).into(),
            created: now.to_rfc3339(),
            name: name.name.clone(),
            kind,
            bases: bases.refs.clone(),
            platforms: opts.platforms.to_strings(),
            files: file_names
                .iter()
                .zip(sums)
                .map(|((n, count), (size, sha))| DataFile {
                    name: n.clone(),
                    size: *size,
                    sha256: sha.clone(),
                    blobs: *count as u64,
                })
                .collect(),
            images: meta_images,
            blobs: blob_records
                .into_iter()
                .map(|mut r| {
                    r.offset = offsets.get(&r.digest).copied();
                    r
                })
                .collect(),
            failed: failures,
            selections: opts.expansion.selections.clone(),
        })
        .with_context(|| crate::tr!("cannot finish the bundle", "无法完成镜像包"))?;
    summary.elapsed = started.elapsed();
    let mut records: Vec<ImageRecord> = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let mut r = image_state(img, ImageState::Saved);
            if let Some(why) = failed_images.get(&i) {
                (r.state, r.reason) = (ImageState::Failed, Some(why.clone()));
            }
            r
        })
        .collect();
    records.extend(early_records(&summary, early_failures));
    Ok(SaveOutcome {
        meta_path,
        summary,
        images: records,
        plan: None,
    })
}

/// An image's record: its digest and the bytes of everything it needs.
fn image_state(img: &ResolvedImage, state: ImageState) -> ImageRecord {
    let bytes = img
        .manifests()
        .map(|m| m.bytes.len() as u64)
        .chain(img.blobs.iter().map(|b| b.size))
        .fold(0u64, u64::saturating_add);
    ImageRecord {
        source: img.input.clone(),
        target: img.rename.clone(),
        digest: Some(img.top.digest.to_string()),
        bytes,
        state,
        reason: None,
    }
}

/// Records of the references that failed before anything was resolved.
fn early_records(summary: &Summary, early_failures: usize) -> Vec<ImageRecord> {
    let invalid = summary
        .invalid
        .iter()
        .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Invalid));
    let failed = summary
        .failed
        .iter()
        .take(early_failures)
        .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Failed));
    invalid.chain(failed).collect()
}

/// `--dry-run`: what the save would fetch and write, and nothing written.
fn dry_run_outcome(
    images: &[ResolvedImage],
    blobs: &BTreeMap<Digest, PlannedBlob>,
    file_sizes: Vec<u64>,
    opts: &SaveOptions,
    mut summary: Summary,
    started: Instant,
) -> SaveOutcome {
    let mut plan = Plan::default();
    for (digest, b) in blobs {
        if b.kind == BlobKind::Manifest {
            plan.manifests += 1;
        } else if b.base.is_some() {
            plan.from_bases.add(b.size);
        } else if opts
            .cache
            .as_ref()
            .is_some_and(|c| c.lookup(digest, b.size).is_some())
        {
            plan.cached.add(b.size);
        } else {
            plan.fetch.add(b.size);
        }
    }
    plan.files = file_sizes;
    let early = summary.failed.len();
    let mut records: Vec<ImageRecord> = images
        .iter()
        .map(|img| image_state(img, ImageState::Planned))
        .collect();
    records.extend(early_records(&summary, early));
    summary.succeeded = images.iter().filter(|i| i.subject.is_none()).count();
    summary.elapsed = started.elapsed();
    SaveOutcome {
        meta_path: PathBuf::new(),
        summary,
        images: records,
        plan: Some(plan),
    }
}

/// Every image failed: no bundle is written (a bundle of nothing would travel and
/// upload as if all were well), and the error says what failed and why.
fn nothing_saved(failures: &[Failure]) -> anyhow::Error {
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

fn note_blob(
    blobs: &mut BTreeMap<Digest, PlannedBlob>,
    digest: &Digest,
    size: u64,
    kind: BlobKind,
    image: usize,
    base: Option<crate::bundle::base::BaseBlob>,
) {
    let entry = blobs.entry(digest.clone()).or_insert(PlannedBlob {
        size,
        kind,
        first_image: image,
        images: Vec::new(),
        base,
    });
    if entry.images.last() != Some(&image) {
        entry.images.push(image);
    }
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

/// Identifies a save request, so that running the same command again resumes it.
fn fingerprint(inputs: &[ImageRequest], opts: &SaveOptions, bases: &BaseSet) -> String {
    let mut sorted: Vec<String> = inputs
        .iter()
        .map(|r| format!("{} {} {:?}", r.input, r.fetch, r.rename))
        .collect();
    sorted.sort();
    let mut h = Hasher::new();
    for i in sorted {
        h.update(i.as_bytes());
        h.update(b"\n");
    }
    h.update(
        format!(
            "files={} prefix={} max={:?} platforms={:?}\n",
            opts.files,
            opts.prefix,
            opts.max_file_size,
            opts.platforms.to_strings()
        )
        .as_bytes(),
    );
    for b in &bases.refs {
        h.update(b.meta_sha256.as_bytes());
    }
    h.finish().to_string()
}

fn check_writable(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| {
        crate::tr!(
            "cannot create the output folder {}",
            "无法创建输出目录 {}",
            out.display()
        )
    })?;
    let probe = out.join(format!(".ferry-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        crate::tr!(
            "the output folder {} is not writable",
            "输出目录 {} 不可写",
            out.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A buffer being hashed and written on the blocking pool; gives back the buffer
/// (for reuse) and the hasher.
type WriteJob = tokio::task::JoinHandle<(Vec<u8>, Hasher, std::io::Result<()>)>;

/// Waits for an in-flight write and records its bytes as written, so that a body cut
/// short later resumes after them.
async fn settle(
    job: WriteJob,
    n: u64,
    written: &mut u64,
    state: &Mutex<Progress>,
    bars: &[&ProgressBar],
    what: &str,
) -> Result<(Vec<u8>, Hasher), RegistryError> {
    let (buf, hasher, result) = job.await.map_err(|e| RegistryError::Io {
        what: what.to_string(),
        source: std::io::Error::other(e),
    })?;
    result.map_err(|e| RegistryError::Io {
        what: crate::tr!("writing {what} into the bundle", "将 {what} 写入镜像包"),
        source: e,
    })?;
    *written += n;
    bars.iter().for_each(|b| b.inc(n));
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.written = *written;
    s.hasher = hasher.clone();
    Ok((buf, hasher))
}

/// Fills a slot from the local cache when it holds the blob (verified on the way).
async fn from_cache(
    cache: Option<&super::cache::BlobCache>,
    digest: &Digest,
    slot: &Slot,
    file: &Arc<std::fs::File>,
) -> bool {
    let Some(cache) = cache.cloned() else {
        return false;
    };
    let (d, s, f) = (digest.clone(), slot.clone(), file.clone());
    tokio::task::spawn_blocking(move || cache.copy_into(&d, s.size, &f, s.data_offset))
        .await
        .unwrap_or(false)
}

/// Bytes downloaded so far for one blob, kept across retries so a cut body resumes.
struct Progress {
    written: u64,
    hasher: Hasher,
}

const WRITE_BUFFER: usize = 1 << 20;

/// Streams one blob into its slot, hashing as it goes. A body cut short resumes
/// with a Range request where the registry honours it, else restarts from zero.
#[allow(clippy::too_many_arguments)]
async fn download_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    slot: &Slot,
    file: Arc<std::fs::File>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    bars: &[&ProgressBar],
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Result<(), RegistryError> {
    let state = Mutex::new(Progress {
        written: 0,
        hasher: Hasher::new(),
    });
    let what = format!("blob {digest} in {}/{repo}", client.host());
    retry(policy, cancel, on_retry, || async {
        let (mut written, mut hasher) = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            (s.written, s.hasher.clone())
        };
        let (resp, start) = client.get_blob(repo, digest, written).await?;
        if start != written {
            bars.iter().for_each(|b| b.dec(written));
            written = 0;
            hasher = Hasher::new();
        }
        if let Some(len) = resp.content_length() {
            if written + len != slot.size {
                return Err(RegistryError::SizeMismatch {
                    what: what.clone(),
                    expected: slot.size,
                    actual: written + len,
                });
            }
        }
        // Double-buffered: while one buffer is hashed and written on the blocking
        // pool, the next one is received from the network.
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
        let mut spare: Option<Vec<u8>> = None;
        let mut free_hasher = Some(hasher);
        let mut in_flight: Option<(WriteJob, u64)> = None;
        let mut received = written;
        let mut cut = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    cut = Some(RegistryError::transport(&what, e));
                    None
                }
                None => None,
            };
            if let Some(c) = &chunk {
                received += c.len() as u64;
                if received > slot.size {
                    return Err(RegistryError::SizeMismatch {
                        what: what.clone(),
                        expected: slot.size,
                        actual: received,
                    });
                }
                buf.extend_from_slice(c);
            }
            if !buf.is_empty() && (chunk.is_none() || buf.len() >= WRITE_BUFFER) {
                if let Some((job, n)) = in_flight.take() {
                    let (b, h) = settle(job, n, &mut written, &state, bars, &what).await?;
                    free_hasher = Some(h);
                    spare = Some(b);
                }
                let mut h = free_hasher.take().ok_or_else(|| RegistryError::Protocol {
                    what: what.clone(),
                    detail: "internal: hasher in use".into(),
                })?;
                let mut data = std::mem::replace(
                    &mut buf,
                    spare
                        .take()
                        .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER)),
                );
                let n = data.len() as u64;
                let (f, offset) = (file.clone(), slot.data_offset + written);
                let job = tokio::task::spawn_blocking(move || {
                    h.update(&data);
                    let r = f.write_all_at(&data, offset);
                    data.clear();
                    (data, h, r)
                });
                in_flight = Some((job, n));
            }
            if chunk.is_none() {
                break;
            }
        }
        if let Some((job, n)) = in_flight.take() {
            free_hasher = Some(settle(job, n, &mut written, &state, bars, &what).await?.1);
        }
        let hasher = free_hasher.ok_or_else(|| RegistryError::Protocol {
            what: what.clone(),
            detail: "internal: hasher in use".into(),
        })?;
        if let Some(e) = cut {
            return Err(e);
        }
        if written < slot.size {
            return Err(RegistryError::Incomplete {
                what: what.clone(),
                got: written,
                expected: slot.size,
            });
        }
        let actual = hasher.clone().finish();
        if &actual != digest {
            bars.iter().for_each(|b| b.dec(written));
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.written = 0;
            s.hasher = Hasher::new();
            return Err(RegistryError::DigestMismatch {
                what: what.clone(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    })
    .await
}
