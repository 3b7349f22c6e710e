//! `ferry sync --listen`: a real docker-registry's own notifications drive the sync
//! daemon (issue 19), with the interval at an hour so that only an event can
//! explain the copy; metrics and health are scraped, a wrong secret is refused.

use crate::common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Daemon {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn metrics(&self) -> HashMap<String, f64> {
        let r = http_request(
            "GET",
            &self.url("/metrics"),
            None,
            &[],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain")),
            "{:?}",
            r.headers
        );
        parse_metrics(&r.text())
    }

    fn post_event(&self, auth: Option<&str>, body: &str) -> u16 {
        let mut headers = vec![(
            "Content-Type",
            "application/vnd.docker.distribution.events.v1+json",
        )];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        http_request(
            "POST",
            &self.url("/events"),
            None,
            &headers,
            Some(body.as_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .unwrap()
        .status
    }

    /// Waits (up to a minute) until `ok` holds for the metrics.
    fn wait_metrics(&self, what: &str, ok: impl Fn(&HashMap<String, f64>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.metrics();
            if ok(&m) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {m:?}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name{labels}` → value, from the Prometheus text format.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{l}"));
            (name.to_string(), value)
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SECRET: &str = "ev-s3cret";

#[test]
fn a_push_reaches_the_target_through_registry_notifications() {
    let port = free_port();
    let src = Registry::start_with_notifications(
        &format!("http://127.0.0.1:{port}/events"),
        Some(&format!("Bearer {SECRET}")),
    );
    let dst = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let wanted = format!("{}/ev/app:1", src.host());
    let log = work.path().join("sync.log");
    let child = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .current_dir(work.path())
        .args(["sync", &wanted, "--dst", &dst.host()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1h"])
        .env("FERRY_EVENTS_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Daemon { child, port, log };

    // Up, and its first full round done (the image is not there yet: it fails).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = http_request(
            "GET",
            &daemon.url("/healthz"),
            None,
            &[],
            None,
            Duration::from_secs(5),
        );
        if let Ok(h) = health {
            assert_eq!(h.status, 200);
            if h.json()["rounds"].as_u64().unwrap_or(0) >= 1 {
                assert_eq!(h.json()["status"], "ok");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "daemon not up:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get(
            &daemon.metrics(),
            "ferry_sync_rounds_total{result=\"failed\"}"
        ),
        1.0
    );

    // The push: the registry tells the daemon, which copies it at once.
    let img = push_image(
        &src,
        "ev/app",
        "1",
        Format::Oci,
        &[layer("ev-app", 40_000)],
        "ev-app",
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while dst.get_manifest("ev/app", "1").status != 200 {
        assert!(
            Instant::now() < deadline,
            "not at the target:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("ev/app", "1")),
        img.manifest
    );

    // A tag the list does not name is not synced.
    push_image(
        &src,
        "ev/app",
        "2",
        Format::Oci,
        &[layer("ev-app-2", 10_000)],
        "ev-app-2",
        false,
    );
    daemon.wait_metrics("the unlisted push is seen and ignored", |m| {
        get(m, "ferry_sync_events_total{result=\"ignored\"}") >= 1.0
    });
    assert_eq!(dst.tags("ev/app"), vec!["1".to_string()]);

    let m = daemon.metrics();
    assert!(
        get(&m, "ferry_sync_rounds_total{result=\"ok\"}") >= 1.0,
        "{m:?}"
    );
    assert!(
        get(&m, "ferry_sync_images_total{result=\"ok\"}") >= 1.0,
        "{m:?}"
    );
    assert!(get(&m, "ferry_sync_bytes_total") > 10_000.0, "{m:?}");
    assert!(
        get(&m, "ferry_sync_events_total{result=\"selected\"}") >= 1.0,
        "{m:?}"
    );
    let now = chrono_now();
    let last = get(
        &m,
        &format!(
            "ferry_sync_last_success_timestamp_seconds{{target=\"{}\"}}",
            dst.host()
        ),
    );
    assert!(
        last > now - 600.0 && last <= now + 5.0,
        "{last} vs {now}: {m:?}"
    );
    assert!(
        get(
            &m,
            &format!("ferry_sync_image_last_success_timestamp_seconds{{image=\"{wanted}\"}}")
        ) > 0.0,
        "{m:?}"
    );
    assert!(
        get(&m, "ferry_sync_round_duration_seconds_count") >= 2.0,
        "{m:?}"
    );

    // The secret is checked: wrong, missing, and right.
    let event = format!(
        r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"ev/app","tag":"1","digest":"{}"}}}}]}}"#,
        img.digest
    );
    assert_eq!(daemon.post_event(Some("Bearer wrong"), &event), 401);
    assert_eq!(daemon.post_event(None, &event), 401);
    assert_eq!(daemon.post_event(Some(SECRET), "not json"), 400);
    let refused = get(
        &daemon.metrics(),
        "ferry_sync_events_total{result=\"refused\"}",
    );
    assert!(refused >= 3.0, "refused {refused}");

    // A burst of the same event coalesces into few rounds, each one summary line
    // (the image is already there: no per-image "already at" line).
    let rounds = |m: &HashMap<String, f64>| get(m, "ferry_sync_round_duration_seconds_count");
    let before = rounds(&daemon.metrics());
    for _ in 0..20 {
        assert_eq!(
            daemon.post_event(Some(&format!("Bearer {SECRET}")), &event),
            200
        );
    }
    daemon.wait_metrics("a round for the burst", |m| rounds(m) > before);
    std::thread::sleep(Duration::from_secs(2));
    let after = rounds(&daemon.metrics());
    assert!(
        after - before <= 10.0,
        "20 identical events ran {} rounds",
        after - before
    );
    let text = daemon.log_text();
    assert!(!text.contains("already at"), "{text}");
    assert!(text.contains("1 succeeded"), "{text}");
}

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Starts `ferry sync --listen` (an hour between rounds) with `extra` options and
/// `FERRY_EVENTS_SECRET` when given; waits until `/healthz` answers.
fn start_daemon(work: &std::path::Path, extra: &[&str], secret: Option<&str>) -> Daemon {
    let port = free_port();
    let log = work.join("sync.log");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
    cmd.current_dir(work)
        .args(["sync", "127.0.0.1:1/none/app:1", "--dst", "127.0.0.1:2"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1h"])
        .args(extra)
        .env_remove("FERRY_EVENTS_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(s) = secret {
        cmd.env("FERRY_EVENTS_SECRET", s);
    }
    let child = cmd.spawn().unwrap();
    let daemon = Daemon { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_request(
        "GET",
        &daemon.url("/healthz"),
        None,
        &[],
        None,
        Duration::from_secs(5),
    )
    .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no answer:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon
}

/// A client that sends the head of a `POST /events` announcing `length` body
/// bytes, then one byte every `every` until `stop` is set.
fn trickled_post(
    port: u16,
    length: usize,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        format!(
            "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::spawn(move || {
        for _ in 0..length {
            if stop.load(std::sync::atomic::Ordering::SeqCst) || s.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    })
}

/// Trickled bodies: every slot of `sync --listen` taken by a `POST /events` whose
/// body comes a byte a second (often enough that `--idle-timeout` never fires).
/// The registry's next notification must still get through: a request whose body
/// has been arriving for a while is closed for a new client when the server is
/// full. With a secret, a request without it is refused before its body is read.
/// (The body was read whole before the secret was even looked at, and a trickling
/// client kept its slot for as long as it liked.)
#[test]
fn trickled_event_bodies_do_not_lock_the_registry_out() {
    let work = tempfile::tempdir().unwrap();
    let daemon = start_daemon(work.path(), &["--max-connections", "2"], None);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tricklers: Vec<_> = (0..2)
        .map(|_| trickled_post(daemon.port, 10_000, Duration::from_secs(1), stop.clone()))
        .collect();
    // Both slots are taken (their heads are in), then a real notification comes.
    std::thread::sleep(Duration::from_secs(1));
    let body = r#"{"events":[]}"#;
    let answer = http_request(
        "POST",
        &daemon.url("/events"),
        None,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes().to_vec()),
        Duration::from_secs(90),
    )
    .expect("a notification gets through while trickling clients hold every slot");
    assert_eq!(answer.status, 200, "{}", answer.text());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tricklers {
        t.join().unwrap();
    }
    drop(daemon);

    // With a secret: a head without it is answered at once, its body never waited for.
    let work = tempfile::tempdir().unwrap();
    let daemon = start_daemon(work.path(), &[], Some(SECRET));
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = [0u8; 12];
    s.read_exact(&mut got)
        .expect("answered before the body was sent");
    assert_eq!(&got, b"HTTP/1.1 401");
}
