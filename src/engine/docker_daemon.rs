//! `ferry upload META --dst docker` and `--dst containerd[:NAMESPACE]`: the
//! bundle's images go through the copy engine into an engine sink
//! ([`DockerEngineSink`], [`ContainerdSink`]), one platform's image each, named by
//! the full reference they were saved from (registry host included, as `docker
//! pull` names them), or by the name the list renamed them to.

use super::copy::endpoints::{copy_bundle_to_engine, CopyEnv, CopyOptions};
use super::copy::CopyOutcome;
use crate::bundle::reader::Bundle;
use crate::transport::bundle::BundleSource;
use crate::transport::ImageSink;
use anyhow::{Context, Result};
use std::sync::Arc;

pub use crate::transport::containerd::{ContainerdOptions, ContainerdSink};
pub use crate::transport::docker_engine::{DockerEngine, DockerEngineSink};

/// A `--dst` that names a local engine rather than a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineTarget {
    /// `docker`: the docker engine at `DOCKER_HOST=unix://PATH`, else
    /// /var/run/docker.sock.
    Docker,
    /// `containerd[:NAMESPACE]`: containerd at `CONTAINERD_ADDRESS`, else
    /// /run/containerd/containerd.sock, in NAMESPACE (default `default`).
    Containerd(Option<String>),
}

/// As `--dst` writes it.
impl std::fmt::Display for EngineTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineTarget::Docker => f.write_str("docker"),
            EngineTarget::Containerd(None) => f.write_str("containerd"),
            EngineTarget::Containerd(Some(ns)) => write!(f, "containerd:{ns}"),
        }
    }
}

impl EngineTarget {
    /// `docker`, `containerd` or `containerd:NAMESPACE`; `None` for anything else
    /// (a registry).
    pub fn parse(dst: &str) -> Option<EngineTarget> {
        match dst {
            "docker" => Some(EngineTarget::Docker),
            "containerd" => Some(EngineTarget::Containerd(None)),
            _ => dst
                .strip_prefix("containerd:")
                .map(|ns| EngineTarget::Containerd(Some(ns.to_string()))),
        }
    }

    /// As [`EngineTarget::parse`], plus image-transmit's `-dst=ctr[:NAMESPACE]`.
    pub fn parse_legacy(dst: &str) -> Option<EngineTarget> {
        match dst.strip_prefix("ctr") {
            Some("") => Some(EngineTarget::Containerd(None)),
            Some(rest) => rest
                .strip_prefix(':')
                .map(|ns| EngineTarget::Containerd(Some(ns.to_string()))),
            None => EngineTarget::parse(dst),
        }
    }
}

/// `ferry upload META --dst docker|containerd[:NS]`: every image of the bundle
/// (signatures and other referrers stay behind: an engine has no place for them)
/// into the engine, the host's platform of multi-platform ones. `meta_sha256`:
/// the meta's hash when its signature was checked; `opts.trust`: the bases read
/// must be vouched for (see `trusted::check_bases`). With `opts.dry_run` the engine
/// is reached but given nothing. Returns what the copy did and the engine's name.
pub async fn upload_to_engine(
    meta: &std::path::Path,
    meta_sha256: Option<&str>,
    target: &EngineTarget,
    opts: &CopyOptions,
    env: &CopyEnv<'_>,
) -> Result<(CopyOutcome, String)> {
    // Fail before the bundle is read when there is no engine.
    let sink: Box<dyn ImageSink> = match target {
        EngineTarget::Docker => {
            Box::new(DockerEngineSink::connect(DockerEngine::from_env()?).await?)
        }
        EngineTarget::Containerd(ns) => Box::new(ContainerdSink::open(
            ContainerdOptions::namespace(ns.as_deref()),
        )?),
    };
    let described = sink.describe();
    let bundle = Bundle::open(meta)
        .with_context(|| crate::tr!("cannot open the bundle", "无法打开镜像包"))?;
    // A signed bundle: the meta read now must be the one whose signature was
    // checked, and under --trust its bases too, before any data file is read.
    if meta_sha256.is_some_and(|s| s != bundle.meta_sha256) {
        return Err(crate::sign::SignError::MetaChanged {
            path: meta.to_path_buf(),
        }
        .into());
    }
    super::trusted::check_bases(&bundle, &opts.base_dirs, opts.trust.as_ref(), env.reporter)?;
    let index = super::export::locate_all(&bundle, &opts.base_dirs, env.reporter)?;
    let source = Arc::new(BundleSource::new(bundle, index));
    let wanted: Vec<String> = source
        .images()
        .iter()
        .filter(|i| i.subject.is_none())
        .map(|i| i.reference.clone())
        .collect();
    let outcome = copy_bundle_to_engine(source, &wanted, sink, opts, env).await?;
    Ok((outcome, described))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_targets_are_told_from_registries() {
        assert_eq!(EngineTarget::parse("docker"), Some(EngineTarget::Docker));
        assert_eq!(
            EngineTarget::parse("containerd"),
            Some(EngineTarget::Containerd(None))
        );
        assert_eq!(
            EngineTarget::parse("containerd:k8s.io"),
            Some(EngineTarget::Containerd(Some("k8s.io".into())))
        );
        for registry in ["127.0.0.1:5000", "docker.io/ns", "ctr", "containerd.local"] {
            assert_eq!(EngineTarget::parse(registry), None, "{registry}");
        }
        assert_eq!(
            EngineTarget::parse_legacy("ctr"),
            Some(EngineTarget::Containerd(None))
        );
        assert_eq!(
            EngineTarget::parse_legacy("ctr:k8s.io"),
            Some(EngineTarget::Containerd(Some("k8s.io".into())))
        );
        assert_eq!(EngineTarget::parse_legacy("ctrl.example.com"), None);
        assert_eq!(
            EngineTarget::parse_legacy("docker"),
            Some(EngineTarget::Docker)
        );
    }
}
