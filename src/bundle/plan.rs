//! What a bundle being written will hold: its images and the unique blobs they
//! need, planned before any byte is fetched (the data files are laid out from it),
//! which images failed once the copy is done, and the meta built from all that.
//! Pure data and functions: the I/O is the bundle sink's.

use super::base::{BaseBlob, BaseSet};
use super::meta::{self, BlobKind, BlobRecord, DataFile, Failure, Meta};
use super::writer::FinishedFile;
use crate::digest::Digest;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One image of the bundle.
#[derive(Clone, Debug)]
pub struct PlannedImage {
    /// The image as the meta records it.
    pub record: meta::Image,
    /// The repository the copy engine writes it to: its own source repository, so
    /// that each image's blobs are read from where that image lives.
    pub target: String,
    /// Its manifests: the top one first, then its children.
    pub manifests: Vec<Digest>,
    /// Configs and layers of it and its children, each once.
    pub blobs: Vec<Digest>,
}

/// One blob the bundle needs.
#[derive(Clone, Debug)]
pub struct PlannedBlob {
    pub size: u64,
    pub kind: BlobKind,
    /// The images that need it (indexes into [`BundlePlan::images`]), in order.
    pub images: Vec<usize>,
    /// The base bundle that carried it, when this is an increment.
    pub base: Option<BaseBlob>,
}

/// Every image of the bundle and every blob they need.
#[derive(Clone, Debug, Default)]
pub struct BundlePlan {
    pub images: Vec<PlannedImage>,
    pub blobs: BTreeMap<Digest, PlannedBlob>,
}

/// What the meta says besides the images and the blobs.
#[derive(Clone, Debug)]
pub struct MetaDraft {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    pub kind: meta::Kind,
    pub bases: Vec<meta::BaseRef>,
    pub platforms: Vec<String>,
    pub selections: Vec<meta::Selection>,
    /// References that failed before anything was resolved (list lines, malformed
    /// or unresolvable references), recorded ahead of the images that failed later.
    pub failed: Vec<Failure>,
}

impl BundlePlan {
    /// Adds an image with its manifests (`(digest, size)`, top first) and its
    /// configs and layers; a blob that a base bundle carried is left to it, except
    /// manifests, which every bundle carries.
    pub fn add_image(
        &mut self,
        image: PlannedImage,
        manifest_sizes: &[u64],
        blobs: &[(Digest, u64, BlobKind)],
        bases: &BaseSet,
    ) {
        let i = self.images.len();
        for (digest, size) in image.manifests.iter().zip(manifest_sizes) {
            self.note(digest, *size, BlobKind::Manifest, i, None);
        }
        for (digest, size, kind) in blobs {
            self.note(digest, *size, *kind, i, bases.get(digest).cloned());
        }
        self.images.push(image);
    }

    fn note(
        &mut self,
        digest: &Digest,
        size: u64,
        kind: BlobKind,
        image: usize,
        base: Option<BaseBlob>,
    ) {
        let entry = self.blobs.entry(digest.clone()).or_insert(PlannedBlob {
            size,
            kind,
            images: Vec::new(),
            base,
        });
        if entry.images.last() != Some(&image) {
            entry.images.push(image);
        }
    }

    /// The blobs the data files hold (all but those left to a base), with sizes.
    pub fn stored(&self) -> Vec<(Digest, u64)> {
        self.blobs
            .iter()
            .filter(|(_, b)| b.base.is_none())
            .map(|(d, b)| (d.clone(), b.size))
            .collect()
    }

    /// Whether the data files hold `digest` (it is planned and not left to a base).
    pub fn is_stored(&self, digest: &Digest) -> bool {
        self.blobs.get(digest).is_some_and(|b| b.base.is_none())
    }

    /// The configs and layers of image `i` that the data files hold.
    pub fn fetched_by(&self, i: usize) -> impl Iterator<Item = &Digest> + '_ {
        self.images
            .get(i)
            .into_iter()
            .flat_map(|img| img.blobs.iter())
            .filter(|d| self.is_stored(d))
    }

    /// Bytes of everything image `i` needs (manifests, configs, layers).
    pub fn image_bytes(&self, i: usize) -> u64 {
        let Some(img) = self.images.get(i) else {
            return 0;
        };
        img.manifests
            .iter()
            .chain(&img.blobs)
            .filter_map(|d| self.blobs.get(d))
            .fold(0u64, |t, b| t.saturating_add(b.size))
    }

    /// Reconcile: the images that did not make it into the bundle, with why. An
    /// image made it when the engine wrote its top manifest (`written`: target and
    /// digest; children and blobs come first); the reason of one that did not is the
    /// error of one of its blobs in its repository (`errors`).
    pub fn failed_images(
        &self,
        written: &HashSet<(String, Digest)>,
        errors: &HashMap<(Digest, String), String>,
    ) -> BTreeMap<usize, String> {
        let mut failed = BTreeMap::new();
        for (i, img) in self.images.iter().enumerate() {
            let Some(top) = img.manifests.first() else {
                continue;
            };
            if written.contains(&(img.target.clone(), top.clone())) {
                continue;
            }
            let why = img
                .blobs
                .iter()
                .find_map(|d| errors.get(&(d.clone(), img.target.clone())))
                .cloned()
                .unwrap_or_else(|| {
                    crate::tr!(
                        "not all of its blobs could be saved",
                        "并非所有数据块都已保存"
                    )
                });
            failed.insert(i, why);
        }
        failed
    }

    /// The blobs still needed once `failed` images are dropped.
    pub fn keep(&self, failed: &BTreeMap<usize, String>) -> HashSet<Digest> {
        self.blobs
            .iter()
            .filter(|(_, b)| b.images.iter().any(|i| !failed.contains_key(i)))
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// Images that made it, not counting referrers (signatures and the like).
    pub fn saved_images(&self, failed: &BTreeMap<usize, String>) -> usize {
        self.images
            .iter()
            .enumerate()
            .filter(|(i, img)| img.record.subject.is_none() && !failed.contains_key(i))
            .count()
    }

    /// The meta of the finished bundle: the images that made it, every blob they
    /// need (in a data file, with its zstd frame offset, or left to a base), and
    /// every failure. `file_of` names the data file holding a blob.
    pub fn meta(
        &self,
        draft: &MetaDraft,
        failed: &BTreeMap<usize, String>,
        files: &[FinishedFile],
        file_of: &dyn Fn(&Digest) -> Option<String>,
        offsets: &HashMap<Digest, u64>,
    ) -> Meta {
        let keep = self.keep(failed);
        let mut failures = draft.failed.clone();
        failures.extend(failed.iter().filter_map(|(i, why)| {
            self.images.get(*i).map(|img| Failure {
                reference: img.record.reference.clone(),
                reason: why.clone(),
            })
        }));
        let images = self
            .images
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains_key(i))
            .map(|(_, img)| img.record.clone())
            .collect();
        let blobs = self
            .blobs
            .iter()
            .filter(|(d, _)| keep.contains(*d))
            .map(|(d, b)| BlobRecord {
                digest: d.clone(),
                size: b.size,
                kind: b.kind,
                file: if b.base.is_none() { file_of(d) } else { None },
                base: b.base.as_ref().map(|x| x.bundle.to_string()),
                repository: match &b.base {
                    Some(x) => x.repository.clone(),
                    None => b
                        .images
                        .first()
                        .and_then(|i| self.images.get(*i))
                        .map(|img| img.record.repository.clone())
                        .unwrap_or_default(),
                },
                offset: offsets.get(d).copied(),
            })
            .collect();
        let mut meta = Meta {
            format: meta::FORMAT_NAME.into(),
            version: meta::OLDEST_FORMAT_VERSION,
            tool: concat!("ferry ", env!("CARGO_PKG_VERSION")).into(),
            created: draft.created.clone(),
            name: draft.name.clone(),
            kind: draft.kind,
            bases: draft.bases.clone(),
            platforms: draft.platforms.clone(),
            files: files
                .iter()
                .map(|f| DataFile {
                    name: f.name.clone(),
                    size: f.size,
                    sha256: f.sha256.clone().unwrap_or_default(),
                    headers_sha256: f.headers_sha256.clone(),
                    blobs: f.blobs,
                })
                .collect(),
            images,
            blobs,
            failed: failures,
            selections: draft.selections.clone(),
        };
        // Version 1 unless a file needs 2: older ferry versions read the rest.
        meta.version = meta.version_needed();
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn image(name: &str, target: &str, manifests: &[&str], blobs: &[&str]) -> PlannedImage {
        PlannedImage {
            record: meta::Image {
                reference: name.into(),
                registry: "r".into(),
                repository: target.into(),
                tag: Some("1".into()),
                digest: d(manifests[0]),
                media_type: crate::manifest::OCI_MANIFEST.into(),
                target: None,
                subject: None,
                children: vec![],
            },
            target: target.into(),
            manifests: manifests.iter().map(|m| d(m)).collect(),
            blobs: blobs.iter().map(|b| d(b)).collect(),
        }
    }

    fn plan(bases: &BaseSet) -> BundlePlan {
        let mut p = BundlePlan::default();
        p.add_image(
            image("a", "ra", &["ma"], &["c1", "shared"]),
            &[10],
            &[
                (d("c1"), 100, BlobKind::Config),
                (d("shared"), 1000, BlobKind::Layer),
            ],
            bases,
        );
        p.add_image(
            image("b", "rb", &["mb"], &["shared", "own"]),
            &[20],
            &[
                (d("shared"), 1000, BlobKind::Layer),
                (d("own"), 500, BlobKind::Layer),
            ],
            bases,
        );
        p
    }

    fn draft() -> MetaDraft {
        MetaDraft {
            name: "img_full_1".into(),
            created: "2026-01-01T00:00:00Z".into(),
            kind: meta::Kind::Full,
            bases: vec![],
            platforms: vec![],
            selections: vec![],
            failed: vec![Failure {
                reference: "bad ref".into(),
                reason: "invalid".into(),
            }],
        }
    }

    #[test]
    fn blobs_are_planned_once_with_every_image_that_needs_them() {
        let p = plan(&BaseSet::default());
        assert_eq!(p.blobs.len(), 5, "2 manifests, c1, shared, own");
        assert_eq!(p.blobs[&d("shared")].images, vec![0, 1]);
        assert_eq!(p.stored().len(), 5);
        assert_eq!(p.image_bytes(0), 10 + 100 + 1000);
        assert_eq!(p.fetched_by(1).count(), 2);
    }

    #[test]
    fn an_increment_leaves_configs_and_layers_to_its_base_but_not_manifests() {
        let mut bases = BaseSet::default();
        let mut base_meta = Meta::parse(
            format!(
                "format: ferry-bundle\nversion: 1\ntool: t\ncreated: c\nname: old\nkind: full\nfiles: []\nimages: []\nblobs:\n- digest: {}\n  size: 1000\n  kind: layer\n  repository: ra\n- digest: {}\n  size: 10\n  kind: manifest\n  repository: ra\n",
                d("shared"),
                d("ma")
            )
            .as_bytes(),
            "m",
        )
        .unwrap();
        base_meta.name = "old".into();
        bases.add(&base_meta, "00".into());
        let p = plan(&bases);
        assert!(!p.is_stored(&d("shared")));
        assert!(p.is_stored(&d("ma")), "manifests travel in every bundle");
        assert_eq!(p.stored().len(), 4);
        assert_eq!(p.fetched_by(0).collect::<Vec<_>>(), vec![&d("c1")]);
        let m = p.meta(
            &draft(),
            &BTreeMap::new(),
            &[],
            &|_| Some("f1".into()),
            &HashMap::new(),
        );
        let shared = m.blobs.iter().find(|b| b.digest == d("shared")).unwrap();
        assert_eq!(
            (shared.file.as_deref(), shared.base.as_deref()),
            (None, Some("old"))
        );
    }

    #[test]
    fn a_failed_image_drops_only_the_blobs_no_other_image_needs() {
        let p = plan(&BaseSet::default());
        // b's own layer could not be fetched from rb; a was written.
        let written: HashSet<(String, Digest)> = [("ra".to_string(), d("ma"))].into();
        let errors: HashMap<(Digest, String), String> =
            [((d("own"), "rb".to_string()), "not found".to_string())].into();
        let failed = p.failed_images(&written, &errors);
        assert_eq!(failed, BTreeMap::from([(1, "not found".to_string())]));
        let keep = p.keep(&failed);
        assert!(keep.contains(&d("shared")) && keep.contains(&d("c1")));
        assert!(!keep.contains(&d("own")) && !keep.contains(&d("mb")));
        assert_eq!(p.saved_images(&failed), 1);
        let m = p.meta(
            &draft(),
            &failed,
            &[],
            &|_| Some("f1".into()),
            &HashMap::new(),
        );
        assert_eq!(m.images.len(), 1);
        assert_eq!(m.blobs.len(), 3);
        let failures: Vec<&str> = m.failed.iter().map(|f| f.reference.as_str()).collect();
        assert_eq!(failures, vec!["bad ref", "b"], "early failures first");
        // An image whose top manifest was never written fails even without an error.
        let failed = p.failed_images(&HashSet::new(), &HashMap::new());
        assert_eq!(failed.len(), 2);
    }
}
