//! A bridge from blocking writers (the archive writer) to the async transports: a
//! bounded pipe whose `std::io::Write` end feeds an async byte stream (an HTTP
//! request body). The write end is used from blocking threads (`spawn_blocking`)
//! only: it waits for room by blocking, which must never happen on a runtime
//! worker. (The other way, a blob stream read with `std::io::Read`, is
//! `file_io::StreamRead`.)
//!
//! The pipe holds at most `capacity` chunks of [`CHUNK`] bytes, so streaming an
//! archive of any size takes bounded memory.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes gathered before a chunk goes down the pipe.
pub const CHUNK: usize = 64 * 1024;

/// What the two ends of a pipe know of each other.
#[derive(Debug, Default)]
struct PipeState {
    /// The writer finished: the stream may end cleanly.
    complete: AtomicBool,
    /// The owner gave up: writes fail at once (a writer dropped later must not
    /// block, nor send a clean end).
    abandoned: AtomicBool,
    /// The reading side went away (the engine closed the connection).
    reader_gone: AtomicBool,
}

/// The owner's view of a pipe: give up on it, or ask whether the reader left.
#[derive(Clone, Debug)]
pub struct PipeControl(Arc<PipeState>);

impl PipeControl {
    /// Makes every later write fail at once, and the stream end with an error
    /// rather than cleanly, whatever the writer does next.
    pub fn abandon(&self) {
        self.0.abandoned.store(true, Ordering::SeqCst);
    }

    /// Whether a write failed because the reading side was gone: then the reader
    /// (the engine) knows better what went wrong.
    pub fn reader_gone(&self) -> bool {
        self.0.reader_gone.load(Ordering::SeqCst)
    }
}

/// The blocking write end of a pipe.
pub struct PipeWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    state: Arc<PipeState>,
}

/// A bounded pipe: a blocking writer, its control, and the async stream it feeds.
/// The stream ends cleanly only after [`PipeWriter::complete`]; a writer dropped
/// before that (a failed archive) ends it with an error, so that a half-written
/// request body is aborted rather than sent as if whole.
pub fn pipe(
    capacity: usize,
) -> (
    PipeWriter,
    PipeControl,
    impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity.max(1));
    let state = Arc::new(PipeState::default());
    let stream = futures_util::stream::unfold(Some((rx, state.clone())), |s| async move {
        let (mut rx, state) = s?;
        match rx.recv().await {
            Some(chunk) => Some((Ok(chunk), Some((rx, state)))),
            None if state.complete.load(Ordering::SeqCst)
                && !state.abandoned.load(Ordering::SeqCst) =>
            {
                None
            }
            None => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    crate::i18n::t("the archive was not finished", "归档没有写完"),
                )),
                None,
            )),
        }
    });
    let writer = PipeWriter {
        tx,
        buf: BytesMut::with_capacity(CHUNK),
        state: state.clone(),
    };
    (writer, PipeControl(state), stream)
}

impl PipeWriter {
    fn check_abandoned(&self) -> io::Result<()> {
        if self.state.abandoned.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                crate::i18n::t("the transfer was abandoned", "传输已放弃"),
            ));
        }
        Ok(())
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        self.check_abandoned()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(chunk).map_err(|_| {
            self.state.reader_gone.store(true, Ordering::SeqCst);
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                crate::i18n::t("the receiving side closed", "接收方已关闭"),
            )
        })
    }

    /// Sends what is buffered and marks the stream complete: it ends cleanly when
    /// this writer is dropped.
    pub fn complete(mut self) -> io::Result<()> {
        self.send_buffered()?;
        self.state.complete.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check_abandoned()?;
        let room = CHUNK.saturating_sub(self.buf.len()).max(1);
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(n)
    }

    /// Buffered bytes go down the pipe only when a chunk is full or at
    /// [`PipeWriter::complete`]; a flush changes nothing for the reader.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(
        stream: impl Stream<Item = io::Result<Bytes>>,
    ) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_completed_pipe_carries_every_byte_and_ends_cleanly() {
        let (mut w, _control, stream) = pipe(2);
        let data: Vec<u8> = (0..CHUNK * 5 + 123).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = tokio::task::spawn_blocking(move || {
            w.write_all(&data)?;
            w.complete()
        });
        let (got, err) = collect(stream).await;
        writer.await.unwrap().unwrap();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dropped_unfinished_ends_the_stream_with_an_error() {
        let (mut w, _control, stream) = pipe(2);
        tokio::task::spawn_blocking(move || {
            w.write_all(&[7u8; CHUNK + 10]).unwrap();
            drop(w);
        });
        let (got, err) = collect(stream).await;
        assert_eq!(got.len(), CHUNK, "the full chunk went through");
        assert!(err.is_some(), "an unfinished archive must not end cleanly");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_pipe_fails_writes_and_errors_the_stream() {
        let (mut w, control, stream) = pipe(2);
        control.abandon();
        let res = tokio::task::spawn_blocking(move || {
            let r = w.write_all(&[1u8; CHUNK]);
            let c = w.complete();
            (r, c)
        })
        .await
        .unwrap();
        assert!(res.0.is_err() && res.1.is_err());
        let (_, err) = collect(stream).await;
        assert!(err.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_leaves_fails_the_writer() {
        let (mut w, control, stream) = pipe(1);
        drop(stream);
        let r = tokio::task::spawn_blocking(move || w.write_all(&[1u8; CHUNK * 3]))
            .await
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert!(control.reader_gone());
    }
}
