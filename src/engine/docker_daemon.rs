//! `ferry upload META --dst docker` and `--dst containerd[:NAMESPACE]`: the
//! bundle's images go through an engine sink ([`DockerEngineSink`],
//! [`ContainerdSink`]), one platform's image each, named by the full reference
//! they were saved from (registry host included, as `docker pull` names them), or
//! by the name the list renamed them to.

use super::export::select;
use super::platform::PlatformFilter;
use crate::bundle::meta::Image;
use crate::manifest::{Descriptor, Parsed, RawManifest};
use crate::transport::bundle::BundleSource;
use crate::transport::{BlobRef, ImageSink, SharedSource};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use crate::transport::containerd::{ContainerdOptions, ContainerdSink};
pub use crate::transport::docker_engine::{DockerEngine, DockerEngineSink};

/// The repository (registry host included) and tag an image is loaded under.
pub fn engine_name(image: &Image) -> (String, Option<String>) {
    match &image.target {
        Some(target) => {
            let (repo, tag) = crate::reference::split_short(target);
            (repo.to_string(), tag.map(str::to_string))
        }
        None => (
            format!("{}/{}", image.registry, image.repository),
            image.tag.clone(),
        ),
    }
}

/// The image manifest for `platform` (the top manifest, or the child of an index
/// that the platform names), with its config and layers.
async fn platform_image(
    source: &BundleSource,
    image: &Image,
    platform: &PlatformFilter,
) -> Result<(RawManifest, Descriptor, Vec<Descriptor>)> {
    let what = || crate::tr!("{}: manifest", "{}: 清单", image.reference);
    let (top, parsed) = source.read_manifest(&image.digest).with_context(what)?;
    let list = match parsed {
        Parsed::Image { config, layers } => return Ok((top, config, layers)),
        Parsed::Index { manifests } => manifests,
    };
    let desc = list
        .iter()
        .find(|d| platform.matches(d.platform.as_ref()))
        .ok_or_else(|| {
            anyhow!(crate::tr!(
                "{}: no manifest for platform {}",
                "{}: 没有平台 {} 的清单",
                image.reference,
                platform.to_strings().join(",")
            ))
        })?;
    match source.read_manifest(&desc.digest).with_context(what)? {
        (child, Parsed::Image { config, layers }) => Ok((child, config, layers)),
        (_, Parsed::Index { .. }) => bail!(crate::tr!(
            "{}: nested indexes cannot be loaded into an engine",
            "{}: 嵌套的索引无法载入引擎",
            image.reference
        )),
    }
}

/// Sends the images of the bundle that `wanted` names (all when empty) into
/// `sink`, one platform's image each, and finishes it: only then has the engine
/// loaded them. Returns how many images went in.
pub async fn load(
    source: Arc<BundleSource>,
    wanted: &[String],
    platform: &PlatformFilter,
    sink: &dyn ImageSink,
    cancel: &CancellationToken,
) -> Result<usize> {
    let images: Vec<Image> = select(source.bundle(), wanted)?
        .into_iter()
        .cloned()
        .collect();
    let shared: SharedSource = source.clone();
    for image in &images {
        let (manifest, config, layers) = platform_image(&source, image, platform).await?;
        let (repository, tag) = engine_name(image);
        for desc in std::iter::once(&config).chain(layers.iter().filter(|l| !l.is_foreign())) {
            if cancel.is_cancelled() {
                bail!(crate::tr!(
                    "interrupted; nothing was loaded",
                    "已中断; 没有载入任何镜像"
                ));
            }
            let blob = BlobRef {
                digest: desc.digest.clone(),
                size: desc.size,
                media_type: desc.media_type.clone(),
            };
            sink.put_blob(&repository, &blob, shared.clone(), &image.repository)
                .await
                .with_context(|| image.reference.clone())?;
        }
        sink.put_manifest(&repository, tag.as_deref(), &manifest)
            .await
            .with_context(|| image.reference.clone())?;
    }
    sink.finish().await?;
    Ok(images.len())
}

/// A `--dst` that names a local engine rather than a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineTarget {
    /// `docker`: the docker engine at `DOCKER_HOST=unix://PATH`, else
    /// /var/run/docker.sock.
    Docker,
    /// `containerd[:NAMESPACE]`: containerd at `CONTAINERD_ADDRESS`, else
    /// /run/containerd/containerd.sock, in NAMESPACE (default `default`).
    Containerd(Option<String>),
}

impl EngineTarget {
    /// `docker`, `containerd` or `containerd:NAMESPACE`; `None` for anything else
    /// (a registry).
    pub fn parse(dst: &str) -> Option<EngineTarget> {
        match dst {
            "docker" => Some(EngineTarget::Docker),
            "containerd" => Some(EngineTarget::Containerd(None)),
            _ => dst
                .strip_prefix("containerd:")
                .map(|ns| EngineTarget::Containerd(Some(ns.to_string()))),
        }
    }

    /// As [`EngineTarget::parse`], plus image-transmit's `-dst=ctr[:NAMESPACE]`.
    pub fn parse_legacy(dst: &str) -> Option<EngineTarget> {
        match dst.strip_prefix("ctr") {
            Some("") => Some(EngineTarget::Containerd(None)),
            Some(rest) => rest
                .strip_prefix(':')
                .map(|ns| EngineTarget::Containerd(Some(ns.to_string()))),
            None => EngineTarget::parse(dst),
        }
    }
}

/// `ferry upload META --dst docker|containerd[:NS]`: every image of the bundle
/// (signatures and other referrers stay behind: an engine has no place for them)
/// into the engine, the host's platform of multi-platform ones. `meta_sha256`:
/// the meta's hash when its signature was checked. Returns the line that tells
/// what was done.
pub async fn upload_to_engine(
    meta: &std::path::Path,
    meta_sha256: Option<&str>,
    target: &EngineTarget,
    reporter: &super::report::Reporter,
    cancel: &CancellationToken,
) -> Result<String> {
    // Fail before the bundle is read when there is no engine.
    let sink: Box<dyn ImageSink> = match target {
        EngineTarget::Docker => {
            Box::new(DockerEngineSink::connect(DockerEngine::from_env()?).await?)
        }
        EngineTarget::Containerd(ns) => Box::new(ContainerdSink::open(
            ContainerdOptions::namespace(ns.as_deref()),
        )?),
    };
    let source = Arc::new(BundleSource::open(meta, &[], reporter)?);
    // A signed bundle: the meta read now must be the one whose signature was checked.
    if meta_sha256.is_some_and(|s| s != source.bundle().meta_sha256) {
        return Err(crate::sign::SignError::MetaChanged {
            path: meta.to_path_buf(),
        }
        .into());
    }
    let platform =
        PlatformFilter::parse(&super::export::host_platform()).map_err(|e| anyhow!("{e}"))?;
    let wanted: Vec<String> = source
        .images()
        .iter()
        .filter(|i| i.subject.is_none())
        .map(|i| i.reference.clone())
        .collect();
    let n = load(source, &wanted, &platform, sink.as_ref(), cancel).await?;
    let loaded = crate::i18n::plural(n as u64, "image", "images");
    Ok(crate::tr!(
        "{loaded} loaded into {}",
        "已将 {n} 个镜像载入 {}",
        sink.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_targets_are_told_from_registries() {
        assert_eq!(EngineTarget::parse("docker"), Some(EngineTarget::Docker));
        assert_eq!(
            EngineTarget::parse("containerd"),
            Some(EngineTarget::Containerd(None))
        );
        assert_eq!(
            EngineTarget::parse("containerd:k8s.io"),
            Some(EngineTarget::Containerd(Some("k8s.io".into())))
        );
        for registry in ["127.0.0.1:5000", "docker.io/ns", "ctr", "containerd.local"] {
            assert_eq!(EngineTarget::parse(registry), None, "{registry}");
        }
        assert_eq!(
            EngineTarget::parse_legacy("ctr"),
            Some(EngineTarget::Containerd(None))
        );
        assert_eq!(
            EngineTarget::parse_legacy("ctr:k8s.io"),
            Some(EngineTarget::Containerd(Some("k8s.io".into())))
        );
        assert_eq!(EngineTarget::parse_legacy("ctrl.example.com"), None);
        assert_eq!(
            EngineTarget::parse_legacy("docker"),
            Some(EngineTarget::Docker)
        );
    }

    fn image(registry: &str, repository: &str, tag: Option<&str>, target: Option<&str>) -> Image {
        Image {
            reference: String::new(),
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.map(str::to_string),
            digest: crate::digest::Digest::of(b"x"),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            target: target.map(str::to_string),
            subject: None,
            children: Vec::new(),
        }
    }

    #[test]
    fn images_keep_their_registry_host_or_take_their_new_name() {
        assert_eq!(
            engine_name(&image("127.0.0.1:5000", "library/base", Some("1"), None)),
            ("127.0.0.1:5000/library/base".into(), Some("1".into()))
        );
        assert_eq!(
            engine_name(&image("docker.io", "library/nginx", None, None)),
            ("docker.io/library/nginx".into(), None)
        );
        assert_eq!(
            engine_name(&image("127.0.0.1:5000", "a", Some("1"), Some("team/b:2"))),
            ("team/b".into(), Some("2".into()))
        );
    }
}
