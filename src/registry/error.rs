//! Errors of the registry client, classified for retries.

use crate::digest::Digest;
use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{what}: {detail}")]
    Transport {
        what: String,
        detail: String,
        retryable: bool,
    },
    #[error("{what}: HTTP {status}{}", if .message.is_empty() { String::new() } else { format!(" ({})", .message) })]
    Status {
        what: String,
        status: u16,
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    #[error("{}", crate::tr!("{}: not found (HTTP 404{})", "{}: 不存在 (HTTP 404{})", .what, if .message.is_empty() { String::new() } else { format!(", {}", .message) }))]
    NotFound { what: String, message: String },
    #[error("{}", crate::tr!("{}: access denied (HTTP {}); check the credentials for this registry", "{}: 拒绝访问 (HTTP {}); 请检查该仓库的凭据", .what, .status))]
    Denied { what: String, status: u16 },
    #[error("{}", crate::tr!("{}: authentication failed: {}", "{}: 认证失败: {}", .what, .detail))]
    Auth { what: String, detail: String },
    #[error("{}", crate::tr!("{}: content does not match its digest: expected {}, got {}", "{}: 内容与摘要不符: 应为 {}, 实为 {}", .what, .expected, .actual))]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{}", crate::tr!("{}: size does not match its descriptor: expected {} bytes, got {}", "{}: 大小与描述不符: 应为 {} 字节, 实为 {}", .what, .expected, .actual))]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{}", crate::tr!("{}: body ended after {} of {} bytes", "{}: 传输中断, 仅收到 {} / {} 字节", .what, .got, .expected))]
    Incomplete {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error("{what}: {source}")]
    Manifest { what: String, source: ManifestError },
    #[error("{what}: {detail}")]
    Protocol { what: String, detail: String },
    #[error("{what}: {}", crate::i18n::io_error(.source))]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Not tried: this registry refused the credentials earlier in the run (or
    /// needs some and has none), for `reason`; the rest of its work fails at once.
    #[error("{}", crate::tr!("{}: not tried, authentication to this registry failed earlier in this run: {}", "{}: 未尝试, 本次运行中该仓库的认证已经失败: {}", .what, .reason))]
    AuthFailedEarlier { what: String, reason: String },
    #[error("{}", crate::i18n::t("cancelled", "已取消"))]
    Cancelled,
}

impl RegistryError {
    /// Whether trying the same operation again may succeed: network faults, server
    /// errors, throttling and bodies cut short, but not a 404 or a digest mismatch.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { retryable, .. } => *retryable,
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            RegistryError::Incomplete { .. } => true,
            _ => false,
        }
    }

    /// The server's requested wait before the next try (429/503 `Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A transport fault (a reqwest error, or a blob body that stopped moving).
    pub(crate) fn transport(what: &str, err: impl TransportFault) -> RegistryError {
        err.into_registry_error(what)
    }

    /// Whether the registry refused the credentials (or wants some and has none):
    /// nothing else on it can succeed in this run.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            RegistryError::Auth { .. } | RegistryError::AuthFailedEarlier { .. }
        )
    }

    /// Whether the registry answered a TLS handshake in plain HTTP.
    pub fn is_plain_http_answer(&self) -> bool {
        matches!(self, RegistryError::Transport { detail, .. } if detail.contains(plain_http_hint()))
    }
}

/// Something that failed on the wire, turned into a [`RegistryError::Transport`].
pub trait TransportFault {
    fn into_registry_error(self, what: &str) -> RegistryError;
}

impl TransportFault for reqwest::Error {
    fn into_registry_error(self, what: &str) -> RegistryError {
        let mut detail = describe_reqwest(&self);
        if self.is_timeout() && !self.is_connect() {
            detail.push_str(crate::i18n::t(
                " (no complete answer in time: see --response-timeout and --read-timeout)",
                " (未能及时收到完整响应: 参见 --response-timeout 和 --read-timeout)",
            ));
        }
        // An untrusted certificate stays untrusted, and a registry that speaks plain
        // HTTP will not start speaking TLS: trying again only delays the answer.
        let retryable = !self.is_redirect()
            && !self.is_builder()
            && !detail.contains(ca_hint())
            && !detail.contains(plain_http_hint());
        RegistryError::Transport {
            what: what.to_string(),
            detail,
            retryable,
        }
    }
}

impl TransportFault for super::limits::BodyError {
    fn into_registry_error(self, what: &str) -> RegistryError {
        match self {
            super::limits::BodyError::Http(e) => e.into_registry_error(what),
            slow @ super::limits::BodyError::TooSlow { .. } => RegistryError::Transport {
                what: what.to_string(),
                detail: slow.to_string(),
                // A slow patch of a real link may pass; a drip is bounded by the retries.
                retryable: true,
            },
        }
    }
}

/// What a registry said, made safe to print: terminal escape sequences and other
/// control characters removed ([`crate::text::sanitize`]), one line, cut at `max`
/// characters.
pub fn clean_text(text: &str, max: usize) -> String {
    let clean = crate::text::sanitize(text);
    let clean = clean.trim();
    match clean.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", clean.get(..cut).unwrap_or(clean)),
        None => clean.to_string(),
    }
}

fn plain_http_hint() -> &'static str {
    crate::i18n::t(
        " — the registry answers in plain HTTP, not HTTPS: give it as http://HOST (or set `insecure: true` for it in cfg.yaml)",
        " — 该仓库使用明文 HTTP 而不是 HTTPS: 请写成 http://主机 (或在 cfg.yaml 中为它设置 `insecure: true`)",
    )
}

fn ca_hint() -> &'static str {
    crate::i18n::t(
        " — the registry's TLS certificate is not trusted; give its CA with `ca:` or set `insecure: true` for this registry",
        " — 该仓库的 TLS 证书不受信任; 请用 `ca:` 给出它的 CA, 或为该仓库设置 `insecure: true`",
    )
}

/// A one-line reason for a reqwest error, with its causes, pointing at the cfg keys
/// when TLS verification fails. URLs carry no credentials, so they may be shown.
pub(crate) fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    let mut out = parts.join(": ");
    if err.is_redirect() {
        out.push_str(crate::i18n::t(
            " (redirect loop or too many redirects)",
            " (重定向循环或重定向次数过多)",
        ));
    }
    let lower = out.to_lowercase();
    // rustls, when a plain-HTTP server answers its ClientHello: "received corrupt
    // message of type InvalidContentType".
    let plain_http = lower.contains("invalidcontenttype");
    if crate::i18n::is_chinese() {
        // The library's own words stay, for searching; a Chinese reading goes first.
        let reading = if lower.contains("connection refused") {
            "连接被拒绝"
        } else if err.is_timeout() {
            "请求超时"
        } else if lower.contains("dns error") || lower.contains("failed to lookup") {
            "无法解析主机名"
        } else if err.is_connect() {
            "无法连接"
        } else if err.is_body() || err.is_decode() {
            "读取响应出错"
        } else {
            "请求出错"
        };
        out = format!("{reading} ({out})");
    }
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("invalid peer")
    {
        out.push_str(ca_hint());
    }
    if plain_http {
        out.push_str(plain_http_hint());
    }
    clean_text(&out, 2000)
}
