//! `--on-snapshot CMD`: a command run for each snapshot file once it is on disk (renamed into
//! place and synced), e.g. to upload it, without ever holding up recording.
//!
//! * **How it runs**: `/bin/sh -c 'CMD "$@"' snapshot-hook PATH`: CMD is shell text, the path
//!   is passed as an argument (never pasted into the text) and also in `SNAPSHOT_FILE`. Its
//!   stdin is `/dev/null`, its stdout goes to the recorder's stderr (stdout may carry JSON
//!   lines), and it runs in a process group of its own (a Ctrl-C for the recorder does not
//!   cut an upload short).
//! * **Never blocking**: hooks are spawned and reaped asynchronously by the record loop; at
//!   most [`MAX_RUNNING`] run at once, the next ones wait in a queue of at most
//!   [`MAX_QUEUED`] (past it the oldest waiting is skipped, logged). A hook that hangs only
//!   holds its own slot.
//! * **Failures** (cannot start, non-zero exit, killed by a signal) are logged with the file
//!   and the exit status.
//! * **At exit** the recorder waits up to [`EXIT_GRACE`] for running and queued hooks, then
//!   leaves the running ones running (logged with their pids) and names the files whose hook
//!   never started.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::task::JoinSet;

/// Hooks running at once.
pub const MAX_RUNNING: usize = 4;
/// Files waiting for a free slot.
pub const MAX_QUEUED: usize = 256;
/// How long the recorder waits for hooks at exit.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What became of one hook.
type Done = (PathBuf, Option<u32>, std::io::Result<ExitStatus>);

/// The `--on-snapshot` hooks of one recording.
pub struct Hooks {
    cmd: Option<String>,
    running: JoinSet<Done>,
    pids: Vec<(u32, PathBuf)>,
    queue: VecDeque<PathBuf>,
}

impl Hooks {
    /// Hooks running `cmd` (none when `None`).
    #[must_use]
    pub fn new(cmd: Option<String>) -> Self {
        Self {
            cmd,
            running: JoinSet::new(),
            pids: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// The command for `path`.
    fn command(cmd: &str, path: &Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!("{cmd} \"$@\""))
            .arg("snapshot-hook")
            .arg(path)
            .env("SNAPSHOT_FILE", path)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        match std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
            Ok(fd) => c.stdout(Stdio::from(fd)),
            Err(_) => c.stdout(Stdio::null()),
        };
        c
    }

    /// `path` is on disk: runs the hook for it now, or queues it behind the running ones.
    pub fn submit(&mut self, path: PathBuf) {
        if self.cmd.is_none() {
            return;
        }
        if self.running.len() < MAX_RUNNING {
            self.start(path);
            return;
        }
        if self.queue.len() >= MAX_QUEUED
            && let Some(skipped) = self.queue.pop_front()
        {
            log::error!(
                "--on-snapshot: {MAX_QUEUED} snapshot files wait for a hook while {MAX_RUNNING} run: skipped {}",
                skipped.display()
            );
        }
        self.queue.push_back(path);
    }

    fn start(&mut self, path: PathBuf) {
        let Some(cmd) = &self.cmd else { return };
        match Self::command(cmd, &path).spawn() {
            Ok(mut child) => {
                let pid = child.id();
                if let Some(pid) = pid {
                    self.pids.push((pid, path.clone()));
                }
                self.running
                    .spawn(async move { (path, pid, child.wait().await) });
            }
            Err(e) => log::error!(
                "--on-snapshot `{cmd}` cannot start for {}: {e}",
                path.display()
            ),
        }
    }

    fn log_done(&mut self, done: Done) {
        let (path, pid, status) = done;
        self.pids.retain(|(p, _)| Some(*p) != pid);
        let cmd = self.cmd.as_deref().unwrap_or_default();
        match status {
            Ok(s) if s.success() => {
                log::debug!("--on-snapshot `{cmd}` done for {}", path.display());
            }
            Ok(s) => log::warn!("--on-snapshot `{cmd}` failed for {}: {s}", path.display()),
            Err(e) => log::error!(
                "--on-snapshot `{cmd}`: cannot wait for its run for {}: {e}",
                path.display()
            ),
        }
    }

    /// Waits until a hook ends (forever when none runs), logs how, and starts the next one
    /// queued.
    pub async fn reaped(&mut self) {
        let Some(joined) = self.running.join_next().await else {
            return std::future::pending().await;
        };
        match joined {
            Ok(done) => self.log_done(done),
            Err(e) => log::error!("--on-snapshot: a hook's waiter failed: {e}"),
        }
        while self.running.len() < MAX_RUNNING
            && let Some(next) = self.queue.pop_front()
        {
            self.start(next);
        }
    }

    /// At exit: waits up to `grace` for the hooks running and queued, then reports what is
    /// left (running hooks are left running, not killed).
    pub async fn finish(&mut self, grace: Duration) {
        if self.cmd.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.running.is_empty() {
            if tokio::time::timeout_at(deadline, self.reaped())
                .await
                .is_err()
            {
                break;
            }
        }
        for (pid, path) in &self.pids {
            log::warn!(
                "--on-snapshot: the hook for {} (pid {pid}) still runs after {} s at exit: left running",
                path.display(),
                grace.as_secs()
            );
        }
        for path in &self.queue {
            log::error!(
                "--on-snapshot: no hook ran for {}: the recorder exited first",
                path.display()
            );
        }
        self.queue.clear();
        self.running.detach_all();
    }
}
