//! Bundle names: `DIR/YYYYMMDD/<prefix>_<full|incre>_<YYYYMMDDHHMM>[-n]`, never reusing
//! a name that is taken, except to resume the same unfinished save.

use super::meta::Kind;
use super::writer::{journal_file_name, journal_fingerprint, meta_file_name};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct BundleName {
    pub dir: PathBuf,
    pub name: String,
    /// An unfinished bundle of the same request is being resumed.
    pub resuming: bool,
    /// The bundle's journal, opened and exclusively locked: the claim on the name
    /// that keeps two ferry processes from writing the same bundle.
    pub journal: File,
}

/// Picks the bundle's folder and name, and claims it by creating and locking its
/// journal. An unfinished bundle (journal, no meta) in today's folder with the same
/// request fingerprint is resumed, unless another ferry holds its lock; otherwise the
/// first free name for this minute is taken (`-2`, `-3`... when a save of the same
/// minute exists, so two saves never overwrite each other).
pub fn choose(
    out: &Path,
    prefix: &str,
    kind: Kind,
    now: chrono::DateTime<chrono::Local>,
    fingerprint: &str,
) -> std::io::Result<BundleName> {
    let dir = out.join(now.format("%Y%m%d").to_string());
    std::fs::create_dir_all(&dir)?;
    let stem = format!("{prefix}_{}_", kind.file_word());
    let mut candidates: Vec<String> = std::fs::read_dir(&dir)?
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
        if dir.join(meta_file_name(&name)).exists()
            || journal_fingerprint(&dir, &name).as_deref() != Some(fingerprint)
        {
            continue;
        }
        let Ok(journal) = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(journal_file_name(&name)))
        else {
            continue;
        };
        if journal.try_lock().is_ok() {
            return Ok(BundleName {
                dir,
                name,
                resuming: true,
                journal,
            });
        }
    }
    let base = format!("{stem}{}", now.format("%Y%m%d%H%M"));
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if is_taken(&dir, &name) {
            continue;
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join(journal_file_name(&name)))
        {
            Ok(journal) => {
                if journal.try_lock().is_ok() {
                    return Ok(BundleName {
                        dir,
                        name,
                        resuming: false,
                        journal,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("the name search is unbounded")
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

/// A file name prefix must stay a name: no path separators, no `..`, nothing a
/// file system refuses, so the bundle lands in its folder under `--out`.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let bad = prefix.is_empty()
        || prefix == "."
        || prefix.contains(['/', '\\', '\0'])
        || prefix.contains("..")
        || prefix.starts_with('-')
        || prefix.len() > 100;
    if bad {
        return Err(crate::tr!(
            "{prefix:?} is not a file name prefix (letters, digits, '-', '_', '.'; no '/' or '..')",
            "{prefix:?} 不是合法的文件名前缀 (字母、数字、'-'、'_'、'.'; 不能含 '/' 或 '..')"
        ));
    }
    Ok(())
}

/// A sort key that puts bundle names in the order they were created: by the
/// `YYYYMMDDHHMM` stamp and `-N` suffix that ferry and image-transmit give them, so
/// "upload these first" lists a chain of bases oldest first. Other names sort last,
/// by name.
pub fn creation_order(name: &str) -> (u8, String, u32, String) {
    let last = name.rsplit('_').next().unwrap_or(name);
    let (stamp, n) = match last.split_once('-') {
        Some((s, n)) => (s, n.parse().unwrap_or(u32::MAX)),
        None => (last, 1),
    };
    if stamp.len() >= 8 && stamp.chars().all(|c| c.is_ascii_digit()) {
        (0, stamp.to_string(), n, name.to_string())
    } else {
        (1, String::new(), 0, name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stay_file_names() {
        for good in ["img", "site-a_v1.2", "镜像"] {
            assert!(check_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "../../evil", "a/b", "a\\b", "..", ".", "-x"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn creation_order_follows_the_stamp_not_the_prefix() {
        let mut names = vec![
            "zz_inc_202612070900",
            "aa_full_202611300626-2",
            "mm_inc_202612010000",
            "aa_full_202611300626",
            "hand-named",
        ];
        names.sort_by_key(|n| creation_order(n));
        assert_eq!(
            names,
            vec![
                "aa_full_202611300626",
                "aa_full_202611300626-2",
                "mm_inc_202612010000",
                "zz_inc_202612070900",
                "hand-named",
            ]
        );
    }
    use chrono::TimeZone;

    #[test]
    fn same_minute_gets_a_new_name_and_unfinished_is_resumed() {
        let tmp = tempfile::tempdir().unwrap();
        let now = chrono::Local
            .with_ymd_and_hms(2026, 11, 24, 15, 30, 0)
            .unwrap();
        let first = choose(tmp.path(), "img", Kind::Full, now, "fp").unwrap();
        assert_eq!(first.name, "img_full_202611241530");
        assert_eq!(first.dir, tmp.path().join("20261124"));
        std::fs::write(first.dir.join("img_full_202611241530_meta.yaml"), "x").unwrap();
        drop(first);
        let second = choose(tmp.path(), "img", Kind::Full, now, "fp").unwrap();
        assert_eq!(second.name, "img_full_202611241530-2");
        assert!(!second.resuming);
        std::fs::write(
            second.dir.join("img_full_202611241530-2.journal"),
            "{\"fingerprint\":\"fp\",\"layout\":\"l\"}\n",
        )
        .unwrap();
        // While the second save runs (holds the lock), an identical save takes a new name.
        let concurrent = choose(tmp.path(), "img", Kind::Full, now, "fp").unwrap();
        assert_eq!(concurrent.name, "img_full_202611241530-3");
        assert!(!concurrent.resuming);
        drop(second);
        let again = choose(tmp.path(), "img", Kind::Full, now, "fp").unwrap();
        assert_eq!(again.name, "img_full_202611241530-2");
        assert!(
            again.resuming,
            "an unlocked unfinished bundle of the same request is resumed"
        );
        let other = choose(tmp.path(), "img", Kind::Full, now, "other-request").unwrap();
        assert_eq!(other.name, "img_full_202611241530-4");
        let inc = choose(tmp.path(), "img", Kind::Incremental, now, "fp").unwrap();
        assert_eq!(inc.name, "img_incre_202611241530");
    }
}
