//! `snapshot show FILE [--json]`: print a snapshot.

use std::{io::Write as _, path::PathBuf};

use clap::Args;

use crate::{event, snapfile};

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
    let snap = snapfile::read(&args.file)?;
    let mut out = std::io::stdout().lock();
    let probes = &snap.header.probes;
    if args.json {
        serde_json::to_writer(&mut out, &snap.header)?;
        writeln!(out)?;
        for ev in &snap.events {
            serde_json::to_writer(&mut out, &event::view(ev, probes))?;
            writeln!(out)?;
        }
    } else {
        let h = &snap.header;
        writeln!(
            out,
            "# snapshot {} ({:?}) on {} ({}), trigger `{}`",
            h.seq, h.kind, h.hostname, h.kernel_release, h.trigger
        )?;
        if let Some(f) = &h.fired {
            writeln!(
                out,
                "# fired by {}-{} [{:03}] {}.{:06}: {} value={}",
                f.comm,
                f.tid,
                f.cpu,
                f.ts_ns / 1_000_000_000,
                (f.ts_ns % 1_000_000_000) / 1000,
                f.probe,
                f.value
            )?;
        }
        let sum = |g: fn(&crate::buffer::CpuAccount) -> u64| h.cpus.iter().map(g).sum::<u64>();
        writeln!(
            out,
            "# events {}, overwritten {}, dropped {}, torn {}, missed triggers {}",
            snap.events.len(),
            sum(|a| a.overwritten),
            sum(|a| a.dropped),
            sum(|a| a.torn),
            h.missed_triggers
        )?;
        for ev in &snap.events {
            let v = event::view(ev, probes);
            let probe = probes.iter().find(|p| p.id == ev.probe_id);
            writeln!(out, "{}", event::text_line(&v, probe))?;
        }
    }
    out.flush()?;
    Ok(0)
}
