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

/// `ssh-keygen -t ed25519` into DIR/NAME, and an allowed_signers file trusting it.
fn signing_key(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("release");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "release@example.com namespaces=\"ferry-bundle\" {}\n",
            public.trim()
        ),
    )
    .unwrap();
    (key, allowed)
}

/// A signed full bundle and a signed increment on it, side by side in one folder
/// (as they are carried). Returns (increment meta, base meta, allowed_signers, the
/// increment's image).
fn signed_increment(src: &Registry, w: &Path) -> (String, std::path::PathBuf, String, PushedImage) {
    let shared = layer("trust-base", 40_000);
    let v1 = push_image(
        src,
        "trust/app",
        "1.0",
        Format::Docker,
        &[shared.clone(), layer("trust-v1", 10_000)],
        "trust-v1",
        false,
    );
    let v2 = push_image(
        src,
        "trust/app",
        "2.0",
        Format::Docker,
        &[shared, layer("trust-v2", 10_000)],
        "trust-v2",
        false,
    );
    let (key, allowed) = signing_key(w);
    let k = key.to_str().unwrap();
    let out = w.join("carried");
    let full = save_bundle(&[&v1.reference], &out, &["--sign", k]);
    let inc = save_bundle(
        &[&v2.reference],
        &out,
        &["--sign", k, "--inc", full.to_str().unwrap()],
    );
    assert_eq!(full.parent(), inc.parent(), "side by side");
    (
        inc.to_str().unwrap().to_string(),
        full,
        allowed.to_str().unwrap().to_string(),
        v2,
    )
}

/// Rewrites a base bundle's meta by one byte (no longer the one the increment's
/// signed meta records) and removes its signature: nothing vouches for it.
fn alter_base(full: &Path) {
    let mut text = std::fs::read(full).unwrap();
    let at = text.iter().position(|&b| b == b'\n').unwrap();
    text.insert(at, b' ');
    std::fs::write(full, text).unwrap();
    std::fs::remove_file(format!("{}.sig", full.display())).unwrap();
}

/// `upload --dst docker --trust`: the increment's signature is checked, and so must
/// be its base, which is read for the layers it carries (as export, serve and copy
/// do): an altered, unsigned base beside it is refused and nothing is loaded. (It
/// used to be read and loaded unchecked.)
#[test]
fn upload_to_docker_under_trust_refuses_an_untrusted_base() {
    let Some(engine) = DockerEngine::start() else {
        eprintln!("SKIPPED: dockerd cannot run here");
        return;
    };
    let src = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (inc, full, allowed, v2) = signed_increment(&src, work.path());
    alter_base(&full);
    let up = FerryCmd::new()
        .env("DOCKER_HOST", engine.host())
        .args(["upload", &inc, "--dst", "docker", "--trust", &allowed])
        .fails();
    up.assert_stderr_has(&["base bundle", "sha256 differs"]);
    assert!(
        engine.inspect(&v2.reference).is_none(),
        "the image was loaded from an untrusted base\n{up}"
    );
    assert!(
        engine.image_names().is_empty(),
        "{:?}",
        engine.image_names()
    );
}

/// The same through containerd; the base as signed is accepted.
#[test]
fn upload_to_containerd_under_trust_refuses_an_untrusted_base() {
    let Some(engine) = Containerd::start() else {
        eprintln!("SKIPPED: containerd cannot run here");
        return;
    };
    let src = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let (inc, full, allowed, v2) = signed_increment(&src, work.path());
    let upload = |dst: &str| {
        FerryCmd::new()
            .env("CONTAINERD_ADDRESS", engine.socket())
            .env(
                "CONTAINERD_SNAPSHOTTER",
                crate::common::engines::SNAPSHOTTER,
            )
            .env_remove("CONTAINERD_NAMESPACE")
            .args(["upload", &inc, "--dst", dst, "--trust", &allowed])
            .output()
    };
    upload("containerd:control")
        .assert_ok()
        .assert_stderr_has(&["its meta is the one the signed bundle records"]);
    let loaded = engine.images("control");
    assert!(
        loaded
            .iter()
            .any(|(name, _)| name.ends_with("trust/app:2.0")),
        "{loaded:?} ({})",
        v2.reference
    );
    alter_base(&full);
    let up = upload("containerd");
    up.assert_failed();
    up.assert_stderr_has(&["base bundle", "sha256 differs"]);
    assert!(
        engine.images("default").is_empty(),
        "{:?}",
        engine.images("default")
    );
}

/// Makes the bundle's tar entry of `blob` (and its meta record) one byte longer
/// than the blob, within the entry's padding, and updates the data file's size
/// and sha256 in the meta: a bundle consistent with itself whose entry lies about
/// the blob's size (the bytes of the blob are all there, plus one).
fn lengthen_entry(meta: &Path, blob: &[u8]) {
    assert!(
        !blob.len().is_multiple_of(512),
        "the entry has padding to grow into"
    );
    let digest = sha256_digest(blob);
    let hex = digest.trim_start_matches("sha256:");
    let name = format!("blobs/sha256/{hex}");
    let (mut m, _) = ferry::bundle::meta::Meta::load(meta).unwrap();
    let dir = meta.parent().unwrap();
    let mut found = false;
    for f in &mut m.files {
        let path = dir.join(&f.name);
        let mut bytes = std::fs::read(&path).unwrap();
        let Some(at) = bytes
            .windows(name.len())
            .enumerate()
            .position(|(i, w)| i % 512 == 0 && w == name.as_bytes())
        else {
            continue;
        };
        let header = &mut bytes[at..at + 512];
        header[124..136].copy_from_slice(format!("{:011o}\0", blob.len() + 1).as_bytes());
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        bytes[at + 512 + blob.len()] = b'!';
        std::fs::write(&path, &bytes).unwrap();
        f.size = bytes.len() as u64;
        // The attacker makes the file's checksum match, whichever kind it is.
        if f.headers_sha256.is_some() {
            f.headers_sha256 = Some(headers_sha256_hex(&bytes));
        } else {
            f.sha256 = sha256_digest(&bytes)
                .trim_start_matches("sha256:")
                .to_string();
        }
        found = true;
    }
    assert!(found, "{digest} is in no data file");
    for b in &mut m.blobs {
        if b.digest.as_str() == digest {
            b.size += 1;
        }
    }
    std::fs::write(meta, m.to_yaml().unwrap()).unwrap();
}

/// A bundle whose tar entry and meta say a layer is one byte longer than its
/// manifest does: upload refuses it as inconsistent before pushing anything,
/// whatever `--verify` says. (It used to push and tag every other image, and
/// retry the lying blob as if the network had failed.)
#[test]
fn an_entry_that_lies_about_its_size_is_refused_before_anything_is_pushed() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut l = layer(&format!("size-lie-{i}"), 20_000);
            if l.len().is_multiple_of(512) {
                l = layer(&format!("size-lie-{i}-odd"), 20_001);
            }
            l
        })
        .collect();
    let a = push_image(src, "lie/a", "1", Format::Oci, &layers[..2], "a", false);
    let b = push_image(src, "lie/b", "1", Format::Docker, &layers[2..], "b", false);
    let work = tempfile::tempdir().unwrap();
    let meta = save_bundle(&[&a.reference, &b.reference], &work.path().join("out"), &[]);
    lengthen_entry(&meta, &layers[3]);
    FerryCmd::new()
        .args(["verify", meta.to_str().unwrap()])
        .fails()
        .assert_stderr_has(&["corrupt"]);
    for mode in ["full", "size"] {
        let up = ferry_run(&[
            "upload",
            meta.to_str().unwrap(),
            "--dst",
            &dst.host(),
            "--verify",
            mode,
        ]);
        up.assert_failed();
        up.assert_stderr_has(&[
            "inconsistent",
            "nothing was pushed",
            &sha256_digest(&layers[3]),
        ]);
        assert!(!up.stderr.contains("retrying"), "{up}");
        assert!(dst.catalog().is_empty(), "{mode}: {:?}", dst.catalog());
    }
}

/// Adds a data file named `name` of 0 bytes holding no blob to the meta (a bundle
/// consistent with itself, as far as the meta goes).
fn add_empty_data_file(meta: &Path, name: &str) {
    let (mut m, _) = ferry::bundle::meta::Meta::load(meta).unwrap();
    m.files.push(ferry::bundle::meta::DataFile {
        name: name.to_string(),
        size: 0,
        sha256: sha256_digest(b"").trim_start_matches("sha256:").to_string(),
        headers_sha256: None,
        blobs: 0,
    });
    std::fs::write(meta, m.to_yaml().unwrap()).unwrap();
}

fn mkfifo(path: &Path) {
    let out = std::process::Command::new("mkfifo")
        .arg(path)
        .output()
        .expect("mkfifo runs");
    assert!(out.status.success(), "mkfifo: {out:?}");
}

/// A bundle from a stick whose files are not files: a data file that is a FIFO
/// (opening it blocks until someone writes to it) or a symlink to `/dev/zero`
/// (it never ends), a signature that is a FIFO. Every command refuses them at
/// once; none hangs. (verify, upload, export and serve used to block forever in
/// the FIFO's open, past Ctrl-C and SIGTERM, and a full verify read /dev/zero
/// without end.)
#[test]
fn fifos_and_devices_in_a_bundle_are_refused_not_waited_on() {
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let img = push_image(
        src,
        "fifo/app",
        "1",
        Format::Oci,
        &[layer("fifo", 10_000)],
        "fifo",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save_bundle(&[&img.reference], &work.path().join("out"), &[]);
    let dir = meta.parent().unwrap();
    // Every command is killed after a minute (a hang guard, not a timing test).
    let run = |args: &[&str]| {
        FerryCmd::new()
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
    };
    let m = meta.to_str().unwrap();
    for (name, make) in [
        ("evil_fifo.tar", &(|p: &Path| mkfifo(p)) as &dyn Fn(&Path)),
        ("evil_zero.tar", &|p: &Path| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
    ] {
        let original = std::fs::read(&meta).unwrap();
        add_empty_data_file(&meta, name);
        make(&dir.join(name));
        let oci = work.path().join(format!("oci-{name}"));
        for args in [
            vec!["verify", m],
            vec!["verify", "--size-only", m],
            vec!["upload", m, "--dst", &dst.host()],
            vec!["export", m, "--oci", oci.to_str().unwrap()],
            vec!["serve", m, "--listen", "127.0.0.1:0"],
        ] {
            let out = run(&args);
            assert!(out.code.is_some_and(|c| c != 0), "{name}: {out}");
            out.assert_stderr_has(&[name, "not a regular file"]);
        }
        assert!(dst.catalog().is_empty(), "{:?}", dst.catalog());
        std::fs::remove_file(dir.join(name)).unwrap();
        std::fs::write(&meta, original).unwrap();
    }

    // A signature that is a FIFO: read first under --trust, refused at once.
    let key = work.path().join("key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let allowed = work.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("a@example.com namespaces=\"ferry-bundle\" {public}"),
    )
    .unwrap();
    mkfifo(Path::new(&format!("{m}.sig")));
    let out = run(&[
        "upload",
        m,
        "--dst",
        &dst.host(),
        "--trust",
        allowed.to_str().unwrap(),
    ]);
    assert!(out.code.is_some_and(|c| c != 0), "{out}");
    out.assert_stderr_has(&["not a regular file"]);
    assert!(dst.catalog().is_empty(), "{:?}", dst.catalog());
}

/// A bundle saved `--with-referrers` whose signature is corrupt: `--verify full`
/// refuses the bundle as a whole, so the signed image is not tagged either, and
/// the error's "no tag was set" is true. (Signatures went up after their images
/// were tagged, so the image was tagged and the error said it was not.)
#[test]
fn a_corrupt_signature_leaves_its_image_untagged_too() {
    use crate::referrers::{cosign_manifest, push_raw};
    let regs = start_registries(2);
    let (src, dst) = (&regs[0], &regs[1]);
    let image = push_image(
        src,
        "signed/app",
        "1",
        Format::Oci,
        &[layer("signed-app", 20_000)],
        "signed",
        false,
    );
    let hex = image.digest.trim_start_matches("sha256:");
    let payload = format!(
        "{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{}\"}}}},\"optional\":{{\"note\":\"{}\"}}}}",
        image.digest,
        "x".repeat(200)
    )
    .into_bytes();
    let (sig, config) = cosign_manifest(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &payload,
        "MEUCIQ==",
    );
    push_raw(
        src,
        &image.repo,
        &format!("sha256-{hex}.sig"),
        "application/vnd.oci.image.manifest.v1+json",
        &sig,
        &[&config, &payload],
    );
    let work = tempfile::tempdir().unwrap();
    let meta = save_bundle(
        &[&image.reference],
        &work.path().join("out"),
        &["--with-referrers"],
    );
    corrupt_blob_in_bundle(meta.to_str().unwrap(), &payload);
    let up = ferry_run(&["upload", meta.to_str().unwrap(), "--dst", &dst.host()]);
    assert_eq!(up.code, Some(1), "{up}");
    up.assert_stderr_has(&["failed verification", &sha256_digest(&payload)]);
    assert!(
        dst.tags(&image.repo).is_empty(),
        "tagged: {:?}\n{up}",
        dst.tags(&image.repo)
    );
}
