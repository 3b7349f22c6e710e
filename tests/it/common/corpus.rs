//! Deterministic test images, built in-process and pushed with skopeo (never
//! with ferry), verified byte-exact after the push.
//!
//! # How images reach the registry
//!
//! Every form (docker v2s2 image, docker manifest list, OCI image, OCI index)
//! is written as a skopeo `dir:` layout (`version` = "Directory Transport
//! Version: 1.1", `manifest.json`, `HEX.manifest.json` per child manifest of a
//! list, one file per blob named by its hex digest) and pushed with
//! `skopeo copy --all --preserve-digests dir:... docker://...`. skopeo 1.9.3
//! pushes all four forms from `dir:` byte-exact, including non-canonical
//! JSON. The `oci:` layout transport was rejected because skopeo 1.9.3 only
//! looks up OCI media types in `index.json` ("no descriptor found for
//! reference") and so cannot push docker v2s2 images or docker manifest lists
//! from it. Every push is checked: `skopeo inspect --raw` must return exactly
//! the bytes that were built, or the push panics.
//!
//! # Determinism
//!
//! A layer's bytes depend only on its seed and size (fixed tar headers and
//! mtimes, gzip header without name or mtime), so equal seeds give equal
//! digests within one build of the tests. Do not hard-code digests: they may
//! change if the gzip implementation (flate2) changes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use flate2::{read::GzDecoder, Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::registry::Registry;
use super::skopeo::{manifest_digest, sha256_digest, skopeo_copy, try_skopeo_inspect_raw};

pub mod media_types {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
}
use media_types::*;

/// Docker schema 2 (v2s2 manifest / manifest list) or OCI (manifest / index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

impl Format {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_MANIFEST,
            Format::Oci => OCI_MANIFEST,
        }
    }
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_MANIFEST_LIST,
            Format::Oci => OCI_INDEX,
        }
    }
    pub fn config_media_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_CONFIG,
            Format::Oci => OCI_CONFIG,
        }
    }
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Format::Docker => DOCKER_LAYER_GZIP,
            Format::Oci => OCI_LAYER_GZIP,
        }
    }
}

/// A blob (config or layer) as referenced by a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// An image or index built in memory, not pushed yet.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub media_type: String,
    /// Exact manifest bytes.
    pub manifest: Vec<u8>,
    /// `manifest_digest(&manifest)`.
    pub digest: String,
    /// `"os/arch[/variant]"` of an image; `None` for an index.
    pub platform: Option<String>,
    /// This manifest's own blobs with their bytes: config first, then layers
    /// in manifest order. Empty for an index.
    pub blobs: Vec<(Blob, Vec<u8>)>,
    /// Child manifests of an index, in index order.
    pub children: Vec<BuiltImage>,
    /// Whether `manifest` was written in non-canonical JSON.
    pub non_canonical: bool,
}

impl BuiltImage {
    /// Blobs of this manifest and all its children, deduplicated by digest
    /// (first occurrence wins), with their bytes.
    pub fn all_blobs(&self) -> Vec<(Blob, Vec<u8>)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.collect_blobs(&mut seen, &mut out);
        out
    }

    fn collect_blobs(&self, seen: &mut HashSet<String>, out: &mut Vec<(Blob, Vec<u8>)>) {
        for (blob, data) in &self.blobs {
            if seen.insert(blob.digest.clone()) {
                out.push((blob.clone(), data.clone()));
            }
        }
        for child in &self.children {
            child.collect_blobs(seen, out);
        }
    }
}

/// An image or index as pushed to a test registry (and verified there).
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// `"127.0.0.1:PORT/repo:tag"`; for children `"127.0.0.1:PORT/repo@sha256:..."`.
    pub reference: String,
    pub repo: String,
    /// Empty for children (pushed by digest only).
    pub tag: String,
    /// Manifest digest as the registry serves it.
    pub digest: String,
    pub media_type: String,
    /// Exact manifest bytes.
    pub manifest: Vec<u8>,
    /// Configs + layers of this image (and of all children for an index),
    /// deduplicated by digest.
    pub blobs: Vec<Blob>,
    /// Child manifests of an index / manifest list, in index order.
    pub children: Vec<PushedImage>,
    /// `"os/arch[/variant]"` for images, `None` for an index.
    pub platform: Option<String>,
    /// Whether the manifest (not its children) is in non-canonical JSON.
    pub non_canonical: bool,
}

impl PushedImage {
    /// Is this an OCI index or docker manifest list?
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }

    /// This manifest followed by its children.
    pub fn manifests(&self) -> Vec<&PushedImage> {
        let mut out = vec![self];
        out.extend(self.children.iter());
        out
    }

    /// `"127.0.0.1:PORT/repo@sha256:..."`.
    pub fn digest_reference(&self) -> String {
        let host = self.reference.split('/').next().unwrap_or_default();
        format!("{host}/{}@{}", self.repo, self.digest)
    }

    /// Layer blobs of an image manifest (not an index), in manifest order.
    pub fn layers(&self) -> Vec<&Blob> {
        self.blobs
            .iter()
            .filter(|b| b.media_type != DOCKER_CONFIG && b.media_type != OCI_CONFIG)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Layers

/// Deterministic pseudo-random bytes: SHA-256 in counter mode over `seed`.
pub fn pseudo_random(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u64 = 0;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed.as_bytes());
        h.update(counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// A gzip-compressed tar layer whose bytes depend only on `seed` and
/// `approx_size` (the compressed size, roughly: file contents are
/// incompressible, plus ~1-3 KiB of tar/gzip overhead).
///
/// Contents: directory `layer-<sanitized seed>/`, a small text file naming
/// the seed, and `data-N.bin` files of at most 256 KiB of pseudo-random bytes.
///
/// Results are memoised per test binary, so corpora seeded by several tests
/// of one binary only pay for generating each layer once.
pub fn layer(seed: &str, approx_size: usize) -> Vec<u8> {
    type LayerCache = Mutex<HashMap<(String, usize), Vec<u8>>>;
    static CACHE: OnceLock<LayerCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (seed.to_string(), approx_size);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let bytes = make_layer(seed, approx_size);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, bytes.clone());
    bytes
}

fn make_layer(seed: &str, approx_size: usize) -> Vec<u8> {
    const CHUNK: usize = 256 * 1024;
    let dir: String = seed
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = format!("layer-{dir}");
    let mut tar = tar::Builder::new(Vec::new());

    let mut header = tar_header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut header, format!("{dir}/"), std::io::empty())
        .expect("tar dir");

    let text = format!("ferry test layer\nseed: {seed}\n");
    let mut header = tar_header(tar::EntryType::Regular, 0o644, text.len() as u64);
    tar.append_data(&mut header, format!("{dir}/SEED.txt"), text.as_bytes())
        .expect("tar text file");

    let payload = pseudo_random(&format!("layer/{seed}"), approx_size.saturating_sub(1024));
    for (i, chunk) in payload.chunks(CHUNK).enumerate() {
        let mut header = tar_header(tar::EntryType::Regular, 0o644, chunk.len() as u64);
        tar.append_data(&mut header, format!("{dir}/data-{i}.bin"), chunk)
            .expect("tar data file");
    }
    let tar_bytes = tar.into_inner().expect("finishing tar");
    gzip(&tar_bytes)
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h
}

/// Deterministic gzip (no file name, mtime 0).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::fast());
    enc.write_all(data).expect("gzip write");
    enc.finish().expect("gzip finish")
}

/// Decompress a gzip blob (e.g. to compute a layer's diff_id).
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("layer is not valid gzip");
    out
}

// ---------------------------------------------------------------------------
// JSON with controlled key order and layout

enum J {
    S(String),
    N(u64),
    O(Vec<(&'static str, J)>),
    A(Vec<J>),
}

fn s(v: &str) -> J {
    J::S(v.to_string())
}

/// Canonical: compact, keys in the order given (the order the Go structs of
/// docker/distribution and image-spec use). Non-canonical: 3-space indent,
/// `" : "` separators, keys reversed except `mediaType` which goes last, and
/// a trailing newline, so any parse + re-serialise changes the digest.
fn render(j: &J, non_canonical: bool) -> Vec<u8> {
    let mut out = String::new();
    write_json(j, non_canonical, 0, &mut out);
    if non_canonical {
        out.push('\n');
    }
    out.into_bytes()
}

fn write_json(j: &J, pretty: bool, depth: usize, out: &mut String) {
    let nl = |out: &mut String, depth: usize| {
        if pretty {
            out.push('\n');
            out.push_str(&"   ".repeat(depth));
        }
    };
    match j {
        J::S(v) => out.push_str(&serde_json::to_string(v).expect("json string")),
        J::N(n) => out.push_str(&n.to_string()),
        J::A(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_json(item, pretty, depth + 1, out);
            }
            if !items.is_empty() {
                nl(out, depth);
            }
            out.push(']');
        }
        J::O(fields) => {
            let mut fields: Vec<&(&str, J)> = fields.iter().collect();
            if pretty {
                fields.reverse();
                if let Some(pos) = fields.iter().position(|(k, _)| *k == "mediaType") {
                    let media_type = fields.remove(pos);
                    fields.push(media_type);
                }
            }
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                out.push_str(&serde_json::to_string(key).expect("json key"));
                out.push_str(if pretty { " : " } else { ":" });
                write_json(value, pretty, depth + 1, out);
            }
            if !fields.is_empty() {
                nl(out, depth);
            }
            out.push('}');
        }
    }
}

fn descriptor(blob: &Blob) -> J {
    J::O(vec![
        ("mediaType", s(&blob.media_type)),
        ("digest", s(&blob.digest)),
        ("size", J::N(blob.size)),
    ])
}

fn parse_platform(platform: &str) -> (String, String, Option<String>) {
    let parts: Vec<&str> = platform.split('/').collect();
    match parts.as_slice() {
        [os, arch] => (os.to_string(), arch.to_string(), None),
        [os, arch, variant] => (os.to_string(), arch.to_string(), Some(variant.to_string())),
        _ => panic!("platform must be os/arch[/variant], got {platform:?}"),
    }
}

// ---------------------------------------------------------------------------
// Building

/// Build an image manifest + config for `layers` (gzip tars, e.g. from
/// [`layer`]). The config names `platform` (`"os/arch[/variant]"`), the
/// layers' diff_ids and a label `ferry.test.seed=config_seed`.
pub fn build_image(
    format: Format,
    platform: &str,
    layers: &[Vec<u8>],
    config_seed: &str,
    non_canonical: bool,
) -> BuiltImage {
    let (os, arch, variant) = parse_platform(platform);
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(&gunzip(l))).collect();
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": os,
        "created": "2001-09-09T01:46:40Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": { "ferry.test.seed": config_seed },
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": (0..layers.len())
            .map(|i| serde_json::json!({
                "created": "2001-09-09T01:46:40Z",
                "created_by": format!("ferry test layer {i}"),
            }))
            .collect::<Vec<_>>(),
    });
    if let Some(variant) = &variant {
        config["variant"] = serde_json::Value::String(variant.clone());
    }
    let config_bytes = serde_json::to_vec(&config).expect("config json");

    let mut blobs = vec![(
        Blob {
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
            media_type: format.config_media_type().to_string(),
        },
        config_bytes,
    )];
    for l in layers {
        blobs.push((
            Blob {
                digest: sha256_digest(l),
                size: l.len() as u64,
                media_type: format.layer_media_type().to_string(),
            },
            l.clone(),
        ));
    }

    let manifest = J::O(vec![
        ("schemaVersion", J::N(2)),
        ("mediaType", s(format.manifest_media_type())),
        ("config", descriptor(&blobs[0].0)),
        (
            "layers",
            J::A(blobs[1..].iter().map(|(b, _)| descriptor(b)).collect()),
        ),
    ]);
    let manifest = render(&manifest, non_canonical);
    BuiltImage {
        media_type: format.manifest_media_type().to_string(),
        digest: manifest_digest(&manifest),
        manifest,
        platform: Some(platform.to_string()),
        blobs,
        children: Vec::new(),
        non_canonical,
    }
}

/// Build an OCI index / docker manifest list over `children` (each must have
/// a platform, i.e. come from [`build_image`]).
pub fn build_index(format: Format, children: Vec<BuiltImage>, non_canonical: bool) -> BuiltImage {
    let entries = children
        .iter()
        .map(|child| {
            let platform = child
                .platform
                .as_deref()
                .expect("index children must be images with a platform");
            let (os, arch, variant) = parse_platform(platform);
            let mut plat = vec![("architecture", J::S(arch)), ("os", J::S(os))];
            if let Some(v) = variant {
                plat.push(("variant", J::S(v)));
            }
            J::O(vec![
                ("mediaType", s(&child.media_type)),
                ("digest", s(&child.digest)),
                ("size", J::N(child.manifest.len() as u64)),
                ("platform", J::O(plat)),
            ])
        })
        .collect();
    let index = J::O(vec![
        ("schemaVersion", J::N(2)),
        ("mediaType", s(format.index_media_type())),
        ("manifests", J::A(entries)),
    ]);
    let manifest = render(&index, non_canonical);
    BuiltImage {
        media_type: format.index_media_type().to_string(),
        digest: manifest_digest(&manifest),
        manifest,
        platform: None,
        blobs: Vec::new(),
        children,
        non_canonical,
    }
}

/// Write `image` as a skopeo `dir:` layout into the (existing) `dir`.
pub fn write_dir_layout(dir: &Path, image: &BuiltImage) {
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").expect("dir: version");
    fs::write(dir.join("manifest.json"), &image.manifest).expect("dir: manifest");
    for child in &image.children {
        assert!(
            child.children.is_empty(),
            "nested indexes are not supported"
        );
        let hex = child.digest.trim_start_matches("sha256:");
        fs::write(dir.join(format!("{hex}.manifest.json")), &child.manifest)
            .expect("dir: child manifest");
    }
    for (blob, data) in image.all_blobs() {
        let hex = blob.digest.trim_start_matches("sha256:");
        fs::write(dir.join(hex), data).expect("dir: blob");
    }
}

// ---------------------------------------------------------------------------
// Pushing

/// Push `image` to `reg` as `repo:tag` with skopeo (`dir:` transport,
/// `--all --preserve-digests`), then check that `skopeo inspect --raw`
/// returns exactly `image.manifest`. Panics on any failure.
pub fn push_built(reg: &Registry, repo: &str, tag: &str, image: &BuiltImage) -> PushedImage {
    let layout = tempfile::Builder::new()
        .prefix("ferry-corpus-")
        .tempdir()
        .expect("corpus tempdir");
    write_dir_layout(layout.path(), image);
    let reference = reg.reference(repo, tag);
    let creds = reg.creds_arg().map(|c| format!("--dest-creds={c}"));
    let mut extra = vec!["--all", "--preserve-digests"];
    if let Some(c) = &creds {
        extra.push(c);
    }
    let src = format!("dir:{}", layout.path().display());
    skopeo_copy(&src, &format!("docker://{reference}"), &extra)
        .unwrap_or_else(|e| panic!("skopeo push of {reference} failed: {e}"));

    let served = try_skopeo_inspect_raw(&reference, reg.creds())
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {reference} after push: {e}"));
    assert!(
        served == image.manifest,
        "registry serves different manifest bytes for {reference}\n--- built:\n{}\n--- served:\n{}",
        String::from_utf8_lossy(&image.manifest),
        String::from_utf8_lossy(&served)
    );
    pushed(reg, repo, tag, &reference, image)
}

fn pushed(
    reg: &Registry,
    repo: &str,
    tag: &str,
    reference: &str,
    image: &BuiltImage,
) -> PushedImage {
    PushedImage {
        reference: reference.to_string(),
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest: image.digest.clone(),
        media_type: image.media_type.clone(),
        manifest: image.manifest.clone(),
        blobs: image.all_blobs().into_iter().map(|(b, _)| b).collect(),
        children: image
            .children
            .iter()
            .map(|c| {
                let r = format!("{}/{repo}@{}", reg.host(), c.digest);
                pushed(reg, repo, "", &r, c)
            })
            .collect(),
        platform: image.platform.clone(),
        non_canonical: image.non_canonical,
    }
}

/// Build (platform linux/amd64) and push a single image.
pub fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    layers: &[Vec<u8>],
    config_seed: &str,
    non_canonical_json: bool,
) -> PushedImage {
    let image = build_image(
        format,
        "linux/amd64",
        layers,
        config_seed,
        non_canonical_json,
    );
    push_built(reg, repo, tag, &image)
}

/// Build and push an index / manifest list with one image per platform
/// (`("linux/arm64/v8", layers)`); canonical JSON throughout.
pub fn push_index(
    reg: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    platforms: &[(&str, Vec<Vec<u8>>)],
) -> PushedImage {
    push_index_opts(reg, repo, tag, format, platforms, false)
}

/// [`push_index`] with the index itself in non-canonical JSON if asked
/// (children stay canonical).
pub fn push_index_opts(
    reg: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    platforms: &[(&str, Vec<Vec<u8>>)],
    non_canonical_index: bool,
) -> PushedImage {
    let children = platforms
        .iter()
        .map(|(platform, layers)| {
            let seed = format!("{repo}:{tag}/{platform}");
            build_image(format, platform, layers, &seed, false)
        })
        .collect();
    let index = build_index(format, children, non_canonical_index);
    push_built(reg, repo, tag, &index)
}

// ---------------------------------------------------------------------------
// The standard corpus

/// Repositories of [`seed_corpus`], sorted as `/v2/_catalog` lists them.
pub const CORPUS_REPOS: [&str; 6] = [
    "docker/v2s2",
    "many/layers",
    "multi/docker-list",
    "multi/oci-index",
    "oci/image",
    "team/sub/app",
];

/// The two base layers shared by several corpus images (64 KiB + 16 KiB).
pub fn corpus_base_layers() -> Vec<Vec<u8>> {
    vec![
        layer("corpus-base-0", 64 * 1024),
        layer("corpus-base-1", 16 * 1024),
    ]
}

/// Push the standard corpus (about 1.3 MB) and return it, in this order:
///
/// | # | reference                         | form                              | JSON          |
/// |---|-----------------------------------|-----------------------------------|---------------|
/// | 0 | `docker/v2s2:1.0`                 | docker v2s2, base + 1 MiB layer   | canonical     |
/// | 1 | `oci/image:latest`                | OCI manifest, base + 32 KiB layer | non-canonical |
/// | 2 | `multi/oci-index:v1`              | OCI index linux/amd64 (base + 1), linux/arm64 (1 layer) | canonical |
/// | 3 | `multi/docker-list:v1`            | docker list linux/amd64, linux/arm64/v8 | non-canonical list |
/// | 4 | `team/sub/app:v0.1-rc.1_x`        | docker v2s2, base0 + 1 layer      | non-canonical |
/// | 5 | `team/sub/app:latest`             | same manifest as #4 (second tag)  | non-canonical |
/// | 6 | `many/layers:42`                  | OCI manifest, 42 layers of ~1.5 KiB | canonical   |
///
/// Both base layers are in #0, #1 and #2's amd64 image; base 0 also in #4/#5.
pub fn seed_corpus(reg: &Registry) -> Vec<PushedImage> {
    let base = corpus_base_layers();
    let with_base = |seed: &str, size: usize| {
        let mut layers = base.clone();
        layers.push(layer(seed, size));
        layers
    };

    // The entries are independent: build and push them concurrently (this
    // halves the wall time; the registry copes with the same base blobs being
    // uploaded to several repositories at once).
    type Job<'a> = Box<dyn FnOnce() -> Vec<PushedImage> + Send + 'a>;
    let jobs: Vec<Job> = vec![
        Box::new(|| {
            vec![push_image(
                reg,
                "docker/v2s2",
                "1.0",
                Format::Docker,
                &with_base("corpus-docker-app", 1024 * 1024),
                "corpus-docker",
                false,
            )]
        }),
        Box::new(|| {
            vec![push_image(
                reg,
                "oci/image",
                "latest",
                Format::Oci,
                &with_base("corpus-oci-app", 32 * 1024),
                "corpus-oci",
                true,
            )]
        }),
        Box::new(|| {
            vec![push_index(
                reg,
                "multi/oci-index",
                "v1",
                Format::Oci,
                &[
                    ("linux/amd64", with_base("corpus-oci-index-amd64", 8 * 1024)),
                    (
                        "linux/arm64",
                        vec![layer("corpus-oci-index-arm64", 8 * 1024)],
                    ),
                ],
            )]
        }),
        Box::new(|| {
            vec![push_index_opts(
                reg,
                "multi/docker-list",
                "v1",
                Format::Docker,
                &[
                    (
                        "linux/amd64",
                        vec![layer("corpus-docker-list-amd64", 8 * 1024)],
                    ),
                    (
                        "linux/arm64/v8",
                        vec![layer("corpus-docker-list-arm64", 8 * 1024)],
                    ),
                ],
                true,
            )]
        }),
        Box::new(|| {
            let team = build_image(
                Format::Docker,
                "linux/amd64",
                &[base[0].clone(), layer("corpus-team-app", 4 * 1024)],
                "corpus-team",
                true,
            );
            vec![
                push_built(reg, "team/sub/app", "v0.1-rc.1_x", &team),
                push_built(reg, "team/sub/app", "latest", &team),
            ]
        }),
        Box::new(|| {
            let many: Vec<Vec<u8>> = (0..42)
                .map(|i| layer(&format!("corpus-many-{i}"), 1536))
                .collect();
            vec![push_image(
                reg,
                "many/layers",
                "42",
                Format::Oci,
                &many,
                "corpus-many",
                false,
            )]
        }),
    ];
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|job| s.spawn(job)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}
