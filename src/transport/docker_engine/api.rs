//! The docker engine's HTTP API on its unix socket: only the calls an image
//! transport needs (`/_ping`, `POST /images/load`, `GET /images/get`), on hyper's
//! HTTP/1 client. Request bodies stream (chunked, no length needed up front), and
//! so do answers: a load's JSON messages are read as they come, and the failure
//! that the engine reports *inside* a 200 (`errorDetail`) is a failure.

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Where the engine listens when `DOCKER_HOST` does not say.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long the engine gets to answer `/_ping`.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest JSON message line kept from a load's answer.
const MAX_LINE: usize = 1024 * 1024;
/// Most `stream` messages kept from a load's answer (one per loaded image).
const MAX_MESSAGES: usize = 10_000;
/// Most bytes read of an error answer.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What went wrong talking to a docker engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerEngineError {
    #[error("{}", crate::tr!(
        "DOCKER_HOST={0} is not a unix socket (unix://PATH); ferry talks to the docker engine through its socket only",
        "DOCKER_HOST={0} 不是 unix 套接字 (unix://PATH); ferry 只通过套接字连接 docker 引擎",
        .0
    ))]
    UnsupportedHost(String),
    #[error("{}", crate::tr!(
        "cannot connect to the docker engine at {} (set DOCKER_HOST=unix://PATH): {}",
        "无法连接 {} 处的 docker 引擎 (请设置 DOCKER_HOST=unix://PATH): {}",
        .socket.display(), crate::i18n::io_error(.source)
    ))]
    Connect {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", crate::tr!(
        "the docker engine at {}: {}",
        "{} 处的 docker 引擎: {}",
        .socket.display(), .source
    ))]
    Http {
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    #[error("{}", crate::tr!(
        "the docker engine at {} refused {}: HTTP {}: {}",
        "{} 处的 docker 引擎拒绝了 {}: HTTP {}: {}",
        .socket.display(), .what, .status, .message
    ))]
    Refused {
        socket: PathBuf,
        what: String,
        status: u16,
        message: String,
    },
    #[error("{}", crate::tr!(
        "the docker engine at {} failed to load the images: {}",
        "{} 处的 docker 引擎载入镜像失败: {}",
        .socket.display(), .message
    ))]
    LoadFailed { socket: PathBuf, message: String },
    #[error("{}", crate::tr!(
        "the docker engine at {} gave an answer ferry cannot read: {}",
        "{} 处的 docker 引擎的应答无法解析: {}",
        .socket.display(), .reason
    ))]
    BadAnswer { socket: PathBuf, reason: String },
    #[error("{}", crate::tr!(
        "image export from the docker engine at {}: {}",
        "从 {} 处的 docker 引擎导出镜像: {}",
        .socket.display(), crate::i18n::io_error(.source)
    ))]
    Io {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A docker engine, by its API socket. Each call opens its own connection.
#[derive(Clone, Debug)]
pub struct DockerEngine {
    socket: PathBuf,
}

/// An answer, with the task that drives its connection (stopped with it).
struct Exchange {
    response: Response<Incoming>,
    _connection: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DockerEngine {
    pub fn new(socket: impl Into<PathBuf>) -> DockerEngine {
        DockerEngine {
            socket: socket.into(),
        }
    }

    /// The engine that docker's own CLI would talk to: `DOCKER_HOST=unix://PATH`,
    /// else /var/run/docker.sock. Another kind of `DOCKER_HOST` (tcp://, ssh://)
    /// is an error rather than silently another engine.
    pub fn from_env() -> Result<DockerEngine, DockerEngineError> {
        Self::from_host(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    /// As [`DockerEngine::from_env`], for a given `DOCKER_HOST` value.
    pub fn from_host(host: Option<&str>) -> Result<DockerEngine, DockerEngineError> {
        match host.map(str::trim).filter(|h| !h.is_empty()) {
            None => Ok(DockerEngine::new(DEFAULT_SOCKET)),
            Some(h) => match h.strip_prefix("unix://") {
                Some(path) if !path.is_empty() => Ok(DockerEngine::new(path)),
                _ => Err(DockerEngineError::UnsupportedHost(h.to_string())),
            },
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix://SOCKET`, as `DOCKER_HOST` names it (for messages).
    pub fn describe(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Checks that an engine answers on the socket, so that a run fails before it
    /// reads anything when there is none.
    /// Bounded in time: something that accepts connections on the socket but never
    /// answers is not an engine.
    pub async fn ping(&self) -> Result<(), DockerEngineError> {
        let ping = async {
            let exchange = self.send(Method::GET, "/_ping", empty()).await?;
            self.expect_success(exchange, "/_ping").await.map(|_| ())
        };
        tokio::time::timeout(PING_TIMEOUT, ping)
            .await
            .unwrap_or_else(|_| {
                Err(DockerEngineError::Connect {
                    socket: self.socket.clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        crate::tr!(
                            "no answer within {} s",
                            "{} 秒内没有应答",
                            PING_TIMEOUT.as_secs()
                        ),
                    ),
                })
            })
    }

    /// `POST /images/load`: streams `archive` (a `docker load` tar) as a chunked
    /// request body and returns what the engine says it loaded (`Loaded image:
    /// NAME` lines). An error the engine reports in the answer, even in a 200, is
    /// [`DockerEngineError::LoadFailed`].
    pub async fn load<S>(&self, archive: S) -> Result<Vec<String>, DockerEngineError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let body = BodyExt::boxed_unsync(StreamBody::new(archive.map_ok(Frame::data)));
        let exchange = self
            .send(Method::POST, "/images/load?quiet=1", body)
            .await?;
        let body = self.expect_success(exchange, "/images/load").await?;
        let mut messages = LoadMessages::default();
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| self.http(source))?;
            if let Ok(data) = frame.into_data() {
                messages
                    .feed(&data)
                    .map_err(|reason| self.bad_answer(reason))?;
            }
        }
        messages.finish().map_err(|f| match f {
            LoadFailure::Engine(message) => DockerEngineError::LoadFailed {
                socket: self.socket.clone(),
                message,
            },
            LoadFailure::Unreadable(reason) => self.bad_answer(reason),
        })
    }

    /// `GET /images/get?names=...`: the engine's `docker save` archive of the
    /// named images, written to `out`; returns its size.
    pub async fn export<W>(&self, names: &[String], out: &mut W) -> Result<u64, DockerEngineError>
    where
        W: AsyncWrite + Unpin,
    {
        let query: Vec<String> = names
            .iter()
            .map(|n| format!("names={}", query_escape(n)))
            .collect();
        let path = format!("/images/get?{}", query.join("&"));
        let exchange = self.send(Method::GET, &path, empty()).await?;
        let mut body = self.expect_success(exchange, "/images/get").await?;
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| self.http(source))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .await
                    .map_err(|source| self.io(source))?;
                size = size.saturating_add(data.len() as u64);
            }
        }
        out.flush().await.map_err(|source| self.io(source))?;
        Ok(size)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Exchange, DockerEngineError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| DockerEngineError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| self.http(source))?;
        let connection = AbortOnDrop(tokio::spawn(async move {
            // Its failure shows in the request's own result.
            let _ = connection.await;
        }));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .map_err(|e| self.bad_answer(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| self.http(source))?;
        Ok(Exchange {
            response,
            _connection: connection,
        })
    }

    /// The body of a 2xx answer; any other status is [`DockerEngineError::Refused`]
    /// with the engine's `message`.
    async fn expect_success(
        &self,
        exchange: Exchange,
        what: &str,
    ) -> Result<ExchangeBody, DockerEngineError> {
        let status = exchange.response.status();
        let (_, body) = exchange.response.into_parts();
        let mut body = ExchangeBody {
            body,
            _connection: exchange._connection,
        };
        if status.is_success() {
            return Ok(body);
        }
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                let room = MAX_ERROR_BODY.saturating_sub(text.len());
                text.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
                if text.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
        }
        Err(DockerEngineError::Refused {
            socket: self.socket.clone(),
            what: what.to_string(),
            status: status.as_u16(),
            message: error_message(&text),
        })
    }

    fn http(&self, source: hyper::Error) -> DockerEngineError {
        DockerEngineError::Http {
            socket: self.socket.clone(),
            source,
        }
    }

    fn io(&self, source: io::Error) -> DockerEngineError {
        DockerEngineError::Io {
            socket: self.socket.clone(),
            source,
        }
    }

    fn bad_answer(&self, reason: String) -> DockerEngineError {
        DockerEngineError::BadAnswer {
            socket: self.socket.clone(),
            reason,
        }
    }
}

/// An answer's body with the connection task it needs.
struct ExchangeBody {
    body: Incoming,
    _connection: AbortOnDrop,
}

impl ExchangeBody {
    async fn frame(&mut self) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        self.body.frame().await
    }
}

fn empty() -> Body {
    BodyExt::boxed_unsync(Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// Percent-encodes a query value (image names have `:` and `/`).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The engine's `{"message": ...}` from an error answer, else its text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// Why a load's answer says it failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadFailure {
    /// The engine reported an error (`errorDetail` / `error`).
    Engine(String),
    /// The answer is not the JSON messages the engine sends.
    Unreadable(String),
}

/// Reads a load's answer: JSON messages, one per line (`{"stream": "Loaded
/// image: x\n"}`, or `{"errorDetail": {"message": ...}, "error": ...}`), which
/// may come split or joined in any way across chunks.
#[derive(Debug, Default)]
pub struct LoadMessages {
    pending: Vec<u8>,
    loaded: Vec<String>,
    error: Option<String>,
}

impl LoadMessages {
    /// Takes the next piece of the answer.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(data);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line)?;
        }
        if self.pending.len() > MAX_LINE {
            return Err(crate::tr!(
                "a message longer than {MAX_LINE} bytes",
                "消息超过 {MAX_LINE} 字节"
            ));
        }
        Ok(())
    }

    /// The end of the answer: what was loaded, or the engine's first error.
    pub fn finish(mut self) -> Result<Vec<String>, LoadFailure> {
        let rest = std::mem::take(&mut self.pending);
        self.line(&rest).map_err(LoadFailure::Unreadable)?;
        match self.error {
            Some(message) => Err(LoadFailure::Engine(message)),
            None => Ok(self.loaded),
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        for value in serde_json::Deserializer::from_slice(line).into_iter::<serde_json::Value>() {
            let value = value.map_err(|e| {
                let text = String::from_utf8_lossy(line);
                let text: String = text.trim().chars().take(200).collect();
                crate::tr!("{e} in {text:?}", "{e}, 出现在 {text:?}")
            })?;
            let detail = value
                .get("errorDetail")
                .and_then(|d| d.get("message"))
                .and_then(|m| m.as_str());
            let error = detail.or_else(|| value.get("error").and_then(|e| e.as_str()));
            if let Some(error) = error {
                self.error.get_or_insert_with(|| error.trim().to_string());
            } else if let Some(text) = value.get("stream").and_then(|s| s.as_str()) {
                let text = text.trim();
                if !text.is_empty() && self.loaded.len() < MAX_MESSAGES {
                    self.loaded.push(text.to_string());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Result<Vec<String>, LoadFailure> {
        let mut m = LoadMessages::default();
        for c in chunks {
            m.feed(c).map_err(LoadFailure::Unreadable)?;
        }
        m.finish()
    }

    #[test]
    fn loaded_images_are_read_across_any_chunking() {
        let answer = b"{\"stream\":\"Loaded image: 127.0.0.1:5000/a/b:1\\n\"}\r\n{\"stream\":\"Loaded image ID: sha256:abc\\n\"}\r\n";
        let want = vec![
            "Loaded image: 127.0.0.1:5000/a/b:1".to_string(),
            "Loaded image ID: sha256:abc".to_string(),
        ];
        assert_eq!(parse(&[answer]).unwrap(), want);
        for cut in 1..answer.len() {
            let (a, b) = answer.split_at(cut);
            assert_eq!(parse(&[a, b]).unwrap(), want, "cut at {cut}");
        }
        // No newline at the end, two objects on one line.
        assert_eq!(
            parse(&[b"{\"stream\":\"x\"}{\"stream\":\"y\"}"]).unwrap(),
            vec!["x", "y"]
        );
    }

    #[test]
    fn an_error_inside_the_answer_is_a_failure() {
        let answer = b"{\"stream\":\"Loaded image: a:1\\n\"}\r\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\r\n";
        assert_eq!(
            parse(&[answer]),
            Err(LoadFailure::Engine("unexpected EOF".into()))
        );
        assert_eq!(
            parse(&[b"{\"error\":\"open manifest.json: no such file\"}"]),
            Err(LoadFailure::Engine(
                "open manifest.json: no such file".into()
            ))
        );
    }

    #[test]
    fn garbage_and_endless_lines_are_refused() {
        assert!(matches!(
            parse(&[b"<html>oops</html>\n"]),
            Err(LoadFailure::Unreadable(_))
        ));
        let mut m = LoadMessages::default();
        let long = vec![b'x'; MAX_LINE + 1];
        assert!(m.feed(&long).is_err());
        assert!(parse(&[b"", b"\r\n"]).unwrap().is_empty());
    }

    #[test]
    fn docker_host_picks_the_socket() {
        assert_eq!(
            DockerEngine::from_host(None).unwrap().socket(),
            Path::new(DEFAULT_SOCKET)
        );
        assert_eq!(
            DockerEngine::from_host(Some("unix:///run/x.sock"))
                .unwrap()
                .socket(),
            Path::new("/run/x.sock")
        );
        assert!(DockerEngine::from_host(Some("tcp://10.0.0.1:2375")).is_err());
        assert!(DockerEngine::from_host(Some("unix://")).is_err());
    }

    #[tokio::test]
    async fn a_socket_that_never_answers_is_not_an_engine() {
        tokio::time::pause();
        let dir = std::env::temp_dir().join(format!("ferry-ping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("mute.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let held = tokio::spawn(async move {
            let conn = listener.accept().await;
            std::future::pending::<()>().await;
            drop(conn);
        });
        let err = DockerEngine::new(&socket).ping().await.unwrap_err();
        assert!(matches!(err, DockerEngineError::Connect { .. }), "{err}");
        held.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_escaped_in_queries() {
        assert_eq!(
            query_escape("127.0.0.1:5000/library/base:1"),
            "127.0.0.1%3A5000%2Flibrary%2Fbase%3A1"
        );
    }

    #[test]
    fn error_answers_give_the_engine_message() {
        assert_eq!(
            error_message(b"{\"message\":\"no such image\"}"),
            "no such image"
        );
        assert_eq!(error_message(b" plain text \n"), "plain text");
    }
}
