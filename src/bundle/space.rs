//! Free space, checked before the first byte of a bundle is written: a save that
//! cannot fit is refused with both numbers, instead of filling the disk and failing
//! half-way (a registry may also declare a layer far larger than it sends).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error("{}", crate::tr!("not enough free space in {}: the bundle needs {} ({} bytes), {} ({} bytes) are free", "{} 的可用空间不足: 镜像包需要 {} ({} 字节), 可用 {} ({} 字节)", .dir, indicatif::HumanBytes(*.needed), .needed, indicatif::HumanBytes(*.available), .available))]
    TooSmall {
        dir: String,
        needed: u64,
        available: u64,
    },
    #[error("{}", crate::tr!("cannot read the free space of {}: {}", "无法读取 {} 的可用空间: {}", .dir, crate::i18n::io_error(.source)))]
    Statvfs { dir: String, source: std::io::Error },
}

/// Bytes an unprivileged user may still write on the file system of `dir`.
pub fn free_space(dir: &Path) -> Result<u64, SpaceError> {
    let s = rustix::fs::statvfs(dir).map_err(|e| SpaceError::Statvfs {
        dir: dir.display().to_string(),
        source: e.into(),
    })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Refuses when `needed` bytes do not fit in the free space of `dir`.
pub fn check_free_space(dir: &Path, needed: u64) -> Result<(), SpaceError> {
    let available = free_space(dir)?;
    if needed > available {
        return Err(SpaceError::TooSmall {
            dir: dir.display().to_string(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Before the first byte of bundle `name` in `dir`: its data files (`layouts`)
/// must fit in the free space, twice over with zstd (a compressed copy is written
/// beside each tar before the tar is removed), less what an interrupted run of the
/// same save has written already.
pub fn check_bundle_fits(
    dir: &Path,
    name: &str,
    layouts: &[super::layout::FileLayout],
    compress: bool,
) -> Result<(), SpaceError> {
    let total = super::layout::total_size(layouts);
    let total = if compress {
        total.saturating_mul(2)
    } else {
        total
    };
    let partials =
        (0..layouts.len()).map(|i| format!("{}.partial", super::writer::data_file_name(name, i)));
    check_free_space(dir, total.saturating_sub(allocated(dir, partials)))
}

/// Bytes already on disk (allocated, not just the apparent size of a sparse file)
/// of the files of `dir` named in `names`: what a resumed save has written already.
pub fn allocated(dir: &Path, names: impl IntoIterator<Item = String>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    names
        .into_iter()
        .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
        .fold(0u64, |t, m| {
            t.saturating_add(m.blocks().saturating_mul(512))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_fit_with_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).unwrap();
        assert!(free > 0);
        check_free_space(dir.path(), 1).unwrap();
        let e = check_free_space(dir.path(), u64::MAX).unwrap_err();
        let SpaceError::TooSmall {
            needed, available, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(*needed, u64::MAX);
        assert!(*available > 0);
        let text = e.to_string();
        assert!(text.contains(&u64::MAX.to_string()), "{text}");
        assert!(text.contains(&available.to_string()), "{text}");
        assert!(check_free_space(&dir.path().join("missing"), 1).is_err());
    }

    #[test]
    fn sparse_files_count_only_their_written_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("a")).unwrap();
        f.set_len(1 << 30).unwrap();
        std::fs::write(dir.path().join("b"), vec![1u8; 1 << 16]).unwrap();
        let n = allocated(dir.path(), ["a".to_string(), "b".into(), "none".into()]);
        assert!((1 << 16..1 << 20).contains(&n), "{n}");
    }
}
