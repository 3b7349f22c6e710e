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

    pub(crate) fn transport(what: &str, err: reqwest::Error) -> RegistryError {
        let detail = describe_reqwest(&err);
        // An untrusted certificate stays untrusted: trying again only delays the answer.
        let retryable = !err.is_redirect() && !err.is_builder() && !detail.contains(ca_hint());
        RegistryError::Transport {
            what: what.to_string(),
            detail,
            retryable,
        }
    }
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
    out
}
