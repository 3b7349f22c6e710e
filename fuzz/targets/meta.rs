//! ferry's meta parser (with the name checks it applies at load).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(m) = ferry::bundle::meta::Meta::parse(data, "fuzz") {
            // What is accepted writes back and reads again.
            if let Ok(yaml) = m.to_yaml() {
                let again = ferry::bundle::meta::Meta::parse(yaml.as_bytes(), "fuzz");
                assert!(again.is_ok(), "{yaml}");
            }
        }
    });
}
