//! Tag selectors in image lists: pick tags of a repository by rule instead of by
//! hand. The grammar uses characters the distribution tag grammar
//! (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) never allows, so a selector can never be
//! read as a real tag and a plain `repository:tag` line means what it always meant:
//!
//! ```text
//! team/app:*                      every tag
//! team/app:~^v1\.2\.              tags matching a regular expression (unanchored: use ^ and $)
//! team/app:semver(>=1.2 <2)       tags that read as versions inside the range
//! team/app:semver(^1.4)|newest(3) ...only the 3 newest of them (works after any selector)
//! !team/app:~-rc                  exclusion: never these tags of team/app (also !team/app:TAG)
//! ```
//!
//! "Newest" is version order: tags that read as versions (`v1.2.3`, `1.2`,
//! `1.2.3-rc.1`) by semantic-version precedence, above all other tags, which
//! compare by their digit runs as numbers (`build-9` < `build-10`). Parsing and
//! matching only; listing tags at a source is the engine's job
//! (`engine::expand`).

use regex::Regex;
use semver::{Version, VersionReq};
use std::cmp::Ordering;

/// Which tags a selector takes.
#[derive(Clone, Debug)]
pub enum TagPattern {
    /// `*`
    All,
    /// `~REGEX`
    Regex(Regex),
    /// `semver(RANGE)`: any of the `||`-separated ranges.
    Semver(Vec<VersionReq>),
    /// One tag by name (exclusions only: `!repo:TAG`).
    Exact(String),
}

/// One selector: a repository as written in the list, which tags, and how many.
#[derive(Clone, Debug)]
pub struct TagSelector {
    /// The repository as written (`team/app`, `host:5000/team/app`).
    pub repository: String,
    pub pattern: TagPattern,
    /// `|newest(N)`: keep only the N newest of the tags the pattern takes.
    pub newest: Option<usize>,
}

/// What a list line's source text is.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// Not a selector: a reference, as before.
    Plain,
    /// A selector: these tags.
    Select(TagSelector),
    /// An exclusion (`!...`): never these tags.
    Exclude(TagSelector),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("{}", crate::tr!("{:?}: {}", "{:?}: {}", .line, .why))]
    Invalid { line: String, why: String },
}

/// A regular expression may not compile to more than this (a list line is short;
/// this keeps a pathological one from taking the memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// `|newest(N)` above this is surely a typo.
const MAX_NEWEST: usize = 100_000;
const NEWEST_PREFIX: &str = "|newest(";

/// Reads the source part of a list line (without `-> TARGET`).
pub fn parse(source: &str) -> Result<Parsed, SelectError> {
    let text = source.trim();
    let bad = |why: String| SelectError::Invalid {
        line: text.to_string(),
        why,
    };
    let (exclude, body) = match text.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text),
    };
    let Some(at) = selector_start(body) else {
        if !exclude {
            return Ok(Parsed::Plain);
        }
        // `!repo:TAG`: one tag by name.
        let (repository, tag) = split_tag(body).ok_or_else(|| {
            bad(crate::i18n::t(
                "an exclusion is !REPOSITORY:TAG or !REPOSITORY:SELECTOR",
                "排除项应为 !仓库:标签 或 !仓库:选择器",
            )
            .to_string())
        })?;
        return Ok(Parsed::Exclude(TagSelector {
            repository: repository.to_string(),
            pattern: TagPattern::Exact(tag.to_string()),
            newest: None,
        }));
    };
    let repository = &body[..at];
    if repository.is_empty() {
        return Err(bad(crate::i18n::t(
            "no repository before the selector",
            "选择器前没有仓库",
        )
        .to_string()));
    }
    let (selector, newest) = split_newest(&body[at + 1..]).map_err(bad)?;
    let pattern = if selector == "*" {
        TagPattern::All
    } else if let Some(re) = selector.strip_prefix('~') {
        if re.is_empty() {
            return Err(bad(crate::i18n::t(
                "empty regular expression",
                "正则表达式为空",
            )
            .to_string()));
        }
        let compiled = regex::RegexBuilder::new(re)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                bad(crate::tr!(
                    "invalid regular expression {re:?}: {}",
                    "无效的正则表达式 {re:?}: {}",
                    regex_problem(&e)
                ))
            })?;
        TagPattern::Regex(compiled)
    } else if let Some(range) = selector
        .strip_prefix("semver(")
        .and_then(|r| r.strip_suffix(')'))
    {
        TagPattern::Semver(parse_range(range).map_err(bad)?)
    } else {
        return Err(bad(crate::tr!(
            "unknown selector {selector:?} (use *, ~REGEX or semver(RANGE), then optionally |newest(N))",
            "未知的选择器 {selector:?} (可用 *、~正则 或 semver(范围), 其后可加 |newest(N))"
        )));
    };
    let selector = TagSelector {
        repository: repository.to_string(),
        pattern,
        newest,
    };
    Ok(if exclude {
        Parsed::Exclude(selector)
    } else {
        Parsed::Select(selector)
    })
}

/// Where the selector begins: the `:` before `*`, `~` or `semver(`. None of these
/// can be part of a host, a port or a repository path, so the first one found is it.
fn selector_start(body: &str) -> Option<usize> {
    body.match_indices(':').map(|(i, _)| i).find(|&i| {
        let rest = &body[i + 1..];
        rest.starts_with('*') || rest.starts_with('~') || rest.starts_with("semver(")
    })
}

/// `repo:tag` → (repo, tag), the tag after the last `:` of the last path component.
fn split_tag(body: &str) -> Option<(&str, &str)> {
    let last_slash = body.rfind('/').map(|i| i + 1).unwrap_or(0);
    let colon = body[last_slash..].rfind(':')? + last_slash;
    let (repo, tag) = (&body[..colon], &body[colon + 1..]);
    (!repo.is_empty() && is_tag(tag)).then_some((repo, tag))
}

/// The distribution spec's tag grammar.
pub fn is_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Splits a trailing `|newest(N)` off a selector.
fn split_newest(selector: &str) -> Result<(&str, Option<usize>), String> {
    let Some(at) = selector.rfind(NEWEST_PREFIX) else {
        return Ok((selector, None));
    };
    let Some(n) = selector[at + NEWEST_PREFIX.len()..].strip_suffix(')') else {
        // `|newest(` inside a regular expression, not at its end: part of it.
        return Ok((selector, None));
    };
    match n.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_NEWEST).contains(&n) => Ok((&selector[..at], Some(n))),
        _ => Err(crate::tr!(
            "|newest(N) needs a whole number from 1 to {MAX_NEWEST}, not {n:?}",
            "|newest(N) 需要 1 到 {MAX_NEWEST} 之间的整数, 而不是 {n:?}"
        )),
    }
}

/// `>=1.2 <2`, `>=1.2, <2`, `^1.4`, `1.x || >=3`: comparators separated by spaces or
/// commas (an operator may stand apart from its version), alternatives by `||`.
fn parse_range(text: &str) -> Result<Vec<VersionReq>, String> {
    let mut out = Vec::new();
    for alternative in text.split("||") {
        let mut comparators: Vec<String> = Vec::new();
        let mut pending_op = String::new();
        for token in alternative
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
        {
            if token.chars().all(|c| "<>=~^".contains(c)) {
                pending_op.push_str(token);
                continue;
            }
            comparators.push(format!("{}{token}", std::mem::take(&mut pending_op)));
        }
        if !pending_op.is_empty() || comparators.is_empty() {
            return Err(crate::tr!(
                "invalid version range {text:?}",
                "无效的版本范围 {text:?}"
            ));
        }
        let req = VersionReq::parse(&comparators.join(", ")).map_err(|e| {
            crate::tr!(
                "invalid version range {text:?}: {e}",
                "无效的版本范围 {text:?}: {e}"
            )
        })?;
        out.push(req);
    }
    Ok(out)
}

/// What is wrong with a regular expression, in a few words (the regex crate's
/// message ends with `error: WHAT` after a drawing of where).
fn regex_problem(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => {
            crate::i18n::t("too large once compiled", "编译后过大").to_string()
        }
        other => {
            let text = other.to_string();
            text.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or(text)
        }
    }
}

/// A tag read as a version: an optional `v`, one to three dot-separated numbers
/// (missing ones are 0), an optional `-pre-release`.
pub fn tag_version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (t, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full: Vec<&str> = parts;
    while full.len() < 3 {
        full.push("0");
    }
    let text = match pre {
        Some(p) => format!("{}-{p}", full.join(".")),
        None => full.join("."),
    };
    Version::parse(&text).ok()
}

impl TagPattern {
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagPattern::All => true,
            TagPattern::Regex(re) => re.is_match(tag),
            TagPattern::Semver(reqs) => {
                tag_version(tag).is_some_and(|v| reqs.iter().any(|r| r.matches(&v)))
            }
            TagPattern::Exact(t) => t == tag,
        }
    }

    /// Whether the pattern can be decided for one tag alone (no `|newest`).
    pub fn is_exact(&self) -> bool {
        matches!(self, TagPattern::Exact(_))
    }
}

impl TagSelector {
    /// The tags of `all` this selector takes, newest first.
    pub fn pick<'a>(&self, all: &'a [String]) -> Vec<&'a String> {
        let mut hits: Vec<&String> = all.iter().filter(|t| self.pattern.matches(t)).collect();
        hits.sort_by(|a, b| newest_first(a, b));
        hits.dedup();
        if let Some(n) = self.newest {
            hits.truncate(n);
        }
        hits
    }

    /// Whether one tag is taken, without the others (false for `|newest` selectors,
    /// which need the whole list: see [`TagSelector::pick`]).
    pub fn takes_alone(&self, tag: &str) -> bool {
        self.newest.is_none() && self.pattern.matches(tag)
    }
}

/// What a selector picked from a tag list once the exclusions are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Picked {
    /// Newest first.
    pub tags: Vec<String>,
    /// Tags the pattern took that an exclusion removed.
    pub excluded: Vec<String>,
}

/// Applies a selector and the exclusions of its repository to a tag list. The
/// exclusions go first, so `|newest(N)` counts only tags that stay.
pub fn pick(selector: &TagSelector, all: &[String], exclusions: &[&TagSelector]) -> Picked {
    let excluded: std::collections::HashSet<&String> =
        exclusions.iter().flat_map(|x| x.pick(all)).collect();
    let mut taken: Vec<&String> = all.iter().filter(|t| selector.pattern.matches(t)).collect();
    taken.sort_by(|a, b| newest_first(a, b));
    taken.dedup();
    let (gone, mut kept): (Vec<&String>, Vec<&String>) =
        taken.into_iter().partition(|t| excluded.contains(t));
    if let Some(n) = selector.newest {
        kept.truncate(n);
    }
    Picked {
        tags: kept.into_iter().cloned().collect(),
        excluded: gone.into_iter().cloned().collect(),
    }
}

/// Version order, newest first; ties (`v1.2` and `1.2.0`) by name.
pub fn newest_first(a: &str, b: &str) -> Ordering {
    match (tag_version(a), tag_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => natural(b, a),
    }
    .then_with(|| a.cmp(b))
}

/// Compares digit runs as numbers and the rest as text.
fn natural(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let digits = |r: &str| r.bytes().next().is_some_and(|c| c.is_ascii_digit());
                let o = match (digits(p), digits(q)) {
                    (true, true) => {
                        let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                        p.len().cmp(&q.len()).then_with(|| p.cmp(q))
                    }
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Non-empty runs of digits and of everything else.
fn runs(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digit = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digit)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn select(line: &str) -> TagSelector {
        match parse(line).unwrap() {
            Parsed::Select(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn exclude(line: &str) -> TagSelector {
        match parse(line).unwrap() {
            Parsed::Exclude(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    const ALL: &[&str] = &[
        "latest",
        "1.0.0",
        "v1.2.0",
        "1.2.1",
        "1.2.10",
        "1.2.2-rc.1",
        "1.3",
        "2.0.0",
        "build-9",
        "build-10",
        "1.2.3-rc1",
    ];

    #[test]
    fn plain_lines_stay_plain() {
        for line in [
            "nginx",
            "nginx:1.27",
            "host:5000/team/app:1.0",
            "host:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "localhost:5000/a",
        ] {
            assert!(matches!(parse(line).unwrap(), Parsed::Plain), "{line}");
        }
    }

    #[test]
    fn selectors_parse_with_their_repository() {
        let s = select("host:5000/team/app:*");
        assert_eq!(s.repository, "host:5000/team/app");
        assert!(matches!(s.pattern, TagPattern::All));
        assert_eq!(s.newest, None);
        let s = select(r"team/app:~^v1\.2\.|newest(2)");
        assert_eq!(s.repository, "team/app");
        assert_eq!(s.newest, Some(2));
        assert!(s.pattern.matches("v1.2.7") && !s.pattern.matches("v1.20.0"));
        // A regex may hold ':' and '/' and '|' of its own.
        let s = select("app:~^(a|b):x/y$");
        assert!(s.pattern.matches("a:x/y"));
        let s = select("app:semver(>=1.2 <2)");
        assert!(s.pattern.matches("1.2.1") && s.pattern.matches("v1.3"));
        assert!(!s.pattern.matches("2.0.0") && !s.pattern.matches("latest"));
        let s = select("app:semver(>= 1.2, < 2 || ^3)|newest(1)");
        assert!(s.pattern.matches("3.1.0") && s.pattern.matches("1.5"));
        assert_eq!(s.newest, Some(1));
    }

    #[test]
    fn bad_selectors_say_why() {
        for line in [
            "app:~(",
            "app:~",
            "app:semver(>=x)",
            "app:semver(>=)",
            "app:semver()",
            "app:*|newest(0)",
            "app:*|newest(x)",
            "app:*x",
            ":*",
            "!app",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
    }

    #[test]
    fn exclusions_take_selectors_or_one_tag() {
        let x = exclude("!team/app:~-rc");
        assert_eq!(x.repository, "team/app");
        assert!(x.pattern.matches("1.2.3-rc1"));
        let x = exclude("!host:5000/team/app:1.0");
        assert_eq!(x.repository, "host:5000/team/app");
        assert!(x.pattern.matches("1.0") && !x.pattern.matches("1.0.1"));
    }

    #[test]
    fn tags_read_as_versions() {
        assert_eq!(tag_version("v1.2"), Version::parse("1.2.0").ok());
        assert_eq!(tag_version("3"), Version::parse("3.0.0").ok());
        assert_eq!(tag_version("1.2.3-rc.1"), Version::parse("1.2.3-rc.1").ok());
        for not in ["latest", "1.2.3.4", "1..2", "v", "1.2_3", "01.2"] {
            assert_eq!(tag_version(not), None, "{not}");
        }
    }

    #[test]
    fn newest_is_version_order_then_the_rest() {
        let all = tags(ALL);
        let picked: Vec<&String> = select("app:*").pick(&all);
        assert_eq!(
            picked,
            vec![
                "2.0.0",
                "1.3",
                "1.2.10",
                "1.2.3-rc1",
                "1.2.2-rc.1",
                "1.2.1",
                "v1.2.0",
                "1.0.0",
                "latest",
                "build-10",
                "build-9"
            ]
        );
        assert_eq!(
            select("app:semver(>=1.2 <2)|newest(2)").pick(&all),
            vec!["1.3", "1.2.10"]
        );
    }

    #[test]
    fn exclusions_apply_before_newest() {
        let all = tags(ALL);
        let rc = exclude("!app:~-rc");
        let p = pick(&select(r"app:~^v?1\.2\.|newest(3)"), &all, &[&rc]);
        assert_eq!(p.tags, vec!["1.2.10", "1.2.1", "v1.2.0"]);
        assert_eq!(p.excluded, vec!["1.2.3-rc1", "1.2.2-rc.1"]);
        let p = pick(&select("app:*"), &all, &[&exclude("!app:latest"), &rc]);
        assert!(!p.tags.contains(&"latest".to_string()));
        assert_eq!(p.tags.len(), ALL.len() - 3);
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(natural("build-9", "build-10"), Ordering::Less);
        assert_eq!(natural("a", "a1"), Ordering::Less);
        assert_eq!(natural("x007", "x7"), Ordering::Equal);
        assert_eq!(newest_first("x007", "x7"), Ordering::Less);
    }

    #[test]
    fn the_tag_grammar() {
        assert!(is_tag("v1.2_3-x") && is_tag("_a"));
        assert!(!is_tag("") && !is_tag(".a") && !is_tag("a*") && !is_tag(&"a".repeat(129)));
    }
}
