//! A fault-injecting HTTP/1.1 reverse proxy in front of a real test registry.
//!
//! [`Proxy::start`] binds a free loopback port and forwards every request,
//! unchanged, to the upstream registry (one upstream connection per request).
//! The `Host` header is kept as the proxy's own address, so the upload
//! `Location` URLs the registry builds point back at the proxy. Every answer
//! carries `Connection: close`: one request per client connection keeps the
//! proxy simple and makes every request visible to the fault counter.
//!
//! Request bodies framed by `Content-Length` or `Transfer-Encoding: chunked`
//! are read whole and sent upstream with a `Content-Length` (test blobs are a
//! few MB at most); `Expect: 100-continue` is answered by the proxy.
//!
//! Faults ([`Faults`]) are deterministic by a 1-based request counter shared
//! by all connections: every k-th request answered with 503, every m-th
//! response body cut halfway (headers announce the full `Content-Length`,
//! then half the body, then the connection closes) or stalled halfway (the
//! connection stays open and silent), every l-th answer lost after the
//! registry acted on the request, every j-th response delayed, response
//! bodies throttled to N bytes/s in total, one blob served with wrong bytes,
//! and hostile answers for the manifests of chosen repositories
//! ([`Hostile`]). Besides the schedule: the first requests held (a hung
//! registry), chosen repositories refused with 403, blob GETs redirected to
//! another host, `Range` ignored, and bearer-token auth with short-lived tokens
//! put in front of an anonymous registry. See [`Faults`] for each knob. Faults can be changed while the proxy runs
//! ([`Proxy::set_faults`]) so that a rerun of the same command (same
//! references, same proxy port) can go through without them.
//!
//! [`ProxyStats`] counts what was served, notably the body bytes of
//! `GET /v2/<name>/blobs/<digest>` so tests can compare download volumes.
//!
//! The proxy runs on its own threads and stops on drop.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the proxy answers, instead of the registry, for any manifest request
/// (GET or HEAD) of a repository given to [`Faults::hostile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// 200 with a 5 MiB body, announced by `Content-Length`.
    TooLarge,
    /// 200 with a 5 MiB body sent chunked (no `Content-Length`), so only
    /// counting the bytes read can catch it.
    TooLargeChunked,
    /// 200, manifest content type, body that is not JSON (cut-off object).
    MalformedJson,
    /// 200, a well-formed manifest with media type
    /// [`Hostile::UNKNOWN_MEDIA_TYPE`] (in the JSON and `Content-Type`).
    UnknownMediaType,
    /// 302 with `Location` pointing at the same URL, forever.
    RedirectLoop,
    /// The registry's real answer, with a `Docker-Content-Digest` header
    /// naming other bytes ([`Hostile::WRONG_DIGEST`]).
    DigestHeaderMismatch,
}

impl Hostile {
    pub const UNKNOWN_MEDIA_TYPE: &'static str = "application/vnd.example.ferry-test.unknown+json";
    /// The digest [`Hostile::DigestHeaderMismatch`] claims (of the empty string).
    pub const WRONG_DIGEST: &'static str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// Body size of [`Hostile::TooLarge`] and [`Hostile::TooLargeChunked`].
    pub const HUGE_BYTES: usize = 5 * 1024 * 1024;
}

/// Fault configuration; `Faults::default()` forwards everything untouched.
/// Counters are 1-based: `unavailable_every = 4` fails requests 4, 8, 12...
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer every k-th request with 503 (0: never). The request is not
    /// forwarded (its body is read and dropped).
    pub unavailable_every: u64,
    /// When set, every other injected 503 (the 1st, 3rd, ... since start) carries
    /// `Retry-After: <secs>`.
    pub retry_after: Option<u32>,
    /// Cut the body of every m-th response (0: never): only 2xx answers to a
    /// GET with at least 2 body bytes qualify.
    pub cut_every: u64,
    /// Stall every s-th response body (0: never): like a cut, but after half
    /// the body the connection stays open and silent for `stall` (or until
    /// the client gives up or the proxy stops). Same requests qualify.
    pub stall_every: u64,
    pub stall: Duration,
    /// Lose the answer of every l-th request (0: never): the request is
    /// forwarded and the registry acts on it, then the client's connection
    /// is closed without a response (a reply lost on the way back).
    pub lose_response_every: u64,
    /// Delay every j-th response by `delay` before its headers (0: never).
    pub delay_every: u64,
    pub delay: Duration,
    /// Hold the answers to the first `delay_first` requests (counted since
    /// start) for `first_delay` before their headers: a registry that hangs.
    pub delay_first: u64,
    pub first_delay: Duration,
    /// Limit response bodies and `Content-Length` request bodies, all
    /// connections together, to this many bytes/s.
    pub throttle: Option<u64>,
    /// Serve this blob (`sha256:...`) with every byte inverted (same length)
    /// on every `GET /v2/*/blobs/<digest>`, whatever the range.
    pub corrupt_blob: Option<String>,
    /// Drop the `Range` header of blob GETs, as a registry or CDN without
    /// range support would: the answer is the whole blob with 200.
    pub ignore_range: bool,
    /// Answer blob GETs with `307 Temporary Redirect` to the same path on
    /// this `host:port` (as registries redirect to object storage or a CDN).
    pub redirect_blobs_to: Option<String>,
    /// Answer every request under `/v2/<repository>/` with
    /// `403 DENIED` (a repository this client may not touch).
    pub deny: Vec<String>,
    /// Repository name → hostile answer to its manifest requests.
    pub hostile: HashMap<String, Hostile>,
    /// When set, a request (same method and target) that already drew this
    /// many faults (503 or cut) in a row is let through untouched, so that
    /// a client retrying the same operation is not hit by the schedule over
    /// and over (periodic faults and a fixed number of concurrent clients can
    /// otherwise resonate). `None`: the schedule alone decides.
    pub max_faults_in_a_row: Option<u32>,
    /// Refuse PUT and PATCH requests whose body is larger than this with
    /// `413 Request Entity Too Large`, as nginx's `client_max_body_size`
    /// in front of a registry does. The request is not forwarded.
    pub max_request_body: Option<usize>,
    /// With `max_request_body`: refuse by the announced `Content-Length`, before
    /// the body is read, as nginx does (it answers `413` from the head, then reads
    /// and drops the body). The answer goes out first, so the client may see it
    /// before it has sent its whole body.
    pub refuse_by_length: bool,
    /// Put bearer-token auth in front of the (anonymous) registry, as a token
    /// server does: `GET /token` (answered by the proxy, which is the realm)
    /// issues a token with `expires_in` of these whole seconds, and every
    /// `/v2/` request needs a token issued less than that long ago, else `401`
    /// with a `Bearer` challenge (counted in [`ProxyStats::unauthorized`]).
    pub bearer_tokens: Option<Duration>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    pub fn unavailable_every(mut self, k: u64) -> Faults {
        self.unavailable_every = k;
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Faults {
        self.retry_after = Some(secs);
        self
    }

    pub fn cut_every(mut self, m: u64) -> Faults {
        self.cut_every = m;
        self
    }

    pub fn stall_every(mut self, k: u64, stall: Duration) -> Faults {
        self.stall_every = k;
        self.stall = stall;
        self
    }

    pub fn lose_response_every(mut self, l: u64) -> Faults {
        self.lose_response_every = l;
        self
    }

    pub fn delay_every(mut self, j: u64, delay: Duration) -> Faults {
        self.delay_every = j;
        self.delay = delay;
        self
    }

    pub fn delay_first(mut self, n: u64, delay: Duration) -> Faults {
        self.delay_first = n;
        self.first_delay = delay;
        self
    }

    pub fn throttle(mut self, bytes_per_sec: u64) -> Faults {
        self.throttle = Some(bytes_per_sec);
        self
    }

    pub fn corrupt_blob(mut self, digest: &str) -> Faults {
        self.corrupt_blob = Some(digest.to_string());
        self
    }

    pub fn max_faults_in_a_row(mut self, n: u32) -> Faults {
        self.max_faults_in_a_row = Some(n);
        self
    }

    pub fn deny(mut self, repository: &str) -> Faults {
        self.deny.push(repository.to_string());
        self
    }

    pub fn ignore_range(mut self) -> Faults {
        self.ignore_range = true;
        self
    }

    pub fn redirect_blobs_to(mut self, host: &str) -> Faults {
        self.redirect_blobs_to = Some(host.to_string());
        self
    }

    pub fn hostile(mut self, repository: &str, how: Hostile) -> Faults {
        self.hostile.insert(repository.to_string(), how);
        self
    }

    pub fn bearer_tokens(mut self, lifetime: Duration) -> Faults {
        self.bearer_tokens = Some(lifetime);
        self
    }

    pub fn max_request_body(mut self, bytes: usize) -> Faults {
        self.max_request_body = Some(bytes);
        self
    }

    /// See [`Faults::refuse_by_length`].
    pub fn refuse_by_length(mut self) -> Faults {
        self.refuse_by_length = true;
        self
    }
}

/// Counters of what the proxy served since start (or [`Proxy::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received (every one, faulted or not).
    pub requests: u64,
    /// `GET /v2/<name>/blobs/<digest>` requests received.
    pub blob_gets: u64,
    /// ...of which carried a `Range` header.
    pub blob_range_gets: u64,
    /// Response body bytes written to clients for blob GETs (cut bodies count
    /// what was sent). Counted just before each write, so a client that has
    /// read a body always finds it counted.
    pub blob_bytes: u64,
    /// Request body bytes received (uploads), as they arrive.
    pub request_body_bytes: u64,
    /// Blob GETs redirected ([`Faults::redirect_blobs_to`]).
    pub redirects: u64,
    /// Requests answered 403 ([`Faults::deny`]).
    pub denied: u64,
    /// Injected 503 answers.
    pub unavailable: u64,
    /// Response bodies cut short (all kinds).
    pub cuts: u64,
    /// ...of which were blob GETs.
    pub blob_cuts: u64,
    /// Response bodies stalled halfway.
    pub stalls: u64,
    /// Answers lost after the registry acted on the request.
    pub lost: u64,
    /// Delayed responses.
    pub delays: u64,
    /// Blob responses served with wrong bytes.
    pub corrupted: u64,
    /// Hostile manifest answers.
    pub hostile: u64,
    /// `401` answers for a missing or expired token ([`Faults::bearer_tokens`]).
    pub unauthorized: u64,
    /// Tokens issued ([`Faults::bearer_tokens`]).
    pub tokens: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    blob_gets: AtomicU64,
    blob_range_gets: AtomicU64,
    blob_bytes: AtomicU64,
    request_body_bytes: AtomicU64,
    redirects: AtomicU64,
    denied: AtomicU64,
    unavailable: AtomicU64,
    cuts: AtomicU64,
    blob_cuts: AtomicU64,
    stalls: AtomicU64,
    lost: AtomicU64,
    delays: AtomicU64,
    corrupted: AtomicU64,
    hostile: AtomicU64,
    unauthorized: AtomicU64,
    tokens: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    own: SocketAddr,
    faults: Mutex<Faults>,
    /// Request counter driving the faults (never reset: keeps the schedule
    /// deterministic across `reset_stats`).
    sequence: AtomicU64,
    /// Injected 503s so far, for alternating `Retry-After` (never reset).
    unavailable_sequence: AtomicU64,
    /// Bumped by `reset_stats`: requests that started before do not count
    /// into the fresh counters (e.g. a dying connection of an earlier run).
    generation: AtomicU64,
    /// `"METHOD target"` → faults it drew in a row (see `max_faults_in_a_row`).
    streaks: Mutex<HashMap<String, u32>>,
    counters: Counters,
    /// Earliest time the next throttled chunk may go out.
    pacer: Mutex<Instant>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// Connections being handled (a request may still be on its way upstream).
    active: AtomicU64,
    /// Tokens issued ([`Faults::bearer_tokens`]) and when they expire.
    tokens: Mutex<HashMap<String, Instant>>,
}

/// A running proxy; see the module docs. Stops (and frees its port) on drop.
pub struct Proxy {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// Chunk size for response bodies (smaller when throttled, for smooth pacing).
const CHUNK: usize = 64 * 1024;
const THROTTLED_CHUNK: usize = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

impl Proxy {
    /// Start a proxy forwarding to `upstream` (`"127.0.0.1:PORT"`, e.g.
    /// [`super::Registry::host`]) with no faults.
    pub fn start(upstream: &str) -> Proxy {
        Self::start_with(upstream, Faults::none())
    }

    pub fn start_with(upstream: &str, faults: Faults) -> Proxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?} is not IP:PORT: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding proxy port");
        let own = listener.local_addr().expect("proxy local_addr");
        let shared = Arc::new(Shared {
            upstream,
            own,
            faults: Mutex::new(faults),
            sequence: AtomicU64::new(0),
            unavailable_sequence: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            streaks: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            pacer: Mutex::new(Instant::now()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            active: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("proxy-{}", own.port()))
            .spawn(move || accept_loop(listener, s))
            .expect("spawning proxy thread");
        Proxy {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `"127.0.0.1:PORT"` of the proxy.
    pub fn host(&self) -> String {
        self.shared.own.to_string()
    }

    pub fn port(&self) -> u16 {
        self.shared.own.port()
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.own)
    }

    /// `"127.0.0.1:PORT/repo:tag"` through the proxy.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// Replace the fault configuration (takes effect for the next request).
    /// Waits until no connection is being handled: after a client is killed, a
    /// request the proxy had fully received may still be reaching the registry.
    pub fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.shared.active.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "proxy still busy after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        ProxyStats {
            requests: g(&c.requests),
            blob_gets: g(&c.blob_gets),
            blob_range_gets: g(&c.blob_range_gets),
            blob_bytes: g(&c.blob_bytes),
            request_body_bytes: g(&c.request_body_bytes),
            redirects: g(&c.redirects),
            denied: g(&c.denied),
            unavailable: g(&c.unavailable),
            cuts: g(&c.cuts),
            blob_cuts: g(&c.blob_cuts),
            stalls: g(&c.stalls),
            lost: g(&c.lost),
            delays: g(&c.delays),
            corrupted: g(&c.corrupted),
            hostile: g(&c.hostile),
            unauthorized: g(&c.unauthorized),
            tokens: g(&c.tokens),
        }
    }

    /// Zero the counters of [`Proxy::stats`] (the fault schedule goes on).
    pub fn reset_stats(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        let c = &self.shared.counters;
        for a in [
            &c.requests,
            &c.blob_gets,
            &c.blob_range_gets,
            &c.blob_bytes,
            &c.request_body_bytes,
            &c.redirects,
            &c.denied,
            &c.unavailable,
            &c.cuts,
            &c.blob_cuts,
            &c.stalls,
            &c.lost,
            &c.delays,
            &c.corrupted,
            &c.hostile,
            &c.unauthorized,
            &c.tokens,
        ] {
            a.store(0, Ordering::SeqCst);
        }
    }

    /// One line per request: `"#N METHOD TARGET [Range: R] -> STATUS [fault]"`
    /// (the Range part only when the request had one).
    pub fn log(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.shared.own, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let s = shared.clone();
        s.active.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || {
                if let Err(e) = handle(conn, &s) {
                    lock(&s.log).push(format!("connection ended with an error: {e}"));
                }
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// `(repository, digest)` of `GET /v2/<name>/blobs/<digest>`.
    fn blob_get(&self) -> Option<(&str, &str)> {
        if self.method != "GET" {
            return None;
        }
        let rest = self.path().strip_prefix("/v2/")?;
        let (repo, digest) = rest.rsplit_once("/blobs/")?;
        if digest.contains('/') || repo.ends_with("/blobs") || digest == "uploads" {
            return None;
        }
        Some((repo, digest))
    }

    /// Repository of `/v2/<name>/manifests/<reference>`.
    fn manifest_repo(&self) -> Option<&str> {
        let rest = self.path().strip_prefix("/v2/")?;
        let (repo, reference) = rest.rsplit_once("/manifests/")?;
        (!reference.contains('/')).then_some(repo)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers that describe one connection or one framing, not the message.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-length",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads the head of a message (start line + headers) up to the blank line.
/// `None` when the peer closed before sending anything.
/// A message head: the start line and the headers in order.
type Head = (String, Vec<(String, String)>);

fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    let mut total = start.len();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in headers",
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::other("head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((start.trim_end().to_string(), headers)))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false)
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    header(headers, "content-length").and_then(|v| v.trim().parse().ok())
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in chunk size",
            ));
        }
        let size_text = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(out);
                }
            }
        }
        let start = out.len();
        out.resize(start + size, 0);
        r.read_exact(&mut out[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

fn handle(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = client.set_nodelay(true);
    let mut writer = client.try_clone()?;
    let mut reader = BufReader::new(client);
    // A TLS ClientHello (a client probing for HTTPS first, as skopeo does
    // with --tls-verify=false): this is a plain HTTP server, so hang up.
    if reader.fill_buf()?.first() == Some(&0x16) {
        return Ok(());
    }
    let generation = shared.generation.load(Ordering::SeqCst);
    let Some((start, headers)) = read_head(&mut reader)? else {
        return Ok(());
    };
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    if header(&headers, "expect")
        .map(|v| v.eq_ignore_ascii_case("100-continue"))
        .unwrap_or(false)
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let early = lock(&shared.faults).clone();
    if let (Some(max), true) = (early.max_request_body, early.refuse_by_length) {
        let len = content_length(&headers).unwrap_or(0);
        if matches!(method.as_str(), "PUT" | "PATCH") && len > max as u64 {
            let n = shared.sequence.fetch_add(1, Ordering::SeqCst) + 1;
            shared.counters.requests.fetch_add(1, Ordering::SeqCst);
            lock(&shared.log).push(format!(
                "#{n} {method} {target} -> 413 too large ({len} bytes announced)"
            ));
            let body = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>";
            let head = format!(
                "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            writer.write_all(head.as_bytes())?;
            writer.write_all(body)?;
            let _ = writer.shutdown(Shutdown::Write);
            // Lingering close: what the client still sends is read and dropped.
            let _ = io::copy(&mut reader.take(len), &mut io::sink());
            return Ok(());
        }
    }
    let body = if is_chunked(&headers) {
        read_chunked(&mut reader)?
    } else if let Some(n) = content_length(&headers) {
        // Read in chunks, under the throttle when there is one, counting as
        // the bytes arrive (a test may interrupt an upload halfway).
        let mut b = vec![0u8; n as usize];
        let mut got = 0;
        while got < b.len() {
            let throttle = lock(&shared.faults).throttle;
            let size = if throttle.is_some() {
                THROTTLED_CHUNK
            } else {
                CHUNK
            };
            let end = (got + size).min(b.len());
            if let Some(rate) = throttle {
                pace(shared, end - got, rate);
            }
            reader.read_exact(&mut b[got..end])?;
            if shared.generation.load(Ordering::SeqCst) == generation {
                shared
                    .counters
                    .request_body_bytes
                    .fetch_add((end - got) as u64, Ordering::SeqCst);
            }
            got = end;
        }
        b
    } else {
        Vec::new()
    };
    let mut req = Request {
        method,
        target,
        headers,
        body,
    };

    let n = shared.sequence.fetch_add(1, Ordering::SeqCst) + 1;
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::SeqCst);
    let blob = req.blob_get().map(|(_, d)| d.to_string());
    if blob.is_some() {
        c.blob_gets.fetch_add(1, Ordering::SeqCst);
        if req.header("range").is_some() {
            c.blob_range_gets.fetch_add(1, Ordering::SeqCst);
        }
    }
    let faults = lock(&shared.faults).clone();
    let key = format!("{} {}", req.method, req.target);
    let spared = faults
        .max_faults_in_a_row
        .is_some_and(|max| lock(&shared.streaks).get(&key).copied().unwrap_or(0) >= max);
    let scheduled = |k: u64| k > 0 && n.is_multiple_of(k);
    let every = |k: u64| scheduled(k) && !spared;
    let streak = |faulted: bool| {
        let mut streaks = lock(&shared.streaks);
        if faulted {
            *streaks.entry(key.clone()).or_default() += 1;
        } else {
            streaks.remove(&key);
        }
    };
    // A Range asked for is part of the line: tests check where a resumed
    // download started.
    let range = req
        .header("range")
        .map(|r| format!(" [Range: {r}]"))
        .unwrap_or_default();
    let note = |s: String| {
        lock(&shared.log).push(format!("#{n} {} {}{range} -> {s}", req.method, req.target))
    };

    if let Some(lifetime) = faults.bearer_tokens {
        if bearer_auth(&mut writer, &req, lifetime, shared, &note)? {
            return Ok(());
        }
        // The registry behind is anonymous.
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    }

    // Hostile manifests: answered by the proxy itself.
    let hostile = req
        .manifest_repo()
        .and_then(|r| faults.hostile.get(r).copied());
    if let Some(how) = hostile.filter(|h| *h != Hostile::DigestHeaderMismatch) {
        c.hostile.fetch_add(1, Ordering::SeqCst);
        note(format!("hostile {how:?}"));
        let _ = answer_hostile(&mut writer, &req, how, shared);
        let _ = writer.shutdown(Shutdown::Both);
        return Ok(());
    }

    if faults.deny.iter().any(|r| {
        req.path()
            .strip_prefix("/v2/")
            .and_then(|p| p.strip_prefix(r.as_str()))
            .is_some_and(|rest| rest.starts_with('/'))
    }) {
        c.denied.fetch_add(1, Ordering::SeqCst);
        note("403 denied".into());
        let body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        let head = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            writer.write_all(body)?;
        }
        let _ = writer.shutdown(Shutdown::Write);
        return Ok(());
    }

    if faults
        .max_request_body
        .is_some_and(|max| matches!(req.method.as_str(), "PUT" | "PATCH") && req.body.len() > max)
    {
        note(format!("413 too large ({} bytes)", req.body.len()));
        let body = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>";
        let head = format!(
            "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(body)?;
        let _ = writer.shutdown(Shutdown::Write);
        return Ok(());
    }

    if every(faults.unavailable_every) {
        c.unavailable.fetch_add(1, Ordering::SeqCst);
        let nth = shared.unavailable_sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let retry_after = faults.retry_after.filter(|_| nth % 2 == 1);
        streak(true);
        note(format!("503 injected (retry-after {retry_after:?})"));
        let body =
            br#"{"errors":[{"code":"UNAVAILABLE","message":"injected by the ferry test proxy"}]}"#;
        let mut head = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(s) = retry_after {
            head.push_str(&format!("Retry-After: {s}\r\n"));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            writer.write_all(body)?;
        }
        writer.flush()?;
        let _ = writer.shutdown(Shutdown::Both);
        return Ok(());
    }

    if let (Some(to), Some(_)) = (&faults.redirect_blobs_to, &blob) {
        c.redirects.fetch_add(1, Ordering::SeqCst);
        note(format!("307 to {to}"));
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{to}{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            req.target
        );
        writer.write_all(head.as_bytes())?;
        let _ = writer.shutdown(Shutdown::Write);
        return Ok(());
    }
    if faults.ignore_range && blob.is_some() {
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
    }

    // Forward.
    let upstream = match forward(&req, shared) {
        Ok(u) => u,
        Err(e) => {
            note(format!("502 (upstream: {e})"));
            let msg = format!("proxy: upstream failed: {e}");
            let head = format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                msg.len()
            );
            writer.write_all(head.as_bytes())?;
            writer.write_all(msg.as_bytes())?;
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    };
    let Upstream {
        status,
        status_line,
        headers: mut up_headers,
        body: mut up_body,
        body_len,
    } = upstream;
    if hostile == Some(Hostile::DigestHeaderMismatch) {
        c.hostile.fetch_add(1, Ordering::SeqCst);
        up_headers.retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
        up_headers.push(("Docker-Content-Digest".into(), Hostile::WRONG_DIGEST.into()));
    }
    if every(faults.lose_response_every) {
        c.lost.fetch_add(1, Ordering::SeqCst);
        streak(true);
        note(format!("{status} lost"));
        let _ = writer.shutdown(Shutdown::Both);
        return Ok(());
    }

    let delay = if n <= faults.delay_first {
        Some(faults.first_delay)
    } else if scheduled(faults.delay_every) {
        Some(faults.delay)
    } else {
        None
    };
    if let Some(d) = delay {
        c.delays.fetch_add(1, Ordering::SeqCst);
        note(format!("delayed {d:?}"));
        let until = Instant::now() + d;
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            thread::sleep(
                Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
    let has_body =
        req.method != "HEAD" && !(100..200).contains(&status) && status != 204 && status != 304;
    let cuttable = has_body && req.method == "GET" && (200..300).contains(&status) && body_len >= 2;
    let stall = cuttable && every(faults.stall_every);
    let cut = cuttable && !stall && every(faults.cut_every);
    let corrupt = has_body
        && (200..300).contains(&status)
        && blob.is_some()
        && blob.as_deref() == faults.corrupt_blob.as_deref();
    streak(cut || stall);
    note(format!(
        "{status}{}{}",
        if cut {
            " cut"
        } else if stall {
            " stalled"
        } else {
            ""
        },
        if corrupt { " corrupted" } else { "" }
    ));

    let mut head = format!("{status_line}\r\n");
    for (k, v) in &up_headers {
        // A HEAD answer keeps the registry's Content-Length (it has no body).
        let keep_length = !has_body && k.eq_ignore_ascii_case("content-length");
        if hop_by_hop(k) && !keep_length {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if has_body {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    writer.write_all(head.as_bytes())?;

    if has_body {
        let limit = if cut || stall { body_len / 2 } else { body_len };
        if stall {
            c.stalls.fetch_add(1, Ordering::SeqCst);
        }
        if cut {
            c.cuts.fetch_add(1, Ordering::SeqCst);
            if blob.is_some() {
                c.blob_cuts.fetch_add(1, Ordering::SeqCst);
            }
        }
        if corrupt {
            c.corrupted.fetch_add(1, Ordering::SeqCst);
        }
        let mut sent = 0u64;
        let mut buf = vec![0u8; CHUNK];
        while sent < limit {
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            // Re-read the throttle each chunk so that lifting it takes effect
            // on responses already streaming.
            let throttle = lock(&shared.faults).throttle;
            let size = if throttle.is_some() {
                THROTTLED_CHUNK
            } else {
                CHUNK
            };
            let want = ((limit - sent) as usize).min(size);
            let got = up_body.read(&mut buf[..want])?;
            if got == 0 {
                break;
            }
            if corrupt {
                for b in &mut buf[..got] {
                    *b = !*b;
                }
            }
            if let Some(rate) = throttle {
                pace(shared, got, rate);
            }
            // Counted before the write: the client may see the bytes (and the
            // test read the counters) before this thread runs again.
            let counted = blob.is_some() && shared.generation.load(Ordering::SeqCst) == generation;
            if counted {
                c.blob_bytes.fetch_add(got as u64, Ordering::SeqCst);
            }
            if let Err(e) = writer.write_all(&buf[..got]) {
                if counted {
                    c.blob_bytes.fetch_sub(got as u64, Ordering::SeqCst);
                }
                return Err(e);
            }
            sent += got as u64;
        }
        if stall {
            writer.flush()?;
            let until = Instant::now() + faults.stall;
            while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    writer.flush()?;
    // Half-close first so the client reads everything sent before the end.
    let _ = writer.shutdown(Shutdown::Write);
    Ok(())
}

/// The token server and the token check of [`Faults::bearer_tokens`]. Returns
/// whether the request was answered here.
fn bearer_auth(
    w: &mut TcpStream,
    req: &Request,
    lifetime: Duration,
    shared: &Shared,
    note: &dyn Fn(String),
) -> io::Result<bool> {
    let c = &shared.counters;
    if req.path() == "/token" {
        let n = c.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("ferry-test-token-{n}");
        lock(&shared.tokens).insert(token.clone(), Instant::now() + lifetime);
        note(format!("token {token}"));
        let body = format!(
            "{{\"token\":\"{token}\",\"expires_in\":{}}}",
            lifetime.as_secs()
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        w.write_all(head.as_bytes())?;
        w.write_all(body.as_bytes())?;
        let _ = w.shutdown(Shutdown::Write);
        return Ok(true);
    }
    // Only the distribution API is behind the tokens (a Harbor probe of
    // `/api/v2.0/systeminfo` is answered by the registry: 404).
    if !req.path().starts_with("/v2/") {
        return Ok(false);
    }
    let valid = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| lock(&shared.tokens).get(t).copied())
        .is_some_and(|expires| Instant::now() < expires);
    if valid {
        return Ok(false);
    }
    c.unauthorized.fetch_add(1, Ordering::SeqCst);
    note("401 no valid token".into());
    let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    let head = format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{}/token\",service=\"ferry-test\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        shared.own,
        body.len()
    );
    w.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        w.write_all(body)?;
    }
    let _ = w.shutdown(Shutdown::Write);
    Ok(true)
}

/// Waits for this chunk's turn under a global bytes/s budget.
fn pace(shared: &Shared, bytes: usize, rate: u64) {
    let at = {
        let mut next = lock(&shared.pacer);
        let now = Instant::now();
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        start
    };
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

struct Upstream {
    status: u16,
    status_line: String,
    headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
    body_len: u64,
}

fn forward(req: &Request, shared: &Shared) -> io::Result<Upstream> {
    let up = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(10))?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = up.set_nodelay(true);
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !hop_by_hop(k) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut w = up.try_clone()?;
    w.write_all(head.as_bytes())?;
    w.write_all(&req.body)?;
    w.flush()?;

    let mut r = BufReader::with_capacity(CHUNK, up);
    let (status_line, headers, status) = loop {
        let (line, headers) = read_head(&mut r)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed without answer",
            )
        })?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        if !(100..200).contains(&status) {
            break (line, headers, status);
        }
    };
    let no_body = req.method == "HEAD" || status == 204 || status == 304;
    if no_body {
        return Ok(Upstream {
            status,
            status_line,
            headers,
            body: Box::new(io::empty()),
            body_len: 0,
        });
    }
    if is_chunked(&headers) {
        let b = read_chunked(&mut r)?;
        let len = b.len() as u64;
        return Ok(Upstream {
            status,
            status_line,
            headers,
            body: Box::new(Cursor::new(b)),
            body_len: len,
        });
    }
    if let Some(len) = content_length(&headers) {
        return Ok(Upstream {
            status,
            status_line,
            headers,
            body: Box::new(r.take(len)),
            body_len: len,
        });
    }
    let mut b = Vec::new();
    r.read_to_end(&mut b)?;
    let len = b.len() as u64;
    Ok(Upstream {
        status,
        status_line,
        headers,
        body: Box::new(Cursor::new(b)),
        body_len: len,
    })
}

fn answer_hostile(
    w: &mut TcpStream,
    req: &Request,
    how: Hostile,
    shared: &Shared,
) -> io::Result<()> {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let head_only = req.method == "HEAD";
    let send = |w: &mut TcpStream, content_type: &str, body: &[u8]| -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        w.write_all(head.as_bytes())?;
        if !head_only {
            w.write_all(body)?;
        }
        w.flush()
    };
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    match how {
        Hostile::TooLarge => {
            let mut body = format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{d}\",\"size\":0}},\"layers\":[],\"annotations\":{{\"pad\":\""
            )
            .into_bytes();
            body.resize(Hostile::HUGE_BYTES - 3, b'x');
            body.extend_from_slice(b"\"}}");
            send(w, OCI_MANIFEST, &body)
        }
        Hostile::TooLargeChunked => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            w.write_all(head.as_bytes())?;
            if head_only {
                return w.flush();
            }
            let chunk = vec![b' '; CHUNK];
            let mut sent = 0;
            w.write_all(format!("{:x}\r\n{{\r\n", 1).as_bytes())?;
            while sent < Hostile::HUGE_BYTES {
                if shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                w.write_all(&chunk)?;
                w.write_all(b"\r\n")?;
                sent += chunk.len();
            }
            w.write_all(b"1\r\n}\r\n0\r\n\r\n")?;
            w.flush()
        }
        Hostile::MalformedJson => send(
            w,
            OCI_MANIFEST,
            format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"digest\":"
            )
            .as_bytes(),
        ),
        Hostile::UnknownMediaType => {
            let mt = Hostile::UNKNOWN_MEDIA_TYPE;
            send(
                w,
                mt,
                format!(
                    "{{\"schemaVersion\":2,\"mediaType\":\"{mt}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{d}\",\"size\":0}},\"layers\":[]}}"
                )
                .as_bytes(),
            )
        }
        Hostile::RedirectLoop => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{}{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                shared.own, req.target
            );
            w.write_all(head.as_bytes())?;
            w.flush()
        }
        // Forwarded with a rewritten header (see `handle`), never answered here.
        Hostile::DigestHeaderMismatch => Ok(()),
    }
}
