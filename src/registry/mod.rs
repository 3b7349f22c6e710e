//! A thin client for the OCI distribution API on reqwest: manifests as raw bytes,
//! blobs streamed both ways, basic and bearer auth with per-scope tokens, and
//! cross-repository mounts. Retries are the caller's (they wrap whole operations).

pub mod auth;
pub mod error;
pub mod harbor;

use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES};
use auth::{parse_challenge, Challenge, Credentials, TokenCache};
use base64::Engine as _;
pub use error::RegistryError;
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub credentials: Option<Credentials>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// An extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Force plain HTTP (`http://` given explicitly) or HTTPS (`https://`); `None`
    /// means HTTPS except for loopback hosts, as docker does.
    pub plain_http: Option<bool>,
    pub connect_timeout: Option<Duration>,
    /// Longest silence while reading a response before the request fails.
    pub read_timeout: Option<Duration>,
}

/// Where a started blob upload stands.
pub enum UploadStart {
    /// The registry mounted the blob from another repository: nothing to send.
    Mounted,
    /// Send the bytes to this upload URL.
    Session(String),
}

/// Builds a fresh request body for a byte range of a blob, so that an upload can be
/// sent again after a 401 or a retry without holding the blob in memory.
pub type BodySource = dyn Fn(u64, u64) -> std::io::Result<reqwest::Body> + Send + Sync;

pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: TokenCache,
}

/// Whether `host` (with optional port) is a loopback address, reached over plain HTTP
/// when no scheme is given.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost"
        || h == "::1"
        || h.parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

const DEFAULT_CHUNK: u64 = 32 * 1024 * 1024;
/// The smallest chunk tried when a proxy refuses larger ones.
const MIN_CHUNK: u64 = 256 * 1024;

impl Client {
    pub fn new(host: &str, opts: &RegistryOptions) -> Result<Client, RegistryError> {
        let what = crate::tr!("registry {host}", "镜像仓库 {host}");
        let plain = opts.plain_http.unwrap_or_else(|| is_loopback(host));
        let api_host = if host == crate::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            host
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(opts.read_timeout.unwrap_or(Duration::from_secs(120)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .danger_accept_invalid_certs(opts.insecure);
        if let Some(ca) = &opts.ca_file {
            let pem = std::fs::read(ca).map_err(|e| RegistryError::Io {
                what: crate::tr!("{what}: CA file {}", "{what}: CA 文件 {}", ca.display()),
                source: e,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RegistryError::transport(
                    &crate::tr!("{what}: CA file {}", "{what}: CA 文件 {}", ca.display()),
                    e,
                )
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::transport(&what, e))?;
        Ok(Client {
            http,
            base: format!("{}://{}", if plain { "http" } else { "https" }, api_host),
            host: host.to_string(),
            credentials: opts.credentials.clone(),
            auth: Mutex::new(AuthState::default()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base, path)
    }

    /// Sends a request with the auth this scope needs, answering one 401 challenge
    /// (fetching a token, or switching to basic auth) and sending again.
    async fn send(
        &self,
        what: &str,
        scope: &str,
        build: &(dyn Fn() -> Result<RequestBuilder, RegistryError> + Sync),
    ) -> Result<Response, RegistryError> {
        let mut answered = false;
        loop {
            let mut req = build()?;
            if let Some(h) = self.auth_header(scope).await {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| RegistryError::transport(what, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(RegistryError::Denied {
                        what: what.to_string(),
                        status: 401,
                    });
                }
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or_else(|| RegistryError::Denied {
                    what: what.to_string(),
                    status: 401,
                })?;
            self.authenticate(what, scope, challenge).await?;
            answered = true;
        }
    }

    async fn auth_header(&self, scope: &str) -> Option<String> {
        let state = self.auth.lock().await;
        match &state.challenge {
            Some(Challenge::Basic) => self.credentials.as_ref().map(basic_header),
            Some(Challenge::Bearer { .. }) => {
                state.tokens.get(scope).map(|t| format!("Bearer {t}"))
            }
            None => None,
        }
    }

    async fn authenticate(
        &self,
        what: &str,
        scope: &str,
        challenge: Challenge,
    ) -> Result<(), RegistryError> {
        let mut state = self.auth.lock().await;
        state.challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(RegistryError::Auth {
                        what: what.into(),
                        detail: crate::tr!(
                            "the registry asks for a user name and password and none is configured",
                            "该仓库要求用户名和密码, 但没有配置"
                        ),
                    });
                }
                Ok(())
            }
            Challenge::Bearer { realm, service } => {
                state.tokens.forget(scope);
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = &service {
                    query.push(("service", s));
                }
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    query.push(("scope", s));
                }
                let mut req = self.http.get(&realm).query(&query);
                if let Some(c) = &self.credentials {
                    req = req.header(AUTHORIZATION, basic_header(c));
                }
                let token_what =
                    crate::tr!("{what}: token from {realm}", "{what}: 从 {realm} 获取令牌");
                let resp = req
                    .send()
                    .await
                    .map_err(|e| RegistryError::transport(&token_what, e))?;
                if !resp.status().is_success() {
                    return Err(RegistryError::Auth {
                        what: what.into(),
                        detail: crate::tr!(
                            "token server answered HTTP {}",
                            "令牌服务返回 HTTP {}",
                            resp.status().as_u16()
                        ),
                    });
                }
                let body = read_limited(resp, 1024 * 1024, &token_what).await?;
                #[derive(serde::Deserialize)]
                struct TokenResponse {
                    token: Option<String>,
                    access_token: Option<String>,
                    expires_in: Option<u64>,
                }
                let t: TokenResponse =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::Auth {
                        what: what.into(),
                        detail: crate::tr!(
                            "token server sent malformed JSON: {e}",
                            "令牌服务返回的 JSON 格式错误: {e}"
                        ),
                    })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| RegistryError::Auth {
                        what: what.into(),
                        detail: crate::tr!("token server sent no token", "令牌服务没有返回令牌"),
                    })?;
                state.tokens.put(
                    scope,
                    token,
                    Duration::from_secs(t.expires_in.unwrap_or(60).max(60)),
                );
                Ok(())
            }
        }
    }

    /// Fetches a manifest by tag or digest as the exact bytes served. Checks the bytes
    /// against the requested digest and against the registry's `Docker-Content-Digest`.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed), RegistryError> {
        let what = self.manifest_what(repo, reference);
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let resp = self
            .send(&what, &pull_scope(repo), &|| {
                Ok(self.http.get(&url).header(ACCEPT, ACCEPT_MANIFESTS))
            })
            .await?;
        let resp = check(resp, &what).await?;
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let served_digest = header_str(resp.headers(), "docker-content-digest");
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        let (raw, parsed) = RawManifest::new(bytes, content_type.as_deref()).map_err(|e| {
            RegistryError::Manifest {
                what: what.clone(),
                source: e,
            }
        })?;
        if let Ok(expected) = reference.parse::<Digest>() {
            if expected != raw.digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected,
                    actual: raw.digest,
                });
            }
        }
        if let Some(served) = served_digest.and_then(|d| d.parse::<Digest>().ok()) {
            if served != raw.digest {
                return Err(RegistryError::DigestMismatch {
                    what: crate::tr!(
                        "{what} (Docker-Content-Digest header)",
                        "{what} (Docker-Content-Digest 响应头)"
                    ),
                    expected: served,
                    actual: raw.digest,
                });
            }
        }
        Ok((raw, parsed))
    }

    /// Starts streaming a blob from `offset`. Returns the response and the offset
    /// it really starts at (0 when the registry ignored the Range request).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Response, u64), RegistryError> {
        let what = crate::tr!(
            "blob {digest} in {}/{repo}",
            "{}/{repo} 中的数据块 {digest}",
            self.host
        );
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let resp = self
            .send(&what, &pull_scope(repo), &|| {
                let r = self.http.get(&url);
                Ok(if offset > 0 {
                    r.header(RANGE, format!("bytes={offset}-"))
                } else {
                    r
                })
            })
            .await?;
        let resp = check(resp, &what).await?;
        let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
            offset
        } else {
            0
        };
        Ok((resp, start))
    }

    /// The size of a blob when the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let what = crate::tr!(
            "blob {digest} in {}/{repo}",
            "{}/{repo} 中的数据块 {digest}",
            self.host
        );
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let resp = self
            .send(&what, &pull_scope(repo), &|| Ok(self.http.head(&url)))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, &what).await?;
        Ok(Some(
            header_str(resp.headers(), CONTENT_LENGTH.as_str())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// Whether the repository has a manifest (by digest or tag), and its digest.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let what = self.manifest_what(repo, reference);
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let resp = self
            .send(&what, &pull_scope(repo), &|| {
                Ok(self.http.head(&url).header(ACCEPT, ACCEPT_MANIFESTS))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, &what).await?;
        Ok(header_str(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok()))
    }

    /// Starts an upload, asking the registry to mount the blob from `mount_from`
    /// when given (the token scope then covers pulling from that repository too).
    pub async fn start_upload(
        &self,
        repo: &str,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<UploadStart, RegistryError> {
        let what = crate::tr!(
            "upload of {digest} to {}/{repo}",
            "上传 {digest} 到 {}/{repo}",
            self.host
        );
        let (url, scope) = match mount_from {
            Some(from) => (
                self.url(&format!("{repo}/blobs/uploads/?mount={digest}&from={from}")),
                format!("{} repository:{from}:pull", push_scope(repo)),
            ),
            None => (
                self.url(&format!("{repo}/blobs/uploads/")),
                push_scope(repo),
            ),
        };
        let resp = self
            .send(&what, &scope, &|| {
                Ok(self.http.post(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let resp = check(resp, &what).await?;
        if resp.status() == StatusCode::CREATED && mount_from.is_some() {
            return Ok(UploadStart::Mounted);
        }
        let location = header_str(resp.headers(), LOCATION.as_str()).ok_or_else(|| {
            RegistryError::Protocol {
                what: what.clone(),
                detail: crate::tr!(
                    "upload started without a Location header",
                    "上传已开始, 但响应没有 Location 头"
                ),
            }
        })?;
        Ok(UploadStart::Session(self.absolute(&location)))
    }

    /// Pushes a blob the target lacks: one monolithic PUT, or chunked PATCHes when
    /// the registry refuses a body that large.
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: &BodySource,
    ) -> Result<(), RegistryError> {
        let what = crate::tr!(
            "upload of {digest} to {}/{repo}",
            "上传 {digest} 到 {}/{repo}",
            self.host
        );
        let UploadStart::Session(location) = self.start_upload(repo, digest, None).await? else {
            return Ok(());
        };
        let url = with_digest(&location, digest);
        let resp = self
            .send(&what, &push_scope(repo), &|| {
                let b = body(0, size).map_err(|e| RegistryError::Io {
                    what: what.clone(),
                    source: e,
                })?;
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(b))
            })
            .await?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            413 | 416 => self.push_blob_chunked(repo, digest, size, body).await,
            _ => check(resp, &what).await.map(|_| ()),
        }
    }

    async fn push_blob_chunked(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: &BodySource,
    ) -> Result<(), RegistryError> {
        let what = crate::tr!(
            "chunked upload of {digest} to {}/{repo}",
            "分块上传 {digest} 到 {}/{repo}",
            self.host
        );
        let UploadStart::Session(mut location) = self.start_upload(repo, digest, None).await?
        else {
            return Ok(());
        };
        let mut offset = 0;
        let mut chunk = DEFAULT_CHUNK;
        while offset < size {
            let len = chunk.min(size - offset);
            let url = location.clone();
            let resp = self
                .send(&what, &push_scope(repo), &|| {
                    let b = body(offset, len).map_err(|e| RegistryError::Io {
                        what: what.clone(),
                        source: e,
                    })?;
                    Ok(self
                        .http
                        .patch(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, len)
                        .header("content-range", format!("{}-{}", offset, offset + len - 1))
                        .body(b))
                })
                .await?;
            // A proxy's body limit (nginx's client_max_body_size is 1 MiB by
            // default) refuses the chunk before the registry sees it: smaller chunks.
            if resp.status().as_u16() == 413 && chunk > MIN_CHUNK {
                chunk = (len / 4).max(MIN_CHUNK);
                continue;
            }
            let resp = check(resp, &what).await?;
            if let Some(l) = header_str(resp.headers(), LOCATION.as_str()) {
                location = self.absolute(&l);
            }
            offset += len;
        }
        let url = with_digest(&location, digest);
        let resp = self
            .send(&what, &push_scope(repo), &|| {
                Ok(self.http.put(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        check(resp, &what).await.map(|_| ())
    }

    /// Pushes manifest bytes unchanged under a tag or digest, and checks that the
    /// registry computed the same digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let what = self.manifest_what(repo, reference);
        let url = self.url(&format!("{repo}/manifests/{reference}"));
        let resp = self
            .send(&what, &push_scope(repo), &|| {
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec()))
            })
            .await?;
        let resp = check(resp, &what).await?;
        let expected = Digest::of(bytes);
        if let Some(served) = header_str(resp.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok())
        {
            if served != expected {
                return Err(RegistryError::DigestMismatch {
                    what: crate::tr!(
                        "{what}: the registry stored it under another digest",
                        "{what}: 仓库以另一个摘要保存了它"
                    ),
                    expected,
                    actual: served,
                });
            }
        }
        Ok(())
    }

    /// The referrers of a manifest from the OCI referrers API, or `None` where the
    /// registry does not have that API.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<crate::manifest::Descriptor>>, RegistryError> {
        let what = crate::tr!(
            "referrers of {digest} in {}/{repo}",
            "{}/{repo} 中 {digest} 的引用者",
            self.host
        );
        let url = self.url(&format!("{repo}/referrers/{digest}"));
        let resp = self
            .send(&what, &pull_scope(repo), &|| {
                Ok(self
                    .http
                    .get(&url)
                    .header(ACCEPT, crate::manifest::OCI_INDEX))
            })
            .await?;
        if matches!(resp.status().as_u16(), 404 | 405 | 400) {
            return Ok(None);
        }
        let resp = check(resp, &what).await?;
        let body = read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        match RawManifest::new(body, Some(crate::manifest::OCI_INDEX)) {
            Ok((_, Parsed::Index { manifests })) => Ok(Some(manifests)),
            _ => Ok(None),
        }
    }

    /// All tags of a repository, following `Link: <...>; rel="next"` pages.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let what = crate::tr!("tags of {}/{repo}", "{}/{repo} 的标签", self.host);
        let mut path = format!("{repo}/tags/list?n=1000");
        let mut tags = Vec::new();
        for _ in 0..10_000 {
            let url = self.url(&path);
            let resp = self
                .send(&what, &pull_scope(repo), &|| Ok(self.http.get(&url)))
                .await?;
            let resp = check(resp, &what).await?;
            let next = header_str(resp.headers(), "link").and_then(|l| {
                l.split(';').next().map(|u| {
                    u.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
            });
            let body = read_limited(resp, 16 * 1024 * 1024, &what).await?;
            #[derive(serde::Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: TagList =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                    what: what.clone(),
                    detail: crate::tr!("malformed tag list: {e}", "标签列表格式错误: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next.and_then(|n| n.strip_prefix("/v2/").map(str::to_string)) {
                Some(p) => path = p,
                None => break,
            }
        }
        Ok(tags)
    }

    /// Checks that the registry answers and accepts the credentials (`GET /v2/`).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let what = crate::tr!("registry {}", "镜像仓库 {}", self.host);
        let url = format!("{}/v2/", self.base);
        let resp = self.send(&what, "", &|| Ok(self.http.get(&url))).await?;
        check(resp, &what).await.map(|_| ())
    }

    /// Generic request for callers that need an endpoint this client does not wrap.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        scope: &str,
    ) -> Result<Response, RegistryError> {
        let what = format!("{method} {}/v2/{path}", self.host);
        let url = self.url(path);
        let resp = self
            .send(&what, scope, &|| {
                Ok(self.http.request(method.clone(), &url))
            })
            .await?;
        check(resp, &what).await
    }

    /// "manifest host/repo:tag", or "host/repo@sha256:..." for a digest.
    fn manifest_what(&self, repo: &str, reference: &str) -> String {
        let sep = if reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        crate::tr!(
            "manifest {}/{repo}{sep}{reference}",
            "清单 {}/{repo}{sep}{reference}",
            self.host
        )
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{}", self.base, location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }
}

pub(crate) fn basic_header(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Maps an unsuccessful status to an error with the registry's own message.
async fn check(resp: Response, what: &str) -> Result<Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = header_str(resp.headers(), "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_limited(resp, 64 * 1024, what)
        .await
        .unwrap_or_default();
    let message = registry_message(&body);
    Err(match status.as_u16() {
        404 => RegistryError::NotFound {
            what: what.to_string(),
            message,
        },
        401 | 403 => RegistryError::Denied {
            what: what.to_string(),
            status: status.as_u16(),
        },
        s => RegistryError::Status {
            what: what.to_string(),
            status: s,
            message,
            retry_after,
        },
    })
}

/// The first `errors[].code: message` of a registry error body.
fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|i| format!("{}: {}", i.code, i.message))
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string(),
    }
}

/// Reads a whole response body, refusing more than `limit` bytes.
async fn read_limited(resp: Response, limit: usize, what: &str) -> Result<Vec<u8>, RegistryError> {
    if let Some(len) = resp.content_length() {
        if len as usize > limit {
            return Err(RegistryError::Protocol {
                what: what.into(),
                detail: crate::tr!(
                    "response of {len} bytes is over the {limit}-byte limit",
                    "响应有 {len} 字节, 超过 {limit} 字节的上限"
                ),
            });
        }
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::transport(what, e))?;
        if out.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol {
                what: what.into(),
                detail: crate::tr!(
                    "response over the {limit}-byte limit",
                    "响应超过 {limit} 字节的上限"
                ),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "registry.example.com", "docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn digest_is_appended_to_upload_urls() {
        let d = Digest::of(b"");
        assert_eq!(
            with_digest("http://h/u?_state=x", &d),
            format!("http://h/u?_state=x&digest={d}")
        );
        assert_eq!(
            with_digest("http://h/u", &d),
            format!("http://h/u?digest={d}")
        );
    }

    #[test]
    fn registry_messages_are_extracted() {
        assert_eq!(
            registry_message(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(registry_message(b"plain text"), "plain text");
    }
}
