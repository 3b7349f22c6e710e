//! Resolving a reference to everything it needs: the top manifest, child manifests
//! of an index, and the configs and layers they name.

use super::pace::{Pace, Side};
use super::platform::PlatformFilter;
use super::registries::Registries;
use super::report::Reporter;
use super::retry::{unreachable, RetryPolicy};
use crate::bundle::meta::BlobKind;
use crate::digest::Digest;
use crate::manifest::{Descriptor, ManifestError, Parsed, RawManifest};
use crate::reference::Reference;
use crate::registry::RegistryError;
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::{ImageSource, TransportError};
use futures_util::{stream, StreamExt, TryStreamExt};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One image to save or sync: the reference as the user gave it (for reports and the meta),
/// what to fetch, and the name it should get at the target (`SOURCE -> TARGET`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRequest {
    pub input: String,
    pub fetch: String,
    pub rename: Option<String>,
}

impl ImageRequest {
    pub fn plain(reference: &str) -> ImageRequest {
        ImageRequest {
            input: reference.to_string(),
            fetch: reference.to_string(),
            rename: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobNeed {
    pub digest: Digest,
    pub size: u64,
    pub kind: BlobKind,
}

#[derive(Clone, Debug)]
pub struct ChildManifest {
    pub raw: RawManifest,
    pub platform: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub input: String,
    pub reference: Reference,
    pub top: RawManifest,
    /// Children of an index, in the index's order (nested indexes flattened after
    /// their parent).
    pub children: Vec<ChildManifest>,
    /// Configs and layers of the image or of all its children, each once.
    pub blobs: Vec<BlobNeed>,
    /// The `repository:tag` it gets at the target, when the list renamed it.
    pub rename: Option<String>,
    /// For a signature, attestation or other referrer: the manifest it refers to.
    pub subject: Option<Digest>,
}

impl ResolvedImage {
    pub fn manifests(&self) -> impl Iterator<Item = &RawManifest> {
        std::iter::once(&self.top).chain(self.children.iter().map(|c| &c.raw))
    }
}

/// Configs and layers an image manifest names, without foreign layers.
pub fn image_blobs(parsed: &Parsed) -> Vec<BlobNeed> {
    match parsed {
        Parsed::Image { config, layers } => std::iter::once(BlobNeed {
            digest: config.digest.clone(),
            size: config.size,
            kind: BlobKind::Config,
        })
        .chain(layers.iter().filter(|l| !l.is_foreign()).map(|l| BlobNeed {
            digest: l.digest.clone(),
            size: l.size,
            kind: BlobKind::Layer,
        }))
        .collect(),
        Parsed::Index { .. } => Vec::new(),
    }
}

const MAX_INDEX_DEPTH: usize = 4;
/// Child manifests of one index fetched at once.
const MAX_CHILDREN_AT_ONCE: usize = 32;

/// Fetches a reference and everything under it. With a platform filter, an index
/// keeps only the matching children; with exactly one platform the image becomes that
/// platform's own manifest (what `docker pull --platform` gives).
pub async fn resolve(
    source: &dyn ImageSource,
    reference: &Reference,
    input: &str,
    platforms: &PlatformFilter,
) -> Result<ResolvedImage, TransportError> {
    let found = resolve_manifests(
        source,
        &reference.repository,
        &reference.api_reference(),
        &reference.to_string(),
        platforms,
    )
    .await?;
    Ok(ResolvedImage {
        input: input.to_string(),
        reference: reference.clone(),
        top: found.top,
        children: found.children,
        blobs: found.blobs,
        rename: None,
        subject: None,
    })
}

/// An image's manifests and blobs, as found at a source.
pub struct Manifests {
    pub top: RawManifest,
    /// Children of an index, in the index's order (nested ones after their parent).
    pub children: Vec<ChildManifest>,
    /// Configs and layers of the image or of all its children, each once.
    pub blobs: Vec<BlobNeed>,
}

/// Fetches `reference` (a tag or digest) in `repo` of `source` and everything under
/// it, with the platform filter applied; `what` names the image in errors.
pub async fn resolve_manifests(
    source: &dyn ImageSource,
    repo: &str,
    reference: &str,
    what: &str,
    platforms: &PlatformFilter,
) -> Result<Manifests, TransportError> {
    let (mut top, mut parsed) = source.get_manifest(repo, reference).await?;
    if let (false, Parsed::Index { manifests }) = (platforms.is_empty(), &parsed) {
        let matching = platforms.matching(manifests);
        let Some(first) = matching.first() else {
            return Err(TransportError::Invalid {
                endpoint: what.to_string(),
                reason: platforms.none_in(manifests),
            });
        };
        if platforms.len() == 1 {
            let desc = (*first).clone();
            let (raw, child) = source.get_manifest(repo, desc.digest.as_str()).await?;
            check_size(&raw, &desc, what)?;
            (top, parsed) = (raw, child);
        } else if matching.len() < manifests.len() {
            let keep: HashSet<&Digest> = matching.iter().map(|d| &d.digest).collect();
            (top, parsed) = filtered_index(&top, &keep).map_err(|e| TransportError::Invalid {
                endpoint: what.to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let mut children = Vec::new();
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    let mut add_blobs = |parsed: &Parsed, blobs: &mut Vec<BlobNeed>| {
        for b in image_blobs(parsed) {
            if seen.insert(b.digest.clone()) {
                blobs.push(b);
            }
        }
    };
    add_blobs(&parsed, &mut blobs);
    // Breadth-first over (possibly nested) indexes.
    let mut queue: Vec<(Parsed, usize)> = vec![(parsed, 0)];
    while let Some((p, depth)) = queue.pop() {
        let Parsed::Index { manifests } = p else {
            continue;
        };
        if depth >= MAX_INDEX_DEPTH {
            return Err(TransportError::Invalid {
                endpoint: what.to_string(),
                reason: crate::tr!(
                    "indexes nested deeper than {MAX_INDEX_DEPTH} levels",
                    "索引嵌套超过 {MAX_INDEX_DEPTH} 层"
                ),
            });
        }
        // An index's children at once (in order, a bounded number at a time): one
        // round trip, not one each.
        let fetched: Vec<(RawManifest, Parsed)> = stream::iter(manifests.iter())
            .map(|desc| source.get_manifest(repo, desc.digest.as_str()))
            .buffered(MAX_CHILDREN_AT_ONCE)
            .try_collect()
            .await?;
        for (desc, (raw, child)) in manifests.iter().zip(fetched) {
            check_size(&raw, desc, what)?;
            add_blobs(&child, &mut blobs);
            children.push(ChildManifest {
                raw,
                platform: desc.platform.as_ref().map(|p| p.to_string()),
            });
            queue.push((child, depth + 1));
        }
    }
    Ok(Manifests {
        top,
        children,
        blobs,
    })
}

fn check_size(raw: &RawManifest, desc: &Descriptor, what: &str) -> Result<(), TransportError> {
    if raw.bytes.len() as u64 != desc.size {
        return Err(TransportError::Registry(RegistryError::SizeMismatch {
            what: format!("manifest {} of {what}", desc.digest),
            expected: desc.size,
            actual: raw.bytes.len() as u64,
        }));
    }
    Ok(())
}

/// A new index holding only the kept children. Its digest differs from the source
/// index's: a filtered multi-platform index is a new manifest by nature.
fn filtered_index(
    top: &RawManifest,
    keep: &HashSet<&Digest>,
) -> Result<(RawManifest, Parsed), ManifestError> {
    let mut value: serde_json::Value = serde_json::from_slice(&top.bytes)?;
    if let Some(list) = value.get_mut("manifests").and_then(|m| m.as_array_mut()) {
        list.retain(|d| {
            d.get("digest")
                .and_then(|x| x.as_str())
                .and_then(|x| x.parse::<Digest>().ok())
                .is_some_and(|x| keep.contains(&x))
        });
    }
    RawManifest::new(serde_json::to_vec(&value)?, Some(&top.media_type))
}

/// The outcome of resolving a list of requests: the images, and the references
/// that were malformed (invalid) or could not be resolved (failed), with why.
pub struct Resolved {
    pub images: Vec<ResolvedImage>,
    pub invalid: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// `repository:tag` at the target for a list line's `-> TARGET`. A bare name stays
/// as written: Docker Hub's `library/` applies to Docker Hub, not to a private
/// target (`-> nginx:1` goes to `TARGET/nginx:1`).
pub(crate) fn rename_target(text: &str) -> Result<String, crate::reference::ReferenceError> {
    let parsed = Reference::parse(text)?;
    let short = parsed.short();
    let names_host = text.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    });
    if !names_host && !text.starts_with("library/") {
        if let Some(rest) = short.strip_prefix("library/") {
            return Ok(rest.to_string());
        }
    }
    Ok(short)
}

/// What resolving a list runs with: the platform filter, how many references at
/// once, retries, the registries, who hears of progress, and Ctrl-C.
pub struct ResolveContext<'a> {
    pub platforms: &'a PlatformFilter,
    pub jobs: usize,
    pub policy: RetryPolicy,
    pub registries: &'a Registries,
    pub reporter: &'a Reporter,
    pub cancel: &'a CancellationToken,
}

/// A request that parsed: the input, the reference, the rename target.
type ParsedRequest = (String, Reference, Option<String>);

/// Parses and resolves every request concurrently (manifests only), keeping the
/// input order. One bad reference does not stop the others.
pub async fn resolve_requests(requests: &[ImageRequest], ctx: &ResolveContext<'_>) -> Resolved {
    let (parsed, invalid) = parse_requests(requests);
    let unreachable = unreachable_hosts(&parsed, ctx).await;
    let results = resolve_parsed(&parsed, &unreachable, ctx).await;
    let mut images = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in results {
        match r {
            Ok(img) => images.push(img),
            Err(why) => {
                let input = parsed.get(i).map(|p| p.0.clone()).unwrap_or_default();
                ctx.reporter.warn(&format!("{input}: {why}"));
                failed.push((input, why));
            }
        }
    }
    Resolved {
        images,
        invalid,
        failed,
    }
}

/// The requests that parse, and those that do not (invalid), with why.
fn parse_requests(requests: &[ImageRequest]) -> (Vec<ParsedRequest>, Vec<(String, String)>) {
    let mut invalid = Vec::new();
    let mut parsed = Vec::new();
    for request in requests {
        let rename = match request.rename.as_deref().map(rename_target) {
            Some(Ok(target)) => Some(target),
            Some(Err(e)) => {
                invalid.push((
                    request.input.clone(),
                    crate::tr!("rename target: {e}", "重命名目标: {e}"),
                ));
                continue;
            }
            None => None,
        };
        // A file or engine (`oci:DIR`, ...) is not a registry: `save` reads those
        // itself; here (sync) it is a reference that cannot be used.
        if let Ok(Some(spec)) = crate::transport::parse_transport(&request.fetch) {
            if !matches!(spec, crate::transport::TransportSpec::Registry { .. }) {
                invalid.push((
                    request.input.clone(),
                    crate::tr!(
                        "{} is not a registry: this command copies between registries (ferry save and ferry copy read it)",
                        "{} 不是镜像仓库: 此命令只在镜像仓库之间复制 (ferry save 和 ferry copy 可以读取它)",
                        spec.transport()
                    ),
                ));
                continue;
            }
        }
        match Reference::parse(&request.fetch) {
            Ok(r) => parsed.push((request.input.clone(), r, rename)),
            Err(e) => invalid.push((request.input.clone(), e.to_string())),
        }
    }
    (parsed, invalid)
}

/// The registries that cannot be reached, with why: they fail their images at
/// once, instead of each image retrying on its own.
async fn unreachable_hosts<'p>(
    parsed: &'p [ParsedRequest],
    ctx: &ResolveContext<'_>,
) -> HashMap<&'p str, String> {
    let on_retry = |e: &RegistryError, d: Duration| ctx.reporter.retrying(e, d);
    let on_retry = &on_retry;
    let hosts: BTreeSet<&str> = parsed.iter().map(|(_, r, _)| r.registry.as_str()).collect();
    stream::iter(hosts)
        .map(|host| async move {
            let client = ctx.registries.client(host).ok()?;
            let e = unreachable(&client, ctx.policy, ctx.cancel, on_retry).await?;
            Some((host, e.to_string()))
        })
        .buffer_unordered(ctx.jobs.max(1))
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// Resolves the parsed requests, `jobs` at a time (more when the registries
/// answer slowly); results by index, in input order.
async fn resolve_parsed(
    parsed: &[ParsedRequest],
    unreachable: &HashMap<&str, String>,
    ctx: &ResolveContext<'_>,
) -> Vec<(usize, Result<ResolvedImage, String>)> {
    let bar = ctx
        .reporter
        .count_bar(parsed.len() as u64, crate::i18n::t("resolve", "解析"));
    let retrying = &Retrying::for_reporter(ctx.policy, ctx.cancel, ctx.reporter);
    let pace = &Pace::new(ctx.jobs, true);
    let mut results: Vec<(usize, Result<ResolvedImage, String>)> =
        stream::iter(parsed.iter().enumerate())
            .map(|(i, (input, reference, rename))| {
                let bar = &bar;
                async move {
                    let _go = pace.enter(0).await;
                    let started = std::time::Instant::now();
                    let r = match ctx.registries.client(&reference.registry) {
                        _ if unreachable.contains_key(reference.registry.as_str()) => {
                            Err(unreachable
                                .get(reference.registry.as_str())
                                .cloned()
                                .unwrap_or_default())
                        }
                        Ok(client) => resolve(
                            &RegistryEndpoint::new(client, retrying.clone()),
                            reference,
                            input,
                            ctx.platforms,
                        )
                        .await
                        .map(|mut img| {
                            img.rename = rename.clone();
                            img
                        })
                        .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if r.is_ok() {
                        pace.observe(Side::Source, started.elapsed());
                    }
                    bar.inc(1);
                    (i, r)
                }
            })
            .buffer_unordered(pace.max())
            .collect()
            .await;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _)| *i);
    results
}

#[cfg(test)]
mod tests {
    #[test]
    fn rename_targets_keep_bare_names() {
        assert_eq!(super::rename_target("nginx:1").unwrap(), "nginx:1");
        assert_eq!(super::rename_target("team/app:2").unwrap(), "team/app:2");
        assert_eq!(
            super::rename_target("library/nginx:1").unwrap(),
            "library/nginx:1"
        );
        assert_eq!(super::rename_target("reg.io:5000/a/b:1").unwrap(), "a/b:1");
        assert!(super::rename_target("").is_err());
    }
}
