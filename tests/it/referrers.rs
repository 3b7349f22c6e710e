//! Signatures, attestations and SBOMs travel with their images (`--with-referrers`).
//! The artifacts are built here the way cosign and ORAS lay them out and pushed with
//! plain registry API calls; skopeo checks what arrives at the target.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

/// Pushes blobs and a manifest with the registry API; returns the manifest digest.
pub(crate) fn push_raw(
    reg: &Registry,
    repo: &str,
    tag: &str,
    media_type: &str,
    manifest: &[u8],
    blobs: &[&[u8]],
) -> String {
    for blob in blobs {
        let start = reg.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], None);
        assert_eq!(start.status, 202, "start upload: {}", start.text());
        let location = start
            .header("location")
            .expect("upload location")
            .to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", reg.url())
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = http_request(
            "PUT",
            &format!("{url}{sep}digest={}", sha256_digest(blob)),
            None,
            &[("Content-Type", "application/octet-stream")],
            Some(blob.to_vec()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(put.status, 201, "blob upload: {}", put.text());
    }
    let put = reg.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", media_type)],
        Some(manifest.to_vec()),
    );
    assert_eq!(put.status, 201, "manifest: {}", put.text());
    manifest_digest(manifest)
}

const EMPTY_CONFIG: &[u8] = b"{}";

/// A cosign-style signature (`.sig`) or attestation (`.att`) manifest.
pub(crate) fn cosign_manifest(
    layer_type: &str,
    payload: &[u8],
    annotation: &str,
) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": sha256_digest(&config)},
        "layers": [{"mediaType": layer_type, "size": payload.len(), "digest": sha256_digest(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": annotation}}]
    });
    (serde_json::to_vec(&m).unwrap(), config)
}

struct Signed {
    image: PushedImage,
    artifacts: Vec<(String, String)>, // (tag, manifest digest)
}

fn sign(reg: &Registry, repo: &str, image: PushedImage, signature: &str) -> Signed {
    let hex = image.digest.trim_start_matches("sha256:").to_string();
    let mut artifacts = Vec::new();
    let sig_payload = format!("{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{}\"}}}},\"sig\":\"{signature}\"}}", image.digest).into_bytes();
    let (sig, sig_config) = cosign_manifest(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &sig_payload,
        signature,
    );
    artifacts.push((
        format!("sha256-{hex}.sig"),
        push_raw(
            reg,
            repo,
            &format!("sha256-{hex}.sig"),
            "application/vnd.oci.image.manifest.v1+json",
            &sig,
            &[&sig_config, &sig_payload],
        ),
    ));
    let att_payload = b"{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"e30=\",\"signatures\":[]}".to_vec();
    let (att, att_config) =
        cosign_manifest("application/vnd.dsse.envelope.v1+json", &att_payload, "att");
    artifacts.push((
        format!("sha256-{hex}.att"),
        push_raw(
            reg,
            repo,
            &format!("sha256-{hex}.att"),
            "application/vnd.oci.image.manifest.v1+json",
            &att,
            &[&att_config, &att_payload],
        ),
    ));
    // An OCI artifact with a subject, under the referrers fallback tag.
    let sbom = b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec();
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": sha256_digest(EMPTY_CONFIG)},
        "layers": [{"mediaType": "application/spdx+json", "size": sbom.len(), "digest": sha256_digest(&sbom)}],
        "subject": {"mediaType": image.media_type, "size": image.manifest.len(), "digest": image.digest}
    });
    let artifact = serde_json::to_vec(&artifact).unwrap();
    artifacts.push((
        format!("sha256-{hex}"),
        push_raw(
            reg,
            repo,
            &format!("sha256-{hex}"),
            "application/vnd.oci.image.manifest.v1+json",
            &artifact,
            &[EMPTY_CONFIG, &sbom],
        ),
    ));
    Signed { image, artifacts }
}

fn save(work: &Path, out: &str, extra: &[&str], refs: &[&str]) -> String {
    let mut flags = vec!["--with-referrers"];
    flags.extend_from_slice(extra);
    save_bundle(refs, &work.join(out), &flags)
        .display()
        .to_string()
}

#[test]
fn referrers_are_saved_uploaded_byte_exact_and_increments_carry_new_signatures_only() {
    let src = Registry::start();
    let dst = Registry::start();
    let image = push_image(
        &src,
        "signed/app",
        "1.0",
        Format::Oci,
        &[layer("ref-app", 30_000)],
        "ref-app",
        false,
    );
    let signed = sign(&src, "signed/app", image, "MEUCIQD-first");
    let work = tempfile::tempdir().unwrap();
    let v1 = save(work.path(), "v1", &[], &[&signed.image.reference]);
    let meta = ferry::bundle::meta::Meta::load(&work.path().join(&v1))
        .unwrap()
        .0;
    let subjects: Vec<_> = meta
        .images
        .iter()
        .filter(|i| i.subject.as_ref().map(|s| s.as_str()) == Some(signed.image.digest.as_str()))
        .collect();
    assert_eq!(
        subjects.len(),
        3,
        "the .sig, .att and the fallback-tag artifact are saved: {:?}",
        meta.images
    );

    ferry()
        .current_dir(work.path())
        .args(["upload", &v1, "--dst", &dst.host()])
        .assert()
        .success();
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/signed/app:1.0", dst.host())),
        signed.image.manifest
    );
    for (tag, digest) in &signed.artifacts {
        let raw = skopeo_inspect_raw(&format!("{}/signed/app:{tag}", dst.host()));
        assert_eq!(&manifest_digest(&raw), digest, "{tag} arrived byte-exact");
        let src_raw = skopeo_inspect_raw(&format!("{}/signed/app:{tag}", src.host()));
        assert_eq!(raw, src_raw);
    }
    let sbom = skopeo_inspect_raw(&format!(
        "{}/signed/app:sha256-{}",
        dst.host(),
        signed.image.digest.trim_start_matches("sha256:")
    ));
    let v: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    assert_eq!(
        v["subject"]["digest"],
        signed.image.digest.as_str(),
        "still points at its subject"
    );
    let ls = ferry()
        .current_dir(work.path())
        .args(["ls", &v1])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let ls = String::from_utf8_lossy(&ls);
    assert!(
        ls.contains("1 signature") && ls.contains("1 attestation"),
        "{ls}"
    );

    // Re-sign: the increment carries the new signature's blobs only.
    let resigned = sign(&src, "signed/app", signed.image.clone(), "MEUCIQD-second");
    let v2 = save(
        work.path(),
        "v2",
        &["--inc", &v1],
        &[&signed.image.reference],
    );
    let meta2 = ferry::bundle::meta::Meta::load(&work.path().join(&v2))
        .unwrap()
        .0;
    let carried: Vec<_> = meta2
        .blobs
        .iter()
        .filter(|b| b.file.is_some() && b.kind != ferry::bundle::meta::BlobKind::Manifest)
        .collect();
    assert_eq!(
        carried.len(),
        1,
        "only the new signature payload is a new blob: {carried:?}"
    );
    ferry()
        .current_dir(work.path())
        .args(["upload", &v2, "--dst", &dst.host()])
        .assert()
        .success();
    let sig_tag = &resigned.artifacts[0].0;
    assert_eq!(
        manifest_digest(&skopeo_inspect_raw(&format!(
            "{}/signed/app:{sig_tag}",
            dst.host()
        ))),
        resigned.artifacts[0].1,
        "the new signature is at the target"
    );
}

#[test]
fn without_the_option_or_without_artifacts_nothing_changes() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "plain/app",
        "1",
        Format::Docker,
        &[layer("ref-plain", 10_000)],
        "ref-plain",
        false,
    );
    let signed = sign(&src, "plain/app", image, "sig");
    let work = tempfile::tempdir().unwrap();
    let a = ferry()
        .current_dir(work.path())
        .args(["save", &signed.image.reference, "--out", "o", "-q"])
        .assert()
        .success();
    let meta_path = String::from_utf8_lossy(&a.get_output().stdout)
        .trim()
        .to_string();
    let meta = ferry::bundle::meta::Meta::load(&work.path().join(meta_path))
        .unwrap()
        .0;
    assert_eq!(
        meta.images.len(),
        1,
        "no referrers without --with-referrers"
    );
    // A registry with no artifacts for an image: not an error.
    let lonely = push_image(
        &src,
        "plain/lonely",
        "1",
        Format::Oci,
        &[layer("ref-lonely", 10_000)],
        "ref-lonely",
        false,
    );
    save(work.path(), "o2", &[], &[&lonely.reference]);
}

#[test]
fn sync_carries_referrers_too() {
    let src = Registry::start();
    let dst = Registry::start();
    let image = push_image(
        &src,
        "synced/app",
        "1",
        Format::Oci,
        &[layer("ref-sync", 20_000)],
        "ref-sync",
        false,
    );
    let signed = sign(&src, "synced/app", image, "MEUCIQD-sync");
    let work = tempfile::tempdir().unwrap();
    ferry()
        .current_dir(work.path())
        .args([
            "sync",
            &signed.image.reference,
            "--dst",
            &dst.host(),
            "--with-referrers",
        ])
        .assert()
        .success();
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/synced/app:1", dst.host())),
        signed.image.manifest
    );
    for (tag, digest) in &signed.artifacts {
        let raw = skopeo_inspect_raw(&format!("{}/synced/app:{tag}", dst.host()));
        assert_eq!(&manifest_digest(&raw), digest, "{tag} synced byte-exact");
    }
}

/// A renamed image (`SOURCE -> TARGET` in the list) takes its signatures along to
/// the new repository, where cosign looks for them; nothing lands under the
/// source's repository name. Through a bundle and through sync alike.
#[test]
fn signatures_follow_a_renamed_image() {
    let src = Registry::start();
    let image = push_image(
        &src,
        "orig/app",
        "1",
        Format::Oci,
        &[layer("ref-rename", 20_000)],
        "ref-rename",
        false,
    );
    let signed = sign(&src, "orig/app", image, "MEUCIQD-rename");
    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("images.lst");
    std::fs::write(
        &list,
        format!(
            "{0} -> signed/app:9\n{0} -> second/app:3\n",
            signed.image.reference
        ),
    )
    .unwrap();
    let list = list.to_str().unwrap();

    let via_bundle = Registry::start();
    let meta = save(work.path(), "out", &["--list", list], &[]);
    ferry()
        .current_dir(work.path())
        .args(["upload", &meta, "--dst", &via_bundle.host()])
        .assert()
        .success();
    let via_sync = Registry::start();
    ferry()
        .current_dir(work.path())
        .args([
            "sync",
            "--list",
            list,
            "--dst",
            &via_sync.host(),
            "--with-referrers",
        ])
        .assert()
        .success();

    for dst in [&via_bundle, &via_sync] {
        for (repo, tag) in [("signed/app", "9"), ("second/app", "3")] {
            assert_eq!(
                skopeo_inspect_raw(&format!("{}/{repo}:{tag}", dst.host())),
                signed.image.manifest
            );
            for (artifact, digest) in &signed.artifacts {
                let raw = skopeo_inspect_raw(&format!("{}/{repo}:{artifact}", dst.host()));
                assert_eq!(&manifest_digest(&raw), digest, "{artifact} next to {repo}");
            }
        }
        assert!(
            dst.tags("orig/app").is_empty(),
            "artifacts went to the source's repository: {:?}",
            dst.tags("orig/app")
        );
    }
}
