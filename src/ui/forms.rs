//! From the page's forms to `ferry` command lines. The UI has no engine calls of its
//! own: every job is the argument vector a terminal user would type, checked by the
//! same clap parser, so the command shown on the page is exactly what runs.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobForm {
    Save {
        list: String,
        #[serde(default)]
        src: Option<String>,
        #[serde(default)]
        bases: Vec<String>,
        #[serde(default)]
        files: Option<String>,
        #[serde(default)]
        max_file_size: Option<String>,
        #[serde(default)]
        compress: Option<String>,
        #[serde(default)]
        platform: Option<String>,
        #[serde(default)]
        referrers: bool,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        sign: Option<String>,
    },
    Upload {
        meta: String,
        #[serde(default)]
        dst: Option<String>,
        #[serde(default)]
        verify: Option<String>,
        /// Push a bundle that lacks images which failed at save time.
        #[serde(default)]
        allow_partial: bool,
    },
    Sync {
        list: String,
        #[serde(default)]
        src: Option<String>,
        #[serde(default)]
        dst: Option<String>,
        #[serde(default)]
        platform: Option<String>,
        #[serde(default)]
        referrers: bool,
    },
    Verify {
        meta: String,
        #[serde(default)]
        size_only: bool,
    },
    Copy {
        src: String,
        dst: String,
        #[serde(default)]
        platform: Option<String>,
        #[serde(default)]
        referrers: bool,
    },
    Export {
        meta: String,
        oci: String,
    },
    Sign {
        meta: String,
        #[serde(default)]
        key: Option<String>,
    },
}

/// What the forms need to know about this `ferry ui`.
pub struct Context<'a> {
    /// `--out` of `ferry ui`: where saves go.
    pub out: &'a Path,
    /// `--config` as given to `ferry ui`, passed on to every job.
    pub config: Option<&'a Path>,
    /// Where pasted image lists are written (`DIR/.ferry-ui/lists`).
    pub lists: &'a Path,
}

/// A job ready to queue, with the list file it reads (written only when queued).
pub struct Built {
    pub kind: &'static str,
    pub title: String,
    pub argv: Vec<String>,
    pub images: Vec<String>,
    pub list: Option<(PathBuf, String)>,
}

/// A value from the page: trimmed, `None` when empty; refused when it would be read
/// as an option (a leading `-`) or spans lines.
fn value(v: &Option<String>, what: &str) -> Result<Option<String>, String> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => required(s, what).map(Some),
    }
}

fn required(v: &str, what: &str) -> Result<String, String> {
    let s = v.trim();
    if s.is_empty() {
        return Err(crate::tr!(
            "{what}: this field is required",
            "{what}: 此项必填"
        ));
    }
    if s.starts_with('-') || s.contains(['\n', '\r', '\0']) {
        return Err(crate::tr!(
            "{what}: {s:?} is not a valid value (it may not start with '-' or span lines)",
            "{what}: {s:?} 不是有效的值 (不能以 '-' 开头, 也不能跨行)"
        ));
    }
    Ok(s.to_string())
}

/// The image list as written to its file, and the references it names (the
/// source side of `SOURCE -> TARGET` lines), as the engine will name them.
fn image_list(text: &str) -> Result<(String, Vec<String>), String> {
    let text = text.replace("\r\n", "\n");
    let lines = crate::cli::run::parse_list(&text);
    if lines.is_empty() {
        return Err(crate::i18n::t(
            "the image list is empty: paste one image reference a line (e.g. nginx:1.27)",
            "镜像列表为空: 请每行粘贴一个镜像引用 (例如 nginx:1.27)",
        )
        .to_string());
    }
    let images = lines
        .iter()
        .map(|l| crate::config::rewrite::parse_line(l).source)
        .collect();
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok((text, images))
}

/// `ferry COMMAND [--config FILE]`: how every job that reads cfg.yaml starts.
fn command(name: &str, ctx: &Context) -> Vec<String> {
    let mut argv = vec![s("ferry"), s(name)];
    if let Some(c) = ctx.config {
        argv.push("--config".into());
        argv.push(c.display().to_string());
    }
    argv
}

/// `FLAG VALUE` when the field has a value, checked by [`value`] (named `what` in
/// its error); nothing for an empty field.
fn push_value(
    argv: &mut Vec<String>,
    flag: &str,
    v: &Option<String>,
    what: &str,
) -> Result<(), String> {
    push(argv, flag, value(v, what)?);
    Ok(())
}

/// `--platform LIST` and `--with-referrers`: the image filters save, sync and copy
/// jobs share.
fn push_image_filters(
    argv: &mut Vec<String>,
    platform: &Option<String>,
    referrers: bool,
) -> Result<(), String> {
    push_value(
        argv,
        "--platform",
        platform,
        crate::i18n::t("platforms", "平台"),
    )?;
    if referrers {
        argv.push(s("--with-referrers"));
    }
    Ok(())
}

/// The target a job's title names: the one given, else cfg.yaml's first.
fn target_or_first(dst: Option<String>) -> String {
    dst.unwrap_or_else(|| crate::i18n::t("the first cfg target", "cfg 中的第一个目标").into())
}

fn push(argv: &mut Vec<String>, flag: &str, v: Option<String>) {
    if let Some(v) = v {
        argv.push(flag.into());
        argv.push(v);
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The command line of `form`, for job `id` (which names its list file).
pub fn build(form: &JobForm, ctx: &Context, id: u64) -> Result<Built, String> {
    let t = crate::i18n::t;
    let list_path = ctx.lists.join(format!("job-{id}.list"));
    Ok(match form {
        JobForm::Save {
            list,
            src,
            bases,
            files,
            max_file_size,
            compress,
            platform,
            referrers,
            prefix,
            sign,
        } => {
            let (text, images) = image_list(list)?;
            let mut argv = command("save", ctx);
            argv.extend([
                s("--list"),
                list_path.display().to_string(),
                s("--out"),
                ctx.out.display().to_string(),
            ]);
            push_value(&mut argv, "--src", src, t("source registry", "源镜像仓库"))?;
            for b in bases {
                let base = Some(b.clone());
                push_value(&mut argv, "--inc", &base, t("base bundle", "基础包"))?;
            }
            push_value(&mut argv, "--files", files, t("data files", "数据文件数"))?;
            push_value(
                &mut argv,
                "--max-file-size",
                max_file_size,
                t("largest data file", "数据文件大小上限"),
            )?;
            push(
                &mut argv,
                "--compress",
                value(compress, t("compression", "压缩"))?.filter(|c| c != "none"),
            );
            push_image_filters(&mut argv, platform, *referrers)?;
            push_value(
                &mut argv,
                "--prefix",
                prefix,
                t("file name prefix", "文件名前缀"),
            )?;
            push_value(&mut argv, "--sign", sign, t("signing key", "签名密钥"))?;
            let kind = if bases.is_empty() {
                t("full", "完整")
            } else {
                t("incremental", "增量")
            };
            Built {
                kind: "save",
                title: crate::tr!(
                    "save {} images ({kind})",
                    "保存 {} 个镜像 ({kind})",
                    images.len()
                ),
                argv,
                images,
                list: Some((list_path, text)),
            }
        }
        JobForm::Upload {
            meta,
            dst,
            verify,
            allow_partial,
        } => {
            let meta = required(meta, t("bundle", "镜像包"))?;
            let mut argv = command("upload", ctx);
            argv.push(meta.clone());
            let dst = value(dst, t("target", "目标"))?;
            push(&mut argv, "--dst", dst.clone());
            push(
                &mut argv,
                "--verify",
                value(verify, t("verification", "校验方式"))?.filter(|v| v != "full"),
            );
            if *allow_partial {
                argv.push(s("--allow-partial"));
            }
            Built {
                kind: "upload",
                title: crate::tr!(
                    "upload {} to {}",
                    "上传 {} 到 {}",
                    file_name(&meta),
                    target_or_first(dst)
                ),
                images: bundle_images(Path::new(&meta)),
                argv,
                list: None,
            }
        }
        JobForm::Sync {
            list,
            src,
            dst,
            platform,
            referrers,
        } => {
            let (text, images) = image_list(list)?;
            let mut argv = command("sync", ctx);
            argv.extend([s("--list"), list_path.display().to_string()]);
            push_value(&mut argv, "--src", src, t("source registry", "源镜像仓库"))?;
            let dst = value(dst, t("target", "目标"))?;
            push(&mut argv, "--dst", dst.clone());
            push_image_filters(&mut argv, platform, *referrers)?;
            Built {
                kind: "sync",
                title: crate::tr!(
                    "sync {} images to {}",
                    "同步 {} 个镜像到 {}",
                    images.len(),
                    target_or_first(dst)
                ),
                argv,
                images,
                list: Some((list_path, text)),
            }
        }
        JobForm::Verify { meta, size_only } => {
            let meta = required(meta, t("bundle", "镜像包"))?;
            let mut argv = vec![s("ferry"), s("verify"), meta.clone()];
            if *size_only {
                argv.push(s("--size-only"));
            }
            Built {
                kind: "verify",
                title: crate::tr!("verify {}", "校验 {}", file_name(&meta)),
                argv,
                images: Vec::new(),
                list: None,
            }
        }
        JobForm::Copy {
            src,
            dst,
            platform,
            referrers,
        } => {
            let src = required(src, t("source", "源"))?;
            let dst = required(dst, t("destination", "目的地"))?;
            let mut argv = command("copy", ctx);
            argv.extend([src.clone(), dst.clone()]);
            push_image_filters(&mut argv, platform, *referrers)?;
            Built {
                kind: "copy",
                title: crate::tr!("copy {src} to {dst}", "复制 {src} 到 {dst}"),
                argv,
                images: vec![src],
                list: None,
            }
        }
        JobForm::Sign { meta, key } => {
            let meta = required(meta, t("bundle", "镜像包"))?;
            let mut argv = command("sign", ctx);
            argv.push(meta.clone());
            push_value(&mut argv, "--key", key, t("signing key", "签名密钥"))?;
            Built {
                kind: "sign",
                title: crate::tr!("sign {}", "签名 {}", file_name(&meta)),
                argv,
                images: Vec::new(),
                list: None,
            }
        }
        JobForm::Export { meta, oci } => {
            let meta = required(meta, t("bundle", "镜像包"))?;
            let oci = required(oci, t("OCI layout folder", "OCI 目录"))?;
            Built {
                kind: "export",
                title: crate::tr!("export {} to {oci}", "导出 {} 到 {oci}", file_name(&meta)),
                argv: vec![s("ferry"), s("export"), meta, s("--oci"), oci],
                images: Vec::new(),
                list: None,
            }
        }
    })
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// The images an upload names in its reports: the bundle's own references.
fn bundle_images(meta: &Path) -> Vec<String> {
    crate::bundle::meta::Meta::load(meta)
        .map(|(m, _)| {
            m.images
                .into_iter()
                .filter(|i| i.subject.is_none())
                .map(|i| i.reference)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> (PathBuf, PathBuf) {
        (PathBuf::from("data"), PathBuf::from("data/.ferry-ui/lists"))
    }

    #[test]
    fn a_save_form_is_the_save_command_line() {
        let (out, lists) = ctx();
        let c = Context {
            out: &out,
            config: None,
            lists: &lists,
        };
        let form: JobForm = serde_json::from_value(serde_json::json!({
            "kind": "save", "list": "# team\nnginx:1.27\r\napp:1 -> team/app:1\n",
            "bases": ["data/20260101/img_full_202601010000_meta.yaml"],
            "files": "3", "compress": "zstd", "platform": " ", "referrers": true
        }))
        .unwrap();
        let b = build(&form, &c, 7).unwrap();
        assert_eq!(
            b.argv,
            [
                "ferry",
                "save",
                "--list",
                "data/.ferry-ui/lists/job-7.list",
                "--out",
                "data",
                "--inc",
                "data/20260101/img_full_202601010000_meta.yaml",
                "--files",
                "3",
                "--compress",
                "zstd",
                "--with-referrers"
            ]
        );
        assert_eq!(b.images, ["nginx:1.27", "app:1"]);
        assert!(crate::cli::parse::try_parse(b.argv).is_ok());
        let (_, text) = b.list.unwrap();
        assert!(text.ends_with("team/app:1\n") && !text.contains('\r'));
    }

    #[test]
    fn upload_sync_verify_export_and_sign_forms_parse_as_their_commands() {
        let (out, lists) = ctx();
        let cfg = PathBuf::from("site/cfg.yaml");
        let c = Context {
            out: &out,
            config: Some(&cfg),
            lists: &lists,
        };
        let cases = [
            (
                serde_json::json!({"kind": "upload", "meta": "b_meta.yaml", "dst": "airgap", "verify": "size"}),
                vec![
                    "ferry",
                    "upload",
                    "--config",
                    "site/cfg.yaml",
                    "b_meta.yaml",
                    "--dst",
                    "airgap",
                    "--verify",
                    "size",
                ],
            ),
            (
                serde_json::json!({"kind": "sync", "list": "a:1\n", "src": "hub", "dst": "10.0.0.1:5000/ns", "platform": "linux/amd64"}),
                vec![
                    "ferry",
                    "sync",
                    "--config",
                    "site/cfg.yaml",
                    "--list",
                    "data/.ferry-ui/lists/job-2.list",
                    "--src",
                    "hub",
                    "--dst",
                    "10.0.0.1:5000/ns",
                    "--platform",
                    "linux/amd64",
                ],
            ),
            (
                serde_json::json!({"kind": "verify", "meta": "b_meta.yaml", "size_only": true}),
                vec!["ferry", "verify", "b_meta.yaml", "--size-only"],
            ),
            (
                serde_json::json!({"kind": "export", "meta": "b_meta.yaml", "oci": "out/layout"}),
                vec!["ferry", "export", "b_meta.yaml", "--oci", "out/layout"],
            ),
            (
                serde_json::json!({"kind": "copy", "src": "docker://h/a:1", "dst": "oci:/srv/a", "referrers": true}),
                vec![
                    "ferry",
                    "copy",
                    "--config",
                    "site/cfg.yaml",
                    "docker://h/a:1",
                    "oci:/srv/a",
                    "--with-referrers",
                ],
            ),
            (
                serde_json::json!({"kind": "sign", "meta": "b_meta.yaml", "key": "k"}),
                vec![
                    "ferry",
                    "sign",
                    "--config",
                    "site/cfg.yaml",
                    "b_meta.yaml",
                    "--key",
                    "k",
                ],
            ),
        ];
        for (form, want) in cases {
            let form: JobForm = serde_json::from_value(form).unwrap();
            let b = build(&form, &c, 2).unwrap();
            assert_eq!(b.argv, want);
            let parsed = crate::cli::parse::try_parse(b.argv);
            assert!(parsed.is_ok(), "{want:?}: {:?}", parsed.err());
        }
    }

    #[test]
    fn values_that_would_be_options_and_empty_lists_are_refused() {
        let (out, lists) = ctx();
        let c = Context {
            out: &out,
            config: None,
            lists: &lists,
        };
        let upload = JobForm::Upload {
            meta: "m_meta.yaml".into(),
            dst: Some("--config=/etc/passwd".into()),
            verify: None,
            allow_partial: false,
        };
        assert!(build(&upload, &c, 1).is_err());
        let save = JobForm::Save {
            list: "# only a comment\n\n".into(),
            src: None,
            bases: vec![],
            files: None,
            max_file_size: None,
            compress: None,
            platform: None,
            referrers: false,
            prefix: None,
            sign: None,
        };
        assert!(build(&save, &c, 1).is_err());
    }
}
