//! What serve may hand out per repository, learned from the source's manifests: a
//! registry answers a blob request only for a repository whose manifests name that
//! blob, and needs the blob's size (from the descriptor) before opening it.
//!
//! Filled by walking the source once at start (tags, index children, referrers)
//! and grown by every manifest served afterwards (digest-only images that no tag
//! reaches). It only ever holds what the source's own manifests name, so a client
//! cannot grow it.

use crate::digest::Digest;
use crate::engine::report::Reporter;
use crate::manifest::{Parsed, RawManifest};
use crate::transport::{BlobRef, ImageSource, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

/// A digest a repository can serve.
#[derive(Clone, Debug)]
pub enum Member {
    Manifest,
    Blob(BlobRef),
}

pub struct Index {
    /// The repositories the source lists; `None` when it cannot list them (any
    /// repository is then asked of the source).
    repositories: Option<BTreeSet<String>>,
    repos: RwLock<HashMap<String, Repo>>,
}

#[derive(Default)]
struct Repo {
    members: HashMap<Digest, Member>,
    /// Manifests whose contents are in `members` already.
    learned: HashSet<Digest>,
}

/// How deep an index of indexes is followed.
const MAX_DEPTH: usize = 4;

impl Index {
    /// Walks every listed repository of `source`. A manifest that cannot be read
    /// (a corrupt one included) is reported and left out, not served.
    pub async fn build(source: &dyn ImageSource, reporter: &Reporter) -> Result<Index> {
        let repositories = source
            .repositories()
            .await?
            .map(|r| r.into_iter().collect::<BTreeSet<_>>());
        let index = Index {
            repositories,
            repos: RwLock::new(HashMap::new()),
        };
        for repo in index.repositories.iter().flatten() {
            let mut todo: Vec<(String, usize)> = source
                .list_tags(repo)
                .await?
                .into_iter()
                .map(|t| (t, 0))
                .collect();
            while let Some((reference, depth)) = todo.pop() {
                let (raw, parsed) = match source.get_manifest(repo, &reference).await {
                    Ok(m) => m,
                    Err(e) => {
                        reporter.warn(&crate::tr!(
                            "{repo}:{reference} is not served: {e}",
                            "{repo}:{reference} 不提供: {e}"
                        ));
                        continue;
                    }
                };
                if !index.learn(repo, &raw, &parsed) || depth >= MAX_DEPTH {
                    continue;
                }
                if let Parsed::Index { manifests } = &parsed {
                    todo.extend(manifests.iter().map(|m| (m.digest.to_string(), depth + 1)));
                }
                match source.referrers(repo, &raw.digest).await {
                    Ok(found) => todo.extend(found.into_iter().map(|m| (m.to_string(), depth + 1))),
                    Err(e) => reporter.warn(&crate::tr!(
                        "{repo}@{}: referrers not served: {e}",
                        "{repo}@{}: 不提供引用者: {e}",
                        raw.digest
                    )),
                }
            }
        }
        Ok(index)
    }

    /// Whether `repo` is one the source has.
    pub fn has_repository(&self, repo: &str) -> bool {
        self.repositories.as_ref().is_none_or(|r| r.contains(repo))
    }

    pub fn repositories(&self) -> Vec<String> {
        self.repositories.iter().flatten().cloned().collect()
    }

    /// Records a manifest served from `repo` and what it names; false when it was
    /// known already.
    pub fn learn(&self, repo: &str, raw: &RawManifest, parsed: &Parsed) -> bool {
        let Ok(mut repos) = self.repos.write() else {
            return false;
        };
        let entry = repos.entry(repo.to_string()).or_default();
        if !entry.learned.insert(raw.digest.clone()) {
            return false;
        }
        let set = &mut entry.members;
        set.insert(raw.digest.clone(), Member::Manifest);
        match parsed {
            Parsed::Image { config, layers } => {
                for d in std::iter::once(config).chain(layers.iter().filter(|l| !l.is_foreign())) {
                    set.entry(d.digest.clone()).or_insert_with(|| {
                        Member::Blob(BlobRef {
                            digest: d.digest.clone(),
                            size: d.size,
                            media_type: d.media_type.clone(),
                        })
                    });
                }
            }
            Parsed::Index { manifests } => {
                for m in manifests {
                    set.entry(m.digest.clone()).or_insert(Member::Manifest);
                }
            }
        }
        true
    }

    /// What `digest` is in `repo`, if a manifest served from there names it.
    pub fn lookup(&self, repo: &str, digest: &Digest) -> Option<Member> {
        self.repos
            .read()
            .ok()?
            .get(repo)?
            .members
            .get(digest)
            .cloned()
    }
}
