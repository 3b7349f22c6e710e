//! serve's Range parser: the first 8 bytes are the blob size, the rest the header.
use ferry::serve::{parse_range, Wanted};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if data.len() < 8 {
            return;
        }
        let (size, header) = data.split_at(8);
        let size = u64::from_le_bytes(size.try_into().unwrap_or_default());
        if let Ok(header) = std::str::from_utf8(header) {
            if let Wanted::Part(start, end) = parse_range(header, size) {
                assert!(start <= end && end < size);
            }
        }
    });
}
