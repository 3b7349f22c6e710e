//! `ferry sync --listen ADDR`: the sync daemon's HTTP side, on the shared server
//! stack ([`crate::server`]).
//!
//! * `POST /events` takes registry push notifications ([`events`]) and queues the
//!   listed images they announce ([`Selector`], [`queue`]); the sync loop (in the
//!   CLI) runs a round over what is queued, with the same engine entry point as
//!   every other round.
//! * `GET /metrics` is Prometheus text ([`metrics`]); `GET /healthz` says the
//!   daemon is up and how its rounds went.
//!
//! With a shared secret, `/events` wants it in the `Authorization` header, as the
//! secret itself or `Bearer SECRET` (distribution's endpoint `headers:`, Harbor's
//! "auth header"), compared in constant time.

pub mod events;
pub mod metrics;
pub mod queue;

use crate::engine::expand::{due_for, Due, ListLine};
use crate::engine::report::Reporter;
use crate::reference::Reference;
use crate::server::error_response;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use events::Pushed;
use metrics::{EventResult, Metrics};
use queue::Queue;
use std::sync::Arc;
use std::time::Duration;

/// Largest notification body read (distribution batches events; a few KB each).
const MAX_EVENT_BODY: usize = 1024 * 1024;
/// After the first event of a burst, how long to wait for the rest before a round.
const SETTLE: Duration = Duration::from_millis(500);

/// Which list lines a push concerns: a listed image of the same repository and the
/// same tag (or, for an image listed by digest, the same digest), or a tag selector
/// of that repository that takes the tag (exclusions applied). The registry host is
/// not compared: a registry behind a proxy or a load balancer does not know the
/// name clients use.
pub struct Selector {
    lines: Vec<ListLine>,
    listed: Vec<Option<Reference>>,
}

impl Selector {
    pub fn new(lines: &[ListLine]) -> Selector {
        Selector {
            lines: lines.to_vec(),
            listed: lines
                .iter()
                .map(|l| match l {
                    ListLine::Image(r) => Reference::parse(&r.fetch).ok(),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The lines (and selected tags) `push` announces.
    pub fn select(&self, push: &Pushed) -> Vec<Due> {
        let mut due: Vec<Due> = self
            .listed
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let r = r.as_ref()?;
                if r.repository != push.repository {
                    return None;
                }
                let by_tag = r.digest.is_none()
                    && push.tag.is_some()
                    && r.tag.as_deref().unwrap_or("latest") == push.tag.as_deref()?;
                let by_digest = r.digest.is_some() && r.digest == push.digest;
                (by_tag || by_digest).then_some(Due::Line(i))
            })
            .collect();
        if let Some(tag) = &push.tag {
            due.extend(due_for(&self.lines, &push.repository, tag));
        }
        due
    }
}

struct Shared {
    selector: Selector,
    queue: Queue<Due>,
    metrics: Metrics,
    secret: Option<String>,
    reporter: Reporter,
}

/// The daemon's state, shared by its routes and the sync loop.
#[derive(Clone)]
pub struct Daemon {
    shared: Arc<Shared>,
}

impl Daemon {
    pub fn new(lines: &[ListLine], secret: Option<String>, reporter: Reporter) -> Daemon {
        Daemon {
            shared: Arc::new(Shared {
                selector: Selector::new(lines),
                queue: Queue::default(),
                metrics: Metrics::default(),
                secret: secret.filter(|s| !s.is_empty()),
                reporter,
            }),
        }
    }

    /// `/events`, `/metrics` and `/healthz`, to run on a [`crate::server::Server`].
    pub fn router(&self) -> Router {
        Router::new()
            .route("/events", post(events_route))
            .route("/metrics", get(metrics_route))
            .route("/healthz", get(healthz_route))
            .layer(DefaultBodyLimit::max(MAX_EVENT_BODY))
            .with_state(self.shared.clone())
    }

    /// Waits for announced images, lets a burst settle, and returns them (list
    /// lines and selected tags), each once.
    pub async fn next_round(&self) -> Vec<Due> {
        loop {
            self.shared.queue.wait().await;
            tokio::time::sleep(SETTLE).await;
            let due: Vec<Due> = self.shared.queue.take().into_iter().collect();
            if !due.is_empty() {
                return due;
            }
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// Whether `headers` carry the secret (always, without one).
fn authorized(secret: Option<&str>, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(secret) = secret else {
        return true;
    };
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let given = given.as_bytes();
    let bearer = format!("Bearer {secret}");
    let plain: bool = given.ct_eq(secret.as_bytes()).into();
    let with_scheme: bool = given.ct_eq(bearer.as_bytes()).into();
    plain | with_scheme
}

/// The secret is checked on the head, before any of the body is read: a client
/// without it cannot make the server wait for a body it drips.
async fn events_route(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if !authorized(s.secret.as_deref(), &headers) {
        s.metrics.event(EventResult::Refused, 1);
        s.reporter.warn(crate::i18n::t(
            "refused a notification without the right secret",
            "已拒绝一个未携带正确密钥的通知",
        ));
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "wrong or missing secret",
        );
    }
    let body: Bytes = match axum::body::to_bytes(body, MAX_EVENT_BODY).await {
        Ok(b) => b,
        Err(_) => {
            s.metrics.event(EventResult::Refused, 1);
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "INVALID",
                crate::i18n::t(
                    "the notification could not be read whole (too large, or cut off)",
                    "无法完整读取通知 (过大, 或被截断)",
                ),
            );
        }
    };
    let pushed = match events::parse(&body) {
        Ok(p) => p,
        Err(e) => {
            s.metrics.event(EventResult::Refused, 1);
            return error_response(StatusCode::BAD_REQUEST, "INVALID", &e.to_string());
        }
    };
    let mut selected = 0u64;
    for p in &pushed {
        let hits = s.selector.select(p);
        if hits.is_empty() {
            s.metrics.event(EventResult::Ignored, 1);
            continue;
        }
        selected += 1;
        s.reporter.debug(&crate::tr!(
            "pushed: {}:{} - queued for the next round",
            "已推送: {}:{} - 已排入下一轮",
            p.repository,
            p.tag.as_deref().unwrap_or("-")
        ));
        s.queue.push(hits);
    }
    s.metrics.event(EventResult::Selected, selected);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"received": pushed.len(), "selected": selected}).to_string(),
    )
        .into_response()
}

async fn metrics_route(State(s): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz_route(State(s): State<Arc<Shared>>) -> Response {
    let (rounds, last_success) = s.metrics.health();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"status": "ok", "rounds": rounds, "last_success": last_success})
            .to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(repo: &str, tag: Option<&str>) -> Pushed {
        Pushed {
            repository: repo.into(),
            tag: tag.map(Into::into),
            digest: None,
        }
    }

    #[test]
    fn pushes_select_listed_images_only() {
        let d = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let lines: Vec<ListLine> = [
            "127.0.0.1:5000/team/app:1".to_string(),
            "127.0.0.1:5000/team/app".to_string(),
            format!("127.0.0.1:5000/team/pinned@{d}"),
            "nginx:1.27".to_string(),
            r"127.0.0.1:5000/team/sel:~^v2\.".to_string(),
            "!127.0.0.1:5000/team/sel:v2.9".to_string(),
        ]
        .iter()
        .map(|l| {
            crate::engine::expand::classify(l, crate::config::rewrite::parse_line(l), &|s| {
                s.to_string()
            })
        })
        .collect();
        let s = Selector::new(&lines);
        assert_eq!(s.select(&push("team/app", Some("1"))), vec![Due::Line(0)]);
        assert_eq!(
            s.select(&push("team/app", Some("latest"))),
            vec![Due::Line(1)]
        );
        assert!(s.select(&push("team/app", Some("2"))).is_empty());
        assert!(s.select(&push("team/app", None)).is_empty());
        assert!(s.select(&push("team/other", Some("1"))).is_empty());
        assert_eq!(
            s.select(&push("library/nginx", Some("1.27"))),
            vec![Due::Line(3)]
        );
        let mut pinned = push("team/pinned", Some("x"));
        pinned.digest = d.parse().ok();
        assert_eq!(s.select(&pinned), vec![Due::Line(2)]);
        assert_eq!(
            s.select(&push("team/sel", Some("v2.1"))),
            vec![Due::Tag(4, "v2.1".into())]
        );
        assert!(s.select(&push("team/sel", Some("v3.0"))).is_empty());
        assert!(s.select(&push("team/sel", Some("v2.9"))).is_empty());
    }

    #[test]
    fn the_secret_is_checked() {
        let mut h = HeaderMap::new();
        assert!(authorized(None, &h));
        assert!(!authorized(Some("s3"), &h));
        h.insert(header::AUTHORIZATION, "Bearer s3".parse().unwrap());
        assert!(authorized(Some("s3"), &h));
        h.insert(header::AUTHORIZATION, "s3".parse().unwrap());
        assert!(authorized(Some("s3"), &h));
        h.insert(header::AUTHORIZATION, "Bearer s4".parse().unwrap());
        assert!(!authorized(Some("s3"), &h));
    }
}
