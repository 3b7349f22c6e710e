//! [`FeedSink`]: an [`ImageSink`] that streams a `docker load` archive into a
//! consumer that takes whole archives (the docker engine's `POST /images/load`,
//! `ctr images import`). The sink's protocol is the same for every such consumer
//! and lives here once; the consumer only says how to start, how to end, and why
//! it failed ([`ArchiveConsumer`]).
//!
//! The consumer starts with the first blob (a run with nothing to send starts
//! nothing), takes blobs and image manifests as they come, and has loaded nothing
//! before [`ImageSink::finish`] returns. A failed step aborts it, so that a half
//! archive is never taken for a whole one.

use super::archive_feed::ArchiveFeed;
use super::{BlobRef, ImageSink, Result, SharedSource, TransportError};
use crate::manifest::RawManifest;
use std::io::Write;
use tokio::sync::Mutex;

/// The engine-specific half of a [`FeedSink`].
#[async_trait::async_trait]
pub trait ArchiveConsumer: Send + Sync + 'static {
    /// What the archive is written into (blocking).
    type Out: Write + Send + 'static;
    /// The consumer while it runs (a request, a process). Dropping it aborts it.
    type Run: Send + 'static;

    /// Names the consumer in messages.
    fn describe(&self) -> String;

    /// Starts the consumer: where the archive goes, and the consumer running.
    fn start(&self) -> Result<(Self::Out, Self::Run)>;

    /// Ends the archive's output once the archive is complete (runs on a blocking
    /// thread): closes a pipe, a process's stdin.
    fn close(out: Self::Out) -> std::io::Result<()>;

    /// Waits for the consumer's verdict after the output was closed: what it says
    /// it loaded, or why it failed.
    async fn wait(&self, run: Self::Run) -> Result<Vec<String>>;

    /// Aborts the consumer after writing failed with `error`, and says why: the
    /// consumer's own reason when it went away first (it closed the connection,
    /// the process exited), else `error`.
    async fn abort(&self, run: Self::Run, error: std::io::Error) -> TransportError;
}

enum State<C: ArchiveConsumer> {
    /// Nothing sent yet.
    Idle,
    /// The consumer first: dropped (aborted) before the archive's output closes.
    Running(C::Run, ArchiveFeed<C::Out>),
    /// Finished, with what the consumer said it loaded.
    Done(Vec<String>),
    /// An earlier step failed; the consumer was aborted.
    Failed,
}

/// A sink that streams an archive into a consumer; see the module docs.
pub struct FeedSink<C: ArchiveConsumer> {
    consumer: C,
    state: Mutex<State<C>>,
}

impl<C: ArchiveConsumer> FeedSink<C> {
    pub fn new(consumer: C) -> FeedSink<C> {
        FeedSink {
            consumer,
            state: Mutex::new(State::Idle),
        }
    }

    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// What the consumer said it loaded, once [`ImageSink::finish`] has returned.
    pub async fn loaded(&self) -> Vec<String> {
        match &*self.state.lock().await {
            State::Done(lines) => lines.clone(),
            _ => Vec::new(),
        }
    }

    /// The archive in progress, the consumer started on first use.
    fn feed<'a>(&self, state: &'a mut State<C>) -> Result<&'a mut ArchiveFeed<C::Out>> {
        if matches!(state, State::Idle) {
            let (out, run) = self.consumer.start()?;
            *state = State::Running(run, ArchiveFeed::new(out));
        }
        match state {
            State::Running(_, feed) => Ok(feed),
            _ => Err(self.unusable()),
        }
    }

    fn unusable(&self) -> TransportError {
        TransportError::Invalid {
            endpoint: self.describe(),
            reason: crate::i18n::t(
                "the transfer was aborted after an earlier error, or has finished",
                "传输因之前的错误已中止, 或已结束",
            )
            .to_string(),
        }
    }

    /// Aborts the consumer after a failed step; the error to report.
    async fn fail(&self, state: &mut State<C>, error: std::io::Error) -> TransportError {
        match std::mem::replace(state, State::Failed) {
            State::Running(run, feed) => {
                drop(feed);
                self.consumer.abort(run, error).await
            }
            _ => TransportError::io(self.describe(), error),
        }
    }
}

#[async_trait::async_trait]
impl<C: ArchiveConsumer> ImageSink for FeedSink<C> {
    fn describe(&self) -> String {
        self.consumer.describe()
    }

    /// One platform's image per name: the engine picks the child of an index.
    fn supports_index(&self) -> bool {
        false
    }

    /// One archive, written in order.
    fn concurrency_limit(&self) -> Option<usize> {
        Some(1)
    }

    /// Only what this archive carries already: the consumer is not asked (it
    /// takes whole archives, so every image's blobs go in).
    async fn has_blob(&self, _repository: &str, blob: &BlobRef) -> Result<bool> {
        Ok(match &*self.state.lock().await {
            State::Running(_, feed) => feed.has_blob(&blob.digest),
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
        let feed = self.feed(&mut state)?;
        if feed.has_blob(&blob.digest) {
            return Ok(0);
        }
        let stream = source.open_blob(source_repository, blob, 0).await?;
        match feed.put_blob(blob, stream).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail(&mut state, e).await),
        }
    }

    /// Adds an image under `repository:tag`, verbatim (the caller includes the
    /// registry host when the name should carry it); no name without a tag.
    async fn put_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
    ) -> Result<()> {
        let mut state = self.state.lock().await;
        let feed = self.feed(&mut state)?;
        let repo_tags = tag
            .map(|t| format!("{repository}:{t}"))
            .into_iter()
            .collect();
        match feed.put_image(repo_tags, manifest).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(&mut state, e).await),
        }
    }

    /// Ends the archive and waits for the consumer's verdict: only now is
    /// anything loaded. An error the consumer reports fails the run.
    async fn finish(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let feed = match &mut *state {
            State::Idle => {
                *state = State::Done(Vec::new());
                return Ok(());
            }
            State::Running(_, feed) => feed,
            State::Done(_) | State::Failed => return Err(self.unusable()),
        };
        if let Err(e) = feed.finish(C::close).await {
            return Err(self.fail(&mut state, e).await);
        }
        let State::Running(run, _) = std::mem::replace(&mut *state, State::Failed) else {
            return Err(self.unusable());
        };
        let loaded = self.consumer.wait(run).await?;
        *state = State::Done(loaded);
        Ok(())
    }
}
