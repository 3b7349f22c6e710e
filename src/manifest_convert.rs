//! Docker media types to OCI ones, for tools that read only OCI-typed entries of an
//! OCI layout (skopeo's and podman's `oci:` transport).
//!
//! This is the one place where ferry writes a manifest it did not receive: the
//! converted manifest is new JSON, so its digest differs from the image's digest in
//! the registry and signatures made for the original do not verify against it. It
//! is therefore only done on request (`export --oci --oci-media-types`). Configs and
//! layers are unchanged (same bytes, same digests): only their descriptors' media
//! types are rewritten.
//!
//! Pure functions: bytes in, bytes out.

use crate::digest::Digest;
use crate::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use serde_json::Value;
use std::collections::HashMap;

/// Docker's config and layer media types and their OCI equivalents.
const DESCRIPTOR_TYPES: &[(&str, &str)] = &[
    (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.v1.tar",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
    (DOCKER_MANIFEST, OCI_MANIFEST),
    (DOCKER_MANIFEST_LIST, OCI_INDEX),
];

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}", crate::tr!("manifest is not valid JSON: {}", "清单不是有效的 JSON: {}", .0))]
    Json(#[from] serde_json::Error),
    #[error("{}", crate::tr!("{} is not a docker manifest or manifest list", "{} 不是 docker 清单或清单列表", .0))]
    NotDocker(String),
    #[error(
        "{}",
        crate::i18n::t("manifest is not a JSON object", "清单不是 JSON 对象")
    )]
    NotAnObject,
}

/// A converted manifest: its new bytes, media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
    pub digest: Digest,
}

impl Converted {
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Whether a manifest of this media type is converted (a docker manifest or list).
pub fn is_docker(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == DOCKER_MANIFEST_LIST
}

/// The OCI media type for a docker one; other types (OCI's, artifacts') are kept.
pub fn oci_media_type(media_type: &str) -> Option<&'static str> {
    DESCRIPTOR_TYPES
        .iter()
        .find(|(docker, _)| *docker == media_type)
        .map(|(_, oci)| *oci)
}

/// A docker v2 schema 2 manifest as an OCI image manifest: the same config and
/// layers, with OCI media types.
pub fn image_manifest(bytes: &[u8]) -> Result<Converted, ConvertError> {
    let mut doc: Value = serde_json::from_slice(bytes)?;
    expect_type(&doc, DOCKER_MANIFEST)?;
    let obj = doc.as_object_mut().ok_or(ConvertError::NotAnObject)?;
    obj.insert("mediaType".into(), Value::from(OCI_MANIFEST));
    if let Some(config) = obj.get_mut("config") {
        retype(config);
    }
    if let Some(Value::Array(layers)) = obj.get_mut("layers") {
        layers.iter_mut().for_each(retype);
    }
    finish(&doc, OCI_MANIFEST)
}

/// A docker manifest list as an OCI index. `children` maps each child manifest's
/// old digest to its converted form (convert the children first); a child not in
/// the map (not carried, e.g. left out by a platform filter) keeps its descriptor.
pub fn index(
    bytes: &[u8],
    children: &HashMap<Digest, Converted>,
) -> Result<Converted, ConvertError> {
    let mut doc: Value = serde_json::from_slice(bytes)?;
    expect_type(&doc, DOCKER_MANIFEST_LIST)?;
    let obj = doc.as_object_mut().ok_or(ConvertError::NotAnObject)?;
    obj.insert("mediaType".into(), Value::from(OCI_INDEX));
    if let Some(Value::Array(manifests)) = obj.get_mut("manifests") {
        for m in manifests.iter_mut() {
            let old = m
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok());
            let Some(new) = old.and_then(|d| children.get(&d)) else {
                continue;
            };
            if let Some(d) = m.as_object_mut() {
                d.insert("mediaType".into(), Value::from(new.media_type));
                d.insert("digest".into(), Value::from(new.digest.to_string()));
                d.insert("size".into(), Value::from(new.size()));
            }
        }
    }
    finish(&doc, OCI_INDEX)
}

/// Refuses anything but the docker type asked for (by its `mediaType` field, which
/// docker manifests and lists always carry).
fn expect_type(doc: &Value, wanted: &str) -> Result<(), ConvertError> {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(t) if t == wanted => Ok(()),
        Some(t) => Err(ConvertError::NotDocker(t.to_string())),
        None => Err(ConvertError::NotDocker(String::new())),
    }
}

/// Gives a descriptor its OCI media type, when it has a docker one.
fn retype(descriptor: &mut Value) {
    let oci = descriptor
        .get("mediaType")
        .and_then(Value::as_str)
        .and_then(oci_media_type);
    if let (Some(oci), Some(d)) = (oci, descriptor.as_object_mut()) {
        d.insert("mediaType".into(), Value::from(oci));
    }
}

fn finish(doc: &Value, media_type: &'static str) -> Result<Converted, ConvertError> {
    let bytes = serde_json::to_vec(doc)?;
    let digest = Digest::of(&bytes);
    Ok(Converted {
        bytes,
        media_type,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const LAYER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const FOREIGN: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn docker_manifest() -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"{CONFIG}"}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,"digest":"{LAYER}"}},
            {{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":5,"digest":"{FOREIGN}","urls":["https://example.com/l"]}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_docker_manifest_becomes_an_oci_manifest_with_the_same_blobs() {
        let original = docker_manifest();
        let c = image_manifest(&original).unwrap();
        assert_eq!(c.media_type, OCI_MANIFEST);
        assert_eq!(c.digest, Digest::of(&c.bytes));
        assert_ne!(
            c.digest,
            Digest::of(&original),
            "a new manifest, a new digest"
        );
        // ferry's own parser reads it as an OCI image with the same config and layers.
        let (raw, parsed) = crate::manifest::RawManifest::new(c.bytes.clone(), None).unwrap();
        assert_eq!(raw.media_type, OCI_MANIFEST);
        let crate::manifest::Parsed::Image { config, layers } = parsed else {
            panic!("an image manifest");
        };
        assert_eq!(config.digest.to_string(), CONFIG);
        assert_eq!(
            config.media_type,
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].digest.to_string(), LAYER);
        assert_eq!(
            layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            layers[1].media_type,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        );
        assert_eq!(layers[1].urls, vec!["https://example.com/l".to_string()]);
        assert!(!String::from_utf8(c.bytes).unwrap().contains("vnd.docker"));
        // Deterministic: the same input gives the same digest.
        assert_eq!(image_manifest(&original).unwrap().digest, c.digest);
    }

    #[test]
    fn a_manifest_list_becomes_an_index_pointing_at_the_converted_children() {
        let child = docker_manifest();
        let child_digest = Digest::of(&child);
        let absent = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","size":{},"digest":"{child_digest}","platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","size":10,"digest":"{absent}","platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            child.len()
        );
        let converted_child = image_manifest(&child).unwrap();
        let children = HashMap::from([(child_digest, converted_child.clone())]);
        let c = index(list.as_bytes(), &children).unwrap();
        assert_eq!(c.media_type, OCI_INDEX);
        let (_, parsed) = crate::manifest::RawManifest::new(c.bytes.clone(), None).unwrap();
        let crate::manifest::Parsed::Index { manifests } = parsed else {
            panic!("an index");
        };
        assert_eq!(manifests[0].digest, converted_child.digest);
        assert_eq!(manifests[0].size, converted_child.size());
        assert_eq!(manifests[0].media_type, OCI_MANIFEST);
        assert_eq!(
            manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/amd64"
        );
        // A child that is not carried keeps its descriptor.
        assert_eq!(manifests[1].digest.to_string(), absent);
        assert_eq!(manifests[1].media_type, DOCKER_MANIFEST);
    }

    #[test]
    fn oci_and_garbage_are_refused() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{}},"layers":[]}}"#
        );
        assert!(matches!(
            image_manifest(oci.as_bytes()),
            Err(ConvertError::NotDocker(_))
        ));
        assert!(matches!(
            index(&docker_manifest(), &HashMap::new()),
            Err(ConvertError::NotDocker(_))
        ));
        assert!(matches!(
            image_manifest(b"{oops"),
            Err(ConvertError::Json(_))
        ));
        assert!(image_manifest(b"[1]").is_err());
        assert_eq!(
            oci_media_type("application/vnd.dev.cosign.simplesigning.v1+json"),
            None
        );
        assert!(is_docker(DOCKER_MANIFEST_LIST) && !is_docker(OCI_INDEX));
    }
}
