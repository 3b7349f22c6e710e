//! `ferry serve`: a read-only registry (distribution API v2: manifests by tag and
//! digest, blobs with Range, tag lists, catalog) in front of any [`ImageSource`],
//! on the shared hardened server stack ([`crate::server`]). Over a bundle, any
//! client can pull straight from a USB stick.
//!
//! Nothing leaves unchecked: manifests come from the source, which checks their
//! digests; blobs are always streamed from their first byte through the source's
//! checked stream, and a body is cut short rather than completed with wrong bytes
//! (see [`body`]).

mod body;
mod index;
mod range;

pub use range::{parse_range, Wanted};

use crate::digest::Digest;
use crate::engine::report::Reporter;
use crate::server::error_response;
use crate::transport::{ImageSource, TransportError};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use index::{Index, Member};
use std::sync::Arc;

/// What the routes share: the source and what it may serve.
struct Registry {
    source: Arc<dyn ImageSource>,
    index: Index,
    reporter: Reporter,
}

/// The distribution API over `source`, as a router to run on
/// [`crate::server::Server`] (alone, or merged with other routes). Walks the
/// source once to learn its repositories, manifests and blob sizes.
pub async fn router(
    source: Arc<dyn ImageSource>,
    reporter: Reporter,
) -> Result<Router, TransportError> {
    let index = Index::build(source.as_ref(), &reporter).await?;
    let state = Arc::new(Registry {
        source,
        index,
        reporter,
    });
    Ok(Router::new().fallback(handle).with_state(state))
}

async fn handle(
    State(reg): State<Arc<Registry>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let mut resp = route(&reg, &method, uri.path(), range).await;
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

fn not_found(code: &str, message: &str) -> Response {
    error_response(StatusCode::NOT_FOUND, code, message)
}

fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A response of known bytes; for HEAD, only their length.
fn bytes_response(
    head: bool,
    headers: Vec<(header::HeaderName, String)>,
    bytes: Vec<u8>,
) -> Response {
    let len = bytes.len();
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(bytes))
    };
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    if head {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

/// Routes one request. `path` is the URL path without the query.
async fn route(reg: &Registry, method: &Method, path: &str, range: Option<&str>) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is read-only",
        );
    }
    let head = method == Method::HEAD;
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            json(serde_json::json!({}))
        } else {
            not_found("NOT_FOUND", "not a registry API path")
        };
    };
    if rest.is_empty() {
        return json(serde_json::json!({}));
    }
    if rest == "_catalog" {
        return json(serde_json::json!({"repositories": reg.index.repositories()}));
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        if !reg.index.has_repository(repo) {
            return not_found("NAME_UNKNOWN", "repository name not known to registry");
        }
        return match reg.source.list_tags(repo).await {
            Ok(mut tags) => {
                tags.sort();
                json(serde_json::json!({"name": repo, "tags": tags}))
            }
            Err(e) => source_error(reg, "NAME_UNKNOWN", &e),
        };
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        if !reg.index.has_repository(repo) {
            return not_found("NAME_UNKNOWN", "repository name not known to registry");
        }
        return match reg.source.get_manifest(repo, reference).await {
            Ok((raw, parsed)) => {
                reg.index.learn(repo, &raw, &parsed);
                bytes_response(
                    head,
                    vec![
                        (header::CONTENT_TYPE, raw.media_type),
                        (
                            header::HeaderName::from_static("docker-content-digest"),
                            raw.digest.to_string(),
                        ),
                    ],
                    raw.bytes,
                )
            }
            Err(e) => source_error(reg, "MANIFEST_UNKNOWN", &e),
        };
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        let Ok(digest) = digest.parse::<Digest>() else {
            return error_response(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
        };
        if !reg.index.has_repository(repo) {
            return not_found("NAME_UNKNOWN", "repository name not known to registry");
        }
        return match reg.index.lookup(repo, &digest) {
            Some(Member::Manifest) => match reg.source.get_manifest(repo, digest.as_str()).await {
                Ok((raw, _)) => bytes_response(
                    head,
                    vec![
                        (header::CONTENT_TYPE, "application/octet-stream".into()),
                        (
                            header::HeaderName::from_static("docker-content-digest"),
                            raw.digest.to_string(),
                        ),
                    ],
                    raw.bytes,
                ),
                Err(e) => source_error(reg, "BLOB_UNKNOWN", &e),
            },
            Some(Member::Blob(blob)) => send_blob(reg, repo, blob, head, range).await,
            None => not_found("BLOB_UNKNOWN", "blob unknown to registry"),
        };
    }
    not_found("NOT_FOUND", "not a registry API path")
}

/// A blob, whole or the part `range` asks for.
async fn send_blob(
    reg: &Registry,
    repo: &str,
    blob: crate::transport::BlobRef,
    head: bool,
    range: Option<&str>,
) -> Response {
    let size = blob.size;
    let (status, start, end) = match range.map_or(Wanted::Whole, |r| parse_range(r, size)) {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e.saturating_add(1)),
        Wanted::Unsatisfiable => {
            let mut r = error_response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_INVALID",
                "invalid range",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = if head {
        Body::empty()
    } else {
        // Always from byte 0: only a stream read from its start is checked.
        match reg.source.open_blob(repo, &blob, 0).await {
            Ok(stream) => Body::from_stream(body::RangeBody::new(stream, start, end)),
            Err(e) => return source_error(reg, "BLOB_UNKNOWN", &e),
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(
        header::HeaderName::from_static("docker-content-digest"),
        blob.digest.to_string(),
    );
    set(header::CONTENT_TYPE, "application/octet-stream".into());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::CONTENT_LENGTH, (end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        );
    }
    resp
}

/// A source's refusal as a registry error: "not found" as 404 with `code`,
/// anything else (a corrupt manifest, an I/O error) as 500, and reported.
fn source_error(reg: &Registry, code: &str, e: &TransportError) -> Response {
    match e {
        TransportError::NotFound { .. } | TransportError::Invalid { .. } => {
            not_found(code, &e.to_string())
        }
        _ => {
            reg.reporter.warn(&e.to_string());
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Empty;

    #[async_trait::async_trait]
    impl ImageSource for Empty {
        fn describe(&self) -> String {
            "empty".into()
        }
        async fn repositories(&self) -> crate::transport::Result<Option<Vec<String>>> {
            Ok(Some(Vec::new()))
        }
        async fn list_tags(&self, r: &str) -> crate::transport::Result<Vec<String>> {
            Err(TransportError::NotFound {
                endpoint: "empty".into(),
                what: r.into(),
            })
        }
        async fn get_manifest(
            &self,
            r: &str,
            _: &str,
        ) -> crate::transport::Result<(crate::manifest::RawManifest, crate::manifest::Parsed)>
        {
            Err(TransportError::NotFound {
                endpoint: "empty".into(),
                what: r.into(),
            })
        }
        async fn open_blob(
            &self,
            r: &str,
            _: &crate::transport::BlobRef,
            _: u64,
        ) -> crate::transport::Result<crate::transport::BlobStream> {
            Err(TransportError::NotFound {
                endpoint: "empty".into(),
                what: r.into(),
            })
        }
    }

    #[tokio::test]
    async fn bad_paths_get_registry_errors() {
        let reporter = Reporter::new(crate::engine::report::Verbosity::Quiet);
        let reg = Registry {
            index: Index::build(&Empty, &reporter).await.unwrap(),
            source: Arc::new(Empty),
            reporter,
        };
        for (method, path, status) in [
            (Method::GET, "/", 404),
            (Method::GET, "/v2/", 200),
            (Method::PUT, "/v2/x/manifests/y", 405),
            (Method::GET, "/v2/x/blobs/nonsense", 400),
            (Method::GET, "/v2/x/manifests/latest", 404),
            (Method::GET, "/v2/x/tags/list", 404),
            (Method::GET, "/v2/../../etc/passwd", 404),
        ] {
            let r = route(&reg, &method, path, None).await;
            assert_eq!(r.status().as_u16(), status, "{method} {path}");
            if status >= 400 {
                let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                assert!(v["errors"][0]["code"].is_string());
            }
        }
    }
}
