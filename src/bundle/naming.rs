//! Bundle names: `DIR/YYYYMMDD/<prefix>_<full|incre>_<YYYYMMDDHHMM>[-n]`, never reusing
//! a name that is taken, except to resume the same unfinished save.

use super::meta::Kind;
use super::writer::{journal_file_name, journal_fingerprint, meta_file_name};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleName {
    pub dir: PathBuf,
    pub name: String,
    /// An unfinished bundle of the same request is being resumed.
    pub resuming: bool,
}

/// Picks the bundle's folder and name. An unfinished bundle (journal, no meta) in
/// today's folder with the same request fingerprint is resumed; otherwise the first
/// free name for this minute is taken (`-2`, `-3`... when a save of the same minute
/// exists, so two saves never overwrite each other).
pub fn choose(
    out: &Path,
    prefix: &str,
    kind: Kind,
    now: chrono::DateTime<chrono::Local>,
    fingerprint: &str,
) -> BundleName {
    let dir = out.join(now.format("%Y%m%d").to_string());
    let stem = format!("{prefix}_{}_", kind.file_word());
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut candidates: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".journal"))
                    .map(str::to_string)
            })
            .filter(|n| n.starts_with(&stem))
            .collect();
        candidates.sort();
        for name in candidates {
            if !dir.join(meta_file_name(&name)).exists()
                && journal_fingerprint(&dir, &name).as_deref() == Some(fingerprint)
            {
                return BundleName {
                    dir,
                    name,
                    resuming: true,
                };
            }
        }
    }
    let base = format!("{stem}{}", now.format("%Y%m%d%H%M"));
    let mut n = 1;
    loop {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if !is_taken(&dir, &name) {
            return BundleName {
                dir,
                name,
                resuming: false,
            };
        }
        n += 1;
    }
}

fn is_taken(dir: &Path, name: &str) -> bool {
    if dir.join(meta_file_name(name)).exists() || dir.join(journal_file_name(name)).exists() {
        return true;
    }
    let prefix = format!("{name}_");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn same_minute_gets_a_new_name_and_unfinished_is_resumed() {
        let tmp = tempfile::tempdir().unwrap();
        let now = chrono::Local
            .with_ymd_and_hms(2026, 11, 24, 15, 30, 0)
            .unwrap();
        let first = choose(tmp.path(), "img", Kind::Full, now, "fp");
        assert_eq!(first.name, "img_full_202611241530");
        assert_eq!(first.dir, tmp.path().join("20261124"));
        std::fs::create_dir_all(&first.dir).unwrap();
        std::fs::write(first.dir.join("img_full_202611241530_meta.yaml"), "x").unwrap();
        let second = choose(tmp.path(), "img", Kind::Full, now, "fp");
        assert_eq!(second.name, "img_full_202611241530-2");
        assert!(!second.resuming);
        std::fs::write(
            second.dir.join("img_full_202611241530-2.journal"),
            "{\"fingerprint\":\"fp\",\"layout\":\"l\"}\n",
        )
        .unwrap();
        let again = choose(tmp.path(), "img", Kind::Full, now, "fp");
        assert_eq!(again.name, "img_full_202611241530-2");
        assert!(again.resuming);
        let other = choose(tmp.path(), "img", Kind::Full, now, "other-request");
        assert_eq!(other.name, "img_full_202611241530-3");
        let inc = choose(tmp.path(), "img", Kind::Incremental, now, "fp");
        assert_eq!(inc.name, "img_incre_202611241530");
    }
}
