//! `save` takes the sources `ferry copy` takes: a developer's `docker save` file
//! or an OCI layout goes into the bundle beside registry images, named by a list
//! line as `oci:DIR[:REF]`, `docker-archive:FILE[:REF]` or `bundle:META[:REF]`
//! (a plain line stays a registry reference). Files are made with skopeo, results
//! checked with skopeo.

use crate::common::*;
use std::path::Path;

fn meta_of(meta: &Path) -> ferry::bundle::meta::Meta {
    ferry::bundle::meta::Meta::load(meta).expect("meta").0
}

fn config_digest(manifest: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(manifest).expect("a manifest");
    v["config"]["digest"].as_str().expect("config").to_string()
}

/// A list mixing a registry image, an image in an OCI layout and one in a docker
/// archive (both written by skopeo) is saved into one bundle, verified and
/// uploaded; at the target, the registry and layout images have the digests they
/// had, and the archive's image has skopeo's config (image ID) and layers.
#[test]
fn a_list_mixing_a_registry_an_oci_layout_and_a_docker_archive() {
    let src = Registry::start();
    let dst = Registry::start();
    let web = push_image(
        &src,
        "team/web",
        "1",
        Format::Docker,
        &[layer("sources-web", 20_000)],
        "sources-web",
        false,
    );
    let dev = push_image(
        &src,
        "dev/app",
        "3",
        Format::Oci,
        &[layer("sources-dev", 30_000), layer("sources-web", 20_000)],
        "sources-dev",
        false,
    );
    let tool = push_image(
        &src,
        "dev/tool",
        "2",
        Format::Docker,
        &[layer("sources-tool", 25_000)],
        "sources-tool",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    // skopeo names the layout entry by a bare tag; the line names the image.
    let layout = work.path().join("layout");
    skopeo_copy(
        &docker_ref(&dev.reference),
        &format!("oci:{}:v3", layout.display()),
        &[],
    )
    .unwrap();
    let archive = work.path().join("tool.tar");
    skopeo_copy(
        &docker_ref(&tool.reference),
        &format!("docker-archive:{}:mine/tool:2", archive.display()),
        &[],
    )
    .unwrap();
    let layout_line = format!("oci:{}:v3 -> dev/app:3", layout.display());
    let archive_line = format!("docker-archive:{}", archive.display());
    let list = work.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# registry, layout, archive\n{}\n{layout_line}\n{archive_line}\n",
            web.reference
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let run = FerryCmd::new()
        .args(["save", "--list"])
        .arg(&list)
        .arg("--out")
        .arg(&out)
        .ok();
    let meta_path = run.meta();
    let meta = meta_of(&meta_path);
    let refs: Vec<&str> = meta.images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(
        refs,
        [
            web.reference.as_str(),
            layout_line.split(" ->").next().unwrap(),
            archive_line.as_str()
        ],
        "the images, in the order of their lines, as given"
    );
    let from_archive = &meta.images[2];
    assert_eq!(
        (
            from_archive.repository.as_str(),
            from_archive.tag.as_deref()
        ),
        ("mine/tool", Some("2")),
        "the archive's own name"
    );
    assert_eq!(meta.images[1].target.as_deref(), Some("dev/app:3"));
    // The layer the registry image and the layout share is stored once.
    let shared = sha256_digest(&layer("sources-web", 20_000));
    assert_eq!(
        meta.blobs
            .iter()
            .filter(|b| b.digest.as_str() == shared)
            .count(),
        1
    );
    FerryCmd::new().arg("verify").arg(&meta_path).ok();

    FerryCmd::new()
        .arg("upload")
        .arg(&meta_path)
        .args(["--dst", &format!("{}/mirror", dst.host())])
        .ok();
    assert_eq!(
        skopeo_inspect_raw_digest(&format!("{}/mirror/team/web:1", dst.host())),
        web.digest,
        "the registry image, byte-exact"
    );
    let in_layout = skopeo(&["inspect", "--raw", &format!("oci:{}:v3", layout.display())]).unwrap();
    assert_eq!(
        manifest_digest(&in_layout),
        dev.digest,
        "skopeo kept the OCI image"
    );
    assert_eq!(
        skopeo_inspect_raw_digest(&format!("{}/mirror/dev/app:3", dst.host())),
        dev.digest,
        "the layout's image, byte-exact, under its line's name"
    );
    // The archive's image: the manifest the bundle recorded, and skopeo's config
    // and layers from the archive.
    let at_target = skopeo_inspect_raw(&format!("{}/mirror/mine/tool:2", dst.host()));
    assert_eq!(manifest_digest(&at_target), from_archive.digest.as_str());
    let config = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", archive.display()),
    ])
    .unwrap();
    assert_eq!(
        config_digest(&at_target),
        sha256_digest(&config),
        "the image ID"
    );
    let layers = |name: &str, tls: bool| -> Vec<String> {
        let mut args = vec!["inspect"];
        if tls {
            args.push("--tls-verify=false");
        }
        args.push(name);
        let v: serde_json::Value = serde_json::from_slice(&skopeo(&args).unwrap()).unwrap();
        v["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        layers(&format!("docker://{}/mirror/mine/tool:2", dst.host()), true),
        layers(&format!("docker-archive:{}", archive.display()), false)
    );
}

/// A bundle is a source too: `bundle:META:REF` takes one image of it (its own
/// names kept), and a line whose file cannot be read fails alone, named, while
/// the rest is saved.
#[test]
fn a_bundle_image_goes_into_the_next_bundle_and_a_bad_file_fails_alone() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "lib/a",
        "1",
        Format::Oci,
        &[layer("sources-a", 10_000)],
        "sources-a",
        false,
    );
    let b = push_image(
        &src,
        "lib/b",
        "1",
        Format::Docker,
        &[layer("sources-b", 10_000)],
        "sources-b",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let first = save_bundle(&[&a.reference, &b.reference], &work.path().join("one"), &[]);
    let missing = work.path().join("nothing-here");
    let from_bundle = format!("bundle:{}:lib/b:1", first.display());
    let missing_line = format!("oci:{}", missing.display());
    let run = FerryCmd::new()
        .args(["save", &from_bundle, &missing_line, "--out"])
        .arg(work.path().join("two"))
        .output();
    assert_eq!(run.code, Some(1), "one line failed: {run}");
    run.assert_stderr_has(&[&missing_line]);
    let meta = meta_of(&run.meta());
    assert_eq!(meta.images.len(), 1, "{meta:?}");
    assert_eq!(
        (
            meta.images[0].repository.as_str(),
            meta.images[0].digest.as_str()
        ),
        ("lib/b", b.digest.as_str())
    );
    assert_eq!(meta.failed.len(), 1);
    assert_eq!(meta.failed[0].reference, missing_line);
    FerryCmd::new()
        .arg("upload")
        .arg(run.meta())
        .args(["--dst", &dst.host(), "--allow-partial"])
        .ok();
    assert_eq!(
        skopeo_inspect_raw_digest(&format!("{}/lib/b:1", dst.host())),
        b.digest
    );
}

/// sync copies between registries: a file line is refused with a reason, the
/// registry lines are still copied.
#[test]
fn sync_refuses_a_file_line_and_copies_the_rest() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "sync/a",
        "1",
        Format::Oci,
        &[layer("sources-sync", 10_000)],
        "sources-sync",
        false,
    );
    let run = FerryCmd::new()
        .args(["sync", &a.reference, "oci:/tmp/none", "--dst", &dst.host()])
        .output();
    assert_ne!(run.code, Some(0), "{run}");
    run.assert_stderr_has(&["oci:/tmp/none", "not a registry"]);
    assert_eq!(
        skopeo_inspect_raw_digest(&format!("{}/sync/a:1", dst.host())),
        a.digest
    );
}

/// An image of the local docker engine (a real dockerd with a private data root)
/// goes into a bundle as `docker-daemon:REF`; uploaded, its config is the image
/// ID docker gives it.
#[test]
fn a_docker_engine_image_is_saved_with_its_image_id() {
    let docker =
        DockerEngine::start().expect("dockerd starts (scripts/setup.sh installs docker.io)");
    let src = Registry::start();
    let dst = Registry::start();
    let img = push_image(
        &src,
        "eng/app",
        "1",
        Format::Docker,
        &[layer("sources-engine", 12_000)],
        "sources-engine",
        false,
    );
    let name = "local/app:7";
    FerryCmd::new()
        .args(["copy", &format!("docker://{}", img.reference)])
        .arg(format!("docker-daemon:{name}"))
        .env("DOCKER_HOST", docker.host())
        .ok();
    let id = docker.inspect(name).expect("docker has the image")["Id"]
        .as_str()
        .expect("an image ID")
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let line = format!("docker-daemon:{name}");
    let meta = FerryCmd::new()
        .args(["save", &line, "-q", "--out"])
        .arg(work.path())
        .env("DOCKER_HOST", docker.host())
        .ok()
        .meta_only();
    let m = meta_of(&meta);
    assert_eq!(
        (m.images[0].repository.as_str(), m.images[0].tag.as_deref()),
        ("local/app", Some("7"))
    );
    FerryCmd::new()
        .arg("upload")
        .arg(&meta)
        .args(["--dst", &dst.host()])
        .ok();
    let manifest = skopeo_inspect_raw(&format!("{}/local/app:7", dst.host()));
    assert_eq!(config_digest(&manifest), id, "the image ID docker gave it");
}
