//! image-transmit's meta format, as ferry converts it.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = ferry::bundle::transmit::looks_like(text);
            let _ = ferry::bundle::transmit::convert(text, "/fuzz/img_full_1_meta.yaml");
        }
    });
}
