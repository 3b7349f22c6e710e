//! `--compress zstd`: `.tar.zst` data files that verify, upload byte-exact, and
//! decompress with the standard zstd tool into an ordinary bundle tar.

use crate::common::*;
use std::path::Path;

fn save_zstd(refs: &[&str], out: &Path) -> String {
    save_bundle(refs, out, &["--compress", "zstd", "--files", "2"])
        .display()
        .to_string()
}

#[test]
fn zstd_bundles_verify_and_upload_byte_exact() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "z/app",
        "1",
        Format::Oci,
        &[layer("z-base", 200_000), layer("z-a", 50_000)],
        "z-a",
        true,
    );
    let b = push_index(
        &src,
        "z/multi",
        "1",
        Format::Docker,
        &[
            ("linux/amd64", vec![layer("z-base", 200_000)]),
            ("linux/arm64", vec![layer("z-arm", 30_000)]),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let meta = save_zstd(&[&a.reference, &b.reference], out.path());
    let dir = Path::new(&meta).parent().unwrap().to_path_buf();
    let data: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.zst"))
        .collect();
    assert_eq!(data.len(), 2, "two .tar.zst data files: {data:?}");

    ferry().arg("verify").arg(&meta).assert().success();
    ferry()
        .arg("upload")
        .arg(&meta)
        .arg("--dst")
        .arg(dst.host())
        .assert()
        .success();
    for img in [&a, &b] {
        let at_target = skopeo_inspect_raw(&format!("{}/{}:{}", dst.host(), img.repo, img.tag));
        assert_eq!(at_target, img.manifest, "{} byte-exact", img.repo);
    }
    let pulled = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!("docker://{}/z/app:1", dst.host()),
        &format!("dir:{}", pulled.path().display()),
        &["--src-tls-verify=false"],
    )
    .expect("skopeo checks every blob");

    // Decompressing a data file gives an ordinary tar of blobs/sha256/<hex> entries.
    let zst = std::fs::File::open(dir.join(&data[0])).unwrap();
    let plain = zstd::decode_all(zst).unwrap();
    let mut archive = tar::Archive::new(&plain[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("blobs/sha256/")),
        "{names:?}"
    );
}

#[test]
fn corrupt_zstd_data_file_is_refused() {
    let src = Registry::start();
    let dst = Registry::start();
    let a = push_image(
        &src,
        "z/app",
        "2",
        Format::Docker,
        &[layer("zc-a", 120_000)],
        "zc",
        false,
    );
    let out = tempfile::tempdir().unwrap();
    let meta = save_zstd(&[&a.reference], out.path());
    let dir = Path::new(&meta).parent().unwrap().to_path_buf();
    let victim = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&victim, &bytes).unwrap();
    let stderr = ferry()
        .arg("verify")
        .arg(&meta)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&stderr).contains(&*victim.file_name().unwrap().to_string_lossy())
    );
    ferry()
        .arg("upload")
        .arg(&meta)
        .arg("--dst")
        .arg(dst.host())
        .assert()
        .failure();
    // Found as the blob is decoded and streamed out: nothing is tagged.
    assert!(dst.tags("z/app").is_empty());
}
