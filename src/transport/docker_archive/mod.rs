//! `docker-archive:FILE[:REF]`: the `docker save` / `docker load` tarball.
//!
//! - [`DockerArchiveSource`] reads legacy archives and docker ≥ 25's (which carry
//!   an OCI layout inside, whose manifest bytes it serves as they are).
//! - [`ArchiveWriter`] writes one in docker ≥ 25's layout to any non-seeking
//!   `Write`: a file, the docker engine's load request, `ctr images import`'s
//!   stdin. [`DockerArchiveSink`] is the file sink over it.
//! - [`scan`] finds the entries of a tar file from its headers alone.

pub mod scan;
pub mod sink;
pub mod source;
pub mod writer;

pub use sink::DockerArchiveSink;
pub use source::DockerArchiveSource;
pub use writer::ArchiveWriter;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::manifest::Parsed;
    use crate::transport::image_names::RefNaming;
    use crate::transport::oci_layout::tests_support::MemSource;
    use crate::transport::{BlobRef, ImageSink, ImageSource, SharedSource};
    use futures_util::StreamExt;
    use std::sync::Arc;

    const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    async fn drain(src: &dyn ImageSource, blob: &BlobRef) -> std::io::Result<Vec<u8>> {
        let mut s = src.open_blob("x", blob, 0).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    fn blob_ref(bytes: &[u8], media_type: &str) -> BlobRef {
        BlobRef {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            media_type: media_type.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sink_then_source_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        let mut mem = MemSource::default();
        let (m1, c1, l1) = mem.image("one", DOCKER_CONFIG);
        let (m2, c2, l2) = mem.image("two", "application/vnd.oci.image.config.v1+json");
        let mem: SharedSource = Arc::new(mem);
        let sink = DockerArchiveSink::create(&file, RefNaming::RepositoryTag).unwrap();
        assert!(!sink.supports_index());
        assert_eq!(sink.concurrency_limit(), Some(1));
        // Blobs in any order; the shared one once.
        for b in [&l2, &c1, &l1, &c2, &l1] {
            sink.put_blob("r", b, mem.clone(), "r").await.unwrap();
        }
        assert!(sink.has_blob("r", &c2).await.unwrap());
        sink.put_manifest("127.0.0.1:5000/library/base", Some("1"), &m1)
            .await
            .unwrap();
        sink.put_manifest("127.0.0.1:5000/library/base", Some("2"), &m2)
            .await
            .unwrap();
        sink.put_manifest("other/name", None, &m2).await.unwrap();
        assert!(!file.exists(), "written as FILE.partial until finish");
        sink.finish().await.unwrap();
        assert!(file.exists());
        assert!(!dir.path().join("a.tar.partial").exists());

        let src = DockerArchiveSource::open(&file, None).unwrap();
        assert_eq!(src.images().len(), 2);
        assert_eq!(src.selected(), None);
        let (raw, _) = src.get_manifest("library/base", "1").await.unwrap();
        assert_eq!(raw.bytes, m1.bytes);
        let (raw, _) = src
            .get_manifest("127.0.0.1:5000/library/base", "2")
            .await
            .unwrap();
        assert_eq!(
            raw.bytes, m2.bytes,
            "served from the OCI layout, byte-exact"
        );
        let (raw, _) = src.get_manifest("x", m1.digest.as_str()).await.unwrap();
        assert_eq!(raw.digest, m1.digest);
        assert_eq!(drain(&src, &l2).await.unwrap(), b"layer two");
        assert!(src.get_manifest("library/base", "3").await.is_err());
        assert_eq!(src.list_tags("library/base").await.unwrap(), vec!["1", "2"]);
        // REF picks one image; then any tag lookup means it.
        let one = DockerArchiveSource::open(&file, Some("127.0.0.1:5000/library/base:2")).unwrap();
        assert_eq!(one.selected(), Some(1));
        assert_eq!(
            one.get_manifest("a", "b").await.unwrap().0.digest,
            m2.digest
        );
        assert!(DockerArchiveSource::open(&file, Some("nope:1")).is_err());
        assert_eq!(
            DockerArchiveSource::open(&file, Some("@0"))
                .unwrap()
                .selected(),
            Some(0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signatures_and_indexes_are_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sig.tar");
        let mut mem = MemSource::default();
        let (sig, c, l) = mem.image("sig", "application/vnd.dev.cosign.simplesigning.v1+json");
        let mem: SharedSource = Arc::new(mem);
        let sink = DockerArchiveSink::create(&file, RefNaming::Verbatim).unwrap();
        for b in [&c, &l] {
            sink.put_blob("r", b, mem.clone(), "r").await.unwrap();
        }
        let err = sink.put_manifest("r", Some("sig"), &sig).await.unwrap_err();
        assert!(err.to_string().contains("not a container image"), "{err}");
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            crate::manifest::OCI_INDEX
        );
        let (index, _) = crate::manifest::RawManifest::new(index.into_bytes(), None).unwrap();
        assert!(sink.put_manifest("r", Some("i"), &index).await.is_err());
        // A blob whose bytes are not its digest gives the archive up.
        let liar: SharedSource = Arc::new(MemSource::default());
        assert!(sink
            .put_blob("r", &blob_ref(b"x", ""), liar, "r")
            .await
            .is_err());
        assert!(sink.finish().await.is_err());
        drop(sink);
        assert!(!file.exists());
        assert!(!dir.path().join("sig.tar.partial").exists());
    }

    /// A legacy archive (`docker save` before 25, skopeo): config `<hex>.json`,
    /// layers `<id>/layer.tar`, one plain and one gzip, one through a symlink.
    fn legacy_archive(config: &[u8], plain: &[u8], gzip: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        let config_name = format!("{}.json", Digest::of(config).hex());
        add(&config_name, config);
        add("aaa/layer.tar", plain);
        add("bbb.tar", gzip);
        let manifest = format!(
            r#"[{{"Config":"{config_name}","RepoTags":["app:1"],"Layers":["aaa/layer.tar","ccc/layer.tar"]}}]"#
        );
        add("manifest.json", manifest.as_bytes());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "ccc/layer.tar", "../bbb.tar")
            .unwrap();
        b.into_inner().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_archives_get_a_synthesised_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("legacy.tar");
        let config = br#"{"os":"linux","architecture":"amd64"}"#;
        let plain = b"plain tar bytes".to_vec();
        let gzip = [&[0x1f, 0x8b][..], b"compressed"].concat();
        std::fs::write(&file, legacy_archive(config, &plain, &gzip)).unwrap();
        let src = DockerArchiveSource::open(&file, None).unwrap();
        assert_eq!(src.selected(), Some(0));
        let (raw, parsed) = src.get_manifest("library/app", "1").await.unwrap();
        assert_eq!(raw.media_type, crate::manifest::DOCKER_MANIFEST);
        let Parsed::Image { config: c, layers } = parsed else {
            panic!("an image")
        };
        assert_eq!(c.digest, Digest::of(config));
        assert_eq!(layers[0].digest, Digest::of(&plain));
        assert_eq!(layers[0].media_type, source::DOCKER_LAYER_TAR);
        assert_eq!(layers[1].digest, Digest::of(&gzip));
        assert_eq!(layers[1].media_type, source::DOCKER_LAYER_GZIP);
        // The same bytes every time, and by digest.
        let (again, _) = src.get_manifest("x", raw.digest.as_str()).await.unwrap();
        assert_eq!(again.bytes, raw.bytes);
        assert_eq!(drain(&src, &blob_ref(&gzip, "")).await.unwrap(), gzip);
        assert_eq!(drain(&src, &blob_ref(config, "")).await.unwrap(), config);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_headers_and_lying_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("forged.tar");
        let config = br#"{"os":"linux","architecture":"amd64"}"#;
        let mut bytes = legacy_archive(config, b"p", b"g");
        // The first header claims 2^64 - 1 bytes.
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("{}.json", Digest::of(config).hex()))
            .unwrap();
        h.set_mode(0o644);
        h.set_size(u64::MAX);
        h.set_cksum();
        bytes[..512].copy_from_slice(h.as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        let err = DockerArchiveSource::open(&file, None).err().unwrap();
        assert!(
            err.to_string().contains("more than the file holds"),
            "{err}"
        );

        // A blobs/sha256 entry whose bytes are not its name's digest.
        let named = Digest::of(b"the real bytes");
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            (named.blob_path(), &b"the fake bytes"[..]),
            ("manifest.json".to_string(), &b"[]"[..]),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        std::fs::write(&file, b.into_inner().unwrap()).unwrap();
        let src = DockerArchiveSource::open(&file, None).unwrap();
        assert!(drain(&src, &blob_ref(b"the real bytes", "")).await.is_err());
    }
}
