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

pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Spreads blobs over `files` data files of about equal size: largest blob first,
/// onto the file that is smallest so far. Deterministic for a given blob set, which
/// is what lets an interrupted save resume into the same files.
pub fn plan(blobs: &[(Digest, u64)], files: usize) -> Vec<FileLayout> {
    plan_capped(blobs, files, u64::MAX)
}

/// Like [`plan`], but no file grows past `max_size` bytes: a blob that fits in no
/// existing file opens a new one. (A blob that cannot fit even alone is the caller's
/// error to report before planning.)
pub fn plan_capped(blobs: &[(Digest, u64)], files: usize, max_size: u64) -> Vec<FileLayout> {
    let mut sorted: Vec<&(Digest, u64)> = blobs.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut layouts = vec![FileLayout::default(); files.max(1)];
    for (digest, size) in sorted {
        let need = BLOCK + padded(*size);
        let fits = |l: &&mut FileLayout| l.size.saturating_add(need + END_OF_ARCHIVE) <= max_size;
        let target = match layouts.iter_mut().filter(fits).min_by_key(|l| l.size) {
            Some(t) => t,
            None => {
                layouts.push(FileLayout::default());
                layouts.last_mut().expect("just pushed")
            }
        };
        target.entries.push(Entry {
            digest: digest.clone(),
            size: *size,
            header_offset: target.size,
        });
        target.size += need;
    }
    for l in &mut layouts {
        l.size += END_OF_ARCHIVE;
    }
    layouts
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
        let l = plan(&blobs, 2);
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
        let l = plan(&[(d(1), 1), (d(2), 513)], 1);
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
        let l = plan_capped(&blobs, 1, 350 * 1024);
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
        let l = plan(&[(d(1), 10)], 3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.iter().filter(|f| f.entries.is_empty()).count(), 2);
        assert!(l.iter().all(|f| f.size >= END_OF_ARCHIVE));
    }
}
