//! `snapshot export FILE --format perfetto|chrome-json|text -o OUT`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::{export, snapshot};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Perfetto protobuf trace (open it at ui.perfetto.dev): thread tracks, call slices, the
    /// trigger with its context, accounting counters.
    Perfetto,
    /// Trace Event Format JSON (Perfetto UI, `chrome://tracing`).
    ChromeJson,
    /// ftrace-like text.
    Text,
}

/// Arguments of `snapshot export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Snapshot file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file (written atomically: complete or absent).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
}

/// Runs `snapshot export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<i32> {
    let snap = snapshot::read(&args.file)?;
    let bytes = match args.format {
        Format::Perfetto => export::perfetto::encode(&snap),
        Format::ChromeJson => serde_json::to_vec(&export::chrome_json(&snap))?,
        Format::Text => export::text(&snap).into_bytes(),
    };
    let dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = args.output.file_name().with_context(|| {
        format!(
            "{} names no file: give a file path with -o",
            args.output.display()
        )
    })?;
    snapshot::write_atomic(&dir, &name.to_string_lossy(), &bytes).with_context(|| {
        format!(
            "cannot write {}: check that {} exists and is writable",
            args.output.display(),
            dir.display()
        )
    })?;
    eprintln!(
        "snapshot: wrote {} ({} events)",
        args.output.display(),
        snap.events.len()
    );
    Ok(0)
}
