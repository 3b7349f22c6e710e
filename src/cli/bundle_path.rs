//! A bundle named by its folder: `ferry upload data/20261124` works like naming the
//! folder's `..._meta.yaml`. One resolver for every command that takes a META.
//!
//! The rule (README, "Naming a bundle"): a folder holding exactly one meta means that
//! bundle; a folder holding several is a usage error that lists them, oldest first,
//! because picking one silently (the newest is often an increment whose base must go
//! first) could push the wrong thing across the gap. A folder without a meta of its
//! own is searched one level down (`data/` holds one folder per day).

use super::args::Command;
use super::run::UsageError;
use crate::engine::report::Reporter;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The suffix of ferry's and image-transmit's meta files.
const META_SUFFIX: &str = "_meta.yaml";

/// Replaces a folder given as a command's META (and `save --inc`) with the meta in it.
pub fn resolve_in(command: &mut Command, reporter: &Reporter) -> Result<()> {
    let one = |p: &mut PathBuf| -> Result<()> {
        if p.is_dir() {
            let meta = resolve(p)?;
            reporter.info(&crate::tr!(
                "{}: using the bundle {}",
                "{}: 使用镜像包 {}",
                p.display(),
                meta.display()
            ));
            *p = meta;
        }
        Ok(())
    };
    match command {
        Command::Upload(a) => one(&mut a.meta),
        Command::Verify(a) => one(&mut a.meta),
        Command::Ls(a) => one(&mut a.meta),
        Command::Export(a) => one(&mut a.meta),
        Command::Serve(a) => one(&mut a.meta),
        Command::Sign(a) => one(&mut a.meta),
        Command::Save(a) => a.bases.iter_mut().try_for_each(one),
        _ => Ok(()),
    }
}

/// The meta that a folder stands for (see the module doc); a file is returned as it
/// is. A folder with several bundles is a usage error (exit 2: the command line must
/// say which); one with none is an error about the folder (exit 1, as a missing file).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut metas = metas_in(path);
    if metas.is_empty() {
        let mut subdirs: Vec<PathBuf> = read_dir_sorted(path)
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        metas = subdirs.iter().flat_map(|d| metas_in(d)).collect();
    }
    sort_oldest_first(&mut metas);
    match metas.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(anyhow::anyhow!(if has_unfinished(path) {
            crate::tr!(
                "the directory {} holds an unfinished bundle (data files, no meta): run the same save again to finish it",
                "目录 {} 中是未完成的镜像包 (有数据文件, 没有元数据): 再次运行同一保存命令即可完成",
                path.display()
            )
        } else {
            crate::tr!(
                "the directory {} holds no bundle (no *{META_SUFFIX} file)",
                "目录 {} 中没有镜像包 (没有 *{META_SUFFIX} 文件)",
                path.display()
            )
        })),
        many => {
            let list: Vec<String> = many.iter().map(|m| format!("  {}", m.display())).collect();
            let n = many.len();
            Err(UsageError(crate::tr!(
                "{} holds {n} bundles; name one of them (oldest first):\n{}",
                "{} 中有 {n} 个镜像包; 请指定其中一个 (从旧到新):\n{}",
                path.display(),
                list.join("\n")
            ))
            .into())
        }
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn metas_in(dir: &Path) -> Vec<PathBuf> {
    read_dir_sorted(dir)
        .into_iter()
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(META_SUFFIX) && n.len() > META_SUFFIX.len())
        })
        .collect()
}

/// Oldest first, by the time stamp in the bundle name (then by path).
fn sort_oldest_first(metas: &mut [PathBuf]) {
    metas.sort_by_key(|p| {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .trim_end_matches(META_SUFFIX)
            .to_string();
        (crate::bundle::naming::creation_order(&name), p.clone())
    });
}

/// Whether a folder holds the leftovers of a save that did not finish.
fn has_unfinished(dir: &Path) -> bool {
    read_dir_sorted(dir).iter().any(|p| {
        p.extension()
            .is_some_and(|e| e == "partial" || e == "journal")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn a_folder_means_its_only_meta() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let meta = d.join("img_full_202611241530_meta.yaml");
        touch(&meta);
        touch(&d.join("img_full_202611241530_1.tar"));
        assert_eq!(resolve(d).unwrap(), meta);
        assert_eq!(resolve(&meta).unwrap(), meta, "a file stays itself");
    }

    #[test]
    fn several_metas_are_listed_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        touch(&d.join("img_incre_202612010900_meta.yaml"));
        touch(&d.join("zz_full_202611241530_meta.yaml"));
        let e = resolve(d).unwrap_err().to_string();
        let full = e.find("zz_full").unwrap();
        let inc = e.find("img_incre").unwrap();
        assert!(full < inc, "{e}");
        assert!(e.contains("2 bundles"), "{e}");
    }

    #[test]
    fn an_empty_or_unfinished_folder_says_which() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(resolve(d).unwrap_err().to_string().contains("no bundle"));
        touch(&d.join("img_full_202611241530_1.tar.partial"));
        assert!(resolve(d).unwrap_err().to_string().contains("unfinished"));
    }

    #[test]
    fn a_parent_folder_is_searched_one_level_down() {
        let tmp = tempfile::tempdir().unwrap();
        let day = tmp.path().join("20261124");
        std::fs::create_dir(&day).unwrap();
        let meta = day.join("img_full_202611241530_meta.yaml");
        touch(&meta);
        assert_eq!(resolve(tmp.path()).unwrap(), meta);
    }
}
