//! Save's sources besides registries, in arguments and list lines as `ferry copy`
//! takes them: `oci:DIR[:REF]`, `docker-archive:FILE[:REF]`, `docker-daemon:REF`
//! and `bundle:META[:REF]`. Each line is resolved like a registry reference (its
//! manifests read and checked, the platform filter applied) into images whose
//! blobs then stream from the file or engine into the bundle.
//!
//! Names: an image keeps the name its file gives it (`docker save`'s RepoTags, an
//! OCI layout's `ref.name`, a bundle's own record), read as docker reads a name
//! (`app:1` is `docker.io/library/app:1`); a nameless one (a bare tag or a digest)
//! takes the folder or file name as its repository, or the line's `-> TARGET`.

use super::plan::SaveImage;
use super::Run;
use crate::engine::copy::endpoints::{file_images, file_name};
use crate::engine::resolve::{rename_target, resolve_manifests, ImageRequest, ResolvedImage};
use crate::reference::Reference;
use crate::transport::{SharedSource, TransportSpec};
use anyhow::{anyhow, Result};
use std::sync::Arc;

/// The transport of a request that names a file or an engine; `None` for a
/// registry reference (plain, or `docker://`).
pub(super) fn local_spec(request: &ImageRequest) -> Option<TransportSpec> {
    match crate::transport::parse_transport(&request.fetch) {
        Ok(Some(TransportSpec::Registry { .. })) | Ok(None) | Err(_) => None,
        Ok(Some(spec)) => Some(spec),
    }
}

/// What the local lines gave: their images, each with the index of its line, and
/// the lines that failed, with why.
#[derive(Default)]
pub(super) struct Local {
    pub images: Vec<(usize, SaveImage)>,
    pub failed: Vec<(String, String)>,
}

/// Resolves every local line (`(index, request, transport)`); a line that cannot
/// be read fails alone.
pub(super) async fn resolve(
    run: &Run<'_>,
    requests: Vec<(usize, &ImageRequest, TransportSpec)>,
) -> Local {
    let mut out = Local::default();
    for (i, request, spec) in requests {
        match one_line(run, request, &spec).await {
            Ok(images) => out.images.extend(images.into_iter().map(|img| (i, img))),
            Err(e) => {
                let why = crate::engine::report::describe(&e);
                run.reporter.warn(&format!("{}: {why}", request.input));
                out.failed.push((request.input.clone(), why));
            }
        }
    }
    out
}

/// One image a line names, before its manifests are read.
struct Listed {
    /// The name in reports and the meta.
    label: String,
    /// Where it goes: registry, repository and tag as the meta records them.
    reference: Reference,
    /// The repository and reference to look it up by at the source.
    lookup: (String, String),
    /// For a referrer (a bundle's signature or attestation): what it refers to.
    subject: Option<crate::digest::Digest>,
    /// `repository:tag` at the target, from the line or the bundle.
    rename: Option<String>,
}

async fn one_line(
    run: &Run<'_>,
    request: &ImageRequest,
    spec: &TransportSpec,
) -> Result<Vec<SaveImage>> {
    let rename = match request.rename.as_deref() {
        Some(r) => Some(
            rename_target(r)
                .map_err(|e| anyhow!(crate::tr!("rename target: {e}", "重命名目标: {e}")))?,
        ),
        None => None,
    };
    let (source, listed) = match spec {
        TransportSpec::Bundle { meta, reference } => {
            bundle_images(run, meta, reference.as_deref(), &request.input)?
        }
        _ => {
            let (source, wanted) = file_images(spec).await?.ok_or_else(|| {
                anyhow!(crate::tr!(
                    "the {} transport cannot be a source of save",
                    "{} 传输方式不能作为 save 的源",
                    spec.transport()
                ))
            })?;
            let listed = file_listing(spec, &request.input, wanted, rename.as_deref())?;
            (source, listed)
        }
    };
    let images_only = listed.iter().filter(|l| l.subject.is_none()).count();
    if rename.is_some() && images_only > 1 {
        return Err(anyhow!(crate::tr!(
            "one -> name for {images_only} images; name one image (TRANSPORT:PATH:REF -> NAME) or leave the name out",
            "为 {images_only} 个镜像只给了一个 -> 名称; 请指定一个镜像 (TRANSPORT:PATH:REF -> NAME), 或不写名称"
        )));
    }
    let mut images = Vec::new();
    for l in listed {
        let found = resolve_manifests(
            source.as_ref(),
            &l.lookup.0,
            &l.lookup.1,
            &l.label,
            &run.opts.platforms,
        )
        .await
        .map_err(|e| anyhow!("{}: {e}", l.label))?;
        let target = format!(
            "{}#{}/{}",
            source.describe(),
            l.reference.registry,
            l.reference.repository
        );
        images.push(SaveImage {
            resolved: ResolvedImage {
                input: l.label,
                reference: l.reference,
                top: found.top,
                children: found.children,
                blobs: found.blobs,
                rename: rename.clone().or(l.rename),
                subject: l.subject,
            },
            source: source.clone(),
            target,
        });
    }
    Ok(images)
}

/// The images of a bundle (all, or the one REF names), under `--trust` only once
/// its signature checked out; each keeps its own record's names.
fn bundle_images(
    run: &Run<'_>,
    meta: &std::path::Path,
    reference: Option<&str>,
    input: &str,
) -> Result<(SharedSource, Vec<Listed>)> {
    let source = Arc::new(crate::engine::trusted::open_source(
        meta,
        &[],
        run.opts.trust.as_ref(),
        run.reporter,
    )?);
    let wanted: Vec<String> = reference.iter().map(|r| r.to_string()).collect();
    let selected = crate::engine::export::select(source.bundle(), &wanted)?;
    let one = selected.len() == 1 && reference.is_some();
    let listed = selected
        .into_iter()
        .map(|image| Listed {
            label: if one {
                input.to_string()
            } else {
                format!("{input}:{}", image.reference)
            },
            reference: Reference {
                registry: image.registry.clone(),
                repository: image.repository.clone(),
                tag: image.tag.clone(),
                digest: None,
            },
            lookup: (image.repository.clone(), image.digest.to_string()),
            subject: image.subject.clone(),
            rename: image.target.clone(),
        })
        .collect();
    let source: SharedSource = source;
    Ok((source, listed))
}

/// The images of a layout, archive or engine export, named as their file names
/// them (see the module notes).
fn file_listing(
    spec: &TransportSpec,
    input: &str,
    wanted: Vec<(Option<String>, String)>,
    rename: Option<&str>,
) -> Result<Vec<Listed>> {
    let one = wanted.len() == 1;
    wanted
        .into_iter()
        .map(|(name, reference)| {
            let named = file_name(name.as_deref(), &reference);
            let label = if one {
                input.to_string()
            } else {
                format!("{input}:{}", name.as_deref().unwrap_or(&reference))
            };
            let written = match (&named.repository, &named.tag) {
                (Some(repo), Some(tag)) => format!("{repo}:{tag}"),
                (Some(repo), None) => repo.clone(),
                (None, tag) => match (rename, default_repository(spec)) {
                    (Some(r), _) => r.to_string(),
                    (None, Some(repo)) => format!("{repo}:{}", tag.as_deref().unwrap_or("latest")),
                    (None, None) => {
                        return Err(anyhow!(crate::tr!(
                            "{label} has no name to save it under: give one with `{input} -> REPOSITORY:TAG`",
                            "{label} 没有可用于保存的名称: 请写成 `{input} -> REPOSITORY:TAG`"
                        )))
                    }
                },
            };
            let reference_of = Reference::parse(&written)
                .map_err(|e| anyhow!("{label}: {written}: {e}"))?;
            Ok(Listed {
                label,
                reference: Reference {
                    digest: None,
                    ..reference_of
                },
                lookup: (named.repository.unwrap_or_default(), named.lookup),
                subject: None,
                rename: None,
            })
        })
        .collect()
}

/// The repository a nameless image of a layout or archive goes by: the folder's
/// or file's name (`app.tar` → `app`), when it is a valid repository name.
fn default_repository(spec: &TransportSpec) -> Option<String> {
    let path = match spec {
        TransportSpec::OciLayout { dir, .. } => dir,
        TransportSpec::DockerArchive { file, .. } => file,
        _ => return None,
    };
    let stem = path.file_name()?.to_str()?;
    let stem = stem
        .strip_suffix(".tar")
        .or_else(|| stem.strip_suffix(".tar.gz"))
        .unwrap_or(stem)
        .to_ascii_lowercase();
    crate::reference::valid_repository(&stem).then_some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &str) -> TransportSpec {
        TransportSpec::OciLayout {
            dir: dir.into(),
            reference: None,
        }
    }

    fn one(spec: &TransportSpec, name: Option<&str>, rename: Option<&str>) -> Result<Listed> {
        let wanted = vec![(
            name.map(str::to_string),
            "sha256:".to_string() + &"a".repeat(64),
        )];
        file_listing(spec, "oci:x", wanted, rename).map(|mut l| l.remove(0))
    }

    #[test]
    fn file_images_keep_their_names_as_docker_reads_them() {
        let spec = layout("/tmp/lay");
        let l = one(&spec, Some("127.0.0.1:5000/library/base:1"), None).unwrap();
        assert_eq!(
            (
                l.reference.registry.as_str(),
                l.reference.repository.as_str()
            ),
            ("127.0.0.1:5000", "library/base")
        );
        assert_eq!(l.reference.tag.as_deref(), Some("1"));
        let l = one(&spec, Some("app:2"), None).unwrap();
        assert_eq!(l.reference.repository, "library/app");
        assert_eq!(l.lookup.0, "app", "looked up as the file names it");
    }

    #[test]
    fn a_nameless_image_takes_the_folder_name_or_the_line_s_target() {
        let l = one(&layout("/tmp/My-App"), Some("v1"), None).unwrap();
        assert_eq!(l.reference.repository, "library/my-app");
        assert_eq!(l.reference.tag.as_deref(), Some("v1"));
        let l = one(&layout("/tmp/lay"), None, Some("team/app:3")).unwrap();
        assert_eq!(l.reference.repository, "team/app");
        let archive = TransportSpec::DockerArchive {
            file: "/x/Bad Name!.tar".into(),
            reference: None,
        };
        let e = one(&archive, None, None).err().unwrap();
        assert!(e.to_string().contains("-> REPOSITORY:TAG"), "{e}");
        assert_eq!(
            default_repository(&TransportSpec::DockerArchive {
                file: "/x/web.tar".into(),
                reference: None
            })
            .as_deref(),
            Some("web")
        );
    }

    #[test]
    fn only_file_and_engine_transports_are_local() {
        let req = |s: &str| ImageRequest::plain(s);
        assert!(local_spec(&req("oci:/tmp/x")).is_some());
        assert!(local_spec(&req("bundle:m.yaml:app:1")).is_some());
        assert!(local_spec(&req("docker://127.0.0.1:5000/a:1")).is_none());
        assert!(local_spec(&req("127.0.0.1:5000/a:1")).is_none());
        assert!(
            local_spec(&req("docker:24-dind")).is_none(),
            "the image `docker`"
        );
    }
}
