//! The manifest parser: the first line is the Content-Type, the rest the body.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (ct, body) = match data.iter().position(|b| *b == b'\n') {
            Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
            None => (None, data),
        };
        if let Ok((raw, _)) = ferry::manifest::RawManifest::new(body.to_vec(), ct) {
            assert_eq!(raw.bytes, body, "manifests keep their exact bytes");
        }
    });
}
