//! `snapshot show FILE [--json]`: print a snapshot.

use std::{io::Write as _, path::PathBuf};

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

/// Runs `snapshot show`.
pub fn run(args: &ShowArgs) -> anyhow::Result<i32> {
    let snap = snapshot::read(&args.file)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &snap.header)?;
        writeln!(out)?;
        for view in export::decode::views(&snap) {
            serde_json::to_writer(&mut out, &view)?;
            writeln!(out)?;
        }
    } else {
        out.write_all(export::text(&snap).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}
