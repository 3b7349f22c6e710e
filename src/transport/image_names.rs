//! Image names inside local files (an OCI layout's `ref.name` annotations, a
//! docker archive's `RepoTags`): how a sink writes them and how a source matches
//! a repository and tag against them.
//!
//! Names come in three shapes: a full reference (`127.0.0.1:5000/library/base:1`,
//! as `docker save` writes them), a `repository:tag` without host (ferry's
//! export), and a bare tag (`v1`, as `skopeo copy ... oci:DIR:v1` writes it).

use crate::reference::{split_short, Reference};

/// How a sink names an image it is given with `repository` and `tag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefNaming {
    /// `repository:tag`. The engine passes the repository with its registry host
    /// when the name should carry it (`127.0.0.1:5000/library/base:1`).
    RepositoryTag,
    /// The `tag` argument as it is: the sink was opened as `oci:DIR:REF` or
    /// `docker-archive:FILE:REF`, and the engine passes REF as the tag.
    Verbatim,
}

impl RefNaming {
    /// The name an image gets: see the variants.
    pub fn name(self, repository: &str, tag: &str) -> String {
        match self {
            RefNaming::RepositoryTag => format!("{repository}:{tag}"),
            RefNaming::Verbatim => tag.to_string(),
        }
    }
}

/// How well a stored name matches a lookup; lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// The same repository and tag, registry host included when the lookup gave one.
    Exact,
    /// The lookup gave no host and the name has one (or docker's `library/` form).
    Repository,
    /// The name is a bare tag, which matches any repository.
    BareTag,
}

/// A bare tag: no repository, as skopeo names layout entries.
pub fn is_bare_tag(name: &str) -> bool {
    !name.contains(['/', ':', '@'])
}

/// Whether the first path component of `repository` is a registry host.
pub fn has_host(repository: &str) -> bool {
    match repository.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

/// The repository and tag a stored name carries: `(None, tag)` for a bare tag,
/// `(Some(repository), None)` for a name by digest.
pub fn split_name(name: &str) -> (Option<&str>, Option<&str>) {
    if is_bare_tag(name) {
        return (None, Some(name));
    }
    let (repo, tag) = split_short(name);
    (Some(repo), if name.contains('@') { None } else { tag })
}

/// The repositories that stored names carry, sorted, each once: what a file
/// source (a layout, an archive) lists as its repositories.
pub fn repositories<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let repos: std::collections::BTreeSet<&str> =
        names.into_iter().filter_map(|n| split_name(n).0).collect();
    repos.into_iter().map(str::to_string).collect()
}

/// The tags under which a lookup in `repository` finds one of the stored names
/// (see [`match_name`]), sorted, each once: a file source's tag list.
pub fn tags_in<'a>(names: impl IntoIterator<Item = &'a str>, repository: &str) -> Vec<String> {
    let tags: std::collections::BTreeSet<&str> = names
        .into_iter()
        .filter_map(|n| {
            let tag = split_name(n).1?;
            match_name(n, repository, tag).map(|_| tag)
        })
        .collect();
    tags.into_iter().map(str::to_string).collect()
}

/// How `name` matches the lookup of `tag` in `repository`, if at all.
pub fn match_name(name: &str, repository: &str, tag: &str) -> Option<Match> {
    if is_bare_tag(name) {
        return (name == tag).then_some(Match::BareTag);
    }
    let (Some(stored_repo), Some(stored_tag)) = split_name(name) else {
        return None;
    };
    if stored_tag != tag {
        return None;
    }
    if stored_repo == repository {
        return Some(Match::Exact);
    }
    let (Ok(stored), Ok(wanted)) = (
        Reference::parse(name),
        Reference::parse(&format!("{repository}:{tag}")),
    ) else {
        return None;
    };
    if stored.repository != wanted.repository {
        // The path as written, without the host (`base` under `127.0.0.1:5000/base`).
        let path = if has_host(stored_repo) {
            stored_repo.split_once('/').map_or(stored_repo, |(_, p)| p)
        } else {
            stored_repo
        };
        return (!has_host(repository) && path == repository).then_some(Match::Repository);
    }
    if has_host(repository) {
        (stored.registry == wanted.registry).then_some(Match::Exact)
    } else if has_host(stored_repo) {
        Some(Match::Repository)
    } else {
        Some(Match::Exact)
    }
}

/// The best match for `repository:tag` among `candidates` (name, item): the item
/// of the best-matching names, `Ok(None)` when none matches, and `Err` with the
/// names when equally good names lead to different items.
pub fn best_match<'a, T: PartialEq + Clone>(
    candidates: impl IntoIterator<Item = (&'a str, T)>,
    repository: &str,
    tag: &str,
) -> Result<Option<T>, Vec<String>> {
    let mut best: Option<(Match, T, Vec<String>)> = None;
    for (name, item) in candidates {
        let Some(m) = match_name(name, repository, tag) else {
            continue;
        };
        match &mut best {
            Some((b, _, _)) if m > *b => {}
            Some((b, found, names)) if m == *b => {
                if *found != item {
                    names.push(name.to_string());
                }
            }
            _ => best = Some((m, item, vec![name.to_string()])),
        }
    }
    match best {
        None => Ok(None),
        Some((_, item, names)) if names.len() == 1 => Ok(Some(item)),
        Some((_, _, names)) => Err(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_short_and_bare_names_match_as_documented() {
        let full = "127.0.0.1:5000/library/base:1";
        assert_eq!(
            match_name(full, "library/base", "1"),
            Some(Match::Repository)
        );
        assert_eq!(
            match_name(full, "127.0.0.1:5000/library/base", "1"),
            Some(Match::Exact)
        );
        assert_eq!(match_name(full, "127.0.0.2:5000/library/base", "1"), None);
        assert_eq!(match_name(full, "library/base", "2"), None);
        assert_eq!(match_name(full, "other/base", "1"), None);
        assert_eq!(match_name("a/b:1", "a/b", "1"), Some(Match::Exact));
        assert_eq!(match_name("v1", "any/thing", "v1"), Some(Match::BareTag));
        assert_eq!(match_name("v1", "any/thing", "v2"), None);
        // docker's short names: busybox:latest is docker.io/library/busybox.
        assert_eq!(
            match_name("busybox:latest", "library/busybox", "latest"),
            Some(Match::Exact)
        );
        assert_eq!(
            match_name("busybox:latest", "docker.io/library/busybox", "latest"),
            Some(Match::Exact)
        );
        // A host-less path under a local registry.
        assert_eq!(
            match_name("127.0.0.1:5000/base:1", "base", "1"),
            Some(Match::Repository)
        );
        // A name by digest never matches a tag lookup.
        assert_eq!(
            match_name(
                "a/b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "a/b",
                "1"
            ),
            None
        );
    }

    #[test]
    fn best_match_prefers_exact_names_and_reports_ambiguity() {
        let c = vec![("v1", 1), ("a/b:v1", 2), ("h.io/a/b:v1", 3)];
        assert_eq!(best_match(c.clone(), "a/b", "v1"), Ok(Some(2)));
        assert_eq!(best_match(c.clone(), "h.io/a/b", "v1"), Ok(Some(3)));
        assert_eq!(best_match(c.clone(), "x/y", "v1"), Ok(Some(1)));
        assert_eq!(best_match(c, "x/y", "v2"), Ok(None));
        let two_hosts = vec![("h.io/a/b:v1", 1), ("g.io/a/b:v1", 2)];
        assert!(best_match(two_hosts, "a/b", "v1").is_err());
    }

    #[test]
    fn naming_rule() {
        assert_eq!(RefNaming::RepositoryTag.name("h:1/a/b", "1"), "h:1/a/b:1");
        assert_eq!(RefNaming::Verbatim.name("h:1/a/b", "mine"), "mine");
    }
}
