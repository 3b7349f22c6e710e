//! The Bundles screen: every bundle under the output folder, read from its meta (and
//! its data files' tar headers, for the manifests): images and their sizes, data
//! files, bases (the chain), failures, signature state, and what the bytes are —
//! layers left to base bundles, layers shared by several images, each image's own.

use crate::bundle::meta::Kind;
use crate::bundle::reader::{Bundle, VerifyLevel};
use crate::digest::Digest;
use crate::sign::Trust;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// How deep under the output folder metas are looked for (`DIR/YYYYMMDD/x_meta.yaml`
/// is depth 2; a folder of copied sticks may add one).
const MAX_DEPTH: usize = 3;
/// At most this many metas are read.
const MAX_BUNDLES: usize = 500;

#[derive(Clone, Debug, Serialize)]
pub struct BundleView {
    pub path: String,
    pub name: String,
    pub kind: String,
    pub created: String,
    pub tool: String,
    pub platforms: Vec<String>,
    pub bases: Vec<BaseView>,
    pub files: Vec<FileView>,
    pub data_bytes: u64,
    pub images: Vec<ImageView>,
    pub failed: Vec<(String, String)>,
    pub blob_count: usize,
    pub chart: Chart,
    pub signature: Signature,
    /// The data files do not match the meta (missing, wrong size): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    meta_sha256: String,
    /// The sha256 of each base's meta, as recorded.
    #[serde(skip)]
    base_shas: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BaseView {
    pub name: String,
    /// The meta of that base under the output folder, when found.
    pub path: Option<String>,
    /// The base found is the very one recorded (its meta's sha256 matches).
    pub matches: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileView {
    pub name: String,
    pub size: u64,
    pub present: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageView {
    pub reference: String,
    pub target: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub platforms: Vec<String>,
    pub referrers: usize,
    /// Bytes of its manifests, configs and layers, all told (None: manifests unreadable).
    pub total: Option<u64>,
    /// Carried by this bundle and needed by this image only.
    pub own: u64,
    /// Carried by this bundle and needed by other images too.
    pub shared: u64,
    /// Left to the base bundles.
    pub in_bases: u64,
}

/// The bytes of the images, by where they come from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Chart {
    pub in_bases: u64,
    pub shared: u64,
    pub own: Vec<(String, u64)>,
    /// Carried but not needed by any image's own manifests (signatures, SBOMs...).
    pub other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Signature {
    /// `unsigned`, `signed` (good; by a trusted key when a trust file is set),
    /// `untrusted` (good, but the trust file refuses the key) or `bad`.
    pub state: &'static str,
    /// Who signed, or why the signature is refused.
    pub detail: String,
    /// A trust file (cfg `trust:`) vouched for the signer.
    pub trusted: bool,
}

/// The signature state of a bundle (`<meta>.sig`), as `ferry ls` reports it:
/// checked against the trust file of cfg.yaml when there is one.
fn signature(meta_path: &Path, trust: Option<&Trust>) -> Signature {
    match crate::sign::state(meta_path, trust) {
        crate::sign::State::Unsigned => Signature {
            state: "unsigned",
            detail: crate::i18n::t("not signed", "未签名").into(),
            trusted: false,
        },
        crate::sign::State::Good(signer) => Signature {
            state: "signed",
            detail: if trust.is_some() {
                crate::tr!(
                    "signed by {signer}, trusted by {}",
                    "由 {signer} 签名, 受 {} 信任",
                    trust
                        .map(|t| t.path().display().to_string())
                        .unwrap_or_default()
                )
            } else {
                crate::tr!(
                    "signed by {signer} (no trust file in cfg.yaml: the key is not checked against allowed signers)",
                    "由 {signer} 签名 (cfg.yaml 中没有信任文件: 未对照允许的签名者检查该密钥)"
                )
            },
            trusted: trust.is_some(),
        },
        crate::sign::State::Untrusted(e) => Signature {
            state: "untrusted",
            detail: e.to_string(),
            trusted: false,
        },
        crate::sign::State::Bad(e) => Signature {
            state: "bad",
            detail: e.to_string(),
            trusted: false,
        },
    }
}

/// Describes bundles, remembering each by its meta's path and modification time
/// (reading the tar headers of a big bundle takes a moment).
#[derive(Default)]
pub struct Catalog {
    cache: Mutex<HashMap<PathBuf, (SystemTime, bool, BundleView)>>,
}

impl Catalog {
    /// Every bundle under `out`, newest first, with bases resolved among them.
    pub fn scan(&self, out: &Path, trust: Option<&Trust>) -> Vec<BundleView> {
        let mut metas = Vec::new();
        find_metas(out, 0, &mut metas);
        metas.sort();
        metas.truncate(MAX_BUNDLES);
        let chinese = crate::i18n::is_chinese();
        let mut views: Vec<BundleView> = Vec::new();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|p, _| metas.contains(p));
        for path in metas {
            let mtime = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            match cache.get(&path) {
                Some((t, lang, v)) if *t == mtime && *lang == chinese => views.push(v.clone()),
                _ => {
                    if let Some(v) = describe(&path) {
                        cache.insert(path.clone(), (mtime, chinese, v.clone()));
                        views.push(v);
                    }
                }
            }
        }
        drop(cache);
        let by_name: HashMap<String, (String, String)> = views
            .iter()
            .map(|v| (v.name.clone(), (v.path.clone(), v.meta_sha256.clone())))
            .collect();
        let mut out = views;
        for v in &mut out {
            // Not cached: the signature file or the trust file may change any time.
            v.signature = signature(Path::new(&v.path), trust);
            for (i, b) in v.bases.iter_mut().enumerate() {
                if let Some((path, sha)) = by_name.get(&b.name) {
                    b.path = Some(path.clone());
                    b.matches = v.base_shas.get(i) == Some(sha);
                }
            }
        }
        out.sort_by(|a, b| {
            crate::bundle::naming::creation_order(&b.name)
                .cmp(&crate::bundle::naming::creation_order(&a.name))
        });
        out
    }
}

fn find_metas(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        if found.len() >= MAX_BUNDLES {
            return;
        }
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth < MAX_DEPTH && !name.starts_with('.') {
            find_metas(&e.path(), depth + 1, found);
        } else if ft.is_file() && name.ends_with("_meta.yaml") {
            found.push(e.path());
        }
    }
}

/// One bundle; None when its meta is not a ferry bundle meta.
fn describe(path: &Path) -> Option<BundleView> {
    let bundle = Bundle::open(path).ok()?;
    let m = &bundle.meta;
    let sizes: HashMap<&Digest, u64> = m.blobs.iter().map(|b| (&b.digest, b.size)).collect();
    let from_base: HashSet<&Digest> = m
        .blobs
        .iter()
        .filter(|b| b.base.is_some())
        .map(|b| &b.digest)
        .collect();
    let (index, problem) = match bundle.verify(VerifyLevel::Size, &|_| true) {
        Ok(i) => (Some(i), None),
        Err(problems) => (
            None,
            Some(
                problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
    };
    let tops: Vec<&crate::bundle::meta::Image> =
        m.images.iter().filter(|i| i.subject.is_none()).collect();
    // Each image's blobs (manifests included), from its manifests in the bundle.
    let contents: Vec<Option<HashSet<Digest>>> = tops
        .iter()
        .map(|img| {
            let index = index.as_ref()?;
            let (manifests, blobs) =
                crate::engine::export::image_contents(&bundle, img, index).ok()?;
            Some(
                manifests
                    .into_iter()
                    .map(|r| r.digest)
                    .chain(blobs)
                    .collect(),
            )
        })
        .collect();
    let mut users: HashMap<&Digest, usize> = HashMap::new();
    for set in contents.iter().flatten() {
        for d in set {
            *users.entry(d).or_default() += 1;
        }
    }
    let mut chart = Chart::default();
    let mut images = Vec::new();
    for (img, set) in tops.iter().zip(&contents) {
        let own_digests: Vec<&Digest> = std::iter::once(&img.digest)
            .chain(img.children.iter().map(|c| &c.digest))
            .collect();
        let referrers = m
            .images
            .iter()
            .filter(|r| r.subject.as_ref().is_some_and(|s| own_digests.contains(&s)))
            .count();
        let (mut own, mut shared, mut in_bases) = (0u64, 0u64, 0u64);
        if let Some(set) = set {
            for d in set {
                let size = sizes.get(d).copied().unwrap_or(0);
                if from_base.contains(d) {
                    in_bases += size;
                } else if users.get(d).copied().unwrap_or(0) > 1 {
                    shared += size;
                } else {
                    own += size;
                }
            }
        }
        chart.own.push((img.reference.clone(), own));
        images.push(ImageView {
            reference: img.reference.clone(),
            target: img.target.clone(),
            digest: img.digest.to_string(),
            media_type: img.media_type.clone(),
            platforms: img
                .children
                .iter()
                .filter_map(|c| c.platform.clone())
                .collect(),
            referrers,
            total: set.as_ref().map(|_| own + shared + in_bases),
            own,
            shared,
            in_bases,
        });
    }
    for b in &m.blobs {
        let used = users.get(&b.digest).copied().unwrap_or(0);
        if b.base.is_some() {
            if used > 0 {
                chart.in_bases += b.size;
            }
        } else if used > 1 {
            chart.shared += b.size;
        } else if used == 0 {
            chart.other += b.size;
        }
    }
    let files = m
        .files
        .iter()
        .map(|f| FileView {
            name: f.name.clone(),
            size: f.size,
            present: bundle.dir.join(&f.name).is_file(),
        })
        .collect();
    Some(BundleView {
        path: path.display().to_string(),
        name: m.name.clone(),
        kind: match m.kind {
            Kind::Full => "full".into(),
            Kind::Incremental => "incremental".into(),
        },
        created: m.created.clone(),
        tool: m.tool.clone(),
        platforms: m.platforms.clone(),
        bases: m
            .bases
            .iter()
            .map(|b| BaseView {
                name: b.name.clone(),
                path: None,
                matches: false,
            })
            .collect(),
        files,
        data_bytes: bundle.data_bytes(),
        images,
        failed: m
            .failed
            .iter()
            .map(|f| (f.reference.clone(), f.reason.clone()))
            .collect(),
        blob_count: m.blobs.len(),
        chart,
        signature: signature(path, None),
        problem,
        meta_sha256: bundle.meta_sha256.clone(),
        base_shas: m.bases.iter().map(|b| b.meta_sha256.clone()).collect(),
    })
}
