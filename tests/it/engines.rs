//! ferry's docker engine and containerd sinks against real engines (Debian's
//! `docker.io` and `containerd`, started privately by `common::engines`), checked
//! with the engines' own CLIs (`docker image inspect`, `ctr images ls`).
//!
//! Each test skips, saying so, only when an engine's binary cannot start here.

use crate::common::*;
use crate::interop::save;
use std::path::Path;

/// The files in a folder and below (to see that an upload wrote nothing there).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The test corpus in a registry, and saved into a bundle: (registry, corpus,
/// work folder, meta path).
fn saved_corpus() -> (Registry, Vec<PushedImage>, tempfile::TempDir, String) {
    let src = Registry::start();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = corpus.iter().map(|i| i.reference.as_str()).collect();
    let meta = save(&refs, work.path());
    (src, corpus, work, meta)
}

/// The image an engine gets for a corpus entry on this (amd64) machine: the
/// entry itself, or its linux/amd64 child.
fn host_image(image: &PushedImage) -> &PushedImage {
    if image.is_index() {
        image
            .children
            .iter()
            .find(|c| c.platform.as_deref() == Some("linux/amd64"))
            .expect("the corpus indexes have a linux/amd64 child")
    } else {
        image
    }
}

/// The config digest an image manifest names (docker's image ID).
fn config_digest(image: &PushedImage) -> String {
    let m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    m["config"]["digest"].as_str().unwrap().to_string()
}

fn docker_upload(engine: &DockerEngine, meta: &str, dir: &Path) -> assert_cmd::assert::Assert {
    ferry()
        .current_dir(dir)
        .env("DOCKER_HOST", engine.host())
        .args(["upload", meta, "--dst", "docker"])
        .assert()
}

/// `ferry upload META --dst docker --json EXTRA...`: its JSON document.
fn engine_upload_json(
    engine: &DockerEngine,
    meta: &str,
    dir: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let stdout = FerryCmd::new()
        .current_dir(dir)
        .env("DOCKER_HOST", engine.host())
        .args(["upload", meta, "--dst", "docker", "--json"])
        .args(extra)
        .stdout_str();
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn containerd_upload(
    engine: &Containerd,
    meta: &str,
    dst: &str,
    dir: &Path,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    ferry()
        .current_dir(dir)
        .env("CONTAINERD_ADDRESS", engine.socket())
        .env(
            "CONTAINERD_SNAPSHOTTER",
            crate::common::engines::SNAPSHOTTER,
        )
        .env_remove("CONTAINERD_NAMESPACE")
        .args(["upload", meta, "--dst", dst])
        .args(extra)
        .assert()
}

/// The harness itself: both engines start, answer their CLIs, and are gone (with
/// their folders) after drop.
#[test]
fn engines_start_privately_and_stop_on_drop() {
    if let Some(docker) = DockerEngine::start() {
        let out = docker.run(&["version", "--format", "{{.Server.Version}}"]);
        assert!(
            out.status.success(),
            "docker version: {out:?}\n{}",
            docker.log()
        );
        assert!(docker.image_names().is_empty());
        let socket = docker.socket().to_path_buf();
        drop(docker);
        assert!(!socket.exists(), "the engine's folder is removed");
    } else {
        eprintln!("SKIPPED (docker part): dockerd cannot run here");
    }
    if let Some(ctrd) = Containerd::start() {
        assert!(ctrd.images("default").is_empty());
        let socket = ctrd.socket().to_path_buf();
        drop(ctrd);
        assert!(!socket.exists(), "the engine's folder is removed");
    } else {
        eprintln!("SKIPPED (containerd part): containerd cannot run here");
    }
}

/// `upload --dst docker` loads every corpus image (the amd64 image of the
/// multi-platform ones) under the full reference it was saved from, registry host
/// included, with the config digest as image ID; it writes nothing beside the
/// bundle.
#[test]
fn upload_to_docker_loads_the_corpus_under_full_references() {
    let Some(docker) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let (src, corpus, work, meta) = saved_corpus();
    let before = files_under(work.path());
    let out = docker_upload(&docker, &meta, work.path()).success();
    assert_eq!(
        files_under(work.path()),
        before,
        "nothing written beside the bundle"
    );
    let said = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(said.contains(&corpus.len().to_string()), "{said}");
    for image in &corpus {
        let inspect = docker.inspect(&image.reference).unwrap_or_else(|| {
            panic!(
                "{} not in the engine; it has {:?}\n{}",
                image.reference,
                docker.image_names(),
                docker.log()
            )
        });
        assert_eq!(
            inspect["Id"].as_str().unwrap(),
            config_digest(host_image(image)),
            "{}: image ID = config digest",
            image.reference
        );
        let tags: Vec<&str> = inspect["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.contains(&image.reference.as_str()), "{tags:?}");
    }
    // No short names that would shadow Docker Hub's images.
    let host = src.host();
    for name in docker.image_names() {
        assert!(name.starts_with(&format!("{host}/")), "{name}");
    }
}

/// The engine reads what it loaded like any image: `docker save` of an uploaded
/// image is an archive skopeo reads, with the image's layers. Without an engine
/// the upload fails, naming the socket.
#[test]
fn upload_to_docker_gives_an_image_docker_can_save_and_fails_clearly_without_an_engine() {
    let Some(docker) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let src = Registry::start();
    let a = push_image(
        &src,
        "dk/app",
        "1",
        Format::Docker,
        &[layer("dk-a", 30_000)],
        "dk-a",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&a.reference], work.path());
    // A dry run plans the load (as JSON: the image planned under its full name)
    // and loads nothing.
    let doc = engine_upload_json(&docker, &meta, work.path(), &["--dry-run"]);
    assert_eq!(doc["dry_run"], true, "{doc}");
    assert_eq!(doc["target"], "docker", "{doc}");
    assert_eq!(doc["images"][0]["state"], "planned", "{doc}");
    assert_eq!(doc["images"][0]["target"], a.reference.as_str(), "{doc}");
    assert_eq!(doc["plan"]["push"]["blobs"], 2, "config and layer: {doc}");
    assert!(
        docker.image_names().is_empty(),
        "{:?}",
        docker.image_names()
    );
    // The upload itself, as a JSON document.
    let doc = engine_upload_json(&docker, &meta, work.path(), &[]);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["dry_run"], false, "{doc}");
    assert_eq!(doc["images"][0]["state"], "copied", "{doc}");
    assert_eq!(doc["images"][0]["digest"], a.digest.as_str(), "{doc}");
    assert_eq!(doc["totals"]["succeeded"], 1, "{doc}");
    assert!(docker.inspect(&a.reference).is_some(), "{}", docker.log());
    let saved = work.path().join("saved.tar");
    let out = docker.run(&["save", "-o", saved.to_str().unwrap(), &a.reference]);
    assert!(out.status.success(), "docker save: {out:?}");
    let out = skopeo(&["inspect", &format!("docker-archive:{}", saved.display())]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);

    let out = ferry()
        .current_dir(work.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["upload", &meta, "--dst", "docker"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("/nonexistent/docker.sock"), "{err}");

    // In Chinese, both ways.
    let zh = |host: &str| {
        let out = ferry()
            .current_dir(work.path())
            .env("LANG", "zh_CN.UTF-8")
            .env_remove("LC_ALL")
            .env("DOCKER_HOST", host)
            .args(["upload", &meta, "--dst", "docker"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let said = zh(&docker.host());
    assert!(said.contains("已将 1 个镜像载入"), "{said}");
    let said = zh("unix:///nonexistent/docker.sock");
    assert!(
        said.contains("无法连接") && !said.contains("cannot"),
        "{said}"
    );
}

/// An image the engine refuses (its config names layers it does not have) is
/// reported inside a 200 answer: the upload fails with the engine's reason.
#[test]
fn an_error_the_engine_reports_inside_a_200_fails_the_upload() {
    let Some(docker) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let src = Registry::start();
    // The config of an image with layer A, over layer B: docker checks diff IDs.
    let good = build_image(
        Format::Docker,
        "linux/amd64",
        &[layer("diff-a", 4000)],
        "diff",
        false,
    );
    let other = layer("diff-b", 4000);
    let (a, _) = &good.blobs[1];
    let b_digest = sha256_digest(&other);
    let manifest = String::from_utf8(good.manifest.clone())
        .unwrap()
        .replace(&a.digest, &b_digest)
        .replace(
            &format!("\"size\":{}", a.size),
            &format!("\"size\":{}", other.len()),
        )
        .into_bytes();
    let mut bad = good.clone();
    bad.digest = manifest_digest(&manifest);
    bad.manifest = manifest;
    bad.blobs[1] = (
        Blob {
            digest: b_digest,
            size: other.len() as u64,
            media_type: a.media_type.clone(),
        },
        other,
    );
    let pushed = push_built(&src, "bad/diffid", "1", &bad);
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&pushed.reference], work.path());
    let out = docker_upload(&docker, &meta, work.path()).failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("failed to load") && err.to_lowercase().contains("diff"),
        "the engine's reason: {err}"
    );
    assert!(docker.image_names().is_empty());
}

/// The docker engine API client on its own: a body that is not an archive gets
/// a 200 whose message is an error, and that is a failure with the message.
#[test]
fn the_engine_client_reports_the_error_inside_a_200() {
    let Some(docker) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = ferry::transport::docker_engine::DockerEngine::new(docker.socket());
    rt.block_on(engine.ping()).unwrap();
    let garbage: Vec<std::io::Result<bytes::Bytes>> = pseudo_random("not a tar", 32 * 1024)
        .chunks(4096)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let err = rt
        .block_on(engine.load(futures_util::stream::iter(garbage)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ferry::transport::docker_engine::DockerEngineError::LoadFailed { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("tar"), "{err}");
}

/// A blob that is corrupt in the bundle stops the load before the engine takes
/// anything: the upload fails naming the blob, and the engine has no image.
#[test]
fn a_corrupt_blob_aborts_the_load_and_nothing_is_loaded() {
    let docker = DockerEngine::start();
    let ctrd = Containerd::start();
    if docker.is_none() && ctrd.is_none() {
        eprintln!("SKIPPED: neither dockerd nor containerd can run here");
        return;
    }
    let src = Registry::start();
    let bad = layer("eng-bad", 200_000);
    let good = layer("eng-good", 50_000);
    let img = push_image(
        &src,
        "eng/app",
        "1",
        Format::Docker,
        &[good, bad.clone()],
        "eng-app",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&img.reference], work.path());
    corrupt_blob_in_bundle(&meta, &bad);
    let digest = sha256_digest(&bad);
    if let Some(docker) = &docker {
        let out = docker_upload(docker, &meta, work.path()).failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(&digest), "names the blob: {err}");
        assert!(
            docker.image_names().is_empty(),
            "{:?}",
            docker.image_names()
        );
    }
    if let Some(ctrd) = &ctrd {
        let out = containerd_upload(ctrd, &meta, "containerd", work.path(), &[]).failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains(&digest), "names the blob: {err}");
        assert!(
            ctrd.images("default").is_empty(),
            "{:?}",
            ctrd.images("default")
        );
    }
}

/// `upload --dst containerd:NS` imports every corpus image (the amd64 image of
/// the multi-platform ones) into namespace NS under the full reference it was
/// saved from, its target the exact manifest digest.
#[test]
fn upload_to_containerd_imports_the_corpus_with_manifest_digests() {
    let Some(ctrd) = Containerd::start() else {
        eprintln!("SKIPPED: containerd cannot run here");
        return;
    };
    let (_src, corpus, work, meta) = saved_corpus();
    let before = files_under(work.path());
    // A dry run, as JSON: every image planned under its full name, none imported.
    let out = containerd_upload(
        &ctrd,
        &meta,
        "containerd:ferry-test",
        work.path(),
        &["--dry-run", "--json"],
    )
    .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["dry_run"], true, "{doc}");
    assert_eq!(doc["target"], "containerd:ferry-test", "{doc}");
    let planned: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "planned")
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(planned.len(), corpus.len(), "{doc}");
    for image in &corpus {
        assert!(planned.contains(&image.reference.as_str()), "{doc}");
    }
    assert!(
        ctrd.images("ferry-test").is_empty(),
        "a dry run imports nothing"
    );
    let out = containerd_upload(
        &ctrd,
        &meta,
        "containerd:ferry-test",
        work.path(),
        &["--json"],
    )
    .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["totals"]["succeeded"], corpus.len(), "{doc}");
    for image in &corpus {
        let rec = doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["target"] == image.reference.as_str())
            .unwrap_or_else(|| panic!("{}: {doc}", image.reference));
        assert_eq!(rec["state"], "copied", "{doc}");
        assert_eq!(rec["digest"], host_image(image).digest.as_str(), "{doc}");
    }
    assert_eq!(files_under(work.path()), before);
    let images = ctrd.images("ferry-test");
    for image in &corpus {
        let want = host_image(image);
        let found = images
            .iter()
            .find(|(name, _)| name == &image.reference)
            .unwrap_or_else(|| panic!("{} not imported: {images:?}", image.reference));
        assert_eq!(found.1, want.digest, "{}: target digest", image.reference);
    }
    assert_eq!(images.len(), corpus.len(), "{images:?}");
    assert!(
        ctrd.images("default").is_empty(),
        "the namespace is the one named"
    );

    // The default namespace, and a failure of ctr is reported with its stderr.
    containerd_upload(&ctrd, &meta, "containerd", work.path(), &[]).success();
    assert_eq!(ctrd.images("default").len(), corpus.len());
    let out = ferry()
        .current_dir(work.path())
        .env("CONTAINERD_ADDRESS", "/nonexistent/containerd.sock")
        .args(["upload", &meta, "--dst", "containerd"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("/nonexistent/containerd.sock"), "{err}");
    // Something that is not containerd: ctr fails, and says why.
    let not_a_socket = work.path().join("not-a-socket");
    std::fs::write(&not_a_socket, b"").unwrap();
    let out = ferry()
        .current_dir(work.path())
        .env("CONTAINERD_ADDRESS", &not_a_socket)
        .args(["upload", &meta, "--dst", "containerd"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("images import") && err.contains("ctr:"),
        "{err}"
    );
}

/// The docker engine as a source: an image loaded by ferry comes back out of the
/// engine's export with its config (docker's image ID) and its layers as the
/// config's diff IDs, each blob streaming and checked; the spool file goes with
/// the source. An image the engine does not have is an error naming it.
#[test]
fn the_engine_source_reads_back_what_was_loaded() {
    use ferry::transport::docker_engine::{DockerEngine as Api, DockerEngineSource};
    use ferry::transport::{BlobRef, ImageSource};
    use futures_util::StreamExt;
    let Some(docker) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let src = Registry::start();
    let img = push_image(
        &src,
        "src/app",
        "1",
        Format::Oci,
        &[layer("src-a", 20_000), layer("src-b", 5_000)],
        "src-app",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[&img.reference], work.path());
    docker_upload(&docker, &meta, work.path()).success();

    let spool = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::new(docker.socket());
    let source = rt
        .block_on(DockerEngineSource::export(
            &api,
            std::slice::from_ref(&img.reference),
            spool.path(),
        ))
        .unwrap();
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 1);
    let (_, parsed) = rt
        .block_on(source.get_manifest(&format!("{}/src/app", src.host()), "1"))
        .unwrap();
    let ferry::manifest::Parsed::Image { config, layers } = parsed else {
        panic!("an image manifest")
    };
    assert_eq!(config.digest.as_str(), config_digest(&img), "image ID");
    let config_json: serde_json::Value = serde_json::from_slice(&rt.block_on(async {
        let blob = BlobRef {
            digest: config.digest.clone(),
            size: config.size,
            media_type: config.media_type.clone(),
        };
        let mut s = source.open_blob("x", &blob, 0).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }))
    .unwrap();
    let diff_ids: Vec<&str> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let got: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(got, diff_ids, "layers as the engine stores them");
    for l in &layers {
        let blob = BlobRef {
            digest: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        };
        let n = rt.block_on(async {
            let mut s = source.open_blob("x", &blob, 0).await.unwrap();
            let mut n = 0u64;
            while let Some(c) = s.next().await {
                n += c.expect("checked stream").len() as u64;
            }
            n
        });
        assert_eq!(n, l.size);
    }
    drop(source);
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "the spool is removed"
    );
    let missing = format!("{}/src/missing:1", src.host());
    let err = rt
        .block_on(DockerEngineSource::export(
            &api,
            std::slice::from_ref(&missing),
            spool.path(),
        ))
        .err()
        .unwrap();
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}
