//! Commands that show things and write exports: `ls`, `inspect`, `tags`, `export`.

use super::args::{ExportArgs, InspectArgs, LsArgs, ServeArgs, TagsArgs};
use super::run::Outcome;
use crate::bundle::meta::Kind;
use crate::bundle::reader::Bundle;
use crate::engine::export;
use crate::engine::platform::PlatformFilter;
use crate::engine::registries::Registries;
use crate::engine::report::Reporter;
use crate::manifest::{Parsed, RawManifest};
use crate::reference::Reference;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::HumanBytes;
use std::collections::HashMap;
use std::io::Write;

pub fn run_ls(args: LsArgs, trust: Option<&crate::sign::Trust>) -> Result<Outcome> {
    let started = chrono::Utc::now();
    let bundle = Bundle::open(&args.meta)
        .with_context(|| crate::tr!("cannot open the bundle", "无法打开镜像包"))?;
    if args.output.json {
        let mut doc = bundle_document("ls", &bundle, started);
        // Listing succeeded; failed images of the save are in `images`.
        doc.ok = true;
        doc.print(false)?;
        return Ok(Outcome::Success);
    }
    let m = &bundle.meta;
    let mut out = String::new();
    let kind = match m.kind {
        Kind::Full => crate::i18n::t("full", "完整包"),
        Kind::Incremental => crate::i18n::t("incremental", "增量包"),
    };
    out.push_str(&crate::tr!(
        "bundle {} ({kind}, created {}, {})\n",
        "镜像包 {} ({kind}, 创建于 {}, {})\n",
        m.name,
        m.created,
        m.tool
    ));
    out.push_str(&super::signing::signature_line(&args.meta, trust));
    if !m.bases.is_empty() {
        out.push_str(&crate::tr!(
            "based on: {}\n",
            "基础包: {}\n",
            m.bases
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !m.platforms.is_empty() {
        out.push_str(&crate::tr!(
            "platforms: {}\n",
            "平台: {}\n",
            m.platforms.join(", ")
        ));
    }
    // What the bundle lacks comes first, where it cannot be missed.
    if let Some(missing) = m.missing_images() {
        out.push_str(&missing);
        out.push('\n');
    }
    let sizes: HashMap<_, _> = m.blobs.iter().map(|b| (&b.digest, b.size)).collect();
    let index = bundle
        .verify(crate::bundle::reader::VerifyLevel::Size, &|_| true)
        .ok();
    let images: Vec<_> = m.images.iter().filter(|i| i.subject.is_none()).collect();
    out.push_str(&crate::tr!("images ({}):\n", "镜像 ({}):\n", images.len()));
    for i in images {
        let children = if i.children.is_empty() {
            String::new()
        } else {
            let n = i.children.len();
            let platforms = crate::i18n::plural(n as u64, "platform", "platforms");
            crate::tr!(
                ", {platforms}: {}",
                ", {n} 个平台: {}",
                i.children
                    .iter()
                    .filter_map(|c| c.platform.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let target = i
            .target
            .as_ref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}{target}  {}  {}{children}{}\n",
            i.reference,
            i.digest,
            short_type(&i.media_type),
            image_size(&bundle, i, index.as_ref(), &sizes)
                .map(|n| format!("  {}", HumanBytes(n)))
                .unwrap_or_default()
        ));
        let carried = referrer_counts(m, i);
        if !carried.is_empty() {
            out.push_str(&carried);
            out.push('\n');
        }
    }
    out.push_str(&crate::tr!(
        "data files ({}):\n",
        "数据文件 ({}):\n",
        m.files.len()
    ));
    for f in &m.files {
        let (n, blobs) = (f.blobs, crate::i18n::plural(f.blobs, "blob", "blobs"));
        out.push_str(&crate::tr!(
            "  {}  {}  {blobs}\n",
            "  {}  {}  {n} 个数据块\n",
            f.name,
            HumanBytes(f.size)
        ));
    }
    let carried: u64 = m
        .blobs
        .iter()
        .filter(|b| b.file.is_some())
        .fold(0u64, |t, b| t.saturating_add(b.size));
    let from_bases = m.blobs.iter().filter(|b| b.base.is_some()).count();
    out.push_str(&crate::tr!(
        "blobs: {} ({} carried, {} left to bases)\n",
        "数据块: {} (本包携带 {}, {} 个由基础包提供)\n",
        m.blobs.len(),
        HumanBytes(carried),
        from_bases
    ));
    print!("{out}");
    Ok(Outcome::Success)
}

/// The bytes of an image's manifests, configs and layers, when its manifests can be
/// read from the bundle (headers only are scanned; nothing is hashed).
fn image_size(
    bundle: &Bundle,
    image: &crate::bundle::meta::Image,
    index: Option<&HashMap<crate::digest::Digest, crate::bundle::reader::BlobLocation>>,
    sizes: &HashMap<&crate::digest::Digest, u64>,
) -> Option<u64> {
    let (manifests, blobs) = export::image_contents(bundle, image, index?).ok()?;
    // Sizes come from the meta: summed without overflow, whatever they say.
    Some(
        manifests
            .iter()
            .map(|m| m.bytes.len() as u64)
            .chain(blobs.iter().map(|d| sizes.get(d).copied().unwrap_or(0)))
            .fold(0u64, u64::saturating_add),
    )
}

/// `    1 signature, 2 attestations` for the referrers of an image and its children.
fn referrer_counts(m: &crate::bundle::meta::Meta, image: &crate::bundle::meta::Image) -> String {
    let own: Vec<_> = std::iter::once(&image.digest)
        .chain(image.children.iter().map(|c| &c.digest))
        .collect();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in m
        .images
        .iter()
        .filter(|r| r.subject.as_ref().is_some_and(|s| own.contains(&s)))
    {
        *counts
            .entry(crate::engine::referrers::kind_of_tag(r.tag.as_deref()))
            .or_default() += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let list: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            if crate::i18n::is_chinese() {
                let kind = match *k {
                    "signature" => "签名",
                    "attestation" => "证明",
                    "artifact" => "制品",
                    other => other,
                };
                format!("{n} 个{kind}")
            } else {
                format!("{n} {k}{}", if *n == 1 { "" } else { "s" })
            }
        })
        .collect();
    crate::tr!("    carries {}", "    携带 {}", list.join(", "))
}

fn short_type(media_type: &str) -> &str {
    match media_type {
        crate::manifest::DOCKER_MANIFEST => crate::i18n::t("docker manifest", "docker 清单"),
        crate::manifest::DOCKER_MANIFEST_LIST => {
            crate::i18n::t("docker manifest list", "docker 清单列表")
        }
        crate::manifest::OCI_MANIFEST => crate::i18n::t("OCI manifest", "OCI 清单"),
        crate::manifest::OCI_INDEX => crate::i18n::t("OCI index", "OCI 索引"),
        other => other,
    }
}

pub async fn run_inspect(args: InspectArgs, registries: &Registries) -> Result<Outcome> {
    let started = chrono::Utc::now();
    let r = Reference::parse(&args.image)?;
    let client = registries.client(&r.registry)?;
    let (raw, parsed) = client
        .get_manifest(&r.repository, &r.api_reference())
        .await?;
    if args.raw {
        std::io::stdout().write_all(&raw.bytes)?;
        return Ok(Outcome::Success);
    }
    let details = describe_manifest(&raw, &parsed);
    if args.json {
        use crate::engine::report::{ImageRecord, ImageState};
        let bytes = match &parsed {
            Parsed::Image { config, layers } => std::iter::once(config.size)
                .chain(layers.iter().map(|l| l.size))
                .fold(raw.bytes.len() as u64, u64::saturating_add),
            Parsed::Index { .. } => raw.bytes.len() as u64,
        };
        let mut doc = super::output::Document::new("inspect", started);
        doc.source = Some(r.registry.clone());
        doc.reference = Some(r.to_string());
        doc.details = Some(details);
        doc.totals.images = 1;
        doc.totals.succeeded = 1;
        doc.images = vec![ImageRecord {
            source: args.image.clone(),
            target: None,
            digest: Some(raw.digest.to_string()),
            bytes,
            state: ImageState::Present,
            reason: None,
        }];
        doc.print(false)?;
    } else {
        println!("{}", r);
        println!("{}", crate::tr!("digest: {}", "摘要: {}", raw.digest));
        println!(
            "{}",
            crate::tr!("media type: {}", "媒体类型: {}", raw.media_type)
        );
        match &parsed {
            Parsed::Index { manifests } => {
                println!("{}", crate::i18n::t("platforms:", "平台:"));
                for m in manifests {
                    println!(
                        "  {}  {}",
                        m.platform
                            .as_ref()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| crate::i18n::t("unknown", "未知").into()),
                        m.digest
                    );
                }
            }
            Parsed::Image { config, layers } => {
                println!(
                    "{}",
                    crate::tr!(
                        "config: {} ({})",
                        "配置: {} ({})",
                        config.digest,
                        HumanBytes(config.size)
                    )
                );
                println!(
                    "{}",
                    crate::tr!(
                        "layers ({}, {}):",
                        "层 ({}, {}):",
                        layers.len(),
                        HumanBytes(layers.iter().map(|l| l.size).sum())
                    )
                );
                for l in layers {
                    println!("  {}  {}", l.digest, HumanBytes(l.size));
                }
            }
        }
    }
    Ok(Outcome::Success)
}

fn describe_manifest(raw: &RawManifest, parsed: &Parsed) -> serde_json::Value {
    match parsed {
        Parsed::Index { manifests } => serde_json::json!({
            "digest": raw.digest, "mediaType": raw.media_type,
            "manifests": manifests.iter().map(|m| serde_json::json!({"digest": m.digest, "size": m.size, "mediaType": m.media_type, "platform": m.platform.as_ref().map(|p| p.to_string())})).collect::<Vec<_>>(),
        }),
        Parsed::Image { config, layers } => serde_json::json!({
            "digest": raw.digest, "mediaType": raw.media_type,
            "config": {"digest": config.digest, "size": config.size},
            "layers": layers.iter().map(|l| serde_json::json!({"digest": l.digest, "size": l.size, "mediaType": l.media_type})).collect::<Vec<_>>(),
        }),
    }
}

pub async fn run_tags(args: TagsArgs, registries: &Registries) -> Result<Outcome> {
    // Parsed as an image with a placeholder tag; the error names only what was given.
    let r = Reference::parse(&format!("{}:probe", args.repository.trim_end_matches(':'))).map_err(
        |e| {
            let why = e.reason();
            anyhow!(crate::tr!(
                "invalid repository {:?}: {why}",
                "无效的仓库 {:?}: {why}",
                args.repository
            ))
        },
    )?;
    let started = chrono::Utc::now();
    let client = registries.client(&r.registry)?;
    let tags = client.tags(&r.repository).await?;
    if args.output.json {
        let mut doc = super::output::Document::new("tags", started);
        doc.source = Some(format!("{}/{}", r.registry, r.repository));
        doc.tags = Some(tags);
        doc.print(false)?;
        return Ok(Outcome::Success);
    }
    for t in tags {
        println!("{t}");
    }
    Ok(Outcome::Success)
}

/// The `--json` document of a bundle (`ls`, `verify`): its images (saved, or failed
/// at save time with why), data files, selectors, and its meta file.
pub fn bundle_document(
    command: &'static str,
    bundle: &Bundle,
    started: chrono::DateTime<chrono::Utc>,
) -> super::output::Document {
    use crate::engine::report::{ImageRecord, ImageState};
    let m = &bundle.meta;
    let sizes: HashMap<_, _> = m.blobs.iter().map(|b| (&b.digest, b.size)).collect();
    let index = bundle
        .verify(crate::bundle::reader::VerifyLevel::Size, &|_| true)
        .ok();
    let mut doc = super::output::Document::new(command, started);
    doc.meta = Some(bundle.meta_path.display().to_string());
    doc.source = doc.meta.clone();
    doc.images = m
        .images
        .iter()
        .map(|i| ImageRecord {
            source: i.reference.clone(),
            target: i.target.clone(),
            digest: Some(i.digest.to_string()),
            bytes: image_size(bundle, i, index.as_ref(), &sizes).unwrap_or(0),
            state: ImageState::Saved,
            reason: None,
        })
        .chain(
            m.failed
                .iter()
                .map(|f| ImageRecord::problem(&f.reference, &f.reason, ImageState::Failed)),
        )
        .collect();
    doc.totals = super::output::Totals {
        images: doc.images.len(),
        succeeded: m.images.len(),
        failed: m.failed.len(),
        invalid: 0,
        bytes: m.files.iter().map(|f| f.size).fold(0, u64::saturating_add),
    };
    doc.ok = m.failed.is_empty();
    doc.files = m.files.clone();
    doc.selections = m.selections.clone();
    doc
}

pub async fn run_export(
    args: ExportArgs,
    trust: Option<&crate::sign::Trust>,
    reporter: &Reporter,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Outcome> {
    use crate::engine::copy::endpoints::{copy_bundle, CopyEnv, CopyOptions};
    use crate::transport::TransportSpec;
    let (dst, what) = match (&args.oci, &args.docker_archive) {
        (Some(dir), _) => (
            TransportSpec::OciLayout {
                dir: dir.clone(),
                reference: None,
            },
            crate::tr!("the OCI layout {}", "OCI 目录 {}", dir.display()),
        ),
        (None, Some(file)) => {
            if args.images.is_empty() {
                bail!(crate::tr!(
                    "name the images for the docker archive (see `ferry ls {}`)",
                    "请指定要写入 docker 归档的镜像 (见 `ferry ls {}`)",
                    args.meta.display()
                ));
            }
            (
                TransportSpec::DockerArchive {
                    file: file.clone(),
                    reference: None,
                },
                crate::tr!("the docker archive {}", "docker 归档 {}", file.display()),
            )
        }
        (None, None) => bail!(crate::i18n::t(
            "give --oci DIR or --docker-archive FILE",
            "请给出 --oci DIR 或 --docker-archive FILE"
        )),
    };
    let source = std::sync::Arc::new(crate::engine::trusted::open_source(
        &args.meta,
        &args.base_dirs,
        trust,
        reporter,
    )?);
    let platforms = match &args.platform {
        Some(p) => PlatformFilter::parse(p).map_err(|e| anyhow!("--platform: {e}"))?,
        None => PlatformFilter::default(),
    };
    let opts = CopyOptions {
        platforms,
        all: false,
        with_referrers: false,
        jobs: 4,
        retry: crate::engine::retry::RetryPolicy::default(),
        base_dirs: args.base_dirs.clone(),
        dry_run: false,
        trust: None,
    };
    let registries = crate::engine::registries::Registries::default();
    let env = CopyEnv {
        registries: &registries,
        reporter,
        cancel,
    };
    let outcome = copy_bundle(source, &args.images, &dst, &opts, &env).await?;
    let n = outcome.succeeded + outcome.unchanged;
    let images = crate::i18n::plural(n as u64, "image", "images");
    reporter.warn(&crate::tr!(
        "wrote {images} to {what}",
        "已将 {n} 个镜像写入{what}"
    ));
    if let Some(dir) = &args.oci {
        oci_media_types(dir, &outcome.images, args.oci_media_types, reporter)?;
    }
    Ok(if outcome.failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// After `export --oci`: converts the exported docker-typed images to OCI media
/// types when asked (`--oci-media-types`), else says that skopeo and podman will not
/// read them.
fn oci_media_types(
    dir: &std::path::Path,
    exported: &[crate::engine::report::ImageRecord],
    convert: bool,
    reporter: &Reporter,
) -> Result<()> {
    use crate::engine::report::ImageState;
    let tops: std::collections::HashSet<crate::digest::Digest> = exported
        .iter()
        .filter(|r| matches!(r.state, ImageState::Copied | ImageState::Present))
        .filter_map(|r| r.digest.as_deref()?.parse().ok())
        .collect();
    if !convert {
        let docker = super::oci_types::docker_typed(dir, &tops)?;
        if !docker.is_empty() {
            let list = docker.join(", ");
            reporter.warn(&crate::tr!(
                "docker-typed in the layout: {list}. skopeo and podman read only OCI-typed entries of an OCI layout; --oci-media-types converts them (new manifests: their digests change)",
                "OCI 目录中的 docker 类型条目: {list}。skopeo 和 podman 只读取 OCI 目录中 OCI 类型的条目; --oci-media-types 可以转换它们 (会写出新的清单: 摘要会改变)"
            ));
        }
        return Ok(());
    }
    let rewritten = super::oci_types::convert_layout(dir, &tops)?;
    if rewritten.is_empty() {
        return Ok(());
    }
    let n = rewritten.len();
    let images = crate::i18n::plural(n as u64, "image", "images");
    reporter.warn(&crate::tr!(
        "converted {images} to OCI media types; their manifests are new, so their digests changed (signatures made for the originals do not match them):",
        "已将 {n} 个镜像转换为 OCI 媒体类型; 它们的清单是新写出的, 因此摘要已改变 (为原清单所做的签名与之不符):"
    ));
    for r in rewritten {
        reporter.warn(&format!("  {}: {} -> {}", r.name, r.old, r.new));
    }
    Ok(())
}

pub async fn run_serve(
    args: ServeArgs,
    trust: Option<&crate::sign::Trust>,
    reporter: &Reporter,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Outcome> {
    let server = bind_server(&args.listen, &args.http).await?;
    // Under a trust file, the signature (and the bases' chain) before anything of
    // the bundle is read.
    let source = match trust {
        Some(t) => {
            crate::engine::trusted::open_source(&args.meta, &args.base_dirs, Some(t), reporter)?
        }
        None => {
            crate::transport::bundle::BundleSource::open(&args.meta, &args.base_dirs, reporter)?
        }
    };
    let app = crate::serve::router(std::sync::Arc::new(source), reporter.clone()).await?;
    reporter.warn(&crate::tr!(
        "serving bundle {} read-only at {}/v2/ (Ctrl-C to stop)",
        "正在以只读方式提供镜像包 {}: {}/v2/ (Ctrl-C 停止)",
        args.meta.display(),
        server.base_url()
    ));
    server.run(app, reporter.clone(), cancel.clone()).await;
    reporter.warn(crate::i18n::t("stopped", "已停止"));
    Ok(Outcome::Stopped)
}

/// The HTTP server of `serve` and `sync --listen`, bound, with its limits and TLS.
pub async fn bind_server(
    listen: &str,
    http: &super::args::HttpArgs,
) -> Result<crate::server::Server> {
    // A year is "never" here, and keeps deadline arithmetic far from overflowing.
    let at_most_a_year =
        |d: std::time::Duration| d.min(std::time::Duration::from_secs(365 * 86400));
    let limits = crate::server::Limits {
        max_connections: usize::try_from(http.max_connections).unwrap_or(usize::MAX),
        header_timeout: at_most_a_year(super::run::parse_duration(&http.header_timeout)?),
        idle_timeout: at_most_a_year(super::run::parse_duration(&http.idle_timeout)?),
        ..Default::default()
    };
    let tls = match (&http.tls_cert, &http.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls::acceptor(cert, key)?),
        _ => None,
    };
    Ok(crate::server::Server::bind(listen, limits, tls).await?)
}
