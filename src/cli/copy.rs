//! `ferry copy SRC DST`: any source to any sink, skopeo's transport syntax.

use super::args::{CopyArgs, GlobalArgs};
use super::run::{jobs, load_config, registries, retry_policy, usage, Outcome};
use crate::engine::copy::endpoints::{copy, CopyEnv, CopyOptions};
use crate::engine::platform::PlatformFilter;
use crate::engine::report::Reporter;
use crate::transport::{parse_transport, TransportSpec};
use anyhow::Result;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// A transport spec as given; a bare reference means a registry (`docker://`).
fn endpoint(text: &str) -> Result<TransportSpec> {
    Ok(parse_transport(text)
        .map_err(usage)?
        .unwrap_or_else(|| TransportSpec::Registry {
            reference: text.to_string(),
        }))
}

pub async fn run_copy(
    args: CopyArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let started = Instant::now();
    let src = endpoint(&args.src)?;
    let dst = endpoint(&args.dst)?;
    if matches!(dst, TransportSpec::Bundle { .. }) {
        return Err(usage(crate::tr!(
            "{}: a bundle is written by `ferry save`, not by copy",
            "{}: 镜像包由 `ferry save` 生成, copy 不能写入镜像包",
            args.dst
        )));
    }
    let cfg = load_config(g, reporter)?;
    let trust = super::signing::load_trust(args.trust.trust.as_deref(), cfg.as_ref())?;
    if trust.is_some() && !matches!(src, TransportSpec::Bundle { .. }) {
        return Err(usage(crate::tr!(
            "--trust checks a bundle's signature: {} is not a bundle",
            "--trust 检查镜像包的签名: {} 不是镜像包",
            args.src
        )));
    }
    let platforms = match &args.platform {
        Some(p) => PlatformFilter::parse(p).map_err(usage)?,
        None => PlatformFilter::default(),
    };
    let opts = CopyOptions {
        platforms,
        all: args.all,
        with_referrers: args.with_referrers,
        jobs: jobs(args.jobs, cfg.as_ref()),
        retry: retry_policy(g, cfg.as_ref()),
        base_dirs: args.base_dirs,
        dry_run: args.dry_run,
        trust,
    };
    let wall_start = chrono::Utc::now();
    let registries = registries(g, cfg.as_ref(), &[], None)?;
    let env = CopyEnv {
        registries: &registries,
        reporter,
        cancel,
    };
    let outcome = copy(&src, &dst, &opts, &env).await?;
    for name in &outcome.written {
        reporter.debug(&crate::tr!("copied {name}", "已复制 {name}"));
    }
    let summary = outcome.into_summary("copy", started.elapsed());
    if !args.dry_run {
        summary.print(reporter);
    }
    super::output::work_output(
        "copy",
        &summary,
        wall_start,
        Some(args.src.clone()),
        Some(args.dst.clone()),
        &[],
        args.json,
        false,
    )?;
    Ok(Outcome::of(&summary))
}
