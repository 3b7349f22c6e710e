//! `ferry copy SRC DST`: the copy engine between transports, checked with skopeo.

use crate::common::*;
use std::path::{Path, PathBuf};

/// Saves `refs` into a bundle under `out` and returns its meta path.
fn save(refs: &[&str], out: &Path) -> PathBuf {
    save_bundle(refs, out, &[])
}

fn assert_same_at(host: &str, path: &str, img: &PushedImage) {
    assert_eq!(
        skopeo_inspect_raw(&format!("{host}/{path}")),
        img.manifest,
        "{path} is byte-exact"
    );
    let repo = path.split(':').next().unwrap_or(path);
    for child in &img.children {
        assert_eq!(
            skopeo_inspect_raw(&format!("{host}/{repo}@{}", child.digest)),
            child.manifest,
            "child {} of {path}",
            child.digest
        );
    }
}

#[test]
fn copy_registry_to_registry_renames_one_image_byte_exact() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let index = corpus
        .iter()
        .find(|i| i.is_index())
        .expect("the corpus has an index");
    ferry()
        .arg("copy")
        .arg(format!("docker://{}", index.reference))
        .arg(format!("docker://{}/copied/app:v9", dst.host()))
        .assert()
        .success();
    assert_same_at(&dst.host(), "copied/app:v9", index);
    // The tag defaults to the source's.
    let plain = corpus.iter().find(|i| !i.is_index()).expect("an image");
    ferry()
        .arg("copy")
        .arg(format!("docker://{}", plain.reference))
        .arg(format!("docker://{}/other", dst.host()))
        .assert()
        .success();
    assert_same_at(&dst.host(), &format!("other:{}", plain.tag), plain);
}

#[test]
fn copy_bundle_to_registry_all_images_or_one() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let refs: Vec<&str> = corpus.iter().map(|i| i.reference.as_str()).collect();
    let work = tempfile::tempdir().unwrap();
    let meta = save(&refs, work.path());
    ferry()
        .arg("copy")
        .arg(format!("bundle:{}", meta.display()))
        .arg(format!("docker://{}/mirror", dst.host()))
        .assert()
        .success();
    for img in &corpus {
        assert_same_at(
            &dst.host(),
            &format!("mirror/{}:{}", img.repo, img.tag),
            img,
        );
    }
    let one = &corpus[0];
    ferry()
        .arg("copy")
        .arg(format!(
            "bundle:{}:{}:{}",
            meta.display(),
            one.repo,
            one.tag
        ))
        .arg(format!("docker://{}/single/x:1", dst.host()))
        .assert()
        .success();
    assert_same_at(&dst.host(), "single/x:1", one);
}

#[test]
fn copy_refuses_a_bundle_whose_manifest_was_altered() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = push_image(
        &src,
        "alt/app",
        "1",
        Format::Oci,
        &[layer("alt", 2000)],
        "alt",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save(&[img.reference.as_str()], work.path());
    // Flip one byte of the manifest inside its data file (same size, so only a
    // digest check can notice).
    let data: Vec<PathBuf> = std::fs::read_dir(meta.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    let needle = &img.manifest[..40];
    let mut altered = false;
    for f in &data {
        let mut bytes = std::fs::read(f).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + 20] ^= 0x01;
            std::fs::write(f, bytes).unwrap();
            altered = true;
        }
    }
    assert!(altered, "the manifest was found in a data file");
    let out = ferry()
        .arg("copy")
        .arg(format!("bundle:{}", meta.display()))
        .arg(format!("docker://{}/mirror", dst.host()))
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains(&img.digest), "names the manifest: {text}");
    assert!(
        try_skopeo_inspect_raw(&format!("{}/mirror/alt/app:1", dst.host()), None).is_err(),
        "nothing was pushed"
    );
}

#[test]
fn copy_between_registry_and_oci_layout_round_trips() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    for (i, img) in corpus.iter().enumerate() {
        ferry()
            .arg("copy")
            .arg(format!("docker://{}", img.reference))
            .arg(format!("oci:{}:t{i}", layout.display()))
            .assert()
            .success();
    }
    for (i, img) in corpus.iter().enumerate() {
        // skopeo reads only OCI-typed entries of a layout; docker-typed ones are
        // checked in the layout's own files.
        let raw = if img.media_type.contains("oci") {
            skopeo(&[
                "inspect",
                "--raw",
                &format!("oci:{}:t{i}", layout.display()),
            ])
            .expect("skopeo reads the layout")
        } else {
            let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
            assert!(
                index.contains(&img.digest),
                "index.json names {}",
                img.digest
            );
            std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(&img.digest["sha256:".len()..]),
            )
            .unwrap()
        };
        assert_eq!(
            raw, img.manifest,
            "oci:...:t{i} holds {} byte-exact",
            img.reference
        );
        ferry()
            .arg("copy")
            .arg(format!("oci:{}:t{i}", layout.display()))
            .arg(format!(
                "docker://{}/back/{}:{}",
                dst.host(),
                img.repo,
                img.tag
            ))
            .assert()
            .success();
        assert_same_at(&dst.host(), &format!("back/{}:{}", img.repo, img.tag), img);
    }
}

/// The manifest a one-platform endpoint (archive, engine) holds for `img`: the
/// linux/amd64 child of an index, else the image itself.
fn one_platform(img: &PushedImage) -> &PushedImage {
    img.children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/amd64"))
        .unwrap_or(img)
}

/// The transport matrix: every corpus image from a registry into each endpoint
/// that can hold it, and back out of each endpoint that can be read into a second
/// registry; digests checked with skopeo (and docker/ctr for the engines).
#[test]
fn copy_matrix_between_transports_keeps_digests() {
    let src = Registry::start();
    let dst = Registry::start();
    let corpus = seed_corpus(&src);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let docker =
        DockerEngine::start().expect("dockerd starts (scripts/setup.sh installs docker.io)");
    let containerd = Containerd::start().expect("containerd starts (scripts/setup.sh installs it)");
    for (i, img) in corpus.iter().enumerate() {
        let from = format!("docker://{}", img.reference);
        let archive = work.path().join(format!("a{i}.tar"));
        let name = format!("{}/m/img{i}:v{i}", src.host());
        for to in [
            format!("oci:{}:t{i}", layout.display()),
            format!("docker-archive:{}", archive.display()),
        ] {
            ferry().args(["copy", &from, &to]).assert().success();
        }
        ferry()
            .args(["copy", &from, &format!("docker-daemon:{name}")])
            .env("DOCKER_HOST", docker.host())
            .assert()
            .success();
        ferry()
            .args(["copy", &from, &format!("containerd:{name}")])
            .env("CONTAINERD_ADDRESS", containerd.socket())
            .assert()
            .success();
        let single = one_platform(img);
        // docker: the image ID is the config digest, under the full name.
        let inspected = docker.inspect(&name).expect("docker has the image");
        let manifest: serde_json::Value = serde_json::from_slice(&single.manifest).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap().to_string();
        assert_eq!(inspected["Id"].as_str(), Some(config.as_str()), "{name}");
        // containerd: the image's target is the manifest digest.
        let images = containerd.images("default");
        assert!(
            images
                .iter()
                .any(|(n, d)| n == &name && d == &single.digest),
            "containerd has {name} at {}: {images:?}",
            single.digest
        );
        // Back out of the layout and the archive into a registry, byte-exact.
        ferry()
            .args([
                "copy",
                &format!("oci:{}:t{i}", layout.display()),
                &format!("docker://{}/from-oci/{}:{}", dst.host(), img.repo, img.tag),
            ])
            .assert()
            .success();
        assert_same_at(
            &dst.host(),
            &format!("from-oci/{}:{}", img.repo, img.tag),
            img,
        );
        ferry()
            .args([
                "copy",
                &format!("docker-archive:{}", archive.display()),
                &format!(
                    "docker://{}/from-archive/{}:{}",
                    dst.host(),
                    img.repo,
                    img.tag
                ),
            ])
            .assert()
            .success();
        assert_eq!(
            skopeo_inspect_raw(&format!(
                "{}/from-archive/{}:{}",
                dst.host(),
                img.repo,
                img.tag
            )),
            single.manifest,
            "docker-archive round trip of {}",
            img.reference
        );
    }
}
