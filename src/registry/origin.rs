//! Where credentials may go. A registry's credentials (a password, or a token the
//! registry's token server issued for it) belong to one *origin*: scheme, host and
//! port, as the client was configured to reach it. They are attached only to a
//! request for that origin: not to an upload URL that a `Location` header places
//! elsewhere, not across a redirect to another origin, and never over plain HTTP
//! once the registry was reached over HTTPS.

use reqwest::Url;

/// Scheme, host and port of a URL (the port made explicit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    pub fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Whether a redirect from `from` to `to` may be followed at all: only to http or
/// https, and never from https down to plain http (an attacker on the path could
/// then read or change what follows).
pub fn redirect_allowed(from: &Url, to: &Url) -> Result<(), String> {
    if !matches!(to.scheme(), "http" | "https") {
        return Err(crate::tr!(
            "the registry redirected to an unsupported URL ({to}); refused",
            "仓库重定向到不支持的地址 ({to}); 已拒绝"
        ));
    }
    if from.scheme() == "https" && to.scheme() == "http" {
        return Err(crate::tr!(
            "the registry redirected from HTTPS to plain HTTP ({to}); refused",
            "仓库把 HTTPS 请求重定向到明文 HTTP ({to}); 已拒绝"
        ));
    }
    Ok(())
}

/// What may be sent to a bearer token realm that a registry's challenge names.
#[derive(Debug, PartialEq, Eq)]
pub enum RealmRule {
    /// The realm may receive the registry's user name and password.
    SendCredentials,
    /// The realm is asked for an anonymous token only: it is plain HTTP on another
    /// host, where the password would cross the network readable.
    Anonymous,
}

/// The token-realm rule (docker sends basic credentials to any realm; ferry is
/// stricter):
/// - a realm must be http or https, and a registry reached over HTTPS may not name
///   a plain-HTTP realm (a downgrade): refused;
/// - an HTTPS realm gets the credentials (as Docker Hub's auth.docker.io needs);
/// - a plain-HTTP realm gets them only on the registry's own host (any port);
///   elsewhere it is asked for an anonymous token.
pub fn realm_rule(registry: &Origin, realm: &Url) -> Result<RealmRule, String> {
    let Some(r) = Origin::of(realm) else {
        return Err(crate::tr!(
            "the token realm {realm} is not an http(s) URL",
            "令牌服务地址 {realm} 不是 http(s) 地址"
        ));
    };
    match r.scheme.as_str() {
        "https" => Ok(RealmRule::SendCredentials),
        "http" if registry.is_https() => Err(crate::tr!(
            "the registry is HTTPS but names a plain-HTTP token realm ({realm}); refused, credentials and tokens would travel unprotected",
            "仓库使用 HTTPS, 却指定了明文 HTTP 的令牌服务 ({realm}); 已拒绝, 否则凭据和令牌会以明文传输"
        )),
        "http" if r.host == registry.host => Ok(RealmRule::SendCredentials),
        "http" => Ok(RealmRule::Anonymous),
        _ => Err(crate::tr!(
            "the token realm {realm} is not an http(s) URL",
            "令牌服务地址 {realm} 不是 http(s) 地址"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn origin(s: &str) -> Origin {
        Origin::of(&url(s)).unwrap()
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(origin("https://h/v2/"), origin("https://H:443/x"));
        assert_ne!(origin("https://h:5000/"), origin("http://h:5000/"));
        assert_ne!(origin("http://h:5000/"), origin("http://h:5001/"));
        assert_ne!(origin("http://h/"), origin("http://g/"));
    }

    #[test]
    fn downgrading_redirects_are_refused() {
        assert!(redirect_allowed(&url("https://h:5000/a"), &url("http://h:5000/b")).is_err());
        assert!(redirect_allowed(&url("https://h/a"), &url("https://cdn/b")).is_ok());
        assert!(redirect_allowed(&url("http://h/a"), &url("https://h/b")).is_ok());
        assert!(redirect_allowed(&url("http://h/a"), &url("http://cdn/b")).is_ok());
        assert!(redirect_allowed(&url("http://h/a"), &url("file:///etc/passwd")).is_err());
    }

    #[test]
    fn realm_rule_refuses_downgrades_and_plain_http_elsewhere() {
        let https = origin("https://reg.example:5000");
        let http = origin("http://127.0.0.1:5000");
        assert!(realm_rule(&https, &url("http://reg.example/token")).is_err());
        assert_eq!(
            realm_rule(&https, &url("https://auth.example/token")),
            Ok(RealmRule::SendCredentials)
        );
        assert_eq!(
            realm_rule(&http, &url("http://127.0.0.1:5001/token")),
            Ok(RealmRule::SendCredentials)
        );
        assert_eq!(
            realm_rule(&http, &url("http://127.0.0.2:5001/token")),
            Ok(RealmRule::Anonymous)
        );
        assert_eq!(
            realm_rule(&http, &url("https://auth.example/token")),
            Ok(RealmRule::SendCredentials)
        );
        assert!(realm_rule(&http, &url("ftp://127.0.0.1/token")).is_err());
    }
}
