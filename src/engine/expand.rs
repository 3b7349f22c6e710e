//! Expanding an image list's tag selectors (see [`crate::config::select`]) into
//! plain image requests, before anything is resolved: each selected repository's
//! tags are listed once at the source, the selector and its repository's
//! exclusions applied, and the result recorded (for the meta, `--dry-run` and
//! `--json`). Plain lines pass through untouched, in their place.
//!
//! The sync daemon expands again every full round, so a tag that appears later
//! and matches is picked up; an event names one tag, which [`expand_due`] checks
//! against its selector without listing (unless `|newest(N)` needs the list).

use super::registries::Registries;
use super::report::Reporter;
use super::resolve::ImageRequest;
use super::retry::RetryPolicy;
use crate::bundle::meta::Selection;
use crate::config::rewrite::ListEntry;
use crate::config::select::{self, Parsed, TagSelector};
use crate::reference::Reference;
use crate::transport::registry::{RegistryEndpoint, Retrying};
use crate::transport::ImageSource;
use futures_util::{stream, StreamExt};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One line of an image list, classified.
#[derive(Clone, Debug)]
pub enum ListLine {
    /// A plain reference (image-transmit's lines), as before.
    Image(ImageRequest),
    /// A tag selector.
    Select(SelectLine),
    /// `!...`: tags its repository's selectors must leave out.
    Exclude(SelectLine),
    /// A selector line that cannot be used, with why.
    Invalid { line: String, why: String },
}

/// A selector or exclusion line, with the repository it lists at the source.
#[derive(Clone, Debug)]
pub struct SelectLine {
    /// The line as given.
    pub line: String,
    pub selector: TagSelector,
    /// The repository at the source, as a reference without tag (`host/team/app`).
    pub fetch: String,
    /// Its registry host and repository path (what events and exclusions compare).
    pub registry: String,
    pub repository: String,
    /// `-> TARGET` of the line: a repository (each tag keeps its name), or
    /// `repository:tag` for a `|newest(1)` selector.
    pub rename: Option<String>,
}

impl SelectLine {
    /// The request for one of its tags.
    pub fn request(&self, tag: &str) -> ImageRequest {
        ImageRequest {
            input: format!("{}:{tag}", self.selector.repository),
            fetch: format!("{}:{tag}", self.fetch),
            rename: self.rename.as_ref().map(|r| {
                if names_tag(r) {
                    r.clone()
                } else {
                    format!("{r}:{tag}")
                }
            }),
        }
    }

    fn same_repository(&self, other: &SelectLine) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

/// Whether a `-> TARGET` names a tag (or digest) in its last path component.
fn names_tag(target: &str) -> bool {
    let last = target.rsplit('/').next().unwrap_or(target);
    last.contains(':') || last.contains('@')
}

/// Classifies a list line. `at_source` points a repository at the chosen source
/// (as plain lines are); `line` is the text as given.
pub fn classify(line: &str, entry: ListEntry, at_source: &dyn Fn(&str) -> String) -> ListLine {
    let invalid = |why: String| ListLine::Invalid {
        line: line.to_string(),
        why,
    };
    // A transport (`oci:DIR[:REF]`, `docker-archive:FILE[:REF]`, `bundle:META[:REF]`,
    // `docker-daemon:REF`) names a local image, not a repository at the source
    // (`save` reads it); `docker://REF` is a registry reference like a plain line.
    match crate::transport::parse_transport(&entry.source) {
        Ok(Some(crate::transport::TransportSpec::Registry { reference })) => {
            return ListLine::Image(ImageRequest {
                fetch: at_source(&reference),
                input: entry.source,
                rename: entry.rename,
            })
        }
        Ok(Some(_)) => {
            return ListLine::Image(ImageRequest {
                fetch: entry.source.clone(),
                input: entry.source,
                rename: entry.rename,
            })
        }
        // Not a transport as written (`docker:24-dind` is the image `docker`): a
        // plain line stays a registry reference.
        Ok(None) | Err(_) => {}
    }
    let (selector, exclude) = match select::parse(&entry.source) {
        Ok(Parsed::Plain) => {
            return ListLine::Image(ImageRequest {
                fetch: at_source(&entry.source),
                input: entry.source,
                rename: entry.rename,
            })
        }
        Ok(Parsed::Select(s)) => (s, false),
        Ok(Parsed::Exclude(s)) => (s, true),
        Err(select::SelectError::Invalid { why, .. }) => return invalid(why),
    };
    let fetch = at_source(&selector.repository);
    let parsed = match Reference::parse(&format!("{fetch}:probe")) {
        Ok(r) if r.digest.is_none() => r,
        Ok(_) => {
            return invalid(
                crate::i18n::t(
                    "a selector's repository has no digest",
                    "选择器的仓库不能带摘要",
                )
                .to_string(),
            )
        }
        Err(e) => {
            return invalid(crate::tr!(
                "invalid repository {:?}: {}",
                "无效的仓库 {:?}: {}",
                selector.repository,
                e.reason()
            ))
        }
    };
    match (&entry.rename, exclude) {
        (Some(_), true) => {
            return invalid(
                crate::i18n::t(
                    "an exclusion takes no -> target",
                    "排除项不能带 -> 目标",
                )
                .to_string(),
            )
        }
        (Some(t), false) if names_tag(t) && selector.newest != Some(1) => {
            return invalid(crate::i18n::t(
                "the target of a selector is a repository (each tag keeps its name); a target tag needs |newest(1)",
                "选择器的目标应为仓库 (每个标签保留原名); 目标带标签时需要 |newest(1)",
            ).to_string())
        }
        _ => {}
    }
    let line = SelectLine {
        line: line.to_string(),
        selector,
        fetch: format!("{}/{}", parsed.registry, parsed.repository),
        registry: parsed.registry,
        repository: parsed.repository,
        rename: entry.rename,
    };
    if exclude {
        ListLine::Exclude(line)
    } else {
        ListLine::Select(line)
    }
}

/// A list's lines expanded: the requests to resolve, in line order, and what each
/// selector became.
#[derive(Clone, Debug, Default)]
pub struct Expanded {
    pub requests: Vec<ImageRequest>,
    pub selections: Vec<Selection>,
    /// Lines that could not be read, with why.
    pub invalid: Vec<(String, String)>,
    /// Selectors whose repository could not be listed, with why.
    pub failed: Vec<(String, String)>,
}

impl Expanded {
    /// Whether the list had any selector (so there is an expansion to show).
    pub fn has_selectors(&self) -> bool {
        !self.selections.is_empty()
    }
}

/// Work for an event-driven daemon round: a whole line (a plain image, or a
/// selector that needs its tag list), or one tag of a selector line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    Line(usize),
    Tag(usize, String),
}

/// Expands every line: lists each selected repository once (concurrently), applies
/// selectors and exclusions, and keeps plain lines in their place. An image asked
/// for twice (by two lines) is requested once.
pub async fn expand(
    lines: &[ListLine],
    registries: &Registries,
    policy: RetryPolicy,
    jobs: usize,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Expanded {
    let wanted: BTreeSet<(&str, &str)> = lines
        .iter()
        .filter_map(|l| match l {
            ListLine::Select(s) => Some((s.registry.as_str(), s.repository.as_str())),
            _ => None,
        })
        .collect();
    let notice: crate::transport::registry::RetryNotice = {
        let r = reporter.clone();
        Arc::new(move |e, d| r.retrying(e, d))
    };
    let listed: HashMap<(&str, &str), Result<Vec<String>, String>> = stream::iter(wanted)
        .map(|(host, repo)| {
            let notice = notice.clone();
            async move {
                let tags = match registries.client(host) {
                    Ok(client) => {
                        let endpoint = RegistryEndpoint::new(
                            client,
                            Retrying::new(policy, cancel.clone(), notice),
                        );
                        endpoint.list_tags(repo).await.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                // Only names a registry may use: nothing else becomes a request.
                let tags = tags.map(|t| t.into_iter().filter(|t| select::is_tag(t)).collect());
                ((host, repo), tags)
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let exclusions: Vec<&SelectLine> = lines
        .iter()
        .filter_map(|l| match l {
            ListLine::Exclude(x) => Some(x),
            _ => None,
        })
        .collect();
    let mut out = Expanded::default();
    let mut seen: HashSet<(String, Option<String>)> = HashSet::new();
    let mut add = |out: &mut Expanded, r: ImageRequest| {
        if seen.insert((r.fetch.clone(), r.rename.clone())) {
            out.requests.push(r);
        }
    };
    for l in lines {
        match l {
            ListLine::Image(r) => add(&mut out, r.clone()),
            ListLine::Invalid { line, why } => out.invalid.push((line.clone(), why.clone())),
            ListLine::Exclude(_) => {}
            ListLine::Select(s) => {
                let key = (s.registry.as_str(), s.repository.as_str());
                let tags = match listed.get(&key) {
                    Some(Ok(tags)) => tags,
                    Some(Err(why)) => {
                        reporter.warn(&format!("{}: {why}", s.line));
                        out.failed.push((s.line.clone(), why.clone()));
                        continue;
                    }
                    None => continue,
                };
                let mine: Vec<&TagSelector> = exclusions
                    .iter()
                    .filter(|x| x.same_repository(s))
                    .map(|x| &x.selector)
                    .collect();
                let picked = select::pick(&s.selector, tags, &mine);
                if picked.tags.is_empty() {
                    reporter.info(&crate::tr!(
                        "{}: selects none of the {} tags of {}",
                        "{}: 在 {2} 的 {1} 个标签中没有选中任何标签",
                        s.line,
                        tags.len(),
                        s.fetch
                    ));
                } else {
                    reporter.debug(&crate::tr!(
                        "{}: {}",
                        "{}: {}",
                        s.line,
                        picked.tags.join(", ")
                    ));
                }
                for t in &picked.tags {
                    add(&mut out, s.request(t));
                }
                out.selections.push(Selection {
                    selector: s.line.clone(),
                    repository: s.fetch.clone(),
                    tags: picked.tags,
                    excluded: picked.excluded,
                });
            }
        }
    }
    out
}

/// What an event-driven round works on: the lines and tags announced. A tag of
/// a selector without `|newest` is taken as it is (the daemon checked it against
/// the selector and the exclusions); a whole selector line is listed again.
pub async fn expand_due(
    lines: &[ListLine],
    due: &[Due],
    registries: &Registries,
    policy: RetryPolicy,
    jobs: usize,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Expanded {
    let mut subset: Vec<ListLine> = Vec::new();
    for d in due {
        match d {
            Due::Line(i) => subset.extend(lines.get(*i).cloned()),
            Due::Tag(i, tag) => {
                if let Some(ListLine::Select(s)) = lines.get(*i) {
                    subset.push(ListLine::Image(s.request(tag)));
                }
            }
        }
    }
    subset.extend(
        lines
            .iter()
            .filter(|l| matches!(l, ListLine::Exclude(_)))
            .cloned(),
    );
    let mut out = expand(&subset, registries, policy, jobs, reporter, cancel).await;
    // A round for one announced tag is not a fresh expansion of the selector.
    out.selections.retain(|s| !s.tags.is_empty());
    out
}

/// Which lines (and tags) a pushed `repository:tag` concerns, for the daemon.
pub fn due_for(lines: &[ListLine], repository: &str, tag: &str) -> Vec<Due> {
    let exclusions: Vec<&SelectLine> = lines
        .iter()
        .filter_map(|l| match l {
            ListLine::Exclude(x) => Some(x),
            _ => None,
        })
        .collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let ListLine::Select(s) = l else {
                return None;
            };
            if s.repository != repository
                || !select::is_tag(tag)
                || !s.selector.pattern.matches(tag)
            {
                return None;
            }
            let mine: Vec<&SelectLine> = exclusions
                .iter()
                .copied()
                .filter(|x| x.same_repository(s))
                .collect();
            // `|newest(N)` (here or in an exclusion) depends on the other tags: list.
            if s.selector.newest.is_some() || mine.iter().any(|x| x.selector.newest.is_some()) {
                return Some(Due::Line(i));
            }
            if mine.iter().any(|x| x.selector.pattern.matches(tag)) {
                return None;
            }
            Some(Due::Tag(i, tag.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rewrite::{at_source, parse_line};

    fn lines(text: &[&str], source: Option<&str>) -> Vec<ListLine> {
        text.iter()
            .map(|l| {
                let at = |s: &str| match source {
                    Some(h) => at_source(s, h).0,
                    None => s.to_string(),
                };
                classify(l, parse_line(l), &at)
            })
            .collect()
    }

    #[test]
    fn lines_are_classified_and_pointed_at_the_source() {
        let l = lines(
            &[
                "team/app:1.0",
                r"team/app:~^v1\.2/x",
                "!team/app:~-rc",
                "other.io/team/app:* -> mirror/app",
                "team/app:semver(>=1)|newest(1) -> mirror/app:stable",
                "team/app:* -> mirror/app:stable",
                "!team/app:* -> x",
                "team/App:*",
            ],
            Some("src:5000"),
        );
        assert!(matches!(&l[0], ListLine::Image(r) if r.fetch == "src:5000/team/app:1.0"));
        // The regex's '.' and '/' do not make a host of it.
        let ListLine::Select(s) = &l[1] else {
            panic!("{:?}", l[1])
        };
        assert_eq!(
            (s.fetch.as_str(), s.registry.as_str(), s.repository.as_str()),
            ("src:5000/team/app", "src:5000", "team/app")
        );
        assert!(s.selector.pattern.matches("v1.2/x"));
        assert!(matches!(&l[2], ListLine::Exclude(x) if x.repository == "team/app"));
        let ListLine::Select(s) = &l[3] else {
            panic!("{:?}", l[3])
        };
        assert_eq!(s.fetch, "src:5000/team/app");
        let r = s.request("1.5");
        assert_eq!(r.input, "other.io/team/app:1.5");
        assert_eq!(r.fetch, "src:5000/team/app:1.5");
        assert_eq!(r.rename.as_deref(), Some("mirror/app:1.5"));
        let ListLine::Select(s) = &l[4] else {
            panic!("{:?}", l[4])
        };
        assert_eq!(
            s.request("1.5").rename.as_deref(),
            Some("mirror/app:stable")
        );
        assert!(matches!(&l[5], ListLine::Invalid { .. }), "{:?}", l[5]);
        assert!(matches!(&l[6], ListLine::Invalid { .. }), "{:?}", l[6]);
        assert!(matches!(&l[7], ListLine::Invalid { .. }), "{:?}", l[7]);
    }

    #[test]
    fn events_name_the_lines_they_concern() {
        let l = lines(
            &[
                "h:5000/ev/app:1",
                r"h:5000/ev/app:~^v2\.",
                "!h:5000/ev/app:~-rc",
                "h:5000/ev/app:semver(>=2)|newest(2)",
                "h:5000/other:*",
            ],
            None,
        );
        assert_eq!(
            due_for(&l, "ev/app", "v2.1"),
            vec![Due::Tag(1, "v2.1".into()), Due::Line(3)]
        );
        // Excluded by the -rc rule (and a pre-release outside the semver range).
        assert!(due_for(&l, "ev/app", "v2.2-rc").is_empty());
        assert!(due_for(&l, "ev/app", "v3")
            .iter()
            .all(|d| *d == Due::Line(3)));
        assert!(
            due_for(&l, "ev/app", "1").is_empty(),
            "plain lines are the daemon's"
        );
        assert_eq!(due_for(&l, "other", "x"), vec![Due::Tag(4, "x".into())]);
        assert!(due_for(&l, "ev/app", "bad tag").is_empty());
    }
}
