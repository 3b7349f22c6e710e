//! Opens a bundle by its meta, verifies its data files, and locates each blob inside
//! them so that upload can stream it straight out of the tar file.

use super::layout;
use super::meta::{Meta, MetaError};
use crate::digest::{Digest, Hasher};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyLevel {
    /// Files present with their recorded sizes, tar headers matching the meta.
    Size,
    /// Also the sha256 of every data file (each byte hashed once): a file whose
    /// digest matches the meta holds exactly the entries that were verified when
    /// it was written. (Upload checks `Size` first and each blob as it streams out,
    /// so that no byte is read twice.)
    File,
    /// Also every entry against the digest in its name (`ferry verify`).
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Meta(#[from] MetaError),
    #[error("{}", crate::tr!("data file {} is missing", "数据文件 {} 缺失", .file))]
    MissingFile { file: String },
    #[error("{}", crate::tr!("data file {} is not a regular file (a FIFO, device or folder)", "数据文件 {} 不是普通文件 (而是 FIFO、设备或目录)", .file))]
    NotRegular { file: String },
    #[error("{}", crate::tr!("data file {} has {} bytes, the meta records {} (truncated or altered)", "数据文件 {} 有 {} 字节, 元数据记录为 {} (被截断或已修改)", .file, .actual, .expected))]
    FileSize {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("{}", crate::tr!("data file {} has sha256 {}, the meta records {} (altered, or from another bundle)", "数据文件 {} 的 sha256 为 {}, 元数据记录为 {} (已被修改, 或来自另一个镜像包)", .file, .actual, .expected))]
    FileDigest {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{}", crate::tr!("data file {}: its tar headers have sha256 {}, the meta records {} (altered, or from another bundle)", "数据文件 {}: 其 tar 头部的 sha256 为 {}, 元数据记录为 {} (已被修改, 或来自另一个镜像包)", .file, .actual, .expected))]
    HeadersDigest {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{}", crate::tr!("data file {}: entry {} holds bytes with digest {} (corrupt)", "数据文件 {}: 条目 {} 的内容摘要为 {} (已损坏)", .file, .entry, .actual))]
    EntryDigest {
        file: String,
        entry: String,
        actual: Digest,
    },
    #[error("{}", crate::tr!("data file {}: entry {:?} is not a blobs/sha256/<hex> entry", "数据文件 {}: 条目 {:?} 不是 blobs/sha256/<hex> 形式", .file, .entry))]
    BadEntry { file: String, entry: String },
    #[error("{}", crate::tr!("data file {}: malformed tar at offset {}: {}", "数据文件 {}: 偏移 {} 处的 tar 格式错误: {}", .file, .offset, .detail))]
    BadTar {
        file: String,
        offset: u64,
        detail: String,
    },
    #[error("{}", crate::tr!("data file {} lacks blob {} that the meta places there", "数据文件 {} 缺少元数据记录的数据块 {}", .file, .digest))]
    MissingBlob { file: String, digest: Digest },
    #[error("{}", crate::tr!("data file {} holds {}, which the meta does not place there (data file from another bundle?)", "数据文件 {} 含有元数据未记录的 {} (来自另一个镜像包?)", .file, .digest))]
    UnexpectedBlob { file: String, digest: Digest },
    #[error("{}", crate::tr!("image {}: its manifest {} is in no data file of the bundle", "镜像 {}: 其清单 {} 不在镜像包的任何数据文件中", .image, .digest))]
    MissingManifest { image: String, digest: Digest },
    #[error("{}", crate::tr!("data file {}: blob {} has {} bytes, the meta records {}", "数据文件 {}: 数据块 {} 有 {} 字节, 元数据记录为 {}", .file, .digest, .actual, .expected))]
    BlobSize {
        file: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{}", crate::tr!("data file {}: the meta places blob {} at zstd frame offset {}, but its entry's frame is at {}", "数据文件 {}: 元数据记录数据块 {} 的 zstd 帧偏移为 {}, 但其条目所在的帧偏移为 {}", .file, .digest, offset_text(*.recorded), offset_text(*.actual)))]
    FrameOffset {
        file: String,
        digest: Digest,
        recorded: Option<u64>,
        actual: Option<u64>,
    },
    #[error("{file}: {}", crate::i18n::io_error(.source))]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// Where a blob's bytes are inside a data file.
#[derive(Clone, Debug)]
pub struct BlobLocation {
    pub path: PathBuf,
    /// Where the bytes start; in a `.tar.zst` file, the offset of the entry's frame.
    pub data_offset: u64,
    pub size: u64,
    pub compressed: bool,
}

impl BlobLocation {
    /// A reader over exactly this blob's bytes.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        self.open_at(0)
    }

    /// Reads this blob and checks it against `digest` as it goes: the last read
    /// fails (`InvalidData`) when the bytes are not the blob's. For copies out of
    /// a bundle that only had its sizes checked (export).
    pub fn open_verified(&self, digest: &Digest) -> std::io::Result<VerifiedBlob> {
        Ok(VerifiedBlob {
            inner: self.open()?,
            hasher: Some(crate::digest::Hasher::new()),
            expected: digest.clone(),
        })
    }

    /// Streams `len` bytes of this blob from `offset`, read (and for `.tar.zst`,
    /// decompressed) on a blocking thread; the channel bounds what is in memory to a
    /// few chunks. A read error arrives as the last item.
    pub fn stream(
        &self,
        offset: u64,
        len: u64,
    ) -> tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>> {
        let loc = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let send = || -> std::io::Result<()> {
                let mut reader = loc.open_at(offset)?.take(len);
                loop {
                    let mut buf = vec![0u8; 256 * 1024];
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf.into())).is_err() {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = send() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }

    /// A reader over this blob's bytes from `offset` on (for chunked uploads).
    pub fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let offset = offset.min(self.size);
        if self.compressed {
            let mut r = super::compress::open_entry(&self.path, self.data_offset, self.size)?;
            std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())?;
            return Ok(Box::new(r));
        }
        let start = self.data_offset.checked_add(offset).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "blob offset overflows")
        })?;
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(start))?;
        Ok(Box::new(f.take(self.size.saturating_sub(offset))))
    }
}

pub struct Bundle {
    pub meta: Meta,
    pub meta_path: PathBuf,
    pub meta_sha256: String,
    pub dir: PathBuf,
    /// Manifests held in the meta itself (image-transmit bundles).
    pub inline_manifests: HashMap<Digest, Vec<u8>>,
    /// An image-transmit bundle: `<hex>.<ext>` entries, no data file digests.
    pub transmit: bool,
}

/// An entry found in a data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedEntry {
    pub digest: Digest,
    /// Where its data starts in the (decoded) tar.
    pub data_offset: u64,
    pub size: u64,
    /// In a `.tar.zst`: the file offset of the zstd frame that holds the entry.
    pub frame: Option<u64>,
}

impl Bundle {
    pub fn open(meta_path: &Path) -> Result<Bundle, BundleError> {
        let loaded = Meta::load_any(meta_path)?;
        let dir = meta_path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Bundle {
            meta: loaded.meta,
            meta_path: meta_path.to_path_buf(),
            meta_sha256: loaded.sha256,
            dir,
            inline_manifests: loaded.inline_manifests,
            transmit: loaded.transmit,
        })
    }

    /// A manifest's bytes: from the meta (image-transmit) or from the data files.
    pub fn manifest_bytes(
        &self,
        digest: &Digest,
        index: &HashMap<Digest, BlobLocation>,
    ) -> std::io::Result<Vec<u8>> {
        if let Some(b) = self.inline_manifests.get(digest) {
            return Ok(b.clone());
        }
        let loc = index.get(digest).ok_or_else(|| {
            std::io::Error::other(crate::tr!(
                "manifest {digest} is not in the bundle's data files",
                "清单 {digest} 不在镜像包的数据文件中"
            ))
        })?;
        read_blob(loc, crate::manifest::MAX_MANIFEST_BYTES as u64)
    }

    /// Total bytes of the data files, for progress.
    pub fn data_bytes(&self) -> u64 {
        self.meta
            .files
            .iter()
            .fold(0u64, |t, f| t.saturating_add(f.size))
    }

    /// Checks every data file (in parallel) and returns where each blob is. All
    /// problems found are returned, one per data file at most.
    pub fn verify(
        &self,
        level: VerifyLevel,
        progress: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<HashMap<Digest, BlobLocation>, Vec<BundleError>> {
        let results: Vec<Result<Vec<(Digest, BlobLocation)>, BundleError>> =
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .meta
                    .files
                    .iter()
                    .map(|f| s.spawn(move || self.verify_file(f, level, progress)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BundleError::Io {
                                file: "?".into(),
                                source: std::io::Error::other("verify thread panicked"),
                            })
                        })
                    })
                    .collect()
            });
        let mut index = HashMap::new();
        let mut problems = Vec::new();
        for r in results {
            match r {
                Ok(entries) => index.extend(entries),
                Err(e) => problems.push(e),
            }
        }
        if self.transmit && problems.is_empty() {
            // image-transmit metas do not say which file holds a blob: check the whole.
            for b in self.meta.blobs.iter().filter(|b| b.base.is_none()) {
                if !index.contains_key(&b.digest) {
                    problems.push(BundleError::MissingBlob {
                        file: crate::tr!("any data file", "任一数据文件"),
                        digest: b.digest.clone(),
                    });
                    break;
                }
            }
        }
        if problems.is_empty() {
            // Manifests are always carried: every image must find its own.
            for image in &self.meta.images {
                let own =
                    std::iter::once(&image.digest).chain(image.children.iter().map(|c| &c.digest));
                for digest in own {
                    if !index.contains_key(digest) && !self.inline_manifests.contains_key(digest) {
                        problems.push(BundleError::MissingManifest {
                            image: image.reference.clone(),
                            digest: digest.clone(),
                        });
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(index)
        } else {
            Err(problems)
        }
    }

    fn verify_file(
        &self,
        f: &super::meta::DataFile,
        level: VerifyLevel,
        progress: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<Vec<(Digest, BlobLocation)>, BundleError> {
        let path = self.dir.join(&f.name);
        let io = |source| BundleError::Io {
            file: f.name.clone(),
            source,
        };
        let actual = match std::fs::metadata(&path) {
            // A FIFO would block every open, a device never end: regular files only.
            Ok(m) if !m.is_file() => {
                return Err(BundleError::NotRegular {
                    file: f.name.clone(),
                })
            }
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::MissingFile {
                    file: f.name.clone(),
                })
            }
            Err(e) => return Err(io(e)),
        };
        if actual != f.size {
            return Err(BundleError::FileSize {
                file: f.name.clone(),
                expected: f.size,
                actual,
            });
        }
        let compressed = super::compress::is_compressed(&f.name);
        // A file holds at most the entries the meta places in it: this bounds what a
        // scan keeps in memory, whatever the file says.
        let limit = if self.transmit {
            self.meta.blobs.len()
        } else {
            self.meta
                .blobs
                .iter()
                .filter(|b| b.file.as_deref() == Some(f.name.as_str()))
                .count()
        };
        let scan = Scan {
            file: &f.name,
            transmit: self.transmit,
            limit,
        };
        // A plain file recorded by its headers' digest (see `meta::DataFile`).
        let by_headers = match (&f.headers_sha256, self.transmit || compressed) {
            (Some(h), false) if f.sha256.is_empty() => Some(h),
            _ => None,
        };
        let entries = match level {
            VerifyLevel::Size if compressed => scan.frames(&path)?,
            VerifyLevel::Size => match by_headers {
                Some(expected) => {
                    let (entries, headers) = scan.structure(&path)?;
                    check_headers(f, expected, headers)?;
                    entries
                }
                None => scan.headers(&path)?,
            },
            // Each byte read once: the entries against their names, the headers
            // against the meta, padding and the end checked to be zeros.
            VerifyLevel::File | VerifyLevel::Full => match by_headers {
                Some(expected) => {
                    let (entries, headers) = scan.full_structure(&path, progress)?;
                    check_headers(f, expected, headers)?;
                    entries
                }
                None => {
                    // image-transmit bundles record no file digest: their entries
                    // are the check.
                    let per_entry = level == VerifyLevel::Full || self.transmit;
                    let (entries, sha) = scan.full(&path, per_entry, progress)?;
                    if !self.transmit && sha != f.sha256 {
                        return Err(BundleError::FileDigest {
                            file: f.name.clone(),
                            expected: f.sha256.clone(),
                            actual: sha,
                        });
                    }
                    entries
                }
            },
        };
        if level == VerifyLevel::Size {
            let _ = progress(f.size);
        }
        let location = |e: &ScannedEntry| BlobLocation {
            path: path.clone(),
            // In a `.tar.zst`, a blob is read by decoding its entry's own frame.
            data_offset: e.frame.unwrap_or(e.data_offset),
            size: e.size,
            compressed,
        };
        if self.transmit {
            let known: HashSet<&Digest> = self.meta.blobs.iter().map(|b| &b.digest).collect();
            if let Some(e) = entries.iter().find(|e| !known.contains(&e.digest)) {
                return Err(BundleError::UnexpectedBlob {
                    file: f.name.clone(),
                    digest: e.digest.clone(),
                });
            }
            return Ok(entries
                .iter()
                .map(|e| (e.digest.clone(), location(e)))
                .collect());
        }
        let expected: HashMap<&Digest, &super::meta::BlobRecord> = self
            .meta
            .blobs
            .iter()
            .filter(|b| b.file.as_deref() == Some(f.name.as_str()))
            .map(|b| (&b.digest, b))
            .collect();
        let mut seen = HashMap::new();
        for e in &entries {
            let Some(record) = expected.get(&e.digest) else {
                return Err(BundleError::UnexpectedBlob {
                    file: f.name.clone(),
                    digest: e.digest.clone(),
                });
            };
            if record.size != e.size {
                return Err(BundleError::BlobSize {
                    file: f.name.clone(),
                    digest: e.digest.clone(),
                    expected: record.size,
                    actual: e.size,
                });
            }
            // The meta's frame offset is where upload, export and serve will read
            // the blob: it must be the frame that holds this very entry.
            if compressed && (e.frame.is_none() || record.offset != e.frame) {
                return Err(BundleError::FrameOffset {
                    file: f.name.clone(),
                    digest: e.digest.clone(),
                    recorded: record.offset,
                    actual: e.frame,
                });
            }
            if seen.insert(e.digest.clone(), location(e)).is_some() {
                return Err(BundleError::BadTar {
                    file: f.name.clone(),
                    offset: e.data_offset.saturating_sub(layout::BLOCK),
                    detail: crate::tr!(
                        "entry {} appears twice",
                        "条目 {} 出现了两次",
                        e.digest.blob_path()
                    ),
                });
            }
        }
        if let Some(missing) = expected.keys().find(|d| !seen.contains_key(**d)) {
            return Err(BundleError::MissingBlob {
                file: f.name.clone(),
                digest: (*missing).clone(),
            });
        }
        Ok(seen.into_iter().collect())
    }
}

/// The headers' digest of a data file read is the one its meta records.
fn check_headers(
    f: &super::meta::DataFile,
    expected: &str,
    actual: String,
) -> Result<(), BundleError> {
    if actual != expected {
        return Err(BundleError::HeadersDigest {
            file: f.name.clone(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

fn parse_header(
    block: &[u8; 512],
    file: &str,
    offset: u64,
    transmit: bool,
) -> Result<Option<(Digest, u64)>, BundleError> {
    if block.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    let bad = |detail: String| BundleError::BadTar {
        file: file.into(),
        offset,
        detail,
    };
    let header = tar::Header::from_byte_slice(block);
    let sum = header.cksum().map_err(|e| bad(tar_error(&e)))?;
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if sum != computed {
        return Err(bad(crate::tr!(
            "header checksum mismatch",
            "头部校验和不符"
        )));
    }
    let path = header.path().map_err(|e| bad(tar_error(&e)))?;
    let name = path.to_string_lossy().into_owned();
    let size = header.entry_size().map_err(|e| bad(tar_error(&e)))?;
    let digest = if transmit {
        super::transmit::entry_digest(&name)
    } else {
        name.strip_prefix("blobs/sha256/")
            .and_then(|hex| Digest::from_hex(hex).ok())
    };
    let digest = digest.ok_or_else(|| BundleError::BadEntry {
        file: file.into(),
        entry: name.clone(),
    })?;
    if header.entry_type() != tar::EntryType::Regular {
        return Err(BundleError::BadEntry {
            file: file.into(),
            entry: name,
        });
    }
    Ok(Some((digest, size)))
}

/// How to read one data file's entries: its name (for errors), whether it is an
/// image-transmit file (`<hex>.<ext>` entries), and how many entries it may hold.
pub struct Scan<'a> {
    pub file: &'a str,
    pub transmit: bool,
    pub limit: usize,
}

impl Scan<'_> {
    fn bad(&self, offset: u64, detail: String) -> BundleError {
        BundleError::BadTar {
            file: self.file.into(),
            offset,
            detail,
        }
    }

    fn io(&self) -> impl Fn(std::io::Error) -> BundleError + '_ {
        move |source| BundleError::Io {
            file: self.file.into(),
            source,
        }
    }

    fn past_end(&self, offset: u64) -> BundleError {
        self.bad(
            offset,
            crate::tr!("entry runs past the end of the file", "条目超出了文件末尾"),
        )
    }

    fn too_many(&self, offset: u64) -> BundleError {
        self.bad(
            offset,
            crate::tr!(
                "more entries than the meta places in this file",
                "条目多于元数据记录的数量"
            ),
        )
    }

    /// The structure check of a plain tar file (see [`Scan::structure_in`]).
    fn structure(&self, path: &Path) -> Result<(Vec<ScannedEntry>, String), BundleError> {
        let mut f = File::open(path).map_err(self.io())?;
        let len = f.metadata().map_err(self.io())?.len();
        self.structure_in(&mut f, len)
    }

    /// Reads only the headers of a plain tar, seeking over the data.
    fn headers(&self, path: &Path) -> Result<Vec<ScannedEntry>, BundleError> {
        let mut f = File::open(path).map_err(self.io())?;
        let len = f.metadata().map_err(self.io())?.len();
        self.headers_in(&mut f, len)
    }

    /// [`Scan::headers`] over any seekable reader of `len` bytes. Every offset is
    /// checked arithmetic bounded by `len`: a size field forged to near 2^64 is an
    /// error, never a wrapped offset that walks backwards forever.
    pub fn headers_in<R: Read + Seek>(
        &self,
        f: &mut R,
        len: u64,
    ) -> Result<Vec<ScannedEntry>, BundleError> {
        self.walk_headers(f, len, None)
    }

    /// [`Scan::headers_in`] with the structure check of a plain data file recorded
    /// by its headers' digest (see `meta::DataFile`): returns the entries and the
    /// sha256 (hex) of the header blocks, after checking that every entry's padding
    /// and the end of the archive (two blocks, then the end of the file) are zeros.
    /// Reads the headers and the padding only, never the blobs.
    pub fn structure_in<R: Read + Seek>(
        &self,
        f: &mut R,
        len: u64,
    ) -> Result<(Vec<ScannedEntry>, String), BundleError> {
        let mut headers = Hasher::new();
        let entries = self.walk_headers(f, len, Some(&mut headers))?;
        Ok((entries, headers.finish().hex().to_string()))
    }

    fn walk_headers<R: Read + Seek>(
        &self,
        f: &mut R,
        len: u64,
        mut structure: Option<&mut Hasher>,
    ) -> Result<Vec<ScannedEntry>, BundleError> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut block = [0u8; 512];
        while let Some(data_offset) = pos.checked_add(layout::BLOCK).filter(|e| *e <= len) {
            f.seek(SeekFrom::Start(pos)).map_err(self.io())?;
            f.read_exact(&mut block).map_err(self.io())?;
            let Some((digest, size)) = parse_header(&block, self.file, pos, self.transmit)? else {
                if structure.is_some() {
                    self.end_of_archive(f, pos, len)?;
                }
                return Ok(out);
            };
            if data_offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(self.past_end(pos));
            }
            if out.len() >= self.limit {
                return Err(self.too_many(pos));
            }
            let next = layout::checked_padded(size)
                .and_then(|p| data_offset.checked_add(p))
                .ok_or_else(|| self.past_end(pos))?;
            if let Some(h) = structure.as_deref_mut() {
                h.update(&block);
                // Checked above: data_offset + size <= len, and next fits.
                let end = data_offset + size;
                self.zeros_at(f, end, next.saturating_sub(end), &digest)?;
            }
            out.push(ScannedEntry {
                digest,
                data_offset,
                size,
                frame: None,
            });
            pos = next;
        }
        if structure.is_some() {
            return Err(self.bad(pos, crate::tr!("no end of archive", "缺少归档结束标记")));
        }
        Ok(out)
    }

    /// The `n` bytes at `at` (an entry's padding, under 512) are zeros.
    fn zeros_at<R: Read + Seek>(
        &self,
        f: &mut R,
        at: u64,
        n: u64,
        digest: &Digest,
    ) -> Result<(), BundleError> {
        if n == 0 {
            return Ok(());
        }
        let mut pad = [0u8; 512];
        let pad = pad
            .get_mut(..usize::try_from(n).unwrap_or(512).min(512))
            .unwrap_or_default();
        f.seek(SeekFrom::Start(at)).map_err(self.io())?;
        f.read_exact(pad).map_err(self.io())?;
        if pad.iter().any(|b| *b != 0) {
            return Err(self.nonzero_padding(at, digest));
        }
        Ok(())
    }

    fn nonzero_padding(&self, at: u64, digest: &Digest) -> BundleError {
        self.bad(
            at,
            crate::tr!(
                "the padding after {} is not zeros (altered)",
                "{} 之后的填充不全为零 (已被修改)",
                digest.blob_path()
            ),
        )
    }

    /// The end of the archive at `pos`: two zero blocks, and the end of the file.
    fn end_of_archive<R: Read + Seek>(
        &self,
        f: &mut R,
        pos: u64,
        len: u64,
    ) -> Result<(), BundleError> {
        let mut tail = [0u8; layout::END_OF_ARCHIVE as usize];
        let exact = pos.checked_add(layout::END_OF_ARCHIVE) == Some(len);
        f.seek(SeekFrom::Start(pos)).map_err(self.io())?;
        if !exact || f.read_exact(&mut tail).is_err() || tail.iter().any(|b| *b != 0) {
            return Err(self.bad(
                pos,
                crate::tr!(
                    "the end of the archive is not two zero blocks ending the file (altered)",
                    "归档结束处不是恰好位于文件末尾的两个零块 (已被修改)"
                ),
            ));
        }
        Ok(())
    }

    /// The entries of a `.tar.zst` from its frames, without decompressing their
    /// data: each frame's header and block headers give where the next starts, and
    /// the first 512 bytes of each frame are the tar header of the entry it holds.
    /// What `--verify size` checks of a zstd file: every frame holds exactly one
    /// entry (or the end of the archive), so a meta offset can be checked against it.
    fn frames(&self, path: &Path) -> Result<Vec<ScannedEntry>, BundleError> {
        let f = File::open(path).map_err(self.io())?;
        let len = f.metadata().map_err(self.io())?.len();
        let mut out = Vec::new();
        let mut pos = 0u64;
        loop {
            if pos >= len {
                return Err(self.bad(
                    pos,
                    crate::tr!("no end-of-archive frame", "缺少表示归档结束的 zstd 帧"),
                ));
            }
            let frame = super::compress::frame_at(&f, pos, len)
                .map_err(|e| self.bad(pos, crate::i18n::io_error(&e)))?;
            let mut block = [0u8; 512];
            super::compress::open_frame(&f, pos, frame.len)
                .and_then(|mut d| d.read_exact(&mut block))
                .map_err(|e| self.bad(pos, crate::i18n::io_error(&e)))?;
            let next = pos
                .checked_add(frame.len)
                .ok_or_else(|| self.past_end(pos))?;
            let Some((digest, size)) = parse_header(&block, self.file, pos, false)? else {
                if next != len || frame.content_size != Some(layout::END_OF_ARCHIVE) {
                    return Err(self.bad(
                        pos,
                        crate::tr!("data after the end of the archive", "归档结束之后还有数据"),
                    ));
                }
                return Ok(out);
            };
            if frame.content_size != layout::entry_span(size) {
                return Err(self.bad(
                    pos,
                    crate::tr!(
                        "the zstd frame of {} does not hold exactly its entry",
                        "{} 的 zstd 帧没有恰好包含其条目",
                        digest.blob_path()
                    ),
                ));
            }
            if out.len() >= self.limit {
                return Err(self.too_many(pos));
            }
            out.push(ScannedEntry {
                digest,
                data_offset: pos,
                size,
                frame: Some(pos),
            });
            pos = next;
        }
    }

    /// Reads the whole file once: hashes it, and hashes every entry against its
    /// name. A `.tar.zst` file is decoded frame by frame on the way (its sha256 is
    /// of the compressed bytes), and each entry must start a frame of its own.
    fn full(
        &self,
        path: &Path,
        per_entry: bool,
        progress: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<(Vec<ScannedEntry>, String), BundleError> {
        let file = File::open(path).map_err(self.io())?;
        let raw = BufReader::with_capacity(
            1 << 20,
            HashingReader {
                inner: file,
                hash: Some(Hasher::new()),
                count: 0,
                progress,
            },
        );
        if !super::compress::is_compressed(self.file) {
            let mut hashing = raw;
            let entries = self.tar(&mut hashing, per_entry)?;
            std::io::copy(&mut hashing, &mut std::io::sink()).map_err(self.io())?;
            let rest = hashing.into_inner();
            let sum = rest.hash.unwrap_or_default().finish();
            return Ok((entries, sum.hex().to_string()));
        }
        let mut frames = Frames {
            decoder: None,
            idle: Some(raw),
            decompressed: 0,
            starts: HashMap::new(),
            limit: self.limit.saturating_add(1),
        };
        let mut entries = self.tar(&mut frames, per_entry)?;
        std::io::copy(&mut frames, &mut std::io::sink()).map_err(self.io())?;
        if frames.starts.len() != entries.len().saturating_add(1) {
            return Err(self.bad(
                0,
                crate::tr!(
                    "the zstd frames do not hold one entry each",
                    "zstd 帧与条目不是一一对应"
                ),
            ));
        }
        for e in &mut entries {
            let header = e.data_offset.saturating_sub(layout::BLOCK);
            e.frame = Some(*frames.starts.get(&header).ok_or_else(|| {
                self.bad(
                    header,
                    crate::tr!(
                        "entry {} does not start a zstd frame",
                        "条目 {} 不在 zstd 帧的开头",
                        e.digest.blob_path()
                    ),
                )
            })?);
        }
        let raw = match (frames.decoder, frames.idle) {
            (Some(d), _) => d.finish(),
            (None, Some(r)) => r,
            (None, None) => return Err(self.bad(0, "internal: reader lost".into())),
        };
        let sum = raw.into_inner().hash.unwrap_or_default().finish();
        Ok((entries, sum.hex().to_string()))
    }

    /// Reads a plain data file recorded by its headers' digest once: every entry
    /// hashed against its name, the headers hashed, padding and the end of the
    /// archive checked to be zeros. Returns the entries and the headers' sha256.
    fn full_structure(
        &self,
        path: &Path,
        progress: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<(Vec<ScannedEntry>, String), BundleError> {
        let file = File::open(path).map_err(self.io())?;
        let mut r = BufReader::with_capacity(
            1 << 20,
            HashingReader {
                inner: file,
                hash: None,
                count: 0,
                progress,
            },
        );
        let mut headers = Hasher::new();
        let entries = self.walk_tar(&mut r, true, Some(&mut headers))?;
        // `walk_tar` stopped after the first zero block: one more, then the end.
        let pos = r.get_ref().count.saturating_sub(r.buffer().len() as u64);
        let mut rest = Vec::new();
        (&mut r)
            .take(layout::BLOCK + 1)
            .read_to_end(&mut rest)
            .map_err(self.io())?;
        if rest.len() as u64 != layout::BLOCK || rest.iter().any(|b| *b != 0) {
            return Err(self.bad(
                pos.saturating_sub(layout::BLOCK),
                crate::tr!(
                    "the end of the archive is not two zero blocks ending the file (altered)",
                    "归档结束处不是恰好位于文件末尾的两个零块 (已被修改)"
                ),
            ));
        }
        Ok((entries, headers.finish().hex().to_string()))
    }

    /// Walks a tar stream, checking every entry's bytes against the digest in its
    /// name (when `per_entry`). Offsets are checked arithmetic; the stream's own end
    /// bounds the walk.
    pub fn tar(&self, r: &mut dyn Read, per_entry: bool) -> Result<Vec<ScannedEntry>, BundleError> {
        self.walk_tar(r, per_entry, None)
    }

    /// [`Scan::tar`] that also hashes the header blocks into `structure` and
    /// refuses padding that is not zeros (the structure check, see
    /// [`Scan::structure_in`]); the caller checks the end of the archive.
    fn walk_tar(
        &self,
        r: &mut dyn Read,
        per_entry: bool,
        mut structure: Option<&mut Hasher>,
    ) -> Result<Vec<ScannedEntry>, BundleError> {
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut block = [0u8; 512];
        let mut buf = vec![0u8; 1 << 20];
        let cut = |pos: u64, e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad(
                    pos,
                    crate::tr!(
                        "file ends in the middle of the archive",
                        "文件在归档中途结束"
                    ),
                )
            } else {
                self.bad(pos, crate::i18n::io_error(&e))
            }
        };
        loop {
            r.read_exact(&mut block).map_err(|e| cut(pos, e))?;
            let Some((digest, size)) = parse_header(&block, self.file, pos, self.transmit)? else {
                break;
            };
            let data_offset = pos
                .checked_add(layout::BLOCK)
                .ok_or_else(|| self.past_end(pos))?;
            let span = layout::checked_padded(size).ok_or_else(|| self.past_end(pos))?;
            let next = data_offset
                .checked_add(span)
                .ok_or_else(|| self.past_end(pos))?;
            if out.len() >= self.limit {
                return Err(self.too_many(pos));
            }
            if let Some(h) = structure.as_deref_mut() {
                h.update(&block);
            }
            let mut entry_hash = Hasher::new();
            let mut left = span;
            let mut data_left = size;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let chunk = buf.get_mut(..n).unwrap_or_default();
                r.read_exact(chunk).map_err(|e| cut(pos, e))?;
                let data = usize::try_from(data_left).unwrap_or(usize::MAX).min(n);
                if per_entry {
                    entry_hash.update(chunk.get(..data).unwrap_or_default());
                }
                if structure.is_some()
                    && chunk.get(data..).is_some_and(|p| p.iter().any(|b| *b != 0))
                {
                    return Err(self.nonzero_padding(data_offset.saturating_add(size), &digest));
                }
                data_left -= data as u64;
                left -= n as u64;
            }
            let actual = entry_hash.finish();
            if per_entry && actual != digest {
                return Err(BundleError::EntryDigest {
                    file: self.file.into(),
                    entry: digest.blob_path(),
                    actual,
                });
            }
            out.push(ScannedEntry {
                digest,
                data_offset,
                size,
                frame: None,
            });
            pos = next;
        }
        Ok(out)
    }
}

/// Passes bytes through while hashing them and reporting progress: the data file's
/// own sha256 is computed in the same read as the entries' digests.
struct HashingReader<'a, R> {
    inner: R,
    /// None: count and report only.
    hash: Option<Hasher>,
    /// Bytes read so far: where in the file the reader stands.
    count: u64,
    progress: &'a (dyn Fn(u64) -> bool + Sync),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hash.as_mut() {
            h.update(buf.get(..n).unwrap_or_default());
        }
        self.count = self.count.saturating_add(n as u64);
        if !(self.progress)(n as u64) {
            // Not ErrorKind::Interrupted: std's readers retry those (EINTR).
            return Err(std::io::Error::other(crate::i18n::t(
                "interrupted",
                "已中断",
            )));
        }
        Ok(n)
    }
}

/// Decodes a `.tar.zst` one frame after another and records where each frame
/// starts, in the file and in the decoded stream, so that every entry can be
/// checked to begin a frame of its own (the frame a meta offset must name).
struct Frames<'a> {
    decoder: Option<zstd::stream::read::Decoder<'static, BufReader<HashingReader<'a, File>>>>,
    idle: Option<BufReader<HashingReader<'a, File>>>,
    decompressed: u64,
    /// Decoded offset of each frame's start → its offset in the file.
    starts: HashMap<u64, u64>,
    /// At most this many frames (the entries the meta allows, and the end).
    limit: usize,
}

impl Read for Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(d) = self.decoder.as_mut() {
                let n = d.read(buf)?;
                if n > 0 {
                    self.decompressed = self.decompressed.saturating_add(n as u64);
                    return Ok(n);
                }
                // The frame ended: the reader stands exactly at the next one.
                self.idle = self.decoder.take().map(|d| d.finish());
            }
            let Some(mut r) = self.idle.take() else {
                return Ok(0);
            };
            if r.fill_buf()?.is_empty() {
                self.idle = Some(r);
                return Ok(0);
            }
            if self.starts.len() >= self.limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    crate::tr!(
                        "more zstd frames than the meta has entries for",
                        "zstd 帧多于元数据记录的条目"
                    ),
                ));
            }
            let at = r.get_ref().count.saturating_sub(r.buffer().len() as u64);
            self.starts.insert(self.decompressed, at);
            self.decoder = Some(zstd::stream::read::Decoder::with_buffer(r)?.single_frame());
        }
    }
}

/// A blob reader that fails at its end when the bytes do not match the digest.
pub struct VerifiedBlob {
    inner: Box<dyn Read + Send>,
    hasher: Option<crate::digest::Hasher>,
    expected: Digest,
}

impl Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
        } else if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.expected {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    crate::tr!(
                        "blob {} in the bundle has digest {actual} (corrupt data file)",
                        "镜像包中的数据块 {} 的摘要为 {actual} (数据文件已损坏)",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn offset_text(o: Option<u64>) -> String {
    o.map_or_else(
        || crate::i18n::t("none", "无").to_string(),
        |o| o.to_string(),
    )
}

/// The tar library's complaint about a header, read in the chosen language.
fn tar_error(e: &std::io::Error) -> String {
    crate::tr!("{e}", "无效的 tar 头部 ({e})")
}

/// Reads a whole small blob (a manifest) from its data file.
pub fn read_blob(loc: &BlobLocation, limit: u64) -> std::io::Result<Vec<u8>> {
    if loc.size > limit {
        return Err(std::io::Error::other(crate::tr!(
            "blob of {} bytes is over the {limit}-byte limit",
            "数据块有 {} 字节, 超过 {limit} 字节的上限",
            loc.size
        )));
    }
    let mut buf = Vec::with_capacity(loc.size as usize);
    loc.open()?.read_to_end(&mut buf)?;
    if buf.len() as u64 != loc.size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            crate::i18n::t("blob cut short", "数据块不完整"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::meta::{BlobKind, BlobRecord, DataFile, Image, Kind};
    use std::io::Cursor;

    /// A tar header for `digest` whose size field says `size` (base-256 when it
    /// does not fit in octal), with a correct checksum: a forged header.
    fn forged_header(digest: &Digest, size: u64) -> [u8; 512] {
        let mut h = layout::header(digest, 0, 0).unwrap();
        let field = &mut h[124..136];
        field.fill(0);
        field[0] = 0x80;
        field[4..12].copy_from_slice(&size.to_be_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn scan(limit: usize) -> Scan<'static> {
        Scan {
            file: "f.tar",
            transmit: false,
            limit,
        }
    }

    #[test]
    fn a_size_field_forged_to_near_2_pow_64_is_an_error_not_a_loop() {
        let d = Digest::of(b"x");
        for size in [
            u64::MAX,
            u64::MAX - 511,
            u64::MAX - 512,
            (u64::MAX - 1023) & !511,
            1 << 63,
        ] {
            let mut tar = forged_header(&d, size).to_vec();
            assert_eq!(
                parse_header(tar[..512].try_into().unwrap(), "f", 0, false)
                    .unwrap()
                    .unwrap()
                    .1,
                size,
                "the header says {size}"
            );
            tar.resize(4096, 0);
            let r = scan(10).headers_in(&mut Cursor::new(&tar), tar.len() as u64);
            assert!(
                matches!(r, Err(BundleError::BadTar { .. })),
                "{size}: {r:?}"
            );
            let r = scan(10).tar(&mut Cursor::new(&tar), true);
            assert!(
                matches!(r, Err(BundleError::BadTar { .. })),
                "{size}: {r:?}"
            );
        }
    }

    #[test]
    fn a_file_holds_no_more_entries_than_the_meta_places_there() {
        let mut tar = Vec::new();
        for i in 0..3u8 {
            let d = Digest::of(&[i]);
            tar.extend(layout::header(&d, 1, 0).unwrap());
            tar.push(i);
            tar.resize(tar.len() + 511, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let len = tar.len() as u64;
        assert_eq!(
            scan(3)
                .headers_in(&mut Cursor::new(&tar), len)
                .unwrap()
                .len(),
            3
        );
        assert!(scan(2).headers_in(&mut Cursor::new(&tar), len).is_err());
        assert_eq!(scan(3).tar(&mut Cursor::new(&tar), true).unwrap().len(), 3);
        assert!(scan(2).tar(&mut Cursor::new(&tar), true).is_err());
    }

    /// A plain data file of `blobs` as the writer lays it out (mtime 7), and the
    /// sha256 of its headers as the writer records it.
    fn plain_file(blobs: &[&[u8]]) -> (Vec<u8>, String) {
        let list: Vec<(Digest, u64)> = blobs
            .iter()
            .map(|b| (Digest::of(b), b.len() as u64))
            .collect();
        let plan = layout::plan(&list, 1).unwrap().pop().unwrap();
        let mut file = vec![0u8; plan.size as usize];
        for e in &plan.entries {
            let h = layout::header(&e.digest, e.size, 7).unwrap();
            let at = e.header_offset as usize;
            file[at..at + 512].copy_from_slice(&h);
            let data = blobs.iter().find(|b| Digest::of(b) == e.digest).unwrap();
            file[at + 512..at + 512 + data.len()].copy_from_slice(data);
        }
        let headers = layout::headers_digest(&plan, 7).unwrap();
        (file, headers.hex().to_string())
    }

    #[test]
    fn the_structure_check_pins_every_byte_but_the_blobs_and_full_adds_them() {
        let (file, headers) = plain_file(&[b"hello", &[9u8; 700]]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.tar");
        let check = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            let len = bytes.len() as u64;
            let quick = scan(2)
                .structure_in(&mut Cursor::new(bytes), len)
                .map(|(_, h)| h);
            let full = scan(2).full_structure(&path, &|_| true).map(|(_, h)| h);
            (quick, full)
        };
        let (quick, full) = check(&file);
        assert_eq!(
            quick.unwrap(),
            headers,
            "computed from the layout, as written"
        );
        assert_eq!(full.unwrap(), headers);
        // Where a byte is flipped: a header, an entry's padding, the end of the
        // archive, a byte appended; each is caught without the blobs' digests.
        // Largest first: the 700-byte blob at 512..1212, padding to 1536, then
        // "hello" with its header at 1536 and its data at 2048.
        for (what, at) in [
            ("header", 3usize),
            ("padding", 1222),
            ("end", file.len() - 1),
        ] {
            let mut bad = file.clone();
            bad[at] ^= 0x20;
            let (quick, full) = check(&bad);
            let caught =
                |r: &Result<String, BundleError>| r.as_ref().map_or(true, |h| *h != headers);
            assert!(
                caught(&quick) && caught(&full),
                "{what}: {quick:?} {full:?}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        let (quick, full) = check(&longer);
        assert!(quick.is_err() && full.is_err(), "a byte appended");
        // A flipped blob byte: the structure holds, the entry's digest does not.
        let mut bad = file.clone();
        bad[2048 + 1] ^= 1;
        let (quick, full) = check(&bad);
        assert_eq!(quick.unwrap(), headers);
        assert!(
            matches!(full, Err(BundleError::EntryDigest { .. })),
            "{full:?}"
        );
    }

    /// A one-file zstd bundle of `blobs` in `dir`; returns its meta path.
    fn zstd_bundle(dir: &Path, blobs: &[Vec<u8>]) -> PathBuf {
        let sized: Vec<(Digest, u64)> = blobs
            .iter()
            .map(|b| (Digest::of(b), b.len() as u64))
            .collect();
        let tar_path = dir.join("b_1.tar");
        let (tar, plan) = layout::write_test_tar(&tar_path, blobs);
        let zst = dir.join("b_1.tar.zst");
        let offsets = super::super::compress::compress_tar(&tar, &plan, &zst)
            .unwrap()
            .offsets;
        std::fs::remove_file(&tar_path).unwrap();
        let (size, sha256) = super::super::writer::hash_file(&zst).unwrap();
        let manifest = blobs[0].clone();
        let meta = Meta {
            format: super::super::meta::FORMAT_NAME.into(),
            version: super::super::meta::FORMAT_VERSION,
            tool: "test".into(),
            created: String::new(),
            name: "b".into(),
            kind: Kind::Full,
            bases: vec![],
            platforms: vec![],
            files: vec![DataFile {
                name: "b_1.tar.zst".into(),
                size,
                sha256,
                headers_sha256: None,
                blobs: blobs.len() as u64,
            }],
            images: vec![Image {
                reference: "h:5000/a:1".into(),
                registry: "h:5000".into(),
                repository: "a".into(),
                tag: Some("1".into()),
                digest: Digest::of(&manifest),
                media_type: crate::manifest::OCI_MANIFEST.into(),
                target: None,
                subject: None,
                children: vec![],
            }],
            blobs: sized
                .iter()
                .map(|(d, s)| BlobRecord {
                    digest: d.clone(),
                    size: *s,
                    kind: BlobKind::Layer,
                    file: Some("b_1.tar.zst".into()),
                    base: None,
                    repository: "a".into(),
                    offset: offsets.get(d).copied(),
                })
                .collect(),
            failed: vec![],
            selections: vec![],
        };
        let path = dir.join("b_meta.yaml");
        std::fs::write(&path, meta.to_yaml().unwrap()).unwrap();
        path
    }

    const LEVELS: [VerifyLevel; 3] = [VerifyLevel::Size, VerifyLevel::File, VerifyLevel::Full];

    /// The frame offset a zstd bundle's meta records for blob `d`.
    fn recorded_offset(meta: &Meta, d: &Digest) -> u64 {
        let record = meta.blobs.iter().find(|r| &r.digest == d).unwrap();
        record.offset.unwrap()
    }

    /// Every verify level refuses the bundle for an offset that names no frame of
    /// its own entry: how each forged-offset test ends.
    fn assert_offsets_refused(meta_path: &Path) {
        for level in LEVELS {
            let bundle = Bundle::open(meta_path).unwrap();
            let problems = bundle.verify(level, &|_| true).unwrap_err();
            assert!(
                matches!(problems[0], BundleError::FrameOffset { .. }),
                "{level:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn zstd_offsets_must_name_the_frame_of_their_own_entry() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = vec![b"manifest".to_vec(), vec![3u8; 70_000], vec![5u8; 2000]];
        let meta_path = zstd_bundle(dir.path(), &blobs);
        for level in LEVELS {
            let bundle = Bundle::open(&meta_path).unwrap();
            let index = bundle.verify(level, &|_| true).unwrap();
            for b in &blobs {
                let mut got = Vec::new();
                index[&Digest::of(b)]
                    .open()
                    .unwrap()
                    .read_to_end(&mut got)
                    .unwrap();
                assert_eq!(&got, b, "{level:?}");
            }
        }
        // The attack: one blob's offset pointed at another blob's frame.
        let text = std::fs::read_to_string(&meta_path).unwrap();
        let (a, b) = (Digest::of(&blobs[1]), Digest::of(&blobs[2]));
        let m = Meta::parse(text.as_bytes(), "m").unwrap();
        let (oa, ob) = (recorded_offset(&m, &a), recorded_offset(&m, &b));
        let forged = text
            .replace(&format!("offset: {oa}\n"), "offset: A\n")
            .replace(&format!("offset: {ob}\n"), &format!("offset: {oa}\n"))
            .replace("offset: A\n", &format!("offset: {ob}\n"));
        assert_ne!(forged, text);
        std::fs::write(&meta_path, forged).unwrap();
        assert_offsets_refused(&meta_path);
    }

    #[test]
    fn a_zstd_frame_hidden_inside_another_blob_is_not_a_frame_of_the_archive() {
        // A blob whose bytes are themselves a complete zstd frame of a tar entry:
        // an offset pointing into it decodes a believable entry, but that is not a
        // frame of the data file's archive.
        let dir = tempfile::tempdir().unwrap();
        let inner_blob = b"evil".to_vec();
        let inner_digest = Digest::of(&inner_blob);
        let mut inner_tar = layout::header(&inner_digest, 4, 0).unwrap().to_vec();
        inner_tar.extend(&inner_blob);
        inner_tar.resize(1024, 0);
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 0).unwrap();
        e.include_contentsize(true).unwrap();
        e.set_pledged_src_size(Some(1024)).unwrap();
        std::io::Write::write_all(&mut e, &inner_tar).unwrap();
        let carrier = e.finish().unwrap();
        let blobs = vec![b"manifest".to_vec(), carrier.clone(), inner_blob];
        let meta_path = zstd_bundle(dir.path(), &blobs);
        let text = std::fs::read_to_string(&meta_path).unwrap();
        let m = Meta::parse(text.as_bytes(), "m").unwrap();
        let rec = |d: &Digest| recorded_offset(&m, d);
        let file = std::fs::read(dir.path().join("b_1.tar.zst")).unwrap();
        let carrier_frame = rec(&Digest::of(&carrier)) as usize;
        // zstd stores incompressible data raw: the inner frame is in the file as is.
        let hidden = carrier_frame
            + file[carrier_frame..]
                .windows(carrier.len())
                .position(|w| w == carrier)
                .expect("carrier stored raw");
        let mut decoded = Vec::new();
        super::super::compress::open_entry(&dir.path().join("b_1.tar.zst"), hidden as u64, 4)
            .unwrap()
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, b"evil", "the hidden frame decodes as an entry");
        let forged = text.replace(
            &format!("offset: {}\n", rec(&inner_digest)),
            &format!("offset: {hidden}\n"),
        );
        std::fs::write(&meta_path, forged).unwrap();
        assert_offsets_refused(&meta_path);
    }
}
