//! `ferry copy SRC DST`: opens the two endpoints a transport spec names, lists the
//! images the source offers (one image, or all of a bundle), names them at the
//! sink, and hands them to the copy driver.

use super::{copy_in_order, plan, CopyContext, CopyImage, CopyOutcome, LeftToBase};
use crate::digest::Digest;
use crate::engine::platform::PlatformFilter;
use crate::engine::registries::Registries;
use crate::engine::report::Reporter;
use crate::engine::resolve::resolve;
use crate::engine::retry::RetryPolicy;
use crate::reference::Reference;
use crate::transport::bundle::BundleSource;
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
    let target = open_target(dst, env, &retrying)?;
    let (sink, images): (&dyn ImageSink, Vec<CopyImage>) = match &target {
        Target::Registry {
            endpoint,
            reference,
        } => (endpoint, name_for_registry(found, reference)?),
    };
    let ctx = CopyContext {
        sink,
        bases: &bases,
        jobs: opts.jobs,
        reporter: env.reporter,
        cancel: env.cancel,
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
                    repository,
                    tag,
                });
            }
            let bases = plan::bundle_bases(&source, &|r| r.to_string());
            Ok((found, bases))
        }
        other => Err(unsupported(other, crate::i18n::t("source", "源"))),
    }
}

fn open_target(spec: &TransportSpec, env: &CopyEnv<'_>, retrying: &Retrying) -> Result<Target> {
    match spec {
        TransportSpec::Registry { reference } => {
            let host = reference.split('/').next().unwrap_or_default();
            let endpoint = RegistryEndpoint::new(env.registries.client(host)?, retrying.clone());
            Ok(Target::Registry {
                endpoint,
                reference: reference.clone(),
            })
        }
        other => Err(unsupported(other, crate::i18n::t("destination", "目标"))),
    }
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
