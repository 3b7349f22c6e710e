//! The registry client against hostile and awkward registries (issues 16, 20, 21).
//! Each test performs the attack or reproduces the problem: a hostile HTTP(S)
//! server written here on loopback (one port may speak TLS and plain HTTP at
//! once), or a real registry behind the fault-injecting proxy.

use crate::common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
// The rustls that reqwest and `serve` use, re-exported by tokio-rustls.
use tokio_rustls::rustls;

// ---------------------------------------------------------------------------
// A hostile server

/// One request as the hostile server read it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    /// Arrived over TLS.
    tls: bool,
    /// The server's own address (to build redirects to itself).
    local: SocketAddr,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn query(&self, key: &str) -> Option<&str> {
        let q = self.target.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    fn has_auth(&self) -> bool {
        self.header("authorization").is_some()
    }
}

enum Reply {
    Send {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces the whole body, then sends one byte every `every`.
    Drip {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        every: Duration,
    },
}

fn send(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Reply {
    Reply::Send {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_ref().to_vec(),
    }
}

fn json(status: u16, value: serde_json::Value) -> Reply {
    send(
        status,
        &[("Content-Type", "application/json")],
        value.to_string(),
    )
}

fn unauthorized(challenge: &str) -> Reply {
    send(401, &[("WWW-Authenticate", challenge)], "")
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A loopback HTTP server answering with `handler`, one request per connection.
/// With a TLS config the same port speaks TLS (when the first byte is a TLS
/// handshake) and plain HTTP (otherwise); without, a TLS handshake is answered
/// as Go's net/http answers it (400 in plain HTTP). Stops on drop.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn plain(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
        Server::start("127.0.0.1", None, handler)
    }

    fn start(
        ip: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind((ip, 0)).expect("binding the hostile server");
        let addr = listener.local_addr().expect("local_addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Handler = Arc::new(handler);
        let (s, c, st) = (seen.clone(), connections.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (tls, handler, seen, stop) =
                    (tls.clone(), handler.clone(), s.clone(), st.clone());
                thread::spawn(move || {
                    let _ = serve(conn, tls, &handler, &seen, &stop);
                });
            }
        });
        Server {
            addr,
            seen,
            connections,
            stop,
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(
    conn: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let local = conn.local_addr()?;
    let mut first = [0u8; 1];
    if conn.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] != 0x16 {
        let mut conn = conn;
        return exchange(&mut conn, false, local, handler, seen, stop);
    }
    match tls {
        Some(cfg) => {
            let server = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
            let mut stream = rustls::StreamOwned::new(server, conn);
            let r = exchange(&mut stream, true, local, handler, seen, stop);
            stream.conn.send_close_notify();
            let _ = stream.flush();
            r
        }
        None => {
            let mut conn = conn;
            conn.write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
            )?;
            let _ = conn.shutdown(Shutdown::Write);
            Ok(())
        }
    }
}

fn exchange<S: Read + Write>(
    stream: &mut S,
    tls: bool,
    local: SocketAddr,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let req = {
        let mut r = BufReader::new(&mut *stream);
        let mut start = String::new();
        if r.read_line(&mut start)? == 0 {
            return Ok(());
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut parts = start.split_whitespace();
        let req = Seen {
            method: parts.next().unwrap_or("").to_string(),
            target: parts.next().unwrap_or("").to_string(),
            headers,
            tls,
            local,
        };
        let len: u64 = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        std::io::copy(&mut (&mut r).take(len), &mut std::io::sink())?;
        req
    };
    seen.lock().unwrap().push(req.clone());
    let head_only = req.method == "HEAD";
    match handler(&req) {
        Reply::Send {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} Hostile\r\n");
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            stream.write_all(head.as_bytes())?;
            if !head_only {
                stream.write_all(&body)?;
            }
            stream.flush()
        }
        Reply::Drip {
            headers,
            body,
            every,
        } => {
            let mut head = "HTTP/1.1 200 OK\r\n".to_string();
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            for b in &body {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(every);
                stream.write_all(&[*b])?;
                stream.flush()?;
            }
            Ok(())
        }
    }
}

/// A rustls server config for `127.0.0.1`/`localhost`, and the CA file to trust.
fn tls_config(dir: &Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::common::tls::make_ca_and_leaf(dir);
    let certs = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .expect("leaf.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("leaf certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).expect("leaf.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    (Arc::new(cfg), dir.join("ca.pem"))
}

// ---------------------------------------------------------------------------
// Running ferry

/// A scratch home and working folder, so that no login of the machine leaks in.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("sandbox");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// A cfg.yaml with one source registry.
    fn cfg(&self, registry: &str, creds: Option<(&str, &str)>, ca: Option<&Path>) -> PathBuf {
        let mut text = format!("source:\n- registry: \"{registry}\"\n");
        if let Some((u, p)) = creds {
            text.push_str(&format!("  user: \"{u}\"\n  password: \"{p}\"\n"));
        }
        if let Some(ca) = ca {
            text.push_str(&format!("  ca: \"{}\"\n", ca.display()));
        }
        let path = self.path().join("cfg.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ferry ARGS` with the sandbox's home and no stored logins but the ones
    /// the test put there; English messages.
    fn ferry(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = ferry();
        cmd.args(args)
            .current_dir(self.path().join("work"))
            .env("HOME", self.home())
            .env("LC_ALL", "C.UTF-8")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            // A safeguard against a hung process, not a timing assertion.
            .timeout(Duration::from_secs(300));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("running ferry")
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const BASIC: &str = "Basic realm=\"hostile\"";

// ---------------------------------------------------------------------------
// Credentials and their origin (#16 items 7, 8, 12)

/// A registry reached over HTTPS redirects, after the credentials were given, to
/// plain HTTP on the same host and port: refused, and no credentials (nor any
/// request) reach the plain side. A redirect to another origin over HTTPS is
/// followed without them.
#[test]
fn credentials_never_follow_a_redirect_to_plain_http_or_another_origin() {
    let sb = Sandbox::new();
    let (tls, ca) = tls_config(sb.path());
    let server = Server::start("127.0.0.1", Some(tls), |r| {
        if !r.tls {
            return json(200, serde_json::json!({"name": "app", "tags": ["stolen"]}));
        }
        if r.path().starts_with("/storage/") {
            return json(
                200,
                serde_json::json!({"name": "cdn", "tags": ["from-storage"]}),
            );
        }
        if !r.has_auth() {
            return unauthorized(BASIC);
        }
        let port = r.local.port();
        match r.path() {
            "/v2/app/tags/list" => send(
                307,
                &[("Location", &format!("http://127.0.0.1:{port}{}", r.target))],
                "",
            ),
            "/v2/cdn/tags/list" => send(
                307,
                &[(
                    "Location",
                    &format!("https://localhost:{port}/storage/tags"),
                )],
                "",
            ),
            _ => json(404, serde_json::json!({})),
        }
    });
    let cfg = sb.cfg(
        &format!("https://{}", server.host()),
        Some(("alice", "s3cret-password")),
        Some(&ca),
    );
    let cfg = cfg.to_str().unwrap();

    let out = sb.ferry(
        &["tags", "--config", cfg, &format!("{}/app", server.host())],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("plain HTTP"), "{}", text(&out));
    let plain: Vec<Seen> = server.seen().into_iter().filter(|r| !r.tls).collect();
    assert!(
        plain.iter().all(|r| !r.has_auth()),
        "credentials sent over plain HTTP: {plain:?}"
    );
    assert!(plain.is_empty(), "the downgrade was followed: {plain:?}");

    let out = sb.ferry(
        &["tags", "--config", cfg, &format!("{}/cdn", server.host())],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-storage"));
    let storage: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|r| r.path().starts_with("/storage/"))
        .collect();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert!(
        !storage[0].has_auth(),
        "credentials followed a redirect to another origin: {storage:?}"
    );
}

/// The target's upload session names another host in `Location`: the blob goes
/// there without the target's credentials.
#[test]
fn an_upload_location_on_another_origin_gets_no_credentials() {
    let src = Registry::start();
    let img = push_image(
        &src,
        "app",
        "v1",
        Format::Oci,
        &[layer("rh-upload-location", 4096)],
        "rh-upload-location",
        false,
    );
    let elsewhere = Server::plain(|_| send(201, &[], ""));
    let elsewhere_host = elsewhere.host();
    let target = Server::plain(move |r| {
        if !r.has_auth() {
            return unauthorized(BASIC);
        }
        match (r.method.as_str(), r.path()) {
            ("GET", "/v2/") => json(200, serde_json::json!({})),
            ("POST", p) if p.ends_with("/blobs/uploads/") => send(
                202,
                &[(
                    "Location",
                    &format!("http://{elsewhere_host}/upload/session-1?_state=x"),
                )],
                "",
            ),
            ("PUT", p) if p.contains("/manifests/") => send(201, &[], ""),
            _ => json(404, serde_json::json!({"errors": []})),
        }
    });
    let sb = Sandbox::new();
    std::fs::write(
        sb.path().join("cfg.yaml"),
        format!(
            "target:\n- registry: \"http://{}\"\n  user: alice\n  password: s3cret-password\n",
            target.host()
        ),
    )
    .unwrap();
    let out = sb.ferry(
        &[
            "sync",
            "--config",
            sb.path().join("cfg.yaml").to_str().unwrap(),
            &img.reference,
            "--dst",
            &format!("{}/ns", target.host()),
        ],
        &[],
    );
    let uploads = elsewhere.seen();
    assert!(
        !uploads.is_empty(),
        "the blob never went to the Location: {}",
        text(&out)
    );
    assert!(
        uploads.iter().all(|r| !r.has_auth()),
        "credentials sent to another origin: {uploads:?}"
    );
}

/// A token realm over plain HTTP named by an HTTPS registry is refused (no
/// request reaches it); a plain-HTTP realm on another host than a plain-HTTP
/// registry is asked for an anonymous token, without the password.
#[test]
fn token_realms_get_credentials_only_by_the_realm_rule() {
    let sb = Sandbox::new();
    let realm = Server::plain(|_| json(200, serde_json::json!({"token": "t0k3n"})));
    let realm_url = format!("http://{}/token", realm.host());
    let (tls, ca) = tls_config(sb.path());
    let challenge = format!("Bearer realm=\"{realm_url}\",service=\"hostile\"");
    let https = Server::start("127.0.0.1", Some(tls), move |r| {
        if r.header("authorization") == Some("Bearer t0k3n") {
            json(200, serde_json::json!({"name": "app", "tags": ["ok"]}))
        } else {
            unauthorized(&challenge)
        }
    });
    let cfg = sb.cfg(
        &format!("https://{}", https.host()),
        Some(("alice", "s3cret-password")),
        Some(&ca),
    );
    let out = sb.ferry(
        &[
            "tags",
            "--config",
            cfg.to_str().unwrap(),
            &format!("{}/app", https.host()),
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("plain-HTTP token realm"),
        "{}",
        text(&out)
    );
    assert!(
        realm.seen().is_empty(),
        "an https registry sent us to an http realm: {:?}",
        realm.seen()
    );

    // Another host: 127.0.0.2 is loopback too, but not the registry's host.
    let far = Server::start("127.0.0.2", None, |_| {
        json(200, serde_json::json!({"token": "anon", "expires_in": 300}))
    });
    let challenge = format!(
        "Bearer realm=\"http://{}/token\",service=\"hostile\"",
        far.host()
    );
    let plain = Server::plain(move |r| {
        if r.header("authorization") == Some("Bearer anon") {
            json(200, serde_json::json!({"name": "app", "tags": ["public"]}))
        } else {
            unauthorized(&challenge)
        }
    });
    let cfg = sb.cfg(
        &format!("http://{}", plain.host()),
        Some(("alice", "s3cret-password")),
        None,
    );
    let out = sb.ferry(
        &[
            "tags",
            "--config",
            cfg.to_str().unwrap(),
            &format!("{}/app", plain.host()),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let asked = far.seen();
    assert!(!asked.is_empty(), "the realm was never asked");
    assert!(
        asked.iter().all(|r| !r.has_auth()),
        "the password went to a plain-HTTP realm on another host: {asked:?}"
    );
}

/// `expires_in` of 2^64-1 (and other absurd lifetimes) is clamped, not a panic.
#[test]
fn a_token_lifetime_of_two_to_the_64_does_not_panic() {
    let server = Server::plain(|r| {
        if r.path() == "/token" {
            return send(
                200,
                &[("Content-Type", "application/json")],
                r#"{"token":"forever","expires_in":18446744073709551615}"#,
            );
        }
        if r.header("authorization") == Some("Bearer forever") {
            json(200, serde_json::json!({"name": "app", "tags": ["v1"]}))
        } else {
            unauthorized(&format!(
                "Bearer realm=\"http://{}/token\",service=\"hostile\"",
                r.local
            ))
        }
    });
    let sb = Sandbox::new();
    let out = sb.ferry(&["tags", &format!("{}/app", server.host())], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");
}

// ---------------------------------------------------------------------------
// Bounded time and memory (#16 items 9, 13)

/// Tag lists that never end, pages too large, next links in a loop and tags
/// that are terminal escape sequences: each a clear error, memory bounded.
#[test]
fn hostile_tag_lists_are_refused() {
    let server = Server::plain(|r| {
        let page: usize = r
            .query("last")
            .and_then(|l| l.strip_prefix('p'))
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match r.path() {
            "/v2/endless/tags/list" => {
                let tags: Vec<String> = (0..1000).map(|i| format!("p{page}-{i}")).collect();
                send(
                    200,
                    &[
                        ("Content-Type", "application/json"),
                        (
                            "Link",
                            &format!(
                                "</v2/endless/tags/list?n=1000&last=p{}-0>; rel=\"next\"",
                                page + 1
                            ),
                        ),
                    ],
                    serde_json::json!({"name": "endless", "tags": tags}).to_string(),
                )
            }
            "/v2/huge/tags/list" => {
                let tags: Vec<String> = (0..300_000).map(|i| format!("tag-{i:024}")).collect();
                json(200, serde_json::json!({"name": "huge", "tags": tags}))
            }
            "/v2/loop/tags/list" => send(
                200,
                &[
                    ("Content-Type", "application/json"),
                    ("Link", "</v2/loop/tags/list?n=1000>; rel=\"next\""),
                ],
                r#"{"name":"loop","tags":["a"]}"#,
            ),
            "/v2/escape/tags/list" => json(
                200,
                serde_json::json!({"name": "escape", "tags": ["ok", "\u{1b}]0;pwned\u{7}\u{1b}[2J"]}),
            ),
            _ => json(404, serde_json::json!({})),
        }
    });
    let sb = Sandbox::new();
    let tags = |repo: &str| sb.ferry(&["tags", &format!("{}/{repo}", server.host())], &[]);

    let out = tags("endless");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("more than 250000 tags"),
        "{}",
        text(&out)
    );
    assert!(
        server.seen().len() <= 1000,
        "{} pages fetched",
        server.seen().len()
    );

    let out = tags("huge");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("limit"), "{}", text(&out));

    let out = tags("loop");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("loop"), "{}", text(&out));

    let out = tags("escape");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("invalid tag"), "{}", text(&out));
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "{}",
        text(&out)
    );
}

/// A tag list whose body drips in a byte at a time, each within the read
/// timeout: the overall response deadline ends it.
#[test]
fn a_dripping_small_response_meets_the_response_deadline() {
    let server = Server::plain(|r| match r.path() {
        "/v2/app/tags/list" => Reply::Drip {
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: format!("{{\"name\":\"app\",\"tags\":[\"v1\"]}}{}", " ".repeat(200)).into_bytes(),
            every: Duration::from_millis(300),
        },
        _ => json(200, serde_json::json!({})),
    });
    let sb = Sandbox::new();
    let out = sb.ferry(
        &[
            "tags",
            "--response-timeout",
            "2",
            "--read-timeout",
            "10",
            &format!("{}/app", server.host()),
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("no complete answer"),
        "{}",
        text(&out)
    );
}

/// A layer whose body drips in a byte at a time, never silent for a whole
/// read timeout: the minimum-progress rule fails it.
#[test]
fn a_dripping_blob_fails_the_minimum_progress_rule() {
    let image = build_image(
        Format::Oci,
        "linux/amd64",
        &[layer("rh-drip", 4096)],
        "rh-drip",
        false,
    );
    let manifest = image.manifest.clone();
    let media_type = image.media_type.clone();
    let config = image.blobs[0].clone();
    let layer_blob = image.blobs[1].clone();
    let server = Server::plain(move |r| {
        let p = r.path();
        if p == "/v2/" {
            json(200, serde_json::json!({}))
        } else if p.starts_with("/v2/app/manifests/") {
            send(200, &[("Content-Type", media_type.as_str())], &manifest)
        } else if p == format!("/v2/app/blobs/{}", config.0.digest) {
            send(200, &[], &config.1)
        } else if p == format!("/v2/app/blobs/{}", layer_blob.0.digest) {
            Reply::Drip {
                headers: vec![],
                body: layer_blob.1.clone(),
                every: Duration::from_millis(200),
            }
        } else {
            json(404, serde_json::json!({}))
        }
    });
    let sb = Sandbox::new();
    let out = sb.ferry(
        &[
            "save",
            &format!("{}/app:v1", server.host()),
            "--out",
            sb.path().join("out").to_str().unwrap(),
            "--read-timeout",
            "2",
            "--min-rate",
            "1000",
            "--retries",
            "0",
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("under the minimum"), "{}", text(&out));
}

// ---------------------------------------------------------------------------
// Files and terminals (#16 items 14, 17)

/// A `config.json.tmp` planted as a symlink to another file: login writes a
/// fresh temporary file of its own (mode 0600) and never writes through it.
#[test]
fn login_never_writes_through_a_planted_temp_file() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let docker = sb.home().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    let victim = sb.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, docker.join("config.json.tmp")).unwrap();

    let mut cmd = ferry();
    let out = cmd
        .args([
            "login",
            "127.0.0.1:5999",
            "-u",
            "alice",
            "--password-stdin",
            "--no-check",
        ])
        .current_dir(sb.path())
        .env("HOME", sb.home())
        .env_remove("DOCKER_CONFIG")
        .write_stdin("s3cret-password\n")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let config = docker.join("config.json");
    let meta = std::fs::symlink_metadata(&config).unwrap();
    assert!(meta.file_type().is_file(), "config.json is a regular file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(
        stored["auths"]["127.0.0.1:5999"]["auth"].is_string(),
        "{stored}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&docker)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n != "config.json.tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Terminal escape sequences in a registry's error body never reach the terminal.
#[test]
fn registry_error_text_reaches_the_terminal_without_escapes() {
    let server = Server::plain(|r| match r.path() {
        "/v2/" => json(200, serde_json::json!({})),
        _ => json(
            404,
            serde_json::json!({"errors": [{
                "code": "MANIFEST_UNKNOWN",
                "message": "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mgone\r\u{202e}txt.exe"
            }]}),
        ),
    });
    let sb = Sandbox::new();
    let out = sb.ferry(&["inspect", &format!("{}/app:v1", server.host())], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("MANIFEST_UNKNOWN"), "{}", text(&out));
    assert!(err.contains("gone"), "{}", text(&out));
    assert!(
        !err.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "control characters reached the terminal: {err:?}"
    );
}

// ---------------------------------------------------------------------------
// What a new user stumbled on (#20)

/// `https://` to a registry that speaks plain HTTP: named at once, not retried.
#[test]
fn https_to_a_plain_http_registry_is_named_at_once() {
    let server = Server::plain(|_| json(200, serde_json::json!({})));
    let sb = Sandbox::new();
    let cfg = sb.cfg(&format!("https://{}", server.host()), None, None);
    let out = sb.ferry(
        &[
            "save",
            "--config",
            cfg.to_str().unwrap(),
            &format!("{}/app:v1", server.host()),
            "--out",
            sb.path().join("out").to_str().unwrap(),
            "--retries",
            "3",
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("plain HTTP"), "{}", text(&out));
    assert!(err.contains("http://"), "{}", text(&out));
    assert_eq!(server.connections(), 1, "retried: {}", text(&out));
}

/// A wrong password: the registry is tried once, then its remaining images fail
/// at once with the same reason, which says what to fix.
#[test]
fn refused_credentials_stop_that_registry_after_the_first_failure() {
    let reg = Registry::start_with_htpasswd("alice", "right-password");
    let refs: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|repo| {
            push_image(
                &reg,
                repo,
                "v1",
                Format::Oci,
                &[layer(&format!("rh-auth-{repo}"), 1024)],
                &format!("rh-auth-{repo}"),
                false,
            );
            format!("{repo}:v1")
        })
        .collect();
    let proxy = Proxy::start(&reg.host());
    let sb = Sandbox::new();
    let cfg = sb.cfg(
        &format!("http://{}", proxy.host()),
        Some(("alice", "wrong-password")),
        None,
    );
    let mut args: Vec<String> = vec![
        "save".into(),
        "--config".into(),
        cfg.to_str().unwrap().into(),
        "--jobs".into(),
        "1".into(),
        "--out".into(),
        sb.path().join("out").to_str().unwrap().into(),
    ];
    args.extend(refs.iter().map(|r| format!("{}/{r}", proxy.host())));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.ferry(&args, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let refusals = proxy.log().iter().filter(|l| l.ends_with("-> 401")).count();
    assert!(refusals <= 2, "{refusals} 401s: {:#?}", proxy.log());
    let err = stderr(&out);
    assert!(
        err.contains("refused the user name and password (from cfg.yaml)"),
        "{}",
        text(&out)
    );
    assert!(err.contains("ferry login"), "{}", text(&out));
}

/// `skopeo login` writes containers-auth.json; ferry reads it, before docker's
/// config.json (which holds a stale password here), in containers-auth.json(5)'s
/// order: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`.
#[test]
fn a_skopeo_login_is_honoured() {
    use base64::Engine as _;
    let reg = Registry::start_with_htpasswd("alice", "right-password");
    push_image(
        &reg,
        "app",
        "v1",
        Format::Oci,
        &[layer("rh-skopeo-login", 1024)],
        "rh-skopeo-login",
        false,
    );
    let sb = Sandbox::new();
    let stale = base64::engine::general_purpose::STANDARD.encode("alice:stale-password");
    std::fs::create_dir_all(sb.home().join(".docker")).unwrap();
    std::fs::write(
        sb.home().join(".docker/config.json"),
        serde_json::json!({"auths": {reg.host(): {"auth": stale}}}).to_string(),
    )
    .unwrap();
    let run = sb.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let skopeo_login = |env: &[(&str, &Path)]| {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "right-password",
            &reg.host(),
        ])
        .env("HOME", sb.home())
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running skopeo login");
        assert!(out.status.success(), "skopeo login: {}", text(&out));
    };
    let tags = |env: &[(&str, &Path)]| sb.ferry(&["tags", &format!("{}/app", reg.host())], env);

    let out = tags(&[]);
    assert!(
        !out.status.success(),
        "the stale password works? {}",
        text(&out)
    );

    skopeo_login(&[("XDG_RUNTIME_DIR", &run)]);
    assert!(run.join("containers/auth.json").is_file());
    let out = tags(&[("XDG_RUNTIME_DIR", &run)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");

    // `ferry login` writes docker's config.json, which is read after auth.json: it says so.
    let out = ferry()
        .args([
            "login",
            &reg.host(),
            "-u",
            "alice",
            "--password-stdin",
            "--no-check",
        ])
        .current_dir(sb.path())
        .env("HOME", sb.home())
        .env("LC_ALL", "C.UTF-8")
        .env("XDG_RUNTIME_DIR", &run)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .write_stdin("right-password\n")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("also holds a login"),
        "{}",
        text(&out)
    );

    // $REGISTRY_AUTH_FILE comes first: a stale auth.json in XDG_RUNTIME_DIR loses.
    std::fs::write(
        run.join("containers/auth.json"),
        serde_json::json!({"auths": {reg.host(): {"auth": stale}}}).to_string(),
    )
    .unwrap();
    let explicit = sb.path().join("explicit-auth.json");
    skopeo_login(&[("REGISTRY_AUTH_FILE", &explicit)]);
    assert!(explicit.is_file());
    let out = tags(&[("XDG_RUNTIME_DIR", &run), ("REGISTRY_AUTH_FILE", &explicit)]);
    assert!(out.status.success(), "{}", text(&out));
}

// ---------------------------------------------------------------------------
// Token refresh (#21)

/// Tokens that live 3 s, a save that takes several times that: each token is
/// replaced before it expires, so the only 401 is the very first request's
/// (before the registry's challenge is known).
#[test]
fn tokens_are_refreshed_before_they_expire_without_a_401() {
    let reg = Registry::start();
    let refs: Vec<String> = (0..3)
        .map(|i| {
            let layers: Vec<Vec<u8>> = (0..4)
                .map(|l| layer(&format!("rh-token-{i}-{l}"), 2048))
                .collect();
            push_image(
                &reg,
                &format!("token{i}"),
                "v1",
                Format::Oci,
                &layers,
                &format!("rh-token-{i}"),
                false,
            );
            format!("token{i}:v1")
        })
        .collect();
    let proxy = Proxy::start_with(
        &reg.host(),
        Faults::none()
            .bearer_tokens(Duration::from_secs(3))
            .delay_every(1, Duration::from_millis(500)),
    );
    let sb = Sandbox::new();
    let mut args: Vec<String> = vec![
        "save".into(),
        "--jobs".into(),
        "1".into(),
        "--out".into(),
        sb.path().join("out").to_str().unwrap().into(),
    ];
    args.extend(refs.iter().map(|r| format!("{}/{r}", proxy.host())));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.ferry(&args, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stats = proxy.stats();
    assert!(
        stats.tokens >= 3,
        "the run did not outlive its tokens ({} issued): {:#?}",
        stats.tokens,
        proxy.log()
    );
    assert_eq!(stats.unauthorized, 1, "{:#?}", proxy.log());
}

/// The most tokens the proxy issued for one scope: 2 or more means that scope
/// outlived a token and got a new one.
fn most_tokens_for_one_scope(log: &[String]) -> usize {
    let mut by_scope: std::collections::HashMap<&str, usize> = Default::default();
    for line in log.iter().filter(|l| l.contains("-> token ")) {
        // "#N GET /token?service=...&scope=... -> token ferry-test-token-N"
        let target = line.split_whitespace().nth(2).unwrap_or_default();
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        *by_scope.entry(query).or_default() += 1;
    }
    by_scope.into_values().max().unwrap_or(0)
}

/// Upload and sync through token servers whose tokens live 2 s, over answers
/// delayed 300 ms: every scope's token is replaced before it expires (at least
/// one scope outlives a token), so the only 401 of each registry is the first
/// request's, before its challenge is known (issue #21: one upload collected
/// 101 of them).
#[test]
fn upload_and_sync_refresh_tokens_before_they_expire_without_a_401() {
    let (src, dst) = (Registry::start(), Registry::start());
    let refs: Vec<String> = (0..3)
        .map(|i| {
            let layers: Vec<Vec<u8>> = (0..4)
                .map(|l| layer(&format!("rh-token-up-{i}-{l}"), 2048))
                .collect();
            push_image(
                &src,
                &format!("tokenup{i}"),
                "v1",
                Format::Oci,
                &layers,
                &format!("rh-token-up-{i}"),
                false,
            )
            .reference
        })
        .collect();
    let sb = Sandbox::new();
    let out = sb.path().join("out");
    let mut args: Vec<&str> = vec!["save", "-q", "--out", out.to_str().unwrap()];
    args.extend(refs.iter().map(String::as_str));
    let saved = sb.ferry(&args, &[]);
    assert!(saved.status.success(), "{}", text(&saved));
    let meta = String::from_utf8_lossy(&saved.stdout).trim().to_string();

    let slow_tokens = || {
        Faults::none()
            .bearer_tokens(Duration::from_secs(2))
            .delay_every(1, Duration::from_millis(300))
    };
    let target = Proxy::start_with(&dst.host(), slow_tokens());
    let up = sb.ferry(
        &["upload", &meta, "--dst", &target.host(), "--jobs", "1"],
        &[],
    );
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        most_tokens_for_one_scope(&target.log()) >= 2,
        "the upload did not outlive a token: {:#?}",
        target.log()
    );
    assert_eq!(target.stats().unauthorized, 1, "{:#?}", target.log());

    // sync: both sides behind token servers.
    let (from, to) = (
        Proxy::start_with(&src.host(), slow_tokens()),
        Proxy::start_with(&dst.host(), slow_tokens()),
    );
    let mut args: Vec<String> = vec!["sync".into(), "--jobs".into(), "1".into()];
    args.extend((0..3).map(|i| format!("{}/tokenup{i}:v1", from.host())));
    args.extend(["--dst".into(), format!("{}/synced", to.host())]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let synced = sb.ferry(&args, &[]);
    assert!(synced.status.success(), "{}", text(&synced));
    for proxy in [&from, &to] {
        assert!(
            most_tokens_for_one_scope(&proxy.log()) >= 2,
            "the sync did not outlive a token: {:#?}",
            proxy.log()
        );
        assert_eq!(proxy.stats().unauthorized, 1, "{:#?}", proxy.log());
    }
}
