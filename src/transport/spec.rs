//! skopeo's transport syntax for `ferry copy` and `save`: `docker://REF`,
//! `oci:DIR[:REF]`, `docker-archive:FILE[:REF]`, `docker-daemon:REF`,
//! `containerd:REF` and ferry's own `bundle:META[:REF]`. A plain reference with no
//! transport is a registry reference.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportSpec {
    /// `docker://REF`: a registry.
    Registry { reference: String },
    /// `oci:DIR[:REF]`: an OCI image layout; REF is the `org.opencontainers.image.ref.name`.
    OciLayout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]`: a `docker save` tarball.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-daemon:REF`: a docker engine's image store (through its API socket).
    DockerDaemon { reference: String },
    /// `containerd:REF`: containerd's image store (through `ctr`).
    Containerd { reference: String },
    /// `bundle:META[:REF]`: a ferry (or image-transmit) bundle, with its bases.
    Bundle {
        meta: PathBuf,
        reference: Option<String>,
    },
}

impl TransportSpec {
    /// The transport's name as written (`oci`, `docker-archive`, ...).
    pub fn transport(&self) -> &'static str {
        match self {
            TransportSpec::Registry { .. } => "docker",
            TransportSpec::OciLayout { .. } => "oci",
            TransportSpec::DockerArchive { .. } => "docker-archive",
            TransportSpec::DockerDaemon { .. } => "docker-daemon",
            TransportSpec::Containerd { .. } => "containerd",
            TransportSpec::Bundle { .. } => "bundle",
        }
    }
}

/// Splits `PATH[:REF]` where REF may itself hold a `:` (a tag) or `@` (a digest):
/// the path ends at the first `:` after which no `/` follows, as skopeo does.
fn path_and_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.find(':') {
        Some(i) if !rest[i + 1..].is_empty() => {
            (PathBuf::from(&rest[..i]), Some(rest[i + 1..].to_string()))
        }
        Some(i) => (PathBuf::from(&rest[..i]), None),
        None => (PathBuf::from(rest), None),
    }
}

/// Parses one endpoint as written on the command line. `None` when `input` names
/// no transport (a plain registry reference, for `save`'s lists).
pub fn parse_transport(input: &str) -> Result<Option<TransportSpec>, String> {
    let Some((scheme, rest)) = input.split_once(':') else {
        return Ok(None);
    };
    let spec = match scheme {
        "docker" => {
            let reference = rest.strip_prefix("//").ok_or_else(|| {
                crate::tr!(
                    "{input}: write docker://REFERENCE",
                    "{input}: 应写作 docker://REFERENCE"
                )
            })?;
            TransportSpec::Registry {
                reference: reference.to_string(),
            }
        }
        "oci" => {
            let (dir, reference) = path_and_ref(rest);
            TransportSpec::OciLayout { dir, reference }
        }
        "docker-archive" => {
            let (file, reference) = path_and_ref(rest);
            TransportSpec::DockerArchive { file, reference }
        }
        "bundle" => {
            let (meta, reference) = path_and_ref(rest);
            TransportSpec::Bundle { meta, reference }
        }
        "docker-daemon" => TransportSpec::DockerDaemon {
            reference: rest.to_string(),
        },
        "containerd" => TransportSpec::Containerd {
            reference: rest.to_string(),
        },
        _ => return Ok(None),
    };
    let empty = match &spec {
        TransportSpec::Registry { reference }
        | TransportSpec::DockerDaemon { reference }
        | TransportSpec::Containerd { reference } => reference.is_empty(),
        TransportSpec::OciLayout { dir, .. }
        | TransportSpec::DockerArchive { file: dir, .. }
        | TransportSpec::Bundle { meta: dir, .. } => dir.as_os_str().is_empty(),
    };
    if empty {
        return Err(crate::tr!(
            "{input}: the {} transport needs a reference or a path after the colon",
            "{input}: {} 传输方式的冒号后需要引用或路径",
            spec.transport()
        ));
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_like_skopeo() {
        assert_eq!(
            parse_transport("docker://127.0.0.1:5000/a/b:1").unwrap(),
            Some(TransportSpec::Registry {
                reference: "127.0.0.1:5000/a/b:1".into()
            })
        );
        assert_eq!(
            parse_transport("oci:/tmp/lay:app:v1").unwrap(),
            Some(TransportSpec::OciLayout {
                dir: "/tmp/lay".into(),
                reference: Some("app:v1".into())
            })
        );
        assert_eq!(
            parse_transport("docker-archive:x.tar").unwrap(),
            Some(TransportSpec::DockerArchive {
                file: "x.tar".into(),
                reference: None
            })
        );
        assert_eq!(
            parse_transport("bundle:d/m.yaml:lib/a:1").unwrap(),
            Some(TransportSpec::Bundle {
                meta: "d/m.yaml".into(),
                reference: Some("lib/a:1".into())
            })
        );
        // A registry reference with a port is not a transport.
        assert_eq!(parse_transport("127.0.0.1:5000/a:1").unwrap(), None);
        assert_eq!(parse_transport("nginx:1").unwrap(), None);
        assert!(parse_transport("docker:nginx").is_err());
        assert!(parse_transport("oci:").is_err());
    }
}
