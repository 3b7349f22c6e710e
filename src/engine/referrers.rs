//! Signatures, attestations and SBOMs travel with their images (`--with-referrers`):
//! for every manifest saved, the artifacts that refer to it, found through the OCI
//! referrers API where the registry has it and through the tag fallbacks otherwise
//! (cosign's `sha256-<hex>.sig`, `.att`, `.sbom`, and the OCI fallback tag
//! `sha256-<hex>`). Artifacts of artifacts too, each once.

use super::platform::PlatformFilter;
use super::registries::Registries;
use super::report::Reporter;
use super::resolve::{resolve, ResolvedImage};
use super::retry::{retry, RetryPolicy};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::RegistryError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The tag suffixes cosign and the OCI referrers fallback use.
const FALLBACK_SUFFIXES: [&str; 4] = ["", ".sig", ".att", ".sbom"];

/// What kind of referrer a tag names, for `ferry ls`.
pub fn kind_of_tag(tag: Option<&str>) -> &'static str {
    match tag {
        Some(t) if t.ends_with(".sig") => "signature",
        Some(t) if t.ends_with(".att") => "attestation",
        Some(t) if t.ends_with(".sbom") => "sbom",
        _ => "artifact",
    }
}

/// Finds the referrers of every manifest of `images`, recursively. A registry with
/// neither the referrers API nor fallback tags simply has none.
pub async fn discover(
    images: &[ResolvedImage],
    registries: &Registries,
    policy: RetryPolicy,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Vec<ResolvedImage> {
    let on_retry = |e: &RegistryError, d: Duration| reporter.retrying(e, d);
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut queue: VecDeque<(Reference, Digest)> = VecDeque::new();
    for img in images {
        for m in img.manifests() {
            if seen.insert(m.digest.clone()) {
                queue.push_back((img.reference.clone(), m.digest.clone()));
            }
        }
    }
    let mut tags: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut found = Vec::new();
    let none = PlatformFilter::default();
    while let Some((at, subject)) = queue.pop_front() {
        if cancel.is_cancelled() {
            break;
        }
        let Ok(client) = registries.client(&at.registry) else {
            continue;
        };
        let repo = &at.repository;
        let mut candidates: Vec<Reference> = Vec::new();
        if let Ok(Some(list)) = retry(policy, cancel, &on_retry, || {
            client.referrers(repo, &subject)
        })
        .await
        {
            candidates.extend(list.into_iter().map(|d| Reference {
                tag: None,
                digest: Some(d.digest),
                ..at.clone()
            }));
        }
        let key = (at.registry.clone(), repo.clone());
        if !tags.contains_key(&key) {
            let list = retry(policy, cancel, &on_retry, || client.tags(repo))
                .await
                .unwrap_or_default();
            tags.insert(key.clone(), list);
        }
        for suffix in FALLBACK_SUFFIXES {
            let tag = format!("sha256-{}{suffix}", subject.hex());
            if tags[&key].contains(&tag) {
                candidates.push(Reference {
                    tag: Some(tag),
                    digest: None,
                    ..at.clone()
                });
            }
        }
        for r in candidates {
            let input = format!("{r} ({} of {subject})", kind_of_tag(r.tag.as_deref()));
            match resolve(&client, &r, &input, &none, policy, cancel, &on_retry).await {
                Ok(mut img)
                    if !seen.contains(&img.top.digest)
                        || r.tag.is_some()
                            && !found.iter().any(|f: &ResolvedImage| f.reference == r) =>
                {
                    img.subject = Some(subject.clone());
                    for m in img.manifests() {
                        if seen.insert(m.digest.clone()) {
                            queue.push_back((r.clone(), m.digest.clone()));
                        }
                    }
                    found.push(img);
                }
                Ok(_) => {}
                Err(e) => reporter.warn(&format!("{input}: {e}")),
            }
        }
    }
    if !found.is_empty() {
        reporter.info(&crate::tr!(
            "{} referrers (signatures, attestations, SBOMs...) found",
            "找到 {} 个引用者 (签名、证明、SBOM 等)",
            found.len()
        ));
    }
    found
}
