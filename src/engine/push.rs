//! Pushing images into a registry: the destination half of the engine, shared by
//! `upload` (blobs streamed out of a bundle) and `sync` (blobs streamed from another
//! registry). Images whose tag already has the digest are skipped; blobs the target
//! has are skipped (HEAD) or cross-mounted; manifests go children first, tags last,
//! as the exact bytes given.

use super::report::Reporter;
use super::retry::{retry, unreachable, RetryPolicy};
use crate::bundle::reader::BlobLocation;
use crate::digest::Digest;
use crate::manifest::RawManifest;
use crate::registry::{Client, RegistryError, UploadStart};
use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One image to push, with everything it needs.
#[derive(Clone, Debug)]
pub struct PushImage {
    /// The reference to name in reports.
    pub label: String,
    /// The top manifest's digest (what the tag must point at).
    pub digest: Digest,
    pub target_repo: String,
    /// The tag to set; none for an image addressed by digest only.
    pub target_tag: Option<String>,
    /// Child manifests deepest first, then the top manifest.
    pub manifests: Vec<RawManifest>,
    /// Configs and layers of the image and its children.
    pub blobs: Vec<Digest>,
    /// A signature, attestation or other referrer: pushed after the images.
    pub referrer: bool,
}

/// Where the bytes of a blob come from.
#[derive(Clone)]
pub enum BlobSource {
    /// An entry of a bundle's data file.
    Bundle(BlobLocation),
    /// A repository of another registry (direct sync).
    Registry {
        client: Arc<Client>,
        repo: String,
        size: u64,
    },
    /// Left to a base bundle: it must already be in the target, in one of the
    /// repositories that need it or in `hint_repo`.
    Base { bundle: String, hint_repo: String },
}

impl BlobSource {
    fn size(&self) -> u64 {
        match self {
            BlobSource::Bundle(l) => l.size,
            BlobSource::Registry { size, .. } => *size,
            BlobSource::Base { .. } => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct PushOptions {
    pub jobs: usize,
    pub retry: RetryPolicy,
}

#[derive(Debug, Default)]
pub struct PushOutcome {
    pub succeeded: usize,
    /// Images whose tag already had the digest.
    pub unchanged: usize,
    pub failed: Vec<(String, String)>,
    pub bytes: u64,
}

/// Pushes the images, then their referrers (signatures after their subjects); the
/// outcome's succeeded/unchanged numbers count only the images.
pub async fn push_in_order(
    client: &Arc<Client>,
    images: Vec<PushImage>,
    sources: &HashMap<Digest, BlobSource>,
    opts: &PushOptions,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<PushOutcome> {
    // A target that cannot be reached fails the run once, instead of every image
    // and every blob retrying on its own.
    let on_retry = |e: &RegistryError, d: Duration| reporter.retrying(e, d);
    if !images.is_empty() {
        if let Some(e) = unreachable(client, opts.retry, cancel, &on_retry).await {
            return Err(e.into());
        }
    }
    let (referrers, images): (Vec<_>, Vec<_>) = images.into_iter().partition(|p| p.referrer);
    let mut outcome = push(client, images, sources, opts, reporter, cancel).await?;
    if !referrers.is_empty() {
        let r = push(client, referrers, sources, opts, reporter, cancel).await?;
        outcome.failed.extend(r.failed);
        outcome.bytes += r.bytes;
    }
    Ok(outcome)
}

async fn push(
    client: &Arc<Client>,
    images: Vec<PushImage>,
    sources: &HashMap<Digest, BlobSource>,
    opts: &PushOptions,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<PushOutcome> {
    let on_retry = |e: &RegistryError, d: Duration| reporter.retrying(e, d);
    let on_retry = &on_retry;
    let jobs = opts.jobs.max(1);
    let mut outcome = PushOutcome::default();
    let images = without_tag_conflicts(images, &mut outcome, reporter);
    if images.is_empty() {
        return Ok(outcome);
    }

    // Images whose tag already points at the same digest are done.
    let present: Vec<Result<bool, RegistryError>> = stream::iter(&images)
        .map(|p| async move {
            // An image addressed by digest only is there when its manifest is.
            let reference = p.target_tag.as_deref().unwrap_or(p.digest.as_str());
            match retry(opts.retry, cancel, on_retry, || {
                client.manifest_digest(&p.target_repo, reference)
            })
            .await
            {
                Ok(found) => Ok(found.as_ref() == Some(&p.digest)),
                // Unreachable now: the image fails here rather than in each blob.
                Err(e @ RegistryError::Transport { .. }) => Err(e),
                Err(_) => Ok(false),
            }
        })
        .buffered(jobs)
        .collect()
        .await;
    let mut todo = Vec::new();
    for (p, present) in images.into_iter().zip(present) {
        let present = match present {
            Ok(present) => present,
            Err(e) => {
                let why = e.to_string();
                reporter.warn(&format!("{}: {why}", p.label));
                outcome.failed.push((p.label, why));
                continue;
            }
        };
        if present {
            reporter.info(&format!(
                "{}: {} {}/{} ({})",
                p.label,
                crate::i18n::t("already at", "已存在于"),
                client.host(),
                p.target_repo,
                p.digest
            ));
            outcome.unchanged += 1;
        } else {
            todo.push(p);
        }
    }

    // Which repositories need each blob.
    let mut needs: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    for p in &todo {
        for d in &p.blobs {
            needs
                .entry(d.clone())
                .or_default()
                .insert(p.target_repo.clone());
        }
    }
    let known_in = check_bases(client, &needs, sources, opts, reporter, cancel).await?;

    // Harbor refuses pushes into projects that do not exist: create them (private).
    if !todo.is_empty() && client.is_harbor().await {
        let mut projects: Vec<String> = todo
            .iter()
            .filter_map(|p| p.target_repo.split('/').next().map(str::to_string))
            .collect();
        projects.sort();
        projects.dedup();
        let created = client
            .harbor_ensure_projects(&projects)
            .await
            .with_context(|| {
                crate::tr!("cannot prepare the Harbor projects", "无法准备 Harbor 项目")
            })?;
        if !created.is_empty() {
            reporter.info(&crate::tr!(
                "created Harbor projects (private): {}",
                "已创建 Harbor 项目 (私有): {}",
                created.join(", ")
            ));
        }
    }

    // Blobs: HEAD, else mount from a repository that has it, else stream it.
    let total: u64 = needs
        .keys()
        .filter_map(|d| sources.get(d).map(BlobSource::size))
        .sum();
    let bar = reporter.bytes_bar(total, crate::i18n::t("push", "推送"));
    // (blob, bytes sent, repositories where it failed with why)
    type Pushed = (Digest, u64, Vec<(String, String)>);
    let results: Vec<Pushed> = stream::iter(needs.iter())
        .map(|(digest, repos)| {
            let source = sources.get(digest);
            let have = known_in.get(digest).cloned();
            let bar = &bar;
            async move {
                let (sent, failed) = push_everywhere(
                    client, digest, repos, source, have, opts.retry, cancel, bar, on_retry,
                )
                .await;
                (digest.clone(), sent, failed)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    bar.finish_and_clear();
    if cancel.is_cancelled() {
        return Err(interrupted());
    }
    // Failures by (blob, repository): an image fails only for its own repository.
    let mut blob_errors: HashMap<(Digest, String), String> = HashMap::new();
    for (d, sent, failed) in results {
        outcome.bytes += sent;
        for (repo, why) in failed {
            blob_errors.insert((d.clone(), repo), why);
        }
    }

    // Manifests: children first, the tag last.
    let results: Vec<(String, Result<(), String>)> = stream::iter(&todo)
        .map(|p| {
            let blob_errors = &blob_errors;
            async move {
                if let Some(e) = p
                    .blobs
                    .iter()
                    .find_map(|d| blob_errors.get(&(d.clone(), p.target_repo.clone())))
                {
                    return (p.label.clone(), Err(e.clone()));
                }
                let r = push_manifests(client, p, opts.retry, cancel, on_retry)
                    .await
                    .map_err(|e| e.to_string());
                (p.label.clone(), r)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    if cancel.is_cancelled() {
        return Err(interrupted());
    }
    for (label, r) in results {
        match r {
            Ok(()) => outcome.succeeded += 1,
            Err(why) => {
                reporter.warn(&format!("{label}: {why}"));
                outcome.failed.push((label, why));
            }
        }
    }
    Ok(outcome)
}

/// The error of a push stopped by Ctrl-C: tags are set only for complete images.
fn interrupted() -> anyhow::Error {
    anyhow::anyhow!(crate::tr!(
        "interrupted: no tag was set for the images not yet complete; run the same command again to finish",
        "已中断: 尚未完成的镜像没有设置标签; 再次运行同一命令即可完成"
    ))
}

/// Two different images aimed at the same tag (two list lines renamed to one target,
/// or a repository rewrite that folds two paths into one) would overwrite each other
/// on every run: every image aimed at that tag fails, naming the others.
fn without_tag_conflicts(
    images: Vec<PushImage>,
    outcome: &mut PushOutcome,
    reporter: &Reporter,
) -> Vec<PushImage> {
    let mut by_tag: HashMap<(String, String), Vec<(&str, &Digest)>> = HashMap::new();
    for p in &images {
        if let Some(tag) = &p.target_tag {
            by_tag
                .entry((p.target_repo.clone(), tag.clone()))
                .or_default()
                .push((p.label.as_str(), &p.digest));
        }
    }
    // Every image aimed at a contested tag fails, each naming the others.
    let contested: HashMap<(String, String), Vec<(String, Digest)>> = by_tag
        .into_iter()
        .filter(|(_, claims)| claims.iter().any(|(_, d)| *d != claims[0].1))
        .map(|(key, claims)| {
            let claims = claims
                .into_iter()
                .map(|(l, d)| (l.to_string(), d.clone()))
                .collect();
            (key, claims)
        })
        .collect();
    if contested.is_empty() {
        return images;
    }
    let mut kept = Vec::new();
    for p in images {
        let key = (
            p.target_repo.clone(),
            p.target_tag.clone().unwrap_or_default(),
        );
        let Some(claims) = p.target_tag.as_ref().and(contested.get(&key)) else {
            kept.push(p);
            continue;
        };
        let mut others: Vec<&str> = claims
            .iter()
            .filter(|(_, d)| *d != p.digest)
            .map(|(l, _)| l.as_str())
            .collect();
        others.dedup();
        let (repo, tag) = key;
        let why = crate::tr!(
            "{repo}:{tag} is also the target of {}, a different image; give each its own tag",
            "{repo}:{tag} 也是 {} 的目标, 而那是另一个镜像; 请为它们各自指定标签",
            others.join(", ")
        );
        reporter.warn(&format!("{}: {why}", p.label));
        outcome.failed.push((p.label, why));
    }
    kept
}

/// Blobs left to a base bundle must already be in the target: finds a repository
/// holding each, or stops before anything is pushed and names the bases to upload
/// first.
async fn check_bases(
    client: &Arc<Client>,
    needs: &BTreeMap<Digest, BTreeSet<String>>,
    sources: &HashMap<Digest, BlobSource>,
    opts: &PushOptions,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<HashMap<Digest, String>> {
    let base_blobs: Vec<(&Digest, &BTreeSet<String>, &str, &str)> = needs
        .iter()
        .filter_map(|(d, repos)| match sources.get(d) {
            Some(BlobSource::Base { bundle, hint_repo }) => {
                Some((d, repos, bundle.as_str(), hint_repo.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut known_in = HashMap::new();
    if base_blobs.is_empty() {
        return Ok(known_in);
    }
    let n = base_blobs.len();
    let blobs = crate::i18n::plural(n as u64, "blob", "blobs");
    reporter.info(&crate::tr!(
        "checking that the target has the {blobs} the base bundles carried",
        "检查目标仓库是否已有基础包携带的 {n} 个数据块"
    ));
    let on_retry = |e: &RegistryError, d: Duration| reporter.retrying(e, d);
    let on_retry = &on_retry;
    let found: Vec<(Digest, Option<String>, &str)> = stream::iter(base_blobs)
        .map(|(d, repos, bundle, hint)| async move {
            let candidates = repos
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(hint));
            for repo in candidates {
                if let Ok(Some(_)) =
                    retry(opts.retry, cancel, on_retry, || client.blob_exists(repo, d)).await
                {
                    return (d.clone(), Some(repo.to_string()), bundle);
                }
            }
            (d.clone(), None, bundle)
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    if cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted; nothing was pushed",
            "已中断; 没有推送任何内容"
        ));
    }
    let mut missing: BTreeMap<&str, usize> = BTreeMap::new();
    for (d, repo, bundle) in found {
        match repo {
            Some(r) => {
                known_in.insert(d, r);
            }
            None => *missing.entry(bundle).or_default() += 1,
        }
    }
    if !missing.is_empty() {
        // Oldest first: the order to upload a chain of bases in.
        let mut missing: Vec<(&str, usize)> = missing.into_iter().collect();
        missing.sort_by_key(|(b, _)| crate::bundle::naming::creation_order(b));
        let list: Vec<String> = missing
            .iter()
            .map(|(b, n)| {
                let plural = if *n == 1 { "" } else { "s" };
                crate::tr!("{b} ({n} blob{plural} missing)", "{b} (缺少 {n} 个数据块)")
            })
            .collect();
        bail!(crate::tr!(
            "the target {} lacks blobs that this incremental bundle leaves to its base: upload {} first. Nothing was pushed.",
            "目标仓库 {} 缺少此增量包依赖基础包的数据块: 请先上传 {}。没有推送任何内容。",
            client.host(),
            list.join(", ")
        ));
    }
    Ok(known_in)
}

/// Makes one blob present in every repository that needs it. Returns the bytes
/// sent and the repositories where it failed, with why: one refused repository does
/// not keep the blob from the others.
#[allow(clippy::too_many_arguments)]
async fn push_everywhere(
    client: &Client,
    digest: &Digest,
    repos: &BTreeSet<String>,
    source: Option<&BlobSource>,
    mut have: Option<String>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    bar: &ProgressBar,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> (u64, Vec<(String, String)>) {
    let mut sent = 0;
    let mut failed = Vec::new();
    for repo in repos {
        if have.as_deref() == Some(repo.as_str()) {
            continue;
        }
        if cancel.is_cancelled() {
            failed.push((repo.clone(), RegistryError::Cancelled.to_string()));
            continue;
        }
        match push_one(
            client,
            digest,
            repo,
            source,
            have.as_deref(),
            policy,
            cancel,
            bar,
            on_retry,
        )
        .await
        {
            Ok(n) => {
                sent += n;
                if have.is_none() || n > 0 {
                    have = Some(repo.clone());
                }
            }
            Err(e) => failed.push((repo.clone(), e.to_string())),
        }
    }
    if sent == 0 {
        bar.inc(source.map(BlobSource::size).unwrap_or(0));
    }
    (sent, failed)
}

/// Makes one blob present in one repository: HEAD, else mount from `have`, else
/// stream it from its source. Returns the bytes sent.
#[allow(clippy::too_many_arguments)]
async fn push_one(
    client: &Client,
    digest: &Digest,
    repo: &str,
    source: Option<&BlobSource>,
    have: Option<&str>,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    bar: &ProgressBar,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Result<u64, RegistryError> {
    if retry(policy, cancel, on_retry, || {
        client.blob_exists(repo, digest)
    })
    .await?
    .is_some()
    {
        return Ok(0);
    }
    if let Some(from) = have {
        if let UploadStart::Mounted = retry(policy, cancel, on_retry, || {
            client.start_upload(repo, digest, Some(from))
        })
        .await?
        {
            return Ok(0);
        }
    }
    let (body, size): (Box<crate::registry::BodySource>, u64) = match source {
        Some(BlobSource::Bundle(loc)) => (Box::new(file_body(loc.clone(), bar.clone())), loc.size),
        Some(BlobSource::Registry {
            client: src,
            repo: src_repo,
            size,
        }) => (
            Box::new(registry_body(
                src.clone(),
                src_repo.clone(),
                digest.clone(),
                bar.clone(),
            )),
            *size,
        ),
        Some(BlobSource::Base { .. }) | None => {
            return Err(RegistryError::Protocol {
                what: crate::tr!("blob {digest}", "数据块 {digest}"),
                detail: crate::tr!(
                    "neither in the bundle nor in the target",
                    "既不在镜像包中, 也不在目标仓库中"
                ),
            });
        }
    };
    retry(policy, cancel, on_retry, || {
        client.push_blob(repo, digest, size, &*body)
    })
    .await?;
    Ok(size)
}

/// A body source that streams a byte range of a blob out of its data file.
fn file_body(
    loc: BlobLocation,
    bar: ProgressBar,
) -> impl Fn(u64, u64) -> std::io::Result<reqwest::Body> + Send + Sync {
    move |offset, len| Ok(counted_body(loc.stream(offset, len), bar.clone()))
}

/// A body source that streams a blob from another registry (Range from `offset`
/// where the source honours it), for direct sync without touching disk.
fn registry_body(
    src: Arc<Client>,
    repo: String,
    digest: Digest,
    bar: ProgressBar,
) -> impl Fn(u64, u64) -> std::io::Result<reqwest::Body> + Send + Sync {
    move |offset, len| {
        let (src, repo, digest) = (src.clone(), repo.clone(), digest.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::spawn(async move {
            let (resp, start) = match src.get_blob(&repo, &digest, offset).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut skip = offset - start;
            let mut left = len;
            let mut body = resp.bytes_stream();
            while left > 0 {
                let mut chunk = match body.next().await {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        return;
                    }
                    None => {
                        let _ = tx
                            .send(Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                crate::tr!(
                                    "source body of {digest} ended early",
                                    "{digest} 的源数据提前结束"
                                ),
                            )))
                            .await;
                        return;
                    }
                };
                if skip > 0 {
                    let n = (skip as usize).min(chunk.len());
                    let _ = chunk.split_to(n);
                    skip -= n as u64;
                }
                if chunk.len() as u64 > left {
                    chunk.truncate(left as usize);
                }
                left -= chunk.len() as u64;
                if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Ok(counted_body(rx, bar.clone()))
    }
}

fn counted_body(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    bar: ProgressBar,
) -> reqwest::Body {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).inspect(move |c| {
        if let Ok(c) = c {
            bar.inc(c.len() as u64);
        }
    });
    reqwest::Body::wrap_stream(stream)
}

async fn push_manifests(
    client: &Client,
    p: &PushImage,
    policy: RetryPolicy,
    cancel: &CancellationToken,
    on_retry: &(dyn Fn(&RegistryError, Duration) + Sync),
) -> Result<(), RegistryError> {
    let (top, children) = p
        .manifests
        .split_last()
        .ok_or_else(|| RegistryError::Protocol {
            what: p.label.clone(),
            detail: crate::tr!("no manifest", "没有清单"),
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
