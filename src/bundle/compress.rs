//! zstd data files (`.tar.zst`) that stay seekable: every tar entry (header, data,
//! padding) is its own zstd frame, and the end-of-archive blocks a last one. The
//! concatenated frames are an ordinary zstd stream (`zstd -d` gives the plain tar),
//! and upload reads one blob by seeking to its frame, whose offset the meta records.

use super::layout::{self, FileLayout};
use crate::digest::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const EXTENSION: &str = ".tar.zst";
const LEVEL: i32 = 3;

pub fn is_compressed(name: &str) -> bool {
    name.ends_with(EXTENSION)
}

/// Compresses the finished tar `tar` (laid out as `layout`) into `out`, one frame
/// per entry. Returns the offset of each blob's frame in `out`.
pub fn compress_tar(
    tar: &File,
    layout: &FileLayout,
    out: &Path,
) -> std::io::Result<HashMap<Digest, u64>> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut offsets = HashMap::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut entries: Vec<&layout::Entry> = layout.entries.iter().collect();
    entries.sort_by_key(|e| e.header_offset);
    let mut frame = |file: &mut std::io::BufWriter<File>,
                     start: u64,
                     len: u64,
                     pos: &mut u64|
     -> std::io::Result<()> {
        let mut counter = CountingWriter {
            inner: file,
            count: 0,
        };
        let mut encoder = zstd::stream::write::Encoder::new(&mut counter, LEVEL)?;
        encoder.include_contentsize(true)?;
        encoder.set_pledged_src_size(Some(len))?;
        let mut done = 0;
        while done < len {
            let n = ((len - done) as usize).min(buf.len());
            tar.read_exact_at(&mut buf[..n], start + done)?;
            encoder.write_all(&buf[..n])?;
            done += n as u64;
        }
        encoder.finish()?;
        *pos += counter.count;
        Ok(())
    };
    for e in entries {
        offsets.insert(e.digest.clone(), pos);
        frame(
            &mut file,
            e.header_offset,
            layout::BLOCK + layout::padded(e.size),
            &mut pos,
        )?;
    }
    frame(
        &mut file,
        layout.size - layout::END_OF_ARCHIVE,
        layout::END_OF_ARCHIVE,
        &mut pos,
    )?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(offsets)
}

struct CountingWriter<'a, W> {
    inner: &'a mut W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads one blob out of a `.tar.zst`: decodes the frame at `frame_offset` and
/// skips the entry's tar header.
pub fn open_entry(
    path: &Path,
    frame_offset: u64,
    size: u64,
) -> std::io::Result<impl Read + Send + 'static> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(frame_offset))?;
    let mut decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(f))?.single_frame();
    let mut header = [0u8; 512];
    decoder.read_exact(&mut header)?;
    Ok(decoder.take(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_as_one_tar_and_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Vec<(Digest, Vec<u8>)> = [b"first blob".to_vec(), vec![7u8; 5000]]
            .into_iter()
            .map(|b| (Digest::of(&b), b))
            .collect();
        let plan = layout::plan(
            &blobs
                .iter()
                .map(|(d, b)| (d.clone(), b.len() as u64))
                .collect::<Vec<_>>(),
            1,
        )
        .remove(0);
        let tar_path = dir.path().join("t.tar");
        let tar = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tar_path)
            .unwrap();
        tar.set_len(plan.size).unwrap();
        for e in &plan.entries {
            tar.write_all_at(
                &layout::header(&e.digest, e.size, 0).unwrap(),
                e.header_offset,
            )
            .unwrap();
            let bytes = &blobs.iter().find(|(d, _)| *d == e.digest).unwrap().1;
            tar.write_all_at(bytes, e.data_offset()).unwrap();
        }
        let out = dir.path().join("t.tar.zst");
        let offsets = compress_tar(&tar, &plan, &out).unwrap();
        let whole = zstd::decode_all(File::open(&out).unwrap()).unwrap();
        assert_eq!(
            whole,
            std::fs::read(&tar_path).unwrap(),
            "the frames decode to the plain tar"
        );
        for (d, bytes) in &blobs {
            let mut got = Vec::new();
            open_entry(&out, offsets[d], bytes.len() as u64)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(&got, bytes);
        }
    }
}
