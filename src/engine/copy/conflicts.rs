//! Two different images aimed at the same tag (two list lines renamed to one
//! target, or a repository rewrite that folds two paths into one) would overwrite
//! each other on every run: every image aimed at that tag fails, naming the others.

use super::{CopyImage, CopyOutcome};
use crate::digest::Digest;
use crate::engine::report::Reporter;
use std::collections::HashMap;

pub(super) fn without_tag_conflicts(
    images: Vec<CopyImage>,
    outcome: &mut CopyOutcome,
    reporter: &Reporter,
) -> Vec<CopyImage> {
    let mut by_tag: HashMap<(String, String), Vec<(&str, &Digest)>> = HashMap::new();
    for p in &images {
        if let Some(tag) = &p.target_tag {
            by_tag
                .entry((p.target_repo.clone(), tag.clone()))
                .or_default()
                .push((p.label.as_str(), &p.digest));
        }
    }
    let contested: HashMap<(String, String), Vec<(String, Digest)>> = by_tag
        .into_iter()
        .filter(|(_, claims)| {
            claims
                .iter()
                .any(|(_, d)| Some(*d) != claims.first().map(|c| c.1))
        })
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
        outcome.images.push(super::record(
            &p,
            crate::engine::report::ImageState::Failed,
            Some(&why),
        ));
        outcome.failed.push((p.label, why));
    }
    kept
}
