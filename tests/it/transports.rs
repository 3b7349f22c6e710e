//! The OCI layout and docker archive endpoints, driven through the `ferry`
//! library: the test corpus goes from a real registry into each sink, back out
//! through the matching source, and is checked byte-exact by ferry and by skopeo
//! (an independent reader). Hostile layouts and archives are refused.

use crate::common::*;
use ferry::manifest::{Parsed, RawManifest};
use ferry::transport::docker_archive::{DockerArchiveSink, DockerArchiveSource};
use ferry::transport::image_names::RefNaming;
use ferry::transport::oci_layout::{OciLayoutSink, OciLayoutSource};
use ferry::transport::registry::{RegistryEndpoint, Retrying};
use ferry::transport::{BlobRef, ImageSink, ImageSource, SharedSource};
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Arc;

fn registry_source(reg: &Registry) -> SharedSource {
    let client = ferry::registry::Client::new(&reg.host(), &Default::default()).unwrap();
    let retrying = Retrying::new(
        Default::default(),
        tokio_util::sync::CancellationToken::new(),
        Arc::new(|_, _| {}),
    );
    Arc::new(RegistryEndpoint::new(Arc::new(client), retrying))
}

fn blob_refs(parsed: &Parsed) -> Vec<BlobRef> {
    match parsed {
        Parsed::Image { config, layers } => std::iter::once(config)
            .chain(layers)
            .map(|d| BlobRef {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            })
            .collect(),
        Parsed::Index { .. } => Vec::new(),
    }
}

/// A copy as the engine does it, cut down: blobs, then manifests children
/// first, the top one tagged. A sink without indexes gets the linux/amd64 child.
async fn copy(
    src: &SharedSource,
    src_repo: &str,
    reference: &str,
    sink: &dyn ImageSink,
    dst_repo: &str,
    tag: Option<&str>,
) -> RawManifest {
    let (top, parsed) = src.get_manifest(src_repo, reference).await.unwrap();
    let (top, parsed) = match parsed {
        Parsed::Index { manifests } if !sink.supports_index() => {
            let child = manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.architecture == "amd64")
                })
                .unwrap();
            src.get_manifest(src_repo, child.digest.as_str())
                .await
                .unwrap()
        }
        other => (top, other),
    };
    let mut manifests = vec![(top.clone(), parsed.clone())];
    if let Parsed::Index {
        manifests: children,
    } = &parsed
    {
        for c in children {
            manifests.insert(
                0,
                src.get_manifest(src_repo, c.digest.as_str()).await.unwrap(),
            );
        }
    }
    for (_, p) in &manifests {
        for b in blob_refs(p) {
            if !sink.has_blob(dst_repo, &b).await.unwrap() {
                sink.put_blob(dst_repo, &b, src.clone(), src_repo)
                    .await
                    .unwrap();
            }
        }
    }
    for (m, _) in &manifests {
        let t = if m.digest == top.digest { tag } else { None };
        sink.put_manifest(dst_repo, t, m).await.unwrap();
    }
    top
}

async fn drain_blob(src: &dyn ImageSource, repo: &str, blob: &BlobRef) -> std::io::Result<Vec<u8>> {
    let mut s = src.open_blob(repo, blob, 0).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

/// Reads every manifest of `image` (children by digest) and every blob from
/// `src`, checking the bytes against the corpus.
async fn check_image(src: &dyn ImageSource, repo: &str, tag: &str, image: &PushedImage) {
    let (raw, _) = src.get_manifest(repo, tag).await.unwrap();
    assert_eq!(raw.bytes, image.manifest, "{repo}:{tag}");
    assert_eq!(raw.media_type, image.media_type, "{repo}:{tag}");
    for child in &image.children {
        let (raw, _) = src.get_manifest(repo, &child.digest).await.unwrap();
        assert_eq!(raw.bytes, child.manifest);
    }
    for b in &image.blobs {
        let blob = BlobRef {
            digest: b.digest.parse().unwrap(),
            size: b.size,
            media_type: b.media_type.clone(),
        };
        let bytes = drain_blob(src, repo, &blob).await.unwrap();
        assert_eq!(sha256_digest(&bytes), b.digest);
    }
}

fn oci_types(image: &PushedImage) -> bool {
    image.media_type == media_types::OCI_MANIFEST || image.media_type == media_types::OCI_INDEX
}

/// Runs the async part of a test (the registry harness runs its own runtime, so
/// the tests themselves are plain functions).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn corpus_into_an_oci_layout_and_back_byte_exact() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    block_on(oci_round_trip(&reg, &corpus));
}

async fn oci_round_trip(reg: &Registry, corpus: &[PushedImage]) {
    let src = registry_source(reg);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");

    let sink = OciLayoutSink::create(&dir, RefNaming::RepositoryTag).unwrap();
    for image in corpus {
        let full = format!("{}/{}", reg.host(), image.repo);
        copy(
            &src,
            &image.repo,
            &image.tag,
            &sink,
            &full,
            Some(&image.tag),
        )
        .await;
    }
    sink.finish().await.unwrap();

    let layout = OciLayoutSource::open(&dir).unwrap();
    assert_eq!(layout.entries().len(), corpus.len());
    for image in corpus {
        // Found by the short repository and by the full one.
        check_image(&layout, &image.repo, &image.tag, image).await;
        let full = format!("{}/{}", reg.host(), image.repo);
        let (raw, _) = layout.get_manifest(&full, &image.tag).await.unwrap();
        assert_eq!(raw.digest.as_str(), image.digest);
    }

    // skopeo 1.9.3 reads OCI-typed entries of a layout (not docker-typed ones).
    for image in corpus.iter().filter(|i| oci_types(i)) {
        let name = format!(
            "oci:{}:{}/{}:{}",
            dir.display(),
            reg.host(),
            image.repo,
            image.tag
        );
        let raw = skopeo(&["inspect", "--raw", &name]).unwrap();
        assert_eq!(manifest_digest(&raw), image.digest, "{name}");
        // And copies it out, checking every blob's digest as it goes.
        let out = work
            .path()
            .join(format!("dir-{}", image.repo.replace('/', "_")));
        std::fs::create_dir_all(&out).unwrap();
        skopeo_copy(
            &name,
            &format!("dir:{}", out.display()),
            &["--all", "--preserve-digests"],
        )
        .unwrap_or_else(|e| panic!("skopeo copy {name}: {e}"));
    }

    // A second export into the same layout adds, skipping intact blobs.
    let sink = OciLayoutSink::create(&dir, RefNaming::Verbatim).unwrap();
    let first = &corpus[0];
    copy(
        &src,
        &first.repo,
        &first.tag,
        &sink,
        &first.repo,
        Some("again"),
    )
    .await;
    sink.finish().await.unwrap();
    let layout = OciLayoutSource::open(&dir).unwrap();
    assert_eq!(layout.entries().len(), corpus.len() + 1);
    let (raw, _) = layout.get_manifest("whatever", "again").await.unwrap();
    assert_eq!(raw.digest.as_str(), first.digest);
}

#[test]
fn skopeo_layouts_read_and_rewritten_byte_exact() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("skopeo");
    let ours = work.path().join("ours");
    // skopeo writes OCI types only (it converts docker images) and names by tag.
    let picks = [(0usize, "docker"), (1, "oci"), (2, "index")];
    for (i, name) in picks {
        let image = &corpus[i];
        skopeo_copy(
            &docker_ref(&image.reference),
            &format!("oci:{}:{name}", theirs.display()),
            &["--all"],
        )
        .unwrap();
    }
    let src: SharedSource = Arc::new(OciLayoutSource::open(&theirs).unwrap());
    let sink = OciLayoutSink::create(&ours, RefNaming::Verbatim).unwrap();
    block_on(async {
        for (i, name) in picks {
            // A bare tag matches whatever repository is asked for.
            copy(
                &src,
                &corpus[i].repo,
                name,
                &sink,
                &corpus[i].repo,
                Some(name),
            )
            .await;
        }
        sink.finish().await.unwrap();
    });
    for (_, name) in picks {
        let a = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}", theirs.display()),
        ])
        .unwrap();
        let b = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{name}", ours.display()),
        ])
        .unwrap();
        assert_eq!(a, b, "{name}");
    }
    // The OCI image from the registry kept its bytes through skopeo and us.
    let b = skopeo(&["inspect", "--raw", &format!("oci:{}:oci", ours.display())]).unwrap();
    assert_eq!(manifest_digest(&b), corpus[1].digest);
}

/// The image a docker archive holds for a corpus entry: the entry itself, or
/// the linux/amd64 child of an index.
fn single_platform(image: &PushedImage) -> &PushedImage {
    image
        .children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/amd64"))
        .unwrap_or(image)
}

/// The config of an image as skopeo reads it out of an archive (raw bytes).
fn skopeo_config(archive: &Path, reference: &str) -> Vec<u8> {
    let name = format!("docker-archive:{}:{reference}", archive.display());
    skopeo(&["inspect", "--config", "--raw", &name])
        .unwrap_or_else(|e| panic!("skopeo inspect --config {name}: {e}"))
}

fn config_digest(manifest: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    v["config"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn corpus_into_a_docker_archive_and_back_byte_exact() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    let src = registry_source(&reg);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("corpus.tar");
    block_on(async {
        let sink = DockerArchiveSink::create(&file, RefNaming::RepositoryTag).unwrap();
        for image in &corpus {
            let full = format!("{}/{}", reg.host(), image.repo);
            copy(
                &src,
                &image.repo,
                &image.tag,
                &sink,
                &full,
                Some(&image.tag),
            )
            .await;
        }
        sink.finish().await.unwrap();

        let archive = DockerArchiveSource::open(&file, None).unwrap();
        // team/sub/app's two tags are one image with two names.
        assert_eq!(archive.images().len(), corpus.len() - 1);
        for image in &corpus {
            let want = single_platform(image);
            let (raw, _) = archive.get_manifest(&image.repo, &image.tag).await.unwrap();
            assert_eq!(raw.bytes, want.manifest, "{}:{}", image.repo, image.tag);
            assert_eq!(raw.media_type, want.media_type);
            for b in &want.blobs {
                let blob = BlobRef {
                    digest: b.digest.parse().unwrap(),
                    size: b.size,
                    media_type: b.media_type.clone(),
                };
                let bytes = drain_blob(&archive, &image.repo, &blob).await.unwrap();
                assert_eq!(sha256_digest(&bytes), b.digest);
            }
        }
    });
    // skopeo reads every image by its full name (registry host included), with
    // the config (the image ID) unchanged, and copies it out checking each layer.
    for image in &corpus {
        let want = single_platform(image);
        let name = format!("{}/{}:{}", reg.host(), image.repo, image.tag);
        let config = skopeo_config(&file, &name);
        assert_eq!(
            sha256_digest(&config),
            config_digest(&want.manifest),
            "{name}"
        );
    }
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let name = format!("docker-archive:{}:{}", file.display(), corpus[0].reference);
    skopeo_copy(&name, &format!("oci:{}:x", out.display()), &[])
        .unwrap_or_else(|e| panic!("skopeo copy {name}: {e}"));
}

#[test]
fn skopeo_archives_read_and_rewritten_byte_exact() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("skopeo.tar");
    let ours = work.path().join("ours.tar");
    // skopeo writes the legacy layout, layers uncompressed.
    skopeo_copy(
        &docker_ref(&corpus[0].reference),
        &format!("docker-archive:{}:mine/app:1", theirs.display()),
        &[],
    )
    .unwrap();
    let src: SharedSource = Arc::new(DockerArchiveSource::open(&theirs, None).unwrap());
    let synthesised = block_on(async {
        let (raw, parsed) = src.get_manifest("mine/app", "1").await.unwrap();
        // A new manifest, but the same config (image ID).
        assert_eq!(
            config_digest(&raw.bytes),
            config_digest(&corpus[0].manifest)
        );
        let Parsed::Image { layers, .. } = parsed else {
            panic!("an image")
        };
        assert!(layers
            .iter()
            .all(|l| l.media_type == "application/vnd.docker.image.rootfs.diff.tar"));
        let sink = DockerArchiveSink::create(&ours, RefNaming::Verbatim).unwrap();
        copy(&src, "mine/app", "1", &sink, "mine/app", Some("mine/app:2")).await;
        sink.finish().await.unwrap();
        let back = DockerArchiveSource::open(&ours, Some("mine/app:2")).unwrap();
        let (again, _) = back.get_manifest("mine/app", "2").await.unwrap();
        assert_eq!(
            again.bytes, raw.bytes,
            "the synthesised manifest travels byte-exact"
        );
        raw
    });
    let config = skopeo_config(&ours, "mine/app:2");
    assert_eq!(sha256_digest(&config), config_digest(&synthesised.bytes));
    let out = work.path().join("out");
    skopeo_copy(
        &format!("docker-archive:{}:mine/app:2", ours.display()),
        &format!("oci:{}:x", out.display()),
        &[],
    )
    .unwrap();
}

#[test]
fn hostile_layouts_and_archives_are_refused() {
    let work = tempfile::tempdir().unwrap();
    // index.json naming a path instead of a digest.
    let layout = work.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../../etc/passwd","size":1}]}"#,
    )
    .unwrap();
    let err = OciLayoutSource::open(&layout).err().expect("refused");
    assert!(err.to_string().contains("invalid digest"), "{err}");

    // A docker archive whose first header claims 2^64 - 1 bytes.
    let mut h = tar::Header::new_gnu();
    h.set_path("manifest.json").unwrap();
    h.set_mode(0o644);
    h.set_size(u64::MAX);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 2048]);
    let archive = work.path().join("forged.tar");
    std::fs::write(&archive, &bytes).unwrap();
    let err = DockerArchiveSource::open(&archive, None)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("more than the file holds"),
        "{err}"
    );

    // A layout blob whose bytes do not match its digest is never served whole.
    let real = b"the real layer";
    let digest = sha256_digest(real);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(
        layout.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    std::fs::write(layout.join("blobs/sha256").join(hex), b"the fake layer").unwrap();
    let src = OciLayoutSource::open(&layout).unwrap();
    let blob = BlobRef {
        digest: digest.parse().unwrap(),
        size: real.len() as u64,
        media_type: String::new(),
    };
    assert!(block_on(drain_blob(&src, "x", &blob)).is_err());
}
