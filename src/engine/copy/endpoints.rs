//! `ferry copy SRC DST`: opens the two endpoints a transport spec names, lists the
//! images the source offers (one image, or all of a bundle), names them at the
//! sink, and hands them to the copy driver.

use super::{copy_in_order, plan, CopyContext, CopyImage, CopyOutcome, LeftToBase};
use crate::digest::Digest;
use crate::engine::platform::PlatformFilter;
use crate::engine::registries::Registries;
use crate::engine::report::Reporter;
use crate::engine::resolve::{resolve, resolve_manifests};
use crate::engine::retry::RetryPolicy;
use crate::manifest::Parsed;
use crate::reference::Reference;
use crate::transport::bundle::BundleSource;
use crate::transport::containerd::{ContainerdOptions, ContainerdSink};
use crate::transport::docker_archive::{DockerArchiveSink, DockerArchiveSource};
use crate::transport::docker_engine::{DockerEngine, DockerEngineSink, DockerEngineSource};
use crate::transport::image_names::{split_name, RefNaming};
use crate::transport::oci_layout::{OciLayoutSink, OciLayoutSource};
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::TransportError;
use crate::transport::{ImageSink, SharedSource, TransportSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What `copy` needs besides the two endpoints.
pub struct CopyOptions {
    pub platforms: PlatformFilter,
    /// Every platform asked for explicitly (`--all`): refused by one-platform sinks.
    pub all: bool,
    pub with_referrers: bool,
    pub jobs: usize,
    pub retry: RetryPolicy,
    /// Folders to look for a bundle's bases in (besides its own).
    pub base_dirs: Vec<PathBuf>,
    /// Plan only (`--dry-run`): nothing is written, not even a new layout folder.
    pub dry_run: bool,
    /// `--trust`: a bundle source must carry a good signature by one of these keys
    /// (its bases too), checked before anything of it is read.
    pub trust: Option<crate::sign::Trust>,
}

/// The environment a copy runs in.
pub struct CopyEnv<'a> {
    pub registries: &'a Registries,
    pub reporter: &'a Reporter,
    pub cancel: &'a CancellationToken,
}

/// An image found at the source, before it is named at the sink.
struct Found {
    image: CopyImage,
    /// The registry it came from, when it came from one (archives and engines name
    /// images with it, as `docker pull` does).
    registry: Option<String>,
    /// `repository` and `tag` it had at the source (the default name at the sink).
    repository: String,
    tag: Option<String>,
}

/// Where images go: the sink and how it names them.
enum Target {
    /// One registry: a full reference for one image, a `HOST[/NAMESPACE]` for many.
    Registry {
        endpoint: RegistryEndpoint,
        reference: String,
    },
    /// A file or engine that names images itself: `reference` is what the user
    /// wrote after the transport (`oci:DIR:REF`), for one image.
    Local {
        sink: Box<dyn ImageSink>,
        reference: Option<String>,
        /// Names carry the source registry host (`docker save` style).
        with_host: bool,
        /// REF is a whole `repository[:tag]` (engines), not a name kept verbatim.
        split_reference: bool,
    },
}

pub async fn copy(
    src: &TransportSpec,
    dst: &TransportSpec,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<CopyOutcome> {
    let retrying = Retrying::for_reporter(opts.retry, env.cancel, env.reporter);
    let target = open_target(dst, env, &retrying, opts.dry_run).await?;
    let platforms = platforms_for(&target, opts, &describe_spec(dst))?;
    let (found, bases) = open_source(src, opts, &platforms, env, &retrying).await?;
    if found.is_empty() {
        bail!(crate::tr!(
            "{}: no image to copy",
            "{}: 没有可复制的镜像",
            describe_spec(src)
        ));
    }
    copy_found(found, &bases, &target, &describe_spec(dst), opts, env).await
}

/// Copies a bundle's images (all, or those `wanted` names) to `dst`: `export` goes
/// through here.
pub async fn copy_bundle(
    source: Arc<BundleSource>,
    wanted: &[String],
    dst: &TransportSpec,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<CopyOutcome> {
    let retrying = Retrying::for_reporter(opts.retry, env.cancel, env.reporter);
    let target = open_target(dst, env, &retrying, opts.dry_run).await?;
    let platforms = platforms_for(&target, opts, &describe_spec(dst))?;
    let (found, bases) = found_in_bundle(&source, wanted, &platforms)?;
    copy_found(found, &bases, &target, &describe_spec(dst), opts, env).await
}

/// Loads a bundle's images (all, or those `wanted` names) into an engine's `sink`
/// (`upload --dst docker|containerd`): each under the full reference it was saved
/// from, registry host included as `docker pull` names it, or under its rename.
pub async fn copy_bundle_to_engine(
    source: Arc<BundleSource>,
    wanted: &[String],
    sink: Box<dyn ImageSink>,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<CopyOutcome> {
    let described = sink.describe();
    let target = Target::Local {
        sink,
        reference: None,
        with_host: true,
        split_reference: true,
    };
    let platforms = platforms_for(&target, opts, &described)?;
    let (found, bases) = found_in_bundle(&source, wanted, &platforms)?;
    copy_found(found, &bases, &target, &described, opts, env).await
}

/// The platform filter for a sink (`dst` names it in messages): a sink that holds
/// one platform's image gets the one asked for, else the host's.
fn platforms_for(target: &Target, opts: &CopyOptions, dst: &str) -> Result<PlatformFilter> {
    let one_platform = match target {
        Target::Registry { .. } => false,
        Target::Local { sink, .. } => !sink.supports_index(),
    };
    if !one_platform {
        return Ok(opts.platforms.clone());
    }
    if opts.all || opts.platforms.len() > 1 {
        return Err(crate::engine::UsageError(crate::tr!(
            "{dst}: holds one platform of an image; name one with --platform",
            "{dst}: 只能保存镜像的一个平台; 请用 --platform 指定一个"
        ))
        .into());
    }
    if opts.platforms.is_empty() {
        return PlatformFilter::parse(&crate::engine::export::host_platform())
            .map_err(|e| anyhow!("{e}"));
    }
    Ok(opts.platforms.clone())
}

async fn copy_found(
    found: Vec<Found>,
    bases: &HashMap<Digest, LeftToBase>,
    target: &Target,
    dst: &str,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<CopyOutcome> {
    let (sink, images): (&dyn ImageSink, Vec<CopyImage>) = match target {
        Target::Registry {
            endpoint,
            reference,
        } => (endpoint, name_for_registry(found, reference)?),
        Target::Local {
            sink,
            reference,
            with_host,
            split_reference,
        } => (
            sink.as_ref(),
            name_for_local(
                found,
                reference.as_deref(),
                *with_host,
                *split_reference,
                dst,
            )?,
        ),
    };
    let ctx = CopyContext {
        sink,
        bases,
        jobs: opts.jobs,
        reporter: env.reporter,
        cancel: env.cancel,
        dry_run: opts.dry_run,
        refuse_corrupt: false,
    };
    copy_in_order(&ctx, images).await
}

/// The spec as the user wrote it, for messages.
fn describe_spec(spec: &TransportSpec) -> String {
    match spec {
        TransportSpec::Registry { reference } => format!("docker://{reference}"),
        TransportSpec::OciLayout { dir, .. } => format!("oci:{}", dir.display()),
        TransportSpec::DockerArchive { file, .. } => format!("docker-archive:{}", file.display()),
        TransportSpec::DockerDaemon { reference } => format!("docker-daemon:{reference}"),
        TransportSpec::Containerd { reference } => format!("containerd:{reference}"),
        TransportSpec::Bundle { meta, .. } => format!("bundle:{}", meta.display()),
    }
}

fn unsupported(spec: &TransportSpec, side: &str) -> anyhow::Error {
    anyhow!(crate::tr!(
        "{}: the {} transport cannot be used as a {side} here",
        "{}: {} 传输方式在此不能用作{side}",
        describe_spec(spec),
        spec.transport()
    ))
}

async fn open_source(
    spec: &TransportSpec,
    opts: &CopyOptions,
    platforms: &PlatformFilter,
    env: &CopyEnv<'_>,
    retrying: &Retrying,
) -> Result<(Vec<Found>, HashMap<Digest, LeftToBase>)> {
    match spec {
        TransportSpec::Registry { reference } => {
            let r = Reference::parse(reference)
                .map_err(|e| crate::engine::UsageError(format!("{reference}: {e}")))?;
            let endpoint =
                RegistryEndpoint::new(env.registries.client(&r.registry)?, retrying.clone());
            let resolved = resolve(&endpoint, &r, reference, platforms)
                .await
                .with_context(|| reference.clone())?;
            let source: SharedSource = Arc::new(endpoint);
            let mut found = vec![Found {
                image: plan::from_resolved(&resolved, source.clone(), String::new(), None),
                registry: Some(r.registry.clone()),
                repository: r.repository.clone(),
                tag: r.tag.clone(),
            }];
            if opts.with_referrers {
                let referrers = crate::engine::referrers::discover(
                    std::slice::from_ref(&resolved),
                    env.registries,
                    opts.retry,
                    env.reporter,
                    env.cancel,
                )
                .await;
                found.extend(referrers.iter().map(|img| Found {
                    image: plan::from_resolved(img, source.clone(), String::new(), None),
                    registry: Some(img.reference.registry.clone()),
                    repository: img.reference.repository.clone(),
                    tag: img.reference.tag.clone(),
                }));
            }
            Ok((found, HashMap::new()))
        }
        TransportSpec::Bundle { meta, reference } => {
            let source = Arc::new(crate::engine::trusted::open_source(
                meta,
                &opts.base_dirs,
                opts.trust.as_ref(),
                env.reporter,
            )?);
            let wanted: Vec<String> = reference.iter().cloned().collect();
            found_in_bundle(&source, &wanted, platforms)
        }
        TransportSpec::OciLayout { .. }
        | TransportSpec::DockerArchive { .. }
        | TransportSpec::DockerDaemon { .. } => {
            let (source, wanted) = file_images(spec)
                .await?
                .ok_or_else(|| unsupported(spec, crate::i18n::t("source", "源")))?;
            // A layout keeps its indexes whole unless --platform says otherwise.
            let platforms = match spec {
                TransportSpec::OciLayout { .. } => &opts.platforms,
                _ => platforms,
            };
            let mut found = Vec::new();
            for (name, reference) in wanted {
                found.push(found_in_file(&source, name.as_deref(), &reference, platforms).await?);
            }
            Ok((found, HashMap::new()))
        }
        other => Err(unsupported(other, crate::i18n::t("source", "源"))),
    }
}

/// The images a layout, an archive or a docker engine's export offers: the source,
/// and for each image the name the file gives it (if any) and the reference to
/// look it up by (`oci:DIR:REF` and `docker-archive:FILE:REF` name one image;
/// without REF, every image, by digest). `None` for other transports.
pub(crate) async fn file_images(
    spec: &TransportSpec,
) -> Result<Option<(SharedSource, Vec<(Option<String>, String)>)>> {
    match spec {
        TransportSpec::DockerDaemon { reference } => {
            let engine = DockerEngine::from_env().map_err(TransportError::from)?;
            let spool = std::env::temp_dir();
            let exported =
                DockerEngineSource::export(&engine, std::slice::from_ref(reference), &spool)
                    .await?;
            let archive = exported.archive();
            let (raw, _) = archive
                .image_manifest(archive.selected().unwrap_or(0))
                .await?;
            let wanted = vec![(Some(reference.clone()), raw.digest.to_string())];
            Ok(Some((Arc::new(exported), wanted)))
        }
        TransportSpec::DockerArchive { file, reference } => {
            let archive = DockerArchiveSource::open(file, reference.as_deref())?;
            let picks: Vec<usize> = match archive.selected() {
                Some(i) => vec![i],
                None => (0..archive.images().len()).collect(),
            };
            let mut wanted = Vec::new();
            for i in picks {
                let (raw, _) = archive.image_manifest(i).await?;
                let name = archive
                    .images()
                    .get(i)
                    .and_then(|e| e.names().first().cloned());
                wanted.push((name, raw.digest.to_string()));
            }
            Ok(Some((Arc::new(archive), wanted)))
        }
        TransportSpec::OciLayout { dir, reference } => {
            let layout = OciLayoutSource::open(dir)?;
            let wanted: Vec<(Option<String>, String)> = match reference {
                Some(r) => vec![(None, r.clone())],
                None => layout
                    .entries()
                    .iter()
                    .map(|e| (e.name.clone(), e.digest.to_string()))
                    .collect(),
            };
            Ok(Some((Arc::new(layout), wanted)))
        }
        _ => Ok(None),
    }
}

/// How an image of a file is named and looked up: the repository and tag its
/// name gives (none for a digest; no repository for a bare tag), and the
/// reference `resolve_manifests` finds it by.
pub(crate) struct FileName {
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub lookup: String,
}

/// See [`FileName`]: `name` as the file gives it, `reference` as listed or asked.
pub(crate) fn file_name(name: Option<&str>, reference: &str) -> FileName {
    let named = name.unwrap_or(reference);
    let (repo, tag) = if named.parse::<Digest>().is_ok() {
        (None, None)
    } else {
        split_name(named)
    };
    let lookup = match (name, tag) {
        (None, Some(tag)) => tag,
        _ => reference,
    };
    FileName {
        repository: repo.map(str::to_string),
        tag: tag.map(str::to_string),
        lookup: lookup.to_string(),
    }
}

/// A bundle's images (all, or those `wanted` names). A one-platform sink gets the
/// child of an index that `platforms` names, read from the bundle like the rest.
fn found_in_bundle(
    source: &Arc<BundleSource>,
    wanted: &[String],
    platforms: &PlatformFilter,
) -> Result<(Vec<Found>, HashMap<Digest, LeftToBase>)> {
    let selected = crate::engine::export::select(source.bundle(), wanted)?;
    let mut found = Vec::new();
    for image in selected {
        let (repository, tag) = crate::transport::bundle::source::image_name(image);
        let mut copy = plan::from_bundle(source, image, String::new(), None)
            .map_err(|why| anyhow!("{}: {why}", image.reference))?;
        if platforms.len() == 1 && !image.children.is_empty() {
            copy = one_platform(source, image, copy, platforms)?;
        }
        found.push(Found {
            image: copy,
            // A renamed image goes by its new name alone (no source host).
            registry: image.target.is_none().then(|| image.registry.clone()),
            repository,
            tag,
        });
    }
    let bases = plan::bundle_bases(source, &|r| r.to_string());
    Ok((found, bases))
}

/// The child of a bundle image's index that the one platform names, as an image
/// of its own (what `docker pull --platform` gives), picked as `resolve` picks it.
fn one_platform(
    source: &Arc<BundleSource>,
    image: &crate::bundle::meta::Image,
    whole: CopyImage,
    platforms: &PlatformFilter,
) -> Result<CopyImage> {
    let read = |digest: &Digest| {
        source
            .read_manifest(digest)
            .map_err(|e| anyhow!("{}: {e}", image.reference))
    };
    let (_, top) = read(&image.digest)?;
    let Parsed::Index { manifests } = top else {
        return Ok(whole);
    };
    let child = platforms
        .pick(&manifests)
        .map_err(|why| anyhow!("{}: {why}", image.reference))?;
    let (raw, parsed) = read(&child.digest)?;
    Ok(CopyImage {
        digest: raw.digest.clone(),
        manifests: vec![raw],
        blobs: plan::manifest_blobs(&parsed),
        ..whole
    })
}

/// One image of a layout or archive: listed (`name` as the file gives it, looked
/// up by digest) or asked for (`reference`: a bare tag, `repo:tag`, a full
/// reference or a digest). It keeps the repository and tag its name gives.
async fn found_in_file(
    source: &SharedSource,
    name: Option<&str>,
    reference: &str,
    platforms: &PlatformFilter,
) -> Result<Found> {
    let label = format!("{}:{}", source.describe(), name.unwrap_or(reference));
    let named = file_name(name, reference);
    let (repo, tag) = (named.repository.as_deref(), named.tag.as_deref());
    let found = resolve_manifests(
        source.as_ref(),
        repo.unwrap_or(""),
        &named.lookup,
        &label,
        platforms,
    )
    .await
    .with_context(|| label.clone())?;
    // A name with a registry host (`docker save` style) keeps the host apart.
    let full = repo
        .filter(|r| crate::transport::image_names::has_host(r))
        .and_then(|r| Reference::parse(r).ok());
    let (registry, repository) = match full {
        Some(r) => (Some(r.registry), r.repository),
        None => (None, repo.unwrap_or("").to_string()),
    };
    Ok(Found {
        image: plan::from_manifests(
            &label,
            &found,
            source.clone(),
            repo.unwrap_or(""),
            String::new(),
            None,
        ),
        registry,
        repository,
        tag: tag.map(str::to_string),
    })
}

async fn open_target(
    spec: &TransportSpec,
    env: &CopyEnv<'_>,
    retrying: &Retrying,
    dry_run: bool,
) -> Result<Target> {
    match spec {
        TransportSpec::Registry { reference } => {
            let host = reference.split('/').next().unwrap_or_default();
            let endpoint = RegistryEndpoint::new(env.registries.client(host)?, retrying.clone());
            Ok(Target::Registry {
                endpoint,
                reference: reference.clone(),
            })
        }
        TransportSpec::OciLayout { dir, reference } => {
            // A dry run creates no folder: a layout not there yet has nothing.
            let new = dry_run && !dir.join("blobs/sha256").is_dir();
            let empty = new.then(|| format!("oci:{}", dir.display()));
            file_target(reference, empty, false, |naming| {
                Ok(Box::new(OciLayoutSink::create(dir, naming)?))
            })
        }
        TransportSpec::DockerArchive { file, reference } => {
            // A dry run writes no file: the archive would be new.
            let empty = dry_run.then(|| format!("docker-archive:{}", file.display()));
            file_target(reference, empty, true, |naming| {
                Ok(Box::new(DockerArchiveSink::create(file, naming)?))
            })
        }
        TransportSpec::DockerDaemon { reference } => {
            let engine = DockerEngine::from_env().map_err(TransportError::from)?;
            Ok(Target::Local {
                sink: Box::new(DockerEngineSink::connect(engine).await?),
                reference: Some(reference.clone()),
                with_host: true,
                split_reference: true,
            })
        }
        TransportSpec::Containerd { reference } => Ok(Target::Local {
            sink: Box::new(ContainerdSink::open(ContainerdOptions::namespace(
                std::env::var("CONTAINERD_NAMESPACE").ok().as_deref(),
            ))?),
            reference: Some(reference.clone()),
            with_host: true,
            split_reference: true,
        }),
        other => Err(unsupported(other, crate::i18n::t("destination", "目标"))),
    }
}

/// The target of a file sink (an OCI layout, a docker archive): the image named by
/// the spec's reference when it gives one, else each by its repository and tag
/// (`with_host`: with its registry host, as `docker save` names images). `empty`
/// names a sink that has nothing, for a dry run where the file would be new;
/// otherwise `create` makes the sink.
fn file_target(
    reference: &Option<String>,
    empty: Option<String>,
    with_host: bool,
    create: impl FnOnce(RefNaming) -> Result<Box<dyn ImageSink>>,
) -> Result<Target> {
    let naming = match reference {
        Some(_) => RefNaming::Verbatim,
        None => RefNaming::RepositoryTag,
    };
    let sink = match empty {
        Some(name) => Box::new(super::EmptySink { name }),
        None => create(naming)?,
    };
    Ok(Target::Local {
        sink,
        reference: reference.clone(),
        with_host,
        split_reference: false,
    })
}

/// Names images in a file or engine. `oci:DIR:REF` names one image REF; without
/// REF every image keeps its repository and tag (with its registry host where the
/// sink names images as `docker pull` does).
fn name_for_local(
    found: Vec<Found>,
    reference: Option<&str>,
    with_host: bool,
    split_reference: bool,
    dst: &str,
) -> Result<Vec<CopyImage>> {
    let images_only = found.iter().filter(|f| !f.image.referrer).count();
    if reference.is_some() && images_only > 1 {
        return Err(crate::engine::UsageError(crate::tr!(
            "{dst}: one name for {images_only} images; leave the name out to keep each image's own",
            "{dst}: 为 {images_only} 个镜像只给了一个名称; 不写名称即可保留各镜像自己的名称"
        ))
        .into());
    }
    Ok(found
        .into_iter()
        .map(|f| {
            let mut image = f.image;
            image.target_repo = match (&f.registry, with_host) {
                (Some(host), true) if !f.repository.is_empty() => {
                    format!("{host}/{}", f.repository)
                }
                _ => f.repository,
            };
            image.target_tag = match (reference, image.referrer) {
                (Some(r), false) if split_reference => {
                    let (repo, tag) = crate::reference::split_short(r);
                    image.target_repo = repo.to_string();
                    Some(tag.unwrap_or("latest").to_string())
                }
                (Some(r), false) => Some(r.to_string()),
                _ => f.tag,
            };
            image
        })
        .collect())
}

/// Names images at a registry. One image may be given a full `HOST/REPO[:TAG]`
/// (the tag defaults to the source's); several go under `HOST[/NAMESPACE]` with
/// their own repository and tag, as upload names them.
fn name_for_registry(found: Vec<Found>, reference: &str) -> Result<Vec<CopyImage>> {
    let images_only = found.iter().filter(|f| !f.image.referrer).count();
    let (host, path) = reference.split_once('/').unwrap_or((reference, ""));
    let as_one = images_only == 1 && !path.is_empty() && !path.ends_with('/');
    let target_one = if as_one {
        let parsed = Reference::parse(reference)
            .map_err(|e| crate::engine::UsageError(format!("{reference}: {e}")))?;
        // The parser fills in `latest`; only a tag written here overrides the source's.
        let written_tag = crate::reference::split_short(path).1.map(str::to_string);
        Some(Reference {
            tag: written_tag,
            ..parsed
        })
    } else {
        None
    };
    let namespace = path.trim_end_matches('/');
    let mut out = Vec::new();
    for f in found {
        let mut image = f.image;
        match (&target_one, image.referrer) {
            (Some(t), false) => {
                image.target_repo = t.repository.clone();
                image.target_tag = t.tag.clone().or(f.tag);
            }
            (Some(t), true) => {
                image.target_repo = t.repository.clone();
                image.target_tag = f.tag;
            }
            (None, _) => {
                image.target_repo = if namespace.is_empty() {
                    f.repository
                } else {
                    format!("{namespace}/{}", f.repository)
                };
                image.target_tag = f.tag;
            }
        }
        if image.target_repo.is_empty() {
            bail!(crate::tr!(
                "{host}: name a repository to copy to (docker://HOST/REPOSITORY[:TAG])",
                "{host}: 请指定目标仓库 (docker://HOST/REPOSITORY[:TAG])"
            ));
        }
        out.push(image);
    }
    Ok(out)
}
