//! The accept loop: at most `max_connections` at once (when full, the connection
//! idle longest makes room for a new client, else one whose client stalls it),
//! EMFILE survived, one task per connection, TLS optional.

use super::pool::{Member, Pool};
use super::{IdleTimeout, Limits};
use crate::engine::report::Reporter;
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

/// How long to wait before accepting again after a failed accept, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// One warning per this long while accepting keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a connection asked to make room may take to close once nothing of it
/// is in service (a client dripping a request head is cut off after it).
const EVICT_GRACE: Duration = Duration::from_secs(1);

pub(super) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    reporter: Reporter,
    cancel: CancellationToken,
) {
    // A permit per connection. When all are taken, the accepted client waits here
    // (the next ones in the kernel's backlog) while the connection idle longest is
    // closed; with every connection busy, it waits for one to end.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let pool = Arc::new(Pool::default());
    let mut backoff = Duration::ZERO;
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                let Some(permit) = make_room(&slots, &pool, &cancel).await else {
                    return;
                };
                tokio::spawn(connection(
                    stream,
                    app.clone(),
                    limits.clone(),
                    tls.clone(),
                    pool.join(),
                    permit,
                ));
            }
            // The client gave up before we took it: nothing wrong here.
            Err(e) if per_connection(&e) => {}
            // EMFILE, ENFILE, ENOBUFS...: the connection stays in the backlog; wait
            // for descriptors to be freed rather than spin or exit.
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    warned = Some(Instant::now());
                    reporter.warn(&crate::tr!(
                        "cannot accept connections: {}; trying again",
                        "无法接受连接: {}; 稍后重试",
                        crate::i18n::io_error(&e)
                    ));
                }
                // A connection closed for room frees a descriptor too.
                pool.evict_oldest_idle();
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// A slot for a new connection: a free one, else the one an idle connection gives
/// back when asked to close (the idle longest first), else one a busy connection
/// stalled by its client gives back, else the first to end.
/// `None` once `cancel` fires.
async fn make_room(
    slots: &Arc<Semaphore>,
    pool: &Pool,
    cancel: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    loop {
        match slots.clone().try_acquire_owned() {
            Ok(p) => return Some(p),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {}
        }
        pool.evict_oldest_idle();
        tokio::select! {
            _ = cancel.cancelled() => return None,
            p = slots.clone().acquire_owned() => return p.ok(),
            // A busy connection became idle: ask again.
            _ = pool.became_idle() => {}
            // Or one may have stalled on its client since.
            _ = tokio::time::sleep(EVICT_GRACE) => {}
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
    member: Member,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let member = Arc::new(member);
    let Some(acceptor) = tls else {
        let io = IdleTimeout::new(member.watch(stream), limits.idle_timeout);
        let _ = http1(io, app, &limits, member).await;
        return;
    };
    let handshake = async {
        // A TLS record starts with 0x16 (handshake); anything else is most likely
        // plain HTTP, which gets a plain answer saying so (as Go's servers do).
        let mut first = [0u8; 1];
        match tokio::time::timeout(limits.header_timeout, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == 0x16 => {}
            Ok(Ok(1)) => {
                not_tls(IdleTimeout::new(stream, limits.idle_timeout)).await;
                return None;
            }
            _ => return None,
        }
        let io = IdleTimeout::new(member.watch(stream), limits.idle_timeout);
        match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
            Ok(Ok(tls_stream)) => Some(tls_stream),
            _ => None,
        }
    };
    // Still shaking hands counts as idle: closed at once when room is needed.
    let tls_stream = tokio::select! {
        s = handshake => s,
        _ = member.evicted() => None,
    };
    if let Some(tls_stream) = tls_stream {
        let _ = http1(tls_stream, app, &limits, member).await;
    }
}

/// HTTP/1.1 over `io` with the head limits; hyper answers a head it cannot parse
/// (garbage, a TLS ClientHello) with `400` and one too large with `431`. Asked to
/// make room, the connection closes when idle or stalled by its client, or after
/// the request in service.
async fn http1<I>(
    io: I,
    app: Router,
    limits: &Limits,
    member: Arc<Member>,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .serve_connection(hyper_util::rt::TokioIo::new(io), {
            // The connection is busy from a request's arrival until its response
            // body has been sent (or dropped).
            let inner = hyper_util::service::TowerToHyperService::new(app);
            let member = member.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = member.busy();
                let answer = hyper::service::Service::call(&inner, member.receiving(req));
                async move {
                    let response = answer.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        http_body_util::BodyExt::map_frame(body, move |frame| {
                            let _in_service = &busy;
                            frame
                        })
                    }))
                }
            })
        });
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = member.evicted() => {}
    }
    // Keep-alive off: an idle connection ends now, a request that came in first is
    // answered before it does.
    conn.as_mut().graceful_shutdown();
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = tokio::time::sleep(EVICT_GRACE) => {
                if member.can_go() {
                    return Ok(());
                }
            }
        }
    }
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
