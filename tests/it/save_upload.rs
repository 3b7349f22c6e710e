//! Integration tests of `ferry save`, `ferry verify` and `ferry upload` against
//! real `docker-registry` processes, seeded and checked with skopeo.
//!
//! Every test starts its own registries (so tests run in parallel) and reads
//! the bundles it makes with the `tar` crate and `ferry::bundle::meta::Meta`,
//! never with ferry's own bundle reader.

use crate::common::*;

use ferry::bundle::meta::{BlobKind, Kind, Meta};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Running ferry

/// A finished ferry process.
type Run = Output;

fn ferry_run(args: &[&str], stdin: Option<&str>, cwd: Option<&Path>) -> Run {
    let mut cmd = FerryCmd::new();
    cmd.args(args);
    if let Some(input) = stdin {
        cmd.stdin(input);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output()
}

fn run(args: &[&str]) -> Run {
    ferry_run(args, None, None)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `ferry save REFS... --out OUT EXTRA...`, expecting success; returns the meta path.
fn save_ok(refs: &[&str], out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["save"];
    args.extend_from_slice(refs);
    args.extend_from_slice(&["--out", path_str(out)]);
    args.extend_from_slice(extra);
    run(&args).assert_code(0).meta_only()
}

fn verify(meta: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify", path_str(meta)];
    args.extend_from_slice(extra);
    run(&args)
}

fn upload(meta: &Path, dst: &str, extra: &[&str]) -> Run {
    let mut args = vec!["upload", path_str(meta), "--dst", dst];
    args.extend_from_slice(extra);
    run(&args)
}

// ---------------------------------------------------------------------------
// Reading bundles independently of ferry's reader

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A bundle read back with the `tar` crate; every structural property that does
/// not depend on which images were saved is asserted while reading.
struct BundleContents {
    meta_path: PathBuf,
    meta: Meta,
    /// `"sha256:HEX"` → (data file holding it, bytes).
    blobs: BTreeMap<String, (String, Vec<u8>)>,
    /// Data file name → its size on disk.
    file_sizes: BTreeMap<String, u64>,
}

fn read_bundle(meta_path: &Path) -> BundleContents {
    let (meta, _) =
        Meta::load(meta_path).unwrap_or_else(|e| panic!("cannot load {meta_path:?}: {e}"));
    let dir = meta_path.parent().expect("meta has a parent folder");
    assert_eq!(meta.format, "ferry-bundle");
    // Plain data files are recorded by their headers' digest (version 2).
    assert_eq!(meta.version, 2);
    assert_eq!(
        meta_path.file_name().unwrap().to_str().unwrap(),
        format!("{}_meta.yaml", meta.name),
        "meta file name does not follow the bundle name"
    );
    assert!(!meta.files.is_empty(), "bundle without data files");

    let mut blobs: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut file_sizes = BTreeMap::new();
    for (i, f) in meta.files.iter().enumerate() {
        assert_eq!(
            f.name,
            format!("{}_{}.tar", meta.name, i + 1),
            "data file {i} is misnamed"
        );
        let path = dir.join(&f.name);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
        assert_eq!(
            bytes.len() as u64,
            f.size,
            "{}: size differs from meta",
            f.name
        );
        assert_data_file_checksum(&f.name, &f.sha256, f.headers_sha256.as_deref(), &bytes);
        file_sizes.insert(f.name.clone(), f.size);

        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut count = 0u64;
        for entry in archive
            .entries()
            .unwrap_or_else(|e| panic!("{}: not a tar: {e}", f.name))
        {
            let mut entry = entry.unwrap_or_else(|e| panic!("{}: bad tar entry: {e}", f.name));
            let name = entry
                .path()
                .unwrap_or_else(|e| panic!("{}: bad entry path: {e}", f.name))
                .to_str()
                .expect("utf-8 entry name")
                .to_string();
            assert_eq!(
                entry.header().entry_type(),
                tar::EntryType::Regular,
                "{}: entry {name} is not a regular file",
                f.name
            );
            let hex = name
                .strip_prefix("blobs/sha256/")
                .filter(|h| is_sha256_hex(h))
                .unwrap_or_else(|| panic!("{}: entry {name:?} is not blobs/sha256/<hex>", f.name));
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .unwrap_or_else(|e| panic!("{}: reading {name}: {e}", f.name));
            assert_eq!(
                sha256_hex(&data),
                hex,
                "{}: content of {name} does not match its name",
                f.name
            );
            let digest = format!("sha256:{hex}");
            if let Some((other, _)) = blobs.insert(digest.clone(), (f.name.clone(), data)) {
                panic!("{digest} is stored twice: in {other} and in {}", f.name);
            }
            count += 1;
        }
        assert_eq!(count, f.blobs, "{}: entry count differs from meta", f.name);
    }
    BundleContents {
        meta_path: meta_path.to_path_buf(),
        meta,
        blobs,
        file_sizes,
    }
}

/// Path shape `OUT/YYYYMMDD/PREFIX_full_YYYYMMDDHHMM[-n]_meta.yaml`.
fn assert_bundle_path(meta_path: &Path, out: &Path, prefix: &str) {
    let day = meta_path.parent().unwrap();
    assert_eq!(
        fs::canonicalize(day.parent().unwrap()).unwrap(),
        fs::canonicalize(out).unwrap(),
        "bundle {meta_path:?} is not in a day folder of {out:?}"
    );
    let day_name = day.file_name().unwrap().to_str().unwrap();
    assert!(
        day_name.len() == 8 && day_name.bytes().all(|b| b.is_ascii_digit()),
        "day folder {day_name:?} is not YYYYMMDD"
    );
    let file = meta_path.file_name().unwrap().to_str().unwrap();
    let stem = file
        .strip_prefix(&format!("{prefix}_full_"))
        .and_then(|s| s.strip_suffix("_meta.yaml"))
        .unwrap_or_else(|| panic!("meta name {file:?} is not {prefix}_full_..._meta.yaml"));
    let (stamp, suffix) = match stem.split_once('-') {
        Some((stamp, n)) => (stamp, Some(n)),
        None => (stem, None),
    };
    assert!(
        stamp.len() == 12 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "timestamp {stamp:?} is not YYYYMMDDHHMM"
    );
    assert!(
        stamp.starts_with(day_name),
        "{stamp} is not of day {day_name}"
    );
    if let Some(n) = suffix {
        assert!(
            n.parse::<u32>().is_ok_and(|n| n >= 2),
            "bad suffix in {file}"
        );
    }
}

/// No unfinished-work files are left behind in a bundle folder or its parent.
fn assert_no_leftovers(meta_path: &Path) {
    let day = meta_path.parent().unwrap();
    for dir in [day, day.parent().unwrap()] {
        for e in fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            for bad in [".partial", ".journal", ".tmp", ".compact"] {
                assert!(!name.ends_with(bad), "{name} left in {dir:?}");
            }
            assert!(
                !name.starts_with(".ferry-write-test"),
                "{name} left in {dir:?}"
            );
        }
    }
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// What a bundle of given images must hold

fn is_config(media_type: &str) -> bool {
    media_type == media_types::DOCKER_CONFIG || media_type == media_types::OCI_CONFIG
}

/// Digest → kind of every blob and manifest `images` need.
fn expected_blobs(images: &[&PushedImage]) -> BTreeMap<String, BlobKind> {
    let mut out = BTreeMap::new();
    for img in images {
        for m in img.manifests() {
            out.insert(m.digest.clone(), BlobKind::Manifest);
        }
        for b in &img.blobs {
            let kind = if is_config(&b.media_type) {
                BlobKind::Config
            } else {
                BlobKind::Layer
            };
            out.insert(b.digest.clone(), kind);
        }
    }
    out
}

/// `skopeo inspect --raw` of every manifest (tops and children) of `images`,
/// keyed by reference; run concurrently.
fn skopeo_raw_all(images: &[&PushedImage]) -> HashMap<String, Vec<u8>> {
    let refs: BTreeSet<String> = images
        .iter()
        .flat_map(|i| i.manifests())
        .map(|m| m.reference.clone())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = refs
            .iter()
            .map(|r| s.spawn(move || (r.clone(), skopeo_inspect_raw(r))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Asserts that the bundle holds exactly the given images (by the reference
/// given to ferry), byte-exact as skopeo sees them at the source.
fn assert_bundle_holds(
    bundle: &BundleContents,
    images: &[(&str, &PushedImage)],
    raw: &HashMap<String, Vec<u8>>,
) {
    let imgs: Vec<&PushedImage> = images.iter().map(|(_, i)| *i).collect();
    let expected = expected_blobs(&imgs);

    // Exactly the needed blobs and manifests, each once.
    let stored: BTreeSet<&String> = bundle.blobs.keys().collect();
    let wanted: BTreeSet<&String> = expected.keys().collect();
    let missing: Vec<_> = wanted.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{:?}: missing {missing:?}, unexpected {extra:?}",
        bundle.meta_path
    );

    // Manifests are the exact bytes the source serves.
    for img in &imgs {
        for m in img.manifests() {
            let served = &raw[&m.reference];
            assert_eq!(manifest_digest(served), m.digest, "{}", m.reference);
            let (_, in_bundle) = &bundle.blobs[&m.digest];
            assert!(
                in_bundle == served,
                "{}: manifest bytes in the bundle differ from the registry's (non-canonical: {})",
                m.reference,
                m.non_canonical
            );
        }
    }

    // The meta's blob table.
    let records: BTreeMap<String, &ferry::bundle::meta::BlobRecord> = bundle
        .meta
        .blobs
        .iter()
        .map(|b| (b.digest.as_str().to_string(), b))
        .collect();
    assert_eq!(
        records.len(),
        bundle.meta.blobs.len(),
        "a blob is listed twice in the meta"
    );
    assert_eq!(
        records.keys().collect::<BTreeSet<_>>(),
        wanted,
        "meta blob list differs from what the images need"
    );
    for (digest, rec) in &records {
        let (file, data) = &bundle.blobs[digest];
        assert_eq!(rec.size, data.len() as u64, "{digest}: size in meta");
        assert_eq!(rec.kind, expected[digest], "{digest}: kind in meta");
        assert_eq!(rec.file.as_deref(), Some(file.as_str()), "{digest}: file");
        assert_eq!(rec.base, None, "{digest}: base in a full bundle");
        let users: BTreeSet<&str> = imgs
            .iter()
            .filter(|i| {
                i.manifests().iter().any(|m| &m.digest == digest)
                    || i.blobs.iter().any(|b| &b.digest == digest)
            })
            .map(|i| i.repo.as_str())
            .collect();
        assert!(
            users.contains(rec.repository.as_str()),
            "{digest}: repository {} does not use it (users {users:?})",
            rec.repository
        );
    }

    // The meta's image list.
    assert_eq!(
        bundle.meta.images.len(),
        images.len(),
        "images in meta: {:?}",
        bundle
            .meta
            .images
            .iter()
            .map(|i| &i.reference)
            .collect::<Vec<_>>()
    );
    for (given, img) in images {
        let recs: Vec<_> = bundle
            .meta
            .images
            .iter()
            .filter(|i| i.reference == *given)
            .collect();
        assert_eq!(recs.len(), 1, "{given} listed {} times", recs.len());
        let rec = recs[0];
        let host = img.reference.split('/').next().unwrap();
        assert_eq!(rec.registry, host, "{given}: registry");
        assert_eq!(rec.repository, img.repo, "{given}: repository");
        assert_eq!(rec.tag.as_deref(), Some(img.tag.as_str()), "{given}: tag");
        assert_eq!(
            rec.digest.as_str(),
            manifest_digest(&raw[&img.reference]),
            "{given}: digest is not that of skopeo inspect --raw"
        );
        assert_eq!(rec.media_type, img.media_type, "{given}: media type");
        let children: Vec<(String, String, Option<String>)> = rec
            .children
            .iter()
            .map(|c| {
                (
                    c.digest.as_str().to_string(),
                    c.media_type.clone(),
                    c.platform.clone(),
                )
            })
            .collect();
        let expected_children: Vec<(String, String, Option<String>)> = img
            .children
            .iter()
            .map(|c| (c.digest.clone(), c.media_type.clone(), c.platform.clone()))
            .collect();
        assert_eq!(children, expected_children, "{given}: child manifests");
    }
    assert_eq!(bundle.meta.kind, Kind::Full);
    assert!(bundle.meta.bases.is_empty());
}

fn refs_of(images: &[PushedImage]) -> Vec<&str> {
    images.iter().map(|i| i.reference.as_str()).collect()
}

fn given_as_reference(images: &[PushedImage]) -> Vec<(&str, &PushedImage)> {
    images.iter().map(|i| (i.reference.as_str(), i)).collect()
}

// ---------------------------------------------------------------------------
// Damaging bundles

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// One byte in the middle of a data file inverted.
    FlipByte,
    /// A data file cut to half its size.
    Truncate,
    /// A data file deleted.
    Delete,
}

/// Copies the meta and data files of a bundle into `dest`; returns the new meta path.
fn copy_bundle(meta_path: &Path, dest: &Path) -> PathBuf {
    let (meta, _) = Meta::load(meta_path).unwrap();
    let src = meta_path.parent().unwrap();
    fs::create_dir_all(dest).unwrap();
    for f in &meta.files {
        fs::copy(src.join(&f.name), dest.join(&f.name)).unwrap();
    }
    let new_meta = dest.join(meta_path.file_name().unwrap());
    fs::copy(meta_path, &new_meta).unwrap();
    new_meta
}

/// Damages the largest data file of the bundle; returns that file's name.
fn damage(meta_path: &Path, how: Damage) -> String {
    let (meta, _) = Meta::load(meta_path).unwrap();
    let f = meta
        .files
        .iter()
        .max_by_key(|f| f.size)
        .expect("a data file");
    let path = meta_path.parent().unwrap().join(&f.name);
    match how {
        Damage::FlipByte => {
            let mut bytes = fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        }
        Damage::Truncate => {
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(f.size / 2).unwrap();
        }
        Damage::Delete => fs::remove_file(&path).unwrap(),
    }
    f.name.clone()
}

/// A small source with two images of a few layers each (~200 KB), for tests
/// that do not need the whole corpus.
fn seed_small(reg: &Registry) -> Vec<PushedImage> {
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            push_image(
                reg,
                "small/docker",
                "1",
                Format::Docker,
                &[
                    layer("small-a-0", 48 * 1024),
                    layer("small-a-1", 40 * 1024),
                    layer("small-a-2", 32 * 1024),
                ],
                "small-a",
                false,
            )
        });
        let b = s.spawn(|| {
            push_image(
                reg,
                "small/oci",
                "2",
                Format::Oci,
                &[layer("small-b-0", 44 * 1024), layer("small-b-1", 36 * 1024)],
                "small-b",
                true,
            )
        });
        vec![a.join().unwrap(), b.join().unwrap()]
    })
}

// ---------------------------------------------------------------------------
// Save

#[test]
fn save_corpus_given_as_arguments() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    let out = tempfile::tempdir().unwrap();

    let meta_path = save_ok(&refs_of(&corpus), out.path(), &[]);
    assert_bundle_path(&meta_path, out.path(), "img");
    assert_no_leftovers(&meta_path);

    let bundle = read_bundle(&meta_path);
    assert_eq!(bundle.meta.files.len(), 2, "default --files is 2");
    let imgs: Vec<&PushedImage> = corpus.iter().collect();
    let raw = skopeo_raw_all(&imgs);
    assert_bundle_holds(&bundle, &given_as_reference(&corpus), &raw);
    assert!(bundle.meta.failed.is_empty(), "{:?}", bundle.meta.failed);

    // Only the meta and the data files are in the bundle folder.
    let mut on_disk: Vec<String> = fs::read_dir(meta_path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = bundle.file_sizes.keys().cloned().collect();
    expected.push(format!("{}_meta.yaml", bundle.meta.name));
    expected.sort();
    assert_eq!(on_disk, expected);

    verify(&meta_path, &[]).assert_code(0);
    verify(&meta_path, &["--size-only"]).assert_code(0);
}

#[test]
fn save_corpus_from_list_file_and_stdin() {
    let reg = Registry::start();
    let corpus = seed_corpus(&reg);
    let imgs: Vec<&PushedImage> = corpus.iter().collect();
    let raw = skopeo_raw_all(&imgs);
    let work = tempfile::tempdir().unwrap();

    let mut list = String::from("# images for the test\n\n");
    for (i, img) in corpus.iter().enumerate() {
        list.push_str(&img.reference);
        list.push('\n');
        if i % 2 == 0 {
            list.push_str("   \n# a comment between references\n");
        }
    }
    list.push_str("\n# trailing comment");
    let list_path = work.path().join("images.lst");
    fs::write(&list_path, &list).unwrap();

    let saves: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        ("list-file", vec!["--list", path_str(&list_path)], None),
        ("stdin-pipe", vec![], Some(list.as_str())),
        ("list-dash", vec!["--list", "-"], Some(list.as_str())),
    ];
    for (label, extra, stdin) in saves {
        let out = work.path().join(label);
        let mut args = vec!["save", "--out", path_str(&out)];
        args.extend(extra);
        let r = ferry_run(&args, stdin, Some(work.path()));
        r.assert_code(0);
        let meta_path = r.meta_only();
        assert_bundle_path(&meta_path, &out, "img");
        assert_no_leftovers(&meta_path);
        let bundle = read_bundle(&meta_path);
        assert_bundle_holds(&bundle, &given_as_reference(&corpus), &raw);
        assert!(
            bundle.meta.failed.is_empty(),
            "{label}: {:?}",
            bundle.meta.failed
        );
        verify(&meta_path, &[]).assert_code(0);
    }
    assert!(
        !work.path().join("data").exists(),
        "a save with --out wrote into ./data"
    );
}

#[test]
fn save_balances_three_data_files() {
    let reg = Registry::start();
    // Nine layers of similar size (88-120 KiB) over two images: greedy
    // largest-first placement can balance them over three files.
    let images = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let layers: Vec<Vec<u8>> = [120, 112, 104, 96, 88]
                .iter()
                .map(|k| layer(&format!("balance-a-{k}"), k * 1024))
                .collect();
            push_image(
                &reg,
                "balance/a",
                "1",
                Format::Docker,
                &layers,
                "bal-a",
                false,
            )
        });
        let b = s.spawn(|| {
            let layers: Vec<Vec<u8>> = [116, 108, 100, 92]
                .iter()
                .map(|k| layer(&format!("balance-b-{k}"), k * 1024))
                .collect();
            push_image(&reg, "balance/b", "1", Format::Oci, &layers, "bal-b", false)
        });
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let out = tempfile::tempdir().unwrap();
    let meta_path = save_ok(&refs_of(&images), out.path(), &["--files", "3"]);
    assert_no_leftovers(&meta_path);

    let bundle = read_bundle(&meta_path);
    assert_eq!(bundle.meta.files.len(), 3);
    let tars: Vec<String> = fs::read_dir(meta_path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    assert_eq!(tars.len(), 3, "data files on disk: {tars:?}");
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    assert_bundle_holds(&bundle, &given_as_reference(&images), &raw);

    // Largest blob first onto the smallest file: the last blob that went onto
    // the largest file went onto the smallest file of that moment, so the
    // files differ by at most one blob with its tar header and padding.
    let largest_blob = bundle
        .blobs
        .values()
        .map(|(_, d)| d.len() as u64)
        .max()
        .unwrap();
    let framed = 512 + largest_blob.div_ceil(512) * 512;
    let sizes: Vec<u64> = bundle.file_sizes.values().copied().collect();
    let (min, max) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
    assert!(
        max - min <= framed,
        "data files {sizes:?} differ by {} > largest blob with framing {framed}",
        max - min
    );
    for name in bundle.file_sizes.keys() {
        let n = bundle.blobs.values().filter(|(f, _)| f == name).count();
        assert!(n >= 2, "{name} holds only {n} blobs");
    }
}

#[test]
fn two_saves_in_the_same_minute_keep_both_bundles() {
    let reg = Registry::start();
    let images = seed_small(&reg);
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    let out = tempfile::tempdir().unwrap();
    let refs = refs_of(&images);

    // Save until two consecutive saves fall in the same minute (the first
    // pair does, unless it straddles a minute boundary).
    let mut metas = vec![save_ok(&refs, out.path(), &[])];
    let mut same_minute = None;
    for _ in 0..3 {
        metas.push(save_ok(&refs, out.path(), &[]));
        let (a, b) = (&metas[metas.len() - 2], &metas[metas.len() - 1]);
        let name = |p: &Path| Meta::load(p).unwrap().0.name;
        let (na, nb) = (name(a), name(b));
        let stamp = |n: &str| n.split('-').next().unwrap().to_string();
        if a.parent() == b.parent() && stamp(&na) == stamp(&nb) {
            same_minute = Some((na, nb));
            break;
        }
    }
    let (a, b) = same_minute.expect("no two consecutive saves in the same minute");
    assert_ne!(a, b, "two saves in the same minute got the same name");
    if !a.contains('-') {
        assert_eq!(b, format!("{a}-2"));
    }

    let distinct: BTreeSet<&PathBuf> = metas.iter().collect();
    assert_eq!(
        distinct.len(),
        metas.len(),
        "a meta path was reused: {metas:?}"
    );
    let mut data_files = BTreeSet::new();
    for meta_path in &metas {
        assert_bundle_path(meta_path, out.path(), "img");
        assert_no_leftovers(meta_path);
        // Verifying every bundle after the last save shows none was overwritten.
        verify(meta_path, &[]).assert_code(0);
        let bundle = read_bundle(meta_path);
        assert_bundle_holds(&bundle, &given_as_reference(&images), &raw);
        for f in &bundle.meta.files {
            assert!(data_files.insert(f.name.clone()), "{} reused", f.name);
        }
    }
}

#[test]
fn save_records_malformed_and_missing_references_and_saves_the_rest() {
    let reg = Registry::start();
    let images = seed_small(&reg);
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    let out = tempfile::tempdir().unwrap();

    let malformed = format!("{}/Small/UPPER:1", reg.host());
    let missing = format!("{}/does/not-exist:1", reg.host());
    let args = vec![
        "save",
        images[0].reference.as_str(),
        malformed.as_str(),
        images[1].reference.as_str(),
        missing.as_str(),
        "--out",
        path_str(out.path()),
    ];
    let r = run(&args);
    r.assert_code(1);
    r.assert_stderr_has(&[&malformed]);
    r.assert_stderr_has(&[&missing]);
    let meta_path = r.meta_only();
    assert_no_leftovers(&meta_path);

    let bundle = read_bundle(&meta_path);
    assert_bundle_holds(&bundle, &given_as_reference(&images), &raw);
    let failed: BTreeMap<&str, &str> = bundle
        .meta
        .failed
        .iter()
        .map(|f| (f.reference.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        failed.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([malformed.as_str(), missing.as_str()]),
        "failed: {:?}",
        bundle.meta.failed
    );
    assert_eq!(bundle.meta.failed.len(), 2, "{:?}", bundle.meta.failed);
    for (reference, reason) in &failed {
        assert!(!reason.trim().is_empty(), "{reference}: empty reason");
    }
    let why_missing = failed[missing.as_str()].to_lowercase();
    assert!(
        why_missing.contains("not found") || why_missing.contains("unknown"),
        "reason for {missing}: {why_missing}"
    );
    verify(&meta_path, &[]).assert_code(0);
}

#[test]
fn save_refuses_a_missing_list_and_an_unwritable_out() {
    let reg = Registry::start();
    let img = push_image(
        &reg,
        "refuse/me",
        "1",
        Format::Oci,
        &[layer("refuse", 8 * 1024)],
        "refuse",
        false,
    );
    let work = tempfile::tempdir().unwrap();

    // A --list file that does not exist.
    let list = work.path().join("no-such-list.lst");
    let out = work.path().join("out");
    let r = ferry_run(
        &["save", "--list", path_str(&list), "--out", path_str(&out)],
        None,
        Some(work.path()),
    );
    r.assert_failed();
    r.assert_stderr_has(&["no-such-list.lst"]);
    assert!(r.stdout.trim().is_empty(), "stdout: {}", r.stdout);
    assert_eq!(all_files(work.path()), Vec::<PathBuf>::new());

    // --out under a regular file: the folder cannot be created.
    let blocker = work.path().join("a-file");
    fs::write(&blocker, b"not a folder").unwrap();
    let bad_out = blocker.join("out");
    let r = ferry_run(
        &["save", &img.reference, "--out", path_str(&bad_out)],
        None,
        Some(work.path()),
    );
    r.assert_failed();
    r.assert_stderr_has(&[path_str(&bad_out)]);
    assert!(r.stdout.trim().is_empty(), "stdout: {}", r.stdout);
    assert_eq!(fs::read(&blocker).unwrap(), b"not a folder");
    assert_eq!(all_files(work.path()), vec![blocker]);
}

#[test]
fn verify_detects_changed_truncated_and_missing_data_files() {
    let reg = Registry::start();
    let images = seed_small(&reg);
    let out = tempfile::tempdir().unwrap();
    let meta_path = save_ok(&refs_of(&images), out.path(), &[]);
    verify(&meta_path, &[]).assert_code(0);
    verify(&meta_path, &["--size-only"]).assert_code(0);

    let copies = tempfile::tempdir().unwrap();
    for how in [Damage::FlipByte, Damage::Truncate, Damage::Delete] {
        let copy = copy_bundle(&meta_path, &copies.path().join(format!("{how:?}")));
        verify(&copy, &[]).assert_code(0);
        let file = damage(&copy, how);
        verify(&copy, &[])
            .assert_code(1)
            .assert_stderr_has(&[&file]);
        if !matches!(how, Damage::FlipByte) {
            verify(&copy, &["--size-only"])
                .assert_code(1)
                .assert_stderr_has(&[&file]);
        }
    }
    // The original is untouched and still good.
    verify(&meta_path, &[]).assert_code(0);
}

// ---------------------------------------------------------------------------
// Upload

/// Asserts that `target` serves every image (and every child by digest) with
/// the source's exact manifest bytes under `namespace`, and that skopeo can
/// copy each image with all its blobs (skopeo checks every blob digest).
fn assert_target_matches(
    target: &Registry,
    namespace: &str,
    images: &[PushedImage],
    raw: &HashMap<String, Vec<u8>>,
) {
    let repo = |r: &str| {
        if namespace.is_empty() {
            r.to_string()
        } else {
            format!("{namespace}/{r}")
        }
    };
    std::thread::scope(|s| {
        for img in images {
            let repo = repo(&img.repo);
            s.spawn(move || {
                let top = target.reference(&repo, &img.tag);
                let served = skopeo_inspect_raw(&top);
                assert!(
                    served == raw[&img.reference],
                    "{top}: manifest bytes differ from the source's {}",
                    img.reference
                );
                for m in img.manifests() {
                    let resp = target.get_manifest(&repo, &m.digest);
                    assert_eq!(resp.status, 200, "{repo}@{}: {}", m.digest, resp.text());
                    assert!(resp.body == raw[&m.reference], "{repo}@{}: bytes", m.digest);
                    assert_eq!(
                        resp.header("docker-content-digest"),
                        Some(m.digest.as_str()),
                        "{repo}@{}",
                        m.digest
                    );
                    assert_eq!(
                        resp.header("content-type"),
                        Some(m.media_type.as_str()),
                        "{repo}@{}: media type",
                        m.digest
                    );
                }
                for child in &img.children {
                    let r = format!("{}/{repo}@{}", target.host(), child.digest);
                    assert_eq!(skopeo_inspect_raw_digest(&r), child.digest, "{r}");
                }
                let dir = tempfile::tempdir().unwrap();
                skopeo_copy(
                    &format!("docker://{top}"),
                    &format!("dir:{}", dir.path().display()),
                    &["--all"],
                )
                .unwrap_or_else(|e| panic!("skopeo copy of {top} from the target: {e}"));
            });
        }
    });
    let mut expected_tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for img in images {
        expected_tags
            .entry(repo(&img.repo))
            .or_default()
            .push(img.tag.clone());
    }
    let expected_repos: Vec<String> = expected_tags.keys().cloned().collect();
    assert_eq!(target.catalog(), expected_repos, "target catalog");
    for (r, mut tags) in expected_tags {
        tags.sort();
        assert_eq!(target.tags(&r), tags, "tags of {r} at the target");
    }
}

#[test]
fn upload_corpus_round_trips_byte_exact() {
    let (src, corpus, target) = std::thread::scope(|s| {
        let t = s.spawn(Registry::start);
        let src = Registry::start();
        let corpus = seed_corpus(&src);
        (src, corpus, t.join().unwrap())
    });
    let imgs: Vec<&PushedImage> = corpus.iter().collect();
    let raw = skopeo_raw_all(&imgs);
    let out = tempfile::tempdir().unwrap();
    let meta_path = save_ok(&refs_of(&corpus), out.path(), &["--files", "3"]);

    upload(&meta_path, &target.host(), &[]).assert_code(0);
    assert_target_matches(&target, "", &corpus, &raw);

    // Uploading the same bundle again succeeds and changes nothing.
    upload(&meta_path, &target.host(), &[]).assert_code(0);
    for img in &corpus {
        let resp = target.get_manifest(&img.repo, &img.tag);
        assert_eq!(resp.status, 200, "{}:{}", img.repo, img.tag);
        assert!(resp.body == raw[&img.reference], "{}:{}", img.repo, img.tag);
    }
    assert_eq!(target.catalog(), CORPUS_REPOS.map(String::from).to_vec());
    drop(src);
}

#[test]
fn upload_into_a_namespace() {
    let (src, target) = std::thread::scope(|s| {
        let t = s.spawn(Registry::start);
        (Registry::start(), t.join().unwrap())
    });
    let images = std::thread::scope(|s| {
        let web = s.spawn(|| {
            push_image(
                &src,
                "app/web",
                "1.0",
                Format::Docker,
                &[layer("ns-web-0", 16 * 1024), layer("ns-web-1", 8 * 1024)],
                "ns-web",
                false,
            )
        });
        let multi = s.spawn(|| {
            push_index(
                &src,
                "app/multi",
                "2",
                Format::Oci,
                &[
                    ("linux/amd64", vec![layer("ns-multi-amd64", 8 * 1024)]),
                    ("linux/arm64/v8", vec![layer("ns-multi-arm64", 8 * 1024)]),
                ],
            )
        });
        vec![web.join().unwrap(), multi.join().unwrap()]
    });
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    let out = tempfile::tempdir().unwrap();
    let meta_path = save_ok(&refs_of(&images), out.path(), &[]);

    let dst = format!("{}/mirror/ns", target.host());
    upload(&meta_path, &dst, &[]).assert_code(0);

    let web = format!("{}/mirror/ns/app/web:1.0", target.host());
    assert!(
        skopeo_inspect_raw(&web) == raw[&images[0].reference],
        "{web}"
    );
    assert_target_matches(&target, "mirror/ns", &images, &raw);
    assert!(
        target.tags("app/web").is_empty(),
        "app/web outside the namespace"
    );
}

/// A missing or truncated data file is refused before anything is pushed; a
/// flipped byte is found as its blob streams out: the data file is named and no
/// image is tagged.
#[test]
fn upload_refuses_damaged_bundles_and_tags_nothing() {
    let (src, target) = std::thread::scope(|s| {
        let t = s.spawn(Registry::start);
        (Registry::start(), t.join().unwrap())
    });
    let images = seed_small(&src);
    let out = tempfile::tempdir().unwrap();
    let meta_path = save_ok(&refs_of(&images), out.path(), &[]);
    let copies = tempfile::tempdir().unwrap();

    let cases = [
        (Damage::Truncate, "full"),
        (Damage::Delete, "full"),
        (Damage::Truncate, "size"),
        (Damage::Delete, "size"),
        (Damage::FlipByte, "full"),
    ];
    for (how, mode) in cases {
        let copy = copy_bundle(&meta_path, &copies.path().join(format!("{how:?}-{mode}")));
        let file = damage(&copy, how);
        let before = target.catalog();
        upload(&copy, &target.host(), &["--verify", mode])
            .assert_failed()
            .assert_stderr_has(&[&file]);
        if matches!(how, Damage::FlipByte) {
            for image in &images {
                assert!(target.tags(&image.repo).is_empty(), "{how:?}: tagged");
            }
            continue;
        }
        assert_eq!(
            target.catalog(),
            before,
            "{how:?} with --verify {mode}: something was pushed"
        );
    }

    // The target was usable all along: the intact bundle goes in.
    upload(&meta_path, &target.host(), &[]).assert_code(0);
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    assert_target_matches(&target, "", &images, &raw);
}

#[test]
fn concurrent_identical_saves_keep_both_bundles() {
    let reg = Registry::start();
    let images = seed_small(&reg);
    let raw = skopeo_raw_all(&images.iter().collect::<Vec<_>>());
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["save"];
    args.extend(refs_of(&images));
    args.extend(["--out", path_str(out.path())]);

    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| run(&args))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let metas: Vec<PathBuf> = runs.iter().map(|r| r.assert_code(0).meta_only()).collect();
    let distinct: BTreeSet<&PathBuf> = metas.iter().collect();
    assert_eq!(
        distinct.len(),
        metas.len(),
        "saves wrote the same bundle: {metas:?}"
    );
    for meta_path in &metas {
        assert_no_leftovers(meta_path);
        verify(meta_path, &[]).assert_code(0);
        let bundle = read_bundle(meta_path);
        assert_bundle_holds(&bundle, &given_as_reference(&images), &raw);
    }
}

// ---------------------------------------------------------------------------
// Requests that cannot be honoured

/// Two list lines renamed to the same target tag would overwrite each other on
/// every upload: both fail, naming each other, and the tag is never set.
#[test]
fn two_images_renamed_to_one_tag_both_fail_and_the_tag_is_not_set() {
    let src = Registry::start();
    let dst = Registry::start();
    let images = seed_small(&src);
    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("images.lst");
    fs::write(
        &list,
        format!(
            "{0} -> coll/x:1\n{1} -> coll/x:1\n{0} -> coll/y:1\n{0} -> coll/x:1\n",
            images[0].reference, images[1].reference
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let meta = run(&["save", "--list", path_str(&list), "--out", path_str(&out)])
        .assert_code(0)
        .meta_only();
    let up = upload(&meta, &dst.host(), &[]);
    up.assert_code(1)
        .assert_stderr_has(&["coll/x:1 is also the target of"]);
    assert!(
        dst.tags("coll/x").is_empty(),
        "the contested tag was set: {:?}",
        dst.tags("coll/x")
    );
    assert_eq!(
        skopeo_inspect_raw_digest(&format!("{}/coll/y:1", dst.host())),
        images[0].digest,
        "the uncontested rename of the same image still went through"
    );
}

/// Values that cannot work are usage errors (exit 2) with nothing written: a
/// prefix that would leave the output folder, an unknown platform, a bad size.
#[test]
fn bad_values_are_usage_errors_and_write_nothing() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    for (flag, value, names) in [
        ("--prefix", "../../evil", "--prefix"),
        ("--platform", "bogus", "--platform"),
        ("--max-file-size", "12Q", "--max-file-size"),
    ] {
        run(&[
            "save",
            "127.0.0.1:1/never/used:1",
            "--out",
            path_str(&out),
            flag,
            value,
        ])
        .assert_code(2)
        .assert_stderr_has(&[names]);
    }
    assert!(
        all_files(work.path()).is_empty(),
        "{:?}",
        all_files(work.path())
    );
    run(&["upload", "nowhere_meta.yaml", "--dst", "HOST//ns"])
        .assert_code(2)
        .assert_stderr_has(&["HOST//ns"]);
}

/// An unreachable target fails the upload once, before any image or blob is
/// tried (each would otherwise retry on its own).
#[test]
fn an_unreachable_target_fails_the_upload_once() {
    let src = Registry::start();
    let images = seed_small(&src);
    let work = tempfile::tempdir().unwrap();
    let meta = save_ok(&refs_of(&images), &work.path().join("out"), &[]);
    let up = upload(&meta, "127.0.0.1:1/x", &["--retries", "0"]);
    up.assert_code(1).assert_stderr_has(&["127.0.0.1:1"]);
    for img in &images {
        assert!(
            !up.stderr.contains(&format!("failed: {}", img.reference)),
            "each image failed on its own:\n{}",
            up.stderr
        );
    }
}

/// `verify` finds an image whose manifest is in no data file (a meta edited by
/// hand), as upload would.
#[test]
fn verify_names_an_image_whose_manifest_is_missing() {
    let src = Registry::start();
    let images = seed_small(&src);
    let work = tempfile::tempdir().unwrap();
    let meta = save_ok(&refs_of(&images), &work.path().join("out"), &[]);
    let text = fs::read_to_string(&meta).unwrap();
    let fake = format!("sha256:{}", "1".repeat(64));
    let edited = text.replacen(&images[0].digest, &fake, 1);
    assert_ne!(edited, text);
    // The blob list must still match the data files: only the image's pointer moves.
    let (head, tail) = edited.split_at(edited.find("\nblobs:").unwrap());
    fs::write(
        &meta,
        format!("{head}{}", tail.replace(&fake, &images[0].digest)),
    )
    .unwrap();
    verify(&meta, &[])
        .assert_code(1)
        .assert_stderr_has(&[&fake]);
}
