//! The image reference parser: whatever parses prints and parses back the same.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(r) = ferry::reference::Reference::parse(text) {
                assert_eq!(ferry::reference::Reference::parse(&r.to_string()), Ok(r));
            }
            let _ = ferry::reference::split_short(text);
            let _ = ferry::text::sanitize(text);
        }
    });
}
