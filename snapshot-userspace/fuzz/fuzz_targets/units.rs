//! Any text as a size, a buffer size, a duration or a `--post`; any word as a time or a
//! duration to format. Whatever parses formats back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapshot_userspace::{session::Post, units};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = units::parse_events(text).map_err(|e| e.to_string());
        let _ = text.parse::<Post>().map_err(|e| e.to_string());
        if let Ok(n) = units::parse_bytes(text) {
            assert_eq!(units::parse_bytes(&units::format_bytes(n)), Ok(n));
        }
        if let Ok(ns) = units::parse_duration(text) {
            assert!(ns <= units::MAX_DURATION_NS);
            if ns != 0 {
                assert_eq!(units::parse_duration(&units::format_duration(ns)), Ok(ns));
            }
        }
    }
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    let w = u64::from_le_bytes(b);
    let _ = (units::utc(w), units::format_elapsed(w), units::format_duration(w));
});
