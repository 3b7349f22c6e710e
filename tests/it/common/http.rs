//! Minimal blocking HTTP helper for talking to the test registries directly.
//!
//! Built on the crate's async `reqwest` (its `blocking` feature is not
//! enabled): every call builds a fresh client and a current-thread tokio
//! runtime, so it works from any test thread and never shares connection
//! pools across runtimes. Proxies from the environment are ignored: the test
//! registries only ever live on loopback.

use std::time::Duration;

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names are lower-case; a repeated header appears several times.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body as (lossy) UTF-8, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON; panics with the body on failure.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP request, fully buffered. `creds` adds basic auth. Redirects are
/// not followed (blob GETs on the test registry answer directly). Returns
/// `Err` only for transport errors (connection refused, timeout, ...).
pub fn http_request(
    method: &str,
    url: &str,
    creds: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("building tokio runtime: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            // Plain HTTP only: skip loading the system trust store, which
            // costs tens of milliseconds of CPU per client in debug builds.
            .tls_built_in_root_certs(false)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| format!("building http client: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| format!("bad method {method}: {e}"))?;
        let mut req = client.request(method, url);
        if let Some((user, password)) = creds {
            req = req.basic_auth(user, Some(password));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{url}: reading body: {e}"))?
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    })
}

/// `GET url` with a 30 s timeout; panics on transport errors.
pub fn http_get(url: &str, creds: Option<(&str, &str)>) -> HttpResponse {
    http_request("GET", url, creds, &[], None, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}
