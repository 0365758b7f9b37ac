//! `snapshot export FILE --format perfetto|chrome-json|text -o OUT`.

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::{export, snapshot, sys};

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
    /// Output file (written atomically: complete or absent), `-` for standard output; a pipe
    /// or a terminal is written through, a symbolic link to a file is refused.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
}

/// The export of `snap` in `format`, as bytes.
pub fn render(snap: &snapshot::Snapshot, format: Format) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        Format::Perfetto => export::perfetto::encode(snap),
        Format::ChromeJson => serde_json::to_vec(&export::chrome_json(snap))?,
        Format::Text => export::text(snap).into_bytes(),
    })
}

/// Runs `snapshot export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<i32> {
    let snap = snapshot::read(&args.file)?;
    let bytes = render(&snap, args.format)?;
    let shown = args.output.display();
    match sys::open_output(&args.output)? {
        sys::Output::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
        sys::Output::Stream(mut f) => f
            .write_all(&bytes)
            .with_context(|| format!("cannot write to {shown}"))?,
        sys::Output::File(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path
                .file_name()
                .with_context(|| format!("{shown} names no file: give a file path with -o"))?
                .to_string_lossy()
                .into_owned();
            sys::dir::Dir::open(&dir)
                .and_then(|d| d.write_atomic(&name, &[&bytes], true))
                .with_context(|| {
                    format!(
                        "cannot write {shown}: check that the directory {} exists and is writable",
                        dir.display()
                    )
                })?;
        }
    }
    eprintln!("snapshot: wrote {shown} ({} events)", snap.events.len());
    Ok(0)
}
