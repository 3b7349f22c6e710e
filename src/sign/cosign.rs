//! `--require-cosign KEY.pub`: only images that carry a cosign signature made by
//! that key are pushed.
//!
//! cosign (key-based, "simple signing") stores an image's signatures as an OCI image
//! tagged `sha256-<hex>.sig` in the image's repository. Each of its layers is a
//! simple-signing JSON payload whose `critical.image.docker-manifest-digest` names
//! the signed manifest, and carries the annotation `dev.cosignproject.cosign/signature`:
//! the base64 of a DER ECDSA signature (P-256, SHA-256) over the payload's bytes.
//! An image passes when one such layer verifies with the key and names the image's
//! own manifest digest. Keyless signatures (Fulcio certificates) and Rekor entries
//! are not checked here: an air-gapped network cannot ask Rekor, and the policy is
//! "signed by this key".

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of an image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The largest payload read (real ones are a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 64 * 1024;

/// The tag cosign stores an image's signatures under.
pub fn signature_tag(image: &Digest) -> String {
    format!("sha256-{}.sig", image.hex())
}

#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("{}", crate::tr!("cannot read the cosign public key {}: {}", "无法读取 cosign 公钥 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    KeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("{} is not a cosign public key (PEM \"PUBLIC KEY\", ECDSA P-256, as `cosign generate-key-pair` writes cosign.pub): {}", "{} 不是 cosign 公钥 (PEM \"PUBLIC KEY\", ECDSA P-256, 即 `cosign generate-key-pair` 生成的 cosign.pub): {}", .path.display(), .detail))]
    KeyFormat { path: PathBuf, detail: String },
    #[error("{}", crate::tr!("not signed: no cosign signature ({}) is with it (a bundle carries signatures when saved with --with-referrers)", "未签名: 没有它的 cosign 签名 ({}) (镜像包需以 --with-referrers 保存才会携带签名)", .tag))]
    Unsigned { tag: String },
    #[error("{}", crate::tr!("no cosign signature by {} for it: {}", "没有由 {} 生成的 cosign 签名: {}", .key.display(), .reasons.join("; ")))]
    NoGoodSignature { key: PathBuf, reasons: Vec<String> },
    #[error("{}", crate::tr!("cannot read its cosign signature: {}", "无法读取其 cosign 签名: {}", .0))]
    Read(String),
}

/// Why one signature layer does not vouch for an image.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerProblem {
    /// The ECDSA signature does not verify with the key: another key, or the payload changed.
    WrongKeyOrChanged,
    /// The payload signs another manifest.
    OtherImage(String),
    /// Not a payload or signature ferry can read.
    Malformed(String),
}

impl std::fmt::Display for LayerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            LayerProblem::WrongKeyOrChanged => crate::tr!(
                "a signature that does not verify with this key (made by another key, or its payload was changed)",
                "一个无法用此公钥验证的签名 (由其他密钥生成, 或其内容被修改)"
            ),
            LayerProblem::OtherImage(d) => crate::tr!(
                "a signature for another manifest ({d})",
                "一个属于其他清单 ({d}) 的签名"
            ),
            LayerProblem::Malformed(why) => crate::tr!(
                "an unreadable signature ({why})",
                "一个无法读取的签名 ({why})"
            ),
        };
        f.write_str(&s)
    }
}

/// A cosign public key.
#[derive(Clone)]
pub struct CosignKey {
    pub path: PathBuf,
    key: p256::ecdsa::VerifyingKey,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignKey({})", self.path.display())
    }
}

impl CosignKey {
    pub fn load(path: &Path) -> Result<CosignKey, CosignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CosignError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&text, path)
    }

    pub fn from_pem(pem: &str, path: &Path) -> Result<CosignKey, CosignError> {
        let key = p256::PublicKey::from_public_key_pem(pem.trim()).map_err(|e| {
            CosignError::KeyFormat {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        Ok(CosignKey {
            path: path.to_path_buf(),
            key: key.into(),
        })
    }

    /// Checks one payload and its base64 signature for `image`.
    pub fn verify_payload(
        &self,
        payload: &[u8],
        signature_b64: &str,
        image: &Digest,
    ) -> Result<(), LayerProblem> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|e| LayerProblem::Malformed(format!("base64: {e}")))?;
        let sig = p256::ecdsa::Signature::from_der(&der)
            .map_err(|e| LayerProblem::Malformed(format!("DER: {e}")))?;
        // Some signers emit high-S signatures; ECDSA accepts both halves.
        let sig = sig.normalize_s().unwrap_or(sig);
        self.key
            .verify(payload, &sig)
            .map_err(|_| LayerProblem::WrongKeyOrChanged)?;
        // Only a verified payload is worth reading.
        let p: Payload = serde_json::from_slice(payload)
            .map_err(|e| LayerProblem::Malformed(format!("payload: {e}")))?;
        if p.critical.kind != PAYLOAD_TYPE {
            return Err(LayerProblem::Malformed(format!(
                "payload type {:?}",
                p.critical.kind
            )));
        }
        if p.critical.image.docker_manifest_digest != image.as_str() {
            return Err(LayerProblem::OtherImage(
                p.critical.image.docker_manifest_digest,
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// One simple-signing layer of a signature manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLayer {
    pub digest: Digest,
    pub size: u64,
    pub signature: String,
}

#[derive(Deserialize)]
struct SigManifest {
    #[serde(default)]
    layers: Vec<SigDescriptor>,
}

#[derive(Deserialize)]
struct SigDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// The signature layers of a cosign signature manifest (other layers are skipped).
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, String> {
    let m: SigManifest = serde_json::from_slice(manifest).map_err(|e| e.to_string())?;
    Ok(m.layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .filter_map(|l| {
            Some(SignatureLayer {
                digest: l.digest.parse().ok()?,
                size: l.size,
                signature: l.annotations.get(SIGNATURE_ANNOTATION)?.clone(),
            })
        })
        .collect())
}

/// Where the signatures of images are read from: a bundle, a registry, any source.
#[async_trait::async_trait]
pub trait SignatureSource: Send + Sync {
    /// The bytes of the cosign signature manifest of `image` (its `sha256-<hex>.sig`
    /// tag), checked against their digest; `None` when it has none.
    async fn signature_manifest(&self, image: &Digest) -> Result<Option<Vec<u8>>, String>;
    /// A payload blob of at most [`MAX_PAYLOAD`] bytes, checked against its digest.
    async fn payload(&self, layer: &SignatureLayer) -> Result<Vec<u8>, String>;
}

/// Whether `image` carries a cosign signature by `key` in `source`.
pub async fn check_image(
    key: &CosignKey,
    image: &Digest,
    source: &dyn SignatureSource,
) -> Result<(), CosignError> {
    let Some(manifest) = source
        .signature_manifest(image)
        .await
        .map_err(CosignError::Read)?
    else {
        return Err(CosignError::Unsigned {
            tag: signature_tag(image),
        });
    };
    let layers = signature_layers(&manifest).map_err(CosignError::Read)?;
    let mut reasons = Vec::new();
    for layer in &layers {
        if layer.size > MAX_PAYLOAD {
            reasons.push(
                LayerProblem::Malformed(crate::tr!(
                    "payload of {} bytes",
                    "内容有 {} 字节",
                    layer.size
                ))
                .to_string(),
            );
            continue;
        }
        let payload = source.payload(layer).await.map_err(CosignError::Read)?;
        match key.verify_payload(&payload, &layer.signature, image) {
            Ok(()) => return Ok(()),
            Err(p) => reasons.push(p.to_string()),
        }
    }
    if reasons.is_empty() {
        reasons.push(crate::tr!(
            "{} holds no simple-signing layer",
            "{} 中没有 simple-signing 层",
            signature_tag(image)
        ));
    }
    Err(CosignError::NoGoodSignature {
        key: key.path.clone(),
        reasons,
    })
}

/// Checks that bytes are the blob `digest` names.
pub fn checked(bytes: Vec<u8>, digest: &Digest) -> Result<Vec<u8>, String> {
    let actual = Digest::of(&bytes);
    if &actual == digest {
        Ok(bytes)
    } else {
        Err(crate::tr!(
            "{digest} holds bytes with digest {actual}",
            "{digest} 的内容摘要为 {actual}"
        ))
    }
}

/// The images to hold back once some are refused: each refused image, and every
/// image that refers to (has as subject) a manifest of one held back, transitively.
/// `images` gives each image's own manifest digests (top first) and its subject.
pub fn hold_back(
    images: &[(Vec<Digest>, Option<Digest>)],
    refused: &HashSet<usize>,
) -> HashSet<usize> {
    let mut held: HashSet<usize> = refused.clone();
    let mut digests: HashSet<&Digest> = refused
        .iter()
        .filter_map(|&i| images.get(i))
        .flat_map(|(own, _)| own.iter())
        .collect();
    loop {
        let more: Vec<usize> = images
            .iter()
            .enumerate()
            .filter(|(i, (_, subject))| {
                !held.contains(i) && subject.as_ref().is_some_and(|s| digests.contains(s))
            })
            .map(|(i, _)| i)
            .collect();
        if more.is_empty() {
            return held;
        }
        for i in more {
            held.insert(i);
            if let Some((own, _)) = images.get(i) {
                digests.extend(own.iter());
            }
        }
    }
}

/// Signatures read from a bundle: the `.sig` image that travelled with each image
/// (`--with-referrers`), its payload from the data files, or, when a base bundle
/// carried the payload, from the target registry (upload checked that the base's
/// blobs are there; the bytes are checked against their digest either way).
pub struct BundleSignatures<'a> {
    pub bundle: &'a crate::bundle::reader::Bundle,
    pub index: &'a HashMap<Digest, crate::bundle::reader::BlobLocation>,
    /// The target and the repository prefix rule, for payloads left to a base.
    pub target: Option<(
        &'a crate::registry::Client,
        &'a crate::engine::upload::Destination,
    )>,
}

#[async_trait::async_trait]
impl SignatureSource for BundleSignatures<'_> {
    async fn signature_manifest(&self, image: &Digest) -> Result<Option<Vec<u8>>, String> {
        let tag = signature_tag(image);
        let Some(sig) = self
            .bundle
            .meta
            .images
            .iter()
            .find(|i| i.subject.as_ref() == Some(image) && i.tag.as_deref() == Some(&tag))
        else {
            return Ok(None);
        };
        let bytes = self
            .bundle
            .manifest_bytes(&sig.digest, self.index)
            .map_err(|e| e.to_string())?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(crate::tr!("{tag}: manifest too large", "{tag}: 清单过大"));
        }
        checked(bytes, &sig.digest).map(Some)
    }

    async fn payload(&self, layer: &SignatureLayer) -> Result<Vec<u8>, String> {
        if let Some(loc) = self.index.get(&layer.digest) {
            let bytes = crate::bundle::reader::read_blob(loc, MAX_PAYLOAD)
                .map_err(|e| format!("{}: {e}", layer.digest))?;
            return checked(bytes, &layer.digest);
        }
        let rec = self
            .bundle
            .meta
            .blobs
            .iter()
            .find(|b| b.digest == layer.digest);
        match (rec, self.target) {
            (Some(rec), Some((client, dst))) if rec.base.is_some() => {
                let repo = dst.repository(&rec.repository);
                fetch_small_blob(client, &repo, &layer.digest, MAX_PAYLOAD).await
            }
            _ => Err(crate::tr!(
                "its payload {} is not in the bundle",
                "其内容 {} 不在镜像包中",
                layer.digest
            )),
        }
    }
}

/// Signatures read from a registry repository (sync, copy from a registry).
pub struct RegistrySignatures<'a> {
    pub client: &'a crate::registry::Client,
    pub repository: &'a str,
}

#[async_trait::async_trait]
impl SignatureSource for RegistrySignatures<'_> {
    async fn signature_manifest(&self, image: &Digest) -> Result<Option<Vec<u8>>, String> {
        match self
            .client
            .get_manifest(self.repository, &signature_tag(image))
            .await
        {
            Ok((raw, _)) => Ok(Some(raw.bytes.to_vec())),
            Err(crate::registry::RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn payload(&self, layer: &SignatureLayer) -> Result<Vec<u8>, String> {
        fetch_small_blob(self.client, self.repository, &layer.digest, MAX_PAYLOAD).await
    }
}

/// Reads a small blob whole from a registry, bounded, checked against its digest.
pub async fn fetch_small_blob(
    client: &crate::registry::Client,
    repository: &str,
    digest: &Digest,
    limit: u64,
) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt as _;
    let (resp, _) = client
        .get_blob(repository, digest, 0)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("{digest}: {e}"))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(crate::tr!(
                "{digest}: over {limit} bytes",
                "{digest}: 超过 {limit} 字节"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    checked(out, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A signature made by real cosign, published by the sigstore project as a test
    // fixture (sigstore-rs, src/cosign/signature_layers.rs): the key, the payload
    // cosign wrote for registry-testing.svc.lan/busybox and its signature.
    const REAL_KEY: &str = include_str!("../../tests/data/cosign/sigstore-rs.pub");
    const REAL_PAYLOAD: &[u8] = include_bytes!("../../tests/data/cosign/sigstore-rs.payload.json");
    const REAL_SIG: &str = include_str!("../../tests/data/cosign/sigstore-rs.sig");
    const REAL_DIGEST: &str =
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    // Another key from the same fixtures: a valid P-256 key that did not sign.
    const OTHER_KEY: &str = include_str!("../../tests/data/cosign/other.pub");

    fn key(pem: &str) -> CosignKey {
        CosignKey::from_pem(pem, Path::new("k.pub")).unwrap()
    }

    #[test]
    fn a_signature_made_by_real_cosign_verifies() {
        let digest: Digest = REAL_DIGEST.parse().unwrap();
        assert_eq!(
            key(REAL_KEY).verify_payload(REAL_PAYLOAD, REAL_SIG, &digest),
            Ok(())
        );
    }

    #[test]
    fn a_changed_payload_or_another_key_is_refused() {
        let digest: Digest = REAL_DIGEST.parse().unwrap();
        let mut tampered = REAL_PAYLOAD.to_vec();
        let at = tampered.iter().position(|&b| b == b'f').unwrap();
        tampered[at] = b'e';
        assert_eq!(
            key(REAL_KEY).verify_payload(&tampered, REAL_SIG, &digest),
            Err(LayerProblem::WrongKeyOrChanged)
        );
        assert_eq!(
            key(OTHER_KEY).verify_payload(REAL_PAYLOAD, REAL_SIG, &digest),
            Err(LayerProblem::WrongKeyOrChanged)
        );
        // The right signature does not vouch for another image.
        let other = Digest::of(b"another manifest");
        assert!(matches!(
            key(REAL_KEY).verify_payload(REAL_PAYLOAD, REAL_SIG, &other),
            Err(LayerProblem::OtherImage(_))
        ));
        assert!(matches!(
            key(REAL_KEY).verify_payload(REAL_PAYLOAD, "not base64!", &digest),
            Err(LayerProblem::Malformed(_))
        ));
    }

    #[test]
    fn keys_that_are_not_p256_public_keys_are_refused() {
        assert!(CosignKey::from_pem("nope", Path::new("k")).is_err());
        assert!(CosignKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            Path::new("k")
        )
        .is_err());
    }

    #[test]
    fn signature_layers_are_read_from_a_cosign_manifest() {
        let payload = Digest::of(b"p");
        let m = serde_json::json!({
            "schemaVersion": 2,
            "layers": [
                {"mediaType": SIMPLE_SIGNING, "digest": payload.as_str(), "size": 1,
                 "annotations": {SIGNATURE_ANNOTATION: "MEUC"}},
                {"mediaType": "application/octet-stream", "digest": payload.as_str(), "size": 1},
                {"mediaType": SIMPLE_SIGNING, "digest": payload.as_str(), "size": 1}
            ]
        });
        let layers = signature_layers(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            layers,
            vec![SignatureLayer {
                digest: payload,
                size: 1,
                signature: "MEUC".into()
            }]
        );
        assert!(signature_layers(b"[").is_err());
    }

    #[test]
    fn referrers_of_refused_images_are_held_back_too() {
        let d = |s: &str| Digest::of(s.as_bytes());
        let images = vec![
            (vec![d("a"), d("a-child")], None),
            (vec![d("b")], None),
            (vec![d("sig-a")], Some(d("a"))),
            (vec![d("sig-of-sig-a")], Some(d("sig-a"))),
            (vec![d("att-a-child")], Some(d("a-child"))),
            (vec![d("sig-b")], Some(d("b"))),
        ];
        let held = hold_back(&images, &HashSet::from([0]));
        assert_eq!(held, HashSet::from([0, 2, 3, 4]));
    }
}
