//! `upload`: bundle → registry. Verify first (nothing is pushed from a bundle that
//! fails), then hand the images to the copy engine with blobs streamed straight out
//! of the tar files; blobs left to a base bundle must already be in the target.

use super::copy::{copy_in_order, plan, CopyContext, CopyImage};
use super::registries::Registries;
use super::report::{Reporter, Summary};
use super::retry::RetryPolicy;
use crate::bundle::meta::Image;
use crate::bundle::reader::{BlobLocation, Bundle, VerifyLevel};
use crate::digest::Digest;
use crate::transport::bundle::BundleSource;
use crate::transport::registry::{RegistryEndpoint, Retrying};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// `HOST[:PORT][/NAMESPACE]`: where upload puts the bundle's repositories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub namespace: String,
    /// Some(true) for an explicit `http://`, Some(false) for `https://`.
    pub plain_http: Option<bool>,
    /// cfg.yaml `repository:` of the target: replaces the path before the image name.
    pub rewrite: Option<String>,
}

impl Destination {
    pub fn parse(s: &str) -> Result<Destination> {
        let (plain_http, rest) = if let Some(r) = s.strip_prefix("http://") {
            (Some(true), r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (Some(false), r)
        } else {
            (None, s)
        };
        let rest = rest.trim_end_matches('/');
        let (host, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            bail!(crate::tr!(
                "invalid destination {s:?}: expected HOST[:PORT][/NAMESPACE]",
                "无效的目标 {s:?}: 应为 HOST[:PORT][/NAMESPACE]"
            ));
        }
        // Validate both parts through the reference parser.
        let probe = if namespace.is_empty() {
            format!("{host}/probe")
        } else {
            format!("{host}/{namespace}/probe")
        };
        let parsed = crate::reference::Reference::parse(&probe).map_err(|e| {
            let why = e.reason();
            anyhow::anyhow!(crate::tr!(
                "invalid destination {s:?}: {why}",
                "无效的目标 {s:?}: {why}"
            ))
        })?;
        if parsed.registry != host {
            bail!(crate::tr!("invalid destination {s:?}: {host:?} is not a registry host (a host has a '.' or a ':port', or is localhost)", "无效的目标 {s:?}: {host:?} 不是镜像仓库主机 (主机名含 '.' 或 ':端口', 或为 localhost)"));
        }
        Ok(Destination {
            host: host.to_string(),
            namespace: namespace.to_string(),
            plain_http,
            rewrite: None,
        })
    }

    /// `host/namespace` (no trailing `/` without a namespace): how reports and
    /// `--json` name the target of an upload or sync.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.namespace)
            .trim_end_matches('/')
            .to_string()
    }

    pub fn repository(&self, source_repository: &str) -> String {
        crate::config::rewrite::target_repository(
            source_repository,
            self.rewrite.as_deref(),
            &self.namespace,
        )
    }

    /// Where an image of the bundle goes (see [`Destination::target_for`]).
    pub fn image_target(&self, image: &Image) -> (String, Option<String>) {
        self.target_for(
            &image.repository,
            image.tag.clone(),
            image.target.as_deref(),
        )
    }

    /// The target repository and tag of an image: its renamed `repository:tag` when
    /// the list renamed it (the namespace still applies), else the rewritten source
    /// repository with the source tag.
    pub fn target_for(
        &self,
        repository: &str,
        tag: Option<String>,
        rename: Option<&str>,
    ) -> (String, Option<String>) {
        if let Some(t) = rename
            .and_then(|t| crate::reference::Reference::parse(&format!("{}/{t}", self.host)).ok())
        {
            let repo = if self.namespace.is_empty() {
                t.repository
            } else {
                format!("{}/{}", self.namespace, t.repository)
            };
            return (repo, t.tag);
        }
        (self.repository(repository), tag)
    }
}

#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub destination: Destination,
    pub jobs: usize,
    pub verify: VerifyLevel,
    pub retry: RetryPolicy,
    /// The sha256 the meta must have: that of the bytes whose signature was checked
    /// (`--trust`), so the bundle pushed is the one that was vouched for.
    pub meta_sha256: Option<String>,
    /// `--require-cosign`: push only images signed by this cosign key.
    pub require_cosign: Option<std::sync::Arc<crate::sign::cosign::CosignKey>>,
    /// Plan only (`--dry-run`): verify, ask the target what it has, push nothing.
    pub dry_run: bool,
}

pub async fn upload(
    meta_path: &Path,
    opts: &UploadOptions,
    registries: &Registries,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Summary> {
    let started = Instant::now();
    let bundle = Bundle::open(meta_path)
        .with_context(|| crate::tr!("cannot open the bundle", "无法打开镜像包"))?;
    if opts
        .meta_sha256
        .as_ref()
        .is_some_and(|s| s != &bundle.meta_sha256)
    {
        return Err(crate::sign::SignError::MetaChanged {
            path: meta_path.to_path_buf(),
        }
        .into());
    }
    // Structure up front (files, sizes, tar headers against the meta); the bytes
    // are hashed once, as they stream out (see `refuse_corrupt`).
    let index = verify_bundle(&bundle, VerifyLevel::Size, reporter, cancel)?;
    let sink = RegistryEndpoint::new(
        registries.client(&opts.destination.host)?,
        Retrying::for_reporter(opts.retry, cancel, reporter),
    );
    let source = Arc::new(BundleSource::new(bundle, index));

    // Read every image's manifests back (checked against their digests) and find
    // the blobs they need.
    let mut images = Vec::new();
    let mut inconsistent = Vec::new();
    for image in source.images() {
        let (repo, tag) = opts.destination.image_target(image);
        match plan::from_bundle(&source, image, repo, tag) {
            Ok(p) => images.push(p),
            Err(why) => inconsistent.push(format!("{}: {why}", image.reference)),
        }
    }
    if !inconsistent.is_empty() {
        bail!(crate::tr!(
            "the bundle is inconsistent, nothing was pushed: {}",
            "镜像包不一致, 没有推送任何内容: {}",
            inconsistent.join("; ")
        ));
    }
    let bases = plan::bundle_bases(&source, &|r| opts.destination.repository(r));
    let total = source
        .images()
        .iter()
        .filter(|i| i.subject.is_none())
        .count();
    let mut refused = Vec::new();
    if let Some(key) = &opts.require_cosign {
        let signatures = crate::sign::cosign::BundleSignatures {
            bundle: source.bundle(),
            index: source.index(),
            target: Some((sink.client(), &opts.destination)),
        };
        let (kept, why) = cosign_policy(source.bundle(), images, key, &signatures).await;
        images = kept;
        refused = why;
    }
    let ctx = CopyContext {
        sink: &sink,
        bases: &bases,
        jobs: opts.jobs,
        reporter,
        cancel,
        dry_run: opts.dry_run,
        refuse_corrupt: opts.verify != VerifyLevel::Size,
    };
    let outcome = copy_in_order(&ctx, images).await?;
    if !outcome.corrupt.is_empty() {
        let images: Vec<&str> = outcome
            .failed
            .iter()
            .filter(|(_, why)| outcome.corrupt.contains(why))
            .map(|(label, _)| label.as_str())
            .collect();
        bail!(crate::tr!(
            "bundle {} failed verification as it was pushed: {} (images: {}). No tag was set; blobs pushed before stay untagged at the target.",
            "镜像包 {} 在推送时校验失败: {} (镜像: {})。没有设置任何标签; 之前已推送的数据块留在目标仓库中, 未被标记。",
            meta_path.display(),
            outcome.corrupt.join("; "),
            images.join(", ")
        ));
    }
    refused.extend(outcome.failed);
    Ok(Summary {
        action: "upload",
        total,
        succeeded: outcome.succeeded + outcome.unchanged,
        invalid: Vec::new(),
        failed: refused,
        bytes: outcome.bytes,
        elapsed: started.elapsed(),
        images: outcome.images,
        plan: outcome.plan,
    })
}

/// `--require-cosign`: keeps the images (in the bundle's order, as planned) whose
/// top manifest carries a good cosign signature by `key`, with their referrers;
/// the others, and everything that refers to them, are held back with the reason.
async fn cosign_policy(
    bundle: &Bundle,
    images: Vec<CopyImage>,
    key: &crate::sign::cosign::CosignKey,
    source: &crate::sign::cosign::BundleSignatures<'_>,
) -> (Vec<CopyImage>, Vec<(String, String)>) {
    use std::collections::HashSet;
    let meta = &bundle.meta.images;
    let mut refused = HashSet::new();
    let mut reasons = Vec::new();
    for (i, image) in meta.iter().enumerate() {
        if image.subject.is_some() {
            continue;
        }
        if let Err(e) = crate::sign::cosign::check_image(key, &image.digest, source).await {
            refused.insert(i);
            reasons.push((image.reference.clone(), e.to_string()));
        }
    }
    let shape: Vec<_> = meta
        .iter()
        .map(|m| {
            let own = std::iter::once(m.digest.clone())
                .chain(m.children.iter().map(|c| c.digest.clone()))
                .collect();
            (own, m.subject.clone())
        })
        .collect();
    let held = crate::sign::cosign::hold_back(&shape, &refused);
    let kept = images
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !held.contains(i))
        .map(|(_, p)| p)
        .collect();
    (kept, reasons)
}

/// Verifies the bundle before anything touches the target.
/// Checks a bundle at `level`; Ctrl-C stops the hashing at once (nothing has been
/// written yet, so there is nothing to finish).
pub fn verify_bundle(
    bundle: &Bundle,
    level: VerifyLevel,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<HashMap<Digest, BlobLocation>> {
    let bar = reporter.bytes_bar(bundle.data_bytes(), crate::i18n::t("verify", "校验"));
    let result = bundle.verify(level, &|n| {
        bar.inc(n);
        !cancel.is_cancelled()
    });
    bar.finish_and_clear();
    if result.is_err() && cancel.is_cancelled() {
        bail!(crate::tr!(
            "interrupted while checking the bundle",
            "校验镜像包时中断"
        ));
    }
    result.map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{} {} {}:\n{}",
            crate::i18n::t("bundle", "镜像包"),
            bundle.meta_path.display(),
            crate::i18n::t("failed verification", "校验失败"),
            lines.join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_with_and_without_namespace() {
        let d = Destination::parse("127.0.0.1:5000/mirror/team").unwrap();
        assert_eq!(d.host, "127.0.0.1:5000");
        assert_eq!(d.repository("app/web"), "mirror/team/app/web");
        let d = Destination::parse("registry.local").unwrap();
        assert_eq!(d.repository("app/web"), "app/web");
        assert_eq!(
            Destination::parse("https://r.example.com/ns/")
                .unwrap()
                .plain_http,
            Some(false)
        );
        assert!(Destination::parse("").is_err());
        assert!(Destination::parse("noport/ns").is_err());
        assert!(Destination::parse("host:5000/UPPER").is_err());
    }
}
