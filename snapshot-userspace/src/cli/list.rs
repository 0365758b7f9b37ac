//! `snapshot list DIR`: one line per snapshot file (time, trigger, events, losses).

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::snapfile;

/// Arguments of `snapshot list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// A recorder's `--out` directory.
    pub dir: PathBuf,
}

/// `2026-11-26T06:22:42.617Z` for a wall-clock time in ns (civil-from-days, proleptic
/// Gregorian, UTC).
#[must_use]
pub fn utc(wall_ns: u64) -> String {
    let secs = wall_ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        wall_ns % 1_000_000_000 / 1_000_000
    )
}

/// One line describing a snapshot (wall-clock time of its trigger, or of its start).
#[must_use]
pub fn line(name: &str, s: &snapfile::Snapshot) -> String {
    let h = &s.header;
    let at = h.fired.as_ref().map_or_else(
        || s.events.first().map_or(h.clock.boot_ns, |e| e.ts_ns),
        |f| f.ts_ns,
    );
    let when = utc(h.clock.to_realtime(at));
    let why = match &h.fired {
        Some(f) => format!("{:?} by {} ({}={})", h.kind, f.comm, f.probe, f.value),
        None => format!("{:?}", h.kind),
    };
    format!(
        "{name}  {when}  {why}  events {}  overwritten {}  dropped {}  missed triggers {}",
        s.events.len(),
        h.total(|a| a.overwritten),
        h.total(|a| a.dropped),
        h.missed_triggers
    )
}

/// Runs `snapshot list`; unreadable files are listed with their error (exit code 1).
pub fn run(args: &ListArgs) -> anyhow::Result<i32> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| {
            format!(
                "cannot list {}: give a recorder's --out directory",
                args.dir.display()
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no snapshot files (*.snap) in {}", args.dir.display());
    }
    let mut out = std::io::stdout().lock();
    let mut code = 0;
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match snapfile::read(f) {
            Ok(s) => writeln!(out, "{}", line(&name, &s))?,
            Err(e) => {
                writeln!(out, "{name}  unreadable: {e}")?;
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_795_673_962_617_000_000), "2026-11-26T06:19:22.617Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
