//! Command handlers: read inputs, build the engine's options, print results.

use super::args::{
    Cli, Command, Compression, GlobalArgs, LoginArgs, SaveArgs, SourceArgs, SyncArgs, UploadArgs,
    VerifyArgs, VerifyMode,
};
use crate::bundle::reader::VerifyLevel;
use crate::config::{self, rewrite, Config, NamedRegistry};
use crate::engine::cache::BlobCache;
use crate::engine::expand::{self, ListLine};
use crate::engine::notify::Notifier;
use crate::engine::platform::PlatformFilter;
use crate::engine::registries::{Registries, Timeouts};
use crate::engine::report::{describe, Reporter, Verbosity};
use crate::engine::retry::RetryPolicy;
use crate::engine::save::{save, ImageRequest, SaveOptions};
use crate::engine::sync::{sync, SyncOptions};
use crate::engine::upload::{upload, Destination, UploadOptions};
use crate::registry::auth::Credentials;
use crate::registry::RegistryOptions;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A command line or cfg.yaml that asks for something impossible: exit status 2, like
/// clap's own usage errors (the engine's type: it finds some of them).
pub use crate::engine::UsageError;

/// Whether an error is the user's request, not the work: a [`UsageError`] or a
/// cfg.yaml problem anywhere in its chain.
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.is::<UsageError>() || c.is::<config::ConfigError>())
}

/// Whether the command runs until it is stopped (`serve`, `sync --interval`,
/// `--watch` or `--listen`): stopping it is its normal end, with nothing to resume.
pub fn is_daemon(cli: &Cli) -> bool {
    match &cli.command {
        Command::Serve(_) => true,
        Command::Sync(s) => s.interval.is_some() || s.watch || s.listen.is_some(),
        _ => false,
    }
}

pub(super) fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// How a command ended, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Some images or checks failed; the rest was done.
    Failed,
    /// A daemon stopped on request, cleanly (exit 0).
    Stopped,
}

impl Outcome {
    /// A command's outcome by its summary: failed when any image (or check) did.
    pub fn of(summary: &crate::engine::report::Summary) -> Outcome {
        if summary.is_success() {
            Outcome::Success
        } else {
            Outcome::Failed
        }
    }
}

pub async fn run(cli: Cli, cancel: CancellationToken) -> Result<Outcome> {
    crate::engine::report::set_json_logs(cli.global.log_format == super::args::LogFormat::Json);
    let reporter = Reporter::new(verbosity(&cli.global))
        .with_progress_lines(Some(Duration::from_secs(cli.global.progress_interval)));
    run_with(cli, cancel, reporter).await
}

/// [`run`] with a given reporter: `ferry ui` runs its jobs through here, watching them.
pub async fn run_with(
    mut cli: Cli,
    cancel: CancellationToken,
    reporter: Reporter,
) -> Result<Outcome> {
    super::bundle_path::resolve_in(&mut cli.command, &reporter)?;
    match cli.command {
        Command::Save(args) => run_save(args, &cli.global, &reporter, &cancel).await,
        Command::Upload(args) => run_upload(args, &cli.global, &reporter, &cancel).await,
        Command::Sync(args) => run_sync(args, &cli.global, &reporter, &cancel).await,
        Command::Export(args) => {
            let trust =
                super::signing::trust_for(&cli.global, args.trust.trust.as_deref(), &reporter)?;
            super::info::run_export(args, trust.as_ref(), &reporter, &cancel).await
        }
        Command::Ls(args) => {
            let trust = super::signing::trust_for(&cli.global, args.trust.as_deref(), &reporter)?;
            super::info::run_ls(args, trust.as_ref())
        }
        Command::Serve(args) => {
            let trust =
                super::signing::trust_for(&cli.global, args.trust.trust.as_deref(), &reporter)?;
            super::info::run_serve(args, trust.as_ref(), &reporter, &cancel).await
        }
        Command::Sign(args) => super::signing::run_sign(args, &cli.global, &reporter),
        Command::Copy(args) => super::copy::run_copy(args, &cli.global, &reporter, &cancel).await,
        Command::Ui(args) => crate::ui::run(args, &cli.global, &reporter, &cancel).await,
        Command::Inspect(args) => {
            let cfg = load_config(&cli.global, &reporter)?;
            super::info::run_inspect(args, &registries(&cli.global, cfg.as_ref(), &[], None)?).await
        }
        Command::Tags(args) => {
            let cfg = load_config(&cli.global, &reporter)?;
            super::info::run_tags(args, &registries(&cli.global, cfg.as_ref(), &[], None)?).await
        }
        Command::Verify(args) => {
            let trust =
                super::signing::trust_for(&cli.global, args.trust.trust.as_deref(), &reporter)?;
            run_verify(args, trust.as_ref(), &reporter, &cancel)
        }
        Command::Login(args) => run_login(args, &cli.global, &reporter).await,
        Command::Logout(args) => {
            let removed = config::docker::erase(
                args.registry
                    .trim_start_matches("https://")
                    .trim_start_matches("http://"),
            )?;
            reporter.warn(&if !removed.is_empty() {
                crate::tr!(
                    "removed the credentials for {} from {}",
                    "已从 {1} 删除 {0} 的凭据",
                    args.registry,
                    removed.join(", ")
                )
            } else {
                crate::tr!(
                    "no stored credentials for {}",
                    "没有保存 {} 的凭据",
                    args.registry
                )
            });
            Ok(Outcome::Success)
        }
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            if crate::i18n::is_chinese() {
                cmd = super::help_zh::localize(cmd);
            }
            // clap_complete panics on a failed write; a closed pipe (`| head`) is fine.
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "ferry", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(Outcome::Success),
            }
        }
    }
}

pub fn verbosity(g: &GlobalArgs) -> Verbosity {
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
pub(super) fn load_config(g: &GlobalArgs, reporter: &Reporter) -> Result<Option<Config>> {
    let mut cfg = match config::find(g.config.as_deref()) {
        Some(path) => Some(Config::load(&path)?),
        None => None,
    };
    if let Some(spec) = &g.opt {
        cfg.get_or_insert_with(|| Config {
            path: crate::tr!("(no cfg.yaml found)", "(没有找到 cfg.yaml)"),
            ..Config::default()
        })
        .apply_overrides(spec)?;
    }
    if let Some(lang) = cfg.as_ref().and_then(|c| c.file.lang.as_deref()) {
        crate::i18n::init(Some(lang));
    }
    if let Some(c) = &cfg {
        for key in c.unsupported() {
            reporter.warn(&crate::tr!(
                "{}: `{key}` is not supported by this version of ferry yet; it has no effect on this run",
                "{}: 此版本的 ferry 尚不支持 `{key}`, 本次运行中不生效",
                c.path
            ));
        }
    }
    Ok(cfg)
}

pub(super) fn retry_policy(g: &GlobalArgs, cfg: Option<&Config>) -> RetryPolicy {
    let retries = g
        .retries
        .or(cfg.and_then(|c| c.file.retries))
        .unwrap_or(RetryPolicy::default().retries);
    RetryPolicy {
        retries,
        ..RetryPolicy::default()
    }
}

pub(super) fn registries(
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
        response: Some(Duration::from_secs(g.response_timeout.max(1))),
        min_rate: Some(g.min_rate),
    };
    Ok(Registries::new(configured, timeouts))
}

pub(super) fn jobs(arg: Option<u16>, cfg: Option<&Config>) -> usize {
    arg.map(usize::from)
        .or(cfg.and_then(|c| c.file.maxconn))
        .unwrap_or(8)
        .max(1)
}

/// Reads image references from a list: one a line, blank lines and `#` comments skipped.
pub fn parse_list(text: &str) -> Vec<String> {
    // Windows editors may start the file with a byte-order mark.
    text.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = if path == Path::new("-") {
        read_stdin()?
    } else {
        std::fs::read_to_string(path).with_context(|| {
            crate::tr!(
                "cannot read the image list {}",
                "无法读取镜像列表 {}",
                path.display()
            )
        })?
    };
    Ok(parse_list(&text))
}

fn read_stdin() -> Result<String> {
    let mut text = String::new();
    for line in std::io::stdin().lock().lines() {
        text.push_str(&line.with_context(|| {
            crate::tr!(
                "cannot read the image list from standard input",
                "无法从标准输入读取镜像列表"
            )
        })?);
        text.push('\n');
    }
    Ok(text)
}

/// The platform filter of save and sync: `--platform`, else cfg `platform`, else all.
/// `--with-referrers`, else cfg `referrers`: for save and sync alike.
fn with_referrers(source: &SourceArgs, cfg: Option<&Config>) -> bool {
    source.with_referrers || cfg.and_then(|c| c.file.referrers).unwrap_or(false)
}

fn platforms(source: &SourceArgs, cfg: Option<&Config>) -> Result<PlatformFilter> {
    let platform = source
        .platform
        .clone()
        .or_else(|| cfg.and_then(|c| c.file.platform.clone()))
        .unwrap_or_default();
    PlatformFilter::parse(&platform).map_err(|e| usage(format!("--platform: {e}")))
}

async fn run_save(
    args: SaveArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    let cfg = cfg.as_ref();
    let (lines, source) = list_lines(&args.source, cfg, reporter)?;
    let source_name = source.map(|s| s.host.clone());
    let registries = registries(g, cfg, &source.into_iter().collect::<Vec<_>>(), None)?;
    let mut expansion = expand::expand(
        &lines,
        &registries,
        retry_policy(g, cfg),
        jobs(args.jobs, cfg),
        reporter,
        cancel,
    )
    .await;
    let requests = std::mem::take(&mut expansion.requests);
    if let Some(summary) = nothing_selected(&expansion, &requests, "save") {
        return finish_unexpanded(summary, &expansion, args.json, args.dry_run, reporter);
    }
    for warning in shared_target_warnings(&requests, cfg) {
        reporter.warn(&warning);
    }
    let file = cfg.map(|c| &c.file);
    let compress = match args.compress {
        Some(c) => c == Compression::Zstd,
        None => file.and_then(|f| f.compressor.as_deref()) == Some("zstd"),
    };
    let singlefile = file.and_then(|f| f.singlefile).unwrap_or(false);
    if let (true, None, Some(n)) = (singlefile, args.files, file.and_then(|f| f.files)) {
        reporter.warn(&crate::tr!(
            "cfg `singlefile: true` and `files: {n}` disagree; singlefile wins (one data file)",
            "cfg 中的 `singlefile: true` 与 `files: {n}` 相互矛盾; 以 singlefile 为准 (一个数据文件)"
        ));
    }
    let files = match args.files {
        Some(n) => usize::from(n),
        None if singlefile => 1,
        None => file.and_then(|f| f.files).unwrap_or(2),
    };
    let max_file_size = match args
        .max_file_size
        .clone()
        .or_else(|| file.and_then(|f| f.maxfilesize.clone()))
    {
        Some(s) => {
            Some(config::parse_size(&s).map_err(|e| usage(format!("--max-file-size: {e}")))?)
        }
        None => None,
    };
    // An empty prefix (image-transmit cfgs carry empty keys) means the default.
    let prefix = args
        .prefix
        .clone()
        .or_else(|| file.and_then(|f| f.outprefix.clone()))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "img".into());
    crate::bundle::naming::check_prefix(&prefix).map_err(|e| usage(format!("--prefix: {e}")))?;
    // Bases are checked, and the key decrypted, before anything is downloaded.
    let trust = super::signing::load_trust(args.trust.as_deref(), cfg)?;
    super::signing::check_save_bases(&args.bases, trust.as_ref(), reporter)?;
    let signing_key = super::signing::signing_key(args.sign.as_deref(), None, cfg)?;
    let opts = SaveOptions {
        out: args.out.clone(),
        prefix,
        files,
        jobs: jobs(args.jobs, cfg),
        bases: args.bases.clone(),
        retry: retry_policy(g, cfg),
        platforms: platforms(&args.source, cfg)?,
        max_file_size,
        compress,
        cache: blob_cache(args.source.cache.as_deref(), cfg, args.dry_run)?,
        with_referrers: with_referrers(&args.source, cfg),
        expansion,
        dry_run: args.dry_run,
        trust,
    };
    let started = chrono::Utc::now();
    // Where the images come from, for `--json`: the --src registry, else the one
    // registry every image is in, else the list file.
    let source_name = source_name
        .or_else(|| one_registry(&requests))
        .or_else(|| args.source.list.as_ref().map(|p| p.display().to_string()));
    let outcome = save(requests, &opts, &registries, reporter, cancel).await?;
    if !args.dry_run {
        outcome.summary.print(reporter);
    }
    if args.json || args.dry_run {
        return saved_output(&args, &opts, outcome, source_name, started);
    }
    if let Some(key) = &signing_key {
        super::signing::sign_saved(&outcome.meta_path, key, reporter)?;
    }
    println!("{}", outcome.meta_path.display());
    notifier(cfg).send(&outcome.summary, reporter).await;
    Ok(Outcome::of(&outcome.summary))
}

/// The lines a save or sync works on: arguments, then the list (`-` or a pipe on
/// stdin), else cfg `images:`; each line pointed at the chosen cfg source when there
/// is one, and tag selectors (`repo:~REGEX`, `repo:semver(...)`) told apart.
fn list_lines<'c>(
    args: &SourceArgs,
    cfg: Option<&'c Config>,
    reporter: &Reporter,
) -> Result<(Vec<ListLine>, Option<&'c NamedRegistry>)> {
    let (list, src) = (args.list.as_deref(), args.src.as_deref());
    let mut lines = args.images.to_vec();
    match list {
        Some(path) => lines.extend(read_list(path)?),
        None if lines.is_empty() && !std::io::stdin().is_terminal() => {
            lines.extend(parse_list(&read_stdin()?))
        }
        None => {}
    }
    if lines.is_empty() {
        if let Some(from_cfg) = cfg.and_then(|c| c.file.images.as_ref()) {
            lines.extend(parse_list(&from_cfg.join("\n")));
        }
    }
    let source = match cfg {
        Some(c) => c.source(src)?,
        None if src.is_some() => return Err(usage(crate::tr!("--src names a cfg.yaml source registry, but no cfg.yaml was found (give --config FILE)", "--src 指定的是 cfg.yaml 中的源仓库, 但没有找到 cfg.yaml (请用 --config FILE 指定)"))),
        None => None,
    };
    if lines.is_empty() {
        return Err(usage(match list {
            Some(path) => crate::tr!(
                "the list {} names no images (blank lines and # comments are skipped)",
                "列表 {} 中没有镜像 (空行和 # 注释会被跳过)",
                path.display()
            ),
            None => crate::tr!(
                "no images: give references as arguments, with --list FILE, on standard input, or in cfg `images:`",
                "没有镜像: 请以参数、--list FILE、标准输入或 cfg 的 `images:` 给出镜像引用"
            ),
        }));
    }
    let at = |s: &str| match source {
        Some(src) => {
            let (fetch, note) = rewrite::at_source(s, &src.host);
            if let Some(n) = note {
                reporter.info(&n);
            }
            fetch
        }
        None => s.to_string(),
    };
    let mut out = Vec::new();
    for (line, times) in without_repeats(&lines) {
        if times > 1 {
            reporter.info(&crate::tr!(
                "{line} is listed {times} times; it is taken once",
                "{line} 在列表中出现了 {times} 次; 只处理一次"
            ));
        }
        out.push(expand::classify(line, rewrite::parse_line(line), &at));
    }
    Ok((out, source))
}

/// The registry every request fetches from, when they share one.
fn one_registry(requests: &[ImageRequest]) -> Option<String> {
    let mut hosts = requests.iter().map(|r| {
        // A file or engine (`oci:DIR`, ...) is in no registry.
        if let Ok(Some(spec)) = crate::transport::parse_transport(&r.fetch) {
            if !matches!(spec, crate::transport::TransportSpec::Registry { .. }) {
                return None;
            }
        }
        crate::reference::Reference::parse(&r.fetch)
            .ok()
            .map(|r| r.registry)
    });
    let first = hosts.next()??;
    hosts
        .all(|h| h.as_deref() == Some(first.as_str()))
        .then_some(first)
}

/// What `save --json` and `save --dry-run` print on standard output.
fn saved_output(
    args: &SaveArgs,
    opts: &SaveOptions,
    outcome: crate::engine::save::SaveOutcome,
    source: Option<String>,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<Outcome> {
    let result = if outcome.summary.is_success() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    let selections = &opts.expansion.selections;
    if !args.json {
        if let Some(plan) = &outcome.plan {
            print!(
                "{}",
                super::output::plan_text("save", &outcome.images, selections, plan)
            );
        }
        return Ok(result);
    }
    let mut doc = super::output::Document::new("save", started).with_summary(&outcome.summary);
    doc.dry_run = args.dry_run;
    doc.source = source;
    doc.target = Some(args.out.display().to_string());
    doc.images = outcome.images;
    doc.selections = selections.clone();
    doc.plan = outcome.plan;
    if !args.dry_run {
        doc.files = crate::bundle::meta::Meta::load(&outcome.meta_path)
            .map(|(m, _)| m.files)
            .unwrap_or_default();
        doc.meta = Some(outcome.meta_path.display().to_string());
    }
    doc.print(false)?;
    Ok(result)
}

/// A run whose every line failed to expand: its summary, or its JSON document.
fn finish_unexpanded(
    summary: crate::engine::report::Summary,
    expansion: &expand::Expanded,
    json: bool,
    dry_run: bool,
    reporter: &Reporter,
) -> Result<Outcome> {
    summary.print(reporter);
    if json {
        use crate::engine::report::{ImageRecord, ImageState};
        let mut doc =
            super::output::Document::new(summary.action, chrono::Utc::now()).with_summary(&summary);
        doc.dry_run = dry_run;
        doc.images = summary
            .invalid
            .iter()
            .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Invalid))
            .chain(
                summary
                    .failed
                    .iter()
                    .map(|(r, why)| ImageRecord::problem(r, why, ImageState::Failed)),
            )
            .collect();
        doc.selections = expansion.selections.clone();
        doc.print(false)?;
    }
    Ok(Outcome::Failed)
}

/// The lines that could not be expanded, counted in a summary like the images.
fn with_list_problems(summary: &mut crate::engine::report::Summary, expansion: &expand::Expanded) {
    summary.total += expansion.invalid.len() + expansion.failed.len();
    summary
        .invalid
        .splice(0..0, expansion.invalid.iter().cloned());
    summary
        .failed
        .splice(0..0, expansion.failed.iter().cloned());
}

/// When the list's lines gave no image because every one of them failed to expand,
/// the command ends there with those reasons (instead of "no images").
fn nothing_selected(
    expansion: &expand::Expanded,
    requests: &[ImageRequest],
    action: &'static str,
) -> Option<crate::engine::report::Summary> {
    if !requests.is_empty() || (expansion.invalid.is_empty() && expansion.failed.is_empty()) {
        return None;
    }
    let mut summary = crate::engine::report::Summary {
        action,
        ..Default::default()
    };
    with_list_problems(&mut summary, expansion);
    Some(summary)
}

/// Warnings for images that would be pushed to one target tag: by the cfg targets'
/// `repository:` rewrites, or by list renames. Upload refuses them on the far side
/// of the gap; said at save time, the list can still be fixed.
fn shared_target_warnings(requests: &[ImageRequest], cfg: Option<&Config>) -> Vec<String> {
    let identity = Destination {
        host: "target.invalid".into(),
        namespace: String::new(),
        plain_http: None,
        rewrite: None,
    };
    let mut targets: Vec<(Option<&str>, Destination)> = cfg
        .map(|c| {
            c.targets
                .iter()
                .map(|t| {
                    let d = Destination {
                        host: t.host.clone(),
                        rewrite: t.repository.clone(),
                        ..identity.clone()
                    };
                    (Some(t.name.as_str()), d)
                })
                .collect()
        })
        .unwrap_or_default();
    if targets.is_empty() {
        targets.push((None, identity));
    }
    let mut warnings = Vec::new();
    for (name, dst) in &targets {
        let aimed = requests.iter().filter_map(|r| {
            let parsed = crate::reference::Reference::parse(&r.fetch).ok()?;
            let (repo, tag) = dst.target_for(&parsed.repository, parsed.tag, r.rename.as_deref());
            Some((r.input.as_str(), format!("{repo}:{}", tag?)))
        });
        for (target, images) in rewrite::shared_targets(aimed) {
            let images = images.join(", ");
            let at = match name {
                Some(n) => crate::tr!(" at target {n}", " (目标 {n})"),
                None => String::new(),
            };
            let warning = crate::tr!(
                "{images} would all be pushed as {target}{at}; upload refuses them unless they are the same image: give each its own name (SOURCE -> TARGET in the list)",
                "{images} 都将被推送为 {target}{at}; 除非它们是同一个镜像, 否则上传时会被拒绝: 请为每个镜像指定不同的名称 (在列表中写 SOURCE -> TARGET)"
            );
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }
    warnings
}

/// The list lines in order, each once, with how often it was given: a line
/// repeated by mistake would otherwise count (and be reported) as two images.
/// `a -> b` and `a -> c` stay two entries: one image under two names.
fn without_repeats(lines: &[String]) -> Vec<(&str, usize)> {
    let key = |l: &str| {
        let e = rewrite::parse_line(l);
        (e.source, e.rename)
    };
    let mut out: Vec<(&str, usize)> = Vec::new();
    let mut seen: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for line in lines {
        match seen.get(&key(line)) {
            Some(&i) => {
                if let Some(entry) = out.get_mut(i) {
                    entry.1 += 1;
                }
            }
            None => {
                seen.insert(key(line), out.len());
                out.push((line.as_str(), 1));
            }
        }
    }
    out
}

/// A target: where to push, the cfg entry it came from, and connection options for
/// a host given with an explicit scheme.
type ResolvedTarget<'c> = (
    Destination,
    Option<&'c NamedRegistry>,
    Option<(String, RegistryOptions)>,
);

/// The target of an upload or sync: a cfg target by name (`--dst NAME`, legacy
/// `-dst=NAME`), else `HOST[:PORT][/NAMESPACE]`, else the first cfg target.
fn destination<'c>(
    dst: Option<&str>,
    dst_name: Option<&str>,
    cfg: Option<&'c Config>,
) -> Result<ResolvedTarget<'c>> {
    if let (Some(name), Some(c)) = (dst_name, cfg) {
        c.target(Some(name))?;
    }
    let dst = match (dst.or(dst_name), cfg) {
        (Some(d), _) => d.to_string(),
        (None, Some(c)) => match c.target(None)? {
            Some(t) => t.name.clone(),
            None => {
                return Err(usage(crate::tr!(
                    "no target: give --dst HOST[:PORT][/NAMESPACE], or a target registry in {}",
                    "没有目标: 请用 --dst HOST[:PORT][/NAMESPACE] 指定, 或在 {} 中配置目标仓库",
                    c.path
                )))
            }
        },
        (None, None) => {
            return Err(usage(crate::tr!(
            "no target: give --dst HOST[:PORT][/NAMESPACE] (or a cfg.yaml with a target registry)",
            "没有目标: 请用 --dst HOST[:PORT][/NAMESPACE] 指定 (或使用配置了目标仓库的 cfg.yaml)"
        )))
        }
    };
    let named = cfg.and_then(|c| c.targets.iter().find(|t| t.name == dst));
    if let (None, Some(c)) = (named, cfg) {
        // With a cfg, a bare word is a target name, not a host.
        if !dst.contains(['.', ':', '/']) && dst != "localhost" {
            c.target(Some(&dst))?;
        }
    }
    Ok(match named {
        Some(t) => (
            Destination {
                host: t.host.clone(),
                namespace: String::new(),
                plain_http: t.options.plain_http,
                rewrite: t.repository.clone(),
            },
            named,
            None,
        ),
        None => {
            let d = Destination::parse(&dst).map_err(|e| usage(e.to_string()))?;
            let extra = d.plain_http.map(|p| {
                (
                    d.host.clone(),
                    RegistryOptions {
                        plain_http: Some(p),
                        ..RegistryOptions::default()
                    },
                )
            });
            (d, None, extra)
        }
    })
}

/// The local blob cache: `--cache DIR`, else cfg `cache:` (its `pathname` under
/// ./data, as image-transmit keeps it), else none.
fn blob_cache(
    arg: Option<&Path>,
    cfg: Option<&Config>,
    existing_only: bool,
) -> Result<Option<BlobCache>> {
    let entry = cfg.and_then(|c| c.file.cache.as_ref());
    let dir = match (
        arg,
        entry
            .and_then(|e| e.pathname.as_deref())
            .filter(|p| !p.is_empty()),
    ) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(p)) if Path::new(p).is_absolute() => PathBuf::from(p),
        (None, Some(p)) => Path::new("data").join(p),
        (None, None) => return Ok(None),
    };
    // A dry run creates nothing, not even an empty cache folder.
    if existing_only && !dir.is_dir() {
        return Ok(None);
    }
    let cache = BlobCache::open(
        &dir,
        entry.and_then(|e| e.keepdays),
        entry.and_then(|e| e.keepsize),
    )
    .with_context(|| {
        crate::tr!(
            "cannot use the cache folder {}",
            "无法使用缓存目录 {}",
            dir.display()
        )
    })?;
    Ok(Some(cache))
}

fn notifier(cfg: Option<&Config>) -> Notifier {
    let Some(f) = cfg.map(|c| &c.file) else {
        return Notifier::default();
    };
    Notifier {
        webhook: f
            .notify
            .as_ref()
            .and_then(|n| n.webhook.clone())
            .filter(|w| !w.is_empty()),
        dingtalk: f
            .dingtalk
            .iter()
            .flatten()
            .filter_map(|d| {
                d.token
                    .clone()
                    .filter(|t| !t.is_empty())
                    .map(|t| (t, d.secret.clone()))
            })
            .collect(),
    }
}

/// Parses `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('h') => (&t[..t.len() - 1], 3600),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        usage(crate::tr!(
            "{s:?} is not a duration like 30s, 5m, 1h or a number of seconds",
            "{s:?} 不是 30s、5m、1h 这样的时长, 也不是秒数"
        ))
    })?;
    if n <= 0.0 {
        return Err(usage(crate::tr!(
            "duration {s:?} must be positive",
            "时长 {s:?} 必须大于 0"
        )));
    }
    // `inf`, `1e300`: no panic, a usage error.
    Duration::try_from_secs_f64(n * mult as f64).map_err(|_| {
        usage(crate::tr!(
            "{s:?} is not a duration like 30s, 5m, 1h or a number of seconds",
            "{s:?} 不是 30s、5m、1h 这样的时长, 也不是秒数"
        ))
    })
}

async fn run_sync(
    args: SyncArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    let cfg = cfg.as_ref();
    let (lines, source) = list_lines(&args.source, cfg, reporter)?;
    let (destination, named, extra) =
        destination(args.dst.as_deref(), args.dst_name.as_deref(), cfg)?;
    let opts = SyncOptions {
        cache: blob_cache(args.source.cache.as_deref(), cfg, false)?,
        with_referrers: with_referrers(&args.source, cfg),
        destination,
        jobs: jobs(args.jobs, cfg),
        retry: retry_policy(g, cfg),
        platforms: platforms(&args.source, cfg)?,
        require_cosign: super::signing::cosign_key(args.cosign.require_cosign.as_deref())?,
        dry_run: args.dry_run,
    };
    let source_name = source.map(|s| s.host.clone());
    let target_name = opts.destination.name();
    let used: Vec<&NamedRegistry> = source.into_iter().chain(named).collect();
    let registries = registries(g, cfg, &used, extra)?;
    let interval = match (&args.interval, args.watch) {
        (Some(i), _) => Some(parse_duration(i)?),
        (None, true) => Some(Duration::from_secs(
            cfg.and_then(|c| c.file.interval).unwrap_or(60).max(1),
        )),
        (None, false) => None,
    };
    let notifier = notifier(cfg);
    if interval.is_none() && args.listen.is_none() {
        let mut expansion =
            expand::expand(&lines, &registries, opts.retry, opts.jobs, reporter, cancel).await;
        let requests = std::mem::take(&mut expansion.requests);
        if let Some(summary) = nothing_selected(&expansion, &requests, "sync") {
            return finish_unexpanded(summary, &expansion, args.json, args.dry_run, reporter);
        }
        let started = chrono::Utc::now();
        let mut summary = sync(&requests, &opts, &registries, reporter, cancel).await?;
        with_list_problems(&mut summary, &expansion);
        if !args.dry_run {
            summary.print_written(reporter, &opts.destination.host);
            summary.print(reporter);
        }
        super::output::work_output(
            "sync",
            &summary,
            started,
            source_name,
            Some(target_name),
            &expansion.selections,
            args.json,
            false,
        )?;
        if !args.dry_run {
            notifier.send(&summary, reporter).await;
        }
        return Ok(Outcome::of(&summary));
    }
    // Daemon: every round re-resolves the tags and copies what changed; errors of
    // single images, or a registry being down, are reported and the next round runs.
    // A round says one summary line (per-image lines only with --verbose).
    let round_reporter = if g.verbose {
        reporter.clone()
    } else {
        Reporter::new(crate::engine::report::Verbosity::Quiet)
    };
    let daemon = match &args.listen {
        Some(addr) => Some(start_daemon(addr, &args, &lines, reporter, cancel).await?),
        None => None,
    };
    // None: a full round (selectors listed again: new tags are picked up); Some:
    // the images that events announced.
    let mut due: Option<Vec<expand::Due>> = None;
    let mut round = 0u64;
    loop {
        round += 1;
        let (policy, jobs) = (opts.retry, opts.jobs);
        let mut expansion = match &due {
            None => {
                expand::expand(&lines, &registries, policy, jobs, &round_reporter, cancel).await
            }
            Some(due) => {
                expand::expand_due(
                    &lines,
                    due,
                    &registries,
                    policy,
                    jobs,
                    &round_reporter,
                    cancel,
                )
                .await
            }
        };
        let round_requests = std::mem::take(&mut expansion.requests);
        let started = std::time::Instant::now();
        let round_started = chrono::Utc::now();
        let result = if round_requests.is_empty() {
            // Selectors that select nothing yet: an empty round, not a failure.
            Ok(crate::engine::report::Summary {
                action: "sync",
                ..Default::default()
            })
        } else {
            sync(&round_requests, &opts, &registries, &round_reporter, cancel).await
        };
        match result.map(|mut s| {
            with_list_problems(&mut s, &expansion);
            s
        }) {
            Ok(summary) => {
                summary.print(reporter);
                if args.json {
                    super::output::work_output(
                        "sync",
                        &summary,
                        round_started,
                        source_name.clone(),
                        Some(target_name.clone()),
                        &expansion.selections,
                        true,
                        true,
                    )?;
                }
                if let Some(d) = &daemon {
                    let inputs: Vec<String> =
                        round_requests.iter().map(|r| r.input.clone()).collect();
                    d.metrics().round(&target_name, &inputs, &summary);
                }
                if summary.bytes > 0 || !summary.is_success() || summary.succeeded > 0 && round == 1
                {
                    notifier.send(&summary, reporter).await;
                }
            }
            Err(e) if !cancel.is_cancelled() => {
                if let Some(d) = &daemon {
                    d.metrics().round_failed(started.elapsed());
                }
                reporter.warn(&crate::tr!(
                    "round {round} failed: {}",
                    "第 {round} 轮失败: {}",
                    describe(&e)
                ));
                let summary = crate::engine::report::Summary {
                    action: "sync",
                    total: round_requests.len(),
                    failed: vec![(crate::tr!("round {round}", "第 {round} 轮"), describe(&e))],
                    ..Default::default()
                };
                notifier.send(&summary, reporter).await;
            }
            Err(_) => {}
        }
        let tick = async {
            match interval {
                Some(i) => tokio::time::sleep(i).await,
                None => std::future::pending().await,
            }
        };
        let events = async {
            match &daemon {
                Some(d) => d.next_round().await,
                None => std::future::pending().await,
            }
        };
        due = tokio::select! {
            _ = cancel.cancelled() => {
                reporter.warn(crate::i18n::t("stopped", "已停止"));
                return Ok(Outcome::Stopped);
            }
            _ = tick => None,
            announced = events => Some(announced),
        };
    }
}

/// `sync --listen`: the events, metrics and health routes on their own server.
async fn start_daemon(
    addr: &str,
    args: &SyncArgs,
    lines: &[ListLine],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<crate::daemon::Daemon> {
    let daemon = crate::daemon::Daemon::new(lines, args.events_secret.clone(), reporter.clone());
    let server = super::info::bind_server(addr, &args.http).await?;
    reporter.warn(&crate::tr!(
        "listening for registry notifications at {0}/events (metrics at {0}/metrics)",
        "在 {0}/events 接收镜像仓库通知 (指标: {0}/metrics)",
        server.base_url()
    ));
    tokio::spawn(server.run(daemon.router(), reporter.clone(), cancel.clone()));
    Ok(daemon)
}

/// `--dst docker` (legacy `-dst=docker`) or `--dst containerd[:NAMESPACE]`: the
/// images go into a local engine.
/// `upload --dst docker|containerd[:NS]`: through the copy engine into the engine,
/// with the same summary, `--dry-run` plan and `--json` document as a registry
/// upload.
async fn upload_to_engine(
    args: &UploadArgs,
    meta_sha256: Option<&str>,
    trust: Option<&crate::sign::Trust>,
    target: &crate::engine::docker_daemon::EngineTarget,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    use crate::engine::copy::endpoints::{CopyEnv, CopyOptions};
    let started = std::time::Instant::now();
    let wall_start = chrono::Utc::now();
    let opts = CopyOptions {
        platforms: crate::engine::platform::PlatformFilter::default(),
        all: false,
        with_referrers: false,
        jobs: 1,
        retry: crate::engine::retry::RetryPolicy::default(),
        base_dirs: Vec::new(),
        dry_run: args.dry_run,
        // The bases of an increment are read here (their layers go into the
        // engine): under --trust they are checked like the bundle.
        trust: trust.cloned(),
    };
    let registries = crate::engine::registries::Registries::default();
    let env = CopyEnv {
        registries: &registries,
        reporter,
        cancel,
    };
    let (outcome, engine) = crate::engine::docker_daemon::upload_to_engine(
        &args.meta,
        meta_sha256,
        target,
        &opts,
        &env,
    )
    .await?;
    let summary = outcome.into_summary("upload", started.elapsed());
    if !args.dry_run {
        let n = summary.succeeded;
        let loaded = crate::i18n::plural(n as u64, "image", "images");
        reporter.warn(&crate::tr!(
            "{loaded} loaded into {engine}",
            "已将 {n} 个镜像载入 {engine}"
        ));
        if !summary.is_success() {
            summary.print(reporter);
        }
    }
    super::output::work_output(
        "upload",
        &summary,
        wall_start,
        Some(args.meta.display().to_string()),
        Some(target.to_string()),
        &[],
        args.json,
        false,
    )?;
    Ok(Outcome::of(&summary))
}

async fn run_upload(
    args: UploadArgs,
    g: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    let cfg = cfg.as_ref();
    // The signature first: nothing of an untrusted bundle is read or pushed.
    let trust = super::signing::load_trust(args.trust.trust.as_deref(), cfg)?;
    let meta_sha256 = match &trust {
        Some(t) => {
            Some(crate::engine::trusted::open_bundle(&args.meta, Some(t), reporter)?.meta_sha256)
        }
        None => None,
    };
    let require_cosign = super::signing::cosign_key(args.cosign.require_cosign.as_deref())?;
    use crate::engine::docker_daemon::EngineTarget;
    let engine = match (args.dst.as_deref(), args.dst_name.as_deref()) {
        (Some(dst), _) => EngineTarget::parse(dst),
        // A cfg.yaml target of that name wins over the engine.
        (None, Some(name)) if cfg.is_none_or(|c| c.target(Some(name)).is_err()) => {
            EngineTarget::parse_legacy(name)
        }
        _ => None,
    };
    if let Some(target) = engine {
        if require_cosign.is_some() {
            return Err(usage(crate::tr!(
                "--require-cosign is not supported with --dst docker or containerd yet; upload to a registry",
                "--dst docker 或 containerd 暂不支持 --require-cosign; 请上传到镜像仓库"
            )));
        }
        let missing = partial_bundle(&args)?;
        let loaded = upload_to_engine(
            &args,
            meta_sha256.as_deref(),
            trust.as_ref(),
            &target,
            reporter,
            cancel,
        )
        .await;
        if let Some(m) = &missing {
            reporter.warn(m);
        }
        return loaded;
    }
    let (destination, named, extra) =
        destination(args.dst.as_deref(), args.dst_name.as_deref(), cfg)?;
    let missing = partial_bundle(&args)?;
    let opts = UploadOptions {
        destination,
        jobs: jobs(args.jobs, cfg),
        verify: match args.verify {
            VerifyMode::Full => VerifyLevel::File,
            VerifyMode::Size => VerifyLevel::Size,
        },
        retry: retry_policy(g, cfg),
        meta_sha256,
        require_cosign,
        dry_run: args.dry_run,
    };
    let target_name = opts.destination.name();
    let started = chrono::Utc::now();
    let summary = upload(
        &args.meta,
        &opts,
        &registries(g, cfg, &named.into_iter().collect::<Vec<_>>(), extra)?,
        reporter,
        cancel,
    )
    .await?;
    if !args.dry_run {
        summary.print_written(reporter, &opts.destination.host);
        summary.print(reporter);
    }
    super::output::work_output(
        "upload",
        &summary,
        started,
        Some(args.meta.display().to_string()),
        Some(target_name),
        &[],
        args.json,
        false,
    )?;
    if let Some(m) = &missing {
        reporter.warn(m);
    }
    if !args.dry_run {
        notifier(cfg).send(&summary, reporter).await;
    }
    Ok(Outcome::of(&summary))
}

/// Nothing is silently lost: a bundle that lacks images which failed at save time
/// is refused before anything is pushed, unless `--allow-partial` accepts it; then
/// the missing images are listed (returned, to be shown after the summary).
fn partial_bundle(args: &UploadArgs) -> Result<Option<String>> {
    let loaded = crate::bundle::meta::Meta::load_any(&args.meta)
        .with_context(|| crate::tr!("cannot open the bundle", "无法打开镜像包"))?;
    let Some(missing) = loaded.meta.missing_images() else {
        return Ok(None);
    };
    if args.allow_partial {
        return Ok(Some(missing));
    }
    bail!(
        "{missing}\n{}",
        crate::i18n::t(
            "nothing was pushed; give --allow-partial to push the images it has",
            "没有推送任何内容; 如需推送其中已有的镜像, 请加 --allow-partial"
        )
    )
}

async fn run_login(args: LoginArgs, g: &GlobalArgs, reporter: &Reporter) -> Result<Outcome> {
    let (plain_http, host) = match args.registry.split_once("://") {
        Some(("http", h)) => (Some(true), h),
        Some(("https", h)) => (Some(false), h),
        _ => (None, args.registry.as_str()),
    };
    let host = host.trim_end_matches('/');
    if !args.password_stdin {
        return Err(usage(crate::tr!("give the password on standard input with --password-stdin (it is never taken as an argument)", "请用 --password-stdin 从标准输入给出密码 (密码不接受以参数给出)")));
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .with_context(|| {
            crate::tr!(
                "cannot read the password from standard input",
                "无法从标准输入读取密码"
            )
        })?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!(crate::tr!(
            "empty password on standard input",
            "标准输入中的密码为空"
        ));
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
            .with_context(|| crate::tr!("login to {host} failed", "登录 {host} 失败"))?;
    }
    let stored = config::docker::store(host, &args.username, &password)?;
    reporter.warn(&crate::tr!(
        "login succeeded: credentials for {host} stored in {stored}",
        "登录成功: {host} 的凭据已保存到 {stored}"
    ));
    if let Some(file) = config::docker::shadowing_login(host) {
        reporter.warn(&crate::tr!(
            "note: {} also holds a login for {host} and is read first (as skopeo and podman read it); remove it there (`skopeo logout {host}`) for this one to be used",
            "注意: {} 中也有 {host} 的登录信息, 且会先被读取 (与 skopeo 和 podman 的顺序相同); 请在那里删除它 (`skopeo logout {host}`), 才会使用本次保存的凭据",
            file.display()
        ));
    }
    Ok(Outcome::Success)
}

fn run_verify(
    args: VerifyArgs,
    trust: Option<&crate::sign::Trust>,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let started = chrono::Utc::now();
    let bundle = crate::engine::trusted::open_bundle(&args.meta, trust, reporter)?;
    let level = if args.size_only {
        VerifyLevel::Size
    } else {
        VerifyLevel::Full
    };
    let result = crate::engine::upload::verify_bundle(&bundle, level, reporter, cancel);
    if args.output.json && !(result.is_err() && cancel.is_cancelled()) {
        let mut doc = super::info::bundle_document("verify", &bundle, started);
        doc.ok = result.is_ok();
        if let Err(e) = &result {
            let text = describe(e);
            // The first line names the bundle; the others are its problems.
            let lines: Vec<String> = text.lines().skip(1).map(|l| l.trim().to_string()).collect();
            doc.problems = if lines.is_empty() { vec![text] } else { lines };
        }
        doc.print(false)?;
        return Ok(if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failed
        });
    }
    match result {
        Ok(index) => {
            let bases = if bundle.meta.bases.is_empty() {
                String::new()
            } else {
                crate::tr!(
                    ", based on {}",
                    ", 基于 {}",
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
            use crate::i18n::plural;
            let (n_files, n_blobs, n_images) = (
                plural(files as u64, "data file", "data files"),
                plural(blobs as u64, "blob", "blobs"),
                plural(images as u64, "image", "images"),
            );
            reporter.warn(&crate::tr!(
                "bundle {name} is complete: {n_files}, {n_blobs}, {n_images}{bases}",
                "镜像包 {name} 完整: {files} 个数据文件, {blobs} 个数据块, {images} 个镜像{bases}"
            ));
            if let Some(missing) = bundle.meta.missing_images() {
                reporter.warn(&missing);
            }
            Ok(Outcome::Success)
        }
        Err(e) if cancel.is_cancelled() => Err(e),
        Err(e) => {
            reporter.warn(&describe(&e));
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

    #[test]
    fn repeated_lines_are_taken_once() {
        let lines: Vec<String> = ["a:1", "b:1", "a:1", "a:1 -> c:1", " a:1 ", "a:1->c:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            without_repeats(&lines),
            vec![("a:1", 3), ("b:1", 1), ("a:1 -> c:1", 2)]
        );
    }

    #[test]
    fn lists_may_start_with_a_byte_order_mark_and_use_crlf() {
        assert_eq!(
            parse_list("\u{feff}a:1\r\nb:2\r\n"),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
    }
}
