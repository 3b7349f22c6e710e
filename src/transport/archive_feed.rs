//! What the docker engine and containerd sinks share: a `docker load` archive
//! ([`ArchiveWriter`]) written into a blocking `Write` (a pipe into an HTTP body,
//! `ctr`'s stdin) as the copy engine hands over blobs and manifests. The writer
//! blocks, so each step runs on a blocking thread; blobs are read from their
//! (checked) streams as they are written, never held whole.

use super::docker_archive::ArchiveWriter;
use super::file_io::StreamRead;
use super::{BlobRef, BlobStream};
use crate::digest::Digest;
use crate::manifest::{Parsed, RawManifest};
use std::io::{self, Write};

/// A docker archive being written into `W`; see the module docs.
pub struct ArchiveFeed<W: Write + Send + 'static> {
    /// `None` after a step failed or was cancelled (the archive may be half
    /// written), and after [`ArchiveFeed::finish`].
    writer: Option<ArchiveWriter<W>>,
}

fn spoilt() -> io::Error {
    io::Error::other(crate::i18n::t(
        "the archive is incomplete after an earlier error",
        "之前的错误使归档不完整",
    ))
}

/// The config and (non-foreign) layers of an image manifest; an index cannot go
/// into a docker archive.
pub fn image_parts(manifest: &RawManifest) -> Result<(Digest, Vec<Digest>), String> {
    let parsed = RawManifest::new(manifest.bytes.clone(), Some(&manifest.media_type))
        .map_err(|e| e.to_string())?
        .1;
    match parsed {
        Parsed::Image { config, layers } => Ok((
            config.digest,
            layers
                .into_iter()
                .filter(|l| !l.is_foreign())
                .map(|l| l.digest)
                .collect(),
        )),
        Parsed::Index { .. } => Err(crate::tr!(
            "{} is an index (manifest list): a load archive takes one platform's image",
            "{} 是索引 (清单列表): 载入归档只能放单一平台的镜像",
            manifest.digest
        )),
    }
}

impl<W: Write + Send + 'static> ArchiveFeed<W> {
    pub fn new(out: W) -> ArchiveFeed<W> {
        ArchiveFeed {
            writer: Some(ArchiveWriter::new(out)),
        }
    }

    /// Whether the blob is in the archive already.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.writer.as_ref().is_some_and(|w| w.has_blob(digest))
    }

    /// How many images the archive holds so far.
    pub fn image_count(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.image_count())
    }

    /// Runs one step of the writer on a blocking thread. A step that fails (or
    /// whose future is dropped) leaves the feed spoilt.
    async fn step<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut ArchiveWriter<W>) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let mut writer = self.writer.take().ok_or_else(spoilt)?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut writer);
            (writer, result)
        })
        .await
        .map_err(io::Error::other)?;
        if result.is_ok() {
            self.writer = Some(writer);
        }
        result
    }

    /// Appends a blob from its stream (checked by the writer against its digest and
    /// size as it is copied); returns the bytes written, 0 when it was there.
    pub async fn put_blob(&mut self, blob: &BlobRef, stream: BlobStream) -> io::Result<u64> {
        if self.has_blob(&blob.digest) {
            return Ok(0);
        }
        let (digest, size) = (blob.digest.clone(), blob.size);
        let mut reader = StreamRead::new(tokio::runtime::Handle::current(), stream);
        self.step(move |w| w.add_blob(&digest, size, &mut reader))
            .await?;
        Ok(size)
    }

    /// Adds an image manifest under `repo_tags` (full references with a tag, used
    /// verbatim); its config and layers must be in the archive already.
    pub async fn put_image(
        &mut self,
        repo_tags: Vec<String>,
        manifest: &RawManifest,
    ) -> io::Result<()> {
        let (config, layers) =
            image_parts(manifest).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let manifest = manifest.clone();
        self.step(move |w| w.add_image(repo_tags, &manifest, &config, &layers))
            .await
    }

    /// Writes the archive's tables of contents and its end, then hands the output
    /// to `close` (on the same blocking thread), whose result it returns.
    pub async fn finish<T: Send + 'static>(
        &mut self,
        close: impl FnOnce(W) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let writer = self.writer.take().ok_or_else(spoilt)?;
        tokio::task::spawn_blocking(move || writer.finish().and_then(close))
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stream(bytes: &'static [u8]) -> BlobStream {
        Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(
            bytes,
        ))]))
    }

    fn blob(bytes: &[u8]) -> BlobRef {
        BlobRef {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            media_type: "application/octet-stream".into(),
        }
    }

    fn manifest(config: &[u8], layer: &[u8]) -> RawManifest {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{},"digest":"{}"}}]}}"#,
            crate::manifest::OCI_MANIFEST,
            config.len(),
            Digest::of(config),
            layer.len(),
            Digest::of(layer)
        );
        RawManifest::new(text.into_bytes(), None).unwrap().0
    }

    #[tokio::test]
    async fn blobs_then_image_then_finish_give_an_archive() {
        let mut feed = ArchiveFeed::new(Vec::new());
        assert_eq!(
            feed.put_blob(&blob(b"config"), stream(b"config"))
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            feed.put_blob(&blob(b"layer"), stream(b"layer"))
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            feed.put_blob(&blob(b"layer"), stream(b"layer"))
                .await
                .unwrap(),
            0
        );
        let m = manifest(b"config", b"layer");
        feed.put_image(vec!["127.0.0.1:5000/a/b:1".into()], &m)
            .await
            .unwrap();
        assert_eq!(feed.image_count(), 1);
        let out = feed.finish(Ok).await.unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&out[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
        assert!(names.contains(&m.digest.blob_path()), "{names:?}");
        // Finished: nothing more goes in.
        assert!(feed.put_blob(&blob(b"x"), stream(b"x")).await.is_err());
    }

    #[tokio::test]
    async fn a_bad_blob_spoils_the_feed() {
        let mut feed = ArchiveFeed::new(Vec::new());
        let mut wrong = blob(b"config");
        wrong.size = 6;
        assert!(feed.put_blob(&wrong, stream(b"cOnfig")).await.is_err());
        assert!(feed
            .put_blob(&blob(b"layer"), stream(b"layer"))
            .await
            .is_err());
        assert!(feed.finish(Ok).await.is_err());
    }

    #[tokio::test]
    async fn an_image_needs_its_blobs_and_an_index_is_refused() {
        let mut feed = ArchiveFeed::new(Vec::new());
        let m = manifest(b"config", b"layer");
        assert!(feed.put_image(vec!["a:1".into()], &m).await.is_err());
        let index = RawManifest::new(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
            None,
        )
        .unwrap()
        .0;
        assert!(image_parts(&index).is_err());
    }
}
