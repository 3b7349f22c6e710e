//! Incremental bundles: `ferry save --inc OLD_META`, its meta, its data files,
//! and uploading increments (alone, after their base, in chains).
//!
//! Every expectation is computed from what was pushed to the source registry
//! with skopeo (the `PushedImage` blob lists and manifest bytes), never from
//! ferry's own plan. Every test starts its own registries, so they run in
//! parallel; layers are a few KiB to stay fast on small machines.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::common::*;
use ferry::bundle::meta::{BlobKind, Kind, Meta};

// ---------------------------------------------------------------------------
// Helpers

/// A bundle written by `ferry save`, as the test sees it.
struct Saved {
    meta_path: PathBuf,
    meta: Meta,
    /// sha256 (hex) of the meta file's bytes.
    meta_sha256: String,
}

impl Saved {
    fn dir(&self) -> PathBuf {
        self.meta_path.parent().unwrap().to_path_buf()
    }

    fn data_paths(&self) -> Vec<PathBuf> {
        self.meta
            .files
            .iter()
            .map(|f| self.dir().join(&f.name))
            .collect()
    }
}

/// `ferry save --list LIST --out OUT --files N [--inc BASE]...`; panics unless
/// it succeeds, and loads the meta whose path it prints.
fn save(refs: &[String], out: &Path, files: u16, bases: &[&Saved]) -> Saved {
    save_prefixed(refs, out, files, bases, None)
}

/// [`save`] with `--prefix P` when given.
fn save_prefixed(
    refs: &[String],
    out: &Path,
    files: u16,
    bases: &[&Saved],
    prefix: Option<&str>,
) -> Saved {
    let lists = tempfile::tempdir().unwrap();
    let list = lists.path().join("next.lst");
    let mut text = String::from("# images for this bundle\n");
    for r in refs {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&list, text).unwrap();
    let mut cmd = FerryCmd::new();
    cmd.arg("save")
        .arg("--list")
        .arg(&list)
        .arg("--out")
        .arg(out)
        .arg("--files")
        .arg(files.to_string());
    if let Some(p) = prefix {
        cmd.arg("--prefix").arg(p);
    }
    for b in bases {
        cmd.arg("--inc").arg(&b.meta_path);
    }
    let meta_path = cmd.ok().meta_only();
    let (meta, meta_sha256) = Meta::load(&meta_path).unwrap();
    let bytes = std::fs::read(&meta_path).unwrap();
    assert_eq!(
        format!("sha256:{meta_sha256}"),
        sha256_digest(&bytes),
        "Meta::load hash"
    );
    Saved {
        meta_path,
        meta,
        meta_sha256,
    }
}

/// `ferry upload META --dst DST`: (success, stdout + stderr).
fn upload(saved: &Saved, dst: &str) -> (bool, String) {
    let out = FerryCmd::new()
        .arg("upload")
        .arg(&saved.meta_path)
        .arg("--dst")
        .arg(dst)
        .output();
    assert!(matches!(out.code, Some(0 | 1)), "{out}");
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

fn upload_ok(saved: &Saved, dst: &str) {
    let (ok, text) = upload(saved, dst);
    assert!(ok, "upload of {} to {dst} failed:\n{text}", saved.meta.name);
}

fn refs(images: &[&PushedImage]) -> Vec<String> {
    images.iter().map(|i| i.reference.clone()).collect()
}

fn is_config(b: &Blob) -> bool {
    b.media_type == media_types::DOCKER_CONFIG || b.media_type == media_types::OCI_CONFIG
}

/// Configs and layers the images need (children included), by digest.
fn needed(images: &[&PushedImage]) -> BTreeMap<String, Blob> {
    images
        .iter()
        .flat_map(|i| i.blobs.iter())
        .map(|b| (b.digest.clone(), b.clone()))
        .collect()
}

/// Every manifest of the images (children included): digest -> exact bytes.
fn manifests(images: &[&PushedImage]) -> BTreeMap<String, Vec<u8>> {
    images
        .iter()
        .flat_map(|i| i.manifests())
        .map(|m| (m.digest.clone(), m.manifest.clone()))
        .collect()
}

/// Entries of one tar data file: name -> bytes (panics on a duplicate name).
fn tar_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        assert!(
            out.insert(name.clone(), data).is_none(),
            "{name} twice in {path:?}"
        );
    }
    out
}

/// Every blob stored in the bundle's data files: digest -> bytes. Checks the
/// entry names (`blobs/sha256/<hex>`), that every entry's bytes hash to its
/// name, and that no blob is stored twice across the files.
fn stored_blobs(saved: &Saved) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for path in saved.data_paths() {
        for (name, data) in tar_entries(&path) {
            let hex = name
                .strip_prefix("blobs/sha256/")
                .unwrap_or_else(|| panic!("entry {name:?} in {path:?} is not blobs/sha256/<hex>"));
            let digest = format!("sha256:{hex}");
            assert_eq!(sha256_digest(&data), digest, "bytes of {name} in {path:?}");
            assert!(
                all.insert(digest, data).is_none(),
                "{name} stored in more than one data file"
            );
        }
    }
    all
}

/// The data files hold exactly the manifests of `images` plus `new_blobs`,
/// byte for byte.
fn assert_carries_exactly(
    saved: &Saved,
    images: &[&PushedImage],
    new_blobs: &BTreeMap<String, Blob>,
) {
    let stored = stored_blobs(saved);
    let mut expected: BTreeMap<String, u64> =
        new_blobs.iter().map(|(d, b)| (d.clone(), b.size)).collect();
    for (d, bytes) in manifests(images) {
        expected.insert(d, bytes.len() as u64);
    }
    let got: BTreeMap<String, u64> = stored
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let extra: Vec<&String> = got.keys().filter(|d| !expected.contains_key(*d)).collect();
    let missing: Vec<&String> = expected.keys().filter(|d| !got.contains_key(*d)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{}: data files differ from the new blobs + manifests\n  extra (should have been left to the base): {extra:?}\n  missing: {missing:?}",
        saved.meta.name
    );
    assert_eq!(got, expected);
    for (d, bytes) in manifests(images) {
        assert!(stored[&d] == bytes, "manifest {d} not stored byte-exact");
    }
}

/// Where each blob the images need must live, per the registry truth:
/// `Some(bundle name)` for a base, `None` for this bundle's own data files.
/// Checks the meta's blob records: exactly the images' configs, layers and
/// manifests, each with its size and kind, located as `expected` says.
fn assert_blob_records(
    saved: &Saved,
    images: &[&PushedImage],
    expected_base: &dyn Fn(&str) -> Option<String>,
) {
    let meta = &saved.meta;
    let file_names: BTreeSet<&str> = meta.files.iter().map(|f| f.name.as_str()).collect();
    let records: BTreeMap<String, &ferry::bundle::meta::BlobRecord> = meta
        .blobs
        .iter()
        .map(|r| (r.digest.to_string(), r))
        .collect();
    assert_eq!(records.len(), meta.blobs.len(), "a blob recorded twice");
    let mut want: BTreeMap<String, (u64, BlobKind)> = BTreeMap::new();
    for (d, b) in needed(images) {
        let kind = if is_config(&b) {
            BlobKind::Config
        } else {
            BlobKind::Layer
        };
        want.insert(d, (b.size, kind));
    }
    for (d, bytes) in manifests(images) {
        want.insert(d, (bytes.len() as u64, BlobKind::Manifest));
    }
    assert_eq!(
        records.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>(),
        "{}: the meta must record every blob its images need, and only those",
        meta.name
    );
    for (d, (size, kind)) in &want {
        let r = records[d];
        assert_eq!(r.size, *size, "size of {d}");
        assert_eq!(r.kind, *kind, "kind of {d}");
        let base = if *kind == BlobKind::Manifest {
            None
        } else {
            expected_base(d)
        };
        match base {
            Some(base) => {
                assert_eq!(
                    r.base.as_deref(),
                    Some(base.as_str()),
                    "{}: {d} ({kind:?}) should be left to base {base}: {r:?}",
                    meta.name
                );
                assert!(
                    r.file.is_none(),
                    "{}: base blob {d} also placed in a data file: {r:?}",
                    meta.name
                );
            }
            None => {
                assert!(
                    r.base.is_none(),
                    "{}: {d} ({kind:?}) is new, but recorded as in base {:?}",
                    meta.name,
                    r.base
                );
                let f = r.file.as_deref().unwrap_or_else(|| {
                    panic!("{}: new blob {d} has no data file: {r:?}", meta.name)
                });
                assert!(file_names.contains(f), "{d} placed in unknown file {f}");
            }
        }
    }
}

/// The bundle is named `<prefix>_<word>_<YYYYMMDDHHMM>` (plus `-N` when a
/// bundle of the same minute exists, if `allow_suffix`), lives in
/// `OUT/YYYYMMDD/`, its meta is `NAME_meta.yaml` and its data files
/// `NAME_1.tar`..`NAME_N.tar`; the timestamp lies within the save's run.
#[allow(clippy::too_many_arguments)]
fn assert_named(
    saved: &Saved,
    out: &Path,
    prefix: &str,
    word: &str,
    files: usize,
    before: chrono::DateTime<chrono::Local>,
    after: chrono::DateTime<chrono::Local>,
    allow_suffix: bool,
) {
    let name = &saved.meta.name;
    let rest = name
        .strip_prefix(&format!("{prefix}_{word}_"))
        .unwrap_or_else(|| panic!("bundle name {name:?} is not {prefix}_{word}_<stamp>"));
    let (stamp, suffix) = rest.split_at(rest.len().min(12));
    assert!(
        stamp.len() == 12 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "bundle name {name:?}: no YYYYMMDDHHMM stamp"
    );
    if allow_suffix && !suffix.is_empty() {
        let n = suffix.strip_prefix('-').unwrap_or("x");
        assert!(
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
            "bundle name {name:?}: bad suffix"
        );
    } else {
        assert!(suffix.is_empty(), "bundle name {name:?} has a suffix");
    }
    let lo = before.format("%Y%m%d%H%M").to_string();
    let hi = after.format("%Y%m%d%H%M").to_string();
    assert!(
        lo.as_str() <= stamp && stamp <= hi.as_str(),
        "stamp {stamp} not within the save ({lo}..{hi})"
    );
    let dir = out.join(&stamp[..8]);
    assert_eq!(saved.meta_path, dir.join(format!("{name}_meta.yaml")));
    let expected: Vec<String> = (1..=files).map(|i| format!("{name}_{i}.tar")).collect();
    let got: Vec<String> = saved.meta.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(got, expected, "data file names");
    for p in saved.data_paths() {
        assert!(p.is_file(), "{p:?} missing");
    }
    for e in std::fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !n.ends_with(".partial") && !n.ends_with(".journal") && !n.ends_with(".tmp"),
            "leftover {n} in {dir:?}"
        );
    }
}

/// The image is in `dst` with its source digest: `skopeo inspect --raw`
/// returns the exact bytes (also for each child, by digest), and
/// `skopeo copy --all` to a `dir:` works and gets the same manifest.
fn assert_image_in(dst: &Registry, img: &PushedImage, namespace: &str) {
    let repo = if namespace.is_empty() {
        img.repo.clone()
    } else {
        format!("{namespace}/{}", img.repo)
    };
    let reference = format!("{}/{repo}:{}", dst.host(), img.tag);
    let raw = try_skopeo_inspect_raw(&reference, None)
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {reference}: {e}"));
    assert!(
        raw == img.manifest,
        "{reference}: served manifest differs from the source\n--- source:\n{}\n--- target:\n{}",
        String::from_utf8_lossy(&img.manifest),
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(manifest_digest(&raw), img.digest);
    for child in &img.children {
        let r = format!("{}/{repo}@{}", dst.host(), child.digest);
        assert!(
            skopeo_inspect_raw(&r) == child.manifest,
            "{r}: bytes differ"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!("docker://{reference}"),
        &format!("dir:{}", dir.path().display()),
        &["--all"],
    )
    .unwrap_or_else(|e| panic!("skopeo copy {reference} to dir: failed: {e}"));
    let copied = std::fs::read(dir.path().join("manifest.json")).unwrap();
    assert_eq!(
        manifest_digest(&copied),
        img.digest,
        "{reference} via skopeo copy"
    );
    for blob in &img.blobs {
        let hex = blob.digest.trim_start_matches("sha256:");
        let data = std::fs::read(dir.path().join(hex))
            .unwrap_or_else(|e| panic!("{reference}: blob {} not copied: {e}", blob.digest));
        assert_eq!(sha256_digest(&data), blob.digest);
    }
}

/// The missing-blob count an upload error gives for bundle `name`: the
/// numbers in the part of the message (split at `,`, `;`, newlines) that
/// names it, with the name and the target's host taken out.
fn counts_for(text: &str, name: &str, host: &str) -> Vec<u64> {
    text.split([',', ';', '\n'])
        .filter(|part| part.contains(name))
        .flat_map(|part| numbers_in(&part.replace(name, " ").replace(host, " ")))
        .collect()
}

/// Numbers appearing in `line` (runs of ASCII digits).
fn numbers_in(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() < 12)
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Files in the registry's blob store (nothing was pushed if empty).
fn stored_registry_blobs(reg: &Registry) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, n);
                } else if e.file_name() == "data" {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(&reg.storage_dir().join("docker/registry/v2/blobs"), &mut n);
    n
}

/// All files below `dir` (empty if it does not exist).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs `f` for every item on its own thread (skopeo pushes and checks are
/// mostly waiting on processes).
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn start_registries<const N: usize>() -> [Registry; N] {
    let regs = in_parallel(&[(); N], |_| Registry::start());
    regs.try_into().unwrap_or_else(|_| unreachable!())
}

const KIB: usize = 1024;

/// Global flags that make a save against a silent source give up quickly.
/// They go after the subcommand: `ferry --retries 0 save IMG --out DIR`
/// is mistaken for an image-transmit command line (src/cli/legacy.rs).
const QUICK_FAIL: [&str; 6] = [
    "--retries",
    "0",
    "--connect-timeout",
    "2",
    "--read-timeout",
    "1",
];

// ---------------------------------------------------------------------------
// The v1 / v2 release scenario

struct Release {
    v1: Vec<PushedImage>,
    v2: Vec<PushedImage>,
}

/// v1: app/web:1, app/api:stable, tools/static:1, multi/arch:1 (OCI index).
fn push_v1(src: &Registry) -> Vec<PushedImage> {
    let base0 = layer("inc-base-0", 24 * KIB);
    let base1 = layer("inc-base-1", 12 * KIB);
    type Job<'a> = Box<dyn Fn() -> PushedImage + Send + Sync + 'a>;
    let jobs: Vec<Job> = vec![
        Box::new(|| {
            push_image(
                src,
                "app/web",
                "1",
                Format::Docker,
                &[base0.clone(), layer("inc-web-1", 8 * KIB)],
                "web-1",
                false,
            )
        }),
        Box::new(|| {
            push_image(
                src,
                "app/api",
                "stable",
                Format::Oci,
                &[base0.clone(), base1.clone(), layer("inc-api-1", 8 * KIB)],
                "api-1",
                true,
            )
        }),
        Box::new(|| {
            push_image(
                src,
                "tools/static",
                "1",
                Format::Docker,
                &[layer("inc-static", 6 * KIB)],
                "static",
                false,
            )
        }),
        Box::new(|| {
            let amd64 = arch_amd64_child(&base0);
            let arm64 = build_image(
                Format::Oci,
                "linux/arm64",
                &[layer("inc-arch-arm64-1", 5 * KIB)],
                "arch-arm64-1",
                false,
            );
            push_built(
                src,
                "multi/arch",
                "1",
                &build_index(Format::Oci, vec![amd64, arm64], false),
            )
        }),
    ];
    in_parallel(&jobs, |j| j())
}

/// The amd64 image of multi/arch, identical in v1 and v2.
fn arch_amd64_child(base0: &[u8]) -> BuiltImage {
    build_image(
        Format::Oci,
        "linux/amd64",
        &[base0.to_vec(), layer("inc-arch-amd64", 5 * KIB)],
        "arch-amd64",
        false,
    )
}

/// v2: app/web:2 (changed), app/api:stable (re-pushed with a new layer),
/// tools/static:1 (unchanged), new/svc:1 (new, shares base-1 with app/api,
/// another repository), new/solo:1 (new, shares nothing), multi/arch:2 (index
/// whose amd64 child is unchanged, arm64 child changed).
fn push_v2(src: &Registry, v1: &[PushedImage]) -> Vec<PushedImage> {
    let base0 = layer("inc-base-0", 24 * KIB);
    let base1 = layer("inc-base-1", 12 * KIB);
    type Job<'a> = Box<dyn Fn() -> PushedImage + Send + Sync + 'a>;
    let jobs: Vec<Job> = vec![
        Box::new(|| {
            push_image(
                src,
                "app/web",
                "2",
                Format::Docker,
                &[base0.clone(), layer("inc-web-2", 9 * KIB)],
                "web-2",
                false,
            )
        }),
        Box::new(|| {
            push_image(
                src,
                "app/api",
                "stable",
                Format::Oci,
                &[base0.clone(), base1.clone(), layer("inc-api-2", 7 * KIB)],
                "api-2",
                true,
            )
        }),
        Box::new(|| {
            push_image(
                src,
                "new/svc",
                "1",
                Format::Docker,
                &[base1.clone(), layer("inc-svc-1", 6 * KIB)],
                "svc-1",
                false,
            )
        }),
        Box::new(|| {
            push_image(
                src,
                "new/solo",
                "1",
                Format::Oci,
                &[layer("inc-solo-1", 3 * KIB)],
                "solo-1",
                false,
            )
        }),
        Box::new(|| {
            let amd64 = arch_amd64_child(&base0);
            let arm64 = build_image(
                Format::Oci,
                "linux/arm64",
                &[layer("inc-arch-arm64-2", 5 * KIB)],
                "arch-arm64-2",
                false,
            );
            push_built(
                src,
                "multi/arch",
                "2",
                &build_index(Format::Oci, vec![amd64, arm64], false),
            )
        }),
    ];
    let mut v2 = in_parallel(&jobs, |j| j());
    let unchanged = v1
        .iter()
        .find(|i| i.repo == "tools/static")
        .unwrap()
        .clone();
    v2.insert(2, unchanged);
    v2
}

/// Pushes v1, saves it (full), pushes v2, saves it with `--inc v1`.
fn release(
    src: &Registry,
    out_v1: &Path,
    out_v2: &Path,
    files: u16,
) -> (Release, Saved, Saved, [chrono::DateTime<chrono::Local>; 2]) {
    let v1 = push_v1(src);
    let before = chrono::Local::now();
    let s1 = save(&refs(&v1.iter().collect::<Vec<_>>()), out_v1, files, &[]);
    let v2 = push_v2(src, &v1);
    let s2 = save(&refs(&v2.iter().collect::<Vec<_>>()), out_v2, files, &[&s1]);
    let after = chrono::Local::now();
    (Release { v1, v2 }, s1, s2, [before, after])
}

impl Release {
    fn v1(&self) -> Vec<&PushedImage> {
        self.v1.iter().collect()
    }
    fn v2(&self) -> Vec<&PushedImage> {
        self.v2.iter().collect()
    }
    /// Configs and layers v2 needs that no v1 image had.
    fn new_in_v2(&self) -> BTreeMap<String, Blob> {
        let old = needed(&self.v1());
        needed(&self.v2())
            .into_iter()
            .filter(|(d, _)| !old.contains_key(d))
            .collect()
    }
    /// Configs and layers v2 needs that v1 already carried.
    fn left_to_v1(&self) -> BTreeSet<String> {
        let old = needed(&self.v1());
        needed(&self.v2())
            .into_keys()
            .filter(|d| old.contains_key(d))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Tests

/// save v1, then v2 with --inc v1: the data files hold exactly the new
/// layers/configs plus all manifests; the meta records kind, base and every
/// blob with its location; v1 then v2 upload to a fresh registry gives every
/// v2 image with its source digest.
#[test]
fn increment_carries_only_new_blobs_and_uploads_after_its_base() {
    let [src, dst] = start_registries::<2>();
    let work = tempfile::tempdir().unwrap();
    let out1 = work.path().join("out-v1");
    let out2 = work.path().join("out-v2");
    let (rel, s1, s2, [before, after]) = release(&src, &out1, &out2, 2);

    // Sanity of the scenario itself: it has changed, unchanged, new and
    // shared-across-repositories blobs.
    let new = rel.new_in_v2();
    let left = rel.left_to_v1();
    assert_eq!(new.len(), 10, "5 changed/new images: 5 configs + 5 layers");
    assert_eq!(
        left.len(),
        6,
        "base0, base1, static + config, amd64 layer + config"
    );

    // The full bundle.
    assert_eq!(s1.meta.kind, Kind::Full);
    assert!(s1.meta.bases.is_empty());
    assert_named(&s1, &out1, "img", "full", 2, before, after, false);
    assert_carries_exactly(&s1, &rel.v1(), &needed(&rel.v1()));
    assert_blob_records(&s1, &rel.v1(), &|_| None);

    // The increment.
    assert_eq!(s2.meta.kind, Kind::Incremental);
    assert_named(&s2, &out2, "img", "incre", 2, before, after, false);
    assert_eq!(s2.meta.bases.len(), 1, "bases: {:?}", s2.meta.bases);
    assert_eq!(s2.meta.bases[0].name, s1.meta.name);
    assert_eq!(s2.meta.bases[0].meta_sha256, s1.meta_sha256);
    assert_carries_exactly(&s2, &rel.v2(), &new);
    let v1_name = s1.meta.name.clone();
    assert_blob_records(&s2, &rel.v2(), &|d| {
        left.contains(d).then(|| v1_name.clone())
    });
    let images: BTreeMap<String, String> = s2
        .meta
        .images
        .iter()
        .map(|i| (i.reference.clone(), i.digest.to_string()))
        .collect();
    let expected: BTreeMap<String, String> = rel
        .v2
        .iter()
        .map(|i| (i.reference.clone(), i.digest.clone()))
        .collect();
    assert_eq!(images, expected, "v2 meta images");
    assert!(s2.meta.failed.is_empty(), "{:?}", s2.meta.failed);

    // v1 then v2 into a fresh registry.
    upload_ok(&s1, &dst.host());
    upload_ok(&s2, &dst.host());
    in_parallel(&rel.v2, |img| assert_image_in(&dst, img, ""));
    // v1 images that v2 did not retag are still there, byte-exact.
    for img in rel.v1.iter().filter(|i| i.repo != "app/api") {
        assert!(
            skopeo_inspect_raw(&img.reference.replace(&src.host(), &dst.host())) == img.manifest
        );
    }
    let mut catalog = dst.catalog();
    catalog.sort();
    assert_eq!(
        catalog,
        vec![
            "app/api",
            "app/web",
            "multi/arch",
            "new/solo",
            "new/svc",
            "tools/static"
        ]
    );
    assert_eq!(dst.tags("app/web"), vec!["1", "2"]);
    assert_eq!(dst.tags("multi/arch"), vec!["1", "2"]);

    // Uploading the increment again changes nothing and succeeds.
    upload_ok(&s2, &dst.host());
}

/// The data files of an increment add up to its new blobs (new configs and
/// layers plus every manifest) plus tar framing: a 512-byte header per entry,
/// data padded to 512 bytes, and 1024 bytes of end-of-archive per file.
#[test]
fn increment_size_is_new_blobs_plus_tar_framing() {
    let [src] = start_registries::<1>();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("data");
    let (rel, _s1, s2, _) = release(&src, &out, &out, 3);

    let pad = |n: u64| n.div_ceil(512) * 512;
    let mut blob_sizes: Vec<u64> = rel.new_in_v2().values().map(|b| b.size).collect();
    blob_sizes.extend(manifests(&rel.v2()).values().map(|m| m.len() as u64));
    let expected: u64 = blob_sizes.iter().map(|s| 512 + pad(*s)).sum::<u64>() + 3 * 1024;
    let actual: u64 = s2
        .data_paths()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(s2.meta.files.len(), 3);
    assert_eq!(
        actual, expected,
        "increment data files: {actual} bytes, new blobs + tar framing = {expected}"
    );
    // The meta records the same sizes and entry counts as the files on disk.
    for (f, p) in s2.meta.files.iter().zip(s2.data_paths()) {
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(f.size, bytes.len() as u64, "{}", f.name);
        assert_data_file_checksum(&f.name, &f.sha256, f.headers_sha256.as_deref(), &bytes);
        assert_eq!(f.blobs as usize, tar_entries(&p).len(), "{}", f.name);
    }
    // Far smaller than the full bundle of the same images would be.
    let all: u64 = needed(&rel.v2()).values().map(|b| b.size).sum();
    let new: u64 = rel.new_in_v2().values().map(|b| b.size).sum();
    assert!(new < all, "scenario: v2 should reuse v1 blobs");
}

/// Uploading v2 alone to an empty registry stops before pushing anything and
/// names v1's bundle and how many blobs are missing.
#[test]
fn increment_alone_is_refused_naming_its_base() {
    let [src, dst] = start_registries::<2>();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("data");
    let (rel, s1, s2, _) = release(&src, &out, &out, 2);

    let (ok, text) = upload(&s2, &dst.host());
    assert!(
        !ok,
        "upload of an increment without its base succeeded:\n{text}"
    );
    let missing = rel.left_to_v1().len() as u64;
    assert!(
        text.contains(&s1.meta.name),
        "the error does not name base {}:\n{text}",
        s1.meta.name
    );
    assert!(
        counts_for(&text, &s1.meta.name, &dst.host()).contains(&missing),
        "the error does not say that {missing} blobs of {} are missing:\n{text}",
        s1.meta.name
    );
    assert!(dst.catalog().is_empty(), "pushed: {:?}", dst.catalog());
    assert_eq!(stored_registry_blobs(&dst), 0, "blobs were pushed");

    // The base uploaded, but one of its blobs lost from the target's
    // storage: refused again, naming v1 with exactly one missing blob, and
    // none of v2's tags set.
    upload_ok(&s1, &dst.host());
    let base1 = sha256_digest(&layer("inc-base-1", 12 * KIB));
    assert!(rel.left_to_v1().contains(&base1));
    let lost = dst.blob_data_path(&base1);
    let kept = std::fs::read(&lost).unwrap();
    std::fs::remove_file(&lost).unwrap();
    let catalog_before = dst.catalog();
    let (ok, text) = upload(&s2, &dst.host());
    assert!(!ok, "upload with a base blob missing succeeded:\n{text}");
    assert!(
        counts_for(&text, &s1.meta.name, &dst.host()).contains(&1),
        "the error does not say that 1 blob of {} is missing:\n{text}",
        s1.meta.name
    );
    assert_eq!(dst.catalog(), catalog_before, "pushed a repository");
    assert_eq!(dst.tags("app/web"), vec!["1"], "pushed app/web:2");
    std::fs::write(&lost, kept).unwrap();

    // With the base complete, the same increment goes through.
    upload_ok(&s2, &dst.host());
    let svc = rel.v2.iter().find(|i| i.repo == "new/svc").unwrap();
    assert_image_in(&dst, svc, "");
}

/// `ferry verify` works on an increment, and needs nothing but the
/// increment's own files: it passes with the base bundle gone and the
/// increment moved elsewhere, and it still catches a corrupt data file.
#[test]
fn verify_checks_an_increment_on_its_own() {
    let [src] = start_registries::<1>();
    let work = tempfile::tempdir().unwrap();
    let out1 = work.path().join("v1");
    let out2 = work.path().join("v2");
    let (_rel, s1, s2, _) = release(&src, &out1, &out2, 2);

    ferry().arg("verify").arg(&s2.meta_path).assert().success();

    // Move the increment to a fresh folder and delete the base bundle.
    let moved = work.path().join("usb-stick");
    std::fs::create_dir_all(&moved).unwrap();
    let meta_name = s2.meta_path.file_name().unwrap().to_owned();
    std::fs::copy(&s2.meta_path, moved.join(&meta_name)).unwrap();
    for f in &s2.meta.files {
        std::fs::copy(s2.dir().join(&f.name), moved.join(&f.name)).unwrap();
    }
    std::fs::remove_dir_all(s1.dir()).unwrap();
    std::fs::remove_dir_all(&out2).unwrap();
    let moved_meta = moved.join(&meta_name);
    let (meta, _) = Meta::load(&moved_meta).unwrap();
    assert_eq!(meta, s2.meta);
    ferry().arg("verify").arg(&moved_meta).assert().success();
    ferry()
        .arg("verify")
        .arg("--size-only")
        .arg(&moved_meta)
        .assert()
        .success();

    // Flip one byte inside a blob of the first data file.
    let first = moved.join(&s2.meta.files[0].name);
    let mut bytes = std::fs::read(&first).unwrap();
    assert!(bytes.len() > 600, "first data file is empty");
    bytes[600] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    ferry().arg("verify").arg(&moved_meta).assert().failure();
}

/// full -> inc1 -> inc2, each increment against the previous one: inc2's meta
/// records the blobs that live in the full bundle as base blobs of the full
/// bundle (and inc1's as inc1's), uploading all three in order works, and
/// inc2 into a registry that has only the full bundle names inc1.
#[test]
fn chain_full_inc1_inc2_uploads_in_order() {
    let [src, dst, partial] = start_registries::<3>();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("data");
    let before = chrono::Local::now();

    let base = layer("chain-base", 16 * KIB);
    let one_1 = layer("chain-one-1", 4 * KIB);
    let one_2 = layer("chain-one-2", 5 * KIB);
    let one_3 = layer("chain-one-3", 3 * KIB);
    let two_1 = layer("chain-two-1", 6 * KIB);
    let two_2 = layer("chain-two-2", 2 * KIB);

    // Month start: the full bundle.
    let full_imgs = in_parallel(&[0, 1], |i| match i {
        0 => push_image(
            &src,
            "a/one",
            "1",
            Format::Docker,
            &[base.clone(), one_1.clone()],
            "one-1",
            false,
        ),
        _ => push_image(
            &src,
            "b/two",
            "1",
            Format::Oci,
            &[base.clone(), two_1.clone()],
            "two-1",
            false,
        ),
    });
    let full = save(&refs(&full_imgs.iter().collect::<Vec<_>>()), &out, 2, &[]);

    // inc1: a/one changes, b/two unchanged.
    let one_v2 = push_image(
        &src,
        "a/one",
        "2",
        Format::Docker,
        &[base.clone(), one_2.clone()],
        "one-2",
        false,
    );
    let inc1_imgs = [one_v2, full_imgs[1].clone()];
    let inc1 = save(
        &refs(&inc1_imgs.iter().collect::<Vec<_>>()),
        &out,
        2,
        &[&full],
    );

    // inc2 against inc1 only: a/one:3 reuses one-2 (carried by inc1) and the
    // base (carried by full); b/two:2 reuses two-1 (full); c/three is new;
    // b/two:1 is still listed.
    let inc2_new = in_parallel(&[0, 1, 2], |i| match i {
        0 => push_image(
            &src,
            "a/one",
            "3",
            Format::Docker,
            &[base.clone(), one_2.clone(), one_3.clone()],
            "one-3",
            false,
        ),
        1 => push_image(
            &src,
            "b/two",
            "2",
            Format::Oci,
            &[base.clone(), two_1.clone(), two_2.clone()],
            "two-2",
            false,
        ),
        _ => push_image(
            &src,
            "c/three",
            "1",
            Format::Oci,
            &[layer("chain-three-1", 3 * KIB)],
            "three-1",
            true,
        ),
    });
    let mut inc2_imgs = inc2_new.clone();
    inc2_imgs.push(full_imgs[1].clone());
    let inc2_refs: Vec<&PushedImage> = inc2_imgs.iter().collect();
    let inc2 = save(&refs(&inc2_refs), &out, 2, &[&inc1]);
    let after = chrono::Local::now();

    for (s, word) in [(&full, "full"), (&inc1, "incre"), (&inc2, "incre")] {
        assert_named(s, &out, "img", word, 2, before, after, true);
    }
    assert_eq!(inc1.meta.kind, Kind::Incremental);
    assert_eq!(inc2.meta.kind, Kind::Incremental);
    assert_eq!(inc1.meta.bases.len(), 1);
    assert_eq!(inc1.meta.bases[0].name, full.meta.name);
    assert_eq!(inc1.meta.bases[0].meta_sha256, full.meta_sha256);
    assert_eq!(inc2.meta.bases.len(), 1, "{:?}", inc2.meta.bases);
    assert_eq!(inc2.meta.bases[0].name, inc1.meta.name);
    assert_eq!(inc2.meta.bases[0].meta_sha256, inc1.meta_sha256);

    // Who first carried each blob, per the registry truth.
    let in_full = needed(&full_imgs.iter().collect::<Vec<_>>());
    let in_inc1 = needed(&inc1_imgs.iter().collect::<Vec<_>>());
    let (full_name, inc1_name) = (full.meta.name.clone(), inc1.meta.name.clone());
    let carrier = |d: &str| -> Option<String> {
        if in_full.contains_key(d) {
            Some(full_name.clone())
        } else if in_inc1.contains_key(d) {
            Some(inc1_name.clone())
        } else {
            None
        }
    };
    assert_blob_records(&inc1, &inc1_imgs.iter().collect::<Vec<_>>(), &|d| {
        in_full.contains_key(d).then(|| full_name.clone())
    });
    assert_blob_records(&inc2, &inc2_refs, &carrier);
    let from_full = inc2
        .meta
        .blobs
        .iter()
        .filter(|b| b.base.as_deref() == Some(full.meta.name.as_str()))
        .count();
    assert_eq!(
        from_full, 3,
        "the base layer, two-1 and b/two:1's config live in full"
    );
    let new_in_inc2: BTreeMap<String, Blob> = needed(&inc2_refs)
        .into_iter()
        .filter(|(d, _)| carrier(d).is_none())
        .collect();
    assert_carries_exactly(&inc2, &inc2_refs, &new_in_inc2);

    // inc2 into a registry that has only the full bundle: names inc1 (the
    // blobs it carried are missing), not the full bundle; nothing pushed.
    // inc2 into an empty registry: names both bundles it depends on, each
    // with the number of its blobs that are missing.
    let (ok, text) = upload(&inc2, &partial.host());
    assert!(!ok, "inc2 uploaded into an empty registry:\n{text}");
    for (bundle, n) in [(&full, 3u64), (&inc1, 1)] {
        assert!(
            counts_for(&text, &bundle.meta.name, &partial.host()).contains(&n),
            "the error does not name {} with {n} missing blobs:\n{text}",
            bundle.meta.name
        );
    }
    let (at_full, at_inc1) = (
        text.find(&full.meta.name).unwrap(),
        text.find(&inc1.meta.name).unwrap(),
    );
    assert!(
        at_full < at_inc1,
        "the bases are not listed in upload order (full first):\n{text}"
    );
    assert!(
        partial.catalog().is_empty(),
        "pushed: {:?}",
        partial.catalog()
    );
    assert_eq!(stored_registry_blobs(&partial), 0, "blobs were pushed");

    upload_ok(&full, &partial.host());
    let catalog_before = partial.catalog();
    let blobs_before = stored_registry_blobs(&partial);
    let (ok, text) = upload(&inc2, &partial.host());
    assert!(!ok, "inc2 uploaded without inc1 in the target:\n{text}");
    let missing_from_inc1 = needed(&inc2_refs)
        .keys()
        .filter(|d| carrier(d).as_deref() == Some(inc1.meta.name.as_str()))
        .count() as u64;
    assert!(
        counts_for(&text, &inc1.meta.name, &partial.host()).contains(&missing_from_inc1),
        "the error does not name inc1 {} with {missing_from_inc1} missing blobs:\n{text}",
        inc1.meta.name
    );
    assert!(
        !text.contains(&full.meta.name),
        "names the full bundle, which is in the target:\n{text}"
    );
    assert_eq!(partial.catalog(), catalog_before, "something was pushed");
    assert_eq!(
        stored_registry_blobs(&partial),
        blobs_before,
        "blobs pushed"
    );

    // All three in order into a fresh registry.
    upload_ok(&full, &dst.host());
    upload_ok(&inc1, &dst.host());
    upload_ok(&inc2, &dst.host());
    in_parallel(&inc2_imgs, |img| assert_image_in(&dst, img, ""));
    assert_image_in(&dst, &inc1_imgs[0], "");
    assert_eq!(dst.tags("a/one"), vec!["1", "2", "3"]);

    // Both bases given at once: the same blobs are carried and left out.
    let out_multi = work.path().join("multi");
    let inc2b = save(&refs(&inc2_refs), &out_multi, 2, &[&full, &inc1]);
    let bases: BTreeSet<(String, String)> = inc2b
        .meta
        .bases
        .iter()
        .map(|b| (b.name.clone(), b.meta_sha256.clone()))
        .collect();
    assert_eq!(
        bases,
        BTreeSet::from([
            (full.meta.name.clone(), full.meta_sha256.clone()),
            (inc1.meta.name.clone(), inc1.meta_sha256.clone()),
        ])
    );
    assert_carries_exactly(&inc2b, &inc2_refs, &new_in_inc2);
    assert_blob_records(&inc2b, &inc2_refs, &carrier);

    // Nothing changed since inc2: inc3 carries the manifests only, and
    // uploads on top of the chain.
    let inc3 = save(&refs(&inc2_refs), &out, 2, &[&inc2]);
    assert_eq!(inc3.meta.bases[0].name, inc2.meta.name);
    assert_carries_exactly(&inc3, &inc2_refs, &BTreeMap::new());
    let inc2_name = inc2.meta.name.clone();
    assert_blob_records(&inc3, &inc2_refs, &|d| {
        Some(carrier(d).unwrap_or_else(|| inc2_name.clone()))
    });
    ferry()
        .arg("verify")
        .arg(&inc3.meta_path)
        .assert()
        .success();
    upload_ok(&inc3, &dst.host());
    in_parallel(&inc2_imgs, |img| assert_image_in(&dst, img, ""));
}

/// Every increment taken against the monthly full bundle: each one carries
/// everything new since the full bundle (also what an earlier increment
/// carried), so the full bundle plus the latest increment is enough.
#[test]
fn increments_against_the_monthly_full_need_only_the_full() {
    let [src, dst] = start_registries::<2>();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("data");
    let base = layer("monthly-base", 16 * KIB);
    let app_2 = layer("monthly-app-2", 4 * KIB);

    let full_imgs = in_parallel(&[0, 1], |i| match i {
        0 => push_image(
            &src,
            "x/app",
            "1",
            Format::Oci,
            &[base.clone(), layer("monthly-app-1", 4 * KIB)],
            "app-1",
            false,
        ),
        _ => push_image(
            &src,
            "y/lib",
            "1",
            Format::Docker,
            &[base.clone(), layer("monthly-lib-1", 4 * KIB)],
            "lib-1",
            true,
        ),
    });
    let before = chrono::Local::now();
    let full = save_prefixed(
        &refs(&full_imgs.iter().collect::<Vec<_>>()),
        &out,
        1,
        &[],
        Some("rel"),
    );

    let app_v2 = push_image(
        &src,
        "x/app",
        "2",
        Format::Oci,
        &[base.clone(), app_2.clone()],
        "app-2",
        false,
    );
    let week1 = [app_v2, full_imgs[1].clone()];
    let inc_a = save_prefixed(
        &refs(&week1.iter().collect::<Vec<_>>()),
        &out,
        1,
        &[&full],
        Some("rel"),
    );

    let app_v3 = push_image(
        &src,
        "x/app",
        "3",
        Format::Oci,
        &[base.clone(), app_2.clone(), layer("monthly-app-3", 4 * KIB)],
        "app-3",
        false,
    );
    let week2 = [week1[0].clone(), app_v3, full_imgs[1].clone()];
    let week2_refs: Vec<&PushedImage> = week2.iter().collect();
    let inc_b = save_prefixed(&refs(&week2_refs), &out, 1, &[&full], Some("rel"));
    let after = chrono::Local::now();
    assert_named(&full, &out, "rel", "full", 1, before, after, false);
    assert_named(&inc_a, &out, "rel", "incre", 1, before, after, false);
    // The second increment of the same minute gets a `-N` disambiguator.
    assert_named(&inc_b, &out, "rel", "incre", 1, before, after, true);
    assert_ne!(inc_a.meta.name, inc_b.meta.name);
    assert_eq!(inc_b.meta.bases.len(), 1);
    assert_eq!(inc_b.meta.bases[0].name, full.meta.name);

    // inc_b carries app-2 itself: its only base is the full bundle.
    let in_full = needed(&full_imgs.iter().collect::<Vec<_>>());
    let new: BTreeMap<String, Blob> = needed(&week2_refs)
        .into_iter()
        .filter(|(d, _)| !in_full.contains_key(d))
        .collect();
    assert!(new.contains_key(&sha256_digest(&app_2)));
    assert_carries_exactly(&inc_b, &week2_refs, &new);
    let full_name = full.meta.name.clone();
    assert_blob_records(&inc_b, &week2_refs, &|d| {
        in_full.contains_key(d).then(|| full_name.clone())
    });

    // The full bundle, then the latest increment only.
    upload_ok(&full, &dst.host());
    upload_ok(&inc_b, &dst.host());
    in_parallel(&week2, |img| assert_image_in(&dst, img, ""));
}

/// An image whose new version shares a base layer with an image of another
/// repository in v1 uploads: the layer is in the target, just not in the
/// image's repository (cross-repository mount, or found in the other
/// repository). Also under a target namespace.
#[test]
fn shared_layer_from_another_repository_uploads() {
    let [src, dst, dst_ns] = start_registries::<3>();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("data");
    let shared = layer("xrepo-shared-base", 16 * KIB);

    let v1 = in_parallel(&[0, 1], |i| match i {
        0 => push_image(
            &src,
            "team/base-img",
            "1",
            Format::Docker,
            &[shared.clone(), layer("xrepo-base-top", 4 * KIB)],
            "base-img",
            false,
        ),
        _ => push_image(
            &src,
            "other/app",
            "1",
            Format::Docker,
            &[layer("xrepo-app-1", 4 * KIB)],
            "app-1",
            false,
        ),
    });
    let s1 = save(&refs(&v1.iter().collect::<Vec<_>>()), &out, 1, &[]);
    // v2 lists only other/app:2, which now builds on team/base-img's layer.
    let app_v2 = push_image(
        &src,
        "other/app",
        "2",
        Format::Docker,
        &[shared.clone(), layer("xrepo-app-2", 4 * KIB)],
        "app-2",
        false,
    );
    let s2 = save(std::slice::from_ref(&app_v2.reference), &out, 1, &[&s1]);

    let shared_digest = sha256_digest(&shared);
    let rec = s2
        .meta
        .blobs
        .iter()
        .find(|b| b.digest.to_string() == shared_digest)
        .expect("shared layer recorded");
    assert_eq!(rec.base.as_deref(), Some(s1.meta.name.as_str()));
    assert!(rec.file.is_none());
    assert!(!stored_blobs(&s2).contains_key(&shared_digest));

    for (reg, ns) in [(&dst, ""), (&dst_ns, "mirror/prod")] {
        let target = if ns.is_empty() {
            reg.host()
        } else {
            format!("{}/{ns}", reg.host())
        };
        upload_ok(&s1, &target);
        let other_repo = if ns.is_empty() {
            "other/app".to_string()
        } else {
            format!("{ns}/other/app")
        };
        assert_eq!(
            reg.request(
                "HEAD",
                &format!("/v2/{other_repo}/blobs/{shared_digest}"),
                &[],
                None
            )
            .status,
            404,
            "scenario: the shared layer should not be in {other_repo} after v1"
        );
        upload_ok(&s2, &target);
        assert_image_in(reg, &app_v2, ns);
        let resp = reg.get(&format!("/v2/{other_repo}/blobs/{shared_digest}"));
        assert_eq!(resp.status, 200, "shared layer not in {other_repo}");
        assert!(resp.body == shared);
    }
}

/// A meta given to --inc that is missing, unreadable, not a ferry meta, of an
/// unknown format version, or broken, is a clear error before anything is
/// downloaded: exit 1, the path named, no bundle written, no meta path
/// printed, and no connection to the source registry.
#[test]
fn bad_base_metas_fail_before_any_download() {
    let [src] = start_registries::<1>();
    let work = tempfile::tempdir().unwrap();
    let img = push_image(
        &src,
        "bad/inc",
        "1",
        Format::Docker,
        &[layer("bad-inc", 2 * KIB)],
        "bad-inc",
        false,
    );
    let good = save(
        std::slice::from_ref(&img.reference),
        &work.path().join("good"),
        1,
        &[],
    );
    let good_text = std::fs::read_to_string(&good.meta_path).unwrap();

    let metas = work.path().join("metas");
    std::fs::create_dir_all(&metas).unwrap();
    let put = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = metas.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let version_line = good_text
        .lines()
        .find(|l| l.starts_with("version:"))
        .expect("meta has a top-level version line");
    let future = good_text.replacen(version_line, "version: 3", 1);
    assert_ne!(future, good_text);
    let no_version = good_text.replacen(&format!("{version_line}\n"), "", 1);
    assert_ne!(no_version, good_text);
    let other_format = good_text.replacen("format: ferry-bundle", "format: image-transmit", 1);
    assert_ne!(other_format, good_text);
    let half = &good_text[..good_text.find("images:").expect("meta has images")];
    let dir_path = metas.join("dir_meta.yaml");
    std::fs::create_dir_all(&dir_path).unwrap();

    // (description, path, words of which one must appear in the error)
    let cases: Vec<(&str, PathBuf, &[&str])> = vec![
        (
            "missing file",
            metas.join("nope_meta.yaml"),
            &[
                "no such file",
                "not found",
                "cannot read",
                "missing",
                "does not exist",
            ],
        ),
        (
            "a directory",
            dir_path.clone(),
            &["directory", "cannot read", "unreadable"],
        ),
        (
            "binary garbage",
            put(
                "garbage_meta.yaml",
                &[0xff, 0xfe, 0x00, 0x9c, 0x80, 0x01, 0xc3],
            ),
            &["utf-8", "not a", "unreadable", "invalid"],
        ),
        (
            "broken yaml",
            put(
                "broken_meta.yaml",
                b"format: ferry-bundle\nversion: [1,\n  : : {\n",
            ),
            &["not a", "yaml", "malformed", "invalid", "unreadable"],
        ),
        (
            "empty file",
            put("empty_meta.yaml", b""),
            &["not a", "empty"],
        ),
        (
            // (image-transmit metas, with `datafiles:`/`manifests:`, are
            // accepted as bases on purpose; this is some other YAML.)
            "some other yaml",
            put(
                "compose_meta.yaml",
                b"services:\n  web:\n    image: nginx:1.27\n    ports: [\"80:80\"]\n",
            ),
            &["not a ferry"],
        ),
        (
            "other format name",
            put("other_meta.yaml", other_format.as_bytes()),
            &["not a ferry", "image-transmit"],
        ),
        (
            "a docker manifest",
            put("manifest.json", &img.manifest),
            &["not a ferry"],
        ),
        (
            "future version",
            put("future_meta.yaml", future.as_bytes()),
            &["version"],
        ),
        (
            "no version",
            put("noversion_meta.yaml", no_version.as_bytes()),
            &["version"],
        ),
        (
            "a data file instead of the meta",
            good.data_paths()[0].clone(),
            &["not a", "utf-8", "malformed", "invalid", "unreadable"],
        ),
        (
            "truncated ferry meta",
            put("half_meta.yaml", half.as_bytes()),
            &["images", "missing", "malformed", "not a", "invalid"],
        ),
    ];

    // A source that never answers: any connection ferry makes stays queued
    // in the backlog, where a non-blocking accept finds it afterwards.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let silent_ref = format!(
        "127.0.0.1:{}/bad/inc:1",
        silent.local_addr().unwrap().port()
    );

    for (what, path, words) in &cases {
        for with_good in [false, true] {
            let out = work
                .path()
                .join(format!("out-{}-{with_good}", what.replace(' ', "-")));
            let mut cmd = ferry();
            // Global flags after the subcommand: see QUICK_FAIL.
            cmd.arg("save")
                .args(QUICK_FAIL)
                .arg(&silent_ref)
                .arg(&img.reference)
                .arg("--out")
                .arg(&out);
            if with_good {
                cmd.arg("--inc").arg(&good.meta_path);
            }
            cmd.arg("--inc").arg(path);
            let output = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert_eq!(
                output.status.code(),
                Some(1),
                "{what}: expected exit 1\nstdout: {stdout}\nstderr: {stderr}"
            );
            assert!(stdout.trim().is_empty(), "{what}: printed {stdout:?}");
            let file_name = path.file_name().unwrap().to_string_lossy();
            assert!(
                stderr.contains(file_name.as_ref()),
                "{what}: the error does not name {file_name}:\n{stderr}"
            );
            let lower = stderr.to_lowercase();
            assert!(
                words.iter().any(|w| lower.contains(w)),
                "{what}: unclear error (expected one of {words:?}):\n{stderr}"
            );
            assert!(
                files_below(&out).is_empty(),
                "{what}: files written: {:?}",
                files_below(&out)
            );
            match silent.accept() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(_) => panic!("{what}: ferry contacted the source registry before failing"),
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    // Control: with a good base, ferry does contact the source (so the probe
    // above would have seen a download attempt).
    let out = work.path().join("out-control");
    let output = ferry()
        .arg("save")
        .args(QUICK_FAIL)
        .arg(&silent_ref)
        .arg("--out")
        .arg(&out)
        .arg("--inc")
        .arg(&good.meta_path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(silent.accept().is_ok(), "control: ferry never connected");
}
