//! Shared integration-test harness for `ferry`.
//!
//! * [`Registry`]: a real `docker-registry` (distribution v2) per test, on its
//!   own loopback port with its own storage; killed on drop.
//! * skopeo helpers ([`skopeo_inspect_raw`], [`skopeo_copy`], ...): an
//!   independent client to check what ferry wrote.
//! * corpus ([`seed_corpus`], [`push_image`], [`push_index`], [`layer`], ...):
//!   deterministic images pushed with skopeo and verified byte-exact.
//! * [`FerryCmd`]: runs the binary under test (builder; assertions that print
//!   everything it said); [`ferry`]: the bare `assert_cmd` command.
//!
//! Use from a test module with `use crate::common::*;`.
#![allow(dead_code, unused_imports)]

pub mod cmd;
pub mod corpus;
pub mod engines;
pub mod http;
pub mod proxy;
pub mod registry;
pub mod skopeo;
pub mod tls;

pub use cmd::{save_bundle, FerryCmd, Output};
pub use corpus::media_types;
pub use corpus::{
    build_image, build_index, corpus_base_layers, gunzip, gzip, layer, pseudo_random, push_built,
    push_image, push_index, push_index_opts, seed_corpus, write_dir_layout, Blob, BuiltImage,
    Format, PushedImage, CORPUS_REPOS,
};
pub use engines::{Containerd, DockerEngine};
pub use http::{http_get, http_request, HttpResponse};
pub use proxy::*;
pub use registry::Registry;
pub use skopeo::{
    docker_ref, manifest_digest, sha256_digest, skopeo, skopeo_copy, skopeo_inspect_raw,
    skopeo_inspect_raw_digest, skopeo_inspect_raw_with_creds, try_skopeo_inspect_raw,
};
pub use tls::TlsRegistry;

/// The `ferry` binary built by cargo for this test run.
pub fn ferry() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("ferry").expect("ferry binary")
}

/// Flips one byte in the middle of `blob` wherever a data file of the bundle at
/// `meta` holds it (what a bad USB stick does); panics when none holds it.
pub fn corrupt_blob_in_bundle(meta: &str, blob: &[u8]) {
    let dir = std::path::Path::new(meta)
        .parent()
        .expect("meta in a folder");
    let mid = blob.len() / 2;
    let window = &blob[mid..(mid + 32).min(blob.len())];
    let mut flipped = false;
    for entry in std::fs::read_dir(dir).expect("bundle folder") {
        let path = entry.expect("bundle folder entry").path();
        if path.extension().is_some_and(|e| e == "tar") {
            let mut bytes = std::fs::read(&path).expect("data file");
            if let Some(at) = bytes.windows(window.len()).position(|w| w == window) {
                bytes[at + window.len() / 4] ^= 0xff;
                std::fs::write(&path, bytes).expect("writing data file");
                flipped = true;
            }
        }
    }
    assert!(flipped, "blob not found in the data files of {meta}");
}

/// Checks a data file against the checksum its meta records, computed here
/// independently: the sha256 of the whole file, or for a plain tar recorded by
/// `headers_sha256` (version 2 metas), the sha256 of its tar header blocks in file
/// order, found with the tar crate.
pub fn assert_data_file_checksum(
    name: &str,
    sha256: &str,
    headers_sha256: Option<&str>,
    bytes: &[u8],
) {
    match headers_sha256 {
        Some(expected) => {
            assert!(sha256.is_empty(), "{name}: both sha256 and headers_sha256");
            assert_eq!(
                headers_sha256_hex(bytes),
                expected,
                "{name}: headers_sha256 differs"
            );
        }
        None => assert_eq!(
            sha256_digest(bytes).strip_prefix("sha256:"),
            Some(sha256),
            "{name}: sha256 differs"
        ),
    }
}

/// The sha256 (hex) of a tar's header blocks in file order, found with the tar
/// crate: what a version 2 meta records of a plain data file as `headers_sha256`.
pub fn headers_sha256_hex(tar_bytes: &[u8]) -> String {
    let mut headers = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().expect("a tar") {
        let at = entry.expect("a tar entry").raw_header_position() as usize;
        headers.extend_from_slice(&tar_bytes[at..at + 512]);
    }
    sha256_digest(&headers)
        .trim_start_matches("sha256:")
        .to_string()
}
