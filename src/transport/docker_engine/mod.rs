//! The docker engine as an endpoint (skopeo's `docker-daemon:`). The source,
//! [`DockerEngineSource`], reads the engine's image export (see `source`).
//!
//! [`DockerEngineSink`] streams a `docker load` archive straight into the engine's
//! `POST /images/load` as the blobs arrive: nothing is written to disk (a bundle
//! may sit on read-only media), and memory stays bounded by a small pipe between
//! the (blocking) archive writer and the (async) HTTP body. Images are named
//! with the `repository:tag` they are given, verbatim: the copy engine passes the
//! repository with its registry host (`127.0.0.1:5000/library/base:1`), as
//! `docker pull` would name it.

pub mod api;
pub mod source;

pub use api::{DockerEngine, DockerEngineError};
pub use source::DockerEngineSource;

use super::blocking::{pipe, PipeControl, PipeWriter};
use super::feed_sink::{ArchiveConsumer, FeedSink};
use super::{Result, TransportError};
use std::time::Duration;

/// Chunks of the archive in flight between the writer and the HTTP body.
const PIPE_CHUNKS: usize = 8;
/// How long a failed load waits for the engine to say why.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// A sink into a docker engine; see the module docs.
pub type DockerEngineSink = FeedSink<DockerLoad>;

/// `POST /images/load` as an [`ArchiveConsumer`].
pub struct DockerLoad {
    engine: DockerEngine,
}

/// A load request in flight: the pipe its body comes from, and the task that
/// sends it and reads the answer.
pub struct Loading {
    pipe: PipeControl,
    answer: tokio::task::JoinHandle<Result<Vec<String>, DockerEngineError>>,
}

impl Drop for Loading {
    /// A load dropped before it finished is aborted: the request body ends with an
    /// error, so the engine loads nothing of it.
    fn drop(&mut self) {
        self.pipe.abandon();
        self.answer.abort();
    }
}

impl FeedSink<DockerLoad> {
    /// Checks that the engine answers (so that a run without one fails before it
    /// reads anything) and returns a sink into it.
    pub async fn connect(engine: DockerEngine) -> Result<DockerEngineSink> {
        engine.ping().await?;
        Ok(FeedSink::new(DockerLoad { engine }))
    }

    pub fn engine(&self) -> &DockerEngine {
        &self.consumer().engine
    }
}

impl DockerLoad {
    fn joined(
        &self,
        answer: std::result::Result<Result<Vec<String>, DockerEngineError>, tokio::task::JoinError>,
    ) -> Result<Vec<String>> {
        answer
            .map_err(|e| TransportError::io(self.describe(), std::io::Error::other(e)))?
            .map_err(TransportError::from)
    }
}

#[async_trait::async_trait]
impl ArchiveConsumer for DockerLoad {
    type Out = PipeWriter;
    type Run = Loading;

    fn describe(&self) -> String {
        format!("docker-daemon ({})", self.engine.describe())
    }

    fn start(&self) -> Result<(PipeWriter, Loading)> {
        let (writer, pipe, body) = pipe(PIPE_CHUNKS);
        let engine = self.engine.clone();
        let answer = tokio::spawn(async move { engine.load(body).await });
        Ok((writer, Loading { pipe, answer }))
    }

    fn close(out: PipeWriter) -> std::io::Result<()> {
        out.complete()
    }

    /// The engine's answer: an error in it (even in a 200) fails the run.
    async fn wait(&self, mut run: Loading) -> Result<Vec<String>> {
        let answer = (&mut run.answer).await;
        self.joined(answer)
    }

    /// When the engine closed the connection, its own answer says why (a corrupt
    /// archive is reported inside a 200): that is the error returned.
    async fn abort(&self, mut run: Loading, error: std::io::Error) -> TransportError {
        run.pipe.abandon();
        if run.pipe.reader_gone() {
            if let Ok(answer) = tokio::time::timeout(ANSWER_WAIT, &mut run.answer).await {
                if let Err(engine_error) = self.joined(answer) {
                    return engine_error;
                }
            }
        }
        TransportError::io(self.describe(), error)
    }
}
