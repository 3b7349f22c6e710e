//! Docker-style image references: `nginx` means `docker.io/library/nginx:latest`;
//! `host:port/path/name:tag@sha256:...` is valid too.

use crate::digest::Digest;
use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
/// Where `docker login` keeps Docker Hub credentials in config.json.
pub const DOCKER_HUB_LOGIN_KEY: &str = "https://index.docker.io/v1/";

/// Whether a host (or a config.json key without its scheme) names Docker Hub.
pub fn is_docker_hub(host: &str) -> bool {
    matches!(
        host.trim_end_matches('/').trim_end_matches("/v1"),
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`, `team/sub/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error("{}", crate::i18n::t("empty image reference", "镜像引用为空"))]
    Empty,
    #[error("{}", crate::tr!("invalid image reference {:?}: {}", "无效的镜像引用 {:?}: {}", .0, .1))]
    Invalid(String, &'static str),
}

impl ReferenceError {
    /// What is wrong, without the reference: for callers that parsed a reference
    /// they built themselves and name what the user gave instead.
    pub fn reason(&self) -> String {
        match self {
            ReferenceError::Invalid(_, why) => why.to_string(),
            other => other.to_string(),
        }
    }
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let bad = |why| ReferenceError::Invalid(s.to_string(), why);
        if s.chars().any(|c| c.is_whitespace()) {
            return Err(bad(crate::i18n::t("contains white space", "含有空白字符")));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|_| {
                    bad(crate::i18n::t(
                        "the digest after @ must be sha256:<64 hex>",
                        "@ 之后的摘要必须是 sha256:<64 位十六进制>",
                    ))
                })?),
            ),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(crate::i18n::t("a tag is 1-128 characters of letters, digits, '_', '.', '-' and cannot start with '.' or '-'", "标签为 1-128 个字母、数字、'_'、'.'、'-', 且不能以 '.' 或 '-' 开头")));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if is_docker_hub(&registry) {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if !valid_host(&registry) {
            return Err(bad(crate::i18n::t(
                "invalid registry host",
                "无效的仓库主机名",
            )));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(bad(crate::i18n::t("repository path components are lowercase letters and digits separated by '.', '_', '__' or '-'", "仓库路径的各段由小写字母和数字组成, 以 '.'、'_'、'__' 或 '-' 分隔")));
        }
        if repository.len() > 255 {
            return Err(bad(crate::i18n::t(
                "repository name longer than 255 characters",
                "仓库名超过 255 个字符",
            )));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What the registry API takes after `/manifests/`: the digest when there is one
    /// (it pins the content), else the tag.
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `repository:tag` (or `repository@digest`) without the registry host.
    pub fn short(&self) -> String {
        let mut s = self.repository.clone();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

/// Splits `repository[:tag][@digest]`, a reference without its host as
/// [`Reference::short`] writes it (and as list renames are recorded), into the
/// repository and the tag.
pub fn split_short(name: &str) -> (&str, Option<&str>) {
    let without_digest = name.split('@').next().unwrap_or(name);
    let last_slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => (
            &without_digest[..last_slash + i],
            Some(&without_digest[last_slash + i + 1..]),
        ),
        None => (without_digest, None),
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.short())
    }
}

/// A repository name as the distribution spec defines it: path components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 characters. No
/// component can be `.` or `..`, and the name cannot start or end with `/`, so a
/// valid repository placed under a namespace stays under it.
pub fn valid_repository(r: &str) -> bool {
    !r.is_empty() && r.len() <= 255 && r.split('/').all(valid_path_component)
}

/// A tag as the distribution spec defines it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A registry host with an optional port (`registry.example.com:5000`, `[::1]:5000`).
pub fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => (host, Some(port)),
        _ => (h, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return false;
        }
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'[' | b']' | b':'))
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn short_names_go_to_docker_hub_library() {
        let r = p("nginx");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(p("bitnami/redis:7").repository, "bitnami/redis");
    }

    #[test]
    fn hosts_ports_nested_paths_tags_and_digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = p(&format!("127.0.0.1:5000/team/sub/app:v0.1-rc.1_x@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/sub/app");
        assert_eq!(r.tag.as_deref(), Some("v0.1-rc.1_x"));
        assert_eq!(r.digest.as_ref().map(|d| d.as_str()), Some(d));
        assert_eq!(r.api_reference(), d);
        let r = p(&format!("localhost/app@{d}"));
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag, None);
        let r = p("registry.example.com:443/a/b");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(p("index.docker.io/library/alpine:3").registry, "docker.io");
    }

    #[test]
    fn repository_and_tag_grammar() {
        for good in ["a", "app/web", "a.b/c_d/e__f/g-h/i--j", "0/1"] {
            assert!(valid_repository(good), "{good:?}");
        }
        for bad in [
            "",
            "../../escaped/pwned",
            "ns/../x",
            "./x",
            "/abs",
            "trail/",
            "a//b",
            "UPPER",
            "a___b",
            "a.-b",
            "-a",
            "a b",
            "a\u{1b}b",
            &"a".repeat(256),
        ] {
            assert!(!valid_repository(bad), "{bad:?}");
        }
        for good in ["1.0", "_x", "A-b.c_D", &"t".repeat(128)] {
            assert!(valid_tag(good), "{good:?}");
        }
        for bad in [
            "",
            "../x",
            ".x",
            "-x",
            "a/b",
            "a:b",
            "a b",
            &"t".repeat(129),
        ] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in [
            "",
            "UPPER/case",
            "app:",
            "app:-tag",
            "app@sha256:123",
            "a//b",
            "app:tag with space",
            "host:99999/app",
            "-app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
