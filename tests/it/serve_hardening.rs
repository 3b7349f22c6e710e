//! `ferry serve` against hostile and careless clients (issue 16): each attack is
//! performed on a real serve process, which must answer, stay bounded, and keep
//! serving honest clients afterwards.

use crate::common::tls::make_ca_and_leaf;
use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `ferry serve`, killed on drop.
struct Served {
    child: Child,
    port: u16,
    /// The CA that signed the server's certificate, when serving TLS.
    ca: Option<PathBuf>,
}

impl Served {
    /// `ferry serve META --listen 127.0.0.1:PORT EXTRA...`, run through `prefix`
    /// (e.g. `prlimit --nofile=...`) when given; waits until `/v2/` answers.
    fn start(meta: &str, extra: &[&str], prefix: &[&str], ca: Option<PathBuf>) -> Served {
        let port = free_port();
        let bin = assert_cmd::cargo::cargo_bin("ferry");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["serve", meta, "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut served = Served { child, port, ca };
        let deadline = Instant::now() + Duration::from_secs(30);
        while served.get("/v2/").map(|r| r.status) != Ok(200) {
            assert!(
                served.child.try_wait().unwrap().is_none(),
                "ferry serve exited"
            );
            assert!(Instant::now() < deadline, "ferry serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        served
    }

    fn base(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One GET (over TLS verified with the CA when serving TLS).
    fn get(&self, path: &str) -> Result<HttpResponse, String> {
        self.get_with(path, Duration::from_secs(10))
    }

    fn get_with(&self, path: &str, timeout: Duration) -> Result<HttpResponse, String> {
        let Some(ca) = &self.ca else {
            return http_request(
                "GET",
                &format!("{}{path}", self.base()),
                None,
                &[],
                None,
                timeout,
            );
        };
        let pem = std::fs::read(ca).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .timeout(timeout)
                .build()
                .unwrap();
            let resp = client
                .get(format!("{}{path}", self.base()))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
            Ok(HttpResponse {
                status,
                headers: Vec::new(),
                body,
            })
        })
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Saves `refs` into a bundle under `out`; returns the meta path.
fn save(refs: &[&str], out: &Path) -> String {
    save_bundle(refs, out, &[]).display().to_string()
}

/// One small image in a fresh registry, saved into a bundle.
fn bundle_of_one(work: &Path, name: &str) -> (Registry, PushedImage, String) {
    let src = Registry::start();
    let img = push_image(
        &src,
        &format!("hard/{name}"),
        "1",
        Format::Oci,
        &[layer(&format!("hard-{name}"), 300_000)],
        &format!("hard-{name}"),
        false,
    );
    let meta = save(&[&img.reference], work);
    (src, img, meta)
}

/// The status code of the HTTP answer read from `stream` (None: no answer).
fn read_status(stream: &mut TcpStream) -> Option<u16> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let status = line.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    status.parse().ok()
}

#[test]
fn an_endless_header_line_is_cut_off_and_memory_stays_bounded() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "endless");
    let served = Served::start(&meta, &[], &[], None);
    let before = served.rss_kib();
    // The attack: a header line that never ends, as fast as the server takes it.
    const TRY: usize = 64 * 1024 * 1024;
    let mut stream = TcpStream::connect(served.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Endless: ");
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < TRY {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let status = read_status(&mut stream);
    let sent = sender.join().unwrap();
    assert!(
        matches!(status, Some(431) | Some(400)),
        "answered {status:?}"
    );
    assert!(sent < TRY, "the server kept reading the header line");
    let after = served.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "serve grew from {before} KiB to {after} KiB"
    );
    let ok = served
        .get(&format!("/v2/{}/manifests/1", img.repo))
        .unwrap();
    assert_eq!(ok.status, 200, "still serving");
}

#[test]
fn hundreds_of_idle_connections_do_not_stop_the_server() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "idle");
    // 200 descriptors (a service's limit is often 1024) and the default cap of
    // 256 connections: the idle clients below exhaust both.
    let mut served = Served::start(
        &meta,
        &["--header-timeout", "2s"],
        &["prlimit", "--nofile=200:200"],
        None,
    );
    // 300 connections that say nothing, and 100 that send half a request.
    let mut held = Vec::new();
    for i in 0..400 {
        let mut s = TcpStream::connect(served.addr()).unwrap();
        if i % 4 == 0 {
            let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(s);
    }
    // An honest client still gets its answer, while all of those are held open.
    let r = served
        .get_with(
            &format!("/v2/{}/manifests/1", img.repo),
            Duration::from_secs(120),
        )
        .expect("a normal request is answered despite 400 idle connections");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, img.manifest);
    assert!(served.alive());
    drop(held);
}

/// Sends one keep-alive request on `stream` and reads its whole answer, leaving the
/// connection open and idle; returns the status.
fn keep_alive_request(stream: &mut TcpStream, path: &str) -> u16 {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head.get(9..12).unwrap().parse().unwrap();
            }
        }
        let n = stream.read(&mut buf).expect("reading the answer");
        assert!(n > 0, "closed before the answer ended");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server closed `stream` (EOF or reset) within 30 s.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The attack: as many idle connections as `--max-connections` allows (silent ones
/// and kept-alive ones after a request), held open longer than any timeout would
/// close them. A real client is still served: the connection idle longest is
/// closed to make room for it, and a busy one never is.
#[test]
fn a_full_server_closes_the_connection_idle_longest_for_a_new_client() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "evict");
    let served = Served::start(
        &meta,
        &[
            "--max-connections",
            "8",
            "--header-timeout",
            "1h",
            "--idle-timeout",
            "1h",
        ],
        &[],
        None,
    );
    // The oldest: silent since they connected.
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(served.addr()).unwrap())
        .collect();
    // Then kept alive after one request each.
    let mut kept: Vec<TcpStream> = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(served.addr()).unwrap();
        assert_eq!(keep_alive_request(&mut s, "/v2/"), 200);
        kept.push(s);
    }
    // All 8 slots are held by idle connections now; honest clients still get in.
    let manifest = format!("/v2/{}/manifests/1", img.repo);
    for _ in 0..3 {
        let r = served
            .get_with(&manifest, Duration::from_secs(60))
            .expect("a new client is served while idle connections fill the server");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, img.manifest);
    }
    // Room was made from the idle longest: the first silent ones.
    assert!(
        closed_by_server(&mut silent[0]),
        "the connection idle longest was not closed"
    );
    // The most recently used kept-alive connection was not needed for room, and
    // still serves its client.
    let last = kept.last_mut().unwrap();
    assert_eq!(keep_alive_request(last, &manifest), 200);
}

/// A slow reader: asks for `path` on a connection of its own with a small receive
/// buffer, reads the answer's head, then takes `bytes` of the body every `every`
/// until `stop` is set, so the connection stays busy (a response in service)
/// without ever idling long enough for `--idle-timeout`. Then it reads on to the
/// end of the connection: returns the body bytes it got in all.
fn slow_reader(
    addr: &str,
    path: &str,
    bytes: usize,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let s = socket.connect(addr.parse().unwrap()).await.unwrap();
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    });
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the answer's head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    std::thread::spawn(move || {
        let mut buf = vec![0u8; bytes];
        let mut total = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => {
                    total += n;
                    std::thread::sleep(every);
                }
            }
        }
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
}

/// The slow-read attack: every slot taken by a client that asked for a large
/// blob and takes it a few KiB a second, often enough that `--idle-timeout` never
/// fires; each connection stays busy (its response in service) for hours. A new
/// client must still be served: when no connection is idle, a busy one whose
/// client has kept the server waiting to write for a while is closed for it.
/// (It used to wait for a slot until the attackers gave up.)
#[test]
fn slow_readers_holding_every_slot_do_not_lock_new_clients_out() {
    let work = tempfile::tempdir().unwrap();
    let src = Registry::start();
    let big = layer("slow-read", 8 * 1024 * 1024);
    let img = push_image(
        &src,
        "hard/slow",
        "1",
        Format::Oci,
        std::slice::from_ref(&big),
        "hard-slow",
        false,
    );
    let meta = save(&[&img.reference], work.path());
    let served = Served::start(&meta, &["--max-connections", "2"], &[], None);
    let blob = format!("/v2/{}/blobs/{}", img.repo, sha256_digest(&big));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            slow_reader(
                &served.addr(),
                &blob,
                4096,
                Duration::from_secs(1),
                stop.clone(),
            )
        })
        .collect();
    let manifest = format!("/v2/{}/manifests/1", img.repo);
    let r = served
        .get_with(&manifest, Duration::from_secs(90))
        .expect("a new client is served while slow readers hold every slot");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, img.manifest);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let got: Vec<usize> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        got.iter().any(|n| *n < big.len()),
        "a slow reader's answer was cut to make room: {got:?} of {}",
        big.len()
    );
}

#[test]
fn tls_hellos_and_garbage_get_a_400_answer() {
    let work = tempfile::tempdir().unwrap();
    let (_src, _img, meta) = bundle_of_one(work.path(), "garbage");
    let served = Served::start(&meta, &[], &[], None);
    // The start of a TLS 1.2/1.3 ClientHello, as docker's client sends it first.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    hello.extend((0u8..32).map(|i| i.wrapping_mul(37)));
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    for attack in [
        hello,
        b"\x00\x01\x02\x03 nonsense\r\n\r\n".to_vec(),
        b"GET /v2/ SPDY/9\r\n\r\n".to_vec(),
    ] {
        let mut s = TcpStream::connect(served.addr()).unwrap();
        s.write_all(&attack).unwrap();
        assert_eq!(read_status(&mut s), Some(400), "{attack:?}");
    }
    assert_eq!(served.get("/v2/").unwrap().status, 200);
}

#[test]
fn a_corrupt_blob_is_not_served_as_good() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "corrupt");
    let layer = img
        .blobs
        .iter()
        .find(|b| b.size == 300_000 || b.media_type.contains("layer"))
        .unwrap()
        .clone();
    let dir = Path::new(&meta).parent().unwrap();
    let data_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    assert!(flip_byte(&data_files, &layer.digest), "layer in the bundle");
    let served = Served::start(&meta, &[], &[], None);
    let path = format!("/v2/{}/blobs/{}", img.repo, layer.digest);
    // Whole, and a range inside the blob (the check reads the rest).
    for range in [None, Some("bytes=0-99"), Some("bytes=1000-")] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let r = http_request(
            "GET",
            &format!("{}{path}", served.base()),
            None,
            &headers,
            None,
            Duration::from_secs(30),
        );
        if let Ok(r) = r {
            let expect = match range {
                None => layer.size as usize,
                Some("bytes=0-99") => 100,
                Some(_) => layer.size as usize - 1000,
            };
            assert!(
                !(r.status < 300 && r.body.len() == expect),
                "{range:?}: corrupt blob served as complete ({} bytes, status {})",
                r.body.len(),
                r.status
            );
        }
    }
    // An independent client refuses it too, and the server lives on.
    let pulled = tempfile::tempdir().unwrap();
    let copied = skopeo_copy(
        &format!("docker://{}/{}:1", served.addr(), img.repo),
        &format!("dir:{}", pulled.path().display()),
        &["--src-tls-verify=false"],
    );
    assert!(copied.is_err(), "skopeo got the corrupt image");
    assert_eq!(served.get("/v2/").unwrap().status, 200);
}

#[test]
fn serves_over_tls_and_skopeo_pulls_through_it() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "tls");
    let pki = tempfile::tempdir().unwrap();
    make_ca_and_leaf(pki.path());
    let cert = pki.path().join("leaf.pem");
    let key = pki.path().join("leaf.key");
    let served = Served::start(
        &meta,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
        Some(pki.path().join("ca.pem")),
    );
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(pki.path().join("ca.pem"), certs.path().join("ca.crt")).unwrap();
    let cert_dir = format!("--cert-dir={}", certs.path().display());
    let reference = format!("docker://{}/{}:1", served.addr(), img.repo);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=true",
        &cert_dir,
        &reference,
    ])
    .expect("skopeo inspects over verified TLS");
    assert_eq!(raw, img.manifest);
    let pulled = tempfile::tempdir().unwrap();
    let src_cert_dir = format!("--src-cert-dir={}", certs.path().display());
    skopeo_copy(
        &reference,
        &format!("dir:{}", pulled.path().display()),
        &["--src-tls-verify=true", &src_cert_dir],
    )
    .expect("skopeo copies (and checks) every blob over TLS");
    // Plain HTTP to the TLS port is told so, in HTTP.
    let mut s = TcpStream::connect(served.addr()).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_status(&mut s), Some(400));
}

#[test]
fn running_out_of_file_descriptors_does_not_end_the_server() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "emfile");
    // 48 descriptors: enough to start and serve, far fewer than the connections.
    let mut served = Served::start(
        &meta,
        &["--header-timeout", "3s"],
        &["prlimit", "--nofile=48:48"],
        None,
    );
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(TcpStream::connect(served.addr()).unwrap());
    }
    // Some of those are accepted, the rest meet EMFILE; give accept() time to fail.
    std::thread::sleep(Duration::from_secs(1));
    assert!(served.alive(), "serve exited on EMFILE");
    drop(held);
    let r = served
        .get_with(
            &format!("/v2/{}/manifests/1", img.repo),
            Duration::from_secs(120),
        )
        .expect("answers once the connections are gone");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, img.manifest);
    // And a blob, which needs a descriptor of its own for the data file.
    let layer = &img.blobs[0];
    let b = served
        .get_with(
            &format!("/v2/{}/blobs/{}", img.repo, layer.digest),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(b.status, 200);
    assert_eq!(b.body.len() as u64, layer.size);
    assert!(served.alive());
}

/// Inverts one byte in the middle of the data of entry `digest` in the first of
/// `files` that holds it.
fn flip_byte(files: &[PathBuf], digest: &str) -> bool {
    use std::io::{Seek, SeekFrom};
    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    for path in files {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        let found = archive
            .entries()
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().is_ok_and(|p| p.to_string_lossy() == name))
            .map(|e| (e.raw_file_position(), e.size()));
        if let Some((pos, size)) = found {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            let at = pos + size / 2;
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(at)).unwrap();
            f.read_exact(&mut b).unwrap();
            b[0] = !b[0];
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&b).unwrap();
            return true;
        }
    }
    false
}

#[test]
fn heads_and_ranges_answer_as_a_registry_does() {
    let work = tempfile::tempdir().unwrap();
    let (_src, img, meta) = bundle_of_one(work.path(), "ranges");
    let served = Served::start(&meta, &[], &[], None);
    let req = |method: &str, path: &str, headers: &[(&str, &str)]| {
        http_request(
            method,
            &format!("{}{path}", served.base()),
            None,
            headers,
            None,
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let manifest = format!("/v2/{}/manifests/1", img.repo);
    let head = req("HEAD", &manifest, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(img.manifest.len().to_string().as_str())
    );
    assert_eq!(
        head.header("docker-content-digest"),
        Some(img.digest.as_str())
    );
    assert_eq!(head.header("content-type"), Some(img.media_type.as_str()));
    assert!(head.body.is_empty());
    let by_digest = req(
        "GET",
        &format!("/v2/{}/manifests/{}", img.repo, img.digest),
        &[],
    );
    assert_eq!(by_digest.body, img.manifest);

    let blob = img.blobs.iter().max_by_key(|b| b.size).unwrap();
    let path = format!("/v2/{}/blobs/{}", img.repo, blob.digest);
    let whole = req("GET", &path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(sha256_digest(&whole.body), blob.digest);
    let head = req("HEAD", &path, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(blob.size.to_string().as_str())
    );
    let size = blob.size as usize;
    let part = req("GET", &path, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[100..200]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    let tail = req("GET", &path, &[("Range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, whole.body[size - 10..]);
    let past = req("GET", &path, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    // A blob of another repository, or an unknown one, is not served here.
    assert_eq!(
        req("GET", &format!("/v2/nope/blobs/{}", blob.digest), &[]).status,
        404
    );
    let tags = req("GET", &format!("/v2/{}/tags/list", img.repo), &[]).json();
    assert_eq!(tags["tags"], serde_json::json!(["1"]));
    let catalog = req("GET", "/v2/_catalog", &[]).json();
    assert_eq!(catalog["repositories"], serde_json::json!([img.repo]));
}
