//! One pass over a tar file's headers (never its data): where each entry's bytes
//! are, so a source can seek straight to a blob. Every size and offset read from
//! a header is checked arithmetic, bounded by the file's length: a header that
//! claims more bytes than the file has (a forged size near 2^64 included) is an
//! error, not a wrap-around. GNU long names and PAX `path`/`linkpath`/`size`
//! records are honoured; symbolic and hard links are resolved inside the archive.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const BLOCK: u64 = 512;
/// Long names and PAX records are small; this bounds what one header may make us read.
const MAX_META_ENTRY: u64 = 64 * 1024;
/// Bounds the table kept in memory.
const MAX_ENTRIES: usize = 1_000_000;
/// How many links are followed before a name is called a loop.
const MAX_LINK_HOPS: usize = 16;

/// Where an entry's bytes are in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File(Region),
    /// A link, already turned into the archive path it points at.
    Link(String),
}

/// The regular files (and links to them) of a tar file, by normalised path.
#[derive(Debug, Default)]
pub struct TarIndex {
    nodes: HashMap<String, Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{}", crate::i18n::io_error(.0))]
    Io(#[from] std::io::Error),
    #[error("{}", crate::tr!("not a tar file, or damaged: bad header checksum at byte {}", "不是 tar 文件或已损坏: 第 {} 字节处的头部校验和错误", .0))]
    BadHeader(u64),
    #[error("{}", crate::tr!("tar entry at byte {} claims {} bytes, more than the file holds (cut short or forged)", "第 {} 字节处的 tar 条目声称有 {} 字节, 超过文件的大小 (不完整或被篡改)", .0, .1))]
    PastEnd(u64, String),
    #[error("{}", crate::tr!("tar header at byte {}: {}", "第 {} 字节处的 tar 头部: {}", .0, .1))]
    Malformed(u64, String),
    #[error("{}", crate::tr!("more than {} entries", "条目超过 {} 个", MAX_ENTRIES))]
    TooManyEntries,
}

/// `a/./b/../c` → `a/c`, leading `./` and `/` dropped; `None` when `..` climbs
/// above the archive's root.
pub fn normalise(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The stored checksum matches the header's bytes (the checksum field counted as
/// spaces), as ustar and GNU tar compute it.
fn checksum_ok(block: &[u8; 512]) -> bool {
    let field = block.get(148..156).unwrap_or_default();
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    let Ok(stored) = u32::from_str_radix(&text, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == sum
}

/// Parses PAX extended header records (`LEN key=value\n`).
fn pax_records(data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest.first() != Some(&0) {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(rest.get(..space)?).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n")?;
        let eq = record.iter().position(|&b| b == b'=')?;
        let key = String::from_utf8_lossy(record.get(..eq)?).into_owned();
        let value = String::from_utf8_lossy(record.get(eq + 1..)?).into_owned();
        out.push((key, value));
        rest = rest.get(len..)?;
    }
    Some(out)
}

/// Text of a NUL-padded name field.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// Names that the next entry takes from GNU long-name or PAX headers.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl TarIndex {
    /// Scans the tar file at `path`: headers only, seeking over the data.
    pub fn scan(path: &Path) -> Result<TarIndex, ScanError> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Self::scan_reader(&mut file, len)
    }

    /// [`scan`](Self::scan) over any seekable reader of `len` bytes.
    pub fn scan_reader<R: Read + Seek>(r: &mut R, len: u64) -> Result<TarIndex, ScanError> {
        let mut index = TarIndex::default();
        let mut pending = Pending::default();
        let mut pos: u64 = 0;
        let mut block = [0u8; 512];
        loop {
            let Some(data_start) = pos.checked_add(BLOCK).filter(|e| *e <= len) else {
                // A file that ends without its two zero blocks: what was read stands.
                if pos == len {
                    break;
                }
                return Err(ScanError::PastEnd(pos, BLOCK.to_string()));
            };
            r.seek(SeekFrom::Start(pos))?;
            r.read_exact(&mut block)?;
            if block.iter().all(|&b| b == 0) {
                break;
            }
            if !checksum_ok(&block) {
                return Err(ScanError::BadHeader(pos));
            }
            let header = tar::Header::from_byte_slice(&block);
            let header_size = header
                .entry_size()
                .map_err(|e| ScanError::Malformed(pos, e.to_string()))?;
            let kind = header.entry_type();
            let meta_entry =
                kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink();
            // A PAX `size` record is for the next real entry, not for a name header.
            let size = match pending.size {
                Some(pax) if !meta_entry => pax,
                _ => header_size,
            };
            let end = data_start
                .checked_add(size)
                .filter(|e| *e <= len)
                .ok_or_else(|| ScanError::PastEnd(pos, size.to_string()))?;
            // The data is padded to a whole block; the padding may be missing at
            // the very end of a file.
            let next = end
                .checked_add((BLOCK - size % BLOCK) % BLOCK)
                .ok_or_else(|| ScanError::PastEnd(pos, size.to_string()))?;
            let small = |r: &mut R| -> Result<Vec<u8>, ScanError> {
                if size > MAX_META_ENTRY {
                    return Err(ScanError::Malformed(
                        pos,
                        crate::tr!(
                            "a {size}-byte name or extended header",
                            "长达 {size} 字节的名称或扩展头部"
                        ),
                    ));
                }
                let mut data = vec![0u8; usize::try_from(size).unwrap_or(0)];
                r.read_exact(&mut data)?;
                Ok(data)
            };
            if kind.is_gnu_longname() {
                pending.path = Some(c_string(&small(r)?));
            } else if kind.is_gnu_longlink() {
                pending.link = Some(c_string(&small(r)?));
            } else if kind.is_pax_local_extensions() {
                let records = pax_records(&small(r)?).ok_or_else(|| {
                    ScanError::Malformed(
                        pos,
                        crate::i18n::t("malformed PAX records", "PAX 记录格式错误").to_string(),
                    )
                })?;
                for (key, value) in records {
                    match key.as_str() {
                        "path" => pending.path = Some(value),
                        "linkpath" => pending.link = Some(value),
                        "size" => {
                            pending.size = Some(value.parse().map_err(|_| {
                                ScanError::Malformed(pos, format!("PAX size={value}"))
                            })?)
                        }
                        _ => {}
                    }
                }
            } else {
                let name = pending
                    .path
                    .take()
                    .unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
                let link = pending.link.take().or_else(|| {
                    header
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                });
                pending = Pending::default();
                if let Some(name) = normalise(&name) {
                    let node = match kind {
                        tar::EntryType::Regular | tar::EntryType::Continuous => {
                            Some(Node::File(Region {
                                offset: data_start,
                                size,
                            }))
                        }
                        // A symbolic link is relative to its own folder; a hard link
                        // names an archive path.
                        tar::EntryType::Symlink => link.and_then(|l| {
                            let base = match name.rsplit_once('/') {
                                Some((dir, _)) if !l.starts_with('/') => format!("{dir}/{l}"),
                                _ => l,
                            };
                            normalise(&base).map(Node::Link)
                        }),
                        tar::EntryType::Link => link.and_then(|l| normalise(&l)).map(Node::Link),
                        _ => None,
                    };
                    if let Some(node) = node {
                        if index.nodes.len() >= MAX_ENTRIES {
                            return Err(ScanError::TooManyEntries);
                        }
                        index.nodes.insert(name, node);
                    }
                }
            }
            pos = next;
        }
        Ok(index)
    }

    /// Where the bytes of the regular file `name` are, following links.
    pub fn get(&self, name: &str) -> Option<Region> {
        let mut name = normalise(name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.nodes.get(&name)? {
                Node::File(r) => return Some(*r),
                Node::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// The paths of the regular files and links.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scan(bytes: &[u8]) -> Result<TarIndex, ScanError> {
        TarIndex::scan_reader(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn finds_entries_long_names_and_links() {
        let long = format!("{}/layer.tar", "d".repeat(150));
        let mut bytes = archive(&[("manifest.json", b"[]"), (&long, b"abc")]);
        // Append a symlink before the end marker.
        bytes.truncate(bytes.len() - 1024);
        let mut b = tar::Builder::new(bytes);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "x/y/link.tar", format!("../../{long}"))
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let idx = scan(&bytes).unwrap();
        let r = idx.get(&long).unwrap();
        let at = usize::try_from(r.offset).unwrap();
        assert_eq!(&bytes[at..at + 3], b"abc");
        assert_eq!(idx.get("./x/y/link.tar"), Some(r));
        assert_eq!(idx.get("manifest.json").unwrap().size, 2);
        assert_eq!(idx.get("missing"), None);
    }

    #[test]
    fn forged_sizes_are_errors_not_wraps() {
        let bytes = archive(&[("manifest.json", b"[]")]);
        for forged in [u64::MAX, u64::MAX - 511, 1 << 40, 3] {
            let mut bad = bytes.clone();
            let mut h = tar::Header::new_gnu();
            h.set_path("manifest.json").unwrap();
            h.set_mode(0o644);
            h.set_size(forged); // base-256 for large values
            h.set_cksum();
            bad[..512].copy_from_slice(h.as_bytes());
            match scan(&bad) {
                Err(ScanError::PastEnd(0, _)) => assert!(forged > 2),
                Ok(idx) => {
                    assert_eq!(forged, 3);
                    assert_eq!(idx.get("manifest.json").unwrap().size, 3);
                }
                Err(e) => panic!("{forged}: {e}"),
            }
        }
        // A PAX size record near 2^64.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"18446744073709551615"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        let bad = b.into_inner().unwrap();
        assert!(matches!(scan(&bad), Err(ScanError::PastEnd(..))));
        // Garbage is not a tar file.
        assert!(matches!(scan(&[7u8; 1024]), Err(ScanError::BadHeader(0))));
        // A header cut short.
        assert!(scan(&bytes[..100]).is_err());
    }

    #[test]
    fn a_pax_size_is_for_the_entry_after_a_long_name_header() {
        let long = format!("{}/layer.tar", "e".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"3"[..])]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let idx = scan(&bytes).unwrap();
        let r = idx.get(&long).unwrap();
        assert_eq!(r.size, 3);
        let at = usize::try_from(r.offset).unwrap();
        assert_eq!(&bytes[at..at + 3], b"abc");
    }

    #[test]
    fn link_loops_and_escapes_lead_nowhere() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, target) in [("a", "b"), ("b", "a"), ("c", "../../etc/passwd")] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let idx = scan(&bytes).unwrap();
        assert_eq!(idx.get("a"), None);
        assert_eq!(idx.get("c"), None);
        assert_eq!(normalise("./a/./b/../c"), Some("a/c".into()));
        assert_eq!(normalise("../x"), None);
    }
}
