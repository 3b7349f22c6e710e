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
    pub expires: Instant,
}

/// Tokens by scope string. A token is treated as expired 30 s early so that a long
/// request does not start with a token about to lapse.
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<String, Token>,
}

impl TokenCache {
    pub fn get(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|t| t.expires > Instant::now() + Duration::from_secs(30))
            .map(|t| t.value.clone())
    }

    pub fn put(&mut self, scope: &str, value: String, lifetime: Duration) {
        self.tokens.insert(
            scope.to_string(),
            Token {
                value,
                expires: Instant::now() + lifetime,
            },
        );
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
    fn tokens_expire_early() {
        let mut cache = TokenCache::default();
        cache.put("a", "t".into(), Duration::from_secs(10));
        assert_eq!(cache.get("a"), None, "a token with 10 s left is not reused");
        cache.put("b", "t".into(), Duration::from_secs(300));
        assert_eq!(cache.get("b").as_deref(), Some("t"));
    }
}
