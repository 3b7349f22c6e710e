//! The zstd frame walker of `.tar.zst` data files.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let len = data.len() as u64;
        let mut pos = 0u64;
        while pos < len {
            match ferry::bundle::compress::frame_at(data, pos, len) {
                Ok(f) => {
                    assert!(f.len > 0 && pos + f.len <= len);
                    pos += f.len;
                }
                Err(_) => break,
            }
        }
    });
}
