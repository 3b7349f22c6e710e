//! `export --oci DIR --oci-media-types`: after the export, the layout's entries for
//! the exported docker-typed images are rewritten to OCI media types (see
//! [`crate::manifest_convert`]); without the flag, such entries are pointed out,
//! since skopeo and podman read only OCI-typed entries of a layout.
//!
//! A pass over the finished layout, so the copy engine stays byte-exact: the
//! original manifests stay in `blobs/` (unreferenced), the converted ones are added
//! beside them and index.json points at those.

use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, MAX_MANIFEST_BYTES};
use crate::manifest_convert::{self, Converted};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The annotation that names an entry of a layout.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An index.json entry whose manifest was converted.
#[derive(Debug)]
pub struct Rewritten {
    pub name: String,
    pub old: Digest,
    pub new: Digest,
}

/// The names of the layout entries among `tops` (the exported images' digests)
/// that have a docker media type.
pub fn docker_typed(dir: &Path, tops: &HashSet<Digest>) -> Result<Vec<String>> {
    let index = read_index(dir)?;
    Ok(entries(&index)
        .filter(|(_, digest, media_type)| {
            tops.contains(digest) && manifest_convert::is_docker(media_type)
        })
        .map(|(name, digest, _)| name.unwrap_or_else(|| digest.to_string()))
        .collect())
}

/// Converts the docker-typed entries among `tops` to OCI media types, children of
/// lists first; returns what was rewritten.
pub fn convert_layout(dir: &Path, tops: &HashSet<Digest>) -> Result<Vec<Rewritten>> {
    let mut index = read_index(dir)?;
    let mut done: HashMap<Digest, Converted> = HashMap::new();
    let mut rewritten = Vec::new();
    let list = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            anyhow!(crate::i18n::t(
                "index.json has no manifests",
                "index.json 中没有 manifests"
            ))
        })?;
    for entry in list.iter_mut() {
        let Some((name, digest, media_type)) = entry_fields(entry) else {
            continue;
        };
        if !tops.contains(&digest) || !manifest_convert::is_docker(&media_type) {
            continue;
        }
        let new = convert(dir, &digest, &media_type, &mut done)?;
        if let Some(e) = entry.as_object_mut() {
            e.insert("mediaType".into(), Value::from(new.media_type));
            e.insert("digest".into(), Value::from(new.digest.to_string()));
            e.insert("size".into(), Value::from(new.size()));
        }
        rewritten.push(Rewritten {
            name: name.unwrap_or_else(|| digest.to_string()),
            old: digest,
            new: new.digest,
        });
    }
    if !rewritten.is_empty() {
        let path = dir.join("index.json");
        let tmp = dir.join("index.json.partial");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&index)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| crate::tr!("cannot write {}", "无法写入 {}", path.display()))?;
    }
    Ok(rewritten)
}

/// Converts one manifest (a list's children first) and stores the result in the
/// layout's blobs; `done` keeps each conversion once.
fn convert(
    dir: &Path,
    digest: &Digest,
    media_type: &str,
    done: &mut HashMap<Digest, Converted>,
) -> Result<Converted> {
    if let Some(c) = done.get(digest) {
        return Ok(c.clone());
    }
    let bytes = read_manifest(dir, digest)?;
    let converted = if media_type == crate::manifest::DOCKER_MANIFEST_LIST {
        let (_, parsed) = RawManifest::new(bytes.clone(), Some(media_type))?;
        let Parsed::Index { manifests } = parsed else {
            bail!(crate::tr!(
                "{digest} is not a manifest list",
                "{digest} 不是清单列表"
            ));
        };
        let mut children = HashMap::new();
        for child in manifests {
            // A child the bundle did not carry (platform filter) is not in the layout.
            if manifest_convert::is_docker(&child.media_type)
                && dir.join(child.digest.blob_path()).is_file()
            {
                let c = convert(dir, &child.digest, &child.media_type, done)?;
                children.insert(child.digest, c);
            }
        }
        manifest_convert::index(&bytes, &children)
    } else {
        manifest_convert::image_manifest(&bytes)
    }
    .with_context(|| crate::tr!("manifest {digest}", "清单 {digest}"))?;
    let path = dir.join(converted.digest.blob_path());
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &converted.bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| crate::tr!("cannot write {}", "无法写入 {}", path.display()))?;
    done.insert(digest.clone(), converted.clone());
    Ok(converted)
}

/// A manifest of the layout, checked against its digest (and bounded in size).
fn read_manifest(dir: &Path, digest: &Digest) -> Result<Vec<u8>> {
    let path = dir.join(digest.blob_path());
    let size = std::fs::metadata(&path)
        .with_context(|| crate::tr!("cannot read {}", "无法读取 {}", path.display()))?
        .len();
    if size > MAX_MANIFEST_BYTES as u64 {
        bail!(crate::tr!(
            "{} is {size} bytes, too large for a manifest",
            "{} 有 {size} 字节, 作为清单过大",
            path.display()
        ));
    }
    let bytes = std::fs::read(&path)
        .with_context(|| crate::tr!("cannot read {}", "无法读取 {}", path.display()))?;
    if &Digest::of(&bytes) != digest {
        bail!(crate::tr!(
            "{} does not match its digest",
            "{} 与其摘要不符",
            path.display()
        ));
    }
    Ok(bytes)
}

fn read_index(dir: &Path) -> Result<Value> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path)
        .with_context(|| crate::tr!("cannot read {}", "无法读取 {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| crate::tr!("{} is not an OCI index", "{} 不是 OCI 索引", path.display()))
}

/// (ref.name, digest, media type) of each well-formed index.json entry.
fn entries(index: &Value) -> impl Iterator<Item = (Option<String>, Digest, String)> + '_ {
    index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(entry_fields)
}

fn entry_fields(entry: &Value) -> Option<(Option<String>, Digest, String)> {
    let digest = entry.get("digest")?.as_str()?.parse().ok()?;
    let media_type = entry.get("mediaType")?.as_str()?.to_string();
    let name = entry
        .get("annotations")
        .and_then(|a| a.get(REF_NAME))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((name, digest, media_type))
}
