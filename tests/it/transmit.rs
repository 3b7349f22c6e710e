//! Existing image-transmit bundles (tar form): ferry verifies and uploads them, and
//! takes their meta as the base of an increment. The bundle is built here from the
//! format's description: meta with `datafiles:`, `blobs:` (hex → refs), `manifests:`
//! (ref → manifest JSON), and tar entries `<hex>.json` / `<hex>.tar.gz`.

use crate::common::*;
use std::path::{Path, PathBuf};

/// Writes an image-transmit bundle holding `image` (pushed to `reg` as repo:tag).
fn write_transmit_bundle(dir: &Path, reference: &str, image: &BuiltImage) -> PathBuf {
    let tar_name = "img_full_202106122344_0.tar";
    let mut builder = tar::Builder::new(std::fs::File::create(dir.join(tar_name)).unwrap());
    let mut blobs_yaml = String::new();
    for (i, (blob, bytes)) in image.blobs.iter().enumerate() {
        let hex = blob.digest.trim_start_matches("sha256:");
        let name = if i == 0 {
            format!("{hex}.json")
        } else {
            format!("{hex}.tar.gz")
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, &bytes[..]).unwrap();
        blobs_yaml.push_str(&format!("  {hex}:\n  - {reference}\n"));
    }
    builder.into_inner().unwrap();
    let size = std::fs::metadata(dir.join(tar_name)).unwrap().len();
    let manifest = String::from_utf8(image.manifest.clone())
        .unwrap()
        .replace('\'', "''");
    let meta = format!(
        "datafiles:\n  {tar_name}: {size}\ncompressor: tar\nblobs:\n{blobs_yaml}manifests:\n  {reference}: '{}'\n",
        manifest.replace('\n', "\n\n    ")
    );
    let path = dir.join("img_full_202106122344_meta.yaml");
    std::fs::write(&path, meta).unwrap();
    path
}

fn built(seed: &str) -> BuiltImage {
    build_image(
        Format::Docker,
        "linux/amd64",
        &[
            layer(&format!("{seed}-a"), 40_000),
            layer(&format!("{seed}-b"), 20_000),
        ],
        seed,
        false,
    )
}

#[test]
fn image_transmit_bundle_verifies_and_uploads_byte_exact() {
    let src = Registry::start();
    let dst = Registry::start();
    let image = built("it1");
    let pushed = push_built(&src, "legacy/app", "1.0", &image);
    let dir = tempfile::tempdir().unwrap();
    let meta = write_transmit_bundle(dir.path(), &pushed.reference, &image);

    ferry().arg("verify").arg(&meta).assert().success();
    ferry()
        .arg("upload")
        .arg(&meta)
        .arg("--dst")
        .arg(format!("{}/mirror", dst.host()))
        .assert()
        .success();
    let at_target = skopeo_inspect_raw(&format!("{}/mirror/legacy/app:1.0", dst.host()));
    assert_eq!(at_target, image.manifest, "manifest pushed byte-exact");
    let out = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!("docker://{}/mirror/legacy/app:1.0", dst.host()),
        &format!("dir:{}", out.path().display()),
        &["--src-tls-verify=false"],
    )
    .expect("skopeo pulls every blob with its digest");
}

#[test]
fn corrupt_image_transmit_bundle_is_refused() {
    let src = Registry::start();
    let dst = Registry::start();
    let image = built("it2");
    let pushed = push_built(&src, "legacy/app", "2.0", &image);
    let dir = tempfile::tempdir().unwrap();
    let meta = write_transmit_bundle(dir.path(), &pushed.reference, &image);
    let tar = dir.path().join("img_full_202106122344_0.tar");
    let mut bytes = std::fs::read(&tar).unwrap();
    let mid = 512 + image.blobs[0].1.len() / 2; // inside the first entry's data
    bytes[mid] ^= 0xff;
    std::fs::write(&tar, &bytes).unwrap();

    let out = ferry()
        .arg("verify")
        .arg(&meta)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("img_full_202106122344_0.tar"),
        "names the data file: {text}"
    );
    let up = ferry()
        .arg("upload")
        .arg(&meta)
        .arg("--dst")
        .arg(dst.host())
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let up = String::from_utf8_lossy(&up);
    // Found as the blob streams out: the image is named and nothing is tagged.
    assert!(up.contains("legacy/app"), "names the image: {up}");
    assert!(
        dst.tags("legacy/app").is_empty(),
        "nothing tagged from a corrupt bundle"
    );
}

#[test]
fn image_transmit_meta_is_a_base_for_an_increment() {
    let src = Registry::start();
    let image = built("it3");
    let pushed = push_built(&src, "legacy/app", "3.0", &image);
    let dir = tempfile::tempdir().unwrap();
    let base = write_transmit_bundle(dir.path(), &pushed.reference, &image);
    // The new image shares the base's first layer and adds one.
    let next = build_image(
        Format::Docker,
        "linux/amd64",
        &[layer("it3-a", 40_000), layer("it3-new", 30_000)],
        "it3-next",
        false,
    );
    let pushed_next = push_built(&src, "legacy/app", "4.0", &next);
    let out = tempfile::tempdir().unwrap();
    let assert = ferry()
        .arg("save")
        .arg(&pushed_next.reference)
        .arg("--inc")
        .arg(&base)
        .arg("--out")
        .arg(out.path())
        .arg("-q")
        .assert()
        .success();
    let meta_path = String::from_utf8_lossy(&assert.get_output().stdout)
        .trim()
        .to_string();
    let meta = ferry::bundle::meta::Meta::load(Path::new(&meta_path))
        .unwrap()
        .0;
    let shared = &next.blobs[1].0.digest; // blobs: config, layer a, layer new
    let rec = meta
        .blobs
        .iter()
        .find(|b| b.digest.as_str() == shared)
        .unwrap();
    assert_eq!(
        rec.base.as_deref(),
        Some("img_full_202106122344"),
        "the shared layer is left to the image-transmit base"
    );
    assert!(rec.file.is_none());
    let new_layer = &next.blobs[2].0.digest;
    assert!(
        meta.blobs
            .iter()
            .any(|b| b.digest.as_str() == new_layer && b.file.is_some()),
        "the new layer is carried"
    );
}
