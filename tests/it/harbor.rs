//! A Harbor target: upload creates the missing projects (private) before pushing.
//! A small fake answers Harbor's project API and forwards the registry API to a
//! real docker-registry.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

struct FakeHarbor {
    host: String,
    created: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn read_request(stream: &mut BufReader<TcpStream>) -> Option<(String, Vec<String>, Vec<u8>)> {
    let mut first = String::new();
    stream.read_line(&mut first).ok()?;
    if first.is_empty() {
        return None;
    }
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        headers.push(line);
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((first, headers, body))
}

fn start_fake_harbor(upstream: String) -> FakeHarbor {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let created = Arc::new(Mutex::new(Vec::new()));
    let seen = created.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let upstream = upstream.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let Some((first, headers, body)) = read_request(&mut reader) else {
                    return;
                };
                let mut out = reader.into_inner();
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let reply = |out: &mut TcpStream, status: &str, body: &str| {
                    let _ = write!(out, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                };
                if path == "/api/v2.0/systeminfo" {
                    return reply(&mut out, "200 OK", r#"{"harbor_version":"v2.10.0-fake"}"#);
                }
                if let Some(name) = path.strip_prefix("/api/v2.0/projects?project_name=") {
                    let exists = seen
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|p: &serde_json::Value| p["project_name"] == name);
                    return reply(
                        &mut out,
                        if exists { "200 OK" } else { "404 Not Found" },
                        "",
                    );
                }
                if path == "/api/v2.0/projects" {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or_default());
                    return reply(&mut out, "201 Created", "");
                }
                // Everything else goes to the real registry, Host kept as ours.
                let mut up = TcpStream::connect(&upstream).unwrap();
                let mut req = first.into_bytes();
                for h in headers
                    .iter()
                    .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
                {
                    req.extend_from_slice(h.as_bytes());
                }
                req.extend_from_slice(b"connection: close\r\n\r\n");
                req.extend_from_slice(&body);
                up.write_all(&req).unwrap();
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                let _ = out.write_all(&resp);
            });
        }
    });
    FakeHarbor { host, created }
}

#[test]
fn upload_to_harbor_creates_private_projects_first() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "team/app",
        "1",
        Format::Oci,
        &[layer("harbor-a", 20_000)],
        "harbor-a",
        false,
    );
    let b = push_image(
        &src,
        "other/tool",
        "2",
        Format::Docker,
        &[layer("harbor-b", 20_000)],
        "harbor-b",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let saved = ferry()
        .current_dir(work.path())
        .args(["save", &a.reference, &b.reference, "--out", "o", "-q"])
        .assert()
        .success();
    let meta = String::from_utf8_lossy(&saved.get_output().stdout)
        .trim()
        .to_string();
    let harbor = start_fake_harbor(dst.host());
    ferry()
        .current_dir(work.path())
        .args(["upload", &meta, "--dst", &format!("{}/proj", harbor.host)])
        .assert()
        .success();
    let created = harbor.created.lock().unwrap().clone();
    assert_eq!(
        created.len(),
        1,
        "one project for both images under the namespace: {created:?}"
    );
    assert_eq!(created[0]["project_name"], "proj");
    assert_eq!(
        created[0]["metadata"]["public"], "false",
        "private by default"
    );
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/proj/team/app:1", dst.host())),
        a.manifest
    );
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/proj/other/tool:2", dst.host())),
        b.manifest
    );
}

#[test]
fn a_plain_registry_is_not_taken_for_harbor() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "team/app",
        "1",
        Format::Oci,
        &[layer("harbor-plain", 10_000)],
        "harbor-plain",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let out = ferry()
        .current_dir(work.path())
        .args(["sync", &a.reference, "--dst", &dst.host()])
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    assert!(!String::from_utf8_lossy(&out).contains("Harbor"));
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/team/app:1", dst.host())),
        a.manifest
    );
}
