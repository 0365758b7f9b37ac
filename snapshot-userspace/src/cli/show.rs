//! `snapshot show FILE [--json]`: print a snapshot.

use std::{io::Write, path::PathBuf};

use clap::Args;

use crate::{export, snapshot};

/// Arguments of `snapshot show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Snapshot file.
    pub file: PathBuf,
    /// One JSON header object, then one JSON object per event.
    #[arg(long)]
    pub json: bool,
}

/// Writes what `show` prints for `snap` (text, or JSON lines with `json`) to `out`.
pub fn render(snap: &snapshot::Snapshot, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let probes = &snap.header.probes;
    if json {
        serde_json::to_writer(&mut *out, &snap.header)?;
        writeln!(out)?;
        for ev in &snap.events {
            serde_json::to_writer(&mut *out, &export::event::view(ev, probes))?;
            writeln!(out)?;
        }
    } else {
        out.write_all(export::text(snap).as_bytes())?;
    }
    Ok(())
}

/// Runs `snapshot show`.
pub fn run(args: &ShowArgs) -> anyhow::Result<i32> {
    let snap = snapshot::read(&args.file)?;
    let mut out = std::io::stdout().lock();
    render(&snap, args.json, &mut out)?;
    out.flush()?;
    Ok(0)
}
