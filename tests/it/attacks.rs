//! Attacks on the trust boundary: a hostile bundle or a target in front of which a
//! proxy forces another upload path. Each test performs the attack and checks that
//! nothing of an image whose bytes were not verified reaches the target.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn ferry_run(args: &[&str]) -> Output {
    FerryCmd::new()
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
}

fn start_registries(n: usize) -> Vec<Registry> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(Registry::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two images of two large layers each in `src`, saved into a bundle under `out`.
fn two_images(
    src: &Registry,
    seed: &str,
    size: usize,
    out: &Path,
) -> (PushedImage, PushedImage, Vec<Vec<u8>>, std::path::PathBuf) {
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| layer(&format!("{seed}-{i}"), size))
        .collect();
    let a = push_image(
        src,
        &format!("{seed}/a"),
        "1",
        Format::Oci,
        &layers[..2],
        "a",
        false,
    );
    let b = push_image(
        src,
        &format!("{seed}/b"),
        "1",
        Format::Docker,
        &layers[2..],
        "b",
        false,
    );
    let meta = save_bundle(&[&a.reference, &b.reference], out, &[]);
    (a, b, layers, meta)
}

/// With a body-size limit in front of the target that answers `413` from the
/// request head, as nginx's client_max_body_size does, the whole-blob PUT stops
/// early (its digest check never runs) and blobs go up in PATCH chunks. A corrupt
/// blob must still be found by ferry as it streams out, and `--verify full` must
/// then tag nothing at all, as for a whole-blob upload: the chunks of a blob are
/// hashed in turn and the last is held until the digest is right. (It used to
/// send the chunks unchecked, leave the check to the registry, and tag the other
/// image.)
#[test]
fn a_corrupt_blob_sent_in_chunks_tags_nothing() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let work = tempfile::tempdir().unwrap();
    let (a, b, layers, meta) =
        two_images(src, "chunked", 4 * 1024 * 1024, &work.path().join("out"));
    // The layer with the greatest digest goes last (--jobs 1: digest order).
    let last = layers
        .iter()
        .max_by_key(|l| sha256_digest(l))
        .unwrap()
        .clone();
    let last_digest = sha256_digest(&last);
    corrupt_blob_in_bundle(meta.to_str().unwrap(), &last);

    let proxy = Proxy::start_with(
        &dst.host(),
        Faults::none()
            .max_request_body(1024 * 1024)
            .refuse_by_length(),
    );
    let up = ferry_run(&[
        "upload",
        meta.to_str().unwrap(),
        "--dst",
        &proxy.host(),
        "--jobs",
        "1",
    ]);
    assert!(
        proxy.log().iter().any(|l| l.contains(" PATCH ")),
        "blobs went up in chunks: {:#?}",
        proxy.log()
    );
    assert_eq!(up.code, Some(1), "{up}");
    up.assert_stderr_has(&["failed verification", &last_digest]);
    for image in [&a, &b] {
        assert!(
            dst.tags(&image.repo).is_empty(),
            "{} tagged\n{up}",
            image.repo
        );
    }
    // The corrupt blob never completed its upload.
    for image in [&a, &b] {
        let got = dst.get(&format!("/v2/{}/blobs/{last_digest}", image.repo));
        assert_eq!(got.status, 404, "the corrupt blob is at the target");
    }
}
