//! A source that moves a progress bar as its blobs stream, so every sink shows
//! progress without knowing about bars, and tells the pace how long a blob takes
//! to start.

use crate::digest::Digest;
use crate::engine::pace::{Pace, Side};
use crate::manifest::{Parsed, RawManifest};
use crate::transport::{BlobRef, BlobStream, ImageSource, Result, SharedSource};
use futures_util::StreamExt;
use indicatif::ProgressBar;
use std::sync::Arc;

pub(super) struct Metered {
    inner: SharedSource,
    bar: ProgressBar,
    /// Hears how long the source takes to start a blob (its round trip).
    pace: Arc<Pace>,
}

impl Metered {
    pub(super) fn wrap(inner: SharedSource, bar: ProgressBar, pace: Arc<Pace>) -> SharedSource {
        Arc::new(Metered { inner, bar, pace })
    }
}

#[async_trait::async_trait]
impl ImageSource for Metered {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn list_tags(&self, repository: &str) -> Result<Vec<String>> {
        self.inner.list_tags(repository).await
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(RawManifest, Parsed)> {
        self.inner.get_manifest(repository, reference).await
    }

    async fn open_blob(&self, repository: &str, blob: &BlobRef, offset: u64) -> Result<BlobStream> {
        let stream = self
            .pace
            .timed(Side::Source, self.inner.open_blob(repository, blob, offset))
            .await?;
        let bar = self.bar.clone();
        Ok(Box::pin(stream.inspect(move |c| {
            if let Ok(c) = c {
                bar.inc(c.len() as u64);
            }
        })))
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Digest>> {
        self.inner.referrers(repository, subject).await
    }

    fn round_trip(&self) -> Option<std::time::Duration> {
        self.inner.round_trip()
    }
}
