//! An independent client: the `skopeo` CLI (1.9.3 on Debian 12).
//!
//! Every call passes `--insecure-policy` (no signature policy file needed),
//! disables TLS verification (the test registries speak plain HTTP on
//! loopback) and bounds the run with `--command-timeout`.

use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

pub const SKOPEO_BIN: &str = "skopeo";
const COMMAND_TIMEOUT: &str = "180s";

/// `"sha256:HEX"` of `bytes` (a manifest's digest is that of its exact bytes).
pub fn manifest_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Same as [`manifest_digest`]; reads better for blobs.
pub fn sha256_digest(bytes: &[u8]) -> String {
    manifest_digest(bytes)
}

/// Run `skopeo --insecure-policy --command-timeout 180s ARGS...`; Ok(stdout)
/// on success, Err(stderr, or stdout if stderr is empty) on failure.
pub fn skopeo(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new(SKOPEO_BIN)
        .arg("--insecure-policy")
        .arg("--command-timeout")
        .arg(COMMAND_TIMEOUT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {SKOPEO_BIN} (is it installed?): {e}"));
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if stderr.is_empty() {
            format!(
                "skopeo {args:?} failed with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )
        } else {
            stderr
        })
    }
}

/// `docker://` form of `image_ref`, which may be given with or without it
/// (`"127.0.0.1:PORT/repo:tag"`, `"127.0.0.1:PORT/repo@sha256:..."`).
pub fn docker_ref(image_ref: &str) -> String {
    if image_ref.starts_with("docker://") {
        image_ref.to_string()
    } else {
        format!("docker://{image_ref}")
    }
}

/// `skopeo inspect --raw`, optionally with `--creds user:password`.
pub fn try_skopeo_inspect_raw(
    image_ref: &str,
    creds: Option<(&str, &str)>,
) -> Result<Vec<u8>, String> {
    let reference = docker_ref(image_ref);
    let creds_arg = creds.map(|(u, p)| format!("--creds={u}:{p}"));
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = &creds_arg {
        args.push(c);
    }
    args.push(&reference);
    skopeo(&args)
}

/// Exact manifest bytes as the registry serves them (`docker://` transport;
/// the prefix is optional). Panics with skopeo's stderr on failure.
pub fn skopeo_inspect_raw(image_ref: &str) -> Vec<u8> {
    try_skopeo_inspect_raw(image_ref, None)
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {image_ref}: {e}"))
}

/// [`skopeo_inspect_raw`] against a registry requiring basic auth.
pub fn skopeo_inspect_raw_with_creds(image_ref: &str, user: &str, password: &str) -> Vec<u8> {
    try_skopeo_inspect_raw(image_ref, Some((user, password)))
        .unwrap_or_else(|e| panic!("skopeo inspect --raw {image_ref}: {e}"))
}

/// Digest of the manifest bytes served for `image_ref` (for an index or
/// manifest list: the digest of the list itself, not of a platform's image).
pub fn skopeo_inspect_raw_digest(image_ref: &str) -> String {
    manifest_digest(&skopeo_inspect_raw(image_ref))
}

/// `skopeo copy --src-tls-verify=false --dest-tls-verify=false EXTRA... SRC DST`.
/// `src`/`dst` need their transport (`docker://`, `dir:`, `oci:`,
/// `docker-archive:`...). Typical extras: `--all`, `--preserve-digests`,
/// `--dest-creds=user:pw`. Err carries skopeo's stderr.
pub fn skopeo_copy(src: &str, dst: &str, extra_args: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra_args);
    args.push(src);
    args.push(dst);
    skopeo(&args).map(|_| ())
}
