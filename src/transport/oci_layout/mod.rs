//! `oci:DIR[:REF]`: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), as skopeo, crane, umoci and containerd read and write it.
//!
//! Images are named by the `org.opencontainers.image.ref.name` annotation of their
//! `index.json` entry. skopeo writes the tag alone (`v1`); ferry's export wrote a
//! full `repository:tag`. The source accepts both (see
//! [`image_names`](crate::transport::image_names)); the sink writes what its
//! [`RefNaming`](crate::transport::image_names::RefNaming) says.
//!
//! Every path in the layout comes from a digest that has been checked against
//! the grammar `sha256:` + 64 lowercase hex, so no name from `index.json` or a
//! manifest can lead outside DIR.

pub mod sink;
pub mod source;

pub use sink::OciLayoutSink;
pub use source::OciLayoutSource;

use crate::digest::Digest;
use std::collections::BTreeMap;

/// The annotation that names an image inside a layout (`skopeo copy oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The contents of `oci-layout`.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// `index.json` is a few KB per image; this bounds memory against a hostile one.
pub const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// An `index.json` entry as the source reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutEntry {
    /// The `ref.name` annotation, if any.
    pub name: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// The parts of `index.json` the source needs: entries whose digest is not
/// `sha256:` + 64 lowercase hex are refused (the digest becomes a path).
pub fn parse_index(bytes: &[u8]) -> Result<Vec<LayoutEntry>, String> {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        digest: String,
        size: u64,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    index
        .manifests
        .into_iter()
        .map(|mut d| {
            let digest = d.digest.parse::<Digest>().map_err(|e| e.to_string())?;
            Ok(LayoutEntry {
                name: d.annotations.remove(REF_NAME),
                digest,
                media_type: d.media_type,
                size: d.size,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_with_path_like_digests_are_refused() {
        let good = br#"{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":3,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#;
        let e = parse_index(good).unwrap();
        assert_eq!(e[0].name.as_deref(), Some("v1"));
        for bad in [
            "sha256:../../../../etc/passwd",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/../x",
        ] {
            let text =
                format!(r#"{{"manifests":[{{"mediaType":"m","digest":"{bad}","size":3}}]}}"#);
            assert!(parse_index(text.as_bytes()).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    //! A source held in memory, for the unit tests of sinks.
    use crate::digest::Digest;
    use crate::manifest::{Parsed, RawManifest};
    use crate::transport::{BlobRef, BlobStream, CheckedStream, ImageSource, Result};
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct MemSource {
        pub blobs: HashMap<Digest, Vec<u8>>,
        pub manifests: HashMap<String, Vec<u8>>,
    }

    impl MemSource {
        pub fn blob(&mut self, bytes: &[u8]) -> BlobRef {
            let digest = Digest::of(bytes);
            self.blobs.insert(digest.clone(), bytes.to_vec());
            BlobRef {
                digest,
                size: bytes.len() as u64,
                media_type: String::new(),
            }
        }

        /// A docker v2 schema 2 image of one layer; returns (manifest, config, layer).
        pub fn image(&mut self, seed: &str, config_type: &str) -> (RawManifest, BlobRef, BlobRef) {
            let config = self.blob(
                format!(r#"{{"os":"linux","architecture":"amd64","seed":"{seed}"}}"#).as_bytes(),
            );
            let layer = self.blob(format!("layer {seed}").as_bytes());
            let text = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{config_type}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#,
                crate::manifest::DOCKER_MANIFEST,
                config.size,
                config.digest,
                layer.size,
                layer.digest
            );
            let (raw, _) = RawManifest::new(text.into_bytes(), None).unwrap();
            self.manifests
                .insert(raw.digest.to_string(), raw.bytes.clone());
            (raw, config, layer)
        }
    }

    #[async_trait::async_trait]
    impl ImageSource for MemSource {
        fn describe(&self) -> String {
            "mem:".into()
        }
        async fn list_tags(&self, _repository: &str) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        async fn get_manifest(&self, _r: &str, reference: &str) -> Result<(RawManifest, Parsed)> {
            let bytes = self.manifests.get(reference).cloned().unwrap_or_default();
            Ok(RawManifest::new(bytes, None).unwrap())
        }
        async fn open_blob(&self, _r: &str, blob: &BlobRef, _offset: u64) -> Result<BlobStream> {
            let bytes = self.blobs.get(&blob.digest).cloned().unwrap_or_default();
            let stream: BlobStream = Box::pin(futures_util::stream::iter(vec![Ok(
                bytes::Bytes::from(bytes),
            )]));
            Ok(CheckedStream::new(stream, blob.digest.clone(), blob.size, "mem".into()).boxed())
        }
    }
}

#[cfg(test)]
mod round_trip_tests {
    use super::tests_support::MemSource;
    use super::*;
    use crate::transport::image_names::RefNaming;
    use crate::transport::{BlobRef, ImageSink, ImageSource, SharedSource};
    use futures_util::StreamExt;
    use std::sync::Arc;

    async fn drain(source: &OciLayoutSource, blob: &BlobRef) -> std::io::Result<Vec<u8>> {
        let mut s = source.open_blob("x", blob, 0).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sink_then_source_round_trip_and_keep_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut mem = MemSource::default();
        let (m1, c1, l1) = mem.image("one", "application/vnd.docker.container.image.v1+json");
        let (m2, c2, l2) = mem.image("two", "application/vnd.oci.image.config.v1+json");
        let mem: SharedSource = Arc::new(mem);

        let sink = OciLayoutSink::create(dir.path(), RefNaming::RepositoryTag).unwrap();
        for b in [&l1, &c1] {
            assert!(!sink.has_blob("a/b", b).await.unwrap());
            sink.put_blob("a/b", b, mem.clone(), "a/b").await.unwrap();
        }
        sink.put_manifest("127.0.0.1:5000/a/b", Some("1"), &m1)
            .await
            .unwrap();
        sink.finish().await.unwrap();

        // A second run adds an image, another by digest only, and keeps the first.
        let sink = OciLayoutSink::create(dir.path(), RefNaming::Verbatim).unwrap();
        assert!(sink.has_blob("a/b", &l1).await.unwrap());
        for b in [&c2, &l2] {
            sink.put_blob("c/d", b, mem.clone(), "c/d").await.unwrap();
        }
        sink.put_manifest("c/d", Some("v2"), &m2).await.unwrap();
        sink.put_manifest("c/d", None, &m1).await.unwrap();
        sink.finish().await.unwrap();

        let src = OciLayoutSource::open(dir.path()).unwrap();
        let names: Vec<_> = src.entries().iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            vec![
                Some("127.0.0.1:5000/a/b:1".to_string()),
                Some("v2".to_string())
            ],
            "an untagged manifest already named keeps its one entry"
        );
        let (raw, _) = src.get_manifest("a/b", "1").await.unwrap();
        assert_eq!(raw.bytes, m1.bytes);
        let (raw, _) = src.get_manifest("anything", "v2").await.unwrap();
        assert_eq!(raw.bytes, m2.bytes);
        assert_eq!(raw.media_type, m2.media_type);
        let (raw, _) = src.get_manifest("x", m2.digest.as_str()).await.unwrap();
        assert_eq!(raw.digest, m2.digest);
        assert_eq!(drain(&src, &l2).await.unwrap(), b"layer two");
        assert_eq!(
            src.repositories().await.unwrap(),
            Some(vec!["127.0.0.1:5000/a/b".to_string()])
        );
        assert_eq!(src.list_tags("a/b").await.unwrap(), vec!["1", "v2"]);
        // No temporary files are left behind.
        let stray: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(stray.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damaged_blobs_are_rewritten_and_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let mut mem = MemSource::default();
        let (m1, c1, l1) = mem.image("one", "application/vnd.docker.container.image.v1+json");
        let mem: SharedSource = Arc::new(mem);
        let sink = OciLayoutSink::create(dir.path(), RefNaming::Verbatim).unwrap();
        for b in [&l1, &c1] {
            sink.put_blob("a", b, mem.clone(), "a").await.unwrap();
        }
        sink.put_manifest("a", Some("v1"), &m1).await.unwrap();
        sink.finish().await.unwrap();

        // Same length, other bytes: the source fails the stream at its end.
        let layer = dir.path().join(l1.digest.blob_path());
        std::fs::write(&layer, b"layer 0ne").unwrap();
        let src = OciLayoutSource::open(dir.path()).unwrap();
        assert!(drain(&src, &l1).await.is_err());
        // A damaged manifest is refused.
        let manifest = dir.path().join(m1.digest.blob_path());
        let mut bytes = m1.bytes.clone();
        bytes.push(b' ');
        std::fs::write(&manifest, &bytes).unwrap();
        assert!(src.get_manifest("a", "v1").await.is_err());

        // The next run finds both damaged and rewrites them.
        let sink = OciLayoutSink::create(dir.path(), RefNaming::Verbatim).unwrap();
        assert!(!sink.has_blob("a", &l1).await.unwrap());
        sink.put_blob("a", &l1, mem.clone(), "a").await.unwrap();
        sink.put_manifest("a", Some("v1"), &m1).await.unwrap();
        sink.finish().await.unwrap();
        assert_eq!(std::fs::read(&layer).unwrap(), b"layer one");
        assert_eq!(std::fs::read(&manifest).unwrap(), m1.bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(dir.path().join("oci-layout"), OCI_LAYOUT_FILE).unwrap();
        // A digest that is a path.
        std::fs::write(
            dir.path().join("index.json"),
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../etc/passwd","size":10,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#,
        )
        .unwrap();
        assert!(OciLayoutSource::open(dir.path()).is_err());
        // The sink refuses to add to it too.
        assert!(OciLayoutSink::create(dir.path(), RefNaming::Verbatim).is_err());

        // A blob that is a symbolic link out of the layout.
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), b"secret").unwrap();
        let digest = crate::digest::Digest::of(b"secret");
        std::os::unix::fs::symlink(outside.path(), dir.path().join(digest.blob_path())).unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        let src = OciLayoutSource::open(dir.path()).unwrap();
        let blob = BlobRef {
            digest: digest.clone(),
            size: 6,
            media_type: String::new(),
        };
        assert!(src.open_blob("x", &blob, 0).await.is_err());
        assert!(src.get_manifest("x", digest.as_str()).await.is_err());
        // A tag that looks like a path is only ever a name.
        assert!(src.get_manifest("x", "../../etc/passwd").await.is_err());

        // Not a layout at all.
        let empty = tempfile::tempdir().unwrap();
        assert!(OciLayoutSource::open(empty.path()).is_err());
    }
}
