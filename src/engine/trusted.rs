//! Opening a bundle to read it, under a trust file when there is one: the
//! signature (and its bases' chain) is checked before anything else of the bundle
//! is read, and the run says who signed it. The one place `copy`, `export`,
//! `serve` and `upload` open a bundle with `--trust`.

use super::report::Reporter;
use crate::bundle::reader::Bundle;
use crate::sign::{self, Trust};
use crate::transport::bundle::BundleSource;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Opens a bundle; under a trust file, only after its signature checked out
/// (nothing else of the bundle is read before), and says who signed it.
pub fn open_bundle(meta: &Path, trust: Option<&Trust>, reporter: &Reporter) -> Result<Bundle> {
    let Some(trust) = trust else {
        return Bundle::open(meta)
            .with_context(|| crate::tr!("cannot open the bundle", "无法打开镜像包"));
    };
    let (bundle, signer) = sign::open_trusted(meta, trust)
        .with_context(|| crate::tr!("refusing the bundle {}", "拒绝镜像包 {}", meta.display()))?;
    reporter.warn(&crate::tr!(
        "signature good: bundle {} signed by {signer}",
        "签名有效: 镜像包 {} 由 {signer} 签名",
        bundle.meta.name
    ));
    Ok(bundle)
}

/// Under a trust file, checks the base bundles of an increment that will be read
/// (beside it or in `base_dirs`).
pub fn check_bases(
    bundle: &Bundle,
    base_dirs: &[PathBuf],
    trust: Option<&Trust>,
    reporter: &Reporter,
) -> Result<()> {
    let Some(trust) = trust else {
        return Ok(());
    };
    for (name, how) in sign::check_bases(bundle, base_dirs, trust)? {
        reporter.info(&match how {
            sign::BaseTrust::Chain => crate::tr!(
                "base bundle {name}: its meta is the one the signed bundle records",
                "基础包 {name}: 其元数据与已签名镜像包所记录的一致"
            ),
            sign::BaseTrust::Signed(s) => crate::tr!(
                "base bundle {name}: signed by {s}",
                "基础包 {name}: 由 {s} 签名"
            ),
        });
    }
    Ok(())
}

/// A bundle as a source of images, with the blobs of its bases (beside it or in
/// `base_dirs`): signature and bases checked first under a trust file.
pub fn open_source(
    meta: &Path,
    base_dirs: &[PathBuf],
    trust: Option<&Trust>,
    reporter: &Reporter,
) -> Result<BundleSource> {
    let bundle = open_bundle(meta, trust, reporter)?;
    check_bases(&bundle, base_dirs, trust, reporter)?;
    let index = super::export::locate_all(&bundle, base_dirs, reporter)?;
    Ok(BundleSource::new(bundle, index))
}
