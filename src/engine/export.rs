//! What export and the bundle front ends share: choosing images of a bundle by the
//! names users give them, and finding every blob of a bundle and its bases (the copy
//! itself is the copy engine: `engine::copy::endpoints::copy_bundle`).

use super::report::Reporter;
use super::upload::verify_bundle;
use crate::bundle::meta::Image;
use crate::bundle::reader::{BlobLocation, Bundle, VerifyLevel};
use crate::digest::Digest;
use crate::manifest::RawManifest;
use anyhow::{anyhow, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

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
