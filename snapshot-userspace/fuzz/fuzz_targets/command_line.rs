//! Any arguments (NUL-separated) as a `snapshot` command line: parsed by the same clap
//! definitions and value parsers as the binary; refused or accepted, never a panic.
#![no_main]

use clap::Parser as _;
use libfuzzer_sys::fuzz_target;
use snapshot_userspace::cli::Cli;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args = std::iter::once("snapshot").chain(text.split('\0'));
    match Cli::try_parse_from(args) {
        Ok(cli) => {
            let _ = format!("{cli:?}");
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
});
