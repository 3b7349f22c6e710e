//! `ferry sync`: registry to registry with no files, and the daemon mode that
//! re-syncs on an interval and notifies a webhook.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sync_copies_byte_exact_and_skips_what_is_there() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let refs: Vec<&str> = corpus.iter().map(|i| i.reference.as_str()).collect();
    let work = tempfile::tempdir().unwrap();
    ferry()
        .current_dir(work.path())
        .arg("sync")
        .args(&refs)
        .arg("--dst")
        .arg(format!("{}/mirror", dst.host()))
        .assert()
        .success();
    for img in &corpus {
        let at_target =
            skopeo_inspect_raw(&format!("{}/mirror/{}:{}", dst.host(), img.repo, img.tag));
        assert_eq!(
            at_target, img.manifest,
            "{}:{} byte-exact",
            img.repo, img.tag
        );
        for child in &img.children {
            assert_eq!(
                skopeo_inspect_raw(&format!(
                    "{}/mirror/{}@{}",
                    dst.host(),
                    img.repo,
                    child.digest
                )),
                child.manifest
            );
        }
    }
    let pulled = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!(
            "docker://{}/mirror/{}:{}",
            dst.host(),
            corpus[0].repo,
            corpus[0].tag
        ),
        &format!("dir:{}", pulled.path().display()),
        &["--src-tls-verify=false"],
    )
    .expect("skopeo checks every blob digest");

    // Nothing changed: the second run copies no byte.
    let out = ferry()
        .current_dir(work.path())
        .arg("sync")
        .args(&refs)
        .arg("--dst")
        .arg(format!("{}/mirror", dst.host()))
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("0 B in"),
        "second sync transfers nothing: {text}"
    );
    assert!(text.contains("already at"), "{text}");
}

#[test]
fn sync_reports_a_missing_image_and_copies_the_rest() {
    let src = Registry::start();
    let dst = Registry::start();
    let good = push_image(
        &src,
        "s/good",
        "1",
        Format::Oci,
        &[layer("sync-good", 20_000)],
        "sync-good",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let missing = format!("{}/s/missing:1", src.host());
    let out = ferry()
        .current_dir(work.path())
        .arg("sync")
        .arg(&good.reference)
        .arg(&missing)
        .arg("--dst")
        .arg(dst.host())
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("s/missing"),
        "names the failed image"
    );
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/s/good:1", dst.host())),
        good.manifest
    );
}

/// A webhook receiver: records the body of every POST.
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let posts = Arc::new(Mutex::new(Vec::new()));
    let seen = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push(v);
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, posts)
}

#[test]
fn daemon_picks_up_a_repushed_tag_and_notifies() {
    let src = Registry::start();
    let dst = Registry::start();
    let v1 = push_image(
        &src,
        "d/app",
        "stable",
        Format::Docker,
        &[layer("daemon-v1", 20_000)],
        "daemon-v1",
        false,
    );
    let (url, posts) = webhook();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("cfg.yaml"),
        format!("notify:\n  webhook: {url}\n"),
    )
    .unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .current_dir(work.path())
        .args([
            "sync",
            &v1.reference,
            "--dst",
            &dst.host(),
            "--interval",
            "2s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |digest: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if try_skopeo_inspect_raw(&format!("{}/d/app:stable", dst.host()), None)
                .map(|m| manifest_digest(&m))
                .ok()
                .as_deref()
                == Some(digest)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        false
    };
    assert!(wait_for(&v1.digest), "first round copies the image");
    // Re-push the tag with new content: a later round picks it up.
    let v2 = push_image(
        &src,
        "d/app",
        "stable",
        Format::Docker,
        &[layer("daemon-v2", 25_000)],
        "daemon-v2",
        false,
    );
    assert_ne!(v1.digest, v2.digest);
    assert!(
        wait_for(&v2.digest),
        "a later round copies the re-pushed tag"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while posts.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "Ctrl-C stops the daemon cleanly with exit 0: {status:?}\n{stderr}"
    );
    let posts = posts.lock().unwrap();
    assert!(
        posts.len() >= 2,
        "a webhook post for each round that changed something: {posts:?}"
    );
    assert!(
        posts
            .iter()
            .all(|p| p["mode"] == "sync" && p["succeeded"].as_u64() == Some(1)),
        "{posts:?}"
    );
    assert!(posts.iter().any(|p| p["bytes"].as_u64().unwrap_or(0) > 0));
}
