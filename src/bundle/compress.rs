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

/// A compressed data file as written.
pub struct Compressed {
    /// The offset of each blob's frame in the file.
    pub offsets: HashMap<Digest, u64>,
    pub size: u64,
    /// Of the compressed bytes, hashed as they were written.
    pub sha256: Digest,
}

/// Compresses the finished tar `tar` (laid out as `layout`) into `out`, one frame
/// per entry, and makes it durable.
pub fn compress_tar(tar: &File, layout: &FileLayout, out: &Path) -> std::io::Result<Compressed> {
    let hashing = HashingWriter {
        inner: File::create(out)?,
        hasher: crate::digest::Hasher::new(),
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 20, hashing);
    let mut offsets = HashMap::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut entries: Vec<&layout::Entry> = layout.entries.iter().collect();
    entries.sort_by_key(|e| e.header_offset);
    let mut frame = |file: &mut std::io::BufWriter<HashingWriter>,
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
    let hashing = file.into_inner().map_err(|e| e.into_error())?;
    hashing.inner.sync_all()?;
    Ok(Compressed {
        offsets,
        size: pos,
        sha256: hashing.hasher.finish(),
    })
}

/// Hashes what goes through to the file.
struct HashingWriter {
    inner: File,
    hasher: crate::digest::Hasher,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let frame_len = len.checked_sub(frame_offset).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "zstd frame offset past the end of the file",
        )
    })?;
    let mut decoder = open_frame(&f, frame_offset, frame_len)?;
    let mut header = [0u8; 512];
    decoder.read_exact(&mut header)?;
    Ok(decoder.take(size))
}

/// A decoder of the single frame at `offset`, reading at most `len` bytes of the file.
pub fn open_frame(
    file: &File,
    offset: u64,
    len: u64,
) -> std::io::Result<zstd::stream::read::Decoder<'static, BufReader<std::io::Take<File>>>> {
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(zstd::stream::read::Decoder::with_buffer(BufReader::new(f.take(len)))?.single_frame())
}

/// One zstd frame of a data file, as its headers describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of the frame in the file (header, blocks, checksum).
    pub len: u64,
    /// The decoded size the frame header declares, if it does.
    pub content_size: Option<u64>,
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// Positional reads, from a file or (in tests and fuzzing) from memory.
pub trait ReadAt {
    fn read_exactly_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_exactly_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exactly_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let part = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(part);
        Ok(())
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        crate::tr!("not a zstd frame: {what}", "不是 zstd 帧: {what}"),
    )
}

/// Reads the frame at `offset` of a file of `file_len` bytes by its header and its
/// block headers (RFC 8878 §3.1.1), seeking over the block contents: where the
/// frame ends is known without decompressing it. Every offset is checked against
/// the file's length.
pub fn frame_at<F: ReadAt + ?Sized>(
    file: &F,
    offset: u64,
    file_len: u64,
) -> std::io::Result<Frame> {
    let read_at = |buf: &mut [u8], at: u64| -> std::io::Result<()> {
        at.checked_add(buf.len() as u64)
            .filter(|e| *e <= file_len)
            .ok_or_else(|| invalid("cut short"))?;
        file.read_exactly_at(buf, at)
    };
    let mut head = [0u8; 5];
    read_at(&mut head, offset)?;
    let [m0, m1, m2, m3, descriptor] = head;
    if u32::from_le_bytes([m0, m1, m2, m3]) != ZSTD_MAGIC {
        return Err(invalid("bad magic number"));
    }
    let fcs_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 {
        return Err(invalid("reserved bit set"));
    }
    let checksum = descriptor & 0x04 != 0;
    let dict_len: u64 = match descriptor & 0x03 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let fcs_len: usize = match (fcs_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut pos = offset + 5 + u64::from(!single_segment) + dict_len;
    let content_size = if fcs_len == 0 {
        None
    } else {
        let mut fcs = [0u8; 8];
        let field = fcs.get_mut(..fcs_len).unwrap_or_default();
        read_at(field, pos)?;
        pos += fcs_len as u64;
        let value = u64::from_le_bytes(fcs);
        // A two-byte field counts from 256.
        Some(if fcs_len == 2 { value + 256 } else { value })
    };
    loop {
        let mut bh = [0u8; 3];
        read_at(&mut bh, pos)?;
        let header = u32::from(bh[0]) | u32::from(bh[1]) << 8 | u32::from(bh[2]) << 16;
        let last = header & 1 != 0;
        let size = u64::from(header >> 3);
        let payload = match (header >> 1) & 3 {
            0 | 2 => size,
            1 => 1,
            _ => return Err(invalid("reserved block type")),
        };
        pos = pos
            .checked_add(3 + payload)
            .filter(|p| *p <= file_len)
            .ok_or_else(|| invalid("cut short"))?;
        if last {
            break;
        }
    }
    if checksum {
        pos = pos
            .checked_add(4)
            .filter(|p| *p <= file_len)
            .ok_or_else(|| invalid("cut short"))?;
    }
    Ok(Frame {
        len: pos - offset,
        content_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_as_one_tar_and_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = [b"first blob".to_vec(), vec![7u8; 5000]];
        let tar_path = dir.path().join("t.tar");
        let (tar, plan) = layout::write_test_tar(&tar_path, &blobs);
        let out = dir.path().join("t.tar.zst");
        let written = compress_tar(&tar, &plan, &out).unwrap();
        let on_disk = std::fs::read(&out).unwrap();
        assert_eq!(written.size, on_disk.len() as u64);
        assert_eq!(written.sha256, Digest::of(&on_disk), "hashed as written");
        let offsets = written.offsets;
        let whole = zstd::decode_all(File::open(&out).unwrap()).unwrap();
        assert_eq!(
            whole,
            std::fs::read(&tar_path).unwrap(),
            "the frames decode to the plain tar"
        );
        for bytes in &blobs {
            let mut got = Vec::new();
            open_entry(&out, offsets[&Digest::of(bytes)], bytes.len() as u64)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(&got, bytes);
        }
    }

    #[test]
    fn frame_headers_give_each_frame_and_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.zst");
        let mut bytes = Vec::new();
        let parts: [Vec<u8>; 3] = [vec![1u8; 1024], pseudo(300_000), vec![0u8; 1024]];
        let mut starts = Vec::new();
        for p in &parts {
            starts.push(bytes.len() as u64);
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), LEVEL).unwrap();
            e.include_contentsize(true).unwrap();
            e.set_pledged_src_size(Some(p.len() as u64)).unwrap();
            e.write_all(p).unwrap();
            bytes.extend(e.finish().unwrap());
        }
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let len = bytes.len() as u64;
        let mut pos = 0;
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(pos, starts[i]);
            let frame = frame_at(&f, pos, len).unwrap();
            assert_eq!(frame.content_size, Some(p.len() as u64));
            let mut got = Vec::new();
            open_frame(&f, pos, frame.len)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(&got, p);
            pos += frame.len;
        }
        assert_eq!(pos, len);
        // Cut short, or not a frame at all: an error, never a read past the end.
        assert!(frame_at(&f, starts[1], starts[2] - 1).is_err());
        assert!(frame_at(&f, 1, len).is_err());
        assert!(frame_at(&f, len, len).is_err());
        assert!(frame_at(&f, u64::MAX - 2, len).is_err());
    }

    fn pseudo(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect()
    }
}
