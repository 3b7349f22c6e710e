//! Stage 2, lay out: the data files sized from the plan before any byte is
//! fetched, the bundle's name claimed (or the unfinished bundle of the same save
//! found again), and the free space checked against what the files need.

use super::{ImageRequest, SaveOptions};
use crate::bundle::base::BaseSet;
use crate::bundle::layout::{self, FileLayout};
use crate::bundle::meta::Kind;
use crate::bundle::naming::{self, BundleName};
use crate::bundle::plan::BundlePlan;
use crate::digest::{Digest, Hasher};
use anyhow::{bail, Context, Result};

/// The data files: the stored blobs spread over `--files` files of about equal
/// size, or over as many as `--max-file-size` needs. Sizes come from the registry:
/// a layout that cannot exist is refused before anything is written.
pub(super) fn lay_out(plan: &BundlePlan, opts: &SaveOptions) -> Result<Vec<FileLayout>> {
    let stored = plan.stored();
    if let Some(max) = opts.max_file_size {
        let too_big = |s: u64| {
            layout::entry_span(s)
                .and_then(|n| n.checked_add(layout::END_OF_ARCHIVE))
                .is_none_or(|n| n > max)
        };
        if let Some((d, s)) = stored
            .iter()
            .filter(|(_, s)| too_big(*s))
            .max_by_key(|(_, s)| *s)
        {
            bail!(crate::tr!(
                "blob {d} ({}) is larger than the maximum data file size {}; nothing was downloaded",
                "数据块 {d} ({}) 大于数据文件的大小上限 {}; 没有下载任何内容",
                indicatif::HumanBytes(*s),
                indicatif::HumanBytes(max)
            ));
        }
    }
    match opts.max_file_size {
        Some(max) => layout::plan_capped(&stored, opts.files, max),
        None => layout::plan(&stored, opts.files),
    }
    .context(crate::tr!("nothing was downloaded", "没有下载任何内容"))
}

/// Claims the bundle's name in `--out` (resuming the unfinished bundle of the same
/// save) and checks that its data files fit in the free space.
pub(super) fn claim(
    opts: &SaveOptions,
    kind: Kind,
    now: chrono::DateTime<chrono::Local>,
    fingerprint: &str,
    layouts: &[FileLayout],
) -> Result<BundleName> {
    let name =
        naming::choose(&opts.out, &opts.prefix, kind, now, fingerprint).with_context(|| {
            crate::tr!(
                "cannot claim a bundle name in {}",
                "无法在 {} 中预留镜像包名称",
                opts.out.display()
            )
        })?;
    crate::bundle::space::check_bundle_fits(&name.dir, &name.name, layouts, opts.compress)
        .context(crate::tr!("nothing was downloaded", "没有下载任何内容"))?;
    Ok(name)
}

/// Identifies a save request, so that running the same command again resumes it.
pub(super) fn fingerprint(inputs: &[ImageRequest], opts: &SaveOptions, bases: &BaseSet) -> String {
    let mut sorted: Vec<String> = inputs
        .iter()
        .map(|r| format!("{} {} {:?}", r.input, r.fetch, r.rename))
        .collect();
    sorted.sort();
    let mut h = Hasher::new();
    for i in sorted {
        h.update(i.as_bytes());
        h.update(b"\n");
    }
    h.update(
        format!(
            "files={} prefix={} max={:?} platforms={:?}\n",
            opts.files,
            opts.prefix,
            opts.max_file_size,
            opts.platforms.to_strings()
        )
        .as_bytes(),
    );
    for b in &bases.refs {
        h.update(b.meta_sha256.as_bytes());
    }
    let d: Digest = h.finish();
    d.to_string()
}

/// Refuses an output folder that cannot be created or written, before anything
/// is fetched.
pub(super) fn check_writable(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| {
        crate::tr!(
            "cannot create the output folder {}",
            "无法创建输出目录 {}",
            out.display()
        )
    })?;
    let probe = out.join(format!(".ferry-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        crate::tr!(
            "the output folder {} is not writable",
            "输出目录 {} 不可写",
            out.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::meta::BlobKind;
    use crate::bundle::plan::PlannedImage;

    fn options(files: usize, max: Option<u64>) -> SaveOptions {
        SaveOptions {
            out: "out".into(),
            prefix: "img".into(),
            files,
            jobs: 1,
            bases: vec![],
            platforms: Default::default(),
            max_file_size: max,
            compress: false,
            cache: None,
            with_referrers: false,
            retry: Default::default(),
            expansion: Default::default(),
            dry_run: false,
            trust: None,
        }
    }

    fn plan(sizes: &[u64]) -> BundlePlan {
        let mut p = BundlePlan::default();
        let blobs: Vec<(Digest, u64, BlobKind)> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (Digest::of(&i.to_le_bytes()), *s, BlobKind::Layer))
            .collect();
        p.add_image(
            PlannedImage {
                record: crate::bundle::meta::Image {
                    reference: "a".into(),
                    registry: "r".into(),
                    repository: "a".into(),
                    tag: None,
                    digest: Digest::of(b"m"),
                    media_type: String::new(),
                    target: None,
                    subject: None,
                    children: vec![],
                },
                target: "r/a".into(),
                manifests: vec![Digest::of(b"m")],
                blobs: blobs.iter().map(|b| b.0.clone()).collect(),
            },
            &[100],
            &blobs,
            &BaseSet::default(),
        );
        p
    }

    #[test]
    fn data_files_are_sized_from_the_plan_manifests_included() {
        let l = lay_out(&plan(&[4096, 4096, 512]), &options(2, None)).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.iter().map(|f| f.entries.len()).sum::<usize>(), 4);
    }

    #[test]
    fn a_blob_larger_than_the_file_cap_is_refused_before_anything_is_fetched() {
        let e = lay_out(&plan(&[300 * 1024, 10]), &options(1, Some(256 * 1024))).unwrap_err();
        assert!(e.to_string().contains("nothing was downloaded"), "{e}");
        let l = lay_out(&plan(&[100 * 1024; 3]), &options(1, Some(256 * 1024))).unwrap();
        assert!(l.len() >= 2 && l.iter().all(|f| f.size <= 256 * 1024));
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint() {
        let a = [ImageRequest::plain("x:1"), ImageRequest::plain("y:1")];
        let b = [ImageRequest::plain("y:1"), ImageRequest::plain("x:1")];
        let base = BaseSet::default();
        let opts = options(2, None);
        assert_eq!(fingerprint(&a, &opts, &base), fingerprint(&b, &opts, &base));
        assert_ne!(
            fingerprint(&a, &opts, &base),
            fingerprint(&a, &options(3, None), &base)
        );
    }
}
