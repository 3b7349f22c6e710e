//! `upload`: bundle → registry. Verify first (nothing is pushed from a bundle that
//! fails), check that base bundles' blobs are in the target, push the blobs the
//! target lacks straight out of the tar files, then manifests children-first and
//! tags last, as the exact bytes saved.

use super::registries::Registries;
use super::report::{Reporter, Summary};
use super::resolve::image_blobs;
use super::retry::{retry, RetryPolicy};
use crate::bundle::meta::{BlobRecord, Image};
use crate::bundle::reader::{BlobLocation, Bundle, VerifyLevel};
use crate::digest::Digest;
use crate::manifest::RawManifest;
use crate::registry::{Client, RegistryError, UploadStart};
use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `HOST[:PORT][/NAMESPACE]`: where upload puts the bundle's repositories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub namespace: String,
    /// Some(true) for an explicit `http://`, Some(false) for `https://`.
    pub plain_http: Option<bool>,
    /// cfg.yaml `repository:` of the target: replaces the path before the image name.
    pub rewrite: Option<String>,
}

impl Destination {
    pub fn parse(s: &str) -> Result<Destination> {
        let (plain_http, rest) = if let Some(r) = s.strip_prefix("http://") {
            (Some(true), r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Some(false), r)
        } else {
            (None, s)
        };
        let rest = rest.trim_end_matches('/');
        let (host, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            bail!("invalid destination {s:?}: expected HOST[:PORT][/NAMESPACE]");
        }
        // Validate both parts through the reference parser.
        let probe = if namespace.is_empty() {
            format!("{host}/probe")
        } else {
            format!("{host}/{namespace}/probe")
        };
        let parsed = crate::reference::Reference::parse(&probe)
            .map_err(|e| anyhow::anyhow!("invalid destination {s:?}: {e}"))?;
        if parsed.registry != host {
            bail!("invalid destination {s:?}: {host:?} is not a registry host (a host has a '.' or a ':port', or is localhost)");
        }
        Ok(Destination {
            host: host.to_string(),
            namespace: namespace.to_string(),
            plain_http,
            rewrite: None,
        })
    }

    pub fn repository(&self, source_repository: &str) -> String {
        crate::config::rewrite::target_repository(
            source_repository,
            self.rewrite.as_deref(),
            &self.namespace,
        )
    }

    /// Where an image of the bundle goes: its renamed `repository:tag` when the list
    /// renamed it (the namespace still applies), else the rewritten source path.
    pub fn image_target(&self, image: &Image) -> (String, Option<String>) {
        if let Some(t) = image
            .target
            .as_deref()
            .and_then(|t| crate::reference::Reference::parse(&format!("{}/{t}", self.host)).ok())
        {
            let repo = if self.namespace.is_empty() {
                t.repository
            } else {
                format!("{}/{}", self.namespace, t.repository)
            };
            return (repo, t.tag);
        }
        (self.repository(&image.repository), image.tag.clone())
    }
}

#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub destination: Destination,
    pub jobs: usize,
    pub verify: VerifyLevel,
    pub retry: RetryPolicy,
}

/// An image of the bundle with its manifests read back from the data files.
struct Plan<'a> {
    image: &'a Image,
    target_repo: String,
    /// The tag to set at the target; none for an image saved by digest.
    target_tag: Option<String>,
    /// Child manifests deepest first, then the top manifest.
    manifests: Vec<RawManifest>,
    blobs: Vec<Digest>,
}

pub async fn upload(
    meta_path: &Path,
    opts: &UploadOptions,
    registries: &Registries,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Summary> {
    let started = Instant::now();
    let bundle = Bundle::open(meta_path).context("cannot open the bundle")?;
    let index = verify_bundle(&bundle, opts.verify, reporter)?;
    let client = registries.client(&opts.destination.host)?;
    let on_retry = |e: &RegistryError, d: Duration| {
        reporter.warn(&format!(
            "{} {:.1}s: {e}",
            crate::i18n::t("retrying in", "重试, 等待"),
            d.as_secs_f64()
        ))
    };
    let mut summary = Summary {
        action: "upload",
        total: bundle.meta.images.len(),
        ..Summary::default()
    };

    // Read every image's manifests back and find the blobs they need.
    let mut plans = Vec::new();
    for image in &bundle.meta.images {
        match plan_image(&bundle, image, &index, &opts.destination) {
            Ok(p) => plans.push(p),
            Err(why) => summary.failed.push((image.reference.clone(), why)),
        }
    }
    if !summary.failed.is_empty() {
        bail!(
            "the bundle is inconsistent, nothing was pushed: {}",
            summary
                .failed
                .iter()
                .map(|(r, w)| format!("{r}: {w}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    // Images whose tag already points at the same digest are done.
    let present: Vec<bool> = stream::iter(&plans)
        .map(|p| {
            let client = &client;
            let on_retry = &on_retry;
            async move {
                match &p.target_tag {
                    Some(tag) => matches!(retry(opts.retry, cancel, on_retry, || client.manifest_digest(&p.target_repo, tag)).await, Ok(Some(d)) if d == p.image.digest),
                    None => false,
                }
            }
        })
        .buffered(opts.jobs.max(1))
        .collect()
        .await;
    let (done_plans, plans): (Vec<_>, Vec<_>) = plans
        .into_iter()
        .zip(present)
        .partition(|(_, present)| *present);
    let plans: Vec<Plan> = plans.into_iter().map(|(p, _)| p).collect();
    for (p, _) in &done_plans {
        reporter.info(&format!(
            "{}: {} {}/{} ({})",
            p.image.reference,
            crate::i18n::t("already at", "目标已存在"),
            opts.destination.host,
            p.target_repo,
            p.image.digest
        ));
    }

    // Which repositories need each blob.
    let records: HashMap<&Digest, &BlobRecord> =
        bundle.meta.blobs.iter().map(|b| (&b.digest, b)).collect();
    let mut needs: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for p in &plans {
        for d in &p.blobs {
            needs
                .entry(d.clone())
                .or_default()
                .insert(p.target_repo.clone());
        }
    }

    // Blobs left to a base bundle must already be in the target.
    let base_blobs: Vec<(&Digest, &BTreeSet<String>, &BlobRecord)> = needs
        .iter()
        .filter_map(|(d, repos)| {
            records
                .get(d)
                .filter(|r| r.base.is_some())
                .map(|r| (d, repos, *r))
        })
        .collect();
    let mut known_in: HashMap<Digest, String> = HashMap::new();
    if !base_blobs.is_empty() {
        reporter.info(&if crate::i18n::is_chinese() {
            format!(
                "检查目标仓库是否已有基础包携带的 {} 个数据块",
                base_blobs.len()
            )
        } else {
            format!(
                "checking that the target has the {} blobs the base bundles carried",
                base_blobs.len()
            )
        });
        let found: Vec<(Digest, Option<String>, String)> = stream::iter(base_blobs)
            .map(|(d, repos, rec)| {
                let client = &client;
                let on_retry = &on_retry;
                async move {
                    let mut candidates: Vec<String> = repos.iter().cloned().collect();
                    candidates.push(opts.destination.repository(&rec.repository));
                    for repo in candidates {
                        if let Ok(Some(_)) = retry(opts.retry, cancel, on_retry, || {
                            client.blob_exists(&repo, d)
                        })
                        .await
                        {
                            return (d.clone(), Some(repo), String::new());
                        }
                    }
                    (
                        d.clone(),
                        None,
                        rec.base.clone().unwrap_or_else(|| "an unnamed base".into()),
                    )
                }
            })
            .buffer_unordered(opts.jobs.max(1))
            .collect()
            .await;
        if cancel.is_cancelled() {
            bail!("interrupted; nothing was pushed");
        }
        let mut missing: BTreeMap<String, usize> = BTreeMap::new();
        for (d, repo, base) in found {
            match repo {
                Some(r) => {
                    known_in.insert(d, r);
                }
                None => *missing.entry(base).or_default() += 1,
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing
                .iter()
                .map(|(b, n)| format!("{b} ({n} blob{} missing)", if *n == 1 { "" } else { "s" }))
                .collect();
            if crate::i18n::is_chinese() {
                bail!(
                    "目标仓库 {} 缺少此增量包依赖基础包的数据块: 请先上传 {}。没有推送任何内容。",
                    opts.destination.host,
                    list.join(", ")
                );
            }
            bail!("the target {} lacks blobs that this incremental bundle leaves to its base: upload {} first. Nothing was pushed.", opts.destination.host, list.join(", "));
        }
    }

    // Harbor refuses pushes into projects that do not exist: create them (private).
    if !plans.is_empty() && client.is_harbor().await {
        let mut projects: Vec<String> = plans
            .iter()
            .filter_map(|p| p.target_repo.split('/').next().map(str::to_string))
            .collect();
        projects.sort();
        projects.dedup();
        let created = client
            .harbor_ensure_projects(&projects)
            .await
            .context("cannot prepare the Harbor projects")?;
        if !created.is_empty() {
            reporter.info(&format!(
                "created Harbor projects (private): {}",
                created.join(", ")
            ));
        }
    }

    // Push the blobs: HEAD, else mount from a repository that has it, else stream it.
    let total: u64 = needs
        .keys()
        .filter_map(|d| index.get(d).map(|l| l.size))
        .sum();
    let bar = reporter.bytes_bar(total, "upload");
    let results: Vec<(Digest, Result<u64, RegistryError>)> = stream::iter(needs.iter())
        .map(|(digest, repos)| {
            let client = &client;
            let on_retry = &on_retry;
            let location = index.get(digest).cloned();
            let have = known_in.get(digest).cloned();
            let bar = &bar;
            async move {
                let r = push_everywhere(
                    client, digest, repos, location, have, opts.retry, cancel, bar, on_retry,
                )
                .await;
                (digest.clone(), r)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    if cancel.is_cancelled() {
        bail!("interrupted: no tag was set for the images not yet complete; run the same command again to finish");
    }
    let mut blob_errors: HashMap<Digest, String> = HashMap::new();
    for (d, r) in results {
        match r {
            Ok(n) => summary.bytes += n,
            Err(e) => {
                blob_errors.insert(d, e.to_string());
            }
        }
    }

    // Manifests: children first, the tag last.
    let outcomes: Vec<(String, Result<(), String>)> = stream::iter(&plans)
        .map(|p| {
            let client = &client;
            let on_retry = &on_retry;
            let blob_errors = &blob_errors;
            async move {
                if let Some(e) = p.blobs.iter().find_map(|d| blob_errors.get(d)) {
                    return (p.image.reference.clone(), Err(e.clone()));
                }
                let r = push_manifests(client, p, opts.retry, cancel, on_retry)
                    .await
                    .map_err(|e| e.to_string());
                (p.image.reference.clone(), r)
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    for (reference, r) in outcomes {
        match r {
            Ok(()) => summary.succeeded += 1,
            Err(why) => {
                reporter.warn(&format!("{reference}: {why}"));
                summary.failed.push((reference, why));
            }
        }
    }
    summary.succeeded += done_plans.len();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Verifies the bundle before anything touches the target.
pub fn verify_bundle(
    bundle: &Bundle,
    level: VerifyLevel,
    reporter: &Reporter,
) -> Result<HashMap<Digest, BlobLocation>> {
    let bar = reporter.bytes_bar(bundle.data_bytes(), "verify");
    let result = bundle.verify(level, &|n| bar.inc(n));
    bar.finish_and_clear();
    result.map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{} {} {}:\n{}",
            crate::i18n::t("bundle", "镜像包"),
            bundle.meta_path.display(),
            crate::i18n::t("failed verification", "校验失败"),
            lines.join("\n")
        )
    })
}

fn plan_image<'a>(
    bundle: &Bundle,
    image: &'a Image,
    index: &HashMap<Digest, BlobLocation>,
    dst: &Destination,
) -> Result<Plan<'a>, String> {
    let read = |digest: &Digest,
                media_type: &str|
     -> Result<(RawManifest, crate::manifest::Parsed), String> {
        let bytes = bundle
            .manifest_bytes(digest, index)
            .map_err(|e| format!("cannot read manifest {digest}: {e}"))?;
        let (raw, parsed) = RawManifest::new(bytes, Some(media_type))
            .map_err(|e| format!("manifest {digest}: {e}"))?;
        if &raw.digest != digest {
            return Err(format!(
                "manifest {digest} has digest {} in the bundle",
                raw.digest
            ));
        }
        Ok((raw, parsed))
    };
    let (top, parsed) = read(&image.digest, &image.media_type)?;
    let mut blobs: Vec<Digest> = image_blobs(&parsed).into_iter().map(|b| b.digest).collect();
    let mut manifests = Vec::new();
    for child in image.children.iter().rev() {
        let (raw, parsed) = read(&child.digest, &child.media_type)?;
        blobs.extend(image_blobs(&parsed).into_iter().map(|b| b.digest));
        manifests.push(raw);
    }
    manifests.push(top);
    blobs.sort();
    blobs.dedup();
    let (target_repo, target_tag) = dst.image_target(image);
    Ok(Plan {
        image,
        target_repo,
        target_tag,
        manifests,
        blobs,
    })
}

/// Makes one blob present in every repository that needs it; returns bytes sent.
#[allow(clippy::too_many_arguments)]
async fn push_everywhere(
    client: &Client,
    digest: &Digest,
    repos: &BTreeSet<String>,
    location: Option<BlobLocation>,
    mut have: Option<String>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    bar: &ProgressBar,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Result<u64, RegistryError> {
    let mut sent = 0;
    let mut counted = false;
    for repo in repos {
        if have.as_deref() == Some(repo.as_str()) {
            continue;
        }
        if retry(policy, cancel, on_retry, || {
            client.blob_exists(repo, digest)
        })
        .await?
        .is_some()
        {
            have.get_or_insert_with(|| repo.clone());
            continue;
        }
        if let Some(from) = &have {
            if let UploadStart::Mounted = retry(policy, cancel, on_retry, || {
                client.start_upload(repo, digest, Some(from))
            })
            .await?
            {
                continue;
            }
        }
        let Some(loc) = &location else {
            return Err(RegistryError::Protocol {
                what: format!("blob {digest}"),
                detail: "neither in the bundle nor in the target".into(),
            });
        };
        let body = file_body(loc.clone(), bar.clone());
        retry(policy, cancel, on_retry, || {
            client.push_blob(repo, digest, loc.size, &body)
        })
        .await?;
        sent += loc.size;
        counted = true;
        have = Some(repo.clone());
    }
    if !counted {
        if let Some(loc) = &location {
            bar.inc(loc.size);
        }
    }
    Ok(sent)
}

/// A body source that streams a byte range of a blob out of its tar data file.
fn file_body(
    loc: BlobLocation,
    bar: ProgressBar,
) -> impl Fn(u64, u64) -> std::io::Result<reqwest::Body> + Send + Sync {
    move |offset, len| {
        let loc = loc.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        // Reading (and for .tar.zst, decompressing) happens on a blocking thread;
        // the channel bounds what is in memory to a few chunks.
        tokio::task::spawn_blocking(move || {
            let send = || -> std::io::Result<()> {
                let mut reader = loc.open_at(offset)?.take(len);
                loop {
                    let mut buf = vec![0u8; 256 * 1024];
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf.into())).is_err() {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = send() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let bar = bar.clone();
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).inspect(move |c| {
            if let Ok(c) = c {
                bar.inc(c.len() as u64);
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }
}

async fn push_manifests(
    client: &Arc<Client>,
    p: &Plan<'_>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Result<(), RegistryError> {
    let (top, children) = p
        .manifests
        .split_last()
        .ok_or_else(|| RegistryError::Protocol {
            what: p.image.reference.clone(),
            detail: "no manifest".into(),
        })?;
    for m in children {
        let d = m.digest.to_string();
        retry(policy, cancel, on_retry, || {
            client.put_manifest(&p.target_repo, &d, &m.media_type, &m.bytes)
        })
        .await?;
    }
    let reference = p
        .target_tag
        .clone()
        .unwrap_or_else(|| top.digest.to_string());
    retry(policy, cancel, on_retry, || {
        client.put_manifest(&p.target_repo, &reference, &top.media_type, &top.bytes)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_with_and_without_namespace() {
        let d = Destination::parse("127.0.0.1:5000/mirror/team").unwrap();
        assert_eq!(d.host, "127.0.0.1:5000");
        assert_eq!(d.repository("app/web"), "mirror/team/app/web");
        let d = Destination::parse("registry.local").unwrap();
        assert_eq!(d.repository("app/web"), "app/web");
        assert_eq!(
            Destination::parse("https://r.example.com/ns/")
                .unwrap()
                .plain_http,
            Some(false)
        );
        assert!(Destination::parse("").is_err());
        assert!(Destination::parse("noport/ns").is_err());
        assert!(Destination::parse("host:5000/UPPER").is_err());
    }
}
