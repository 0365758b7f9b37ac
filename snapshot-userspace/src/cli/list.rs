//! `snapshot list DIR`: one line per snapshot file (time, trigger, events, losses).

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::{export, snapshot, units::utc};

/// Arguments of `snapshot list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A recorder's `--out` directory.
    pub dir: PathBuf,
}

/// One line describing a snapshot (wall-clock time of its trigger, or of its start).
#[must_use]
pub fn line(name: &str, s: &snapshot::Snapshot) -> String {
    let h = &s.header;
    let at = h.fired.as_ref().map_or_else(
        || s.events.first().map_or(h.clock.boot_ns, |e| e.ts_ns),
        |f| f.ts_ns,
    );
    let when = utc(h.clock.to_realtime(at));
    let why = match &h.fired {
        // The triggering event as `show` prints it, when the snapshot has it.
        Some(f) => {
            let views = export::decode::views(s);
            match export::trigger_event(s, &views) {
                Some(v) => {
                    let probe = h.probes.iter().find(|p| p.name == v.probe);
                    let fields = export::event::fields_text(v, probe);
                    format!("{:?} by {} ({}:{fields})", h.kind, f.comm, f.probe)
                }
                None => format!("{:?} by {} ({}={})", h.kind, f.comm, f.probe, f.value),
            }
        }
        None => format!("{:?}", h.kind),
    };
    let lost = if h.lost_snapshots == 0 {
        String::new()
    } else {
        format!("  lost before it {}", h.lost_snapshots)
    };
    let line = format!(
        "{name}  {when}  {why}  events {}  overwritten {}  dropped {}  missed triggers {}{lost}",
        s.events.len(),
        h.total(|a| a.overwritten),
        h.total(|a| a.dropped),
        h.missed_triggers
    );
    crate::export::event::printable(&line).into_owned()
}

/// Runs `snapshot list`: one line per snapshot on stdout; a file that cannot be read is
/// named with its error on stderr, and the exit code is then 1.
pub fn run(args: &ListArgs) -> anyhow::Result<i32> {
    let files = snapshot::list_files(&args.dir).with_context(|| {
        format!(
            "cannot list {}: give a recorder's --out directory",
            args.dir.display()
        )
    })?;
    if files.is_empty() {
        anyhow::bail!("no snapshot files (*.snap) in {}", args.dir.display());
    }
    let mut out = std::io::stdout().lock();
    let mut unreadable = 0;
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match snapshot::read(f) {
            Ok(s) => writeln!(out, "{}", line(&name, &s))?,
            Err(e) => {
                out.flush()?;
                eprintln!("snapshot: error: {e}");
                unreadable += 1;
            }
        }
    }
    out.flush()?;
    if unreadable > 0 {
        eprintln!(
            "snapshot: {unreadable} of {} file(s) in {} could not be read",
            files.len(),
            args.dir.display()
        );
        return Ok(1);
    }
    Ok(0)
}
