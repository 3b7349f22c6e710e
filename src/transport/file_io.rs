//! Blocking file work shared by the endpoints that live in local files (the OCI
//! layout, the docker archive): a checked copy, a blob stream read as a plain
//! `Read` on a blocking thread, a byte range of a file as a blob stream, bounded
//! reads of small files, and temporary files that vanish unless kept.

use super::BlobStream;
use crate::digest::{Digest, Hasher};
use futures_util::StreamExt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How much is read or written at a time.
pub const CHUNK: usize = 256 * 1024;

/// Copies exactly the blob `digest` of `size` bytes from `reader` to `out`, hashing
/// as it goes: a reader that ends early, has bytes past `size`, or whose bytes
/// have another digest is an error (after what was read has been written: the
/// caller throws the output away).
pub fn copy_checked(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    digest: &Digest,
    size: u64,
) -> std::io::Result<()> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let n = match reader.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => {
                let seen = size - left;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    crate::tr!(
                        "blob {digest} ended after {seen} of {size} bytes",
                        "数据块 {digest} 只有 {size} 字节中的 {seen} 字节"
                    ),
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        out.write_all(chunk)?;
        left -= n as u64;
    }
    let mut one = [0u8; 1];
    loop {
        match reader.read(&mut one) {
            Ok(0) => break,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    crate::tr!(
                        "blob {digest} has more than the {size} bytes declared",
                        "数据块 {digest} 超过声明的 {size} 字节"
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            crate::tr!(
                "blob bytes have digest {actual}, expected {digest}",
                "数据块内容摘要为 {actual}, 应为 {digest}"
            ),
        ));
    }
    Ok(())
}

/// A [`BlobStream`] read as a blocking `Read`, for a blocking thread
/// (`spawn_blocking`) that writes the bytes with std I/O. Each read waits for the
/// next chunk on the runtime `handle`.
pub struct StreamRead {
    handle: tokio::runtime::Handle,
    stream: BlobStream,
    chunk: bytes::Bytes,
    done: bool,
}

impl StreamRead {
    pub fn new(handle: tokio::runtime::Handle, stream: BlobStream) -> StreamRead {
        StreamRead {
            handle,
            stream,
            chunk: bytes::Bytes::new(),
            done: false,
        }
    }
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.chunk.len());
        let part = self.chunk.split_to(n);
        buf.get_mut(..n).unwrap_or_default().copy_from_slice(&part);
        Ok(n)
    }
}

/// Opens a file that came with the input (a bundle's data file, meta or signature,
/// a layout's blob) for reading, refusing anything but a regular file (a symlink
/// to one is fine): opening a FIFO blocks until someone writes to it, and a device
/// such as `/dev/zero` never ends, so either would hang the command past Ctrl-C.
/// Opened without blocking, then checked, so the check is of what was opened.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblocking = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            crate::tr!(
                "{} is not a regular file",
                "{} 不是普通文件",
                path.display()
            ),
        ));
    }
    Ok(f)
}

/// `len` bytes of the file at `path` from `start` on, as a stream (unchecked:
/// the caller wraps it in a `CheckedStream` when it is a whole blob).
pub async fn region_stream(path: &Path, start: u64, len: u64) -> std::io::Result<BlobStream> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::from_std(open_regular(path)?);
    f.seek(SeekFrom::Start(start)).await?;
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        f.take(len),
        CHUNK,
    )))
}

/// Reads `len` bytes at `start` of `path`, refusing more than `limit` (small
/// files only: tables of contents, manifests, configs).
pub fn read_region(path: &Path, start: u64, len: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            crate::tr!(
                "{len} bytes, over the {limit}-byte limit for this file",
                "{len} 字节, 超过此类文件 {limit} 字节的上限"
            ),
        ));
    }
    let mut f = open_regular(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(len).read_to_end(&mut out)?;
    if out.len() as u64 != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            crate::tr!(
                "only {} of {len} bytes could be read",
                "只读到 {len} 字节中的 {}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The sha256 of `len` bytes of `path` at `start`.
pub fn hash_region(path: &Path, start: u64, len: u64) -> std::io::Result<Digest> {
    let mut f = open_regular(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut r = f.take(len);
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    if h.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            crate::tr!(
                "only {} of {len} bytes could be read",
                "只读到 {len} 字节中的 {}",
                h.len()
            ),
        ));
    }
    Ok(h.finish())
}

/// A temporary file removed when dropped, unless [`TempFile::keep`] renamed it
/// into place: a failed or interrupted write leaves nothing behind.
pub struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    pub fn new(path: PathBuf) -> TempFile {
        TempFile { path, kept: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest` (replacing what is there).
    pub fn keep(mut self, dest: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, dest)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename, so
/// no reader sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    let tmp = TempFile::new(PathBuf::from(name));
    let mut f = std::fs::File::create(tmp.path())?;
    f.write_all(bytes)?;
    f.sync_all()?;
    tmp.keep(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_checked_refuses_wrong_short_and_long_input() {
        let d = Digest::of(b"hello");
        let mut out = Vec::new();
        copy_checked(&mut &b"hello"[..], &mut out, &d, 5).unwrap();
        assert_eq!(out, b"hello");
        assert!(copy_checked(&mut &b"hellO"[..], &mut Vec::new(), &d, 5).is_err());
        assert!(copy_checked(&mut &b"hell"[..], &mut Vec::new(), &d, 5).is_err());
        assert!(copy_checked(&mut &b"hello!"[..], &mut Vec::new(), &d, 5).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_read_bridges_a_stream_to_a_blocking_reader() {
        let parts: Vec<std::io::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"hel")),
            Ok(bytes::Bytes::from_static(b"lo")),
        ];
        let stream: BlobStream = Box::pin(futures_util::stream::iter(parts));
        let handle = tokio::runtime::Handle::current();
        let got = tokio::task::spawn_blocking(move || {
            let mut r = StreamRead::new(handle, stream);
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, b"hello");
    }
}
