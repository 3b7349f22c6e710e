//! `ferry serve`: a bundle (and its bases) as a read-only registry (distribution API
//! v2: manifests by tag and digest, blobs with Range, tag lists, catalog), streaming
//! from the tar files, so any client can pull straight from a USB stick.
//!
//! A small HTTP/1.1 server of its own: only GET and HEAD, with keep-alive; every
//! error is a registry-style JSON body.

use crate::bundle::reader::{BlobLocation, Bundle};
use crate::digest::Digest;
use crate::engine::export::image_contents;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the server knows: manifests (bytes and media type) and blob locations, by
/// repository.
pub struct Catalog {
    /// repository → tag → manifest digest
    tags: BTreeMap<String, BTreeMap<String, Digest>>,
    /// digest → (media type, bytes) for every manifest of every image
    manifests: HashMap<Digest, (String, Vec<u8>)>,
    /// repository → digests of the manifests and blobs it may serve
    members: HashMap<String, std::collections::HashSet<Digest>>,
    blobs: HashMap<Digest, BlobLocation>,
}

impl Catalog {
    pub fn build(bundle: &Bundle, index: HashMap<Digest, BlobLocation>) -> anyhow::Result<Catalog> {
        let mut c = Catalog {
            tags: BTreeMap::new(),
            manifests: HashMap::new(),
            members: HashMap::new(),
            blobs: HashMap::new(),
        };
        for image in &bundle.meta.images {
            let (manifests, blobs) = image_contents(bundle, image, &index)?;
            // A renamed image is served where upload would put it.
            let (repo, tag) = match &image.target {
                Some(target) => {
                    let (repo, tag) = crate::reference::split_short(target);
                    // Neither tag nor digest means latest, as everywhere.
                    let tag = tag.or((!target.contains('@')).then_some("latest"));
                    (repo.to_string(), tag.map(str::to_string))
                }
                None => (image.repository.clone(), image.tag.clone()),
            };
            let set = c.members.entry(repo.clone()).or_default();
            for m in manifests {
                set.insert(m.digest.clone());
                c.manifests
                    .insert(m.digest.clone(), (m.media_type.clone(), m.bytes));
            }
            set.extend(blobs);
            if let Some(tag) = tag {
                c.tags
                    .entry(repo)
                    .or_default()
                    .insert(tag, image.digest.clone());
            } else {
                c.tags.entry(repo).or_default();
            }
        }
        c.blobs = index;
        Ok(c)
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    Blob {
        loc: BlobLocation,
        start: u64,
        len: u64,
    },
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]})
        .to_string()
        .into_bytes();
    Response {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Bytes(body),
    }
}

fn json(value: serde_json::Value) -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Bytes(value.to_string().into_bytes()),
    }
}

/// Routes one request. `path` is the URL path without the query.
fn route(catalog: &Catalog, method: &str, path: &str, range: Option<&str>) -> Response {
    if method != "GET" && method != "HEAD" {
        return error(405, "UNSUPPORTED", "this registry is read-only");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            json(serde_json::json!({}))
        } else {
            error(404, "NOT_FOUND", "not a registry API path")
        };
    };
    if rest.is_empty() {
        return json(serde_json::json!({}));
    }
    if rest == "_catalog" {
        return json(serde_json::json!({"repositories": catalog.tags.keys().collect::<Vec<_>>()}));
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return match catalog.tags.get(repo) {
            Some(t) => {
                json(serde_json::json!({"name": repo, "tags": t.keys().collect::<Vec<_>>()}))
            }
            None => error(404, "NAME_UNKNOWN", "repository name not known to registry"),
        };
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let Some(members) = catalog.members.get(repo) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        let digest = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => catalog
                .tags
                .get(repo)
                .and_then(|t| t.get(reference))
                .cloned(),
        };
        return match digest
            .filter(|d| members.contains(d))
            .and_then(|d| catalog.manifests.get(&d).map(|m| (d, m)))
        {
            Some((d, (media_type, bytes))) => Response {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), media_type.clone()),
                    ("Docker-Content-Digest".into(), d.to_string()),
                ],
                body: Body::Bytes(bytes.clone()),
            },
            None => error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        };
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        let Ok(d) = digest.parse::<Digest>() else {
            return error(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
            );
        };
        let Some(members) = catalog.members.get(repo) else {
            return error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        if let Some((media_type, bytes)) =
            catalog.manifests.get(&d).filter(|_| members.contains(&d))
        {
            let _ = media_type;
            return Response {
                status: 200,
                headers: vec![("Docker-Content-Digest".into(), d.to_string())],
                body: Body::Bytes(bytes.clone()),
            };
        }
        let Some(loc) = catalog.blobs.get(&d).filter(|_| members.contains(&d)) else {
            return error(404, "BLOB_UNKNOWN", "blob unknown to registry");
        };
        let mut headers = vec![
            ("Docker-Content-Digest".into(), d.to_string()),
            ("Content-Type".into(), "application/octet-stream".into()),
            ("Accept-Ranges".into(), "bytes".into()),
        ];
        let wanted = range.map_or(Wanted::Whole, |r| parse_range(r, loc.size));
        let (status, start, end) = match wanted {
            Wanted::Part(s, e) => {
                headers.push((
                    "Content-Range".into(),
                    format!("bytes {s}-{e}/{}", loc.size),
                ));
                (206, s, e + 1)
            }
            Wanted::Unsatisfiable => {
                let mut r = error(416, "RANGE_INVALID", "invalid range");
                r.headers
                    .push(("Content-Range".into(), format!("bytes */{}", loc.size)));
                return r;
            }
            Wanted::Whole => (200, 0, loc.size),
        };
        return Response {
            status,
            headers,
            body: Body::Blob {
                loc: loc.clone(),
                start,
                len: end - start,
            },
        };
    }
    error(404, "NOT_FOUND", "not a registry API path")
}

/// `bytes=START-[END]` within `size`, as (start, inclusive end).
/// What a `Range` header asks of a blob of `size` bytes (RFC 9110 §14.1.2).
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No usable range (malformed, another unit, several ranges): the whole blob.
    Whole,
    /// Bytes `start..=end`, the end clamped to the blob.
    Part(u64, u64),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> Wanted {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    let Some((s, e)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Wanted::Whole;
    };
    let (s, e) = (s.trim(), e.trim());
    if s.is_empty() {
        // A suffix: the last N bytes.
        return match e.parse::<u64>() {
            Ok(0) => Wanted::Unsatisfiable,
            Ok(_) if size == 0 => Wanted::Unsatisfiable,
            Ok(n) => Wanted::Part(size.saturating_sub(n), size - 1),
            Err(_) => Wanted::Whole,
        };
    }
    let Ok(start) = s.parse::<u64>() else {
        return Wanted::Whole;
    };
    let end = if e.is_empty() {
        None
    } else {
        match e.parse::<u64>() {
            Ok(end) if end >= start => Some(end),
            _ => return Wanted::Whole,
        }
    };
    if start >= size {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part(start, end.map_or(size - 1, |end| end.min(size - 1)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Error",
    }
}

async fn handle(stream: TcpStream, catalog: Arc<Catalog>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut range = None;
        let mut close = false;
        let mut header_bytes = request_line.len();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).await?;
            header_bytes += n;
            if n == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if header_bytes > 64 * 1024 {
                return Ok(());
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(v.trim().to_string()),
                    "connection" if v.trim().eq_ignore_ascii_case("close") => close = true,
                    _ => {}
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let resp = route(&catalog, method, path, range.as_deref());
        let len = match &resp.body {
            Body::Bytes(b) => b.len() as u64,
            Body::Blob { len, .. } => *len,
        };
        let mut head = format!("HTTP/1.1 {} {}\r\nContent-Length: {len}\r\nDocker-Distribution-API-Version: registry/2.0\r\n", resp.status, reason(resp.status));
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        write.write_all(head.as_bytes()).await?;
        if method != "HEAD" {
            match resp.body {
                Body::Bytes(b) => write.write_all(&b).await?,
                Body::Blob { loc, start, len } => send_blob(&mut write, loc, start, len).await?,
            }
        }
        write.flush().await?;
        if close {
            return Ok(());
        }
    }
}

/// Streams a blob range from its data file, a chunk at a time, off the async threads.
async fn send_blob(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    loc: BlobLocation,
    start: u64,
    len: u64,
) -> std::io::Result<()> {
    let mut rx = loc.stream(start, len);
    let mut sent = 0;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        sent += chunk.len() as u64;
        write.write_all(&chunk).await?;
    }
    if sent != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "blob cut short in its data file",
        ));
    }
    Ok(())
}

/// Serves until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    catalog: Catalog,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let catalog = Arc::new(catalog);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let _ = handle(stream, catalog).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_within_the_blob() {
        assert_eq!(parse_range("bytes=0-9", 100), Wanted::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Wanted::Part(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100), Wanted::Part(90, 99));
        assert_eq!(parse_range("bytes=-5", 100), Wanted::Part(95, 99));
        assert_eq!(parse_range("bytes=-500", 100), Wanted::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse_range("items=1-2", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=abc", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=0-0,5-6", 100), Wanted::Whole);
        assert_eq!(parse_range("bytes=9-3", 100), Wanted::Whole);
    }

    #[test]
    fn bad_paths_get_registry_errors() {
        let c = Catalog {
            tags: BTreeMap::new(),
            manifests: HashMap::new(),
            members: HashMap::new(),
            blobs: HashMap::new(),
        };
        for (method, path, status) in [
            ("GET", "/", 404),
            ("GET", "/v2/", 200),
            ("PUT", "/v2/x/manifests/y", 405),
            ("GET", "/v2/x/blobs/nonsense", 400),
            ("GET", "/v2/x/manifests/latest", 404),
            ("GET", "/v2/../../etc/passwd", 404),
        ] {
            let r = route(&c, method, path, None);
            assert_eq!(r.status, status, "{method} {path}");
            if status >= 400 {
                let Body::Bytes(b) = r.body else {
                    panic!("error body")
                };
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                assert!(v["errors"][0]["code"].is_string());
            }
        }
    }
}
