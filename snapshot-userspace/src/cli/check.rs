//! `snapshot check [--json]`: what this kernel offers and what the recorder will use here.
//! Exits 1 when recording cannot work (a required feature is missing, or not root).

use std::{io::Write as _, path::Path};

use clap::Args;

use crate::{
    probe::{features::Features, report::Report},
    session::SessionError,
    sys,
};

/// Arguments of `snapshot check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `snapshot check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    if !sys::is_root() {
        // The probes load programs: without root every one fails, which would read as a
        // kernel without BPF.
        return Err(SessionError::NotRoot.into());
    }
    let report = Report::new(Features::get(), Path::new("/"));
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(report.text().as_bytes())?;
    }
    out.flush()?;
    Ok(i32::from(!report.can_record))
}
