//! The docker engine as an endpoint (skopeo's `docker-daemon:`).
//!
//! [`DockerEngineSink`] streams a `docker load` archive straight into the engine's
//! `POST /images/load` as the blobs arrive: nothing is written to disk (a bundle
//! may sit on read-only media), and memory stays bounded by a small pipe between
//! the (blocking) archive writer and the (async) HTTP body. Images are named
//! with the `repository:tag` they are given, verbatim: the copy engine passes the
//! repository with its registry host (`127.0.0.1:5000/library/base:1`), as
//! `docker pull` would name it.

pub mod api;

pub use api::{DockerEngine, DockerEngineError};

use super::archive_feed::ArchiveFeed;
use super::blocking::{pipe, PipeControl, PipeWriter};
use super::{BlobRef, ImageSink, Result, SharedSource, TransportError};
use crate::manifest::RawManifest;
use std::time::Duration;
use tokio::sync::Mutex;

/// Chunks of the archive in flight between the writer and the HTTP body.
const PIPE_CHUNKS: usize = 8;
/// How long a failed load waits for the engine to say why.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// A load in progress: the archive being written, the pipe it goes down, and the
/// request that carries it to the engine.
struct Loading {
    feed: ArchiveFeed<PipeWriter>,
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

enum State {
    /// Nothing sent yet: the request starts with the first blob.
    Idle,
    Loading(Loading),
    /// Finished, with what the engine said it loaded.
    Done(Vec<String>),
    /// An earlier step failed; the load was aborted.
    Failed,
}

/// A sink into a docker engine; see the module docs.
pub struct DockerEngineSink {
    engine: DockerEngine,
    state: Mutex<State>,
}

impl DockerEngineSink {
    /// Checks that the engine answers (so that a run without one fails before it
    /// reads anything) and returns a sink into it.
    pub async fn connect(engine: DockerEngine) -> Result<DockerEngineSink> {
        engine.ping().await?;
        Ok(DockerEngineSink {
            engine,
            state: Mutex::new(State::Idle),
        })
    }

    pub fn engine(&self) -> &DockerEngine {
        &self.engine
    }

    /// What the engine said it loaded (`Loaded image: NAME` lines), once
    /// [`ImageSink::finish`] has returned.
    pub async fn loaded(&self) -> Vec<String> {
        match &*self.state.lock().await {
            State::Done(lines) => lines.clone(),
            _ => Vec::new(),
        }
    }

    fn start(&self) -> Loading {
        let (writer, pipe, body) = pipe(PIPE_CHUNKS);
        let engine = self.engine.clone();
        let answer = tokio::spawn(async move { engine.load(body).await });
        Loading {
            feed: ArchiveFeed::new(writer),
            pipe,
            answer,
        }
    }

    /// The load in progress, started on first use.
    fn loading<'a>(&self, state: &'a mut State) -> Result<&'a mut Loading> {
        if matches!(state, State::Idle) {
            *state = State::Loading(self.start());
        }
        match state {
            State::Loading(l) => Ok(l),
            _ => Err(self.unusable()),
        }
    }

    fn unusable(&self) -> TransportError {
        TransportError::Invalid {
            endpoint: self.describe(),
            reason: crate::i18n::t(
                "the load was aborted after an earlier error, or has finished",
                "载入因之前的错误已中止, 或已结束",
            )
            .to_string(),
        }
    }

    /// Aborts the load after a failed step. When the write failed because the
    /// engine closed the connection, the engine's own answer says why (a corrupt
    /// archive is reported inside a 200): that is the error returned.
    async fn fail(&self, state: &mut State, error: std::io::Error) -> TransportError {
        let State::Loading(mut loading) = std::mem::replace(state, State::Failed) else {
            return TransportError::io(self.describe(), error);
        };
        loading.pipe.abandon();
        if loading.pipe.reader_gone() {
            if let Ok(Ok(Err(engine_error))) =
                tokio::time::timeout(ANSWER_WAIT, &mut loading.answer).await
            {
                return engine_error.into();
            }
        }
        TransportError::io(self.describe(), error)
    }
}

#[async_trait::async_trait]
impl ImageSink for DockerEngineSink {
    fn describe(&self) -> String {
        format!("docker-daemon ({})", self.engine.describe())
    }

    fn supports_index(&self) -> bool {
        false
    }

    fn concurrency_limit(&self) -> Option<usize> {
        Some(1)
    }

    /// Only what this load carries already: the engine is not asked (`docker
    /// load` takes whole archives, so every image's blobs go in).
    async fn has_blob(&self, _repository: &str, blob: &BlobRef) -> Result<bool> {
        Ok(match &*self.state.lock().await {
            State::Loading(l) => l.feed.has_blob(&blob.digest),
            _ => false,
        })
    }

    async fn put_blob(
        &self,
        _repository: &str,
        blob: &BlobRef,
        source: SharedSource,
        source_repository: &str,
    ) -> Result<u64> {
        let mut state = self.state.lock().await;
        let loading = self.loading(&mut state)?;
        if loading.feed.has_blob(&blob.digest) {
            return Ok(0);
        }
        let stream = source.open_blob(source_repository, blob, 0).await?;
        match loading.feed.put_blob(blob, stream).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail(&mut state, e).await),
        }
    }

    /// Adds an image under `repository:tag` (no name for a digest-only image).
    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let mut state = self.state.lock().await;
        let loading = self.loading(&mut state)?;
        let repo_tags = tag
            .map(|t| format!("{repository}:{t}"))
            .into_iter()
            .collect();
        match loading.feed.put_image(repo_tags, manifest).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(&mut state, e).await),
        }
    }

    /// Ends the archive and waits for the engine's answer: only now is anything
    /// loaded. An error in the answer (even in a 200) fails the run.
    async fn finish(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let loading = match &mut *state {
            State::Idle => {
                *state = State::Done(Vec::new());
                return Ok(());
            }
            State::Loading(l) => l,
            State::Done(_) | State::Failed => return Err(self.unusable()),
        };
        if let Err(e) = loading.feed.finish(PipeWriter::complete).await {
            return Err(self.fail(&mut state, e).await);
        }
        let answer = (&mut loading.answer).await;
        let answer = answer
            .map_err(|e| TransportError::io(self.describe(), std::io::Error::other(e.to_string())));
        match answer.and_then(|a| a.map_err(TransportError::from)) {
            Ok(lines) => {
                *state = State::Done(lines);
                Ok(())
            }
            Err(e) => {
                *state = State::Failed;
                Err(e)
            }
        }
    }
}
