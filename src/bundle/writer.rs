//! Writes a bundle's data files: each preallocated to its planned size with every tar
//! header in place, blobs written at their offsets by concurrent downloads, a journal
//! of finished blobs so that an interrupted save resumes, and the meta last.

use super::layout::{self, FileLayout};
use super::meta::Meta;
use crate::digest::{Digest, Hasher};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {}", crate::i18n::io_error(.source))]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Meta(#[from] super::meta::MetaError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where one blob goes.
#[derive(Clone, Debug)]
pub struct Slot {
    pub file: usize,
    pub data_offset: u64,
    pub size: u64,
}

pub struct BundleWriter {
    dir: PathBuf,
    name: String,
    files: Vec<DataFileWriter>,
    slots: HashMap<Digest, Slot>,
    journal: Mutex<File>,
    journal_path: PathBuf,
    resumed: HashSet<Digest>,
    /// The mtime of every tar entry (so the headers' digest can be computed).
    mtime: u64,
    /// Blobs an interrupted run had begun: the bytes of their slot already written.
    partial: HashMap<Digest, u64>,
    /// The files are those of an interrupted run of the same save.
    resuming: bool,
}

struct DataFileWriter {
    partial: PathBuf,
    final_path: PathBuf,
    file: Arc<File>,
    layout: FileLayout,
}

/// The journal: a first line saying what the partial files were laid out for, then
/// one line per blob complete (`sha256:<hex>`) and, now and then while a blob is
/// written, how far it got (`sha256:<hex> <bytes>`), so that a save killed in the
/// middle of a large blob resumes it after those bytes.
///
/// The journal's first line: what the partial files were laid out for.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct JournalHeader {
    fingerprint: String,
    layout: String,
}

pub fn data_file_name(name: &str, index: usize) -> String {
    format!("{name}_{}.tar", index + 1)
}

pub fn meta_file_name(name: &str) -> String {
    format!("{name}_meta.yaml")
}

pub fn journal_file_name(name: &str) -> String {
    format!("{name}.journal")
}

/// A stable hash of a layout, so a resumed save can tell whether the partial files
/// were laid out for the same blobs.
fn layout_hash(layouts: &[FileLayout]) -> String {
    let mut h = Hasher::new();
    for (i, l) in layouts.iter().enumerate() {
        h.update(format!("file {i} {}\n", l.size).as_bytes());
        for e in &l.entries {
            h.update(format!("{} {} {}\n", e.digest, e.size, e.header_offset).as_bytes());
        }
    }
    h.finish().to_string()
}

/// The fingerprint recorded by an unfinished bundle in `dir` named `name`, if any.
pub fn journal_fingerprint(dir: &Path, name: &str) -> Option<String> {
    let f = File::open(dir.join(journal_file_name(name))).ok()?;
    let mut first = String::new();
    BufReader::new(f).read_line(&mut first).ok()?;
    serde_json::from_str::<JournalHeader>(&first)
        .ok()
        .map(|h| h.fingerprint)
}

impl BundleWriter {
    /// Opens the data files of bundle `name` in `dir`. When a journal for the same
    /// fingerprint and layout is there, the blobs it lists are kept (after re-hashing
    /// them); otherwise the files are created anew.
    pub fn create(
        dir: &Path,
        name: &str,
        mut journal: File,
        layouts: Vec<FileLayout>,
        fingerprint: &str,
        mtime: u64,
        compress: bool,
    ) -> Result<BundleWriter, WriteError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let header = JournalHeader {
            fingerprint: fingerprint.to_string(),
            layout: layout_hash(&layouts),
        };
        let journal_path = dir.join(journal_file_name(name));
        let previous = read_journal(&mut journal);
        let resume = matches!(&previous, Some(j) if j.header == header);
        let mut files = Vec::new();
        let mut slots = HashMap::new();
        for (i, layout) in layouts.into_iter().enumerate() {
            let file_name = data_file_name(name, i);
            let partial = dir.join(format!("{file_name}.partial"));
            let file = if resume {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&partial)
                    .map_err(io_err(&partial))?;
                if f.metadata().map_err(io_err(&partial))?.len() != layout.size {
                    f.set_len(layout.size).map_err(io_err(&partial))?;
                }
                f
            } else {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&partial)
                    .map_err(io_err(&partial))?;
                f.set_len(layout.size).map_err(io_err(&partial))?;
                f
            };
            for e in &layout.entries {
                let h = layout::header(&e.digest, e.size, mtime).map_err(io_err(&partial))?;
                file.write_all_at(&h, e.header_offset)
                    .map_err(io_err(&partial))?;
                slots.insert(
                    e.digest.clone(),
                    Slot {
                        file: i,
                        data_offset: e.data_offset(),
                        size: e.size,
                    },
                );
            }
            files.push(DataFileWriter {
                final_path: dir.join(if compress {
                    format!("{file_name}.zst")
                } else {
                    file_name.clone()
                }),
                partial,
                file: Arc::new(file),
                layout,
            });
        }
        let mut resumed = HashSet::new();
        let mut partial = HashMap::new();
        if let (true, Some(previous)) = (resume, previous) {
            for d in previous.done {
                if let Some(slot) = slots.get(&d) {
                    if rehash(&files[slot.file].file, slot).ok() == Some(d.clone()) {
                        resumed.insert(d);
                    }
                }
            }
            for (d, n) in previous.partial {
                if slots.get(&d).is_some_and(|s| n <= s.size) && !resumed.contains(&d) {
                    partial.insert(d, n);
                }
            }
        }
        journal.set_len(0).map_err(io_err(&journal_path))?;
        journal
            .seek(std::io::SeekFrom::Start(0))
            .map_err(io_err(&journal_path))?;
        let mut text = serde_json::to_string(&header).unwrap_or_default();
        text.push('\n');
        for d in &resumed {
            text.push_str(d.as_str());
            text.push('\n');
        }
        for (d, n) in &partial {
            text.push_str(&format!("{d} {n}\n"));
        }
        journal
            .write_all(text.as_bytes())
            .map_err(io_err(&journal_path))?;
        Ok(BundleWriter {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            files,
            slots,
            journal: Mutex::new(journal),
            journal_path,
            resumed,
            mtime,
            partial,
            resuming: resume,
        })
    }

    /// Blobs already complete from an interrupted run of the same save.
    pub fn resumed(&self) -> &HashSet<Digest> {
        &self.resumed
    }

    /// Whether the files are those of an interrupted run of the same save.
    pub fn resuming(&self) -> bool {
        self.resuming
    }

    /// Bytes of `digest` an interrupted run had written into its slot (unchecked:
    /// the caller hashes them before going on), 0 when none.
    pub fn partial(&self, digest: &Digest) -> u64 {
        self.partial.get(digest).copied().unwrap_or(0)
    }

    /// How many blobs an interrupted run had begun without finishing.
    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }

    /// Records that the first `bytes` of `digest` are in its slot (written before
    /// this is called), so that a run killed now resumes the blob after them.
    pub fn note_partial(&self, digest: &Digest, bytes: u64) -> Result<(), WriteError> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.write_all(format!("{digest} {bytes}\n").as_bytes())
            .map_err(io_err(&self.journal_path))
    }

    pub fn slot(&self, digest: &Digest) -> Option<Slot> {
        self.slots.get(digest).cloned()
    }

    pub fn file_handle(&self, index: usize) -> Arc<File> {
        self.files[index].file.clone()
    }

    pub fn partial_path(&self, index: usize) -> &Path {
        &self.files[index].partial
    }

    /// Records a blob as complete, once its bytes are written and verified.
    pub fn mark_done(&self, digest: &Digest) -> Result<(), WriteError> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.write_all(format!("{digest}\n").as_bytes())
            .map_err(io_err(&self.journal_path))
    }

    /// Writes a small blob (a manifest) held in memory.
    pub fn write_small(&self, digest: &Digest, bytes: &[u8]) -> Result<(), WriteError> {
        let Some(slot) = self.slot(digest) else {
            return Ok(());
        };
        let f = &self.files[slot.file];
        f.file
            .write_all_at(bytes, slot.data_offset)
            .map_err(io_err(&f.partial))?;
        self.mark_done(digest)
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Names, sizes and entry counts of the data files, in order.
    pub fn file_names(&self) -> Vec<(String, usize)> {
        self.files
            .iter()
            .map(|f| {
                (
                    f.final_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    f.layout.entries.len(),
                )
            })
            .collect()
    }

    /// Makes every data file durable (one fsync per file, all files at once; with
    /// zstd, compressed first and hashed as the compressed bytes are written),
    /// renames them to their final names, then writes the meta atomically and
    /// removes the journal. No byte is read back to be hashed: a plain file is
    /// recorded by its headers' digest, computed from the layout (see
    /// [`super::meta::DataFile`]). `fill_meta` gets the finished files in order
    /// and the zstd frame offset of each blob.
    pub fn finish(
        self,
        fill_meta: impl FnOnce(&[FinishedFile], &HashMap<Digest, u64>) -> Meta,
    ) -> Result<PathBuf, WriteError> {
        let offsets: Mutex<HashMap<Digest, u64>> = Mutex::new(HashMap::new());
        let mtime = self.mtime;
        let finished: Vec<Result<FinishedFile, WriteError>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .files
                .iter()
                .map(|f| {
                    let offsets = &offsets;
                    s.spawn(move || f.finish(mtime, offsets))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(WriteError::Io {
                            path: crate::tr!("data file", "数据文件"),
                            source: std::io::Error::other("finishing thread panicked"),
                        })
                    })
                })
                .collect()
        });
        let finished: Vec<FinishedFile> = finished.into_iter().collect::<Result<_, _>>()?;
        for f in &self.files {
            if super::compress::is_compressed(&f.final_path.to_string_lossy()) {
                let zst = f.final_path.with_extension("zst.partial");
                std::fs::rename(&zst, &f.final_path).map_err(io_err(&zst))?;
                let _ = std::fs::remove_file(&f.partial);
            } else {
                std::fs::rename(&f.partial, &f.final_path).map_err(io_err(&f.partial))?;
            }
        }
        let offsets = offsets.into_inner().unwrap_or_else(|p| p.into_inner());
        let meta = fill_meta(&finished, &offsets);
        let meta_path = self.dir.join(meta_file_name(&self.name));
        write_atomically(&meta_path, meta.to_yaml()?.as_bytes())?;
        let _ = std::fs::remove_file(&self.journal_path);
        Ok(meta_path)
    }
}

/// A data file as the writer finished it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedFile {
    /// Its final name (`..._1.tar` or `..._1.tar.zst`).
    pub name: String,
    pub size: u64,
    pub blobs: u64,
    /// sha256 (hex) of the whole file: zstd files, hashed as they were written.
    pub sha256: Option<String>,
    /// sha256 (hex) of the tar headers: plain files.
    pub headers_sha256: Option<String>,
}

impl DataFileWriter {
    fn name(&self) -> String {
        self.final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Makes the file durable; a zstd file is compressed first, its frame offsets
    /// added to `offsets`.
    fn finish(
        &self,
        mtime: u64,
        offsets: &Mutex<HashMap<Digest, u64>>,
    ) -> Result<FinishedFile, WriteError> {
        let (name, blobs) = (self.name(), self.layout.entries.len() as u64);
        if !super::compress::is_compressed(&name) {
            let headers =
                layout::headers_digest(&self.layout, mtime).map_err(io_err(&self.partial))?;
            self.file.sync_all().map_err(io_err(&self.partial))?;
            return Ok(FinishedFile {
                name,
                size: self.layout.size,
                blobs,
                sha256: None,
                headers_sha256: Some(headers.hex().to_string()),
            });
        }
        // The plain tar is only read from here on, and then removed.
        let zst = self.final_path.with_extension("zst.partial");
        let written =
            super::compress::compress_tar(&self.file, &self.layout, &zst).map_err(io_err(&zst))?;
        offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(written.offsets);
        Ok(FinishedFile {
            name,
            size: written.size,
            blobs,
            sha256: Some(written.sha256.hex().to_string()),
            headers_sha256: None,
        })
    }
}

impl BundleWriter {
    /// Gives the bundle up: its partial data files and journal are removed, and its
    /// dated folder too when nothing else is in it. For a save in which every image
    /// failed, which writes no bundle.
    pub fn abandon(self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.partial);
        }
        let _ = std::fs::remove_file(&self.journal_path);
        // Fails (and is meant to) when the folder holds other bundles.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes `path` via a temporary file, fsync and rename, so a reader never sees a
/// half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = path.with_extension("yaml.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// What a journal says: its header, the blobs complete, and how far each blob
/// begun got (the last note of each).
struct Journal {
    header: JournalHeader,
    done: Vec<Digest>,
    partial: HashMap<Digest, u64>,
}

fn read_journal(journal: &mut File) -> Option<Journal> {
    journal.seek(std::io::SeekFrom::Start(0)).ok()?;
    let mut lines = BufReader::new(journal).lines();
    let header: JournalHeader = serde_json::from_str(&lines.next()?.ok()?).ok()?;
    let mut done = Vec::new();
    let mut partial = HashMap::new();
    for line in lines.map_while(Result::ok) {
        match line.trim().split_once(' ') {
            None => done.extend(line.trim().parse::<Digest>().ok()),
            Some((d, n)) => {
                if let (Ok(d), Ok(n)) = (d.parse::<Digest>(), n.parse::<u64>()) {
                    partial.insert(d, n);
                }
            }
        }
    }
    Some(Journal {
        header,
        done,
        partial,
    })
}

fn rehash(file: &File, slot: &Slot) -> std::io::Result<Digest> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = slot.data_offset;
    let end = slot.data_offset + slot.size;
    while pos < end {
        let n = ((end - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        h.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(h.finish())
}

/// Size and sha256 (hex) of a whole file.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let len = h.len();
    Ok((len, h.finish().hex().to_string()))
}

impl BundleWriter {
    /// Drops every blob not in `keep` (those only failed images needed), rewriting
    /// the affected data files without them so no hole is left in a tar.
    pub fn retain(&mut self, keep: &HashSet<Digest>, mtime: u64) -> Result<(), WriteError> {
        for i in 0..self.files.len() {
            let f = &self.files[i];
            if f.layout.entries.iter().all(|e| keep.contains(&e.digest)) {
                continue;
            }
            let kept: Vec<(Digest, u64)> = f
                .layout
                .entries
                .iter()
                .filter(|e| keep.contains(&e.digest))
                .map(|e| (e.digest.clone(), e.size))
                .collect();
            let mut new_layout = layout::plan(&kept, 1)
                .map_err(|e| WriteError::Io {
                    path: f.partial.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .pop()
                .unwrap_or_default();
            // Keep the original order so the rewrite reads the old file sequentially.
            new_layout
                .entries
                .sort_by_key(|e| f.layout.entries.iter().position(|o| o.digest == e.digest));
            let mut offset = 0;
            for e in &mut new_layout.entries {
                e.header_offset = offset;
                offset = offset.saturating_add(layout::entry_span(e.size).unwrap_or(u64::MAX));
            }
            let tmp = f.partial.with_extension("compact");
            let _cleanup = RemoveOnDrop(tmp.clone());
            let out = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            out.set_len(new_layout.size).map_err(io_err(&tmp))?;
            let mut buf = vec![0u8; 1 << 20];
            for e in &new_layout.entries {
                let old = self
                    .slots
                    .get(&e.digest)
                    .cloned()
                    .ok_or_else(|| WriteError::Io {
                        path: tmp.display().to_string(),
                        source: std::io::Error::other("blob without a slot"),
                    })?;
                out.write_all_at(
                    &layout::header(&e.digest, e.size, mtime).map_err(io_err(&tmp))?,
                    e.header_offset,
                )
                .map_err(io_err(&tmp))?;
                let mut done = 0;
                while done < e.size {
                    let n = ((e.size - done) as usize).min(buf.len());
                    f.file
                        .read_exact_at(&mut buf[..n], old.data_offset + done)
                        .map_err(io_err(&f.partial))?;
                    out.write_all_at(&buf[..n], e.data_offset() + done)
                        .map_err(io_err(&tmp))?;
                    done += n as u64;
                }
            }
            std::fs::rename(&tmp, &f.partial).map_err(io_err(&tmp))?;
            for e in &new_layout.entries {
                self.slots.insert(
                    e.digest.clone(),
                    Slot {
                        file: i,
                        data_offset: e.data_offset(),
                        size: e.size,
                    },
                );
            }
            for e in &f.layout.entries {
                if !keep.contains(&e.digest) {
                    self.slots.remove(&e.digest);
                }
            }
            let f = &mut self.files[i];
            f.file = Arc::new(out);
            f.layout = new_layout;
        }
        Ok(())
    }
}

/// Removes a temporary file when dropped, unless it was renamed away.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
