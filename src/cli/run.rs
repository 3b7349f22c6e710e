//! Command handlers: read inputs, build the engine's options, print results.

use super::args::{
    Cli, Command, Compression, GlobalArgs, LoginArgs, SaveArgs, UploadArgs, VerifyArgs, VerifyMode,
};
use crate::bundle::reader::{Bundle, VerifyLevel};
use crate::config::{self, rewrite, Config, NamedRegistry};
use crate::engine::platform::PlatformFilter;
use crate::engine::registries::{Registries, Timeouts};
use crate::engine::report::{Reporter, Verbosity};
use crate::engine::retry::RetryPolicy;
use crate::engine::save::{save, ImageRequest, SaveOptions};
use crate::engine::upload::{upload, Destination, UploadOptions};
use crate::registry::auth::Credentials;
use crate::registry::RegistryOptions;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a command ended, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Some images or checks failed; the rest was done.
    Failed,
}

pub async fn run(cli: Cli, cancel: CancellationToken) -> Result<Outcome> {
    let reporter = Reporter::new(verbosity(&cli.global));
    match cli.command {
        Command::Save(args) => run_save(args, &cli.global, &reporter, &cancel).await,
        Command::Upload(args) => run_upload(args, &cli.global, &reporter, &cancel).await,
        Command::Verify(args) => run_verify(args, &reporter),
        Command::Login(args) => run_login(args, &cli.global, &reporter).await,
        Command::Logout(args) => {
            let removed = config::docker::erase(
                args.registry
                    .trim_start_matches("https://")
                    .trim_start_matches("http://"),
            )?;
            reporter.warn(&if removed {
                format!("removed the credentials for {}", args.registry)
            } else {
                format!("no stored credentials for {}", args.registry)
            });
            Ok(Outcome::Success)
        }
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "ferry", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
    }
}

fn verbosity(g: &GlobalArgs) -> Verbosity {
    if g.quiet {
        Verbosity::Quiet
    } else if g.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

/// The cfg file in force (`--config`, ./cfg.yaml or ./data/cfg.yaml) with `--opt`
/// applied; keys whose feature is not there yet are reported, not ignored.
fn load_config(g: &GlobalArgs, reporter: &Reporter) -> Result<Option<Config>> {
    let mut cfg = match config::find(g.config.as_deref()) {
        Some(path) => Some(Config::load(&path)?),
        None => None,
    };
    if let Some(spec) = &g.opt {
        cfg.get_or_insert_with(Config::default)
            .apply_overrides(spec)?;
    }
    if let Some(lang) = cfg.as_ref().and_then(|c| c.file.lang.as_deref()) {
        crate::i18n::init(Some(lang));
    }
    if let Some(c) = &cfg {
        for key in c.unsupported() {
            reporter.warn(&if crate::i18n::is_chinese() {
                format!("{}: 此版本的 ferry 尚不支持 `{key}`, 本次运行中不生效", c.path)
            } else {
                format!("{}: `{key}` is not supported by this version of ferry yet; it has no effect on this run", c.path)
            });
        }
    }
    Ok(cfg)
}

fn retry_policy(g: &GlobalArgs, cfg: Option<&Config>) -> RetryPolicy {
    let retries = g
        .retries
        .or(cfg.and_then(|c| c.file.retries))
        .unwrap_or(RetryPolicy::default().retries);
    RetryPolicy {
        retries,
        ..RetryPolicy::default()
    }
}

fn registries(
    g: &GlobalArgs,
    cfg: Option<&Config>,
    used: &[&NamedRegistry],
    extra: Option<(String, RegistryOptions)>,
) -> Result<Registries> {
    let mut configured = match cfg {
        Some(c) => c.registry_options(used)?,
        None => Default::default(),
    };
    if let Some((host, opts)) = extra {
        configured.entry(host).or_insert(opts);
    }
    let timeouts = Timeouts {
        connect: Some(Duration::from_secs(g.connect_timeout.max(1))),
        read: Some(Duration::from_secs(g.read_timeout.max(1))),
    };
    Ok(Registries::new(configured, timeouts))
}

fn jobs(arg: Option<u16>, cfg: Option<&Config>) -> usize {
    arg.map(usize::from)
        .or(cfg.and_then(|c| c.file.maxconn))
        .unwrap_or(8)
        .max(1)
}

/// Reads image references from a list: one a line, blank lines and `#` comments skipped.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = if path == Path::new("-") {
        read_stdin()?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the image list {}", path.display()))?
    };
    Ok(parse_list(&text))
}

fn read_stdin() -> Result<String> {
    let mut text = String::new();
    for line in std::io::stdin().lock().lines() {
        text.push_str(&line.context("cannot read the image list from standard input")?);
        text.push('\n');
    }
    Ok(text)
}

async fn run_save(
    args: SaveArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    let cfg = cfg.as_ref();
    let mut lines = args.images.clone();
    match &args.list {
        Some(path) => lines.extend(read_list(path)?),
        None if lines.is_empty() && !std::io::stdin().is_terminal() => {
            lines.extend(parse_list(&read_stdin()?))
        }
        None => {}
    }
    let source = match cfg {
        Some(c) => c.source(args.src.as_deref())?,
        None if args.src.is_some() => bail!("--src names a cfg.yaml source registry, but no cfg.yaml was found (give --config FILE)"),
        None => None,
    };
    let mut requests = Vec::new();
    for line in &lines {
        let entry = rewrite::parse_line(line);
        let fetch = match source {
            Some(src) => {
                let (fetch, note) = rewrite::at_source(&entry.source, &src.host);
                if let Some(n) = note {
                    reporter.info(&n);
                }
                fetch
            }
            None => entry.source.clone(),
        };
        requests.push(ImageRequest {
            input: entry.source,
            fetch,
            rename: entry.rename,
        });
    }
    let file = cfg.map(|c| &c.file);
    let compress = match args.compress {
        Some(c) => c == Compression::Zstd,
        None => file.and_then(|f| f.compressor.as_deref()) == Some("zstd"),
    };
    let singlefile = file.and_then(|f| f.singlefile).unwrap_or(false);
    let files = match args.files {
        Some(n) => usize::from(n),
        None if singlefile => 1,
        None => file.and_then(|f| f.files).unwrap_or(2),
    };
    let platform = args
        .platform
        .clone()
        .or_else(|| file.and_then(|f| f.platform.clone()))
        .unwrap_or_default();
    let max_file_size = match args
        .max_file_size
        .clone()
        .or_else(|| file.and_then(|f| f.maxfilesize.clone()))
    {
        Some(s) => Some(config::parse_size(&s).map_err(|e| anyhow!("--max-file-size: {e}"))?),
        None => None,
    };
    let opts = SaveOptions {
        out: args.out.clone(),
        prefix: args
            .prefix
            .clone()
            .or_else(|| file.and_then(|f| f.outprefix.clone()))
            .unwrap_or_else(|| "img".into()),
        files,
        jobs: jobs(args.jobs, cfg),
        bases: args.bases.clone(),
        retry: retry_policy(g, cfg),
        platforms: PlatformFilter::parse(&platform).map_err(|e| anyhow!("--platform: {e}"))?,
        max_file_size,
        compress,
    };
    let outcome = save(
        requests,
        &opts,
        &registries(g, cfg, &source.into_iter().collect::<Vec<_>>(), None)?,
        reporter,
        cancel,
    )
    .await?;
    outcome.summary.print(reporter);
    println!("{}", outcome.meta_path.display());
    Ok(if outcome.summary.is_success() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

async fn run_upload(
    args: UploadArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    let cfg = cfg.as_ref();
    if let (Some(name), Some(c)) = (&args.dst_name, cfg) {
        c.target(Some(name))?;
    }
    let dst = match (args.dst.as_ref().or(args.dst_name.as_ref()), cfg) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match c.target(None)? {
            Some(t) => t.name.clone(),
            None => bail!(
                "no target: give --dst HOST[:PORT][/NAMESPACE], or a target registry in {}",
                c.path
            ),
        },
        (None, None) => bail!(
            "no target: give --dst HOST[:PORT][/NAMESPACE] (or a cfg.yaml with a target registry)"
        ),
    };
    let named = cfg.and_then(|c| c.targets.iter().find(|t| t.name == dst));
    if let (None, Some(c)) = (named, cfg) {
        // With a cfg, a bare word is a target name, not a host.
        if !dst.contains(['.', ':', '/']) && dst != "localhost" {
            c.target(Some(&dst))?;
        }
    }
    let (destination, extra) = match named {
        Some(t) => (
            Destination {
                host: t.host.clone(),
                namespace: String::new(),
                plain_http: t.options.plain_http,
                rewrite: t.repository.clone(),
            },
            None,
        ),
        None => {
            let d = Destination::parse(&dst)?;
            let extra = d.plain_http.map(|p| {
                (
                    d.host.clone(),
                    RegistryOptions {
                        plain_http: Some(p),
                        ..RegistryOptions::default()
                    },
                )
            });
            (d, extra)
        }
    };
    let opts = UploadOptions {
        destination,
        jobs: jobs(args.jobs, cfg),
        verify: match args.verify {
            VerifyMode::Full => VerifyLevel::Full,
            VerifyMode::Size => VerifyLevel::Size,
        },
        retry: retry_policy(g, cfg),
    };
    let summary = upload(
        &args.meta,
        &opts,
        &registries(g, cfg, &named.into_iter().collect::<Vec<_>>(), extra)?,
        reporter,
        cancel,
    )
    .await?;
    summary.print(reporter);
    Ok(if summary.is_success() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

async fn run_login(args: LoginArgs, g: &GlobalArgs, reporter: &Reporter) -> Result<Outcome> {
    let (plain_http, host) = match args.registry.split_once("://") {
        Some(("http", h)) => (Some(true), h),
        Some(("https", h)) => (Some(false), h),
        _ => (None, args.registry.as_str()),
    };
    let host = host.trim_end_matches('/');
    if !args.password_stdin {
        bail!("give the password on standard input with --password-stdin (it is never taken as an argument)");
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("empty password on standard input");
    }
    let credentials = Credentials {
        username: args.username.clone(),
        password: password.clone(),
    };
    if !args.no_check {
        let cfg = load_config(g, reporter)?;
        let mut opts = cfg
            .as_ref()
            .map(|c| c.registry_options(&[]))
            .transpose()?
            .and_then(|mut m| m.remove(host))
            .unwrap_or_default();
        opts.credentials = Some(credentials);
        opts.plain_http = plain_http.or(opts.plain_http);
        let client = crate::registry::Client::new(host, &opts)?;
        client
            .ping()
            .await
            .with_context(|| format!("login to {host} failed"))?;
    }
    let stored = config::docker::store(host, &args.username, &password)?;
    reporter.warn(&if crate::i18n::is_chinese() {
        format!("登录成功: {host} 的凭据已保存到 {stored}")
    } else {
        format!("login succeeded: credentials for {host} stored in {stored}")
    });
    Ok(Outcome::Success)
}

fn run_verify(args: VerifyArgs, reporter: &Reporter) -> Result<Outcome> {
    let bundle = Bundle::open(&args.meta).context("cannot open the bundle")?;
    let level = if args.size_only {
        VerifyLevel::Size
    } else {
        VerifyLevel::Full
    };
    match crate::engine::upload::verify_bundle(&bundle, level, reporter) {
        Ok(index) => {
            let bases = if bundle.meta.bases.is_empty() {
                String::new()
            } else {
                format!(
                    ", based on {}",
                    bundle
                        .meta
                        .bases
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let (name, files, blobs, images) = (
                &bundle.meta.name,
                bundle.meta.files.len(),
                index.len(),
                bundle.meta.images.len(),
            );
            reporter.warn(&if crate::i18n::is_chinese() {
                format!("镜像包 {name} 完整: {files} 个数据文件, {blobs} 个数据块, {images} 个镜像{bases}")
            } else {
                format!("bundle {name} is complete: {files} data files, {blobs} blobs, {images} images{bases}")
            });
            Ok(Outcome::Success)
        }
        Err(e) => {
            reporter.warn(&format!("{e:#}"));
            Ok(Outcome::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_blanks_and_comments() {
        assert_eq!(
            parse_list("a\n\n  # note\n b:1 \n#x\n"),
            vec!["a".to_string(), "b:1".to_string()]
        );
    }
}
