//! Reliability: faults, interruption and resume, hostile input.
//!
//! Every test starts its own registries (and proxy, see `common::proxy`), so
//! the tests are independent and can run in parallel. Results are checked
//! with skopeo (an independent client) or by reading the bundle directly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Helpers

/// A finished ferry run (`success()`, the meta path a save printed, and all it
/// said when shown).
type Run = Output;

/// Runs `ferry ARGS...` to completion, whatever its exit status.
fn ferry_run(args: &[&str]) -> Run {
    FerryCmd::new().args(args).timeout(COMMAND_TIMEOUT).output()
}

/// `ferry save --out OUT FLAGS... REFS...` (global flags such as
/// `--retries` go after the subcommand, which clap accepts).
fn save(out: &Path, flags: &[&str], refs: &[String]) -> Run {
    let mut args: Vec<&str> = vec!["save", "--out", out.to_str().unwrap()];
    args.extend(flags);
    args.extend(refs.iter().map(String::as_str));
    ferry_run(&args)
}

fn verify(meta: &Path) -> Run {
    ferry_run(&["verify", meta.to_str().unwrap()])
}

fn start_registries(n: usize) -> Vec<Registry> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(Registry::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The meta as generic data (decoupled from ferry's own types).
fn load_meta(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

fn str_list(v: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i[field].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes of configs and layers stored in the bundle's own data files.
fn stored_blob_bytes(meta: &serde_json::Value) -> u64 {
    meta["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .filter(|b| b["kind"] != "manifest" && b["file"].is_string())
        .map(|b| b["size"].as_u64().expect("size"))
        .sum()
}

/// `(entry name, bytes)` of every entry of every data file the meta lists.
fn bundle_entries(meta_path: &Path) -> BTreeMap<String, Vec<u8>> {
    let meta = load_meta(meta_path);
    let dir = meta_path.parent().unwrap();
    let mut out = BTreeMap::new();
    for name in str_list(&meta, "files", "name") {
        let file = fs::File::open(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.insert(path, data);
        }
    }
    out
}

fn entry_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Files in `dir` and its subfolders (the bundle goes to DIR/YYYYMMDD/).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn names_ending(files: &[PathBuf], suffix: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .cloned()
        .collect()
}

/// `repo:tag` of a pushed image through another host (proxy or target).
fn via(host: &str, img: &PushedImage) -> String {
    format!("{host}/{}:{}", img.repo, img.tag)
}

/// Every manifest of `images` (tops by tag, index children by digest) is
/// served by `reg` with exactly the digest pushed at the source.
fn assert_target_has(reg: &Registry, images: &[PushedImage]) {
    std::thread::scope(|s| {
        for img in images {
            s.spawn(move || {
                let top = via(&reg.host(), img);
                assert_eq!(
                    skopeo_inspect_raw_digest(&top),
                    img.digest,
                    "{top}: digest at the target differs"
                );
                for child in &img.children {
                    let r = format!("{}/{}@{}", reg.host(), img.repo, child.digest);
                    assert_eq!(skopeo_inspect_raw(&r), child.manifest, "{r}");
                }
            });
        }
    });
}

/// The line of ferry's closing summary about `reference` failing.
fn failure_line<'a>(run: &'a Run, reference: &str) -> &'a str {
    let needle = format!("failed: {reference}: ");
    run.stderr
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no failure reported for {reference}\n{run}"))
}

// ---------------------------------------------------------------------------
// The proxy itself

/// The proxy forwards Content-Length and chunked bodies (skopeo pushes
/// through it), keeps upload Locations pointing at itself, and injects its
/// faults exactly on schedule.
#[test]
fn proxy_forwards_uploads_and_injects_faults_on_schedule() {
    let reg = Registry::start();
    let proxy = Proxy::start(&reg.host());

    // skopeo (Go) streams blob uploads; every request must reach the registry
    // and the upload session URLs must come back to the proxy.
    let image = build_image(
        Format::Oci,
        "linux/amd64",
        &[layer("proxy-self-test", 96 * 1024)],
        "proxy-self-test",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    write_dir_layout(dir.path(), &image);
    skopeo_copy(
        &format!("dir:{}", dir.path().display()),
        &format!("docker://{}", proxy.reference("via/proxy", "t")),
        &["--preserve-digests"],
    )
    .expect("skopeo push through the proxy");
    assert_eq!(
        skopeo_inspect_raw(&reg.reference("via/proxy", "t")),
        image.manifest
    );
    assert!(
        proxy.log().iter().any(|l| l.contains("/blobs/uploads/")),
        "no upload went through the proxy: {:?}",
        proxy.log()
    );

    // A PUT with a chunked body is de-chunked and forwarded.
    let blob = pseudo_random("chunked-put", 70_000);
    let digest = sha256_digest(&blob);
    let start = http_request(
        "POST",
        &format!("{}/v2/via/chunked/blobs/uploads/", proxy.url()),
        None,
        &[],
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(start.status, 202, "{}", start.text());
    let location = start.header("location").unwrap().to_string();
    assert!(
        location.contains(&proxy.host()) || location.starts_with('/'),
        "upload Location {location} bypasses the proxy"
    );
    let location = if location.starts_with('/') {
        format!("{}{location}", proxy.url())
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = chunked_put(&format!("{location}{sep}digest={digest}"), &blob);
    assert!(put.starts_with("HTTP/1.1 201"), "chunked PUT: {put}");
    let got = reg.get(&format!("/v2/via/chunked/blobs/{digest}"));
    assert_eq!(got.status, 200);
    assert!(got.body == blob, "blob stored through the proxy differs");

    // Faults follow the request counter: 503 on every 2nd request (the first
    // of them with Retry-After), a cut body on every 3rd.
    proxy.reset_stats();
    let layer_digest = &image.blobs[1].0.digest;
    let layer_size = image.blobs[1].0.size;
    proxy.set_faults(
        Faults::none()
            .unavailable_every(2)
            .retry_after(1)
            .cut_every(3),
    );
    let url = format!("{}/v2/via/proxy/blobs/{layer_digest}", proxy.url());
    let mut statuses = Vec::new();
    let mut retry_afters = Vec::new();
    let mut lengths = Vec::new();
    for _ in 0..6 {
        match http_request("GET", &url, None, &[], None, Duration::from_secs(10)) {
            Ok(r) => {
                statuses.push(r.status);
                retry_afters.push(r.header("retry-after").map(str::to_string));
                lengths.push(Some(r.body.len() as u64));
            }
            Err(_) => {
                // The cut body: the client sees the connection end early.
                statuses.push(0);
                retry_afters.push(None);
                lengths.push(None);
            }
        }
    }
    // The sequence counter went on through the requests above: find where we
    // are by the pattern rather than assuming an offset.
    let unavailable: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == 503)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(unavailable.len(), 3, "503s: {statuses:?}");
    assert!(
        unavailable.windows(2).all(|w| w[1] - w[0] == 2),
        "{statuses:?}"
    );
    // Every other injected 503 carries Retry-After: 1.
    let with_retry_after: Vec<bool> = unavailable
        .iter()
        .map(|i| retry_afters[*i].as_deref() == Some("1"))
        .collect();
    assert!(
        with_retry_after.windows(2).all(|w| w[0] != w[1]),
        "Retry-After should alternate: {retry_afters:?}"
    );
    let stats = proxy.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.unavailable, 3);
    assert!(stats.blob_cuts >= 1, "{stats:?} {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 0).count() as u64,
        stats.blob_cuts,
        "every cut body is an error for the client: {statuses:?}"
    );
    for (status, len) in statuses.iter().zip(&lengths) {
        if *status == 200 {
            assert_eq!(
                *len,
                Some(layer_size),
                "a complete answer has the whole blob"
            );
        }
    }
    assert_eq!(
        stats.blob_bytes,
        layer_size * (3 - stats.blob_cuts) + (layer_size / 2) * stats.blob_cuts,
        "{stats:?} {statuses:?} {:#?}",
        proxy.log()
    );

    // Wrong bytes for one blob, same length.
    proxy.set_faults(Faults::none().corrupt_blob(layer_digest));
    let r = http_get(&url, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, layer_size);
    assert_ne!(sha256_digest(&r.body), *layer_digest);
    assert_eq!(proxy.stats().corrupted, 1);
}

/// A PUT with `Transfer-Encoding: chunked`, by hand (reqwest would send a
/// Content-Length for a known body). Returns the response head.
fn chunked_put(url: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(30_000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

// ---------------------------------------------------------------------------
// Faults in transit

/// 503s (some with Retry-After), bodies cut mid-stream, answers lost after
/// the registry acted, and slow answers on the way in and out still give
/// byte-exact images; cut blob downloads resume with Range instead of
/// starting over.
#[test]
fn faults_during_save_and_upload_still_give_byte_exact_images() {
    let mut regs = start_registries(2);
    let dst = regs.pop().unwrap();
    let src = regs.pop().unwrap();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();

    let in_proxy = Proxy::start_with(
        &src.host(),
        Faults::none()
            .unavailable_every(5)
            .retry_after(1)
            .cut_every(3)
            .lose_response_every(13)
            .delay_every(7, Duration::from_millis(150))
            .max_faults_in_a_row(2),
    );
    let refs: Vec<String> = corpus.iter().map(|i| via(&in_proxy.host(), i)).collect();
    let run = save(
        &work.path().join("out"),
        &["--retries", "10", "--read-timeout", "20"],
        &refs,
    );
    assert!(run.success(), "save through a faulty proxy failed\n{run}");
    let meta_path = run.meta();
    let meta = load_meta(&meta_path);
    let stats = in_proxy.stats();
    assert!(stats.unavailable > 0, "no 503 was injected: {stats:?}");
    assert!(stats.blob_cuts > 0, "no blob body was cut: {stats:?}");
    assert!(stats.delays > 0, "no response was delayed: {stats:?}");
    assert!(stats.lost > 0, "no answer was lost: {stats:?}");
    assert!(
        stats.blob_range_gets > 0,
        "cut blob downloads were not resumed with Range: {stats:?}"
    );
    // Every blob byte crossed the wire once: the halves that were cut off
    // were kept, and only the rest was asked for again.
    assert_eq!(
        stats.blob_bytes,
        stored_blob_bytes(&meta),
        "blob bytes served vs bytes the bundle stores: {stats:?}"
    );
    let digests: BTreeMap<String, String> = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (img, r) in corpus.iter().zip(&refs) {
        assert_eq!(digests.get(r), Some(&img.digest), "{r} in the meta");
    }
    let v = verify(&meta_path);
    assert!(v.success(), "verify after a faulty save\n{v}");

    let out_proxy = Proxy::start_with(
        &dst.host(),
        Faults::none()
            .unavailable_every(7)
            .retry_after(1)
            .lose_response_every(11)
            .cut_every(5)
            .delay_every(6, Duration::from_millis(100))
            .max_faults_in_a_row(2),
    );
    let up = ferry_run(&[
        "upload",
        meta_path.to_str().unwrap(),
        "--dst",
        &out_proxy.host(),
        "--retries",
        "10",
    ]);
    assert!(up.success(), "upload through a faulty proxy failed\n{up}");
    let out_stats = out_proxy.stats();
    assert!(out_stats.unavailable > 0, "{out_stats:?}");
    assert!(out_stats.lost > 0, "no answer was lost: {out_stats:?}");

    // Byte-exact at the target, as skopeo sees it directly.
    assert_target_has(&dst, &corpus);
    for img in &corpus {
        assert_eq!(
            skopeo_inspect_raw_digest(&img.reference),
            skopeo_inspect_raw_digest(&via(&dst.host(), img)),
            "{}",
            img.reference
        );
    }
    // And the target holds every blob: skopeo can copy each image out.
    let copies = tempfile::tempdir().unwrap();
    for (n, img) in corpus.iter().enumerate() {
        let d = copies.path().join(n.to_string());
        fs::create_dir_all(&d).unwrap();
        skopeo_copy(
            &format!("docker://{}", via(&dst.host(), img)),
            &format!("dir:{}", d.display()),
            &["--all"],
        )
        .unwrap_or_else(|e| panic!("skopeo copy {} from the target: {e}", img.reference));
    }
}

/// Connections that go silent halfway through a body hit the read timeout
/// and resume with Range; every blob byte still crosses the wire only once.
#[test]
fn stalled_downloads_time_out_and_resume() {
    let src = Registry::start();
    let images: Vec<PushedImage> = (0..2)
        .map(|i| {
            let layers: Vec<Vec<u8>> = (0..3)
                .map(|j| layer(&format!("stall-{i}-{j}"), 96 * 1024 * (j + 1)))
                .collect();
            push_image(
                &src,
                &format!("stall/app{i}"),
                "1",
                Format::Oci,
                &layers,
                "stall",
                false,
            )
        })
        .collect();
    let proxy = Proxy::start_with(
        &src.host(),
        Faults::none()
            .stall_every(3, Duration::from_secs(60))
            .max_faults_in_a_row(1),
    );
    let refs: Vec<String> = images.iter().map(|i| via(&proxy.host(), i)).collect();
    let work = tempfile::tempdir().unwrap();
    let run = save(&work.path().join("out"), &["--read-timeout", "1"], &refs);
    assert!(run.success(), "save with stalled connections\n{run}");
    let stats = proxy.stats();
    assert!(stats.stalls > 0, "{stats:?}");
    assert!(stats.blob_range_gets > 0, "{stats:?}");
    let meta = load_meta(&run.meta());
    assert_eq!(
        stats.blob_bytes,
        stored_blob_bytes(&meta),
        "blob bytes served vs stored: {stats:?}"
    );
    assert!(verify(&run.meta()).success());
    assert_eq!(
        str_list(&meta, "images", "digest"),
        images.iter().map(|i| i.digest.clone()).collect::<Vec<_>>()
    );
}

/// A server that ignores Range (answers 200 with the whole blob): cut
/// downloads start over and the bundle is still exact.
#[test]
fn cut_downloads_restart_when_range_is_ignored() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "norange/app",
        "1",
        Format::Docker,
        &[
            layer("norange-0", 300 * 1024),
            layer("norange-1", 200 * 1024),
            layer("norange-2", 100 * 1024),
        ],
        "norange",
        false,
    );
    let proxy = Proxy::start_with(
        &src.host(),
        Faults::none()
            .ignore_range()
            .cut_every(2)
            .max_faults_in_a_row(1),
    );
    let work = tempfile::tempdir().unwrap();
    let run = save(&work.path().join("out"), &[], &[via(&proxy.host(), &image)]);
    assert!(run.success(), "{run}");
    let stats = proxy.stats();
    assert!(stats.blob_cuts > 0, "{stats:?}");
    let meta = load_meta(&run.meta());
    assert!(
        stats.blob_bytes > stored_blob_bytes(&meta),
        "cut downloads must have been fetched again from the start: {stats:?}"
    );
    assert!(verify(&run.meta()).success());
    let entries = bundle_entries(&run.meta());
    for b in &image.blobs {
        let data = &entries[&entry_name(&b.digest)];
        assert_eq!(sha256_digest(data), b.digest);
    }
}

/// Blob downloads redirected to another host (object storage, a CDN) are
/// followed, and a cut there resumes (through the redirect) with Range.
#[test]
fn redirected_blob_downloads_are_followed_and_resumed() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "redirect/app",
        "1",
        Format::Oci,
        &[
            layer("redirect-0", 256 * 1024),
            layer("redirect-1", 64 * 1024),
        ],
        "redirect",
        false,
    );
    let storage = Proxy::start_with(
        &src.host(),
        Faults::none().cut_every(2).max_faults_in_a_row(1),
    );
    let front = Proxy::start_with(
        &src.host(),
        Faults::none().redirect_blobs_to(&storage.host()),
    );
    let work = tempfile::tempdir().unwrap();
    let run = save(&work.path().join("out"), &[], &[via(&front.host(), &image)]);
    assert!(run.success(), "{run}");
    let meta = load_meta(&run.meta());
    let (f, st) = (front.stats(), storage.stats());
    assert!(f.redirects > 0 && f.blob_bytes == 0, "{f:?}");
    assert!(st.blob_cuts > 0 && st.blob_range_gets > 0, "{st:?}");
    assert_eq!(st.blob_bytes, stored_blob_bytes(&meta), "{st:?}");
    assert!(verify(&run.meta()).success());
}

/// A registry that takes the request and then says nothing: the read
/// timeout gives up on it and the retry goes through (ferry does not wait
/// for the hung answer).
#[test]
fn a_hanging_answer_times_out_and_is_retried() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "hang/app",
        "1",
        Format::Oci,
        &[layer("hang", 8 * 1024)],
        "hang",
        false,
    );
    let proxy = Proxy::start_with(
        &src.host(),
        Faults::none().delay_first(1, Duration::from_secs(120)),
    );
    let work = tempfile::tempdir().unwrap();
    let run = save(
        &work.path().join("out"),
        &["--read-timeout", "1"],
        &[via(&proxy.host(), &image)],
    );
    assert!(run.success(), "{run}");
    // The first request is the check that the registry answers at all.
    let log = proxy.log();
    let target = "GET /v2/ -> ";
    assert!(
        log.iter()
            .any(|l| l.starts_with("#1 ") && l.contains(target) && l.contains("delayed")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| !l.starts_with("#1 ") && l.contains(&format!("{target}200"))),
        "the hung request was not retried: {log:#?}"
    );
    assert_eq!(
        str_list(&load_meta(&run.meta()), "images", "digest"),
        vec![image.digest.clone()]
    );
}

// ---------------------------------------------------------------------------
// Interruption and resume

/// Ctrl-C while the manifests are still being resolved: exit 130 and
/// nothing written (no data file, journal or meta).
#[test]
fn interrupt_while_resolving_writes_nothing() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "early/app",
        "1",
        Format::Oci,
        &[layer("early", 8 * 1024)],
        "early",
        false,
    );
    let proxy = Proxy::start_with(
        &src.host(),
        Faults::none().delay_first(1, Duration::from_secs(120)),
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let args: Vec<String> = vec![
        "save".into(),
        "--out".into(),
        out.display().to_string(),
        via(&proxy.host(), &image),
    ];
    let mut child = Background::spawn(&args, work.path());
    child.wait_until("the manifest is asked for", Duration::from_secs(30), || {
        proxy.stats().requests >= 1
    });
    let status = child.signal_and_wait("INT");
    assert_eq!(status.code(), Some(130), "{status}; {}", child.stderr());
    let files = files_under(&out);
    assert!(files.is_empty(), "an interrupted resolve left {files:?}");
    assert!(child.stderr().contains("interrupted"), "{}", child.stderr());
}

/// Ctrl-C during a save keeps the partial data files and the journal and
/// writes no meta; the same command again finishes the bundle and downloads
/// only the blobs the journal did not record.
#[test]
fn interrupted_save_keeps_partial_files_and_resumes() {
    let src = Registry::start();
    let specs: [(&str, &[usize]); 3] = [
        ("big/one", &[3 * 1024 * 1024, 256 * 1024]),
        ("big/two", &[2 * 1024 * 1024, 128 * 1024]),
        ("big/three", &[1024 * 1024, 64 * 1024, 32 * 1024]),
    ];
    let images: Vec<PushedImage> = std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|(repo, sizes)| {
                let src = &src;
                s.spawn(move || {
                    let layers: Vec<Vec<u8>> = sizes
                        .iter()
                        .enumerate()
                        .map(|(i, size)| layer(&format!("{repo}-{i}"), *size))
                        .collect();
                    push_image(src, repo, "1", Format::Oci, &layers, repo, false)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sizes: BTreeMap<String, u64> = images
        .iter()
        .flat_map(|i| i.blobs.iter())
        .map(|b| (b.digest.clone(), b.size))
        .collect();
    let total: u64 = sizes.values().sum();
    let layer_digests: BTreeSet<String> = images
        .iter()
        .flat_map(|i| i.layers())
        .map(|b| b.digest.clone())
        .collect();

    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(1536 * 1024));
    let refs: Vec<String> = images.iter().map(|i| via(&proxy.host(), i)).collect();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut args: Vec<String> = vec![
        "save".into(),
        "--out".into(),
        out.display().to_string(),
        "--files".into(),
        "2".into(),
    ];
    args.extend(refs.iter().cloned());

    let mut child = Background::spawn(&args, work.path());

    // Wait until some bytes went through and at least two blobs, one of them
    // a layer, are journaled.
    child.wait_until("two blobs are journaled", Duration::from_secs(60), || {
        let done: Vec<String> = journaled_digests(&out)
            .into_iter()
            .filter(|d| sizes.contains_key(d))
            .collect();
        proxy.stats().blob_bytes >= 512 * 1024
            && done.len() >= 2
            && done.iter().any(|d| layer_digests.contains(d))
    });
    let status = child.signal_and_wait("INT");
    let first_bytes = proxy.stats().blob_bytes;
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted save must exit 130 ({status}); stderr:\n{}",
        child.stderr()
    );
    assert!(
        first_bytes < total,
        "the whole image set was downloaded before the interruption ({first_bytes} of {total}); \
         the test did not interrupt anything"
    );
    assert!(
        child.stderr().contains("interrupted"),
        "stderr:\n{}",
        child.stderr()
    );
    let files = files_under(&out);
    assert!(
        names_ending(&files, "_meta.yaml").is_empty(),
        "an interrupted save wrote a meta: {files:?}"
    );
    let partials = names_ending(&files, ".tar.partial");
    assert!(
        !partials.is_empty(),
        "no .partial data files kept: {files:?}"
    );
    let journals = names_ending(&files, ".journal");
    assert_eq!(journals.len(), 1, "{files:?}");
    let stem = journals[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".journal")
        .to_string();
    assert!(names_ending(&files, ".tar").is_empty(), "{files:?}");

    // What the journal records as done (configs and layers) is not fetched again.
    let journaled: BTreeSet<String> = journaled_digests(&out)
        .into_iter()
        .filter(|d| sizes.contains_key(d))
        .collect();
    assert!(
        journaled.iter().any(|d| layer_digests.contains(d)),
        "{journaled:?}"
    );
    let journaled_bytes: u64 = journaled.iter().map(|d| sizes[d]).sum();

    // The rerun must not trust the journal blindly: damage one journaled
    // layer inside its .partial file; it has to be fetched again.
    let tampered = journaled
        .iter()
        .find(|d| layer_digests.contains(*d))
        .unwrap()
        .clone();
    assert!(
        flip_byte_of_entry(&partials, &tampered),
        "{tampered} not found in {partials:?}"
    );

    // Same command again, without the throttle.
    proxy.set_faults(Faults::none());
    proxy.reset_stats();
    let run = ferry_run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.success(), "resumed save failed\n{run}");
    let meta_path = run.meta();
    assert_eq!(
        meta_path.file_name().unwrap().to_string_lossy(),
        format!("{stem}_meta.yaml"),
        "the rerun did not finish the interrupted bundle\n{run}"
    );
    let second_bytes = proxy.stats().blob_bytes;
    assert!(
        second_bytes < total,
        "the rerun downloaded {second_bytes} blob bytes, the whole set is {total}"
    );
    assert_eq!(
        second_bytes,
        total - journaled_bytes + sizes[&tampered],
        "the rerun should download exactly the blobs the journal lacks, plus the \
         journaled one damaged on disk ({tampered})"
    );
    let files = files_under(&out);
    assert!(names_ending(&files, ".partial").is_empty(), "{files:?}");
    assert!(names_ending(&files, ".journal").is_empty(), "{files:?}");
    let v = verify(&meta_path);
    assert!(v.success(), "verify after resume\n{v}");
    let meta = load_meta(&meta_path);
    assert_eq!(stored_blob_bytes(&meta), total);
    let entries = bundle_entries(&meta_path);
    for img in &images {
        for b in &img.blobs {
            let data = entries
                .get(&entry_name(&b.digest))
                .unwrap_or_else(|| panic!("{} missing from the bundle", b.digest));
            assert_eq!(sha256_digest(data), b.digest);
        }
        assert_eq!(
            entries.get(&entry_name(&img.digest)),
            Some(&img.manifest),
            "manifest of {}",
            img.reference
        );
    }
}

/// A ferry process the test spawned itself (so that it gets our signals with
/// their default disposition), output going to files in `dir`.
struct Background {
    child: std::process::Child,
    stderr_path: PathBuf,
}

impl Background {
    fn spawn(args: &[String], dir: &Path) -> Background {
        let stderr_path = dir.join("background.stderr");
        let child = Command::new(FERRY)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("background.stdout")).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawning ferry");
        Background { child, stderr_path }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls `ready` until it holds; panics if ferry ends first or on timeout.
    fn wait_until(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ferry ended ({status}) before {what}; stderr:\n{}",
                    self.stderr()
                );
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `kill -SIGNAL` and waits (at most 30 s) for ferry to end.
    fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "ferry did not stop within 30 s of SIG{signal}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM is an interruption too: exit 130, partial files and journal kept,
/// no meta; the rerun completes the same bundle.
#[test]
fn terminated_save_exits_130_and_the_rerun_completes() {
    let src = Registry::start();
    let big = push_image(
        &src,
        "term/big",
        "1",
        Format::Docker,
        &[layer("term-big", 1536 * 1024)],
        "term-big",
        false,
    );
    let small = push_image(
        &src,
        "term/small",
        "1",
        Format::Oci,
        &[layer("term-small", 16 * 1024)],
        "term-small",
        false,
    );
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(512 * 1024));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let save_args = |refs: &[&PushedImage], extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["save".into(), "--out".into(), out.display().to_string()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(refs.iter().map(|i| via(&proxy.host(), i)));
        a
    };
    let mut child = Background::spawn(&save_args(&[&big, &small], &[]), work.path());
    child.wait_until("256 KiB were served", Duration::from_secs(60), || {
        proxy.stats().blob_bytes >= 256 * 1024
    });
    let status = child.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(130), "{status}; {}", child.stderr());
    let files = files_under(&out);
    assert!(names_ending(&files, "_meta.yaml").is_empty(), "{files:?}");
    assert!(!names_ending(&files, ".partial").is_empty(), "{files:?}");
    let journals = names_ending(&files, ".journal");
    assert_eq!(journals.len(), 1, "{files:?}");
    let stem = journals[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".journal")
        .to_string();
    proxy.set_faults(Faults::none());

    // Another save into the same folder meanwhile gets a bundle of its own
    // and leaves the unfinished one alone.
    let other = ferry_run(&strs(&save_args(&[&small], &[])));
    assert!(other.success(), "{other}");
    assert!(
        !other.meta().to_string_lossy().contains(&format!("{stem}_")),
        "{other}"
    );
    assert!(journals[0].exists(), "the other save removed the journal");

    // The same request again (references in another order, other --jobs)
    // finishes the interrupted bundle.
    let run = ferry_run(&strs(&save_args(&[&small, &big], &["--jobs", "1"])));
    assert!(run.success(), "{run}");
    assert_eq!(
        run.meta().file_name().unwrap().to_string_lossy(),
        format!("{stem}_meta.yaml"),
        "the rerun did not finish the interrupted bundle\n{run}"
    );
    let files = files_under(&out);
    assert_eq!(names_ending(&files, "_meta.yaml").len(), 2, "{files:?}");
    assert!(names_ending(&files, ".partial").is_empty(), "{files:?}");
    assert!(names_ending(&files, ".journal").is_empty(), "{files:?}");
    assert!(verify(&run.meta()).success());
    let entries = bundle_entries(&run.meta());
    for img in [&big, &small] {
        for b in &img.blobs {
            assert!(entries.contains_key(&entry_name(&b.digest)), "{}", b.digest);
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Inverts one byte in the middle of the data of entry `digest`, in whichever
/// of the (partial) tar data files holds it. Returns whether it was found.
fn flip_byte_of_entry(files: &[PathBuf], digest: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom, Write};
    let name = entry_name(digest);
    for path in files {
        let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
        let found = archive
            .entries()
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                e.path()
                    .map(|p| p.to_string_lossy() == name)
                    .unwrap_or(false)
            })
            .map(|e| (e.raw_file_position(), e.size()));
        if let Some((pos, size)) = found {
            let mut f = fs::OpenOptions::new()
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

/// Digests listed in the journal of the (single) unfinished bundle under `out`.
fn journaled_digests(out: &Path) -> Vec<String> {
    let files = files_under(out);
    let Some(journal) = names_ending(&files, ".journal").into_iter().next() else {
        return Vec::new();
    };
    fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        // `sha256:<hex> <bytes>` lines say how far a blob got, not that it is done.
        .filter(|l| l.starts_with("sha256:") && !l.contains(' '))
        .collect()
}

// ---------------------------------------------------------------------------
// Wrong bytes

/// A registry serving wrong bytes for a blob (same size), or a blob shorter
/// than its descriptor: those images fail with a digest / size error and are
/// left out of the bundle; the others are saved.
#[test]
fn blob_with_wrong_bytes_in_the_registry_fails_only_its_image() {
    let src = Registry::start();
    let shared = layer("wrong-bytes-shared", 32 * 1024);
    let good = push_image(
        &src,
        "good/app",
        "1",
        Format::Docker,
        &[shared.clone(), layer("wrong-bytes-good", 48 * 1024)],
        "good",
        false,
    );
    let bad = push_image(
        &src,
        "bad/app",
        "1",
        Format::Oci,
        &[shared, layer("wrong-bytes-bad", 64 * 1024)],
        "bad",
        false,
    );
    let bad_layer = bad.layers()[1].digest.clone();
    let path = src.blob_data_path(&bad_layer);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 2..n / 2 + 16] {
        *b ^= 0x5a;
    }
    fs::write(&path, &bytes).unwrap();
    // A third image whose layer file lost its tail: served shorter than its
    // descriptor says.
    let short = push_image(
        &src,
        "short/app",
        "1",
        Format::Docker,
        &[layer("wrong-bytes-short", 40 * 1024)],
        "short",
        false,
    );
    let short_layer = short.layers()[0].digest.clone();
    let path = src.blob_data_path(&short_layer);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();

    let work = tempfile::tempdir().unwrap();
    let run = save(
        &work.path().join("out"),
        &["--retries", "1"],
        &[
            good.reference.clone(),
            bad.reference.clone(),
            short.reference.clone(),
        ],
    );
    assert_eq!(run.code, Some(1), "{run}");
    let line = failure_line(&run, &bad.reference);
    assert!(line.contains("digest"), "{line}");
    assert!(line.contains(&bad_layer), "names the blob: {line}");
    let line = failure_line(&run, &short.reference);
    assert!(line.contains("size"), "{line}");
    assert!(line.contains(&short_layer), "names the blob: {line}");
    assert!(
        !run.stderr
            .contains(&format!("failed: {}: ", good.reference)),
        "{run}"
    );

    let meta_path = run.meta();
    assert_bundle_holds_only(&meta_path, &[&good], &[&bad, &short]);
    let meta = load_meta(&meta_path);
    let failed = meta["failed"].as_array().expect("failed list");
    assert_eq!(failed.len(), 2, "{failed:?}");
    let reasons: BTreeMap<&str, &str> = failed
        .iter()
        .map(|f| {
            (
                f["reference"].as_str().unwrap(),
                f["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        reasons[bad.reference.as_str()].contains("digest"),
        "{reasons:?}"
    );
    assert!(
        reasons[short.reference.as_str()].contains("size"),
        "{reasons:?}"
    );
    let v = verify(&meta_path);
    assert!(
        v.success(),
        "the bundle without the bad image must verify\n{v}"
    );
}

/// The proxy flips the bytes of a layer that two images share: both fail
/// (with retries, since the bytes stay wrong), a third image is saved.
#[test]
fn blob_corrupted_in_transit_fails_every_image_that_needs_it() {
    let src = Registry::start();
    let shared = layer("transit-shared", 40 * 1024);
    let a = push_image(
        &src,
        "transit/a",
        "1",
        Format::Oci,
        &[shared.clone(), layer("transit-a", 8 * 1024)],
        "a",
        false,
    );
    let b = push_image(
        &src,
        "transit/b",
        "1",
        Format::Docker,
        &[shared, layer("transit-b", 8 * 1024)],
        "b",
        false,
    );
    let c = push_image(
        &src,
        "transit/c",
        "1",
        Format::Oci,
        &[layer("transit-c", 24 * 1024)],
        "c",
        false,
    );
    let bad = a.layers()[0].digest.clone();
    let proxy = Proxy::start_with(&src.host(), Faults::none().corrupt_blob(&bad));
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<String> = [&a, &b, &c].iter().map(|i| via(&proxy.host(), i)).collect();
    let run = save(&work.path().join("out"), &["--retries", "2"], &refs);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(proxy.stats().corrupted >= 1);
    for r in &refs[..2] {
        let line = failure_line(&run, r);
        assert!(line.contains("digest") && line.contains(&bad), "{line}");
    }
    let meta_path = run.meta();
    let meta = load_meta(&meta_path);
    assert_eq!(
        str_list(&meta, "images", "reference"),
        vec![refs[2].clone()]
    );
    let entries = bundle_entries(&meta_path);
    assert!(!entries.contains_key(&entry_name(&bad)));
    for blob in &c.blobs {
        assert!(entries.contains_key(&entry_name(&blob.digest)));
    }
    assert!(verify(&meta_path).success());
}

/// The bundle holds every manifest and blob of `kept` (bytes matching their
/// digests), lists exactly those images, and holds no manifest of `dropped`.
fn assert_bundle_holds_only(meta_path: &Path, kept: &[&PushedImage], dropped: &[&PushedImage]) {
    let entries = bundle_entries(meta_path);
    for (name, bytes) in &entries {
        assert_eq!(
            entry_name(&sha256_digest(bytes)),
            *name,
            "entry {name} holds other bytes"
        );
    }
    for img in kept {
        for m in img.manifests() {
            assert!(
                entries.contains_key(&entry_name(&m.digest)),
                "{}: manifest {} missing",
                img.reference,
                m.digest
            );
            for b in &m.blobs {
                assert!(
                    entries.contains_key(&entry_name(&b.digest)),
                    "{}: blob {} missing",
                    img.reference,
                    b.digest
                );
            }
        }
    }
    for img in dropped {
        assert!(
            !entries.contains_key(&entry_name(&img.digest)),
            "{}: a failed image's manifest is in the bundle",
            img.reference
        );
    }
    let meta = load_meta(meta_path);
    let mut listed = str_list(&meta, "images", "reference");
    listed.sort();
    let mut want: Vec<String> = kept.iter().map(|i| i.reference.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
}

/// A layer that one repository lost (its link is gone: 404 "blob unknown")
/// fails the image of that repository only; another repository's image that
/// shares the layer, and can serve it, is saved.
#[test]
fn a_blob_missing_in_one_repository_fails_only_that_image() {
    let src = Registry::start();
    let shared = layer("rel-shared-missing", 40_000);
    let broken = push_image(
        &src,
        "aa/broken",
        "1",
        Format::Docker,
        &[shared.clone(), layer("rel-broken-own", 10_000)],
        "rel-broken",
        false,
    );
    let healthy = push_image(
        &src,
        "zz/healthy",
        "1",
        Format::Docker,
        &[shared, layer("rel-healthy-own", 10_000)],
        "rel-healthy",
        false,
    );
    let shared_digest = broken.layers()[0].digest.clone();
    assert_eq!(healthy.layers()[0].digest, shared_digest);
    let link = src
        .storage_dir()
        .join("docker/registry/v2/repositories/aa/broken/_layers/sha256")
        .join(shared_digest.trim_start_matches("sha256:"));
    fs::remove_dir_all(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));

    let out = tempfile::tempdir().unwrap();
    let run = save(
        out.path(),
        &["--retries", "0"],
        &[broken.reference.clone(), healthy.reference.clone()],
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        failure_line(&run, &broken.reference).contains("aa/broken"),
        "{run}"
    );
    assert!(
        !run.stderr
            .contains(&format!("failed: {}", healthy.reference)),
        "the healthy image must not fail\n{run}"
    );
    let meta = load_meta(&run.meta());
    assert_eq!(
        str_list(&meta, "images", "reference"),
        vec![healthy.reference.clone()]
    );
    assert!(verify(&run.meta()).success());
}

/// The target refuses one repository (403): the images going there fail, but
/// an image of another repository that shares their layers is uploaded.
#[test]
fn upload_denied_for_one_repository_fails_only_its_images() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let shared = layer("rel-shared-denied", 40_000);
    let refused = push_image(
        src,
        "aa/refused",
        "1",
        Format::Oci,
        std::slice::from_ref(&shared),
        "rel-refused",
        false,
    );
    let welcome = push_image(
        src,
        "zz/welcome",
        "1",
        Format::Oci,
        &[shared, layer("rel-welcome-own", 8_000)],
        "rel-welcome",
        false,
    );
    let out = tempfile::tempdir().unwrap();
    let run = save(
        out.path(),
        &[],
        &[refused.reference.clone(), welcome.reference.clone()],
    );
    assert!(run.success(), "{run}");
    let proxy = Proxy::start_with(&dst.host(), Faults::none().deny("aa/refused"));
    let up = ferry_run(&[
        "upload",
        run.meta().to_str().unwrap(),
        "--dst",
        &proxy.host(),
        "--retries",
        "0",
    ]);
    assert_eq!(up.code, Some(1), "{up}");
    failure_line(&up, &refused.reference);
    assert!(
        !up.stderr
            .contains(&format!("failed: {}", welcome.reference)),
        "the welcome image must not fail\n{up}"
    );
    assert_eq!(
        skopeo_inspect_raw_digest(&via(&dst.host(), &welcome)),
        welcome.digest
    );
    assert!(try_skopeo_inspect_raw(&via(&dst.host(), &refused), None).is_err());
}

/// Hostile manifests (too large, malformed, unknown type, redirect loop, a lying
/// digest header): a clear error for that image, the others are saved.
#[test]
fn hostile_manifests_fail_their_image_with_a_clear_error() {
    let src = Registry::start();
    let good = push_image(
        &src,
        "fine/app",
        "1",
        Format::Oci,
        &[layer("hostile-good", 16 * 1024)],
        "fine",
        false,
    );
    let cases: [(&str, Hostile, &[&str]); 6] = [
        ("hostile/huge", Hostile::TooLarge, &["limit"]),
        ("hostile/huge-chunked", Hostile::TooLargeChunked, &["limit"]),
        (
            "hostile/garbage",
            Hostile::MalformedJson,
            &["not valid JSON"],
        ),
        (
            "hostile/weird",
            Hostile::UnknownMediaType,
            &[
                "unsupported manifest media type",
                Hostile::UNKNOWN_MEDIA_TYPE,
            ],
        ),
        ("hostile/loop", Hostile::RedirectLoop, &["redirect"]),
        (
            "hostile/lying",
            Hostile::DigestHeaderMismatch,
            &[
                "Docker-Content-Digest",
                "does not match",
                Hostile::WRONG_DIGEST,
            ],
        ),
    ];
    // The lying registry serves a real manifest, with a false digest header.
    push_image(
        &src,
        "hostile/lying",
        "1",
        Format::Docker,
        &[layer("hostile-lying", 8 * 1024)],
        "lying",
        false,
    );
    let mut faults = Faults::none();
    for (repo, how, _) in &cases {
        faults = faults.hostile(repo, *how);
    }
    let proxy = Proxy::start_with(&src.host(), faults);
    let good_ref = via(&proxy.host(), &good);
    let mut refs = vec![good_ref.clone()];
    refs.extend(
        cases
            .iter()
            .map(|(repo, _, _)| format!("{}/{repo}:1", proxy.host())),
    );

    let work = tempfile::tempdir().unwrap();
    let run = save(&work.path().join("out"), &["--retries", "2"], &refs);
    assert_eq!(run.code, Some(1), "{run}");
    for ((_, how, fragments), r) in cases.iter().zip(&refs[1..]) {
        let line = failure_line(&run, r);
        for f in *fragments {
            assert!(line.contains(f), "{how:?}: {f:?} not in {line:?}");
        }
    }
    assert!(proxy.stats().hostile >= cases.len() as u64);

    let meta_path = run.meta();
    let meta = load_meta(&meta_path);
    assert_eq!(str_list(&meta, "images", "reference"), vec![good_ref]);
    assert_eq!(
        str_list(&meta, "images", "digest"),
        vec![good.digest.clone()]
    );
    let failed: BTreeSet<String> = str_list(&meta, "failed", "reference").into_iter().collect();
    assert_eq!(
        failed,
        refs[1..].iter().cloned().collect::<BTreeSet<_>>(),
        "failed list in the meta"
    );
    let entries = bundle_entries(&meta_path);
    for b in &good.blobs {
        assert!(entries.contains_key(&entry_name(&b.digest)));
    }
    let v = verify(&meta_path);
    assert!(v.success(), "{v}");
}

// ---------------------------------------------------------------------------
// Broken bundles

/// Copies the bundle (meta + data files) into a fresh folder of `root`.
fn copy_bundle(meta_path: &Path, root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let meta = load_meta(meta_path);
    for f in str_list(&meta, "files", "name") {
        fs::copy(meta_path.parent().unwrap().join(&f), dir.join(&f)).unwrap();
    }
    let target = dir.join(meta_path.file_name().unwrap());
    fs::copy(meta_path, &target).unwrap();
    target
}

/// A meta of an unknown version, a malformed meta and a data file swapped
/// in from another bundle: upload refuses before pushing anything, verify
/// exits 1.
#[test]
fn broken_bundles_are_refused_before_anything_is_pushed() {
    let mut regs = start_registries(2);
    let dst = regs.pop().unwrap();
    let src = regs.pop().unwrap();
    let a = push_image(
        &src,
        "bundle/a",
        "1",
        Format::Oci,
        &[
            layer("broken-a-0", 40 * 1024),
            layer("broken-a-1", 20 * 1024),
        ],
        "a",
        false,
    );
    let b = push_image(
        &src,
        "bundle/b",
        "1",
        Format::Oci,
        &[
            layer("broken-b-0", 40 * 1024),
            layer("broken-b-1", 20 * 1024),
        ],
        "b",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let run_a = save(
        &work.path().join("a"),
        &[],
        std::slice::from_ref(&a.reference),
    );
    assert!(run_a.success(), "{run_a}");
    let run_b = save(
        &work.path().join("b"),
        &[],
        std::slice::from_ref(&b.reference),
    );
    assert!(run_b.success(), "{run_b}");
    let meta_a = run_a.meta();
    let meta_b = run_b.meta();
    assert!(verify(&meta_a).success());

    let cases = work.path().join("cases");
    let mut broken: Vec<(&str, PathBuf, Vec<&str>)> = Vec::new();

    // version: 99
    let m = copy_bundle(&meta_a, &cases, "version99");
    let text = fs::read_to_string(&m).unwrap();
    assert!(text.contains("version: 2\n"), "{text}");
    fs::write(&m, text.replacen("version: 2\n", "version: 99\n", 1)).unwrap();
    broken.push(("version 99", m, vec!["99"]));

    // Malformed: the meta cut in the middle.
    let m = copy_bundle(&meta_a, &cases, "truncated");
    let text = fs::read_to_string(&m).unwrap();
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    fs::write(&m, &text[..cut]).unwrap();
    broken.push(("truncated meta", m, vec![]));

    // Malformed: not YAML at all.
    let m = copy_bundle(&meta_a, &cases, "garbage");
    fs::write(
        &m,
        "format: ferry-bundle\nversion: 1\nfiles: [\n  {name: : :\n",
    )
    .unwrap();
    broken.push(("garbage meta", m, vec![]));

    // A data file of bundle b copied over bundle a's file of the same name.
    let m = copy_bundle(&meta_a, &cases, "swapped");
    let files_a = str_list(&load_meta(&meta_a), "files", "name");
    let files_b = str_list(&load_meta(&meta_b), "files", "name");
    fs::copy(
        meta_b.parent().unwrap().join(&files_b[0]),
        m.parent().unwrap().join(&files_a[0]),
    )
    .unwrap();
    broken.push(("swapped data file", m, vec!["failed verification"]));

    // One byte of a layer flipped inside a data file (same size).
    let flipped = copy_bundle(&meta_a, &cases, "flipped");
    let files: Vec<PathBuf> = files_a
        .iter()
        .map(|f| flipped.parent().unwrap().join(f))
        .collect();
    assert!(flip_byte_of_entry(&files, &a.layers()[0].digest));
    broken.push(("flipped byte", flipped.clone(), vec!["failed verification"]));

    for (what, meta, fragments) in &broken {
        let v = verify(meta);
        assert_eq!(v.code, Some(1), "verify of {what}\n{v}");
        // A flipped byte is found as its blob streams out: `--verify size` then
        // fails only that image (below).
        let modes: &[&str] = if *what == "flipped byte" {
            &["full"]
        } else {
            &["full", "size"]
        };
        for verify_mode in modes {
            let up = ferry_run(&[
                "upload",
                meta.to_str().unwrap(),
                "--dst",
                &dst.host(),
                "--verify",
                verify_mode,
            ]);
            assert_eq!(
                up.code,
                Some(1),
                "upload of {what} (--verify {verify_mode})\n{up}"
            );
            for f in fragments {
                assert!(up.stderr.contains(f), "{what}: {f:?} missing\n{up}");
            }
            if *what == "flipped byte" {
                // Found as the blob streams out: other blobs may be there, but the
                // error names the image and the blob, and nothing is tagged.
                assert!(
                    up.stderr.contains(&a.reference) && up.stderr.contains(&a.layers()[0].digest),
                    "{what}: the image and blob are named\n{up}"
                );
                assert!(dst.tags(&a.repo).is_empty(), "{what}: tagged");
                continue;
            }
            assert!(
                dst.catalog().is_empty(),
                "upload of {what} (--verify {verify_mode}) pushed something: {:?}",
                dst.catalog()
            );
        }
    }
    // With only sizes checked, the flipped blob reaches the registry, which
    // refuses it: that image fails and gets no tag.
    let up = ferry_run(&[
        "upload",
        flipped.to_str().unwrap(),
        "--dst",
        &dst.host(),
        "--verify",
        "size",
    ]);
    assert_eq!(up.code, Some(1), "{up}");
    let line = failure_line(&up, &a.reference);
    assert!(line.to_lowercase().contains("digest"), "{line}");
    assert!(dst.tags(&a.repo).is_empty());

    // The intact bundle still uploads (the refusals above were about the damage).
    let up = ferry_run(&["upload", meta_a.to_str().unwrap(), "--dst", &dst.host()]);
    assert!(up.success(), "{up}");
    assert_target_has(&dst, std::slice::from_ref(&a));
}

/// Upload hashes each blob as it streams out, not the bundle beforehand: a blob
/// found corrupt after others were pushed stops the upload before its own upload
/// completes, the error names it and its image, and no image of the bundle is
/// tagged (skopeo finds none), though the blobs pushed before it are there.
#[test]
fn a_blob_found_corrupt_after_others_were_pushed_tags_nothing() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| layer(&format!("late-corrupt-{i}"), 96 * 1024))
        .collect();
    let a = push_image(src, "late/a", "1", Format::Oci, &layers[..2], "a", false);
    let b = push_image(src, "late/b", "1", Format::Docker, &layers[2..], "b", false);
    // With --jobs 1 blobs go one at a time in digest order: the layer with the
    // greatest digest streams after the other three.
    let last = layers
        .iter()
        .max_by_key(|l| sha256_digest(l))
        .unwrap()
        .clone();
    let last_digest = sha256_digest(&last);
    let owner = [&a, &b]
        .into_iter()
        .find(|i| i.blobs.iter().any(|x| x.digest == last_digest))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = save(
        &work.path().join("out"),
        &[],
        &[a.reference.clone(), b.reference.clone()],
    );
    assert!(run.success(), "{run}");
    let meta = run.meta();
    corrupt_blob_in_bundle(meta.to_str().unwrap(), &last);

    let up = ferry_run(&[
        "upload",
        meta.to_str().unwrap(),
        "--dst",
        &dst.host(),
        "--jobs",
        "1",
    ]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(up.stderr.contains("failed verification"), "{up}");
    assert!(
        up.stderr.contains(&last_digest) && up.stderr.contains(&owner.reference),
        "names the blob and its image\n{up}"
    );
    // Pushed before the corrupt one was read...
    let earlier: Vec<&Vec<u8>> = layers
        .iter()
        .filter(|l| sha256_digest(l) < last_digest)
        .collect();
    assert_eq!(earlier.len(), 3);
    for l in earlier {
        let d = sha256_digest(l);
        let repo = if a.blobs.iter().any(|x| x.digest == d) {
            &a.repo
        } else {
            &b.repo
        };
        let got = dst.get(&format!("/v2/{repo}/blobs/{d}"));
        assert_eq!(got.status, 200, "{d} was pushed before the corrupt blob");
    }
    // ...the corrupt one is not, and nothing is tagged.
    let got = dst.get(&format!("/v2/{}/blobs/{last_digest}", owner.repo));
    assert_eq!(got.status, 404, "the corrupt blob is not at the target");
    for image in [&a, &b] {
        assert!(dst.tags(&image.repo).is_empty(), "{} tagged", image.repo);
        let target = format!("{}/{}:1", dst.host(), image.repo);
        assert!(
            try_skopeo_inspect_raw(&target, None).is_err(),
            "skopeo finds {target}"
        );
    }
}

// ---------------------------------------------------------------------------
// Upload rerun

/// Ctrl-C during an upload: exit 130, no tag set; the rerun sends only the
/// blobs the target still lacks and completes it byte-exact.
#[test]
fn interrupted_upload_sets_no_tag_and_the_rerun_completes() {
    let mut regs = start_registries(2);
    let dst = regs.pop().unwrap();
    let src = regs.pop().unwrap();
    let images = vec![
        push_image(
            &src,
            "up/one",
            "1",
            Format::Oci,
            &[layer("up-one", 768 * 1024)],
            "one",
            false,
        ),
        push_image(
            &src,
            "up/two",
            "1",
            Format::Docker,
            &[layer("up-two", 1536 * 1024)],
            "two",
            false,
        ),
    ];
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    let run = save(&work.path().join("out"), &[], &refs);
    assert!(run.success(), "{run}");
    let meta = run.meta();

    let proxy = Proxy::start_with(&dst.host(), Faults::none().throttle(1024 * 1024));
    let args: Vec<String> = vec![
        "upload".into(),
        meta.display().to_string(),
        "--dst".into(),
        proxy.host(),
        "--jobs".into(),
        "1".into(),
    ];
    let present = |img: &PushedImage, digest: &str| {
        dst.request(
            "HEAD",
            &format!("/v2/{}/blobs/{digest}", img.repo),
            &[],
            None,
        )
        .status
            == 200
    };
    let layer_present = || {
        images
            .iter()
            .any(|i| i.layers().iter().any(|l| present(i, &l.digest)))
    };
    let mut child = Background::spawn(&args, work.path());
    child.wait_until("a layer is in the target", Duration::from_secs(60), || {
        layer_present()
    });
    let status = child.signal_and_wait("INT");
    assert_eq!(status.code(), Some(130), "{status}; {}", child.stderr());
    assert!(
        child.stderr().contains("interrupted"),
        "stderr:\n{}",
        child.stderr()
    );
    for img in &images {
        assert!(
            dst.tags(&img.repo).is_empty(),
            "{} was tagged by an interrupted upload",
            img.repo
        );
    }
    // A PUT the proxy had fully received when ferry stopped still reaches the
    // registry: count what is there once it has.
    proxy.wait_idle(Duration::from_secs(30));
    let (mut present_bytes, mut missing_bytes) = (0, 0);
    for img in &images {
        for b in &img.blobs {
            if present(img, &b.digest) {
                present_bytes += b.size;
            } else {
                missing_bytes += b.size;
            }
        }
    }
    assert!(present_bytes > 0);

    proxy.set_faults(Faults::none());
    proxy.reset_stats();
    let again = ferry_run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(again.success(), "{again}");
    let sent = proxy.stats().request_body_bytes;
    assert!(
        sent >= missing_bytes && sent < missing_bytes + present_bytes,
        "the rerun sent {sent} body bytes; missing blobs {missing_bytes}, present {present_bytes}"
    );
    assert_target_has(&dst, &images);
}

/// An upload losing requests with `--retries 0` reports its failed images and
/// sets no half tag; the rerun without faults completes the target byte-exact.
#[test]
fn upload_rerun_after_failed_requests_completes_the_target() {
    let mut regs = start_registries(2);
    let dst = regs.pop().unwrap();
    let src = regs.pop().unwrap();
    let corpus = seed_corpus(&src);
    let refs: Vec<String> = corpus.iter().map(|i| i.reference.clone()).collect();
    let work = tempfile::tempdir().unwrap();
    let run = save(&work.path().join("out"), &[], &refs);
    assert!(run.success(), "{run}");
    let meta = run.meta();

    let proxy = Proxy::start_with(&dst.host(), Faults::none().unavailable_every(3));
    // Global flags before the subcommand, as the usage shows them.
    let up = ferry_run(&[
        "--retries",
        "0",
        "upload",
        meta.to_str().unwrap(),
        "--dst",
        &proxy.host(),
    ]);
    assert_eq!(up.code, Some(1), "upload losing every 3rd request\n{up}");
    assert!(proxy.stats().unavailable > 0);
    let mut failed = 0;
    for img in &corpus {
        let line = format!("failed: {}: ", img.reference);
        let reported_failed = up.stderr.contains(&line);
        let at_target = try_skopeo_inspect_raw(&via(&dst.host(), img), None);
        if reported_failed {
            failed += 1;
        }
        match at_target {
            // A tag set at the target always points at the right manifest.
            Ok(raw) => assert_eq!(manifest_digest(&raw), img.digest, "{}", img.reference),
            Err(_) => assert!(
                reported_failed,
                "{} is missing at the target but was not reported as failed\n{up}",
                img.reference
            ),
        }
    }
    assert!(failed > 0, "no image was reported as failed\n{up}");

    proxy.set_faults(Faults::none());
    let again = ferry_run(&["upload", meta.to_str().unwrap(), "--dst", &proxy.host()]);
    assert!(again.success(), "rerun without faults\n{again}");
    assert_target_has(&dst, &corpus);
}

/// Unmounts a test tmpfs when dropped.
struct TmpfsMount(PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Disk full while saving: a clear error, the partial files stay marked as
/// `.partial` with their journal, and no meta is written.
#[test]
fn disk_full_while_saving_is_a_clear_error_and_leaves_no_meta() {
    let src = Registry::start();
    let img = push_image(
        &src,
        "full/disk",
        "1",
        Format::Oci,
        &[layer("diskfull-a", 400_000), layer("diskfull-b", 300_000)],
        "diskfull",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let _guard = TmpfsMount(mnt.clone());
    let run = save(
        &mnt,
        &["--retries", "0"],
        std::slice::from_ref(&img.reference),
    );
    // The free space is checked before the first byte: refused with both numbers.
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("not enough free space") && run.stderr.contains("262144 bytes"),
        "names the cause\n{run}"
    );
    let files = files_under(&mnt);
    assert!(
        names_ending(&files, "_meta.yaml").is_empty(),
        "no meta: {files:?}"
    );
    assert!(
        names_ending(&files, ".partial").is_empty(),
        "no data file was started: {files:?}"
    );
    assert!(
        names_ending(&files, ".compact").is_empty(),
        "no stray temporary file: {files:?}"
    );
}

/// Direct sync through a proxy that fails, cuts and delays requests on both
/// sides still gives byte-exact images.
#[test]
fn sync_through_faults_is_byte_exact() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let mut corpus = seed_corpus(src);
    // The 42-layer image alone would make this test slow: everything else crosses.
    corpus.retain(|i| i.repo != "many/layers");
    let faults = || {
        Faults::none()
            .unavailable_every(5)
            .cut_every(7)
            .delay_every(11, Duration::from_millis(200))
            .max_faults_in_a_row(2)
    };
    let from = Proxy::start_with(&src.host(), faults());
    let to = Proxy::start_with(&dst.host(), faults());
    let refs: Vec<String> = corpus
        .iter()
        .map(|i| from.reference(&i.repo, &i.tag))
        .collect();
    let host = to.host();
    // Every copy crosses both faulty proxies (a GET there, a POST and a PUT here),
    // so it gets a few more tries than the default.
    let mut args: Vec<&str> = vec!["sync", "--retries", "10", "--dst", &host];
    args.extend(refs.iter().map(String::as_str));
    let run = ferry_run(&args);
    assert!(run.success(), "{run}");
    assert!(
        from.stats().unavailable + to.stats().unavailable > 0,
        "faults were injected"
    );
    assert_target_has(dst, &corpus);
}

/// A proxy in front of the target that refuses request bodies over 1 MiB (nginx's
/// default `client_max_body_size`): the monolithic PUT of a 3 MiB layer gets 413,
/// ferry falls back to PATCH chunks and shrinks them until they pass, and the image
/// arrives byte-exact. Small blobs still go in one PUT.
#[test]
fn a_body_size_limit_in_front_of_the_target_is_met_with_smaller_chunks() {
    let mut regs = start_registries(2);
    let dst = regs.pop().unwrap();
    let src = regs.pop().unwrap();
    let img = push_image(
        &src,
        "limit/app",
        "1",
        Format::Oci,
        &[
            layer("limit-big", 3 * 1024 * 1024),
            layer("limit-small", 4096),
        ],
        "limit",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let run = save(
        &work.path().join("out"),
        &[],
        std::slice::from_ref(&img.reference),
    );
    assert!(run.success(), "{run}");

    let proxy = Proxy::start_with(&dst.host(), Faults::none().max_request_body(1024 * 1024));
    let up = ferry_run(&[
        "upload",
        run.meta().to_str().unwrap(),
        "--dst",
        &proxy.host(),
    ]);
    assert!(up.success(), "upload behind a 1 MiB body limit\n{up}");
    assert_target_has(&dst, std::slice::from_ref(&img));

    // Each line is `#N METHOD TARGET -> OUTCOME`; the outcome is judged on its own,
    // as the target (an upload session's random id and state) may contain "413".
    let log = proxy.log();
    let lines: Vec<(&str, &str)> = log
        .iter()
        .filter_map(|l| {
            let (request, outcome) = l.rsplit_once(" -> ")?;
            let method = request.split_whitespace().nth(1)?;
            Some((method, outcome))
        })
        .collect();
    let refused = |method: &str| {
        lines
            .iter()
            .any(|(m, outcome)| *m == method && outcome.starts_with("413 too large"))
    };
    assert!(
        refused("PUT"),
        "the monolithic PUT was not refused: {log:#?}"
    );
    assert!(
        refused("PATCH"),
        "no chunk was too large at first: {log:#?}"
    );
    let patches = lines
        .iter()
        .filter(|(m, outcome)| *m == "PATCH" && outcome.starts_with("202"))
        .count();
    assert!(
        patches >= 3,
        "3 MiB in chunks of at most 1 MiB needs at least 3 PATCHes, saw {patches}: {log:#?}"
    );
}

/// Ctrl-C stops `ferry verify` while it hashes, instead of after: a data file of
/// 8 GiB (sparse zeros, so it costs no disk) takes seconds to hash, and SIGINT half
/// a second in ends the run with 130 and "interrupted", before any verdict.
#[test]
fn sigint_stops_verify_while_it_hashes() {
    let work = tempfile::tempdir().unwrap();
    let size: u64 = 8 << 30;
    let data = std::fs::File::create(work.path().join("big_full_202611300000_1.tar")).unwrap();
    data.set_len(size).unwrap();
    let meta = work.path().join("big_full_202611300000_meta.yaml");
    std::fs::write(
        &meta,
        format!(
            "format: ferry-bundle\nversion: 1\ntool: test\ncreated: \"2026-11-30T00:00:00+00:00\"\n\
             name: big_full_202611300000\nkind: full\nbases: []\nplatforms: []\nfiles:\n\
             - name: big_full_202611300000_1.tar\n  size: {size}\n  sha256: {}\n  blobs: 0\n\
             images: []\nblobs: []\nfailed: []\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let args = vec!["verify".to_string(), meta.display().to_string()];
    let mut child = Background::spawn(&args, work.path());
    std::thread::sleep(Duration::from_millis(500));
    let status = child.signal_and_wait("INT");
    let stderr = child.stderr();
    assert_eq!(status.code(), Some(130), "{status}; {stderr}");
    assert!(
        stderr.contains("interrupted while checking"),
        "verify did not stop while hashing:\n{stderr}"
    );
    assert!(
        !stderr.contains("sha256"),
        "verify reached a verdict:\n{stderr}"
    );
}

/// kill -9 in the middle of a large blob: the journal has noted how far the blob
/// got, and the rerun hashes those bytes on disk and asks the registry only for
/// the rest (a Range request starting past zero); the bundle then verifies and
/// uploads byte-exact.
#[test]
fn a_save_killed_mid_blob_resumes_the_blob_from_the_bytes_on_disk() {
    killed_mid_blob(64 * 1024 * 1024, false);
}

/// The same against a registry that ignores Range: the rerun asks for the rest,
/// gets the whole blob, and the bundle is still byte-exact.
#[test]
fn a_save_killed_mid_blob_completes_when_the_registry_ignores_range() {
    killed_mid_blob(24 * 1024 * 1024, true);
}

/// Saves one image with a layer of `size` bytes through a throttled proxy, kills
/// the save with SIGKILL once the journal notes 8 MiB of the layer, reruns it
/// (the proxy dropping Range headers when `ignore_range`), then verifies,
/// uploads and compares digests with skopeo.
fn killed_mid_blob(size: usize, ignore_range: bool) {
    let src = Registry::start();
    let repo = if ignore_range {
        "killed/norange"
    } else {
        "killed/big"
    };
    let big = push_image(
        &src,
        repo,
        "1",
        Format::Oci,
        &[layer(repo, size)],
        repo,
        false,
    );
    let layer_digest = big.layers()[0].digest.clone();
    let layer_size = big.layers()[0].size;
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(8 * 1024 * 1024));
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let args: Vec<String> = vec![
        "save".into(),
        "--out".into(),
        out.display().to_string(),
        via(&proxy.host(), &big),
    ];
    // How far the journal says the layer got.
    let noted = |out: &Path| -> u64 {
        let files = files_under(out);
        let Some(journal) = names_ending(&files, ".journal").into_iter().next() else {
            return 0;
        };
        fs::read_to_string(journal)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().split_once(' '))
            .filter(|(d, _)| *d == layer_digest)
            .filter_map(|(_, n)| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let mut child = Background::spawn(&args, work.path());
    child.wait_until(
        "the journal notes 8 MiB of the layer",
        Duration::from_secs(120),
        || noted(&out) >= 8 * 1024 * 1024,
    );
    let status = child.signal_and_wait("KILL");
    assert_eq!(status.code(), None, "killed by the signal: {status}");
    let files = files_under(&out);
    assert!(names_ending(&files, "_meta.yaml").is_empty(), "{files:?}");
    assert!(
        !names_ending(&files, ".tar.partial").is_empty(),
        "{files:?}"
    );
    let resumed_from = noted(&out);
    assert!(
        resumed_from > 0 && resumed_from < layer_size,
        "{resumed_from} of {layer_size}"
    );

    // The rerun: the layer's GET asks for the bytes after those on disk.
    proxy.set_faults(if ignore_range {
        Faults::none().ignore_range()
    } else {
        Faults::none()
    });
    proxy.reset_stats();
    let before = proxy.log().len();
    let run = ferry_run(&strs(&args));
    run.assert_ok();
    assert!(run.stderr.contains("resuming "), "{run}");
    let log = proxy.log();
    let layer_gets: Vec<&String> = log[before..]
        .iter()
        .filter(|l| l.contains(&format!("/blobs/{layer_digest}")))
        .collect();
    assert_eq!(layer_gets.len(), 1, "{log:#?}");
    let range = layer_gets[0]
        .split("[Range: bytes=")
        .nth(1)
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no Range in {}", layer_gets[0]));
    assert!(range > 0, "{}", layer_gets[0]);
    assert_eq!(
        range, resumed_from,
        "the rerun resumes right after the bytes the journal noted"
    );
    if ignore_range {
        assert!(layer_gets[0].ends_with("-> 200"), "{}", layer_gets[0]);
    } else {
        assert!(layer_gets[0].ends_with("-> 206"), "{}", layer_gets[0]);
        assert!(
            proxy.stats().blob_bytes < layer_size,
            "the rerun fetched {} bytes, the layer is {layer_size}",
            proxy.stats().blob_bytes
        );
    }

    let meta = run.meta();
    verify(&meta).assert_ok();
    let dst = Registry::start();
    let up = ferry_run(&["upload", &meta.display().to_string(), "--dst", &dst.host()]);
    up.assert_ok();
    assert_target_has(&dst, std::slice::from_ref(&big));
}
