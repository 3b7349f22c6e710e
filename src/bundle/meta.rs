//! `meta.yaml`: a bundle's table of contents and the base of the next increment.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The value of `format:` in every ferry meta; anything else is not a ferry bundle.
pub const FORMAT_NAME: &str = "ferry-bundle";
/// The newest format version this ferry reads and writes. Version 2 metas may
/// record a plain data file by `headers_sha256` instead of its whole-file `sha256`;
/// a meta that does not is written as version 1, which older ferry versions read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this ferry reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Incremental,
}

impl Kind {
    /// The word used in file names, as image-transmit names them.
    pub fn file_word(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Incremental => "incre",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Manifest,
    Config,
    Layer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    pub tool: String,
    pub created: String,
    pub name: String,
    pub kind: Kind,
    /// Bundles whose blobs this one leaves out: their name and the sha256 of their meta.
    #[serde(default)]
    pub bases: Vec<BaseRef>,
    /// Platform filter applied to indexes (`os/arch[/variant]`); empty means all.
    #[serde(default)]
    pub platforms: Vec<String>,
    pub files: Vec<DataFile>,
    pub images: Vec<Image>,
    #[serde(default)]
    pub blobs: Vec<BlobRecord>,
    #[serde(default)]
    pub failed: Vec<Failure>,
    /// The tag selectors of the image list (`repo:~^v1\.`, `repo:semver(>=1.2)`...)
    /// and the tags each expanded to. Optional: metas without it (and ferry versions
    /// that do not know it, which skip unknown keys) read as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selections: Vec<Selection>,
}

/// One tag selector of the list and what it expanded to at the source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The list line as given (`team/app:semver(>=1.2 <2)|newest(3) -> mirror/app`).
    pub selector: String,
    /// The repository whose tags were listed (`host/team/app`).
    pub repository: String,
    /// The tags it selected, newest first.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Tags it matched that an exclusion (`!team/app:~-rc`) removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaseRef {
    pub name: String,
    pub meta_sha256: String,
}

/// One data file. Its checksum is one of two, so that save hashes every byte once:
///
/// - `sha256`: of the whole file. zstd files (hashed as they are compressed),
///   image-transmit's files and the plain files of older ferry versions.
/// - `headers_sha256`: of the file's tar headers, the 512-byte blocks in file
///   order, for plain tar files: a blob is written at its offset while it
///   downloads, so no whole-file hash can be had without reading it all again.
///   Every other byte is pinned too: each entry's data by the digest its header
///   names (checked whenever a blob is read out), padding and the end of the
///   archive by being zeros, the length by `size`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub name: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_sha256: Option<String>,
    pub blobs: u64,
}

impl DataFile {
    /// The format version a meta with this file needs.
    pub fn version_needed(&self) -> u32 {
        if self.headers_sha256.is_some() {
            2
        } else {
            1
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The reference as the user gave it.
    pub reference: String,
    pub registry: String,
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    /// `repository:tag` at the target when the list renamed the image (`SOURCE -> TARGET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a signature, attestation, SBOM or other referrer: the manifest it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// For indexes and manifest lists: the child manifests saved with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildManifest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildManifest {
    pub digest: Digest,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub kind: BlobKind,
    /// The data file of this bundle that holds the blob...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// ...or the base bundle that carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// A repository that uses it: where upload can mount it from, and where it checks
    /// that a base's blob is already in the target.
    pub repository: String,
    /// In a `.tar.zst` data file: the offset of the zstd frame holding its entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub reference: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{}", crate::tr!("cannot read {}: {}", "无法读取 {}: {}", .path, crate::i18n::io_error(.source)))]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("{} is not a readable bundle meta: {}", "{} 不是可读的镜像包元数据: {}", .path, .detail))]
    Malformed { path: String, detail: String },
    #[error("{}", crate::tr!("{} is not a ferry bundle meta (format {:?}, expected {:?})", "{} 不是 ferry 镜像包的元数据 (格式为 {:?}, 应为 {:?})", .path, .found, FORMAT_NAME))]
    NotFerry { path: String, found: String },
    #[error("{}", crate::tr!("{} has bundle format version {}; this ferry reads versions {} to {} (upgrade ferry)", "{} 的镜像包格式版本为 {}; 此版本的 ferry 只能读取版本 {} 至 {} (请升级 ferry)", .path, .found, OLDEST_FORMAT_VERSION, FORMAT_VERSION))]
    UnknownVersion { path: String, found: u32 },
    #[error("{}", crate::tr!("{} is refused: {}", "{} 被拒绝: {}", .path, .detail))]
    Unsafe { path: String, detail: String },
}

impl Meta {
    /// Reads and checks a meta file; returns it with the sha256 of its bytes (how an
    /// increment names its base).
    pub fn load(path: &Path) -> Result<(Meta, String), MetaError> {
        let p = path.display().to_string();
        let bytes = read_limited(path, &p)?;
        let meta = Self::parse(&bytes, &p)?;
        Ok((meta, hex::encode(sha2::Sha256::digest(&bytes))))
    }

    /// Reads a ferry meta or an image-transmit meta. Returns the meta, the sha256 of
    /// the file, and the manifests an image-transmit meta holds inline.
    pub fn load_any(path: &Path) -> Result<Loaded, MetaError> {
        let p = path.display().to_string();
        let bytes = read_limited(path, &p)?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        match Self::parse(&bytes, &p) {
            Ok(meta) => Ok(Loaded {
                meta,
                sha256,
                inline_manifests: Default::default(),
                transmit: false,
            }),
            Err(MetaError::NotFerry { .. })
                if std::str::from_utf8(&bytes).is_ok_and(super::transmit::looks_like) =>
            {
                let c =
                    super::transmit::convert(std::str::from_utf8(&bytes).unwrap_or_default(), &p)?;
                Ok(Loaded {
                    meta: c.meta,
                    sha256,
                    inline_manifests: c.manifests,
                    transmit: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    pub fn parse(bytes: &[u8], path: &str) -> Result<Meta, MetaError> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
            /// Present only when a second top-level `blobs:` key hides beside the
            /// list that the fast reader took out.
            blobs: Option<serde::de::IgnoredAny>,
        }
        let text = std::str::from_utf8(bytes).map_err(|_| MetaError::Malformed {
            path: path.into(),
            detail: crate::tr!("not UTF-8 text", "不是 UTF-8 文本"),
        })?;
        // The blob list is most of a large meta and is written in one regular shape:
        // read it with a fast line reader, and everything else with the YAML parser
        // (falling back to it for the whole file if the list is not in that shape).
        let (rest, fast_blobs) = match read_blob_list(text) {
            Some((rest, blobs)) => (std::borrow::Cow::Owned(rest), Some(blobs)),
            None => (std::borrow::Cow::Borrowed(text), None),
        };
        let text: &str = &rest;
        // One YAML pass when all is well (a 20,000-blob base is read on every
        // increment); the head alone is read to say what is wrong when it is not.
        let head_error = |e: &dyn std::fmt::Display| -> MetaError {
            let malformed = MetaError::Malformed {
                path: path.into(),
                detail: crate::i18n::yaml_error(&e.to_string()),
            };
            let head: Head = match serde_saphyr::from_str(text) {
                Ok(h) => h,
                Err(_) => return malformed,
            };
            match check_head(head.format.as_deref(), head.version, path) {
                Err(e) => e,
                Ok(()) => malformed,
            }
        };
        let mut meta: Meta = serde_saphyr::from_str(text).map_err(|e| head_error(&e))?;
        check_head(Some(&meta.format), Some(meta.version), path)?;
        // The fast reader took one `blobs:` list out; a second one beside it would
        // have been a duplicate key. The YAML parser looks when any top-level line
        // is not a plain key other than `blobs` (a quoted or escaped key, `? `...).
        if fast_blobs.is_some() && !plain_top_keys_without_blobs(text) {
            let head: Head = serde_saphyr::from_str(text).map_err(|e| head_error(&e))?;
            if head.blobs.is_some() {
                return Err(MetaError::Malformed {
                    path: path.into(),
                    detail: crate::tr!("duplicate top-level key `blobs`", "顶层键 `blobs` 重复"),
                });
            }
        }
        if let Some(blobs) = fast_blobs {
            meta.blobs = blobs;
        }
        meta.sanitize_text();
        meta.check_names(path)?;
        meta.check_checksums(path)?;
        Ok(meta)
    }

    /// Every data file records a checksum (a whole-file `sha256`, or for a plain
    /// tar file in a version 2 meta, `headers_sha256`), in hex.
    fn check_checksums(&self, path: &str) -> Result<(), MetaError> {
        let hex = |v: &str| v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit());
        for f in &self.files {
            let ok = match (&f.headers_sha256, f.sha256.is_empty()) {
                (None, false) => hex(&f.sha256),
                (Some(h), true) => {
                    hex(h) && self.version >= 2 && !super::compress::is_compressed(&f.name)
                }
                _ => false,
            };
            if !ok {
                return Err(MetaError::Malformed {
                    path: path.into(),
                    detail: crate::tr!(
                        "data file {} records no usable checksum (sha256, or headers_sha256 for a plain tar file)",
                        "数据文件 {} 没有可用的校验和 (sha256, 或普通 tar 文件的 headers_sha256)",
                        f.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// The format version this meta needs: 2 when a data file is recorded by its
    /// headers' digest, else 1 (which older ferry versions read).
    pub fn version_needed(&self) -> u32 {
        self.files
            .iter()
            .map(DataFile::version_needed)
            .max()
            .unwrap_or(OLDEST_FORMAT_VERSION)
    }

    /// Refuses a meta whose names could reach outside the target namespace or the
    /// bundle's folder (see [`super::names`]).
    pub fn check_names(&self, path: &str) -> Result<(), MetaError> {
        super::names::check(self).map_err(|detail| MetaError::Unsafe {
            path: path.into(),
            detail,
        })
    }

    pub fn to_yaml(&self) -> Result<String, MetaError> {
        let mut clean = std::borrow::Cow::Borrowed(self);
        if self.has_unsafe_text() {
            clean.to_mut().sanitize_text();
        }
        serde_saphyr::to_string(&*clean).map_err(|e| MetaError::Malformed {
            path: self.name.clone(),
            detail: e.to_string(),
        })
    }

    /// The free text of a meta (failure reasons, references as given, tool, time,
    /// platforms) without terminal control sequences: it is printed by `ls`,
    /// `verify` and `upload`, and copied into the next meta.
    pub fn sanitize_text(&mut self) {
        let clean = |s: &mut String| {
            if let std::borrow::Cow::Owned(c) = crate::text::sanitize(s) {
                *s = c;
            }
        };
        clean(&mut self.tool);
        clean(&mut self.created);
        self.platforms.iter_mut().for_each(clean);
        for f in &mut self.failed {
            clean(&mut f.reference);
            clean(&mut f.reason);
        }
        for sel in &mut self.selections {
            clean(&mut sel.selector);
            clean(&mut sel.repository);
            sel.tags.iter_mut().for_each(clean);
            sel.excluded.iter_mut().for_each(clean);
        }
        for i in &mut self.images {
            clean(&mut i.reference);
            for c in &mut i.children {
                if let Some(p) = c.platform.as_mut() {
                    clean(p);
                }
            }
        }
    }

    /// The images this bundle lacks because they failed at save time, one a line
    /// with why, under a heading that says so; `None` when nothing failed.
    pub fn missing_images(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let n = self.failed.len();
        let mut out = if n == 1 {
            crate::tr!(
                "bundle {} lacks 1 image that failed at save time:",
                "镜像包 {} 缺少 1 个保存时失败的镜像:",
                self.name
            )
        } else {
            crate::tr!(
                "bundle {} lacks {n} images that failed at save time:",
                "镜像包 {} 缺少 {n} 个保存时失败的镜像:",
                self.name
            )
        };
        for f in &self.failed {
            out.push_str(&format!("\n  {}: {}", f.reference, f.reason));
        }
        Some(out)
    }

    fn has_unsafe_text(&self) -> bool {
        let bad = |s: &str| matches!(crate::text::sanitize(s), std::borrow::Cow::Owned(_));
        bad(&self.tool)
            || bad(&self.created)
            || self.platforms.iter().any(|p| bad(p))
            || self
                .failed
                .iter()
                .any(|f| bad(&f.reference) || bad(&f.reason))
            || self.selections.iter().any(|s| {
                bad(&s.selector)
                    || bad(&s.repository)
                    || s.tags.iter().chain(&s.excluded).any(|t| bad(t))
            })
            || self.images.iter().any(|i| {
                bad(&i.reference)
                    || i.children
                        .iter()
                        .any(|c| c.platform.as_deref().is_some_and(bad))
            })
    }
}

use sha2::Digest as _;

/// The largest meta ferry reads: far more than the blob list of any real bundle
/// (about 200 bytes a blob), and a bound on what a hostile file can make it hold.
pub const MAX_META_BYTES: u64 = 256 * 1024 * 1024;

fn read_limited(path: &Path, p: &str) -> Result<Vec<u8>, MetaError> {
    use std::io::Read;
    let read = |source| MetaError::Read {
        path: p.into(),
        source,
    };
    let file = crate::transport::file_io::open_regular(path).map_err(read)?;
    // Sized once from the file's length (bounded): no regrowing a large meta.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(hint.min(MAX_META_BYTES + 1)).unwrap_or(0));
    file.take(MAX_META_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err(MetaError::Malformed {
            path: p.into(),
            detail: crate::tr!("larger than {} bytes", "超过 {} 字节", MAX_META_BYTES),
        });
    }
    Ok(bytes)
}

/// A meta as read from disk, in either format.
pub struct Loaded {
    pub meta: Meta,
    pub sha256: String,
    pub inline_manifests: std::collections::HashMap<Digest, Vec<u8>>,
    /// An image-transmit bundle: entries named `<hex>.<ext>`, no file digests.
    pub transmit: bool,
}

/// Cuts the top-level `blobs:` list out of a meta: (the text without it, the list).
/// Whether every line at column 0 is a plain `key:` other than `blobs:` (or a
/// comment or document marker): then no second top-level `blobs` key hides there.
fn plain_top_keys_without_blobs(text: &str) -> bool {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with([' ', '-', '#']))
        .all(|l| {
            l == "---"
                || l.split_once(':').is_some_and(|(key, _)| {
                    key != "blobs"
                        && !key.is_empty()
                        && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        })
}

/// A meta's `format` and `version` must be ferry's.
fn check_head(format: Option<&str>, version: Option<u32>, path: &str) -> Result<(), MetaError> {
    match format {
        Some(FORMAT_NAME) => {}
        other => {
            return Err(MetaError::NotFerry {
                path: path.into(),
                found: other.unwrap_or("none").into(),
            })
        }
    }
    if !version.is_some_and(|v| (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&v)) {
        return Err(MetaError::UnknownVersion {
            path: path.into(),
            found: version.unwrap_or(0),
        });
    }
    Ok(())
}

/// The top-level blob list read by [`blob_list_prefix`] in one pass, and the text
/// without it; `None` when there is none or it is not in ferry's shape.
fn read_blob_list(text: &str) -> Option<(String, Vec<BlobRecord>)> {
    let start = if text.starts_with("blobs:\n") {
        0
    } else {
        text.find("\nblobs:\n")? + 1
    };
    let body = start + "blobs:\n".len();
    let (blobs, len) = blob_list_prefix(text.get(body..)?)?;
    let end = body + len;
    Some((format!("{}{}", &text[..start], &text[end..]), blobs))
}

/// The text without its top-level blob list, and the list's text (for tests).
#[cfg(test)]
fn split_blobs(text: &str) -> Option<(String, &str)> {
    let start = if text.starts_with("blobs:\n") {
        0
    } else {
        text.find("\nblobs:\n")? + 1
    };
    let body = start + "blobs:\n".len();
    let end = text[body..]
        .match_indices('\n')
        .map(|(i, _)| body + i + 1)
        .find(|&i| {
            text[i..]
                .chars()
                .next()
                .is_some_and(|c| c != ' ' && c != '-')
        })
        .unwrap_or(text.len());
    Some((
        format!("{}{}", &text[..start], &text[end..]),
        &text[body..end],
    ))
}

/// Reads a blob list in the shape ferry writes it (`- digest: ...` then `  key:
/// value` lines with plain or double-quoted scalars); `None` for anything else.
#[cfg(test)]
fn parse_blob_list(list: &str) -> Option<Vec<BlobRecord>> {
    match blob_list_prefix(list)? {
        (blobs, len) if len == list.len() => Some(blobs),
        _ => None,
    }
}

/// Reads blob records from the start of `text` up to the first line that is not
/// part of the list (one at column 0 other than `- `); returns them and the length
/// of the list's text.
fn blob_list_prefix(text: &str) -> Option<(Vec<BlobRecord>, usize)> {
    /// A record being read: every key at most once, the required ones present.
    #[derive(Default)]
    struct Fields<'a> {
        digest: Option<&'a str>,
        size: Option<&'a str>,
        kind: Option<&'a str>,
        file: Option<&'a str>,
        base: Option<&'a str>,
        repository: Option<&'a str>,
        offset: Option<&'a str>,
    }
    impl Fields<'_> {
        fn record(&self) -> Option<BlobRecord> {
            Some(BlobRecord {
                digest: self.digest?.parse().ok()?,
                size: self.size?.parse().ok()?,
                kind: match self.kind? {
                    "manifest" => BlobKind::Manifest,
                    "config" => BlobKind::Config,
                    "layer" => BlobKind::Layer,
                    _ => return None,
                },
                file: self.file.map(str::to_string),
                base: self.base.map(str::to_string),
                repository: self.repository?.to_string(),
                offset: match self.offset {
                    Some(o) => Some(o.parse().ok()?),
                    None => None,
                },
            })
        }
    }
    // A rough count of records, so the list is allocated once.
    let mut out = Vec::with_capacity(text.len() / 150);
    let mut current: Option<Fields> = None;
    let mut end = 0;
    while end < text.len() {
        let rest = &text[end..];
        if !rest.starts_with([' ', '-']) {
            break;
        }
        let line_len = rest.find('\n').map_or(rest.len(), |n| n + 1);
        let line = rest[..line_len]
            .strip_suffix('\n')
            .unwrap_or(&rest[..line_len]);
        end += line_len;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (item_start, body) = match line.strip_prefix("- ") {
            Some(b) => (true, b),
            None => (false, line.strip_prefix("  ")?),
        };
        if item_start {
            if let Some(done) = current.take() {
                out.push(done.record()?);
            }
            current = Some(Fields::default());
        }
        let rec = current.as_mut()?;
        // Keys are short: look for the colon from the start.
        let colon = body.bytes().position(|b| b == b':')?;
        let (key, value) = (&body[..colon], body[colon..].strip_prefix(": ")?);
        let value = scalar(value)?;
        let slot = match key {
            "digest" => &mut rec.digest,
            "size" => &mut rec.size,
            "kind" => &mut rec.kind,
            "file" => &mut rec.file,
            "base" => &mut rec.base,
            "repository" => &mut rec.repository,
            "offset" => &mut rec.offset,
            _ => return None,
        };
        // A key twice: not the shape ferry writes; the YAML parser decides.
        if slot.replace(value).is_some() {
            return None;
        }
    }
    if let Some(done) = current {
        out.push(done.record()?);
    }
    Some((out, end))
}

/// A plain or double-quoted YAML scalar on one line.
fn scalar(v: &str) -> Option<&str> {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        if inner.contains('\\') {
            return None;
        }
        return Some(inner);
    }
    if v.is_empty()
        || v.starts_with(['\'', '{', '[', '&', '*', '!', '|', '>', '#'])
        || v.contains(" #")
    {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            tool: "ferry 0.1.0".into(),
            created: "2026-11-30T04:00:00Z".into(),
            name: "img_full_202611300400".into(),
            kind: Kind::Full,
            bases: vec![],
            platforms: vec![],
            files: vec![DataFile {
                name: "img_full_202611300400_1.tar".into(),
                size: 2048,
                sha256: "00".repeat(32),
                headers_sha256: None,
                blobs: 1,
            }],
            images: vec![Image {
                reference: "127.0.0.1:5000/app:1.0".into(),
                registry: "127.0.0.1:5000".into(),
                repository: "app".into(),
                tag: Some("1.0".into()),
                digest: Digest::of(b"m"),
                media_type: crate::manifest::OCI_MANIFEST.into(),
                target: None,
                subject: None,
                children: vec![],
            }],
            blobs: vec![BlobRecord {
                digest: Digest::of(b"x"),
                size: 1,
                kind: BlobKind::Layer,
                file: Some("img_full_202611300400_1.tar".into()),
                base: None,
                repository: "app".into(),
                offset: None,
            }],
            failed: vec![Failure {
                reference: "nope".into(),
                reason: "not found".into(),
            }],
            selections: vec![],
        }
    }

    #[test]
    fn selections_round_trip_and_older_metas_still_read() {
        let mut m = sample();
        m.selections.push(Selection {
            selector: r"app:~^1\.|newest(2) -> mirror/app".into(),
            repository: "127.0.0.1:5000/app".into(),
            tags: vec!["1.2".into(), "1.0".into()],
            excluded: vec!["1.1-rc".into()],
        });
        let yaml = m.to_yaml().unwrap();
        assert!(yaml.contains("selections:"), "{yaml}");
        assert_eq!(Meta::parse(yaml.as_bytes(), "m").unwrap(), m);
        // Without the key (older metas), nothing changes.
        let old = sample().to_yaml().unwrap();
        assert!(!old.contains("selections"));
        assert_eq!(Meta::parse(old.as_bytes(), "m").unwrap(), sample());
        // A reader that does not know the key (an older ferry) skips it.
        #[derive(Deserialize)]
        struct OlderMeta {
            format: String,
            images: Vec<Image>,
        }
        let older: OlderMeta = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            (older.format.as_str(), older.images.len()),
            (FORMAT_NAME, 1)
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let m = sample();
        let yaml = m.to_yaml().unwrap();
        assert!(yaml.contains("format: ferry-bundle"));
        assert_eq!(Meta::parse(yaml.as_bytes(), "m").unwrap(), m);
    }

    #[test]
    fn fast_blob_reader_agrees_with_the_yaml_parser() {
        let mut m = sample();
        m.blobs.push(BlobRecord {
            digest: Digest::of(b"y"),
            size: 7,
            kind: BlobKind::Config,
            file: None,
            base: Some("img_full_1".into()),
            repository: "a/b".into(),
            offset: Some(3),
        });
        m.blobs.push(BlobRecord {
            digest: Digest::of(b"z"),
            size: 1,
            kind: BlobKind::Manifest,
            file: Some("img_full_202611300400_1.tar".into()),
            base: None,
            repository: "123".into(),
            offset: None,
        });
        let yaml = m.to_yaml().unwrap();
        let (_, list) = split_blobs(&yaml).unwrap();
        assert_eq!(
            parse_blob_list(list).unwrap(),
            m.blobs,
            "fast path used and exact:\n{yaml}"
        );
        assert_eq!(Meta::parse(yaml.as_bytes(), "m").unwrap(), m);
        // A hand-edited list in another shape still parses, through the YAML parser.
        let odd = yaml.replacen("\n  size:", "\n  # edited by hand\n  size:", 1);
        assert!(odd.len() > yaml.len());
        assert_eq!(
            Meta::parse(odd.as_bytes(), "m").unwrap().blobs.len(),
            m.blobs.len()
        );
    }

    #[test]
    fn terminal_escapes_are_stripped_on_read_and_write() {
        let mut m = sample();
        m.failed[0].reason = "\u{1b}]0;owned\u{7}\u{1b}[2Jnot found\r\nfake: line".into();
        m.failed[0].reference = "app\u{1b}[31m:1".into();
        let yaml = m.to_yaml().unwrap();
        assert!(!yaml.contains('\u{1b}') && !yaml.contains("\\e"), "{yaml}");
        let back = Meta::parse(yaml.as_bytes(), "m").unwrap();
        assert_eq!(back.failed[0].reason, "not found fake: line");
        assert_eq!(back.failed[0].reference, "app:1");
        // A meta written by someone else with raw escapes is cleaned when read.
        let raw = sample()
            .to_yaml()
            .unwrap()
            .replace("reason: not found", "reason: \"\\e[2Jgone\\a\"");
        assert!(raw.contains("\\e[2J"), "{raw}");
        let read = Meta::parse(raw.as_bytes(), "m").unwrap();
        assert_eq!(read.failed[0].reason, "gone");
    }

    #[test]
    fn names_that_leave_the_namespace_or_folder_are_refused() {
        type Edit = fn(&mut Meta);
        let attacks: [(&str, Edit); 10] = [
            ("repository", |m| {
                m.images[0].repository = "../../escaped/pwned".into()
            }),
            ("tag", |m| m.images[0].tag = Some("../../x".into())),
            ("target", |m| {
                m.images[0].target = Some("../../escaped/pwned:1".into())
            }),
            ("blob repository", |m| {
                m.blobs[0].repository = "a/../../b".into()
            }),
            ("data file", |m| {
                m.files[0].name = "../../etc/passwd".into();
                m.blobs[0].file = Some("../../etc/passwd".into());
            }),
            ("absolute data file", |m| {
                m.files[0].name = "/etc/passwd".into();
                m.blobs[0].file = Some("/etc/passwd".into());
            }),
            ("blob file not a data file", |m| {
                m.blobs[0].file = Some("other.tar".into())
            }),
            ("base", |m| m.blobs[0].base = Some("../up".into())),
            ("bundle name", |m| m.name = "..".into()),
            ("media type", |m| {
                m.images[0].media_type = "a/b\r\nX-Injected: 1".into()
            }),
        ];
        for (what, edit) in attacks {
            let mut m = sample();
            edit(&mut m);
            let yaml = m.to_yaml().unwrap();
            assert!(
                matches!(
                    Meta::parse(yaml.as_bytes(), "m"),
                    Err(MetaError::Unsafe { .. })
                ),
                "{what}: {yaml}"
            );
        }
        let mut m = sample();
        m.bases.push(BaseRef {
            name: "sub/dir".into(),
            meta_sha256: String::new(),
        });
        let yaml = m.to_yaml().unwrap();
        assert!(matches!(
            Meta::parse(yaml.as_bytes(), "m"),
            Err(MetaError::Unsafe { .. })
        ));
    }

    #[test]
    fn a_duplicate_blobs_key_is_refused_like_any_other() {
        let yaml = sample().to_yaml().unwrap();
        let (_, list) = split_blobs(&yaml).unwrap();
        let other = "blobs:\n- digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n  size: 5\n  kind: layer\n  repository: x\n";
        for doubled in [
            format!("{yaml}{other}"),
            format!("{other}{yaml}"),
            format!("{yaml}blobs: []\n"),
            format!("{yaml}\"blobs\":\n{list}"),
        ] {
            assert!(
                matches!(
                    Meta::parse(doubled.as_bytes(), "m"),
                    Err(MetaError::Malformed { .. })
                ),
                "{doubled}"
            );
        }
        // Other keys were refused already, by the YAML parser.
        let twice = format!("{yaml}name: other\n");
        assert!(Meta::parse(twice.as_bytes(), "m").is_err());
    }

    #[test]
    fn a_plain_file_recorded_by_its_headers_needs_version_2_and_one_checksum() {
        let mut m = sample();
        assert_eq!(m.version_needed(), 1, "whole-file sha256: version 1 still");
        m.files[0].sha256 = String::new();
        m.files[0].headers_sha256 = Some("ab".repeat(32));
        assert_eq!(m.version_needed(), 2);
        m.version = 2;
        let yaml = m.to_yaml().unwrap();
        assert!(
            yaml.contains("headers_sha256:") && !yaml.contains("\n  sha256:"),
            "{yaml}"
        );
        assert_eq!(Meta::parse(yaml.as_bytes(), "m").unwrap(), m);
        // Refused: the new key in a version 1 meta, on a zstd file, beside a
        // sha256, or no checksum at all.
        let bad: [fn(&mut Meta); 4] = [
            |m| m.version = 1,
            |m| {
                m.files[0].name = "x.tar.zst".into();
                m.blobs[0].file = Some("x.tar.zst".into());
            },
            |m| m.files[0].sha256 = "00".repeat(32),
            |m| m.files[0].headers_sha256 = None,
        ];
        for edit in bad {
            let mut b = m.clone();
            edit(&mut b);
            let yaml = b.to_yaml().unwrap();
            assert!(
                matches!(
                    Meta::parse(yaml.as_bytes(), "m"),
                    Err(MetaError::Malformed { .. })
                ),
                "{yaml}"
            );
        }
    }

    #[test]
    fn refuses_other_formats_and_versions() {
        assert!(matches!(
            Meta::parse(b"datafiles: {}\n", "m"),
            Err(MetaError::NotFerry { .. })
        ));
        assert!(matches!(
            Meta::parse(b"format: ferry-bundle\nversion: 9\n", "m"),
            Err(MetaError::UnknownVersion { found: 9, .. })
        ));
        assert!(matches!(
            Meta::parse(b": : [", "m"),
            Err(MetaError::Malformed { .. })
        ));
    }
}
