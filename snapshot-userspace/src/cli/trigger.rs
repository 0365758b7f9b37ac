//! `snapshot trigger DIR`: ask the recorder writing into DIR for a snapshot now (SIGUSR1).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::controller::run::PID_FILE;

/// Arguments of `snapshot trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The recorder's `--out` directory.
    pub dir: PathBuf,
}

/// Sends SIGUSR1 to the recorder of `dir`.
pub fn run(args: &TriggerArgs) -> anyhow::Result<i32> {
    let path = args.dir.join(PID_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no recorder is writing into {} ({} not found): give the --out directory of a running `snapshot record`", args.dir.display(), path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a pid: remove it", path.display()))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !comm.starts_with("snapshot") {
        anyhow::bail!(
            "the recorder of {} (pid {pid}) is no longer running: remove {}",
            args.dir.display(),
            path.display()
        );
    }
    // SAFETY: kill with a valid signal number has no memory-safety preconditions.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot signal the recorder (pid {pid})"));
    }
    eprintln!("snapshot: asked the recorder (pid {pid}) for a snapshot");
    Ok(0)
}
