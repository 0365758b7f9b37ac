//! The snapshot controller: a flight recorder for the Linux kernel built on eBPF.
//!
//! The modules follow the data, and each imports only the ones above it in this list:
//!
//! 1. [`units`], [`sys`] and [`abi`]: sizes, durations and times as people write them; the few
//!    facts read from the running system (root, clocks); the names of the kernel ABI's numbers
//!    (errno, flags, signals).
//! 2. [`probe`]: what can be probed: the `--probe` specs, what the kernel offers, tracepoint
//!    formats, names and the closest ones, and the probe table every snapshot carries.
//! 3. [`session`]: one loaded eBPF object: load, attach, the target filter, and the buffers
//!    shared with the kernel with the protocol of their [`Control`](snapshot_common::Control)
//!    words ([`session::control`]).
//! 4. [`trigger`]: the trigger language, compiled against the probe table into the bytecode
//!    program the kernel evaluates on every event.
//! 5. [`snapshot`]: the snapshot file (format, writing, reading) and the stacks it carries.
//! 6. [`controller`]: arms the spare, handles flips, drains frozen halves into snapshot files,
//!    and runs a recording from start to stop.
//! 7. [`export`]: snapshots as text, JSON, Chrome trace JSON and Perfetto traces.
//! 8. [`cli`]: the command line; it parses and prints, nothing more.
//!
//! [`testing`] holds what the unit and integration tests share (random expressions).

pub mod abi;
pub mod sys;
pub mod units;

pub mod probe;

pub mod session;

pub mod trigger;

pub mod snapshot;

pub mod controller;

pub mod export;

pub mod cli;

pub mod testing;

#[cfg(test)]
mod layering {
    //! The order above is checked: every `crate::` path in a module names a module of its own
    //! layer or of a layer above it.

    use std::path::{Path, PathBuf};

    /// The layers, from the bottom; modules of one layer may use each other.
    const LAYERS: [&[&str]; 8] = [
        &["units", "sys", "abi", "testing"],
        &["probe"],
        &["session"],
        &["trigger"],
        &["snapshot"],
        &["controller"],
        &["export"],
        &["cli"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The top-level modules a source text names through `crate::a`, `crate::{a, b::c}`.
    fn crate_paths(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(c);
                    }
                }
                found.push(item);
            } else {
                found.push(rest.to_owned());
            }
        }
        found
            .iter()
            .map(|p| {
                p.trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .filter(|m: &String| !m.is_empty())
            .collect()
    }

    #[test]
    fn imports_run_down_the_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let Some(own) = layer(&top) else {
                continue; // lib.rs, main.rs, bin/: above every layer
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for used in crate_paths(&text) {
                match layer(&used) {
                    Some(l) if l <= own => {}
                    _ => wrong.push(format!("{} uses crate::{used}", rel.display())),
                }
            }
        }
        assert!(wrong.is_empty(), "imports that run up: {wrong:#?}");
    }

    #[test]
    fn the_checker_sees_grouped_and_nested_paths() {
        let paths = crate_paths("use crate::{a::{b, c}, d};\nlet x = crate::e::f();");
        assert_eq!(paths, ["a", "d", "e"]);
    }
}
