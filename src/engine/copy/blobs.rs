//! Making every blob present in the sink: HEAD, else mount from a repository that
//! has it, else stream it from its source. Blobs left to a base bundle are only
//! looked for.

use super::meter::Metered;
use super::{CopyContext, CopyOutcome};
use crate::digest::Digest;
use crate::engine::pace::{Pace, Side};
use crate::engine::report::Plan;
use crate::transport::{BlobRef, SharedSource, TransportError};
use anyhow::{bail, Result};
use futures_util::{stream, StreamExt};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

type Needs = BTreeMap<Digest, (BlobRef, BTreeSet<String>)>;

/// Where a blob can be read, for each repository that needs it: the source of an
/// image aimed at that repository. A source that lacks the blob (or refuses it) so
/// fails only its own repository's images, while the others read it from theirs.
#[derive(Default)]
pub(super) struct Origins {
    by_repo: BTreeMap<String, (SharedSource, String)>,
}

impl Origins {
    pub(super) fn add(&mut self, target_repo: &str, source: &SharedSource, source_repo: &str) {
        self.by_repo
            .entry(target_repo.to_string())
            .or_insert_with(|| (source.clone(), source_repo.to_string()));
    }

    /// The source for `repo` (its own image's), else the first one known.
    fn for_repo(&self, repo: &str) -> Option<(&SharedSource, &str)> {
        self.by_repo
            .get(repo)
            .or_else(|| self.by_repo.values().next())
            .map(|(s, r)| (s, r.as_str()))
    }
}

/// Blobs left to a base bundle must already be in the sink: finds a repository
/// holding each, or stops before anything is copied and names the bases to upload
/// first.
pub(super) async fn check_bases(
    ctx: &CopyContext<'_>,
    needs: &Needs,
    pace: &Pace,
) -> Result<HashMap<Digest, String>> {
    let base_blobs: Vec<(&BlobRef, &BTreeSet<String>, &str, &str)> = needs
        .iter()
        .filter_map(|(d, (blob, repos))| {
            ctx.bases
                .get(d)
                .map(|b| (blob, repos, b.bundle.as_str(), b.hint_repo.as_str()))
        })
        .collect();
    let mut known_in = HashMap::new();
    if base_blobs.is_empty() {
        return Ok(known_in);
    }
    let n = base_blobs.len();
    let blobs = crate::i18n::plural(n as u64, "blob", "blobs");
    ctx.reporter.info(&crate::tr!(
        "checking that the target has the {blobs} the base bundles carried",
        "检查目标仓库是否已有基础包携带的 {n} 个数据块"
    ));
    let found: Vec<(Digest, Option<String>, &str)> = stream::iter(base_blobs)
        .map(|(blob, repos, bundle, hint)| async move {
            let _go = pace.enter(0).await;
            let candidates = repos
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(hint));
            for repo in candidates {
                if let Ok(true) = pace.timed(Side::Sink, ctx.sink.has_blob(repo, blob)).await {
                    return (blob.digest.clone(), Some(repo.to_string()), bundle);
                }
            }
            (blob.digest.clone(), None, bundle)
        })
        .buffer_unordered(pace.max())
        .collect()
        .await;
    if ctx.cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted; nothing was pushed",
            "已中断; 没有推送任何内容"
        ));
    }
    let mut missing: BTreeMap<&str, usize> = BTreeMap::new();
    let mut checked: BTreeSet<&str> = BTreeSet::new();
    for (d, repo, bundle) in found {
        match repo {
            Some(r) => {
                known_in.insert(d, r);
            }
            None => *missing.entry(bundle).or_default() += 1,
        }
    }
    if !missing.is_empty() {
        for (blob, repos) in needs.values() {
            if ctx.bases.contains_key(&blob.digest) {
                checked.extend(repos.iter().map(String::as_str));
            }
        }
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
        // Where the blobs were looked for: a base uploaded under another namespace
        // (or renamed) is in the registry, but not where this upload pushes.
        let target = ctx.sink.describe();
        let mut places: Vec<String> = checked
            .iter()
            .take(4)
            .map(|r| format!("{target}/{r}"))
            .collect();
        if checked.len() > places.len() {
            let more = checked.len() - places.len();
            places.push(crate::tr!("{more} more", "另外 {more} 个"));
        }
        let places = places.join(", ");
        bail!(crate::tr!(
            "the target {target} lacks blobs that this incremental bundle leaves to its base (looked in {places}): upload {} first, to the same --dst namespace as this one. Nothing was pushed.",
            "目标仓库 {target} 缺少此增量包依赖基础包的数据块 (已在 {places} 中查找): 请先上传 {}, 且使用与本次相同的 --dst 命名空间。没有推送任何内容。",
            list.join(", ")
        ));
    }
    Ok(known_in)
}

/// Why a blob could not be made present in a repository.
#[derive(Clone, Debug)]
pub(super) struct BlobFailure {
    pub why: String,
    /// Where the blob came in the order the blobs finished: an image's first
    /// failure is the cause, later ones (a sink that gave up) its consequences.
    pub seq: usize,
    /// The source's bytes failed their digest or size check (a damaged bundle).
    pub corrupt: bool,
}

impl BlobFailure {
    fn of(e: &TransportError) -> BlobFailure {
        BlobFailure {
            why: e.to_string(),
            seq: 0,
            corrupt: e.is_corrupt(),
        }
    }
}

/// Copies every needed blob; returns the failures by (blob, repository), so an
/// image fails only for its own repository, each with its place in the order the
/// blobs finished.
pub(super) async fn copy_blobs(
    ctx: &CopyContext<'_>,
    needs: &Needs,
    origin: &HashMap<Digest, Origins>,
    known_in: &HashMap<Digest, String>,
    pace: &Arc<Pace>,
    outcome: &mut CopyOutcome,
) -> HashMap<(Digest, String), BlobFailure> {
    let total: u64 = needs
        .iter()
        .filter(|(d, _)| origin.contains_key(*d))
        .map(|(_, (b, _))| b.size)
        .sum();
    let words = ctx.sink.progress_words();
    let bar = ctx.reporter.bytes_bar(total, words.bar);
    // Largest first: the longest transfers start early instead of ending the run alone.
    let mut order: Vec<(&Digest, &(BlobRef, BTreeSet<String>))> = needs.iter().collect();
    order.sort_by(|a, b| b.1 .0.size.cmp(&a.1 .0.size).then_with(|| a.0.cmp(b.0)));
    // (blob, bytes sent, repositories where it failed with why)
    type Pushed = (Digest, u64, Vec<(String, BlobFailure)>);
    let results: Vec<Pushed> = stream::iter(order)
        .map(|(digest, (blob, repos))| {
            let origins = origin.get(digest);
            let have = known_in.get(digest).cloned();
            let bar = &bar;
            async move {
                let _go = pace.enter(blob.size).await;
                let (sent, failed) = everywhere(ctx, blob, repos, origins, have, bar, pace).await;
                if failed.is_empty() {
                    ctx.reporter.debug(&if sent > 0 {
                        let (sent, done) = (indicatif::HumanBytes(sent), words.blob_done);
                        crate::tr!(
                            "blob {digest} {done} ({sent})",
                            "数据块 {digest} {done} ({sent})"
                        )
                    } else {
                        crate::tr!(
                            "blob {digest} already at the target (or mounted)",
                            "数据块 {digest} 目标已有 (或已跨仓库挂载)"
                        )
                    });
                }
                (digest.clone(), sent, failed)
            }
        })
        // Every blob waits its turn at the pace, not in this buffer: small ones go
        // around large ones that wait for a stream slot.
        .buffer_unordered(needs.len().max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    // Results come in the order the blobs finished.
    let mut blob_errors = HashMap::new();
    for (seq, (d, sent, failed)) in results.into_iter().enumerate() {
        outcome.bytes += sent;
        for (repo, mut why) in failed {
            why.seq = seq;
            blob_errors.insert((d.clone(), repo), why);
        }
    }
    blob_errors
}

/// Makes one blob present in every repository that needs it: one repository at a
/// time until one has it (the first push streams it), then the others at once
/// (each a HEAD and a mount from it). Returns the bytes sent and the repositories
/// where it failed, with why: one refused repository does not keep the blob from
/// the others.
async fn everywhere(
    ctx: &CopyContext<'_>,
    blob: &BlobRef,
    repos: &BTreeSet<String>,
    origins: Option<&Origins>,
    mut have: Option<String>,
    bar: &ProgressBar,
    pace: &Arc<Pace>,
) -> (u64, Vec<(String, BlobFailure)>) {
    let mut sent = 0;
    let mut failed = Vec::new();
    let mut todo: Vec<&String> = repos
        .iter()
        .filter(|r| have.as_deref() != Some(r.as_str()))
        .collect();
    if ctx.cancel.is_cancelled() {
        let cancelled = BlobFailure::of(&TransportError::Cancelled);
        return (
            0,
            todo.iter()
                .map(|r| (r.to_string(), cancelled.clone()))
                .collect(),
        );
    }
    // Several repositories: which have it is asked of all at once, not one after
    // the other's push.
    let asked = todo.len() > 1;
    if asked {
        let found = futures_util::future::join_all(
            todo.iter()
                .map(|r| pace.timed(Side::Sink, ctx.sink.has_blob(r, blob))),
        )
        .await;
        let mut absent = Vec::new();
        for (repo, found) in todo.into_iter().zip(found) {
            match found {
                Ok(true) => {
                    have.get_or_insert_with(|| repo.clone());
                }
                _ => absent.push(repo),
            }
        }
        todo = absent;
    }
    // Each repository reads the blob from its own image's source.
    let source_for = |repo: &str| {
        origins
            .and_then(|o| o.for_repo(repo))
            .map(|(s, r)| (Metered::wrap(s.clone(), bar.clone(), pace.clone()), r))
    };
    let mut todo = todo.into_iter();
    while have.is_none() {
        let Some(repo) = todo.next() else { break };
        match one(ctx, blob, repo, source_for(repo), None, !asked, pace).await {
            Ok(n) => {
                sent += n;
                have = Some(repo.clone());
            }
            Err(e) => failed.push((repo.clone(), BlobFailure::of(&e))),
        }
    }
    let rest: Vec<&String> = todo.collect();
    let results = futures_util::future::join_all(rest.iter().map(|repo| {
        let source = source_for(repo);
        let have = have.as_deref();
        async move { one(ctx, blob, repo, source, have, !asked, pace).await }
    }))
    .await;
    for (repo, r) in rest.into_iter().zip(results) {
        match r {
            Ok(n) => sent += n,
            Err(e) => failed.push((repo.clone(), BlobFailure::of(&e))),
        }
    }
    if sent == 0 && origins.is_some() {
        bar.inc(blob.size);
    }
    (sent, failed)
}

/// Makes one blob present in one repository: HEAD (unless `head` is false: asked
/// already, then after a mount that did not happen), else mount from `have`, else
/// stream it from its source. Returns the bytes sent.
async fn one(
    ctx: &CopyContext<'_>,
    blob: &BlobRef,
    repo: &str,
    source: Option<(SharedSource, &str)>,
    have: Option<&str>,
    head: bool,
    pace: &Pace,
) -> Result<u64, TransportError> {
    if head
        && pace
            .timed(Side::Sink, ctx.sink.has_blob(repo, blob))
            .await?
    {
        return Ok(0);
    }
    if let Some(from) = have {
        if ctx.sink.mount_blob(repo, blob, from).await? {
            return Ok(0);
        }
        // Asked before `from` had it: a sink without mounts may keep one copy for
        // all its repositories (a bundle, a layout), which has it now.
        if !head && ctx.sink.has_blob(repo, blob).await? {
            return Ok(0);
        }
    }
    let Some((source, source_repo)) = source else {
        return Err(TransportError::NotFound {
            endpoint: ctx.sink.describe(),
            what: crate::tr!(
                "blob {} (neither in the bundle nor in the target)",
                "数据块 {} (既不在镜像包中, 也不在目标仓库中)",
                blob.digest
            ),
        });
    };
    ctx.sink.put_blob(repo, blob, source, source_repo).await
}

/// `--dry-run`: what [`copy_blobs`] would do, asking the sink only what it has.
/// Each blob counts once per repository it goes to: present there, mounted from a
/// repository that has it (or will have it), or pushed (and read from its source
/// once, for the first repository).
pub(super) async fn plan_blobs(
    ctx: &CopyContext<'_>,
    needs: &Needs,
    origin: &HashMap<Digest, Origins>,
    known_in: &HashMap<Digest, String>,
    pace: &Pace,
) -> Plan {
    let plans: Vec<Plan> = stream::iter(needs.iter())
        .map(|(digest, (blob, repos))| async move {
            let _go = pace.enter(0).await;
            let mut plan = Plan::default();
            if ctx.bases.contains_key(digest) {
                plan.from_bases.add(blob.size);
            }
            let mut have = known_in.get(digest).cloned();
            for repo in repos {
                let there = have.as_deref() == Some(repo.as_str())
                    || pace
                        .timed(Side::Sink, ctx.sink.has_blob(repo, blob))
                        .await
                        .unwrap_or(false);
                if there {
                    plan.present.add(blob.size);
                    have.get_or_insert_with(|| repo.clone());
                } else if have.is_some() {
                    plan.mount.add(blob.size);
                } else if origin.contains_key(digest) {
                    plan.fetch.add(blob.size);
                    plan.push.add(blob.size);
                    have = Some(repo.clone());
                }
            }
            plan
        })
        .buffer_unordered(pace.max())
        .collect()
        .await;
    let mut total = Plan::default();
    for p in &plans {
        total.merge(p);
    }
    total
}
