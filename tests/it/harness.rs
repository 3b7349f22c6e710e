//! Tests of the integration-test harness itself (tests/common).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::common::*;

fn process_alive(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would still show "Z".
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn registry_starts_answers_and_is_gone_after_drop() {
    let reg = Registry::start();
    let pid = reg.pid();
    let url = reg.url();
    assert_eq!(reg.host(), format!("127.0.0.1:{}", reg.port()));
    assert_eq!(url, format!("http://{}", reg.host()));

    let resp = reg.get("/v2/");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(reg.catalog().is_empty());
    assert!(reg.tags("nope/nothing").is_empty());
    assert!(reg.storage_dir().is_dir());
    let work_dir = reg.work_dir().to_path_buf();
    assert!(process_alive(pid));

    drop(reg);
    assert!(!process_alive(pid), "registry pid {pid} survived drop");
    assert!(
        http_request(
            "GET",
            &format!("{url}/v2/"),
            None,
            &[],
            None,
            std::time::Duration::from_secs(2)
        )
        .is_err(),
        "something still answers on {url}"
    );
    assert!(!work_dir.exists(), "tempdir {work_dir:?} not removed");
}

#[test]
fn registries_in_parallel_are_isolated() {
    let regs: Vec<Registry> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(Registry::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ports: BTreeSet<u16> = regs.iter().map(|r| r.port()).collect();
    assert_eq!(ports.len(), 4, "ports not distinct: {ports:?}");
    let dirs: BTreeSet<&Path> = regs.iter().map(|r| r.storage_dir()).collect();
    assert_eq!(dirs.len(), 4);

    let img = push_image(
        &regs[0],
        "only/here",
        "t",
        Format::Oci,
        &[layer("isolated", 2048)],
        "isolated",
        false,
    );
    assert_eq!(regs[0].catalog(), vec!["only/here".to_string()]);
    assert_eq!(regs[0].tags("only/here"), vec!["t".to_string()]);
    for other in &regs[1..] {
        assert!(other.catalog().is_empty());
        assert!(try_skopeo_inspect_raw(&other.reference("only/here", "t"), None).is_err());
    }
    assert_eq!(skopeo_inspect_raw(&img.reference), img.manifest);
}

#[test]
fn layers_are_deterministic_gzip_tars() {
    let a = layer("seed-a", 100 * 1024);
    assert_eq!(a, layer("seed-a", 100 * 1024), "same seed, different bytes");
    assert_ne!(
        sha256_digest(&a),
        sha256_digest(&layer("seed-b", 100 * 1024))
    );
    assert_ne!(a, layer("seed-a", 50 * 1024));
    assert!(
        (95 * 1024..110 * 1024).contains(&a.len()),
        "size {} far from 100 KiB",
        a.len()
    );
    assert_eq!(&a[..2], &[0x1f, 0x8b], "not gzip");

    let tar_bytes = gunzip(&a);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut names = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        names.push(entry.path().unwrap().display().to_string());
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf).unwrap();
        total += buf.len() as u64;
    }
    assert_eq!(names[0], "layer-seed_a/");
    assert!(names.contains(&"layer-seed_a/SEED.txt".to_string()));
    assert!(names.contains(&"layer-seed_a/data-0.bin".to_string()));
    assert!(total > 90 * 1024, "tar content only {total} bytes");
}

#[test]
fn built_manifests_reference_their_blobs() {
    let layers = vec![layer("m-0", 2048), layer("m-1", 4096)];
    for format in [Format::Docker, Format::Oci] {
        for non_canonical in [false, true] {
            let img = build_image(format, "linux/arm/v7", &layers, "cfg", non_canonical);
            assert_eq!(img.digest, manifest_digest(&img.manifest));
            let v: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
            assert_eq!(v["schemaVersion"], 2);
            assert_eq!(v["mediaType"], format.manifest_media_type());
            assert_eq!(
                v["config"]["digest"].as_str().unwrap(),
                img.blobs[0].0.digest
            );
            let layer_digests: Vec<&str> = v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            assert_eq!(
                layer_digests,
                vec![sha256_digest(&layers[0]), sha256_digest(&layers[1])]
            );
            for (blob, data) in &img.blobs {
                assert_eq!(blob.digest, sha256_digest(data));
                assert_eq!(blob.size, data.len() as u64);
            }
            let config: serde_json::Value = serde_json::from_slice(&img.blobs[0].1).unwrap();
            assert_eq!(config["architecture"], "arm");
            assert_eq!(config["variant"], "v7");
            assert_eq!(
                config["rootfs"]["diff_ids"][1].as_str().unwrap(),
                sha256_digest(&gunzip(&layers[1]))
            );
            let compact = serde_json::to_vec(&v).unwrap();
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            if non_canonical {
                assert!(img.manifest.ends_with(b"}\n"));
                assert!(img.manifest.starts_with(b"{\n   \""));
                assert_ne!(img.manifest, compact);
                assert_ne!(img.manifest, pretty);
                let text = String::from_utf8(img.manifest.clone()).unwrap();
                let last_key = text.rfind("\"mediaType\"").unwrap();
                assert!(last_key > text.rfind("\"schemaVersion\"").unwrap());
                assert!(last_key > text.rfind("\"layers\"").unwrap());
            } else {
                assert!(!img.manifest.contains(&b'\n'));
                assert!(img
                    .manifest
                    .starts_with(b"{\"schemaVersion\":2,\"mediaType\":"));
            }
        }
    }
}

#[test]
fn corpus_is_pushed_byte_exact() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    assert_eq!(corpus.len(), 7);

    // Every manifest (and every child of an index) is served byte-exact by
    // the registry, as seen by skopeo (by tag and by digest) and by a plain
    // HTTP GET. One thread per manifest: each check runs skopeo processes.
    let manifests: Vec<&PushedImage> = corpus.iter().flat_map(|i| i.manifests()).collect();
    assert_eq!(manifests.len(), 7 + 2 + 2, "manifests incl. index children");
    std::thread::scope(|s| {
        for m in &manifests {
            let reg = &reg;
            s.spawn(move || {
                assert!(m.reference.starts_with(&format!("{}/", reg.host())));
                let raw = skopeo_inspect_raw(&m.reference);
                assert!(raw == m.manifest, "{}: bytes differ", m.reference);
                assert_eq!(m.digest, manifest_digest(&raw), "{}", m.reference);
                if m.reference != m.digest_reference() {
                    assert_eq!(skopeo_inspect_raw_digest(&m.digest_reference()), m.digest);
                }
                let resp = reg.get_manifest(&m.repo, &m.digest);
                assert_eq!(resp.status, 200, "{}", m.reference);
                assert_eq!(
                    resp.header("docker-content-digest"),
                    Some(m.digest.as_str())
                );
                assert_eq!(resp.header("content-type"), Some(m.media_type.as_str()));
                assert!(resp.body == m.manifest);
                let parsed: serde_json::Value = serde_json::from_slice(&raw).unwrap();
                assert_eq!(parsed["mediaType"], m.media_type.as_str());
            });
        }
    });
    // Every blob is there with the right size and digest.
    for image in &corpus {
        for blob in &image.blobs {
            let resp = reg.get(&format!("/v2/{}/blobs/{}", image.repo, blob.digest));
            assert_eq!(resp.status, 200, "{} {}", image.repo, blob.digest);
            assert_eq!(resp.body.len() as u64, blob.size);
            assert_eq!(sha256_digest(&resp.body), blob.digest);
            assert!(reg.blob_data_path(&blob.digest).is_file());
        }
    }

    // Catalog and tags.
    let catalog = reg.catalog();
    assert_eq!(catalog, CORPUS_REPOS.map(String::from).to_vec());
    let mut expected_tags: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for image in &corpus {
        expected_tags
            .entry(image.repo.as_str())
            .or_default()
            .push(image.tag.clone());
    }
    for (repo, mut tags) in expected_tags {
        tags.sort();
        assert_eq!(reg.tags(repo), tags, "tags of {repo}");
    }
    assert_eq!(
        reg.tags("team/sub/app"),
        vec!["latest".to_string(), "v0.1-rc.1_x".to_string()]
    );

    // Coverage of forms.
    let media_types: BTreeSet<&str> = corpus
        .iter()
        .flat_map(|i| i.manifests())
        .map(|m| m.media_type.as_str())
        .collect();
    for mt in [
        media_types::DOCKER_MANIFEST,
        media_types::DOCKER_MANIFEST_LIST,
        media_types::OCI_MANIFEST,
        media_types::OCI_INDEX,
    ] {
        assert!(media_types.contains(mt), "corpus lacks {mt}");
    }
    for image in corpus.iter().filter(|i| i.is_index()) {
        let platforms: Vec<&str> = image
            .children
            .iter()
            .map(|c| c.platform.as_deref().unwrap())
            .collect();
        assert_eq!(platforms.len(), 2);
        assert!(platforms[0] == "linux/amd64" && platforms[1].starts_with("linux/arm64"));
        for c in &image.children {
            assert!(c.reference.contains('@') && c.tag.is_empty());
        }
    }
    assert!(corpus
        .iter()
        .any(|i| i.repo == "team/sub/app" && i.tag == "v0.1-rc.1_x"));
    let many = corpus.iter().find(|i| i.repo == "many/layers").unwrap();
    assert_eq!(many.layers().len(), 42);
    let many_json: serde_json::Value = serde_json::from_slice(&many.manifest).unwrap();
    assert_eq!(many_json["layers"].as_array().unwrap().len(), 42);

    // Non-canonical JSON: a parse + re-serialise changes the digest.
    let distinct_non_canonical: BTreeSet<&str> = corpus
        .iter()
        .filter(|i| i.non_canonical)
        .map(|i| {
            let v: serde_json::Value = serde_json::from_slice(&i.manifest).unwrap();
            for reserialised in [
                serde_json::to_vec(&v).unwrap(),
                serde_json::to_vec_pretty(&v).unwrap(),
            ] {
                assert_ne!(manifest_digest(&reserialised), i.digest, "{}", i.reference);
            }
            i.digest.as_str()
        })
        .collect();
    assert!(
        distinct_non_canonical.len() >= 2,
        "only {} non-canonical manifests",
        distinct_non_canonical.len()
    );

    // Shared base layers: both base layers are in at least 3 images.
    for base in corpus_base_layers() {
        let digest = sha256_digest(&base);
        let holders: BTreeSet<String> = corpus
            .iter()
            .flat_map(|i| i.manifests())
            .filter(|m| !m.is_index() && m.blobs.iter().any(|b| b.digest == digest))
            .map(|m| m.digest.clone())
            .collect();
        assert!(holders.len() >= 3, "base {digest} only in {holders:?}");
    }

    // Size stays small.
    let total: u64 = corpus
        .iter()
        .flat_map(|i| i.blobs.iter())
        .map(|b| (b.digest.clone(), b.size))
        .collect::<BTreeMap<_, _>>()
        .values()
        .sum();
    assert!(
        (1_000_000..4_000_000).contains(&total),
        "corpus is {total} bytes"
    );
}

#[test]
fn corpus_is_deterministic_across_registries() {
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            let reg = Registry::start();
            let c = seed_corpus(&reg);
            (reg, c)
        });
        let hb = s.spawn(|| {
            let reg = Registry::start();
            let img = push_image(
                &reg,
                "docker/v2s2",
                "1.0",
                Format::Docker,
                &{
                    let mut l = corpus_base_layers();
                    l.push(layer("corpus-docker-app", 1024 * 1024));
                    l
                },
                "corpus-docker",
                false,
            );
            (reg, img)
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let (reg_a, corpus) = a;
    let (reg_b, single) = b;
    assert_ne!(reg_a.host(), reg_b.host());
    assert_eq!(corpus[0].digest, single.digest);
    assert_eq!(corpus[0].manifest, single.manifest);
    assert_eq!(corpus[0].blobs, single.blobs);
}

#[test]
fn corrupting_a_blob_file_is_visible_to_clients() {
    let reg = Registry::start();
    let data = layer("to-corrupt", 4096);
    let img = push_image(
        &reg,
        "corrupt/me",
        "1",
        Format::Docker,
        std::slice::from_ref(&data),
        "c",
        false,
    );
    let digest = sha256_digest(&data);
    let path = reg.blob_data_path(&digest);
    assert_eq!(std::fs::read(&path).unwrap(), data);

    let mut bad = data.clone();
    bad[100] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let resp = reg.get(&format!("/v2/corrupt/me/blobs/{digest}"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, bad, "registry did not serve the corrupted file");

    // skopeo notices the digest mismatch when pulling.
    let out = tempfile::tempdir().unwrap();
    let err = skopeo_copy(
        &format!("docker://{}", img.reference),
        &format!("dir:{}", out.path().display()),
        &[],
    )
    .expect_err("skopeo copied a corrupted blob");
    assert!(
        err.to_lowercase().contains("digest did not match"),
        "unexpected skopeo error: {err}"
    );
}

#[test]
fn skopeo_copy_reports_stderr() {
    let reg = Registry::start();
    let err = skopeo_copy(
        &format!("docker://{}", reg.reference("does/not-exist", "x")),
        "dir:/nonexistent-ferry-test-dir",
        &[],
    )
    .expect_err("copy of a missing image succeeded");
    assert!(
        err.contains("manifest unknown") || err.contains("not found"),
        "unexpected stderr: {err}"
    );
}

#[test]
fn htpasswd_registry_requires_credentials() {
    let reg = Registry::start_with_htpasswd("ferry", "s3cret pass");
    assert_eq!(reg.creds(), Some(("ferry", "s3cret pass")));
    let anon = http_get(&format!("{}/v2/", reg.url()), None);
    assert_eq!(anon.status, 401);
    assert!(anon
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Basic"));
    let wrong = http_get(&format!("{}/v2/", reg.url()), Some(("ferry", "nope")));
    assert_eq!(wrong.status, 401);
    assert_eq!(reg.get("/v2/").status, 200);

    // The corpus helpers push with the registry's credentials.
    let img = push_image(
        &reg,
        "private/app",
        "1",
        Format::Oci,
        &[layer("private", 2048)],
        "private",
        true,
    );
    assert_eq!(reg.catalog(), vec!["private/app".to_string()]);
    assert_eq!(
        skopeo_inspect_raw_with_creds(&img.reference, "ferry", "s3cret pass"),
        img.manifest
    );
    assert!(try_skopeo_inspect_raw(&img.reference, None).is_err());
    assert!(try_skopeo_inspect_raw(&img.reference, Some(("ferry", "wrong"))).is_err());
}
