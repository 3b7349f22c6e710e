//! [`ArchiveWriter`]: writes a `docker save` archive in docker ≥ 25's layout to any
//! `Write`, without seeking, so the same code streams an archive into a file, into
//! the docker engine's `POST /images/load` body, or into `ctr images import`'s
//! stdin. Blob entries are appended as blobs arrive (their sizes are known from
//! the descriptors); the tables of contents (`manifest.json`, `index.json`,
//! `oci-layout`, `repositories`) are written by [`ArchiveWriter::finish`].
//!
//! The archive it writes:
//!
//! ```text
//! blobs/sha256/<hex>   every config, layer and image manifest, once
//! index.json           an OCI index: one entry per image name (untagged images: one entry)
//! manifest.json        [{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers": [...]}]
//! oci-layout           {"imageLayoutVersion":"1.0.0"}
//! repositories         {"<repository>": {"<tag>": "<hex of the top layer>"}}
//! ```
//!
//! `docker load` reads `manifest.json`; containerd and skopeo (≥ 1.10) can read the
//! OCI layout, whose manifest entries are the exact manifest bytes of the source.

use crate::digest::Digest;
use crate::manifest::{RawManifest, OCI_INDEX};
use std::collections::HashMap;
use std::io::{Read, Write};

/// The tar block size; entries are padded to it.
const BLOCK: usize = 512;
/// containerd's annotation for an image's full name in an OCI index.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation for an image's name (docker writes the tag only).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// One image of the archive: a `manifest.json` entry and its `index.json` entries.
struct ArchiveImage {
    manifest: Digest,
    manifest_size: u64,
    media_type: String,
    config: Digest,
    layers: Vec<Digest>,
    repo_tags: Vec<String>,
}

/// Writes a docker archive; see the module docs. After any error the writer is
/// spoilt (a tar entry may be half written): every later call fails, and what was
/// written must be thrown away (the file sink removes its `.partial` file, a
/// stream into an engine is aborted).
pub struct ArchiveWriter<W: Write + Send> {
    out: W,
    /// Blobs already in the archive, with their sizes.
    blobs: HashMap<Digest, u64>,
    images: Vec<ArchiveImage>,
    started: bool,
    spoilt: bool,
}

fn invalid_input(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

fn invalid_data(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A ustar header for a regular file or directory entry (mtime 0, so the same
/// images always give the same archive).
fn header(name: &str, size: u64, dir: bool) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_mtime(0);
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_cksum();
    Ok(h)
}

/// Zero bytes that pad an entry of `size` bytes to a whole block.
fn padding(size: u64) -> usize {
    // The remainder is < 512, so the casts cannot truncate.
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 {
        0
    } else {
        BLOCK - rest
    }
}

/// `blobs/sha256/<hex>`: where a blob sits in the archive (and in an OCI layout).
pub fn blob_entry(digest: &Digest) -> String {
    digest.blob_path()
}

/// The repository and tag of a `RepoTags` name (`host:port/repo:tag`).
fn repository_and_tag(name: &str) -> Option<(&str, &str)> {
    match crate::reference::split_short(name) {
        (repo, Some(tag)) if !repo.is_empty() && !tag.is_empty() && !name.contains('@') => {
            Some((repo, tag))
        }
        _ => None,
    }
}

impl<W: Write + Send> ArchiveWriter<W> {
    pub fn new(w: W) -> Self {
        ArchiveWriter {
            out: w,
            blobs: HashMap::new(),
            images: Vec::new(),
            started: false,
            spoilt: false,
        }
    }

    /// Whether the blob is in the archive already (each blob is written once).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// Whether an error left a tar entry half written: the archive can only be
    /// thrown away. (Errors that wrote nothing, such as an image whose blobs are
    /// missing, leave the writer usable.)
    pub fn is_spoilt(&self) -> bool {
        self.spoilt
    }

    /// How many images [`add_image`](Self::add_image) has taken so far.
    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    fn check_usable(&self) -> std::io::Result<()> {
        if self.spoilt {
            return Err(std::io::Error::other(crate::i18n::t(
                "the archive is incomplete after an earlier error",
                "之前的错误使归档不完整",
            )));
        }
        Ok(())
    }

    /// Writes `blobs/` and `blobs/sha256/` once, before the first blob, as docker does.
    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.started = true;
            for dir in ["blobs/", "blobs/sha256/"] {
                self.out.write_all(header(dir, 0, true)?.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Appends a small entry held in memory (a table of contents).
    fn write_file(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.out
            .write_all(header(name, bytes.len() as u64, false)?.as_bytes())?;
        self.out.write_all(bytes)?;
        self.out
            .write_all(&[0u8; BLOCK][..padding(bytes.len() as u64)])?;
        Ok(())
    }

    /// Appends the blob `digest` of `size` bytes read from `reader`, checking the
    /// bytes against both as they are copied: a reader that ends early, runs past
    /// `size` or whose bytes have another digest is an error (and spoils the
    /// writer). A blob already in the archive is not written again (and `reader`
    /// is not read).
    pub fn add_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.check_usable()?;
        if let Some(&have) = self.blobs.get(digest) {
            if have != size {
                return Err(invalid_input(crate::tr!(
                    "blob {digest} is {size} bytes here but {have} bytes in the archive",
                    "数据块 {digest} 此处为 {size} 字节, 但归档中为 {have} 字节"
                )));
            }
            return Ok(());
        }
        self.spoilt = true;
        self.start()?;
        self.out
            .write_all(header(&blob_entry(digest), size, false)?.as_bytes())?;
        crate::transport::file_io::copy_checked(reader, &mut self.out, digest, size)?;
        self.out.write_all(&[0u8; BLOCK][..padding(size)])?;
        self.blobs.insert(digest.clone(), size);
        self.spoilt = false;
        Ok(())
    }

    /// Adds an image: writes its manifest's exact bytes as a blob and records its
    /// `manifest.json` and `index.json` entries. Its config and layers must have
    /// been added before (a load archive without them fails in the engine, so the
    /// mistake is caught here). `repo_tags` are full references with a tag, as
    /// `docker save` writes them (`127.0.0.1:5000/library/base:1`); a name given
    /// to an earlier image moves to this one, and the same manifest added twice is
    /// one image with both images' names.
    pub fn add_image(
        &mut self,
        repo_tags: Vec<String>,
        manifest: &RawManifest,
        config: &Digest,
        layers: &[Digest],
    ) -> std::io::Result<()> {
        self.check_usable()?;
        let actual = Digest::of(&manifest.bytes);
        if actual != manifest.digest {
            return Err(invalid_data(crate::tr!(
                "manifest bytes have digest {actual}, expected {}",
                "清单内容摘要为 {actual}, 应为 {}",
                manifest.digest
            )));
        }
        if let Some(bad) = repo_tags.iter().find(|t| repository_and_tag(t).is_none()) {
            return Err(invalid_input(crate::tr!(
                "{bad:?} is not a repository:tag name for a docker archive",
                "{bad:?} 不是 docker 归档可用的 repository:tag 名称"
            )));
        }
        if let Some(missing) = std::iter::once(config)
            .chain(layers)
            .find(|d| !self.blobs.contains_key(d))
        {
            return Err(invalid_input(crate::tr!(
                "image {}: blob {missing} was not added to the archive before its manifest",
                "镜像 {}: 数据块 {missing} 没有在其清单之前加入归档",
                manifest.digest
            )));
        }
        let size = manifest.bytes.len() as u64;
        self.add_blob(&manifest.digest, size, &mut &manifest.bytes[..])?;
        for image in &mut self.images {
            image.repo_tags.retain(|t| !repo_tags.contains(t));
        }
        if let Some(same) = self
            .images
            .iter_mut()
            .find(|i| i.manifest == manifest.digest)
        {
            same.repo_tags.extend(repo_tags);
            return Ok(());
        }
        self.images.push(ArchiveImage {
            manifest: manifest.digest.clone(),
            manifest_size: size,
            media_type: manifest.media_type.clone(),
            config: config.clone(),
            layers: layers.to_vec(),
            repo_tags,
        });
        Ok(())
    }

    /// `manifest.json`: what `docker load` reads.
    fn manifest_json(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "RepoTags")]
            repo_tags: &'a [String],
            #[serde(rename = "Layers")]
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = self
            .images
            .iter()
            .map(|i| Entry {
                config: blob_entry(&i.config),
                repo_tags: &i.repo_tags,
                layers: i.layers.iter().map(blob_entry).collect(),
            })
            .collect();
        serde_json::to_vec(&entries)
    }

    /// `index.json`: the OCI layout's entries, named as docker ≥ 25 names them (the
    /// full name for containerd, the tag as `ref.name`).
    fn index_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut manifests = Vec::new();
        for image in &self.images {
            let entry = serde_json::json!({
                "mediaType": image.media_type,
                "digest": image.manifest,
                "size": image.manifest_size,
            });
            if image.repo_tags.is_empty() {
                manifests.push(entry.clone());
            }
            for name in &image.repo_tags {
                let full = crate::reference::Reference::parse(name)
                    .map(|r| r.to_string())
                    .unwrap_or_else(|_| name.clone());
                let tag = repository_and_tag(name).map_or("", |(_, t)| t);
                let mut entry = entry.clone();
                entry["annotations"] =
                    serde_json::json!({ IMAGE_NAME_ANNOTATION: full, REF_NAME_ANNOTATION: tag });
                manifests.push(entry);
            }
        }
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
    }

    /// `repositories`: the legacy table (repository → tag → top layer), which
    /// older tools read when `manifest.json` is missing.
    fn repositories_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut table: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, &str>> =
            Default::default();
        for image in &self.images {
            let top = image.layers.last().unwrap_or(&image.config);
            for name in &image.repo_tags {
                if let Some((repo, tag)) = repository_and_tag(name) {
                    table.entry(repo).or_default().insert(tag, top.hex());
                }
            }
        }
        serde_json::to_vec(&table)
    }

    /// Writes the tables of contents and the end of the archive, flushes, and
    /// hands back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.check_usable()?;
        self.start()?;
        let manifest = self.manifest_json().map_err(std::io::Error::other)?;
        let index = self.index_json().map_err(std::io::Error::other)?;
        let repositories = self.repositories_json().map_err(std::io::Error::other)?;
        self.write_file("index.json", &index)?;
        self.write_file("manifest.json", &manifest)?;
        self.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        self.write_file("repositories", &repositories)?;
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(layer: &[u8], config: &[u8]) -> RawManifest {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":{},"digest":"{}"}}]}}"#,
            crate::manifest::DOCKER_MANIFEST,
            config.len(),
            Digest::of(config),
            layer.len(),
            Digest::of(layer)
        );
        RawManifest::new(text.into_bytes(), None).unwrap().0
    }

    fn entries(archive: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(archive);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                (name, bytes)
            })
            .collect()
    }

    #[test]
    fn writes_docker25_layout_readable_by_tar() {
        let layer = b"layer bytes".to_vec();
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let m = image(&layer, &config);
        let mut w = ArchiveWriter::new(Vec::new());
        // Any order, and a second add is a no-op.
        w.add_blob(&Digest::of(&layer), layer.len() as u64, &mut &layer[..])
            .unwrap();
        w.add_blob(&Digest::of(&config), config.len() as u64, &mut &config[..])
            .unwrap();
        w.add_blob(&Digest::of(&layer), layer.len() as u64, &mut &b""[..])
            .unwrap();
        w.add_image(
            vec!["127.0.0.1:5000/library/base:1".into()],
            &m,
            &Digest::of(&config),
            &[Digest::of(&layer)],
        )
        .unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % BLOCK, 0);
        let e = entries(&out);
        assert_eq!(e[&Digest::of(&layer).blob_path()], layer);
        assert_eq!(e[&m.digest.blob_path()], m.bytes);
        let manifest: serde_json::Value = serde_json::from_slice(&e["manifest.json"]).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": Digest::of(&config).blob_path(),
                "RepoTags": ["127.0.0.1:5000/library/base:1"],
                "Layers": [Digest::of(&layer).blob_path()],
            }])
        );
        let index: serde_json::Value = serde_json::from_slice(&e["index.json"]).unwrap();
        assert_eq!(index["manifests"][0]["digest"], m.digest.as_str());
        assert_eq!(
            index["manifests"][0]["annotations"][IMAGE_NAME_ANNOTATION],
            "127.0.0.1:5000/library/base:1"
        );
        assert_eq!(
            index["manifests"][0]["annotations"][REF_NAME_ANNOTATION],
            "1"
        );
        let repos: serde_json::Value = serde_json::from_slice(&e["repositories"]).unwrap();
        assert_eq!(
            repos["127.0.0.1:5000/library/base"]["1"],
            Digest::of(&layer).hex()
        );
        assert!(e.contains_key("oci-layout"));
    }

    #[test]
    fn wrong_bytes_short_or_long_blobs_spoil_the_writer() {
        let d = Digest::of(b"hello");
        let mut w = ArchiveWriter::new(Vec::new());
        assert!(w.add_blob(&d, 5, &mut &b"hellO"[..]).is_err());
        // Spoilt: even a good blob is refused now, and so is finishing.
        assert!(w.add_blob(&d, 5, &mut &b"hello"[..]).is_err());
        assert!(w.finish().is_err());

        let mut w = ArchiveWriter::new(Vec::new());
        let err = w.add_blob(&d, 5, &mut &b"hell"[..]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        let mut w = ArchiveWriter::new(Vec::new());
        assert!(w.add_blob(&d, 5, &mut &b"hello!"[..]).is_err());
    }

    #[test]
    fn an_image_needs_its_blobs_and_names_move() {
        let layer = b"l".to_vec();
        let config = b"{}".to_vec();
        let m = image(&layer, &config);
        let mut w = ArchiveWriter::new(Vec::new());
        w.add_blob(&Digest::of(&config), 2, &mut &config[..])
            .unwrap();
        assert!(w
            .add_image(
                vec!["a:1".into()],
                &m,
                &Digest::of(&config),
                &[Digest::of(&layer)]
            )
            .is_err());
        w.add_blob(&Digest::of(&layer), 1, &mut &layer[..]).unwrap();
        assert!(w
            .add_image(
                vec!["no-tag@sha256:x".into()],
                &m,
                &Digest::of(&config),
                &[Digest::of(&layer)]
            )
            .is_err());
        w.add_image(
            vec!["a:1".into()],
            &m,
            &Digest::of(&config),
            &[Digest::of(&layer)],
        )
        .unwrap();
        w.add_image(
            vec!["a:2".into()],
            &m,
            &Digest::of(&config),
            &[Digest::of(&layer)],
        )
        .unwrap();
        assert_eq!(w.image_count(), 1);
        let out = w.finish().unwrap();
        let e = entries(&out);
        let manifest: serde_json::Value = serde_json::from_slice(&e["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["a:1", "a:2"]));
        let index: serde_json::Value = serde_json::from_slice(&e["index.json"]).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(
            index["manifests"][0]["annotations"][IMAGE_NAME_ANNOTATION],
            "docker.io/library/a:1"
        );
    }
}
