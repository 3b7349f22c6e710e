//! Opens a bundle by its meta, verifies its data files, and locates each blob inside
//! them so that upload can stream it straight out of the tar file.

use super::meta::{Meta, MetaError};
use crate::digest::{Digest, Hasher};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyLevel {
    /// Files present with their recorded sizes, tar headers matching the meta.
    Size,
    /// Also the sha256 of every data file (each byte hashed once). What upload uses:
    /// a file whose digest matches the meta holds exactly the entries that were
    /// verified when it was written, and the registry checks every blob again.
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
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.data_offset + offset))?;
        Ok(Box::new(f.take(self.size - offset)))
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

struct ScannedEntry {
    digest: Digest,
    data_offset: u64,
    size: u64,
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
        self.meta.files.iter().map(|f| f.size).sum()
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
        let entries = match level {
            VerifyLevel::Size if compressed => Vec::new(),
            VerifyLevel::Size => scan_headers(&path, &f.name, self.transmit)?,
            VerifyLevel::File | VerifyLevel::Full => {
                // image-transmit bundles record no file digest: their entries are the check.
                let per_entry = level == VerifyLevel::Full || self.transmit;
                let (entries, sha) = scan_full(&path, &f.name, self.transmit, per_entry, progress)?;
                if !self.transmit && sha != f.sha256 {
                    return Err(BundleError::FileDigest {
                        file: f.name.clone(),
                        expected: f.sha256.clone(),
                        actual: sha,
                    });
                }
                entries
            }
        };
        if level == VerifyLevel::Size {
            let _ = progress(f.size);
        }
        if self.transmit {
            let known: HashSet<&Digest> = self.meta.blobs.iter().map(|b| &b.digest).collect();
            if let Some(e) = entries.iter().find(|e| !known.contains(&e.digest)) {
                return Err(BundleError::UnexpectedBlob {
                    file: f.name.clone(),
                    digest: e.digest.clone(),
                });
            }
            return Ok(entries
                .into_iter()
                .map(|e| {
                    (
                        e.digest,
                        BlobLocation {
                            path: path.clone(),
                            data_offset: e.data_offset,
                            size: e.size,
                            compressed: false,
                        },
                    )
                })
                .collect());
        }
        let expected: HashMap<&Digest, u64> = self
            .meta
            .blobs
            .iter()
            .filter(|b| b.file.as_deref() == Some(f.name.as_str()))
            .map(|b| (&b.digest, b.size))
            .collect();
        let mut seen = HashMap::new();
        for e in &entries {
            match expected.get(&e.digest) {
                None => {
                    return Err(BundleError::UnexpectedBlob {
                        file: f.name.clone(),
                        digest: e.digest.clone(),
                    })
                }
                Some(&size) if size != e.size => {
                    return Err(BundleError::BlobSize {
                        file: f.name.clone(),
                        digest: e.digest.clone(),
                        expected: size,
                        actual: e.size,
                    })
                }
                _ => {}
            }
            seen.insert(
                e.digest.clone(),
                BlobLocation {
                    path: path.clone(),
                    data_offset: e.data_offset,
                    size: e.size,
                    compressed: false,
                },
            );
        }
        if compressed {
            // Blobs are read by seeking to their zstd frame, whose offset the meta records.
            for b in self
                .meta
                .blobs
                .iter()
                .filter(|b| b.file.as_deref() == Some(f.name.as_str()))
            {
                let offset =
                    b.offset
                        .filter(|o| *o < actual)
                        .ok_or_else(|| BundleError::BadTar {
                            file: f.name.clone(),
                            offset: 0,
                            detail: crate::tr!(
                                "the meta gives no valid zstd frame offset for {}",
                                "元数据没有给出 {} 的有效 zstd 帧偏移",
                                b.digest
                            ),
                        })?;
                if level == VerifyLevel::Size || seen.contains_key(&b.digest) {
                    seen.insert(
                        b.digest.clone(),
                        BlobLocation {
                            path: path.clone(),
                            data_offset: offset,
                            size: b.size,
                            compressed: true,
                        },
                    );
                }
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

/// Reads only the headers, seeking over the data.
fn scan_headers(path: &Path, name: &str, transmit: bool) -> Result<Vec<ScannedEntry>, BundleError> {
    let io = |source| BundleError::Io {
        file: name.into(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut block = [0u8; 512];
    while pos + 512 <= len {
        f.seek(SeekFrom::Start(pos)).map_err(io)?;
        f.read_exact(&mut block).map_err(io)?;
        let Some((digest, size)) = parse_header(&block, name, pos, transmit)? else {
            break;
        };
        let data_offset = pos + 512;
        if data_offset + size > len {
            return Err(BundleError::BadTar {
                file: name.into(),
                offset: pos,
                detail: crate::tr!("entry runs past the end of the file", "条目超出了文件末尾"),
            });
        }
        out.push(ScannedEntry {
            digest,
            data_offset,
            size,
        });
        pos = data_offset + super::layout::padded(size);
    }
    Ok(out)
}

/// Passes bytes through while hashing them and reporting progress: the data file's
/// own sha256 is computed in the same read as the entries' digests.
struct HashingReader<'a, R> {
    inner: R,
    hash: Hasher,
    progress: &'a (dyn Fn(u64) -> bool + Sync),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
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

/// Reads the whole file once: hashes it, and hashes every entry against its name.
/// A `.tar.zst` file is decompressed on the way (its sha256 is of the compressed bytes).
fn scan_full(
    path: &Path,
    name: &str,
    transmit: bool,
    per_entry: bool,
    progress: &(dyn Fn(u64) -> bool + Sync),
) -> Result<(Vec<ScannedEntry>, String), BundleError> {
    let io = |source| BundleError::Io {
        file: name.into(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let raw = BufReader::with_capacity(
        1 << 20,
        HashingReader {
            inner: file,
            hash: Hasher::new(),
            progress,
        },
    );
    let mut hashing = if super::compress::is_compressed(name) {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(raw).map_err(io)?;
        let entries = scan_tar(&mut decoder, name, transmit, per_entry)?;
        std::io::copy(&mut decoder, &mut std::io::sink()).map_err(io)?;
        let mut rest = decoder.finish().into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(io)?;
        return Ok((entries, rest.hash.finish().hex().to_string()));
    } else {
        raw
    };
    let entries = scan_tar(&mut hashing, name, transmit, per_entry)?;
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io)?;
    let rest = hashing.into_inner();
    Ok((entries, rest.hash.finish().hex().to_string()))
}

/// Walks a tar stream, checking every entry's bytes against the digest in its name.
fn scan_tar(
    r: &mut dyn Read,
    name: &str,
    transmit: bool,
    per_entry: bool,
) -> Result<Vec<ScannedEntry>, BundleError> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut block = [0u8; 512];
    let mut buf = vec![0u8; 1 << 20];
    let cut = |pos: u64| BundleError::BadTar {
        file: name.into(),
        offset: pos,
        detail: crate::tr!(
            "file ends in the middle of the archive",
            "文件在归档中途结束"
        ),
    };
    loop {
        r.read_exact(&mut block).map_err(|_| cut(pos))?;
        let Some((digest, size)) = parse_header(&block, name, pos, transmit)? else {
            break;
        };
        let data_offset = pos + 512;
        let mut entry_hash = Hasher::new();
        let mut left = super::layout::padded(size);
        let mut data_left = size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            r.read_exact(&mut buf[..n]).map_err(|_| cut(pos))?;
            let data = (data_left as usize).min(n);
            if per_entry {
                entry_hash.update(&buf[..data]);
            }
            data_left -= data as u64;
            left -= n as u64;
        }
        let actual = entry_hash.finish();
        if per_entry && actual != digest {
            return Err(BundleError::EntryDigest {
                file: name.into(),
                entry: digest.blob_path(),
                actual,
            });
        }
        out.push(ScannedEntry {
            digest,
            data_offset,
            size,
        });
        pos = data_offset + super::layout::padded(size);
    }
    Ok(out)
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
