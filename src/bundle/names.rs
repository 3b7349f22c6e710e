//! The names a meta gives, checked when it is loaded: a bundle comes from a stick
//! that anyone may have written, and its names become registry paths (repository,
//! tag, rename target) and file paths (data files, base bundles). One check at load
//! protects every command that reads a bundle (verify, upload, export, serve, ls,
//! copy): repositories and tags follow the distribution spec's grammar, so under a
//! `--dst HOST/NAMESPACE` they stay inside the namespace, and file names are plain
//! names, so they stay inside the bundle's folder.

use super::meta::Meta;
use crate::reference::{split_short, valid_host, valid_repository, valid_tag};

/// What is wrong with the first bad name of a meta, in words for the user.
pub fn check(meta: &Meta) -> Result<(), String> {
    let file_name = |what: &str, v: &str| -> Result<(), String> {
        if is_plain_file_name(v) {
            Ok(())
        } else {
            Err(crate::tr!(
                "{what} {v:?} is not a plain file name (it must stay inside the bundle's folder)",
                "{what} {v:?} 不是单纯的文件名 (必须位于镜像包所在的目录中)"
            ))
        }
    };
    file_name(crate::i18n::t("bundle name", "镜像包名称"), &meta.name)?;
    for f in &meta.files {
        file_name(crate::i18n::t("data file", "数据文件"), &f.name)?;
    }
    for b in &meta.bases {
        file_name(crate::i18n::t("base bundle", "基础包"), &b.name)?;
    }
    for i in &meta.images {
        let at = |why: String| {
            format!(
                "{} {:?}: {why}",
                crate::i18n::t("image", "镜像"),
                i.reference
            )
        };
        if !valid_host(&i.registry) {
            return Err(at(crate::tr!(
                "registry {:?} is not a host name",
                "仓库地址 {:?} 不是主机名",
                i.registry
            )));
        }
        check_repository(&i.repository).map_err(at)?;
        if let Some(t) = &i.tag {
            check_tag(t).map_err(at)?;
        }
        if let Some(t) = &i.target {
            check_target(t).map_err(at)?;
        }
        check_media_type(&i.media_type).map_err(at)?;
        for c in &i.children {
            check_media_type(&c.media_type).map_err(at)?;
        }
    }
    let files: std::collections::HashSet<&str> =
        meta.files.iter().map(|f| f.name.as_str()).collect();
    for b in &meta.blobs {
        let at = |why: String| format!("{} {}: {why}", crate::i18n::t("blob", "数据块"), b.digest);
        // image-transmit metas may not know a repository for a blob.
        if !b.repository.is_empty() {
            check_repository(&b.repository).map_err(at)?;
        }
        if let Some(f) = &b.file {
            if !files.contains(f.as_str()) {
                return Err(at(crate::tr!(
                    "its data file {f:?} is not one of the bundle's data files",
                    "其数据文件 {f:?} 不是镜像包的数据文件"
                )));
            }
        }
        if let Some(base) = &b.base {
            file_name(crate::i18n::t("base bundle", "基础包"), base).map_err(at)?;
        }
    }
    Ok(())
}

/// A file name without any directory part: not empty, no `/`, not `.` or `..`, no
/// control characters, at most 255 bytes.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

fn check_repository(r: &str) -> Result<(), String> {
    if valid_repository(r) {
        Ok(())
    } else {
        Err(crate::tr!(
            "repository {r:?} is not a valid repository name (lowercase letters and digits separated by '.', '_', '__' or '-', components joined by '/')",
            "仓库 {r:?} 不是有效的仓库名 (由小写字母和数字组成, 以 '.'、'_'、'__' 或 '-' 分隔, 各段以 '/' 连接)"
        ))
    }
}

fn check_tag(t: &str) -> Result<(), String> {
    if valid_tag(t) {
        Ok(())
    } else {
        Err(crate::tr!(
            "tag {t:?} is not a valid tag (1-128 letters, digits, '_', '.', '-', not starting with '.' or '-')",
            "标签 {t:?} 不是有效的标签 (1-128 个字母、数字、'_'、'.'、'-', 不能以 '.' 或 '-' 开头)"
        ))
    }
}

/// A rename target as save records it: `repository[:tag][@digest]`.
fn check_target(t: &str) -> Result<(), String> {
    let (repo, tag) = split_short(t);
    check_repository(repo)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some((_, digest)) = t.split_once('@') {
        digest
            .parse::<crate::digest::Digest>()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `type/subtype` with RFC 6838's name characters: it is sent as a `Content-Type`.
fn check_media_type(m: &str) -> Result<(), String> {
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    match m.split_once('/') {
        Some((t, s)) if name(t) && name(s) => Ok(()),
        _ => Err(crate::tr!(
            "media type {m:?} is not a media type",
            "媒体类型 {m:?} 不是有效的媒体类型"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_file_names() {
        for good in ["img_full_1.tar", "a.tar.zst", "..x", "x y"] {
            assert!(is_plain_file_name(good), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\nb",
            &"a".repeat(256),
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn rename_targets() {
        let d = crate::digest::Digest::of(b"x");
        assert!(check_target("team/app:2").is_ok());
        assert!(check_target("app").is_ok());
        assert!(check_target(&format!("app@{d}")).is_ok());
        assert!(check_target("../../x:1").is_err());
        assert!(check_target("x:../1").is_err());
        assert!(check_target("x@sha256:12").is_err());
    }

    #[test]
    fn media_types() {
        assert!(check_media_type(crate::manifest::OCI_INDEX).is_ok());
        assert!(check_media_type("application/json\r\nX-Evil: 1").is_err());
        assert!(check_media_type("nonsense").is_err());
    }
}
