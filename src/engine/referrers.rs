//! Signatures, attestations and SBOMs travel with their images (`--with-referrers`):
//! for every manifest saved, the artifacts that refer to it, found through the OCI
//! referrers API where the registry has it and through the tag fallbacks otherwise
//! (cosign's `sha256-<hex>.sig`, `.att`, `.sbom`, and the OCI fallback tag
//! `sha256-<hex>`). Artifacts of artifacts too, each once.

use super::platform::PlatformFilter;
use super::registries::Registries;
use super::report::Reporter;
use super::resolve::{resolve, ResolvedImage};
use super::retry::RetryPolicy;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::ImageSource;
use std::collections::{HashMap, HashSet, VecDeque};
use tokio_util::sync::CancellationToken;

/// The repository of a rename target `repo/path:tag` or `repo/path@sha256:...`.
fn repository_of(rename: &str) -> &str {
    crate::reference::split_short(rename).0
}

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
    let retrying = Retrying::for_reporter(policy, cancel, reporter);
    // (where the subject is, its digest, the repository it goes to when renamed):
    // a renamed image's signatures go where the image goes, which is where cosign
    // looks for them; an image listed under two names gets them under both.
    let mut seen: HashSet<(Digest, Option<String>)> = HashSet::new();
    let mut queue: VecDeque<(Reference, Digest, Option<String>)> = VecDeque::new();
    for img in images {
        let renamed_repo = img.rename.as_deref().map(|r| repository_of(r).to_string());
        for m in img.manifests() {
            if seen.insert((m.digest.clone(), renamed_repo.clone())) {
                queue.push_back((
                    img.reference.clone(),
                    m.digest.clone(),
                    renamed_repo.clone(),
                ));
            }
        }
    }
    let mut tags: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut found = Vec::new();
    let none = PlatformFilter::default();
    while let Some((at, subject, renamed_repo)) = queue.pop_front() {
        if cancel.is_cancelled() {
            break;
        }
        let Ok(client) = registries.client(&at.registry) else {
            continue;
        };
        let source = RegistryEndpoint::new(client, retrying.clone());
        let repo = &at.repository;
        let mut candidates: Vec<Reference> = Vec::new();
        if let Ok(list) = source.referrers(repo, &subject).await {
            candidates.extend(list.into_iter().map(|d| Reference {
                tag: None,
                digest: Some(d),
                ..at.clone()
            }));
        }
        let key = (at.registry.clone(), repo.clone());
        if !tags.contains_key(&key) {
            let list = source.list_tags(repo).await.unwrap_or_default();
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
            match resolve(&source, &r, &input, &none).await {
                Ok(mut img) => {
                    let rename = renamed_repo.as_ref().map(|repo| match &r.tag {
                        Some(tag) => format!("{repo}:{tag}"),
                        None => format!("{repo}@{}", img.top.digest),
                    });
                    let new = !seen.contains(&(img.top.digest.clone(), renamed_repo.clone()))
                        || r.tag.is_some()
                            && !found
                                .iter()
                                .any(|f: &ResolvedImage| f.reference == r && f.rename == rename);
                    if !new {
                        continue;
                    }
                    img.subject = Some(subject.clone());
                    img.rename = rename;
                    for m in img.manifests() {
                        if seen.insert((m.digest.clone(), renamed_repo.clone())) {
                            queue.push_back((r.clone(), m.digest.clone(), renamed_repo.clone()));
                        }
                    }
                    found.push(img);
                }
                Err(e) => reporter.warn(&format!("{input}: {e}")),
            }
        }
    }
    if !found.is_empty() {
        let n = found.len();
        let referrers = crate::i18n::plural(n as u64, "referrer", "referrers");
        reporter.info(&crate::tr!(
            "{referrers} (signatures, attestations, SBOMs...) found",
            "找到 {n} 个引用者 (签名、证明、SBOM 等)"
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn rename_repository_drops_tag_and_digest() {
        assert_eq!(super::repository_of("signed/app:9"), "signed/app");
        assert_eq!(super::repository_of("app"), "app");
        let d = format!("signed/app@sha256:{}", "a".repeat(64));
        assert_eq!(super::repository_of(&d), "signed/app");
    }
}
