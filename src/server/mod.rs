//! The HTTP server stack that `serve`, the sync daemon (`sync --listen`) and later
//! `ferry ui` share: an axum [`Router`] behind an accept loop that holds against
//! hostile clients.
//!
//! Every request a client can send is bounded in memory and time: the request head
//! may be at most [`Limits::max_header_bytes`] (hyper answers `431` past it), it must
//! arrive within [`Limits::header_timeout`] (also the keep-alive idle limit between
//! requests), a connection that moves no byte either way for
//! [`Limits::idle_timeout`] is closed (a client that stops reading a blob), and at
//! most [`Limits::max_connections`] are served at once: when all are taken, the
//! connection idle longest (no request in service) is closed to make room for a
//! new client, so idle keep-alive connections cannot lock clients out; with none
//! idle, a busy one whose client has kept the server waiting for 10 s (a slow
//! reader, or a request body dripped in) is; with every connection busy and
//! flowing, new clients wait in the kernel's backlog. Running out of file descriptors (EMFILE) slows accepting down
//! instead of ending the process. Anything that is not HTTP, a TLS ClientHello on a
//! plain port included, gets a `400` answer, so docker's https-then-http fallback
//! works; a plain-HTTP request to a TLS port gets a `400` too.
//!
//! Use: build a [`Router`] (merge several with `Router::merge`), [`Server::bind`],
//! then [`Server::run`] until a cancellation token fires.

mod accept;
mod idle;
mod pool;
pub mod tls;

use crate::engine::report::Reporter;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use idle::IdleTimeout;

/// What one client may cost the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; past it the one idle longest (else one whose
    /// client stalls its answer) is closed for a new client, or the client waits
    /// while all are busy.
    pub max_connections: usize,
    /// The request line and headers must arrive within this, measured from the
    /// first byte awaited (so it also closes idle keep-alive connections).
    pub header_timeout: Duration,
    /// A connection where no byte moved either way for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) read; `431` past it.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{}", crate::tr!("cannot listen on {}: {}", "无法监听 {}: {}", .addr, crate::i18n::io_error(.source)))]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// A bound listener with its limits and, optionally, TLS.
pub struct Server {
    listener: TcpListener,
    limits: Arc<Limits>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one).
    pub async fn bind(
        addr: &str,
        limits: Limits,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Server {
            listener,
            limits: Arc::new(limits),
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `http://ADDR` or `https://ADDR`, for messages.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.local_addr() {
            Ok(a) => format!("{scheme}://{a}"),
            Err(_) => format!("{scheme}://?"),
        }
    }

    /// Serves `app` until `cancel` fires; connections still open then are dropped.
    pub async fn run(self, app: Router, reporter: Reporter, cancel: CancellationToken) {
        accept::run(self.listener, app, self.limits, self.tls, reporter, cancel).await
    }
}

/// A registry-style JSON error (`{"errors":[{"code","message"}]}`), which docker,
/// skopeo and containerd all print; used by every route of the stack.
pub fn error_response(
    status: axum::http::StatusCode,
    code: &str,
    message: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
