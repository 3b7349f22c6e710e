//! Writes the first inputs of every fuzz target into `seeds/<target>/`.
use ferry::bundle::layout;
use ferry::bundle::meta::{BlobKind, BlobRecord, DataFile, Failure, Image, Kind, Meta};
use ferry::digest::Digest;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("seed folder");
    std::fs::write(d.join(name), bytes).expect("seed file");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    let dir = Path::new(&dir);
    let blobs: Vec<Vec<u8>> = vec![b"{\"config\":1}".to_vec(), vec![7u8; 700]];
    let sized: Vec<(Digest, u64)> = blobs
        .iter()
        .map(|b| (Digest::of(b), b.len() as u64))
        .collect();
    let plan = layout::plan(&sized, 1).expect("layout").remove(0);
    let tmp = std::env::temp_dir().join(format!("ferry-fuzz-seed-{}", std::process::id()));
    let tar = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .expect("temporary tar");
    tar.set_len(plan.size).expect("size");
    for e in &plan.entries {
        tar.write_all_at(
            &layout::header(&e.digest, e.size, 0).expect("header"),
            e.header_offset,
        )
        .expect("write");
        let b = blobs
            .iter()
            .find(|b| Digest::of(b) == e.digest)
            .expect("blob");
        tar.write_all_at(b, e.data_offset()).expect("write");
    }
    put(
        dir,
        "tar",
        "two.tar",
        &std::fs::read(&tmp).expect("read tar"),
    );
    let zst = tmp.with_extension("zst");
    let offsets = ferry::bundle::compress::compress_tar(&tar, &plan, &zst)
        .expect("zstd")
        .offsets;
    put(
        dir,
        "zstd_frames",
        "two.tar.zst",
        &std::fs::read(&zst).expect("read zst"),
    );
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&zst);

    let meta = Meta {
        format: ferry::bundle::meta::FORMAT_NAME.into(),
        version: ferry::bundle::meta::FORMAT_VERSION,
        tool: "ferry 0.1.0".into(),
        created: "2026-11-30T04:00:00Z".into(),
        name: "img_full_202611300400".into(),
        kind: Kind::Full,
        bases: vec![],
        platforms: vec!["linux/amd64".into()],
        files: vec![DataFile {
            name: "img_full_202611300400_1.tar.zst".into(),
            size: plan.size,
            sha256: "00".repeat(32),
            headers_sha256: None,
            blobs: 2,
        }],
        images: vec![Image {
            reference: "127.0.0.1:5000/app:1.0".into(),
            registry: "127.0.0.1:5000".into(),
            repository: "app".into(),
            tag: Some("1.0".into()),
            digest: Digest::of(b"m"),
            media_type: ferry::manifest::OCI_MANIFEST.into(),
            target: Some("team/app:2".into()),
            subject: None,
            children: vec![],
        }],
        blobs: sized
            .iter()
            .map(|(d, s)| BlobRecord {
                digest: d.clone(),
                size: *s,
                kind: BlobKind::Layer,
                file: Some("img_full_202611300400_1.tar.zst".into()),
                base: None,
                repository: "app".into(),
                offset: offsets.get(d).copied(),
            })
            .collect(),
        failed: vec![Failure {
            reference: "nope:1".into(),
            reason: "not found".into(),
        }],
        selections: vec![],
    };
    put(
        dir,
        "meta",
        "full.yaml",
        meta.to_yaml().expect("yaml").as_bytes(),
    );

    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":12,"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":700,"digest":"{}"}}]}}"#,
        ferry::manifest::OCI_MANIFEST,
        sized[0].0,
        sized[1].0
    );
    put(
        dir,
        "manifest",
        "oci.json",
        format!("{}\n{manifest}", ferry::manifest::OCI_MANIFEST).as_bytes(),
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","size":10,"digest":"{}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
        ferry::manifest::OCI_MANIFEST,
        sized[0].0
    );
    put(
        dir,
        "manifest",
        "index.json",
        format!("\n{index}").as_bytes(),
    );
    let transmit = format!(
        "datafiles:\n  img_incr_1_0.tar: 4096\ncompressor: tar\nblobs:\n  {}:\n  - 10.0.0.1/app/web:1.0\n  {}:\n  - https://last.img/skip/it:img_full_0_meta.yaml\nmanifests:\n  10.0.0.1/app/web:1.0: '{}'\n",
        sized[0].0.hex(),
        sized[1].0.hex(),
        manifest
    );
    put(dir, "transmit", "incr.yaml", transmit.as_bytes());
    for (i, r) in [
        "nginx".to_string(),
        format!("127.0.0.1:5000/team/sub/app:v0.1-rc.1_x@{}", sized[0].0),
        "[::1]:5000/a/b".into(),
        "docker.io/library/alpine:3".into(),
    ]
    .iter()
    .enumerate()
    {
        put(dir, "reference", &format!("{i}"), r.as_bytes());
    }
    for (i, h) in ["bytes=0-9", "bytes=-5", "bytes=90-", "bytes=1-2,5-6"]
        .iter()
        .enumerate()
    {
        let mut b = 100u64.to_le_bytes().to_vec();
        b.extend_from_slice(h.as_bytes());
        put(dir, "range", &format!("{i}"), &b);
    }
}
