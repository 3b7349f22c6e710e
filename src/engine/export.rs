//! `export`: bundle → OCI image layout, for tools that read layouts (skopeo, crane,
//! containerd's import) and for use without any registry.

use super::report::Reporter;
use super::upload::verify_bundle;
use crate::bundle::meta::Image;
use crate::bundle::reader::{BlobLocation, Bundle, VerifyLevel};
use crate::digest::Digest;
use crate::manifest::RawManifest;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The annotation that names an image inside a layout (`skopeo copy oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether an image of the bundle is the one a user named: the reference as given
/// at save time, its `repository:tag`, or the name the list renamed it to.
pub fn matches(image: &Image, wanted: &str) -> bool {
    image.reference == wanted
        || image.target.as_deref() == Some(wanted)
        || image
            .tag
            .as_ref()
            .is_some_and(|t| format!("{}:{t}", image.repository) == wanted)
}

/// The name an image carries out of the bundle: where the list renamed it to
/// (as upload would push it), else its own `repository[:tag]`.
pub fn image_name(image: &Image) -> String {
    if let Some(target) = &image.target {
        return target.clone();
    }
    match &image.tag {
        Some(t) => format!("{}:{t}", image.repository),
        None => format!("{}@{}", image.repository, image.digest),
    }
}

/// Stops an export between blobs on Ctrl-C; the temporary files go with it.
fn check_cancelled(cancel: &CancellationToken) -> Result<()> {
    if cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted; the export was not finished",
            "已中断; 导出没有完成"
        ));
    }
    Ok(())
}

/// The images of a bundle that a user named (all when none are named).
pub fn select<'a>(bundle: &'a Bundle, wanted: &[String]) -> Result<Vec<&'a Image>> {
    if wanted.is_empty() {
        return Ok(bundle.meta.images.iter().collect());
    }
    wanted
        .iter()
        .map(|w| {
            bundle
                .meta
                .images
                .iter()
                .find(|i| matches(i, w))
                .ok_or_else(|| {
                    anyhow!(crate::tr!(
                        "{w} is not an image of bundle {} (see `ferry ls`)",
                        "{w} 不是镜像包 {} 中的镜像 (见 `ferry ls`)",
                        bundle.meta.name
                    ))
                })
        })
        .collect()
}

/// Where every blob of a bundle and of its bases is: the bundle's own data files,
/// then each base found beside it (same folder) or in `base_dirs`.
pub fn locate_all(
    bundle: &Bundle,
    base_dirs: &[PathBuf],
    reporter: &Reporter,
) -> Result<HashMap<Digest, BlobLocation>> {
    // Sizes only: quick, and each blob is checked against its digest as it is copied.
    let never = tokio_util::sync::CancellationToken::new();
    let mut index = verify_bundle(bundle, VerifyLevel::Size, reporter, &never)?;
    let mut dirs = vec![bundle.dir.clone()];
    dirs.extend(base_dirs.iter().cloned());
    let mut bases: BTreeSet<String> = bundle
        .meta
        .blobs
        .iter()
        .filter_map(|b| b.base.clone())
        .collect();
    bases.extend(bundle.meta.bases.iter().map(|b| b.name.clone()));
    for name in bases {
        let Some(meta) = dirs
            .iter()
            .map(|d| d.join(format!("{name}_meta.yaml")))
            .find(|p| p.is_file())
        else {
            reporter.warn(&crate::tr!(
                "base bundle {name} is neither beside the bundle nor in a --base folder: the images that need its blobs are incomplete",
                "基础包 {name} 既不在镜像包旁边, 也不在 --base 目录中: 需要其数据块的镜像不完整"
            ));
            continue;
        };
        let base = Bundle::open(&meta).with_context(|| {
            crate::tr!("cannot open base bundle {name}", "无法打开基础包 {name}")
        })?;
        for (d, loc) in verify_bundle(&base, VerifyLevel::Size, reporter, &never)? {
            index.entry(d).or_insert(loc);
        }
    }
    Ok(index)
}

/// Reads an image's manifests (top first, then children) and the blobs they name.
pub fn image_contents(
    bundle: &Bundle,
    image: &Image,
    index: &HashMap<Digest, BlobLocation>,
) -> Result<(Vec<RawManifest>, Vec<Digest>)> {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let wanted = std::iter::once((&image.digest, &image.media_type))
        .chain(image.children.iter().map(|c| (&c.digest, &c.media_type)));
    for (digest, media_type) in wanted {
        let bytes = bundle.manifest_bytes(digest, index).with_context(|| {
            crate::tr!(
                "{}: manifest {digest}",
                "{}: 清单 {digest}",
                image.reference
            )
        })?;
        let (raw, parsed) = RawManifest::new(bytes, Some(media_type)).with_context(|| {
            crate::tr!(
                "{}: manifest {digest}",
                "{}: 清单 {digest}",
                image.reference
            )
        })?;
        blobs.extend(
            super::resolve::image_blobs(&parsed)
                .into_iter()
                .map(|b| b.digest),
        );
        manifests.push(raw);
    }
    Ok((manifests, blobs))
}

/// Removes a temporary file when dropped, so a failed export leaves nothing
/// half-written behind (after a successful rename there is nothing left to remove).
pub struct RemovedOnDrop(pub PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn copy_blob(loc: &BlobLocation, digest: &Digest, dir: &Path) -> Result<()> {
    let dest = dir.join(digest.blob_path());
    // A blob already in the layout (an earlier export) is kept only if it is intact.
    let intact = std::fs::metadata(&dest).is_ok_and(|m| m.len() == loc.size)
        && crate::bundle::writer::hash_file(&dest).is_ok_and(|(_, hex)| hex == digest.hex());
    if intact {
        return Ok(());
    }
    let tmp = dest.with_extension("partial");
    let _cleanup = RemovedOnDrop(tmp.clone());
    let mut out = std::fs::File::create(&tmp)
        .with_context(|| crate::tr!("cannot write {}", "无法写入 {}", tmp.display()))?;
    let n = std::io::copy(&mut loc.open_verified(digest)?, &mut out)?;
    if n != loc.size {
        bail!(crate::tr!(
            "blob {digest} is cut short in its data file",
            "数据块 {digest} 在其数据文件中不完整"
        ));
    }
    std::fs::rename(&tmp, &dest)?;
    Ok(())
}

/// Writes an OCI image layout holding `images` (manifests byte-exact, each
/// index.json entry with its manifest's own media type and a ref.name annotation).
pub fn export_oci(
    bundle: &Bundle,
    images: &[&Image],
    index: &HashMap<Digest, BlobLocation>,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<usize> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| crate::tr!("cannot create {}", "无法创建 {}", dir.display()))?;
    let mut entries = Vec::new();
    let mut done: HashSet<Digest> = HashSet::new();
    for image in images {
        let (manifests, blobs) = image_contents(bundle, image, index)?;
        for m in &manifests {
            let path = dir.join(m.digest.blob_path());
            if std::fs::read(&path).ok().as_deref() != Some(&m.bytes[..]) {
                std::fs::write(&path, &m.bytes)?;
            }
        }
        for d in blobs {
            check_cancelled(cancel)?;
            // A layer shared by many images is copied (or checked) once.
            if !done.insert(d.clone()) {
                continue;
            }
            let loc = index.get(&d).ok_or_else(|| anyhow!(crate::tr!("{}: blob {d} is in neither the bundle nor a base bundle found beside it (give --base DIR)", "{}: 数据块 {d} 既不在镜像包中, 也不在其旁边找到的基础包中 (请用 --base DIR 指定)", image.reference)))?;
            copy_blob(loc, &d, dir)?;
        }
        let mut entry = serde_json::json!({"mediaType": image.media_type, "digest": image.digest, "size": manifests[0].bytes.len()});
        entry["annotations"] = serde_json::json!({ REF_NAME: image_name(image) });
        entries.push(entry);
    }
    let written = entries.len();
    // An existing layout keeps its other images: entries under other names stay.
    let index_path = dir.join("index.json");
    if let Ok(old) = std::fs::read(&index_path) {
        let old: serde_json::Value = serde_json::from_slice(&old).with_context(|| {
            crate::tr!(
                "{} exists and is not an OCI index",
                "{} 已存在, 但不是 OCI 索引",
                index_path.display()
            )
        })?;
        let name_of =
            |e: &serde_json::Value| e["annotations"][REF_NAME].as_str().map(str::to_string);
        let new_names: HashSet<String> = entries.iter().filter_map(name_of).collect();
        let kept: Vec<serde_json::Value> = old["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| name_of(e).is_none_or(|n| !new_names.contains(&n)))
            .cloned()
            .collect();
        entries.splice(0..0, kept);
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index_json = serde_json::json!({"schemaVersion": 2, "mediaType": crate::manifest::OCI_INDEX, "manifests": entries});
    let tmp = dir.join("index.json.partial");
    let _cleanup = RemovedOnDrop(tmp.clone());
    std::fs::write(&tmp, serde_json::to_vec_pretty(&index_json)?)?;
    std::fs::rename(&tmp, &index_path)?;
    Ok(written)
}

/// The platform `docker load` would want on this machine.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

/// Writes a `docker load` archive: manifest.json, each config and layer once.
/// Multi-platform images are resolved to `platform`.
pub fn export_docker_archive(
    bundle: &Bundle,
    images: &[&Image],
    index: &HashMap<Digest, BlobLocation>,
    platform: &super::platform::PlatformFilter,
    file: &Path,
    cancel: &CancellationToken,
) -> Result<usize> {
    use crate::manifest::Parsed;
    let tmp = file.with_extension("partial");
    let _cleanup = RemovedOnDrop(tmp.clone());
    let mut builder = tar::Builder::new(
        std::fs::File::create(&tmp)
            .with_context(|| crate::tr!("cannot write {}", "无法写入 {}", tmp.display()))?,
    );
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut entries = Vec::new();
    let add = |builder: &mut tar::Builder<std::fs::File>,
               name: &str,
               digest: &Digest,
               loc: &BlobLocation|
     -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(loc.size);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, loc.open_verified(digest)?)?;
        Ok(())
    };
    for image in images {
        let (manifests, _) = image_contents(bundle, image, index)?;
        // The image manifest for the wanted platform.
        let (_, parsed) = RawManifest::new(manifests[0].bytes.clone(), Some(&image.media_type))?;
        let (config, layers) = match parsed {
            Parsed::Image { config, layers } => (config, layers),
            Parsed::Index { manifests: list } => {
                let desc = list
                    .iter()
                    .find(|d| platform.matches(d.platform.as_ref()))
                    .ok_or_else(|| {
                        anyhow!(crate::tr!(
                            "{}: no manifest for platform {} (use --platform)",
                            "{}: 没有平台 {} 的清单 (请使用 --platform)",
                            image.reference,
                            platform.to_strings().join(",")
                        ))
                    })?;
                let child = manifests
                    .iter()
                    .find(|m| m.digest == desc.digest)
                    .ok_or_else(|| {
                        anyhow!(crate::tr!(
                            "{}: child {} is not in the bundle",
                            "{}: 子清单 {} 不在镜像包中",
                            image.reference,
                            desc.digest
                        ))
                    })?;
                match RawManifest::new(child.bytes.clone(), Some(&desc.media_type))?.1 {
                    Parsed::Image { config, layers } => (config, layers),
                    Parsed::Index { .. } => bail!(crate::tr!(
                        "{}: nested indexes cannot go into a docker archive",
                        "{}: 嵌套的索引无法放入 docker 归档",
                        image.reference
                    )),
                }
            }
        };
        let find = |d: &Digest| {
            index.get(d).ok_or_else(|| {
                anyhow!(crate::tr!(
                    "{}: blob {d} is not in the bundle (give --base DIR)",
                    "{}: 数据块 {d} 不在镜像包中 (请用 --base DIR 指定)",
                    image.reference
                ))
            })
        };
        let config_name = format!("{}.json", config.digest.hex());
        if written.insert(config.digest.clone()) {
            add(
                &mut builder,
                &config_name,
                &config.digest,
                find(&config.digest)?,
            )?;
        }
        let mut layer_names = Vec::new();
        for l in layers.iter().filter(|l| !l.is_foreign()) {
            let name = format!("{}/layer.tar", l.digest.hex());
            if written.insert(l.digest.clone()) {
                check_cancelled(cancel)?;
                add(&mut builder, &name, &l.digest, find(&l.digest)?)?;
            }
            layer_names.push(name);
        }
        // docker load names an image by repository:tag; one addressed by digest
        // only gets none.
        let name = image_name(image);
        let tags: Vec<String> = if image.tag.is_some() || image.target.is_some() {
            vec![name]
        } else {
            Vec::new()
        };
        entries.push(
            serde_json::json!({"Config": config_name, "RepoTags": tags, "Layers": layer_names}),
        );
    }
    let manifest = serde_json::to_vec(&entries)?;
    let mut h = tar::Header::new_ustar();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    builder.append_data(&mut h, "manifest.json", &manifest[..])?;
    builder.into_inner()?.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(entries.len())
}
