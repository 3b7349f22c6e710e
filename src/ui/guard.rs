//! Who may use the interface: whoever has the access token printed at start (in the
//! URL's `?token=`, then in a cookie, or in an `X-Ferry-Token` header), as Jupyter
//! does. Requests that change anything must also come from the page itself: a
//! cross-site `Origin` or `Sec-Fetch-Site` is refused, so another site open in the
//! same browser cannot start jobs or edit cfg.yaml even with the cookie.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub struct Guard {
    token: String,
    /// Cookie names are per host, not per port: the port keeps two `ferry ui`
    /// on one machine apart.
    cookie: String,
}

impl Guard {
    pub fn new(token: String, port: u16) -> Guard {
        Guard {
            token,
            cookie: format!("ferry_ui_{port}"),
        }
    }

    fn matches(&self, given: &str) -> bool {
        given.as_bytes().ct_eq(self.token.as_bytes()).into()
    }
}

/// 32 random bytes from the kernel, as hex.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

fn cookie_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A request that changes state comes from this page: `Sec-Fetch-Site` (sent by
/// every current browser) is same-origin or none, and `Origin`, when sent, is this
/// server's own. Clients that send neither (curl, scripts) hold the token.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match get("origin") {
        None => true,
        Some(origin) => {
            let host = get("host").unwrap_or("");
            !host.is_empty()
                && (origin == format!("http://{host}") || origin == format!("https://{host}"))
        }
    }
}

fn refused(status: StatusCode, english: &str, chinese: &str) -> Response {
    let body = format!("ferry ui: {english}\nferry ui: {chinese}\n");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The middleware in front of every route.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let from_query = query_token(req.uri().query())
        .filter(|t| guard.matches(t))
        .is_some();
    let from_header = req
        .headers()
        .get("x-ferry-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| guard.matches(t));
    let from_cookie = cookie_token(req.headers(), &guard.cookie).is_some_and(|t| guard.matches(t));
    if !(from_query || from_header || from_cookie) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "open the address that `ferry ui` printed when it started (it ends with ?token=...)",
            "请打开 `ferry ui` 启动时打印的地址 (以 ?token=... 结尾)",
        );
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && !same_origin(req.headers()) {
        return refused(
            StatusCode::FORBIDDEN,
            "refused: this request comes from another site",
            "已拒绝: 该请求来自其他站点",
        );
    }
    if *req.method() == Method::OPTIONS {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if from_query {
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            guard.cookie, guard.token
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    for (k, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // The token is in the first URL: never send it on.
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_this_origin_may_change_things() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("host", "h"), ("origin", "null")])));
    }

    #[test]
    fn tokens_come_from_the_query_or_the_cookie() {
        assert_eq!(query_token(Some("a=1&token=abc")), Some("abc"));
        assert_eq!(query_token(Some("tokens=abc")), None);
        let h = headers(&[("cookie", "x=1; ferry_ui_8080=tok; y=2")]);
        assert_eq!(cookie_token(&h, "ferry_ui_8080"), Some("tok"));
        assert_eq!(cookie_token(&h, "ferry_ui_80"), None);
        let g = Guard::new("tok".into(), 8080);
        assert!(g.matches("tok") && !g.matches("to") && !g.matches("tok2"));
        assert_eq!(new_token().unwrap().len(), 64);
    }
}
