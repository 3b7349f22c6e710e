//! The tar scanner: headers only (what --size-only reads) and the full walk.
use ferry::bundle::reader::Scan;
use std::io::Cursor;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        for transmit in [false, true] {
            let scan = Scan {
                file: "fuzz.tar",
                transmit,
                limit: 64,
            };
            if let Ok(entries) = scan.headers_in(&mut Cursor::new(data), data.len() as u64) {
                for e in entries {
                    let end = e.data_offset.checked_add(e.size).expect("no overflow");
                    assert!(end <= data.len() as u64);
                }
            }
            let _ = scan.tar(&mut Cursor::new(data), true);
        }
    });
}
