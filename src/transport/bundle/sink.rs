//! [`BundleSink`]: a bundle being written, as an [`ImageSink`]. The copy engine
//! hands it blobs and manifests like any other sink. Its data files are laid out
//! from the plan before the first byte (N files of about equal size, every tar
//! header in place), each blob is streamed into its own slot, and a journal of
//! what is complete lets an interrupted save resume. `finish` drops what only the
//! failed images needed and writes the meta last.

use super::fill::{fill, FillError, FillRun, SlotTarget};
use crate::bundle::layout::FileLayout;
use crate::bundle::plan::{BundlePlan, MetaDraft};
use crate::bundle::writer::{BundleWriter, WriteError};
use crate::digest::Digest;
use crate::engine::cache::BlobCache;
use crate::engine::report::Reporter;
use crate::engine::retry::RetryPolicy;
use crate::manifest::RawManifest;
use crate::transport::{BlobRef, ImageSink, ProgressWords, Result, SharedSource, TransportError};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio_util::sync::CancellationToken;

/// Where the bundle's files go and how they are laid out.
pub struct BundleFiles {
    pub dir: PathBuf,
    pub name: String,
    /// The claimed (locked) journal of the bundle's name.
    pub journal: File,
    pub layouts: Vec<FileLayout>,
    /// Identifies the save, so a rerun of the same one resumes its files.
    pub fingerprint: String,
    /// The mtime of every tar entry.
    pub mtime: u64,
    /// Write `.tar.zst` data files.
    pub compress: bool,
}

/// How the sink works besides its files.
#[derive(Clone)]
pub struct SinkOptions {
    /// A local blob cache filled with every blob fetched.
    pub cache: Option<BlobCache>,
    /// Tries for a blob stream cut short (the request itself retries in its source).
    pub retry: RetryPolicy,
    pub cancel: CancellationToken,
    pub reporter: Reporter,
}

/// How the bundle ended.
#[derive(Debug)]
pub enum Finished {
    /// The meta is written; the images that failed (with why) are not in it.
    Written {
        meta: PathBuf,
        failed: BTreeMap<usize, String>,
    },
    /// Every image failed: no bundle was written.
    NothingSaved { failed: BTreeMap<usize, String> },
}

#[derive(Default)]
struct State {
    /// Blobs and manifests complete in the data files (resumed ones too).
    stored: HashSet<Digest>,
    /// Manifests written, with the repository they were written for.
    written: HashSet<(String, Digest)>,
    /// Why a blob could not be had for a repository.
    errors: HashMap<(Digest, String), String>,
    /// A write that failed: the save stops, and its partial files stay for a rerun.
    broken: Option<String>,
    finished: Option<Finished>,
}

/// A blob's place in the data files, as `put_blob` uses it.
struct SlotInfo {
    slot: crate::bundle::writer::Slot,
    file: Arc<File>,
    /// Bytes an interrupted run had written into the slot.
    begun: u64,
    bar: Option<ProgressBar>,
}

/// How often (in bytes) the journal notes how far a blob has got: a save killed
/// mid-blob fetches at most this much of it again.
const NOTE_EVERY: u64 = 8 << 20;

/// Progress of the images and the data files, set up by `prepare`.
struct Progress {
    /// Per image, the blobs it still waits for.
    pending: Vec<AtomicUsize>,
    images_bar: ProgressBar,
    file_bars: Vec<ProgressBar>,
}

pub struct BundleSink {
    plan: Arc<BundlePlan>,
    draft: Arc<MetaDraft>,
    /// Taken by `prepare`, which creates (or resumes) the data files.
    files: Mutex<Option<BundleFiles>>,
    /// Where the bundle is, for messages.
    place: (PathBuf, String),
    mtime: u64,
    writer: RwLock<Option<BundleWriter>>,
    opts: SinkOptions,
    state: Mutex<State>,
    progress: OnceLock<Progress>,
}

impl BundleSink {
    pub fn new(
        plan: Arc<BundlePlan>,
        draft: MetaDraft,
        files: BundleFiles,
        opts: SinkOptions,
    ) -> BundleSink {
        BundleSink {
            plan,
            draft: Arc::new(draft),
            place: (files.dir.clone(), files.name.clone()),
            mtime: files.mtime,
            files: Mutex::new(Some(files)),
            writer: RwLock::new(None),
            opts,
            state: Mutex::new(State::default()),
            progress: OnceLock::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How the bundle ended, once `finish` has run.
    pub fn finished(&self) -> Option<Finished> {
        self.state().finished.take()
    }

    /// Why writing the data files failed, if it did (disk full, I/O error).
    pub fn broken(&self) -> Option<String> {
        self.state().broken.clone()
    }

    /// Clears the progress bars (the run is over, or stopped).
    pub fn close_bars(&self) {
        if let Some(p) = self.progress.get() {
            p.images_bar.finish_and_clear();
            p.file_bars.iter().for_each(ProgressBar::finish_and_clear);
        }
    }

    fn break_with(&self, why: String) {
        self.state().broken.get_or_insert(why);
    }

    fn write_failed(&self, what: String, e: WriteError) -> TransportError {
        let error = TransportError::Invalid {
            endpoint: what,
            reason: e.to_string(),
        };
        self.break_with(error.to_string());
        error
    }

    /// Creates the data files (or reopens those of the interrupted run of the same
    /// save, keeping the blobs its journal lists once they hash right).
    async fn open_files(&self) -> Result<Vec<String>> {
        let Some(files) = self.files.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(Vec::new());
        };
        let dir = files.dir.clone();
        let created = tokio::task::spawn_blocking(move || {
            BundleWriter::create(
                &files.dir,
                &files.name,
                files.journal,
                files.layouts,
                &files.fingerprint,
                files.mtime,
                files.compress,
            )
        })
        .await
        .map_err(|e| TransportError::io(self.describe(), std::io::Error::other(e.to_string())))?;
        let writer = created.map_err(|e| {
            self.write_failed(
                crate::tr!(
                    "cannot create the data files in {}",
                    "无法在 {} 中创建数据文件",
                    dir.display()
                ),
                e,
            )
        })?;
        let mut notes = Vec::new();
        if writer.resuming() {
            let (n, begun) = (writer.resumed().len(), writer.partial_count());
            let blobs = crate::i18n::plural(n as u64, "blob", "blobs");
            notes.push(if begun > 0 {
                crate::tr!(
                    "resuming {}: {blobs} already saved, {begun} begun",
                    "继续未完成的 {}: 已保存 {n} 个数据块, {begun} 个已开始",
                    self.place.1
                )
            } else {
                crate::tr!(
                    "resuming {}: {blobs} already saved",
                    "继续未完成的 {}: 已保存 {n} 个数据块",
                    self.place.1
                )
            });
        }
        self.state().stored.extend(writer.resumed().iter().cloned());
        self.start_progress(&writer);
        *self.writer.write().unwrap_or_else(|p| p.into_inner()) = Some(writer);
        Ok(notes)
    }

    /// The bars of the images and the data files; images with nothing left to
    /// fetch are saved already.
    fn start_progress(&self, writer: &BundleWriter) {
        let stored = self.state().stored.clone();
        let reporter = &self.opts.reporter;
        let mut per_file = vec![0u64; writer.file_count()];
        for (d, b) in &self.plan.blobs {
            if b.kind == crate::bundle::meta::BlobKind::Manifest || stored.contains(d) {
                continue;
            }
            if let Some(n) = writer.slot(d).and_then(|s| per_file.get_mut(s.file)) {
                *n = n.saturating_add(b.size);
            }
        }
        let file_bars = if per_file.len() <= 8 {
            per_file
                .iter()
                .enumerate()
                .map(|(i, n)| reporter.part_bar(*n, &crate::tr!("file {}", "文件 {}", i + 1)))
                .collect()
        } else {
            Vec::new()
        };
        let images = &self.plan.images;
        let images_bar = reporter.count_bar(images.len() as u64, crate::i18n::t("images", "镜像"));
        let pending: Vec<AtomicUsize> = (0..images.len())
            .map(|i| {
                AtomicUsize::new(
                    self.plan
                        .fetched_by(i)
                        .filter(|d| !stored.contains(*d))
                        .count(),
                )
            })
            .collect();
        for (p, img) in pending.iter().zip(images) {
            if p.load(Ordering::Relaxed) == 0 {
                images_bar.inc(1);
                reporter.image_saved(&img.record.reference);
            }
        }
        let _ = self.progress.set(Progress {
            pending,
            images_bar,
            file_bars,
        });
    }

    /// A blob is complete: images that waited only for it are saved.
    fn blob_done(&self, digest: &Digest, size: u64) {
        let reporter = &self.opts.reporter;
        let size = indicatif::HumanBytes(size);
        reporter.debug(&crate::tr!(
            "blob {digest} saved ({size})",
            "数据块 {digest} 已保存 ({size})"
        ));
        let (Some(progress), Some(planned)) = (self.progress.get(), self.plan.blobs.get(digest))
        else {
            return;
        };
        for &i in &planned.images {
            let Some(left) = progress.pending.get(i) else {
                continue;
            };
            let before =
                left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            if before != Ok(1) {
                continue;
            }
            progress.images_bar.inc(1);
            if let Some(img) = self.plan.images.get(i) {
                let name = &img.record.reference;
                reporter.image_saved(name);
                reporter.debug(&crate::tr!(
                    "{name}: every blob saved",
                    "{name}: 所有数据块已保存"
                ));
            }
        }
    }

    /// Where a blob goes: its slot and data file, the bytes an interrupted run
    /// left in it, and the bar of that file.
    fn slot_of(&self, digest: &Digest) -> Option<SlotInfo> {
        let guard = self.writer.read().unwrap_or_else(|p| p.into_inner());
        let writer = guard.as_ref()?;
        let slot = writer.slot(digest)?;
        let file = writer.file_handle(slot.file);
        let bar = self
            .progress
            .get()
            .and_then(|p| p.file_bars.get(slot.file).cloned());
        Some(SlotInfo {
            begun: writer.partial(digest),
            slot,
            file,
            bar,
        })
    }

    /// Journals how far a blob has got, every [`NOTE_EVERY`] bytes (and a restart).
    fn note_progress(&self, digest: &Digest, at: u64, noted: &AtomicU64) {
        let last = noted.load(Ordering::Relaxed);
        if at >= last && at - last < NOTE_EVERY {
            return;
        }
        noted.store(at, Ordering::Relaxed);
        let guard = self.writer.read().unwrap_or_else(|p| p.into_inner());
        if let Some(Err(e)) = guard.as_ref().map(|w| w.note_partial(digest, at)) {
            drop(guard);
            self.write_failed(
                crate::tr!("the journal of {}", "{} 的日志", self.place.1),
                e,
            );
        }
    }

    /// Records a blob or manifest as complete in the journal.
    fn journal_done(&self, digest: &Digest) -> Result<()> {
        let guard = self.writer.read().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = guard.as_ref() else {
            return Ok(());
        };
        writer.mark_done(digest).map_err(|e| {
            self.write_failed(
                crate::tr!("the journal of {}", "{} 的日志", self.place.1),
                e,
            )
        })
    }

    /// Stores a freshly fetched blob in the local cache too.
    async fn fill_cache(&self, digest: &Digest, size: u64, file: Arc<File>, offset: u64) {
        let Some(cache) = self.opts.cache.clone() else {
            return;
        };
        let d = digest.clone();
        let stored =
            tokio::task::spawn_blocking(move || cache.store_from(&d, size, &file, offset)).await;
        if let Ok(Err(e)) = stored {
            self.opts.reporter.warn(&crate::tr!(
                "cannot store {digest} in the cache: {e}",
                "无法将 {digest} 存入缓存: {e}"
            ));
        }
    }

    /// Reconcile and finish: the images that failed, the data files rewritten
    /// without what only they needed, the meta written last.
    async fn write_meta(&self) -> Result<Finished> {
        let writer = self
            .writer
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| TransportError::Invalid {
                endpoint: self.describe(),
                reason: crate::i18n::t("nothing was laid out", "没有布局任何内容").into(),
            })?;
        let failed = {
            let state = self.state();
            self.plan.failed_images(&state.written, &state.errors)
        };
        if self.plan.saved_images(&failed) == 0 {
            tokio::task::spawn_blocking(move || writer.abandon())
                .await
                .map_err(|e| {
                    TransportError::io(self.describe(), std::io::Error::other(e.to_string()))
                })?;
            return Ok(Finished::NothingSaved { failed });
        }
        let (plan, draft, mtime) = (self.plan.clone(), self.draft.clone(), self.mtime);
        let failures = failed.clone();
        let done =
            tokio::task::spawn_blocking(move || complete(writer, &plan, &draft, &failures, mtime))
                .await
                .map_err(|e| {
                    TransportError::io(self.describe(), std::io::Error::other(e.to_string()))
                })?;
        let meta = done.map_err(|e| {
            self.write_failed(crate::tr!("cannot finish the bundle", "无法完成镜像包"), e)
        })?;
        Ok(Finished::Written { meta, failed })
    }
}

/// Drops the blobs that only failed images needed, then finishes the data files and
/// writes the meta.
fn complete(
    mut writer: BundleWriter,
    plan: &BundlePlan,
    draft: &MetaDraft,
    failed: &BTreeMap<usize, String>,
    mtime: u64,
) -> std::result::Result<PathBuf, WriteError> {
    if !failed.is_empty() {
        writer.retain(&plan.keep(failed), mtime)?;
    }
    let names = writer.file_names();
    let file_of: HashMap<Digest, String> = plan
        .blobs
        .keys()
        .filter_map(|d| {
            let slot = writer.slot(d)?;
            Some((d.clone(), names.get(slot.file)?.0.clone()))
        })
        .collect();
    writer.finish(|files, offsets| {
        plan.meta(draft, failed, files, &|d| file_of.get(d).cloned(), offsets)
    })
}

#[async_trait::async_trait]
impl ImageSink for BundleSink {
    fn describe(&self) -> String {
        format!("bundle:{}", self.place.0.join(&self.place.1).display())
    }

    fn progress_words(&self) -> ProgressWords {
        ProgressWords {
            bar: crate::i18n::t("save", "保存"),
            blob_done: crate::i18n::t("saved", "已保存"),
        }
    }

    /// Lays the data files out (or resumes those of the same save).
    async fn prepare(&self, _repositories: &[String]) -> Result<Vec<String>> {
        self.open_files().await
    }

    /// A blob is there once it is complete in the data files, or a base bundle
    /// carried it.
    async fn has_blob(&self, _repository: &str, blob: &BlobRef) -> Result<bool> {
        let left_to_base = self
            .plan
            .blobs
            .get(&blob.digest)
            .is_some_and(|b| b.base.is_some());
        Ok(left_to_base || self.state().stored.contains(&blob.digest))
    }

    async fn put_blob(
        &self,
        repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64> {
        let digest = &blob.digest;
        let Some(SlotInfo {
            slot,
            file,
            begun,
            bar,
        }) = self.slot_of(digest)
        else {
            return Err(TransportError::Invalid {
                endpoint: self.describe(),
                reason: crate::tr!(
                    "blob {digest} is not in the bundle's layout",
                    "数据块 {digest} 不在镜像包的布局中"
                ),
            });
        };
        let target = SlotTarget {
            file: file.clone(),
            slot: slot.clone(),
            digest,
            what: crate::tr!(
                "blob {digest} in {}/{source_repository}",
                "{}/{source_repository} 中的数据块 {digest}",
                source.describe()
            ),
        };
        let (shown, noted) = (AtomicU64::new(0), AtomicU64::new(begun));
        let written = |at: u64| {
            let before = shown.swap(at, Ordering::Relaxed);
            if let Some(bar) = &bar {
                if at >= before {
                    bar.inc(at - before);
                } else {
                    bar.dec(before - at);
                }
            }
            self.note_progress(digest, at, &noted);
        };
        let reporter = self.opts.reporter.clone();
        let on_retry = move |e: &crate::registry::RegistryError, d| reporter.retrying(e, d);
        let run = FillRun {
            retry: self.opts.retry,
            cancel: &self.opts.cancel,
            on_retry: &on_retry,
            on_written: &written,
            on_restart: &|_| written(0),
        };
        let filled = fill(
            source.as_ref(),
            source_repository,
            blob,
            &target,
            begun,
            &run,
        )
        .await;
        let error = match filled {
            Ok(()) => None,
            Err(FillError::Source(e)) => Some(e),
            Err(FillError::Write(e)) => {
                self.break_with(e.to_string());
                Some(e)
            }
        };
        if let Some(e) = error {
            self.state()
                .errors
                .insert((digest.clone(), repository.to_string()), e.to_string());
            return Err(e);
        }
        self.fill_cache(digest, slot.size, file, slot.data_offset)
            .await;
        self.journal_done(digest)?;
        self.state().stored.insert(digest.clone());
        self.blob_done(digest, slot.size);
        Ok(slot.size)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        _tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let digest = &manifest.digest;
        if !self.state().stored.contains(digest) {
            let written = {
                let guard = self.writer.read().unwrap_or_else(|p| p.into_inner());
                match guard.as_ref() {
                    Some(w) => w.write_small(digest, &manifest.bytes),
                    None => Ok(()),
                }
            };
            written.map_err(|e| {
                self.write_failed(
                    crate::tr!(
                        "cannot write a manifest into the bundle",
                        "无法将清单写入镜像包"
                    ),
                    e,
                )
            })?;
            self.state().stored.insert(digest.clone());
        }
        self.state()
            .written
            .insert((repository.to_string(), digest.clone()));
        Ok(())
    }

    /// Reconciles (the failed images and what only they needed leave the data
    /// files) and writes the meta; writes nothing when every image failed, and
    /// nothing either after a failed write (the partial files stay for a rerun).
    async fn finish(&self) -> Result<()> {
        self.close_bars();
        if let Some(why) = self.broken() {
            return Err(TransportError::Invalid {
                endpoint: self.describe(),
                reason: why,
            });
        }
        let finished = self.write_meta().await?;
        let nothing = matches!(finished, Finished::NothingSaved { .. });
        self.state().finished = Some(finished);
        if nothing {
            return Err(TransportError::Invalid {
                endpoint: self.describe(),
                reason: crate::i18n::t("no image could be saved", "没有任何镜像保存成功").into(),
            });
        }
        Ok(())
    }
}
