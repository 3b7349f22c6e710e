//! `ferry ui`: a local web interface for the people who drive transfers by hand —
//! pick a source, paste a list, press save, watch the bars, carry the folder,
//! press upload.
//!
//! It is a front over the command line, not a second implementation: every job is
//! the `ferry` command line a terminal user would type, checked by the same parser
//! and run in-process by the same handlers ([`jobs`]); the engine's own progress
//! bars and lines reach the page through [`crate::engine::report::Sink`] ([`watch`]).
//! The page (plain HTML, CSS and JavaScript under `assets/`, compiled into the
//! binary) needs no network and no build step. It runs on the server stack of
//! `serve` ([`crate::server`]), loopback by default, behind an access token
//! ([`guard`]).

mod bundles;
mod forms;
mod guard;
mod jobs;
mod registries;
mod strings;
mod watch;

use crate::cli::args::{Cli, GlobalArgs, UiArgs};
use crate::cli::run::Outcome;
use crate::engine::report::Reporter;
use crate::server::error_response;
use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// How often a progress stream looks for news.
const EVENT_TICK: Duration = Duration::from_millis(400);
/// Log lines sent with each progress snapshot.
const EVENT_LINES: usize = 200;

struct App {
    /// `--out`: where saves go and bundles are listed.
    out: PathBuf,
    /// Where pasted lists are written for the jobs that read them.
    lists: PathBuf,
    /// The cfg file the Registries screen edits (created there when missing).
    cfg_path: PathBuf,
    /// `--config` as given to `ferry ui`: passed on to jobs.
    cfg_given: Option<PathBuf>,
    jobs: Arc<jobs::Jobs>,
    catalog: bundles::Catalog,
}

pub async fn run(
    args: UiArgs,
    global: &GlobalArgs,
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    let server = crate::cli::info::bind_server(&args.listen, &args.http).await?;
    let local = server.local_addr().context(crate::i18n::t(
        "cannot read the listening address",
        "无法读取监听地址",
    ))?;
    let state_dir = args.out.join(".ferry-ui");
    let lists = state_dir.join("lists");
    std::fs::create_dir_all(&lists).with_context(|| {
        crate::tr!(
            "cannot create {} (for the job history and image lists)",
            "无法创建 {} (用于任务历史和镜像列表)",
            lists.display()
        )
    })?;
    let (jobs, note) = jobs::Jobs::open(&state_dir);
    if let Some(n) = note {
        reporter.warn(&n);
    }
    let jobs = Arc::new(jobs);
    let token = guard::new_token().context(crate::i18n::t(
        "cannot make an access token (/dev/urandom)",
        "无法生成访问令牌 (/dev/urandom)",
    ))?;
    let app = Arc::new(App {
        out: args.out.clone(),
        lists,
        cfg_path: crate::config::find(global.config.as_deref())
            .unwrap_or_else(|| PathBuf::from("cfg.yaml")),
        cfg_given: global.config.clone(),
        jobs: jobs.clone(),
        catalog: bundles::Catalog::default(),
    });
    let guard = Arc::new(guard::Guard::new(token.clone(), local.port()));
    let router = routes(app, guard);
    let worker = tokio::spawn(jobs::worker(jobs.clone(), cancel.clone()));

    let url = format!("{}/?token={token}", server.base_url());
    if !local.ip().is_loopback() {
        reporter.warn(&crate::tr!(
            "ferry ui listens on {local}, which other hosts may reach: whoever has the token can start transfers and edit cfg.yaml (prefer 127.0.0.1, or --tls-cert)",
            "ferry ui 监听在 {local}, 其他主机可能访问得到: 持有令牌的人可以发起传输并修改 cfg.yaml (建议使用 127.0.0.1, 或 --tls-cert)"
        ));
    }
    reporter.warn(&crate::tr!(
        "ferry ui: open {url} in a browser (Ctrl-C to stop)",
        "ferry ui: 请在浏览器中打开 {url} (Ctrl-C 停止)"
    ));
    // The address alone on standard output, for scripts.
    println!("{url}");
    if args.open {
        open_browser(&url, reporter);
    }
    server.run(router, reporter.clone(), cancel.clone()).await;
    // The running job was cancelled with everything else: let it record where it
    // stopped (its partial bundle resumes with the same command).
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    jobs.interrupt_queued();
    Ok(Outcome::Stopped)
}

fn open_browser(url: &str, reporter: &Reporter) {
    let spawned = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        reporter.warn(&crate::tr!(
            "cannot open a browser (xdg-open: {}); open the address above by hand",
            "无法打开浏览器 (xdg-open: {}); 请手动打开上面的地址",
            crate::i18n::io_error(&e)
        ));
    }
}

fn routes(app: Arc<App>, guard: Arc<guard::Guard>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/api/state", get(state))
        .route("/api/strings", get(strings_table))
        .route("/api/lang", post(set_lang))
        .route("/api/registries", get(list_registries).post(save_registry))
        .route("/api/registries/delete", post(delete_registry))
        .route("/api/registries/test", post(test_registry))
        .route("/api/bundles", get(list_bundles))
        .route("/api/jobs", get(list_jobs).post(start_job))
        .route("/api/jobs/preview", post(preview_job))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/jobs/{id}/again", post(again_job))
        .route("/api/events", get(events))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                crate::i18n::t("no such page", "没有这个页面"),
            )
        })
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(app)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "INVALID", message)
}

fn query<'a>(uri: &'a Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn names(list: &[crate::config::NamedRegistry]) -> Vec<String> {
    list.iter().map(|r| r.name.clone()).collect()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    let cfg = crate::config::Config::load(&app.cfg_path).ok();
    let copy = <Cli as clap::CommandFactory>::command()
        .find_subcommand("copy")
        .is_some();
    let running = app
        .jobs
        .current()
        .and_then(|id| app.jobs.get(id))
        .is_some_and(|j| !j.state.is_over());
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "out": app.out.display().to_string(),
        "cfg_path": app.cfg_path.display().to_string(),
        "lang": if crate::i18n::is_chinese() { "zh" } else { "en" },
        "running": running,
        "copy_available": copy,
        "sources": cfg.as_ref().map(|c| names(&c.sources)).unwrap_or_default(),
        "targets": cfg.as_ref().map(|c| names(&c.targets)).unwrap_or_default(),
    }))
    .into_response()
}

async fn strings_table(uri: Uri) -> Response {
    let chinese = match query(&uri, "lang") {
        Some(l) => l.starts_with("zh"),
        None => crate::i18n::is_chinese(),
    };
    Json(strings::table(chinese)).into_response()
}

#[derive(Deserialize)]
struct LangForm {
    lang: String,
}

/// The page's language becomes the jobs' language too, as `lang:` in cfg.yaml would.
async fn set_lang(Json(form): Json<LangForm>) -> Response {
    crate::i18n::init(Some(if form.lang.starts_with("zh") {
        "zh_CN"
    } else {
        "en_US"
    }));
    Json(serde_json::json!({"ok": true})).into_response()
}

async fn list_registries(State(app): State<Arc<App>>) -> Response {
    Json(registries::list(&app.cfg_path)).into_response()
}

async fn save_registry(
    State(app): State<Arc<App>>,
    Json(form): Json<registries::EntryForm>,
) -> Response {
    match registries::save(&app.cfg_path, &form) {
        Ok(()) => Json(serde_json::json!({"ok": true})).into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn delete_registry(
    State(app): State<Arc<App>>,
    Json(which): Json<registries::EntryRef>,
) -> Response {
    match registries::delete(&app.cfg_path, &which) {
        Ok(()) => Json(serde_json::json!({"ok": true})).into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn test_registry(
    State(app): State<Arc<App>>,
    Json(form): Json<registries::EntryForm>,
) -> Response {
    let (ok, message) = match registries::test(&app.cfg_path, &form).await {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    Json(serde_json::json!({"ok": ok, "message": message})).into_response()
}

async fn list_bundles(State(app): State<Arc<App>>) -> Response {
    let scan = app.clone();
    let listed = tokio::task::spawn_blocking(move || {
        // The trust file of cfg.yaml, as `ferry ls` would use it.
        let cfg = crate::config::Config::load(&scan.cfg_path).ok();
        let (trust, trust_error) = match crate::cli::signing::load_trust(None, cfg.as_ref()) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(crate::engine::report::describe(&e))),
        };
        (scan.catalog.scan(&scan.out, trust.as_ref()), trust_error)
    })
    .await;
    match listed {
        Ok((bundles, trust_error)) => Json(serde_json::json!({
            "out": app.out.display().to_string(),
            "bundles": bundles,
            "trust_error": trust_error,
        }))
        .into_response(),
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            crate::i18n::t("listing the bundles failed", "列出镜像包失败"),
        ),
    }
}

fn context(app: &App) -> forms::Context<'_> {
    forms::Context {
        out: &app.out,
        config: app.cfg_given.as_deref(),
        lists: &app.lists,
    }
}

/// The form's command line, checked by the command line's own parser.
fn checked(app: &App, form: &forms::JobForm, id: u64) -> Result<forms::Built, String> {
    let built = forms::build(form, &context(app), id)?;
    crate::cli::parse::try_parse(built.argv.clone())?;
    Ok(built)
}

async fn preview_job(State(app): State<Arc<App>>, Json(form): Json<forms::JobForm>) -> Response {
    match checked(&app, &form, app.jobs.next_id()) {
        Ok(b) => Json(serde_json::json!({
            "command": jobs::shell_line(&b.argv),
            "argv": b.argv,
        }))
        .into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn start_job(State(app): State<Arc<App>>, Json(form): Json<forms::JobForm>) -> Response {
    let queued = app.jobs.enqueue(|id| {
        let built = checked(&app, &form, id)?;
        if let Some((path, text)) = &built.list {
            std::fs::write(path, text).map_err(|e| {
                crate::tr!(
                    "cannot write the image list {}: {}",
                    "无法写入镜像列表 {}: {}",
                    path.display(),
                    crate::i18n::io_error(&e)
                )
            })?;
        }
        Ok(jobs::NewJob {
            kind: built.kind.to_string(),
            title: built.title,
            argv: built.argv,
            images: built.images,
        })
    });
    match queued {
        Ok(job) => Json(serde_json::json!({"job": job})).into_response(),
        Err(e) => bad_request(&e),
    }
}

async fn list_jobs(State(app): State<Arc<App>>) -> Response {
    Json(serde_json::json!({"jobs": app.jobs.list()})).into_response()
}

fn unknown_job() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        crate::i18n::t("no such job", "没有这个任务"),
    )
}

async fn job(State(app): State<Arc<App>>, UrlPath(id): UrlPath<u64>) -> Response {
    match app.jobs.get(id) {
        Some(j) => Json(j).into_response(),
        None => unknown_job(),
    }
}

async fn cancel_job(State(app): State<Arc<App>>, UrlPath(id): UrlPath<u64>) -> Response {
    if app.jobs.cancel(id) {
        Json(serde_json::json!({"ok": true})).into_response()
    } else {
        unknown_job()
    }
}

async fn again_job(State(app): State<Arc<App>>, UrlPath(id): UrlPath<u64>) -> Response {
    match app.jobs.again(id) {
        Ok(job) => Json(serde_json::json!({"job": job})).into_response(),
        Err(e) => bad_request(&e),
    }
}

/// What the Progress screen shows of a job: its record, the bars as they stand,
/// the per-image states, the log tail and the queue behind it.
fn snapshot(app: &App, fixed: Option<u64>) -> serde_json::Value {
    let id = fixed.or_else(|| app.jobs.current());
    let record = id.and_then(|id| app.jobs.get(id));
    let bars = id
        .and_then(|id| app.jobs.watch(id))
        .map(|w| w.bars())
        .unwrap_or_default();
    let queue: Vec<serde_json::Value> = app
        .jobs
        .list()
        .into_iter()
        .rev()
        .filter(|j| j.state == jobs::JobState::Queued && Some(j.id) != id)
        .map(|j| serde_json::json!({"id": j.id, "title": j.title}))
        .collect();
    match record {
        None => serde_json::json!({"job": null, "queue": queue}),
        Some(mut r) => {
            let skip = r.log_tail.len().saturating_sub(EVENT_LINES);
            let log: Vec<_> = r.log_tail.drain(..).skip(skip).collect();
            let images = std::mem::take(&mut r.images);
            let summary = r.summary.take();
            serde_json::json!({
                "job": r, "bars": bars, "images": images, "summary": summary,
                "log": log, "queue": queue,
            })
        }
    }
}

/// Server-sent events: a `job` event with a fresh snapshot whenever anything moved
/// (checked every 400 ms); `?job=ID` follows one job, else the current one.
async fn events(
    State(app): State<Arc<App>>,
    uri: Uri,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let fixed = query(&uri, "job").and_then(|v| v.parse::<u64>().ok());
    let stream = futures_util::stream::unfold(
        (app, String::new(), true),
        move |(app, last, first)| async move {
            let mut last = last;
            if !first {
                tokio::time::sleep(EVENT_TICK).await;
            }
            loop {
                let text = snapshot(&app, fixed).to_string();
                if text != last {
                    last.clone_from(&text);
                    let event = Event::default().event("job").data(text);
                    return Some((Ok(event), (app, last, false)));
                }
                tokio::time::sleep(EVENT_TICK).await;
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
