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
use crate::reference::Reference;
use crate::transport::bundle::BundleSource;
use crate::transport::image_names::{split_name, RefNaming};
use crate::transport::oci_layout::{OciLayoutSink, OciLayoutSource};
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::{ImageSink, SharedSource, TransportSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What `copy` needs besides the two endpoints.
pub struct CopyOptions {
    pub platforms: PlatformFilter,
    pub with_referrers: bool,
    pub jobs: usize,
    pub retry: RetryPolicy,
    /// Folders to look for a bundle's bases in (besides its own).
    pub base_dirs: Vec<PathBuf>,
    /// Plan only (`--dry-run`): nothing is written, not even a new layout folder.
    pub dry_run: bool,
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
    },
}

pub async fn copy(
    src: &TransportSpec,
    dst: &TransportSpec,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<CopyOutcome> {
    let retrying = Retrying::for_reporter(opts.retry, env.cancel, env.reporter);
    let (found, bases) = open_source(src, opts, env, &retrying).await?;
    if found.is_empty() {
        bail!(crate::tr!(
            "{}: no image to copy",
            "{}: 没有可复制的镜像",
            describe_spec(src)
        ));
    }
    let target = open_target(dst, env, &retrying, opts.dry_run)?;
    let (sink, images): (&dyn ImageSink, Vec<CopyImage>) = match &target {
        Target::Registry {
            endpoint,
            reference,
        } => (endpoint, name_for_registry(found, reference)?),
        Target::Local {
            sink,
            reference,
            with_host,
        } => (
            sink.as_ref(),
            name_for_local(found, reference.as_deref(), *with_host, dst)?,
        ),
    };
    let ctx = CopyContext {
        sink,
        bases: &bases,
        jobs: opts.jobs,
        reporter: env.reporter,
        cancel: env.cancel,
        dry_run: opts.dry_run,
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
    env: &CopyEnv<'_>,
    retrying: &Retrying,
) -> Result<(Vec<Found>, HashMap<Digest, LeftToBase>)> {
    match spec {
        TransportSpec::Registry { reference } => {
            let r = Reference::parse(reference)
                .map_err(|e| crate::cli::run::UsageError(format!("{reference}: {e}")))?;
            let endpoint =
                RegistryEndpoint::new(env.registries.client(&r.registry)?, retrying.clone());
            let resolved = resolve(&endpoint, &r, reference, &opts.platforms)
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
            let source = Arc::new(BundleSource::open(meta, &opts.base_dirs, env.reporter)?);
            let wanted: Vec<String> = reference.iter().cloned().collect();
            let selected = crate::engine::export::select(source.bundle(), &wanted)?;
            let mut found = Vec::new();
            for image in selected {
                let (repository, tag) = crate::transport::bundle::source::image_name(image);
                let copy = plan::from_bundle(&source, image, String::new(), None)
                    .map_err(|why| anyhow!("{}: {why}", image.reference))?;
                found.push(Found {
                    image: copy,
                    registry: Some(image.registry.clone()),
                    repository,
                    tag,
                });
            }
            let bases = plan::bundle_bases(&source, &|r| r.to_string());
            Ok((found, bases))
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
            let source: SharedSource = Arc::new(layout);
            let mut found = Vec::new();
            for (name, reference) in wanted {
                found.push(
                    found_in_file(&source, name.as_deref(), &reference, &opts.platforms).await?,
                );
            }
            Ok((found, HashMap::new()))
        }
        other => Err(unsupported(other, crate::i18n::t("source", "源"))),
    }
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
    let found = resolve_manifests(
        source.as_ref(),
        repo.unwrap_or(""),
        lookup,
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

fn open_target(
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
            let naming = match reference {
                Some(_) => RefNaming::Verbatim,
                None => RefNaming::RepositoryTag,
            };
            // A dry run creates no folder: a layout not there yet has nothing.
            let sink: Box<dyn ImageSink> = if dry_run && !dir.join("blobs/sha256").is_dir() {
                Box::new(super::EmptySink {
                    name: format!("oci:{}", dir.display()),
                })
            } else {
                Box::new(OciLayoutSink::create(dir, naming)?)
            };
            Ok(Target::Local {
                sink,
                reference: reference.clone(),
                with_host: false,
            })
        }
        other => Err(unsupported(other, crate::i18n::t("destination", "目标"))),
    }
}

/// Names images in a file or engine. `oci:DIR:REF` names one image REF; without
/// REF every image keeps its repository and tag (with its registry host where the
/// sink names images as `docker pull` does).
fn name_for_local(
    found: Vec<Found>,
    reference: Option<&str>,
    with_host: bool,
    dst: &TransportSpec,
) -> Result<Vec<CopyImage>> {
    let images_only = found.iter().filter(|f| !f.image.referrer).count();
    if reference.is_some() && images_only > 1 {
        return Err(crate::cli::run::UsageError(crate::tr!(
            "{}: one name for {images_only} images; leave the name out to keep each image's own",
            "{}: 为 {images_only} 个镜像只给了一个名称; 不写名称即可保留各镜像自己的名称",
            describe_spec(dst)
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
            .map_err(|e| crate::cli::run::UsageError(format!("{reference}: {e}")))?;
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
