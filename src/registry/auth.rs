//! `WWW-Authenticate` challenges and the bearer-token cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Username and password for one registry. `Debug` hides the password so it can
/// never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <hidden> }}",
            self.username
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value such as
/// `Bearer realm="https://auth/token",service="registry",scope="repository:a:pull"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let realm = params.get("realm")?.clone();
            Some(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
            })
        }
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[derive(Clone)]
pub struct Token {
    pub value: String,
    /// When to fetch a new one instead of using this: shortly before it expires.
    pub refresh_at: Instant,
}

/// A token server's `expires_in` is trusted up to a day (a larger or absurd value,
/// up to 2^64-1, means "a day").
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The distribution spec's lifetime of a token that names none.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Tokens by scope string. A token is replaced a fifth of its lifetime (at most
/// 30 s) before it expires, so that no request is sent with a token the server
/// already said it would refuse: a 3-second token is refreshed after 2.4 s, a
/// 5-minute one after 4.5 minutes.
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<String, Token>,
}

impl TokenCache {
    pub fn get(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.value.clone())
    }

    /// Stores a token requested at `requested` that lives `expires_in` seconds
    /// (the spec's 60 when the server names none).
    pub fn put(&mut self, scope: &str, value: String, requested: Instant, expires_in: Option<u64>) {
        let lifetime = expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME);
        let margin = (lifetime / 5).min(MAX_REFRESH_MARGIN);
        let refresh_at = requested
            .checked_add(lifetime.saturating_sub(margin))
            .unwrap_or(requested);
        self.tokens
            .insert(scope.to_string(), Token { value, refresh_at });
    }

    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let mut cache = TokenCache::default();
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(9))
            .unwrap_or_else(Instant::now);
        cache.put("a", "t".into(), long_ago, Some(10));
        assert_eq!(
            cache.get("a"),
            None,
            "a token with 1 s of 10 left is not reused"
        );
        cache.put("b", "t".into(), Instant::now(), Some(300));
        assert_eq!(cache.get("b").as_deref(), Some("t"));
        cache.put("c", "t".into(), Instant::now(), None);
        assert_eq!(cache.get("c").as_deref(), Some("t"), "60 s by default");
    }

    #[test]
    fn absurd_lifetimes_do_not_panic() {
        let mut cache = TokenCache::default();
        cache.put("max", "t".into(), Instant::now(), Some(u64::MAX));
        assert_eq!(cache.get("max").as_deref(), Some("t"));
        cache.put("zero", "t".into(), Instant::now(), Some(0));
        assert_eq!(cache.get("zero"), None);
    }
}
