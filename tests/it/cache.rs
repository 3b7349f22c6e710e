//! The local blob cache: a second save of the same list downloads no blob, and sync
//! pushes from the cache. Proved by deleting the blobs from the source registry's
//! storage after the first save: any download would then fail.

use crate::common::*;

fn delete_blobs(reg: &Registry, img: &PushedImage) {
    for b in &img.blobs {
        let p = reg.blob_data_path(&b.digest);
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }
}

#[test]
fn second_save_and_sync_come_from_the_cache() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = push_image(
        &src,
        "c/app",
        "1",
        Format::Oci,
        &[layer("cache-a", 60_000), layer("cache-b", 30_000)],
        "cache",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("blob-cache");
    let save = |out: &str| {
        ferry()
            .current_dir(work.path())
            .args(["save", &img.reference, "--out", out, "--cache"])
            .arg(&cache)
            .assert()
    };
    save("first").success();
    for b in &img.blobs {
        assert!(
            cache
                .join("blobs/sha256")
                .join(b.digest.trim_start_matches("sha256:"))
                .is_file(),
            "{} cached",
            b.digest
        );
    }

    delete_blobs(&src, &img);
    let second = save("second").success();
    let stderr = String::from_utf8_lossy(&second.get_output().stderr).to_string();
    assert!(stderr.contains("local cache"), "{stderr}");
    let meta = String::from_utf8_lossy(&second.get_output().stdout)
        .trim()
        .to_string();
    ferry()
        .current_dir(work.path())
        .arg("verify")
        .arg(&meta)
        .assert()
        .success();

    // Without the cache the same save fails: the registry has no blob left.
    ferry()
        .current_dir(work.path())
        .args(["save", &img.reference, "--out", "third"])
        .assert()
        .code(1);

    // Sync pushes from the cache too.
    ferry()
        .current_dir(work.path())
        .args(["sync", &img.reference, "--dst", &dst.host(), "--cache"])
        .arg(&cache)
        .assert()
        .success();
    let pulled = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!("docker://{}/c/app:1", dst.host()),
        &format!("dir:{}", pulled.path().display()),
        &["--src-tls-verify=false"],
    )
    .expect("every blob arrived with its digest");
}

#[test]
fn cfg_cache_key_is_honoured_under_data() {
    let src = Registry::start();
    let img = push_image(
        &src,
        "c/cfg",
        "1",
        Format::Docker,
        &[layer("cache-cfg", 20_000)],
        "cache-cfg",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("cfg.yaml"),
        "cache:\n  pathname: mycache\n  keepdays: 7\n  keepsize: 1\n",
    )
    .unwrap();
    ferry()
        .current_dir(work.path())
        .args(["save", &img.reference])
        .assert()
        .success();
    let layer = &img.blobs[1].digest;
    assert!(
        work.path()
            .join("data/mycache/blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .is_file(),
        "the cache lives at data/<pathname>, as image-transmit keeps it"
    );
}
