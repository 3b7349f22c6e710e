//! Interop: export a bundle as an OCI layout and a docker archive that skopeo
//! reads, and the read-only helpers `ls`, `inspect`, `tags`.

use crate::common::*;
use std::path::Path;

/// Saves `refs` into a bundle under `out`; returns the meta path.
pub(crate) fn save(refs: &[&str], out: &Path) -> String {
    save_bundle(refs, out, &[]).display().to_string()
}

#[test]
fn oci_layout_export_is_byte_exact_and_readable_by_skopeo() {
    let src = Registry::start();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = corpus.iter().map(|i| i.reference.as_str()).collect();
    let meta = save(&refs, work.path());
    let layout = work.path().join("layout");
    ferry()
        .current_dir(work.path())
        .arg("export")
        .arg(&meta)
        .arg("--oci")
        .arg(&layout)
        .assert()
        .success();

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), corpus.len());
    for img in &corpus {
        let name = format!("{}:{}", img.repo, img.tag);
        let entry = entries
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} in index.json"));
        assert_eq!(entry["digest"], img.digest.as_str());
        assert_eq!(
            entry["mediaType"],
            img.media_type.as_str(),
            "{name} keeps its own media type"
        );
        assert_eq!(entry["size"].as_u64().unwrap(), img.manifest.len() as u64);
        for m in img.manifests() {
            let blob = std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(m.digest.trim_start_matches("sha256:")),
            )
            .unwrap();
            assert_eq!(blob, m.manifest, "{name}: manifest {} byte-exact", m.digest);
        }
        for b in &img.blobs {
            let path = layout
                .join("blobs/sha256")
                .join(b.digest.trim_start_matches("sha256:"));
            assert_eq!(sha256_digest(&std::fs::read(&path).unwrap()), b.digest);
        }
        // skopeo 1.9 reads only OCI-typed entries of a layout.
        if img.media_type.contains("oci") {
            let raw = skopeo(&[
                "inspect",
                "--raw",
                &format!("oci:{}:{name}", layout.display()),
            ])
            .unwrap();
            assert_eq!(
                raw, img.manifest,
                "skopeo reads {name} byte-exact from the layout"
            );
        }
    }
}

#[test]
fn docker_archive_export_is_readable_by_skopeo() {
    let src = Registry::start();
    let plain = push_image(
        &src,
        "da/plain",
        "1",
        Format::Docker,
        &[layer("da-a", 30_000), layer("da-b", 10_000)],
        "da-plain",
        false,
    );
    let multi = push_index(
        &src,
        "da/multi",
        "1",
        Format::Oci,
        &[
            ("linux/amd64", vec![layer("da-amd", 20_000)]),
            ("linux/arm64", vec![layer("da-arm", 20_000)]),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&plain.reference, &multi.reference], work.path());
    let archive = work.path().join("images.tar");
    ferry()
        .current_dir(work.path())
        .args([
            "export",
            &meta,
            "da/plain:1",
            "da/multi:1",
            "--platform",
            "linux/arm64",
            "--docker-archive",
        ])
        .arg(&archive)
        .assert()
        .success();
    for (n, want_layers) in [(0, 2), (1, 1)] {
        let out = skopeo(&[
            "inspect",
            &format!("docker-archive:{}:@{n}", archive.display()),
        ])
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), want_layers, "{v}");
    }
    let out = skopeo(&[
        "inspect",
        &format!("docker-archive:{}:@1", archive.display()),
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["Architecture"], "arm64", "the chosen platform's image");
    // skopeo names docker-archive layers by compressed or uncompressed digest.
    let arm = layer("da-arm", 20_000);
    let names = [sha256_digest(&arm), sha256_digest(&gunzip(&arm))];
    assert!(names.iter().any(|n| v["Layers"][0] == n.as_str()), "{v}");
}

#[test]
fn ls_inspect_and_tags() {
    let src = Registry::start();
    let a = push_image(
        &src,
        "info/app",
        "1",
        Format::Oci,
        &[layer("info-a", 10_000)],
        "info-a",
        false,
    );
    push_image(
        &src,
        "info/app",
        "2",
        Format::Oci,
        &[layer("info-b", 10_000)],
        "info-b",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&a.reference], work.path());
    let ls = ferry()
        .arg("ls")
        .arg(&meta)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let ls = String::from_utf8_lossy(&ls);
    assert!(
        ls.contains(&a.reference) && ls.contains(&a.digest) && ls.contains("_1.tar"),
        "{ls}"
    );
    let line = ls.lines().find(|l| l.contains(&a.reference)).unwrap();
    assert!(line.contains("KiB"), "each image with its size: {line}");

    let raw = ferry()
        .args(["inspect", "--raw", &a.reference])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(raw, a.manifest);
    let json = ferry()
        .args(["inspect", "--json", &a.reference])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["details"]["digest"], a.digest.as_str());
    assert_eq!(v["details"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(v["command"], "inspect");
    assert_eq!(v["images"][0]["digest"], a.digest.as_str());
    assert_eq!(v["images"][0]["state"], "present");

    let tags = ferry()
        .args(["tags", &format!("{}/info/app", src.host())])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut tags: Vec<String> = String::from_utf8_lossy(&tags)
        .lines()
        .map(String::from)
        .collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "2"]);
    ferry()
        .args(["inspect", &format!("{}/info/none:1", src.host())])
        .assert()
        .code(1);
}

#[test]
fn serve_answers_skopeo_like_a_registry() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = corpus.iter().map(|i| i.reference.as_str()).collect();
    let meta = save(&refs, work.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .current_dir(work.path())
        .args(["serve", &meta, "--listen", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http_request(
        "GET",
        &format!("{base}/v2/"),
        None,
        &[],
        None,
        std::time::Duration::from_secs(2),
    )
    .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ferry serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for img in &corpus {
        let from = format!("docker://127.0.0.1:{port}/{}:{}", img.repo, img.tag);
        let to = format!("docker://{}/{}:{}", dst.host(), img.repo, img.tag);
        skopeo_copy(
            &from,
            &to,
            &[
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ],
        )
        .unwrap_or_else(|e| panic!("{from}: {e}"));
        assert_eq!(
            skopeo_inspect_raw(&format!("{}/{}:{}", dst.host(), img.repo, img.tag)),
            img.manifest,
            "{} byte-exact through serve",
            img.repo
        );
    }
    for path in [
        "/v2/nope/manifests/latest",
        "/v2/../../etc/passwd",
        "/v2/x/blobs/sha256:zz",
        "/nothing",
    ] {
        let r = http_request(
            "GET",
            &format!("{base}{path}"),
            None,
            &[],
            None,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        assert!(r.status >= 400, "{path}: {}", r.status);
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{path}: JSON error body"));
        assert!(v["errors"][0]["code"].is_string(), "{path}: {v}");
    }
    let put = http_request(
        "PUT",
        &format!("{base}/v2/x/manifests/y"),
        None,
        &[],
        Some(b"{}".to_vec()),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(put.status, 405, "read-only");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "Ctrl-C stops serve with exit 0"
    );
}

/// Export reads blobs that only had their sizes checked: a corrupt layer in a data
/// file fails the export with its digest named, and leaves no file behind.
#[test]
fn export_refuses_a_corrupt_blob_and_leaves_nothing_half_written() {
    let src = Registry::start();
    let bad = layer("exp-bad", 40_000);
    let img = push_image(
        &src,
        "exp/app",
        "1",
        Format::Docker,
        std::slice::from_ref(&bad),
        "exp-app",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&img.reference], work.path());
    corrupt_blob_in_bundle(&meta, &bad);
    let digest = sha256_digest(&bad);

    let oci = work.path().join("oci");
    let archive = work.path().join("images.tar");
    for (flag, target) in [("--oci", &oci), ("--docker-archive", &archive)] {
        let out = ferry()
            .args(["export", &meta, "exp/app:1", flag])
            .arg(target)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&digest) && stderr.contains("corrupt"),
            "{flag}: {stderr}"
        );
    }
    assert!(!archive.exists(), "a docker archive was written");
    fn partials(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                partials(&path, out);
            } else if path.to_string_lossy().ends_with(".partial") {
                out.push(path.display().to_string());
            }
        }
    }
    let mut left = Vec::new();
    partials(work.path(), &mut left);
    assert!(left.is_empty(), "half-written files left: {left:?}");
    assert!(
        !oci.join(blob_path(&digest)).exists(),
        "the corrupt layer was written into the OCI layout"
    );
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Exporting into an existing layout adds to it (the images already there stay),
/// a renamed image is exported under its new name, and a damaged blob already in
/// the layout is written again rather than trusted for its size.
#[test]
fn oci_export_adds_to_a_layout_uses_renames_and_repairs_blobs() {
    let src = Registry::start();
    let one = push_image(
        &src,
        "lay/one",
        "1",
        Format::Oci,
        &[layer("lay-one", 30_000)],
        "lay-one",
        false,
    );
    let two = push_image(
        &src,
        "lay/two",
        "1",
        Format::Oci,
        &[layer("lay-two", 30_000)],
        "lay-two",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("images.lst");
    std::fs::write(
        &list,
        format!("{}\n{} -> renamed/two:7\n", one.reference, two.reference),
    )
    .unwrap();
    let out = ferry()
        .current_dir(work.path())
        .args(["save", "--list", list.to_str().unwrap(), "--out", "b", "-q"])
        .assert()
        .success()
        .get_output()
        .clone();
    let meta = work
        .path()
        .join(String::from_utf8_lossy(&out.stdout).trim());
    let layout = work.path().join("layout");
    for name in ["lay/one:1", "renamed/two:7"] {
        ferry()
            .arg("export")
            .arg(&meta)
            .arg(name)
            .arg("--oci")
            .arg(&layout)
            .assert()
            .success();
    }
    for (name, img) in [("lay/one:1", &one), ("renamed/two:7", &two)] {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}", layout.display()),
        ])
        .unwrap();
        assert_eq!(manifest_digest(&raw), img.digest, "{name} in the layout");
    }
    // Damage a layer in the layout; the next export writes it again.
    let damaged = layout.join(format!(
        "blobs/sha256/{}",
        sha256_digest(&layer("lay-one", 30_000)).trim_start_matches("sha256:")
    ));
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    ferry()
        .arg("export")
        .arg(&meta)
        .arg("lay/one:1")
        .arg("--oci")
        .arg(&layout)
        .assert()
        .success();
    assert_eq!(
        sha256_digest(&std::fs::read(&damaged).unwrap()),
        sha256_digest(&layer("lay-one", 30_000)),
        "the damaged blob was kept"
    );
}
