//! Manifest media types and a read-only view of manifest JSON.
//!
//! Manifests are parsed only to learn what they reference; the bytes that are stored
//! and pushed are always the raw bytes the registry served (their digest is their
//! identity, and signatures point at it).

use crate::digest::Digest;
use serde::Deserialize;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The Accept header for manifest requests: all four formats ferry round-trips.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Registries must not serve larger manifests (the distribution spec's limit);
/// refusing them bounds memory against a hostile registry.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}", crate::tr!("manifest is not valid JSON: {}", "清单不是有效的 JSON: {}", .0))]
    Json(#[from] serde_json::Error),
    #[error("{}", crate::tr!("unsupported manifest media type {:?} (ferry handles docker v2 schema 2, docker manifest lists, OCI manifests and OCI indexes)", "不支持的清单媒体类型 {:?} (ferry 支持 docker v2 schema 2、docker manifest list、OCI 清单和 OCI 索引)", .0))]
    UnsupportedMediaType(String),
    #[error(
        "{}",
        crate::i18n::t(
            "manifest has neither layers nor manifests and no known media type",
            "清单既没有 layers 也没有 manifests, 媒体类型也未知"
        )
    )]
    UnknownShape,
    #[error("{}", crate::tr!("manifest is {} bytes, over the 4 MiB limit", "清单有 {} 字节, 超过 4 MiB 上限", .0))]
    TooLarge(usize),
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Foreign (non-distributable) layers name URLs instead of living in the registry.
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Docker's foreign layers (Windows base layers) are not served by the registry,
    /// so they are neither fetched nor pushed, as skopeo does.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() && self.media_type.contains("foreign")
    }
}

#[derive(Deserialize)]
struct RawJson {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Clone, Debug)]
pub enum Parsed {
    /// A single-platform image: its config and layers.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// An OCI index or docker manifest list: child manifests.
    Index { manifests: Vec<Descriptor> },
}

/// A manifest as served: exact bytes, its media type and digest.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl RawManifest {
    /// Parses `bytes` to find the media type (JSON field first, then the HTTP
    /// Content-Type) and check that ferry understands it.
    pub fn new(
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<(RawManifest, Parsed), ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let raw: RawJson = serde_json::from_slice(&bytes)?;
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| {
                !c.is_empty() && c != "application/json" && c != "application/octet-stream"
            });
        let media_type = match (raw.media_type.clone(), content_type) {
            (Some(m), _) => m,
            (None, Some(c)) => c,
            (None, None) => {
                if raw.manifests.is_some() {
                    OCI_INDEX.to_string()
                } else if raw.layers.is_some() {
                    OCI_MANIFEST.to_string()
                } else {
                    return Err(ManifestError::UnknownShape);
                }
            }
        };
        if raw.schema_version == Some(1) {
            return Err(ManifestError::UnsupportedMediaType(format!(
                "{media_type} (docker schema 1)"
            )));
        }
        let parsed = match media_type.as_str() {
            DOCKER_MANIFEST | OCI_MANIFEST => match (raw.config, raw.layers) {
                (Some(config), layers) => Parsed::Image {
                    config,
                    layers: layers.unwrap_or_default(),
                },
                _ => return Err(ManifestError::UnknownShape),
            },
            DOCKER_MANIFEST_LIST | OCI_INDEX => Parsed::Index {
                manifests: raw.manifests.ok_or(ManifestError::UnknownShape)?,
            },
            other => return Err(ManifestError::UnsupportedMediaType(other.to_string())),
        };
        let digest = Digest::of(&bytes);
        Ok((
            RawManifest {
                bytes,
                media_type,
                digest,
            },
            parsed,
        ))
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn image_and_index_are_recognised_and_bytes_kept() {
        let img = format!(
            "{{ \"schemaVersion\":2, \"mediaType\":\"{DOCKER_MANIFEST}\",\n \"config\":{{\"mediaType\":\"x\",\"digest\":\"{D}\",\"size\":3}},\"layers\":[{{\"mediaType\":\"y\",\"digest\":\"{D}\",\"size\":5}}]}}"
        );
        let (raw, parsed) = RawManifest::new(img.clone().into_bytes(), None).unwrap();
        assert_eq!(raw.bytes, img.as_bytes());
        assert_eq!(raw.media_type, DOCKER_MANIFEST);
        assert!(matches!(parsed, Parsed::Image { ref layers, .. } if layers.len() == 1));

        let idx = format!("{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"{OCI_MANIFEST}\",\"digest\":\"{D}\",\"size\":7,\"platform\":{{\"os\":\"linux\",\"architecture\":\"arm64\"}}}}]}}");
        let (raw, parsed) = RawManifest::new(idx.into_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(raw.media_type, OCI_INDEX);
        match parsed {
            Parsed::Index { manifests } => assert_eq!(
                manifests[0].platform.as_ref().unwrap().to_string(),
                "linux/arm64"
            ),
            _ => panic!("expected index"),
        }
    }

    #[test]
    fn unknown_types_and_garbage_are_errors() {
        assert!(RawManifest::new(b"{not json".to_vec(), None).is_err());
        let odd =
            b"{\"schemaVersion\":2,\"mediaType\":\"application/x-weird\",\"layers\":[]}".to_vec();
        assert!(matches!(
            RawManifest::new(odd, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            RawManifest::new(big, None),
            Err(ManifestError::TooLarge(_))
        ));
    }
}
