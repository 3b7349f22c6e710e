//! Where every blob sits in the data files: decided before any byte is downloaded,
//! so that concurrent downloads write straight to their own tar entries.

use crate::digest::Digest;

pub const BLOCK: u64 = 512;
/// Two zero blocks end a tar archive.
pub const END_OF_ARCHIVE: u64 = 2 * BLOCK;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub digest: Digest,
    pub size: u64,
    /// Offset of the entry's 512-byte header; its data follows it.
    pub header_offset: u64,
}

impl Entry {
    pub fn data_offset(&self) -> u64 {
        self.header_offset + BLOCK
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileLayout {
    pub entries: Vec<Entry>,
    pub size: u64,
}

/// `size` rounded up to whole 512-byte blocks; `None` when that does not fit a u64
/// (a size declared by a registry or read from a tar header can be anything).
pub fn checked_padded(size: u64) -> Option<u64> {
    size.div_ceil(BLOCK).checked_mul(BLOCK)
}

/// [`checked_padded`] for sizes already known to fit (a planned layout's entries);
/// saturates instead of wrapping for anything else.
pub fn padded(size: u64) -> u64 {
    checked_padded(size).unwrap_or(u64::MAX)
}

/// The bytes an entry of `size` takes in a tar: its header and padded data.
pub fn entry_span(size: u64) -> Option<u64> {
    checked_padded(size)?.checked_add(BLOCK)
}

/// The largest data file a layout may plan: a file offset is a signed 64-bit
/// number (`off_t`), so nothing larger can be written or seeked to.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("{}", crate::tr!("blob {} declares {} bytes, more than any data file can hold", "数据块 {} 声明的大小为 {} 字节, 超出了数据文件能容纳的大小", .digest, .size))]
    TooLarge { digest: Digest, size: u64 },
}

/// Spreads blobs over `files` data files of about equal size: largest blob first,
/// onto the file that is smallest so far. Deterministic for a given blob set, which
/// is what lets an interrupted save resume into the same files.
pub fn plan(blobs: &[(Digest, u64)], files: usize) -> Result<Vec<FileLayout>, LayoutError> {
    plan_capped(blobs, files, MAX_FILE_SIZE)
}

/// Like [`plan`], but no file grows past `max_size` bytes: a blob that fits in no
/// existing file opens a new one. (A blob that cannot fit even alone is the caller's
/// error to report before planning.) Every sum is checked: sizes come from a
/// registry, and a blob too large for any file is an error, never a wrapped offset.
pub fn plan_capped(
    blobs: &[(Digest, u64)],
    files: usize,
    max_size: u64,
) -> Result<Vec<FileLayout>, LayoutError> {
    let max_size = max_size.min(MAX_FILE_SIZE);
    let mut sorted: Vec<&(Digest, u64)> = blobs.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut layouts = vec![FileLayout::default(); files.max(1)];
    for (digest, size) in sorted {
        let too_large = || LayoutError::TooLarge {
            digest: digest.clone(),
            size: *size,
        };
        let need = entry_span(*size)
            .filter(|n| {
                n.checked_add(END_OF_ARCHIVE)
                    .is_some_and(|t| t <= MAX_FILE_SIZE)
            })
            .ok_or_else(too_large)?;
        let fits = |l: &&mut FileLayout| {
            l.size
                .checked_add(need)
                .and_then(|n| n.checked_add(END_OF_ARCHIVE))
                .is_some_and(|n| n <= max_size)
        };
        let index = match layouts
            .iter_mut()
            .enumerate()
            .filter(|(_, l)| fits(l))
            .min_by_key(|(_, l)| l.size)
        {
            Some((i, _)) => i,
            None => {
                layouts.push(FileLayout::default());
                layouts.len() - 1
            }
        };
        let target = layouts.get_mut(index).ok_or_else(too_large)?;
        let end = target.size.checked_add(need).ok_or_else(too_large)?;
        target.entries.push(Entry {
            digest: digest.clone(),
            size: *size,
            header_offset: target.size,
        });
        target.size = end;
    }
    for l in &mut layouts {
        l.size = l.size.saturating_add(END_OF_ARCHIVE);
    }
    Ok(layouts)
}

/// Bytes of all planned data files together (what save needs on disk).
pub fn total_size(layouts: &[FileLayout]) -> u64 {
    layouts.iter().fold(0u64, |t, l| t.saturating_add(l.size))
}

/// The ustar header of a blob entry `blobs/sha256/<hex>` (the name goes in the
/// ustar prefix/name split, since it is longer than 100 bytes).
pub fn header(digest: &Digest, size: u64, mtime: u64) -> std::io::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(digest.blob_path())?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}

/// The sha256 of a data file's tar headers, the 512-byte blocks in file order, as
/// [`header`] writes them with `mtime`: what a meta records of a plain data file
/// (see `meta::DataFile`), computed without reading the file.
pub fn headers_digest(layout: &FileLayout, mtime: u64) -> std::io::Result<Digest> {
    let mut entries: Vec<&Entry> = layout.entries.iter().collect();
    entries.sort_by_key(|e| e.header_offset);
    let mut h = crate::digest::Hasher::new();
    for e in entries {
        h.update(&header(&e.digest, e.size, mtime)?);
    }
    Ok(h.finish())
}

/// Tests of the data-file formats start from a plain tar of `blobs` laid out as
/// the writer lays them: one file of them at `path`, open for reading, and its plan.
#[cfg(test)]
pub(crate) fn write_test_tar(
    path: &std::path::Path,
    blobs: &[Vec<u8>],
) -> (std::fs::File, FileLayout) {
    use std::os::unix::fs::FileExt;
    let sized: Vec<(Digest, u64)> = blobs
        .iter()
        .map(|b| (Digest::of(b), b.len() as u64))
        .collect();
    let plan = plan(&sized, 1).unwrap().remove(0);
    let tar = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    tar.set_len(plan.size).unwrap();
    for e in &plan.entries {
        tar.write_all_at(&header(&e.digest, e.size, 0).unwrap(), e.header_offset)
            .unwrap();
        let bytes = blobs.iter().find(|b| Digest::of(b) == e.digest).unwrap();
        tar.write_all_at(bytes, e.data_offset()).unwrap();
    }
    (tar, plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u32) -> Digest {
        Digest::of(&i.to_le_bytes())
    }

    #[test]
    fn balances_largest_first_and_dedups() {
        let blobs = vec![
            (d(1), 10240),
            (d(2), 6144),
            (d(3), 5120),
            (d(4), 4096),
            (d(1), 10240),
        ];
        let l = plan(&blobs, 2).unwrap();
        assert_eq!(l.len(), 2);
        let counts: usize = l.iter().map(|f| f.entries.len()).sum();
        assert_eq!(counts, 4, "a blob listed twice is stored once");
        // Largest first onto the smallest file: 10240 | 6144, then 5120 joins 6144, then 4096 joins 10240.
        let data: Vec<Vec<u64>> = l
            .iter()
            .map(|f| f.entries.iter().map(|e| e.size).collect())
            .collect();
        assert_eq!(data, vec![vec![10240, 4096], vec![6144, 5120]]);
    }

    #[test]
    fn offsets_follow_tar_framing() {
        let l = plan(&[(d(1), 1), (d(2), 513)], 1).unwrap();
        let f = &l[0];
        assert_eq!(f.entries[0].size, 513);
        assert_eq!(f.entries[0].header_offset, 0);
        assert_eq!(f.entries[1].header_offset, 512 + 1024);
        assert_eq!(f.size, 512 + 1024 + 512 + 512 + 1024);
    }

    #[test]
    fn header_reads_back_with_the_tar_crate() {
        let digest = d(7);
        let mut bytes = header(&digest, 3, 0).unwrap().to_vec();
        bytes.extend_from_slice(b"abc");
        bytes.resize(512 + 512 + 1024, 0);
        let mut ar = tar::Archive::new(&bytes[..]);
        let entry = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), digest.blob_path());
        assert_eq!(entry.size(), 3);
    }

    #[test]
    fn capped_plans_open_files_as_needed() {
        let blobs: Vec<(Digest, u64)> = (0..10).map(|i| (d(i), 100 * 1024)).collect();
        let l = plan_capped(&blobs, 1, 350 * 1024).unwrap();
        assert_eq!(
            l.len(),
            4,
            "3 blobs of 100K fit in 350K with framing; 10 blobs need 4 files"
        );
        assert!(l.iter().all(|f| f.size <= 350 * 1024));
        assert_eq!(l.iter().map(|f| f.entries.len()).sum::<usize>(), 10);
    }

    #[test]
    fn more_files_than_blobs_gives_empty_archives() {
        let l = plan(&[(d(1), 10)], 3).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l.iter().filter(|f| f.entries.is_empty()).count(), 2);
        assert!(l.iter().all(|f| f.size >= END_OF_ARCHIVE));
    }

    #[test]
    fn a_declared_size_near_2_pow_64_is_refused_not_wrapped() {
        for size in [u64::MAX, u64::MAX - 511, u64::MAX - 1024, i64::MAX as u64] {
            assert_eq!(
                plan(&[(d(1), 10), (d(2), size)], 2),
                Err(LayoutError::TooLarge { digest: d(2), size }),
                "{size}"
            );
        }
        // Two blobs that each fit but not together go to separate files.
        let half = MAX_FILE_SIZE / 2;
        let l = plan(&[(d(1), half), (d(2), half)], 1).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|f| f.size <= MAX_FILE_SIZE));
        assert_eq!(checked_padded(u64::MAX), None);
        assert_eq!(entry_span(u64::MAX - 511), None);
        assert_eq!(padded(u64::MAX), u64::MAX);
    }
}
