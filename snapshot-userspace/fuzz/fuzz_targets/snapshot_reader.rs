//! Any bytes as a snapshot file, through every subcommand's path: `show` (text and JSON),
//! `list`, and each `export` format. Decoding may refuse the bytes; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapshot_userspace::{
    cli::{export, list, show},
    snapshot,
};

fuzz_target!(|data: &[u8]| {
    let Ok(snap) = snapshot::decode(data, std::path::Path::new("fuzz.snap")) else {
        return;
    };
    let mut out = Vec::new();
    show::render(&snap, false, &mut out).expect("show renders into memory");
    out.clear();
    show::render(&snap, true, &mut out).expect("show --json renders into memory");
    let _ = list::line("fuzz.snap", &snap);
    for format in [
        export::Format::Text,
        export::Format::ChromeJson,
        export::Format::Perfetto,
    ] {
        export::render(&snap, format).expect("every export renders");
    }
    // What decodes encodes back to the same snapshot.
    let again = snapshot::decode(&snapshot::encode(&snap), std::path::Path::new("x"));
    assert_eq!(again.ok().as_ref(), Some(&snap));
});
