//! Any text as `--probe` specs (one per line): parsed, named, paired, names checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapshot_userspace::probe::{ProbeSpec, spec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let specs: Vec<ProbeSpec> = text
        .split('\n')
        .filter_map(|line| {
            let parsed = line.parse::<ProbeSpec>();
            if let Err(e) = &parsed {
                let _ = e.to_string();
            }
            parsed.ok()
        })
        .collect();
    for s in &specs {
        let _ = (s.name(), s.is_glob(), s.kind.program_name(0));
    }
    let pairs = spec::pairs(&specs);
    assert_eq!(pairs.len(), specs.len());
    let _ = spec::check_names(&specs).map_err(|e| e.to_string());
});
