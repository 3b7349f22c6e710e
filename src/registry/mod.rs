//! A thin client for the OCI distribution API on reqwest: manifests as raw bytes,
//! blobs streamed both ways, basic and bearer auth with per-scope tokens, and
//! cross-repository mounts. Retries are the caller's (they wrap whole operations).
//!
//! What it trusts and refuses (README "Security model"): credentials go only to the
//! registry's own origin ([`origin`]); redirects are followed by hand, never from
//! HTTPS down to HTTP; every response is bounded in size and time ([`limits`]);
//! what a registry says reaches a message only through [`error::clean_text`].

pub mod auth;
pub mod error;
pub mod harbor;
pub mod limits;
pub mod origin;

use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest, ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES};
use auth::{parse_challenge, Challenge, Credentials, TokenCache};
use base64::Engine as _;
use error::clean_text;
pub use error::RegistryError;
use futures_util::StreamExt;
pub use limits::{BlobResponse, BlobStream, BodyError, Limits};
use origin::{Origin, RealmRule};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub credentials: Option<Credentials>,
    /// Where the credentials were found (cfg.yaml, an auth file), named when the
    /// registry refuses them.
    pub credentials_from: Option<String>,
    /// Skip TLS certificate verification; for a registry given without a scheme,
    /// also fall back to plain HTTP when it answers TLS in HTTP (docker's
    /// `insecure-registries`).
    pub insecure: bool,
    /// An extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Force plain HTTP (`http://` given explicitly) or HTTPS (`https://`); `None`
    /// means HTTPS except for loopback hosts, as docker does.
    pub plain_http: Option<bool>,
    pub connect_timeout: Option<Duration>,
    /// Longest silence while reading a response before the request fails; also the
    /// window of the blob speed rule.
    pub read_timeout: Option<Duration>,
    /// Overall deadline of a small response (manifest, token, tag page, error).
    pub response_timeout: Option<Duration>,
    /// Minimum average speed of a blob body, bytes/s (0: no minimum).
    pub min_rate: Option<u64>,
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
    /// Follows no redirect by itself: [`Client::follow`] does, by ferry's rules.
    http: reqwest::Client,
    base: String,
    origin: Origin,
    /// The plain-HTTP base and origin an `insecure` registry falls back to.
    fallback: Option<(String, Origin)>,
    fell_back: AtomicBool,
    host: String,
    credentials: Option<Credentials>,
    credentials_from: Option<String>,
    limits: Limits,
    auth: Mutex<AuthState>,
    /// One token fetch at a time per scope (others of that scope wait for it and
    /// use it); scopes do not wait for each other's token round trips.
    fetching: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Mutex<()>>>>,
    /// Why the registry refused the credentials (or needs some and has none), once
    /// it did: its remaining work fails at once instead of collecting one 401 per
    /// request.
    refused: std::sync::OnceLock<String>,
    /// Whether a small blob goes up in one POST with its digest (the distribution
    /// spec's optional monolithic upload): unknown until tried, then remembered.
    monolithic: std::sync::atomic::AtomicU8,
    /// A blob is being offered in one POST while `monolithic` is unknown.
    monolithic_probing: AtomicBool,
    /// The shortest time a small request took to be answered, in microseconds
    /// (`u64::MAX`: none yet): the round trip to the registry.
    shortest: std::sync::atomic::AtomicU64,
}

/// [`Client::monolithic`] states.
const MONOLITHIC_UNKNOWN: u8 = 0;
const MONOLITHIC_YES: u8 = 1;
const MONOLITHIC_NO: u8 = 2;
/// Blobs up to this size are offered in one POST while the registry may take
/// them so: a registry that does not is sent the bytes once more (once).
const MONOLITHIC_MAX: u64 = 256 * 1024;

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: TokenCache,
    /// A plain-HTTP token realm on another host that was asked for anonymous
    /// tokens, the credentials withheld (named when access is then denied).
    withheld_from: Option<String>,
}

/// What a request carried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presented {
    Nothing,
    Basic,
    Bearer,
}

/// How long a request may take (see [`limits`]).
#[derive(Clone, Copy)]
enum Kind {
    /// A small response, complete within `response_timeout`.
    Small,
    /// A blob body: headers within `response_timeout`, then the speed rule.
    Blob,
    /// A blob upload of this many bytes.
    Upload(u64),
}

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

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
        Client::with_http(host, opts, |b| b)
    }

    /// [`Client::new`] with a last word on the HTTP client (tests point a host name
    /// at a loopback address with it).
    fn with_http(
        host: &str,
        opts: &RegistryOptions,
        adjust: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<Client, RegistryError> {
        let what = crate::tr!("registry {host}", "镜像仓库 {host}");
        let plain = opts.plain_http.unwrap_or_else(|| is_loopback(host));
        let api_host = if host == crate::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            host
        };
        let limits = Limits {
            response_timeout: opts
                .response_timeout
                .unwrap_or(limits::DEFAULT_RESPONSE_TIMEOUT),
            read_timeout: opts.read_timeout.unwrap_or(limits::DEFAULT_READ_TIMEOUT),
            min_rate: opts.min_rate.unwrap_or(limits::DEFAULT_MIN_RATE),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(limits.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
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
        let http = adjust(builder)
            .build()
            .map_err(|e| RegistryError::transport(&what, e))?;
        let base_of = |scheme: &str| -> Result<(String, Origin), RegistryError> {
            let base = format!("{scheme}://{api_host}");
            Url::parse(&base)
                .ok()
                .and_then(|u| Origin::of(&u))
                .map(|o| (base, o))
                .ok_or_else(|| RegistryError::Protocol {
                    what: what.clone(),
                    detail: crate::tr!("not a valid registry host", "不是有效的仓库主机名"),
                })
        };
        let (base, origin) = base_of(if plain { "http" } else { "https" })?;
        let fallback = if opts.insecure && opts.plain_http.is_none() && !plain {
            Some(base_of("http")?)
        } else {
            None
        };
        Ok(Client {
            http,
            base,
            origin,
            fallback,
            fell_back: AtomicBool::new(false),
            host: host.to_string(),
            credentials: opts.credentials.clone(),
            credentials_from: opts.credentials_from.clone(),
            limits,
            auth: Mutex::new(AuthState::default()),
            fetching: std::sync::Mutex::default(),
            refused: std::sync::OnceLock::new(),
            monolithic: std::sync::atomic::AtomicU8::new(MONOLITHIC_UNKNOWN),
            monolithic_probing: AtomicBool::new(false),
            shortest: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The shortest round trip of a small request so far (headers answered).
    pub fn round_trip(&self) -> Option<Duration> {
        match self.shortest.load(Ordering::Relaxed) {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// `scheme://host[:port]` of the registry as it is reached now.
    fn base(&self) -> &str {
        match &self.fallback {
            Some((b, _)) if self.fell_back.load(Ordering::Relaxed) => b,
            _ => &self.base,
        }
    }

    /// The origin the credentials belong to.
    fn origin(&self) -> &Origin {
        match &self.fallback {
            Some((_, o)) if self.fell_back.load(Ordering::Relaxed) => o,
            _ => &self.origin,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base(), path)
    }

    /// Sends a request with the auth this scope needs, answering one 401 challenge
    /// (fetching a token, or switching to basic auth) and sending again. Credentials
    /// are attached only to requests for the registry's own origin.
    async fn send(
        &self,
        what: &str,
        scope: &str,
        kind: Kind,
        build: &(dyn Fn() -> Result<RequestBuilder, RegistryError> + Sync),
    ) -> Result<Response, RegistryError> {
        if let Some(reason) = self.refused.get() {
            return Err(RegistryError::AuthFailedEarlier {
                what: what.to_string(),
                reason: reason.clone(),
            });
        }
        let mut answered = false;
        let mut tried_fallback = false;
        loop {
            let mut req = build()?
                .build()
                .map_err(|e| RegistryError::transport(what, e))?;
            self.apply_fallback(&mut req);
            *req.timeout_mut() = match kind {
                Kind::Small => Some(self.limits.response_timeout),
                Kind::Blob => None,
                Kind::Upload(size) => self.limits.upload_deadline(size),
            };
            let ours = Origin::of(req.url()).as_ref() == Some(self.origin());
            let (presented, header) = if ours {
                self.authorization(what, scope).await?
            } else {
                (Presented::Nothing, None)
            };
            if let Some(h) = &header {
                req.headers_mut().insert(AUTHORIZATION, h.clone());
            }
            let target = req.url().clone();
            let header_deadline = match kind {
                Kind::Blob => Some(self.limits.response_timeout),
                _ => None,
            };
            let sent = Instant::now();
            let resp = match self.follow(req, what, header_deadline).await {
                Err(e)
                    if e.is_plain_http_answer() && self.fallback.is_some() && !tried_fallback =>
                {
                    // docker's insecure-registries: HTTPS first, then plain HTTP.
                    self.fell_back.store(true, Ordering::Relaxed);
                    tried_fallback = true;
                    continue;
                }
                r => r?,
            };
            if matches!(kind, Kind::Small) {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.shortest.fetch_min(micros, Ordering::Relaxed);
            }
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if !ours {
                let mut detail = crate::tr!(
                    "{} asks for credentials, but it is not the registry's own origin {}: they are not sent there",
                    "{} 要求凭据, 但它不是仓库本身的源 {}: 不会向它发送凭据",
                    origin_of(&target),
                    self.origin()
                );
                if target.scheme() == "http" && self.origin().is_https() {
                    detail.push_str(crate::i18n::t(
                        " (a proxy in front of the registry that does not pass X-Forwarded-Proto makes it name http:// upload URLs)",
                        " (仓库前的代理若不传递 X-Forwarded-Proto, 仓库就会给出 http:// 的上传地址)",
                    ));
                }
                return Err(RegistryError::Auth {
                    what: what.to_string(),
                    detail,
                });
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let basic_refused =
                presented == Presented::Basic && matches!(challenge, Some(Challenge::Basic) | None);
            if basic_refused || (answered && presented == Presented::Basic) {
                return Err(self.refuse(what, None));
            }
            if answered {
                return Err(self.denied(what).await);
            }
            let Some(challenge) = challenge else {
                return Err(RegistryError::Denied {
                    what: what.to_string(),
                    status: 401,
                });
            };
            self.authenticate(what, scope, challenge, header.as_ref())
                .await?;
            answered = true;
        }
    }

    /// Rewrites a request for the registry's HTTPS origin to plain HTTP once an
    /// `insecure` registry has fallen back.
    fn apply_fallback(&self, req: &mut Request) {
        if !self.fell_back.load(Ordering::Relaxed) {
            return;
        }
        if Origin::of(req.url()).as_ref() == Some(&self.origin) {
            let _ = req.url_mut().set_scheme("http");
        }
    }

    /// Sends `req`, following redirects by ferry's rules: never from HTTPS down to
    /// HTTP, at most [`MAX_REDIRECTS`], only for GET and HEAD, and with the
    /// `Authorization` header dropped for good once the target leaves the origin
    /// the header was meant for. `header_deadline` bounds the wait for each
    /// answer's headers (requests with a body-wide timeout carry it themselves).
    async fn follow(
        &self,
        mut req: Request,
        what: &str,
        header_deadline: Option<Duration>,
    ) -> Result<Response, RegistryError> {
        let cred_origin = Origin::of(req.url());
        for _ in 0..=MAX_REDIRECTS {
            let next = if matches!(*req.method(), Method::GET | Method::HEAD) {
                req.try_clone()
            } else {
                None
            };
            let from = req.url().clone();
            let sent = self.http.execute(req);
            let resp = match header_deadline {
                Some(d) => tokio::time::timeout(d, sent)
                    .await
                    .map_err(|_| self.deadline_error(what))?,
                None => sent.await,
            }
            .map_err(|e| RegistryError::transport(what, e))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let location = header_str(resp.headers(), LOCATION.as_str());
            let (Some(mut next), Some(location)) = (next, location) else {
                return Ok(resp);
            };
            let to = from.join(&location).map_err(|_| RegistryError::Protocol {
                what: what.to_string(),
                detail: crate::tr!(
                    "redirect to an invalid URL {:?}",
                    "重定向到无效的地址 {:?}",
                    clean_text(&location, 200)
                ),
            })?;
            origin::redirect_allowed(&from, &to).map_err(|detail| RegistryError::Protocol {
                what: what.to_string(),
                detail,
            })?;
            if Origin::of(&to) != cred_origin {
                next.headers_mut().remove(AUTHORIZATION);
            }
            *next.url_mut() = to;
            req = next;
        }
        Err(RegistryError::Transport {
            what: what.to_string(),
            detail: crate::tr!(
                "more than {MAX_REDIRECTS} redirects (a redirect loop?)",
                "重定向超过 {MAX_REDIRECTS} 次 (重定向循环?)"
            ),
            retryable: false,
        })
    }

    fn deadline_error(&self, what: &str) -> RegistryError {
        RegistryError::Transport {
            what: what.to_string(),
            detail: crate::tr!(
                "no complete answer within {} s (--response-timeout)",
                "{} 秒内没有完整的响应 (--response-timeout)",
                self.limits.response_timeout.as_secs()
            ),
            retryable: true,
        }
    }

    /// The `Authorization` header for this scope: basic credentials, or a bearer
    /// token, fetched before it is needed once the registry is known to want one
    /// (a new scope, or a token about to expire, costs no 401 round trip).
    async fn authorization(
        &self,
        what: &str,
        scope: &str,
    ) -> Result<(Presented, Option<HeaderValue>), RegistryError> {
        let (challenge, cached) = {
            let state = self.auth.lock().await;
            (state.challenge.clone(), state.tokens.get(scope))
        };
        match challenge {
            None => Ok((Presented::Nothing, None)),
            Some(Challenge::Basic) => Ok(match &self.credentials {
                Some(c) => (Presented::Basic, Some(basic_header_value(what, c)?)),
                None => (Presented::Nothing, None),
            }),
            Some(Challenge::Bearer { realm, service }) => {
                let token = match cached {
                    Some(t) => t,
                    None => {
                        self.token_for(what, scope, &realm, service.as_deref(), None)
                            .await?
                    }
                };
                Ok((Presented::Bearer, Some(bearer_value(what, &token)?)))
            }
        }
    }

    /// Answers a 401 challenge: remembers it, and for bearer auth fetches a token
    /// (unless another request already replaced the one this request carried).
    async fn authenticate(
        &self,
        what: &str,
        scope: &str,
        challenge: Challenge,
        presented: Option<&HeaderValue>,
    ) -> Result<(), RegistryError> {
        self.auth.lock().await.challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(self.refuse(what, None));
                }
                Ok(())
            }
            Challenge::Bearer { realm, service } => self
                .token_for(what, scope, &realm, service.as_deref(), presented)
                .await
                .map(|_| ()),
        }
    }

    /// The token for `scope`: the cached one unless it is the `stale` one a request
    /// was refused with, else a new one. Concurrent requests of one scope share one
    /// fetch; other scopes go on meanwhile.
    async fn token_for(
        &self,
        what: &str,
        scope: &str,
        realm: &str,
        service: Option<&str>,
        stale: Option<&HeaderValue>,
    ) -> Result<String, RegistryError> {
        let gate = {
            let mut fetching = self
                .fetching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            fetching.entry(scope.to_string()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        {
            let mut state = self.auth.lock().await;
            if let Some(t) = state.tokens.get(scope) {
                let fresh = bearer_value(what, &t).ok();
                if fresh.is_some() && fresh.as_ref() != stale {
                    return Ok(t);
                }
            }
            state.tokens.forget(scope);
        }
        self.fetch_token(what, scope, realm, service).await
    }

    /// Fetches a token for `scope` from the realm, by the realm rule of
    /// [`origin::realm_rule`], and caches it for its lifetime.
    async fn fetch_token(
        &self,
        what: &str,
        scope: &str,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let shown_realm = clean_text(realm, 200);
        let token_what = crate::tr!(
            "{what}: token from {shown_realm}",
            "{what}: 从 {shown_realm} 获取令牌"
        );
        let mut url = Url::parse(realm).map_err(|_| {
            self.refuse(
                what,
                Some(crate::tr!(
                    "the token realm {shown_realm:?} is not a URL",
                    "令牌服务地址 {shown_realm:?} 不是有效的地址"
                )),
            )
        })?;
        let rule = origin::realm_rule(self.origin(), &url)
            .map_err(|detail| self.refuse(what, Some(detail)))?;
        let send_credentials = rule == RealmRule::SendCredentials && self.credentials.is_some();
        if rule == RealmRule::Anonymous && self.credentials.is_some() {
            self.auth.lock().await.withheld_from = Some(shown_realm.clone());
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let mut req = self
            .http
            .get(url)
            .timeout(self.limits.response_timeout)
            .build()
            .map_err(|e| RegistryError::transport(&token_what, e))?;
        if let (true, Some(c)) = (send_credentials, &self.credentials) {
            req.headers_mut()
                .insert(AUTHORIZATION, basic_header_value(what, c)?);
        }
        let requested = Instant::now();
        let resp = self.follow(req, &token_what, None).await?;
        let status = resp.status();
        // 401: the credentials (or anonymous access) are refused for the whole
        // registry. 403: this scope is not allowed; other repositories may be.
        if status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied {
                what: what.to_string(),
                status: 403,
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.refuse(
                what,
                Some(if send_credentials {
                    crate::tr!(
                        "the token server {shown_realm} refused the user name and password (HTTP {})",
                        "令牌服务 {shown_realm} 拒绝了用户名和密码 (HTTP {})",
                        status.as_u16()
                    )
                } else {
                    crate::tr!(
                        "the token server {shown_realm} gives no anonymous token (HTTP {}); a user name and password are needed",
                        "令牌服务 {shown_realm} 不提供匿名令牌 (HTTP {}); 需要用户名和密码",
                        status.as_u16()
                    )
                }),
            ));
        }
        let resp = self.check(resp, &token_what).await?;
        let body = self.read_limited(resp, 1024 * 1024, &token_what).await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<serde_json::Value>,
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| RegistryError::Auth {
            what: what.into(),
            detail: crate::tr!(
                "token server sent malformed JSON: {}",
                "令牌服务返回的 JSON 格式错误: {}",
                clean_text(&e.to_string(), 300)
            ),
        })?;
        let token = t
            .token
            .filter(|t| !t.is_empty())
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Auth {
                what: what.into(),
                detail: crate::tr!("token server sent no token", "令牌服务没有返回令牌"),
            })?;
        bearer_value(what, &token)?;
        self.auth.lock().await.tokens.put(
            scope,
            token.clone(),
            requested,
            lifetime_secs(t.expires_in),
        );
        Ok(token)
    }

    /// Marks the registry as refusing this run's credentials and says what to fix;
    /// `detail` replaces the default reason.
    fn refuse(&self, what: &str, detail: Option<String>) -> RegistryError {
        let host = &self.host;
        let from = self
            .credentials_from
            .as_deref()
            .map(|f| crate::tr!(" (from {f})", " (来自 {f})"))
            .unwrap_or_default();
        let reason = match (detail, &self.credentials) {
            (Some(d), _) => d,
            (None, Some(_)) => crate::tr!(
                "the registry refused the user name and password{from}",
                "仓库拒绝了用户名和密码{from}"
            ),
            (None, None) => crate::tr!(
                "the registry asks for a user name and password and none is configured",
                "该仓库要求用户名和密码, 但没有配置"
            ),
        };
        let fix = if self.credentials.is_some() {
            crate::tr!(
                "check the user name and password for {host} (cfg.yaml, or `ferry login {host}`)",
                "请检查 {host} 的用户名和密码 (cfg.yaml, 或 `ferry login {host}`)"
            )
        } else {
            crate::tr!(
                "give credentials for {host} in cfg.yaml or with `ferry login {host}`",
                "请在 cfg.yaml 中或用 `ferry login {host}` 为 {host} 提供凭据"
            )
        };
        let detail = format!("{reason}; {fix}");
        let _ = self.refused.set(detail.clone());
        RegistryError::Auth {
            what: what.to_string(),
            detail,
        }
    }

    /// A 401 for a token just issued: this scope is not allowed (or, on some
    /// registries, the repository does not exist).
    async fn denied(&self, what: &str) -> RegistryError {
        let state = self.auth.lock().await;
        match &state.withheld_from {
            Some(realm) => RegistryError::Auth {
                what: what.to_string(),
                detail: crate::tr!(
                    "access denied with an anonymous token: the credentials were not sent to the token realm {realm}, which is plain HTTP on another host (see README, Security model)",
                    "匿名令牌被拒绝访问: 凭据没有发送给令牌服务 {realm}, 因为它是另一台主机上的明文 HTTP 服务 (见 README 的安全模型一节)"
                ),
            },
            None => RegistryError::Denied {
                what: what.to_string(),
                status: 401,
            },
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
            .send(&what, &pull_scope(repo), Kind::Small, &|| {
                Ok(self.http.get(&url).header(ACCEPT, ACCEPT_MANIFESTS))
            })
            .await?;
        let resp = self.check(resp, &what).await?;
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let served_digest = header_str(resp.headers(), "docker-content-digest");
        let bytes = self.read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
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
    /// it really starts at (0 when the registry ignored the Range request). Its body
    /// fails when it moves too slowly (see [`limits`]).
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(BlobResponse, u64), RegistryError> {
        let what = self.blob_what(repo, digest);
        let url = self.url(&format!("{repo}/blobs/{digest}"));
        let resp = self
            .send(&what, &pull_scope(repo), Kind::Blob, &|| {
                let r = self.http.get(&url);
                Ok(if offset > 0 {
                    r.header(RANGE, format!("bytes={offset}-"))
                } else {
                    r
                })
            })
            .await?;
        let resp = self.check(resp, &what).await?;
        let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
            offset
        } else {
            0
        };
        Ok((BlobResponse::new(resp, self.limits), start))
    }

    /// The size of a blob when the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let what = self.blob_what(repo, digest);
        let path = format!("{repo}/blobs/{digest}");
        let Some(resp) = self.head_if_present(&what, repo, &path, None).await? else {
            return Ok(None);
        };
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
        let path = format!("{repo}/manifests/{reference}");
        let accept = Some(ACCEPT_MANIFESTS);
        let Some(resp) = self.head_if_present(&what, repo, &path, accept).await? else {
            return Ok(None);
        };
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
        let what = self.upload_what(repo, digest);
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
            .send(&what, &scope, Kind::Small, &|| {
                Ok(self.http.post(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let resp = self.check(resp, &what).await?;
        if resp.status() == StatusCode::CREATED && mount_from.is_some() {
            return Ok(UploadStart::Mounted);
        }
        self.upload_session(&resp, &what)
    }

    /// Pushes a blob the target lacks: a small one in one POST where the registry
    /// takes that (one round trip), else a session and one monolithic PUT, or
    /// chunked PATCHes when the registry refuses a body that large.
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: &BodySource,
    ) -> Result<(), RegistryError> {
        let what = self.upload_what(repo, digest);
        let session = if size <= MONOLITHIC_MAX && self.may_post_blob() {
            let posted = self.post_blob(repo, digest, size, body, &what).await;
            self.monolithic_probing.store(false, Ordering::Relaxed);
            match posted? {
                None => return Ok(()),
                Some(started) => started,
            }
        } else {
            self.start_upload(repo, digest, None).await?
        };
        let UploadStart::Session(location) = session else {
            return Ok(());
        };
        let url = with_digest(&location, digest);
        let resp = self
            .send(&what, &push_scope(repo), Kind::Upload(size), &|| {
                with_blob_bytes(self.http.put(&url), body, 0, size, &what)
            })
            .await?;
        match resp.status().as_u16() {
            201 | 204 => Ok(()),
            413 | 416 => self.push_blob_chunked(repo, digest, size, body).await,
            _ => self.check(resp, &what).await.map(|_| ()),
        }
    }

    /// Whether to offer this blob in one POST: yes once the registry took one so;
    /// while that is unknown, one blob at a time (a registry that does not would
    /// have every blob in flight read and sent twice).
    fn may_post_blob(&self) -> bool {
        match self.monolithic.load(Ordering::Relaxed) {
            MONOLITHIC_YES => true,
            MONOLITHIC_NO => false,
            _ => !self.monolithic_probing.swap(true, Ordering::Relaxed),
        }
    }

    /// Offers a small blob in one `POST ...?digest=` with its bytes. `None` when the
    /// registry stored it; else the upload session it opened instead (a registry
    /// without monolithic POST ignores the body), so nothing costs a round trip more.
    async fn post_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: &BodySource,
        what: &str,
    ) -> Result<Option<UploadStart>, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/uploads/?digest={digest}"));
        let resp = self
            .send(what, &push_scope(repo), Kind::Upload(size), &|| {
                with_blob_bytes(self.http.post(&url), body, 0, size, what)
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED {
            self.monolithic.store(MONOLITHIC_YES, Ordering::Relaxed);
            return Ok(None);
        }
        if status == StatusCode::ACCEPTED {
            self.monolithic.store(MONOLITHIC_NO, Ordering::Relaxed);
            let resp = self.check(resp, what).await?;
            return self.upload_session(&resp, what).map(Some);
        }
        // Refused outright (a 4xx for a POST with a body): never again, the usual
        // way now. Server errors are the caller's to retry.
        if status.is_client_error() && self.monolithic.load(Ordering::Relaxed) != MONOLITHIC_YES {
            self.monolithic.store(MONOLITHIC_NO, Ordering::Relaxed);
            return Ok(Some(self.start_upload(repo, digest, None).await?));
        }
        self.check(resp, what).await?;
        Ok(None)
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
                .send(&what, &push_scope(repo), Kind::Upload(len), &|| {
                    let range = format!("{}-{}", offset, offset + len - 1);
                    let patch = self.http.patch(&url).header("content-range", range);
                    with_blob_bytes(patch, body, offset, len, &what)
                })
                .await?;
            // A proxy's body limit (nginx's client_max_body_size is 1 MiB by
            // default) refuses the chunk before the registry sees it: smaller chunks.
            if resp.status().as_u16() == 413 && chunk > MIN_CHUNK {
                chunk = (len / 4).max(MIN_CHUNK);
                continue;
            }
            let resp = self.check(resp, &what).await?;
            if let Some(l) = header_str(resp.headers(), LOCATION.as_str()) {
                location = self.absolute(&l);
            }
            offset += len;
        }
        let url = with_digest(&location, digest);
        let resp = self
            .send(&what, &push_scope(repo), Kind::Small, &|| {
                Ok(self.http.put(&url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        self.check(resp, &what).await.map(|_| ())
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
            .send(&what, &push_scope(repo), Kind::Small, &|| {
                Ok(self
                    .http
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec()))
            })
            .await?;
        let resp = self.check(resp, &what).await?;
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
            .send(&what, &pull_scope(repo), Kind::Small, &|| {
                Ok(self
                    .http
                    .get(&url)
                    .header(ACCEPT, crate::manifest::OCI_INDEX))
            })
            .await?;
        if matches!(resp.status().as_u16(), 404 | 405 | 400) {
            return Ok(None);
        }
        let resp = self.check(resp, &what).await?;
        let body = self.read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        match RawManifest::new(body, Some(crate::manifest::OCI_INDEX)) {
            Ok((_, Parsed::Index { manifests })) => Ok(Some(manifests)),
            _ => Ok(None),
        }
    }

    /// All tags of a repository, following `Link: <...>; rel="next"` pages on the
    /// registry's own origin. Bounded: [`limits::MAX_TAG_PAGES`] pages of
    /// [`limits::MAX_TAG_PAGE_BYTES`], [`limits::MAX_TAGS`] tags, no page twice, and
    /// every tag must follow the distribution spec's grammar.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let what = crate::tr!("tags of {}/{repo}", "{}/{repo} 的标签", self.host);
        let protocol = |detail: String| RegistryError::Protocol {
            what: what.clone(),
            detail,
        };
        let mut url = Url::parse(&self.url(&format!("{repo}/tags/list?n=1000")))
            .map_err(|_| protocol(crate::tr!("invalid repository name", "仓库名无效")))?;
        let mut seen = std::collections::HashSet::new();
        let mut tags = Vec::new();
        for _ in 0..limits::MAX_TAG_PAGES {
            seen.insert(url.to_string());
            let page_url = url.clone();
            let resp = self
                .send(&what, &pull_scope(repo), Kind::Small, &|| {
                    Ok(self.http.get(page_url.clone()))
                })
                .await?;
            let resp = self.check(resp, &what).await?;
            let next = header_str(resp.headers(), "link").and_then(|l| next_link(&l));
            let body = self
                .read_limited(resp, limits::MAX_TAG_PAGE_BYTES, &what)
                .await?;
            #[derive(serde::Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&body).map_err(|e| {
                protocol(crate::tr!(
                    "malformed tag list: {}",
                    "标签列表格式错误: {}",
                    clean_text(&e.to_string(), 300)
                ))
            })?;
            drop(body);
            for t in page.tags.unwrap_or_default() {
                if !valid_tag(&t) {
                    return Err(protocol(crate::tr!(
                        "the registry listed an invalid tag {:?}",
                        "仓库列出了无效的标签 {:?}",
                        clean_text(&t, 140)
                    )));
                }
                if tags.len() >= limits::MAX_TAGS {
                    return Err(protocol(crate::tr!(
                        "more than {} tags; refused",
                        "标签超过 {} 个; 已拒绝",
                        limits::MAX_TAGS
                    )));
                }
                tags.push(t);
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            let next = url.join(&next).map_err(|_| {
                protocol(crate::tr!(
                    "the next-page link {:?} is not a URL",
                    "下一页链接 {:?} 不是有效的地址",
                    clean_text(&next, 200)
                ))
            })?;
            if Origin::of(&next).as_ref() != Some(self.origin()) {
                return Err(protocol(crate::tr!(
                    "the next-page link leads to another origin ({}); refused",
                    "下一页链接指向另一个源 ({}); 已拒绝",
                    origin_of(&next)
                )));
            }
            if seen.contains(next.as_str()) {
                return Err(protocol(crate::tr!(
                    "the next-page links go round in a loop",
                    "下一页链接构成了循环"
                )));
            }
            url = next;
        }
        Err(protocol(crate::tr!(
            "more than {} pages; refused",
            "超过 {} 页; 已拒绝",
            limits::MAX_TAG_PAGES
        )))
    }

    /// Checks that the registry answers and accepts the credentials (`GET /v2/`).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let what = crate::tr!("registry {}", "镜像仓库 {}", self.host);
        let url = format!("{}/v2/", self.base());
        let resp = self
            .send(&what, "", Kind::Small, &|| Ok(self.http.get(&url)))
            .await?;
        self.check(resp, &what).await.map(|_| ())
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
            .send(&what, scope, Kind::Small, &|| {
                Ok(self.http.request(method.clone(), &url))
            })
            .await?;
        self.check(resp, &what).await
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

    /// "blob DIGEST in host/repo": one wording for every read of a blob.
    fn blob_what(&self, repo: &str, digest: &Digest) -> String {
        crate::tr!(
            "blob {digest} in {}/{repo}",
            "{}/{repo} 中的数据块 {digest}",
            self.host
        )
    }

    /// "upload of DIGEST to host/repo": one wording for every push of a blob.
    fn upload_what(&self, repo: &str, digest: &Digest) -> String {
        crate::tr!(
            "upload of {digest} to {}/{repo}",
            "上传 {digest} 到 {}/{repo}",
            self.host
        )
    }

    /// A HEAD of `path` (below `/v2/`) where a 404 means "not there" (`None`), not a
    /// failure: the one existence check behind [`Client::blob_exists`] and
    /// [`Client::manifest_digest`].
    async fn head_if_present(
        &self,
        what: &str,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<Option<Response>, RegistryError> {
        let url = self.url(path);
        let resp = self
            .send(what, &pull_scope(repo), Kind::Small, &|| {
                let head = self.http.head(&url);
                Ok(match accept {
                    Some(accept) => head.header(ACCEPT, accept),
                    None => head,
                })
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check(resp, what).await.map(Some)
    }

    /// The upload session a registry opened (its `Location`, made absolute): the
    /// answer to a POST that starts an upload, whether it carried bytes or not.
    fn upload_session(&self, resp: &Response, what: &str) -> Result<UploadStart, RegistryError> {
        let location = header_str(resp.headers(), LOCATION.as_str()).ok_or_else(|| {
            RegistryError::Protocol {
                what: what.to_string(),
                detail: crate::tr!(
                    "upload started without a Location header",
                    "上传已开始, 但响应没有 Location 头"
                ),
            }
        })?;
        Ok(UploadStart::Session(self.absolute(&location)))
    }

    /// An upload `Location`, made absolute against the registry's URL.
    fn absolute(&self, location: &str) -> String {
        match Url::parse(self.base()).and_then(|b| b.join(location)) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{}/{}", self.base(), location.trim_start_matches('/')),
        }
    }

    /// Maps an unsuccessful status to an error with the registry's own message.
    async fn check(&self, resp: Response, what: &str) -> Result<Response, RegistryError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = header_str(resp.headers(), "retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = self
            .read_limited(resp, 64 * 1024, what)
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

    /// Reads a whole response body, refusing more than `limit` bytes or taking
    /// longer than the response deadline.
    async fn read_limited(
        &self,
        resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        tokio::time::timeout(
            self.limits.response_timeout,
            read_limited(resp, limit, what),
        )
        .await
        .map_err(|_| self.deadline_error(what))?
    }
}

fn basic_header_value(what: &str, c: &Credentials) -> Result<HeaderValue, RegistryError> {
    let mut v = HeaderValue::from_str(&basic_header(c)).map_err(|_| RegistryError::Auth {
        what: what.to_string(),
        detail: crate::i18n::t(
            "the credentials cannot be sent in an HTTP header",
            "凭据无法放入 HTTP 头",
        )
        .to_string(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn bearer_value(what: &str, token: &str) -> Result<HeaderValue, RegistryError> {
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| RegistryError::Auth {
            what: what.to_string(),
            detail: crate::i18n::t(
                "the token server sent a token that is not a valid header value",
                "令牌服务返回的令牌不是有效的 HTTP 头值",
            )
            .to_string(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

/// A token answer's `expires_in`, whatever type the server chose: whole seconds,
/// negative and non-numbers as 0, anything huge saturating (the cache clamps it).
fn lifetime_secs(v: Option<serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => Some(
            n.as_u64()
                .or_else(|| n.as_f64().map(|f| if f > 0.0 { f as u64 } else { 0 }))
                .unwrap_or(0),
        ),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `scheme://host:port` of a URL, for messages.
fn origin_of(url: &Url) -> String {
    Origin::of(url)
        .map(|o| o.to_string())
        .unwrap_or_else(|| clean_text(url.as_str(), 200))
}

/// The target of the `rel="next"` entry of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';').unwrap_or((entry, ""));
        let rel_next = params.split(';').any(|p| {
            p.trim()
                .replace(' ', "")
                .eq_ignore_ascii_case("rel=\"next\"")
                || p.trim().replace(' ', "").eq_ignore_ascii_case("rel=next")
        });
        // A lone link without rel (older registries) means "next" too.
        if rel_next || params.trim().is_empty() {
            let t = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            Some(t.to_string())
        } else {
            None
        }
    })
}

/// A tag as the distribution spec defines it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() <= 128
        && b.first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
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

/// `request` carrying bytes `offset..offset + len` of a blob as an octet stream:
/// the one shape of every request that sends blob bytes (POST, PUT, PATCH). A body
/// that cannot be read is an I/O error of `what`.
fn with_blob_bytes(
    request: RequestBuilder,
    body: &BodySource,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<RequestBuilder, RegistryError> {
    let bytes = body(offset, len).map_err(|e| RegistryError::Io {
        what: what.to_string(),
        source: e,
    })?;
    Ok(request
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, len)
        .body(bytes))
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
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|i| format!("{}: {}", i.code, i.message))
            .unwrap_or_default(),
        Err(_) => {
            String::from_utf8_lossy(body.get(..body.len().min(600)).unwrap_or(body)).into_owned()
        }
    };
    clean_text(&text, 300)
}

/// Reads a whole response body, refusing more than `limit` bytes.
async fn read_limited(resp: Response, limit: usize, what: &str) -> Result<Vec<u8>, RegistryError> {
    if let Some(len) = resp.content_length() {
        if len > limit as u64 {
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
        if out.len().saturating_add(chunk.len()) > limit {
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
    use std::sync::Arc;

    /// A plain-HTTP server on loopback that answers a TLS handshake as Go's
    /// net/http does (400 in plain text) and `GET /v2/` with 200; counts requests.
    async fn plain_http_registry() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let answer: &[u8] = if buf.first() == Some(&0x16) {
                    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
                } else {
                    counted.fetch_add(1, Ordering::SeqCst);
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                };
                let _ = conn.write_all(answer).await;
                let _ = conn.shutdown().await;
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn an_insecure_registry_without_a_scheme_falls_back_to_plain_http() {
        let (port, hits) = plain_http_registry().await;
        let host = format!("fallback.test:{port}");
        let to_loopback = |b: reqwest::ClientBuilder| {
            b.resolve(
                "fallback.test",
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            )
        };
        let strict = Client::with_http(&host, &RegistryOptions::default(), to_loopback).unwrap();
        let e = strict.ping().await.unwrap_err();
        assert!(e.is_plain_http_answer(), "{e}");
        assert!(!e.is_retryable(), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        let opts = RegistryOptions {
            insecure: true,
            ..RegistryOptions::default()
        };
        let insecure = Client::with_http(&host, &opts, to_loopback).unwrap();
        insecure.ping().await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(insecure.base().starts_with("http://"));

        // An explicit https:// never falls back.
        let opts = RegistryOptions {
            insecure: true,
            plain_http: Some(false),
            ..RegistryOptions::default()
        };
        let explicit = Client::with_http(&host, &opts, to_loopback).unwrap();
        assert!(explicit.ping().await.unwrap_err().is_plain_http_answer());
    }

    /// A registry's blob upload API on loopback, with or without monolithic POST;
    /// records "METHOD PATH?QUERY BODY-BYTES" of each request.
    async fn upload_registry(monolithic: bool) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use axum::http::{StatusCode as S, Uri};
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
                    log.lock()
                        .unwrap()
                        .push(format!("{method} {path} {}", body.len()));
                    let with_digest = uri.query().is_some_and(|q| q.contains("digest="));
                    match method.as_str() {
                        "POST" if monolithic && with_digest => {
                            (S::CREATED, [("location", "/v2/app/blobs/x")])
                        }
                        "POST" => (S::ACCEPTED, [("location", "/v2/app/blobs/uploads/u1")]),
                        "PUT" => (S::CREATED, [("location", "/v2/app/blobs/x")]),
                        _ => (S::NOT_FOUND, [("location", "")]),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (host, seen)
    }

    fn bytes_body(data: &'static [u8]) -> impl Fn(u64, u64) -> std::io::Result<reqwest::Body> {
        move |offset, len| {
            let (o, l) = (offset as usize, len as usize);
            Ok(reqwest::Body::from(&data[o..o + l]))
        }
    }

    const SMALL_BLOB: &[u8] = b"small blob";

    /// Pushes [`SMALL_BLOB`] twice, one after the other, to an [`upload_registry`]:
    /// its digest and the requests the registry saw.
    async fn push_small_blob_twice(monolithic: bool) -> (Digest, Vec<String>) {
        let digest = Digest::of(SMALL_BLOB);
        let (host, seen) = upload_registry(monolithic).await;
        let client = Client::new(&host, &RegistryOptions::default()).unwrap();
        for _ in 0..2 {
            let body = bytes_body(SMALL_BLOB);
            let size = SMALL_BLOB.len() as u64;
            client.push_blob("app", &digest, size, &body).await.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        (digest, seen)
    }

    #[tokio::test]
    async fn small_blobs_go_up_in_one_post_where_the_registry_takes_that() {
        let (digest, seen) = push_small_blob_twice(true).await;
        let one = format!(
            "POST /v2/app/blobs/uploads/?digest={digest} {}",
            SMALL_BLOB.len()
        );
        assert_eq!(seen, vec![one.clone(), one], "one request a blob");
    }

    #[tokio::test]
    async fn a_registry_without_monolithic_post_costs_no_extra_round_trip() {
        let (digest, seen) = push_small_blob_twice(false).await;
        let n = SMALL_BLOB.len();
        assert_eq!(
            seen,
            vec![
                // Offered once: the session it opened instead takes the PUT.
                format!("POST /v2/app/blobs/uploads/?digest={digest} {n}"),
                format!("PUT /v2/app/blobs/uploads/u1?digest={digest} {n}"),
                // Remembered: no bytes in the POST from then on.
                "POST /v2/app/blobs/uploads/ 0".to_string(),
                format!("PUT /v2/app/blobs/uploads/u1?digest={digest} {n}"),
            ]
        );
    }

    #[tokio::test]
    async fn while_unknown_one_blob_at_a_time_is_offered_in_a_post() {
        let digest = Digest::of(SMALL_BLOB);
        let (host, seen) = upload_registry(false).await;
        let client = Client::new(&host, &RegistryOptions::default()).unwrap();
        let body = bytes_body(SMALL_BLOB);
        let size = SMALL_BLOB.len() as u64;
        let pushes = (0..4).map(|_| client.push_blob("app", &digest, size, &body));
        for r in futures_util::future::join_all(pushes).await {
            r.unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        let offered = seen
            .iter()
            .filter(|l| l.starts_with("POST") && !l.ends_with(" 0"))
            .count();
        assert_eq!(offered, 1, "the bytes went up twice once only: {seen:#?}");
    }

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

    #[test]
    fn registry_text_loses_terminal_escapes() {
        let hostile = br#"{"errors":[{"code":"DENIED","message":"\u001b]0;pwned\u0007\u001b[2J\rok\u202egnp.exe"}]}"#;
        let m = registry_message(hostile);
        assert!(!m.chars().any(|c| c.is_control()), "{m:?}");
        assert!(!m.contains('\u{202e}'), "{m:?}");
        assert!(m.starts_with("DENIED: "), "{m:?}");
        let raw = registry_message(b"\x1b[31mred\x1b[0m");
        assert!(!raw.contains('\x1b'), "{raw:?}");
    }

    #[test]
    fn next_links_are_found_by_rel() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=a&n=2>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=a&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel="next""#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link("</v2/x>").as_deref(), Some("/v2/x"));
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
    }

    #[test]
    fn tags_follow_the_grammar() {
        for good in ["latest", "1.0", "_x", "A-b.c_D", &"t".repeat(128)] {
            assert!(valid_tag(good), "{good:?}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "a\u{1b}[2J", &"t".repeat(129)] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn token_lifetimes_of_any_json_type() {
        use serde_json::json;
        assert_eq!(lifetime_secs(None), None);
        assert_eq!(lifetime_secs(Some(json!(300))), Some(300));
        assert_eq!(lifetime_secs(Some(json!(u64::MAX))), Some(u64::MAX));
        assert_eq!(lifetime_secs(Some(json!(1e300))), Some(u64::MAX));
        assert_eq!(lifetime_secs(Some(json!(-5))), Some(0));
        assert_eq!(lifetime_secs(Some(json!("60"))), Some(60));
        assert_eq!(lifetime_secs(Some(json!([1]))), None);
    }
}
