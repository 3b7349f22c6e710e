//! The accept loop: at most `max_connections` at once, EMFILE survived, one task per
//! connection, TLS optional.

use super::{IdleTimeout, Limits};
use crate::engine::report::Reporter;
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long to wait before accepting again after a failed accept, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// One warning per this long while accepting keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    reporter: Reporter,
    cancel: CancellationToken,
) {
    // A permit per connection, taken before accept(): past the cap, clients wait in
    // the kernel's backlog instead of costing a file descriptor and a task here.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = Duration::ZERO;
    let mut warned: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                tokio::spawn(connection(
                    stream,
                    app.clone(),
                    limits.clone(),
                    tls.clone(),
                    permit,
                ));
            }
            // The client gave up before we took it: nothing wrong here.
            Err(e) if per_connection(&e) => {}
            // EMFILE, ENFILE, ENOBUFS...: the connection stays in the backlog; wait
            // for descriptors to be freed rather than spin or exit.
            Err(e) => {
                drop(permit);
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    warned = Some(Instant::now());
                    reporter.warn(&crate::tr!(
                        "cannot accept connections: {}; trying again",
                        "无法接受连接: {}; 稍后重试",
                        crate::i18n::io_error(&e)
                    ));
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// One client, from its first byte to its last; the permit goes back when it ends.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Arc<Limits>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        let _ = http1(IdleTimeout::new(stream, limits.idle_timeout), app, &limits).await;
        return;
    };
    // A TLS record starts with 0x16 (handshake); anything else is most likely plain
    // HTTP, which gets a plain answer saying so (as Go's servers do).
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            not_tls(IdleTimeout::new(stream, limits.idle_timeout)).await;
            return;
        }
        _ => return,
    }
    let io = IdleTimeout::new(stream, limits.idle_timeout);
    let Ok(Ok(tls_stream)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await
    else {
        return;
    };
    let _ = http1(tls_stream, app, &limits).await;
}

/// HTTP/1.1 over `io` with the head limits; hyper answers a head it cannot parse
/// (garbage, a TLS ClientHello) with `400` and one too large with `431`.
async fn http1<I>(io: I, app: Router, limits: &Limits) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await
}

/// The answer to plain HTTP on the TLS port.
async fn not_tls<I: AsyncRead + AsyncWrite + Unpin>(mut io: I) {
    // Read what the client sent (bounded), so closing does not reset the
    // connection before the answer is read.
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), io.read(&mut buf)).await;
    let body = "Client sent an HTTP request to an HTTPS server.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(answer.as_bytes()).await;
    let _ = io.shutdown().await;
}
