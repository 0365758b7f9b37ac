//! Snapshot files the disk refused: kept in memory up to `--max-pending` bytes and retried
//! with backoff (oldest first); each change of state is logged once (writes fail, fail
//! differently, work again, snapshots start being dropped). Past the bound a snapshot is
//! dropped and counted as lost: in the totals, and in the header of the next snapshot taken.
//!
//! A directory removed while recording is prepared again at its path (created, checked,
//! locked) before the next attempt, so nothing captured is lost to it.
//!
//! Every attempt goes through [`Retention`]: room is made under `--max-disk` before it, the
//! oldest snapshots are deleted when the disk refuses it and a limit is set, and `--keep`
//! holds after it. Each file that reaches the disk is reported once ([`Pending::take_durable`]),
//! for the `--on-snapshot` hook.

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use super::retention::Retention;
use crate::{snapshot::dir::OutDir, units};

/// First wait before retrying a refused write; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What became of a snapshot's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteStatus {
    /// On disk.
    Written,
    /// Refused by the disk: kept in memory and retried.
    Pending,
    /// Refused, and more than `--max-pending` was waiting: dropped, counted as lost.
    Lost,
}

/// Snapshots dropped since they were last reported in a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Snapshots.
    pub snapshots: u64,
    /// Their events.
    pub events: u64,
}

struct Unwritten {
    name: String,
    bytes: Vec<u8>,
    events: u64,
    /// The losses its own header reports (they are lost again if it is).
    carried: Lost,
}

/// The write queue.
pub struct Pending {
    queue: VecDeque<Unwritten>,
    bytes: u64,
    max: u64,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// The error writes fail with, while they do.
    failing: Option<String>,
    /// True while snapshots are being dropped (logged once per episode).
    dropping: bool,
    /// Losses not yet reported in a header.
    unreported: Lost,
    /// Losses over the whole recording.
    total: Lost,
    /// `--keep`, `--max-disk`.
    retention: Retention,
    /// Files on disk since the last [`Self::take_durable`].
    durable: Vec<PathBuf>,
}

impl Pending {
    /// A queue holding at most `max` bytes, writing under `retention`.
    #[must_use]
    pub const fn new(max: u64, retention: Retention) -> Self {
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            max,
            backoff: FIRST_BACKOFF,
            retry_at: None,
            failing: None,
            dropping: false,
            unreported: Lost {
                snapshots: 0,
                events: 0,
            },
            total: Lost {
                snapshots: 0,
                events: 0,
            },
            retention,
            durable: Vec::new(),
        }
    }

    /// The retention, for its accounting.
    pub const fn retention_mut(&mut self) -> &mut Retention {
        &mut self.retention
    }

    /// The files written (renamed into place and synced) since the last call, oldest first.
    pub fn take_durable(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.durable)
    }

    /// When the next retry is due, while snapshots wait.
    #[must_use]
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.queue.is_empty())
    }

    /// Snapshots waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Losses since the last call, for the next header (which reports them).
    pub fn take_unreported(&mut self) -> Lost {
        std::mem::take(&mut self.unreported)
    }

    /// Losses over the whole recording.
    #[must_use]
    pub const fn total_lost(&self) -> Lost {
        self.total
    }

    /// Writes one attempt of `name` under `retention`: room made before it, the oldest
    /// snapshots deleted while the disk is full (when a limit is set), the limits applied
    /// after it.
    fn attempt(
        retention: &mut Retention,
        out: &mut OutDir,
        name: &str,
        parts: &[&[u8]],
    ) -> std::io::Result<PathBuf> {
        if out.removed() {
            log::warn!(
                "the output directory {} was removed while recording: creating it again",
                out.path().display()
            );
            out.reopen().map_err(std::io::Error::other)?;
        }
        retention.make_room(out, parts.iter().map(|p| p.len() as u64).sum());
        let mut result = Self::write_unique(out, name, parts);
        while result
            .as_ref()
            .is_err_and(|e| matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
            && retention.free_one(out)
        {
            result = Self::write_unique(out, name, parts);
        }
        if let Ok(path) = &result
            && let Some(written) = path.file_name().and_then(|n| n.to_str())
        {
            retention.after_write(out, written);
        }
        result
    }

    /// Writes `name`; a name taken by someone else gets a suffix (`-2`, …): nothing is ever
    /// replaced.
    fn write_unique(out: &OutDir, name: &str, parts: &[&[u8]]) -> std::io::Result<PathBuf> {
        let mut result = out.write(name, parts);
        for n in 2..10 {
            match &result {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stem = name.strip_suffix(".snap").unwrap_or(name);
                    result = out.write(&format!("{stem}-{n}.snap"), parts);
                }
                _ => break,
            }
        }
        result
    }

    fn failed(&mut self, out: &OutDir, name: &str, e: &std::io::Error) {
        let why = e.to_string();
        if self.failing.as_deref() != Some(why.as_str()) {
            log::error!(
                "cannot write {}: {why}; keeping snapshots in memory (up to --max-pending {}) and retrying",
                out.path().join(name).display(),
                units::format_bytes(self.max)
            );
            self.failing = Some(why);
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn recovered(&mut self, out: &OutDir, written: usize) {
        if self.failing.take().is_some() {
            log::info!(
                "writing into {} works again: {written} waiting snapshot(s) written",
                out.path().display()
            );
        }
        self.backoff = FIRST_BACKOFF;
        self.retry_at = None;
        if self.queue.is_empty() {
            self.dropping = false;
        }
    }

    /// A new snapshot file: written now when nothing waits (or a retry is due and the queue
    /// drains), else queued behind the others, or dropped past the bound.
    pub fn submit(
        &mut self,
        out: &mut OutDir,
        name: &str,
        parts: &[&[u8]],
        events: u64,
        carried: Lost,
    ) -> (WriteStatus, PathBuf) {
        if !self.queue.is_empty() && self.retry_at.is_none_or(|t| t <= Instant::now()) {
            self.retry(out);
        }
        if self.queue.is_empty() {
            match Self::attempt(&mut self.retention, out, name, parts) {
                Ok(path) => {
                    self.durable.push(path.clone());
                    self.recovered(out, 0);
                    return (WriteStatus::Written, path);
                }
                Err(e) => self.failed(out, name, &e),
            }
        }
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let path = out.path().join(name);
        if self.bytes + size > self.max {
            if !self.dropping {
                log::error!(
                    "more than --max-pending {} of snapshots wait to be written into {}: dropping new ones, counted as lost",
                    units::format_bytes(self.max),
                    out.path().display()
                );
                self.dropping = true;
            }
            self.lose(events, carried);
            return (WriteStatus::Lost, path);
        }
        self.bytes += size;
        self.queue.push_back(Unwritten {
            name: name.to_owned(),
            bytes: parts.concat(),
            events,
            carried,
        });
        (WriteStatus::Pending, path)
    }

    fn lose(&mut self, events: u64, carried: Lost) {
        self.unreported.snapshots += 1 + carried.snapshots;
        self.unreported.events += events + carried.events;
        self.total.snapshots += 1;
        self.total.events += events;
    }

    /// Writes what waits, oldest first, until one fails (then waits longer).
    pub fn retry(&mut self, out: &mut OutDir) {
        let mut written = 0;
        while let Some(next) = self.queue.front() {
            match Self::attempt(&mut self.retention, out, &next.name, &[&next.bytes]) {
                Ok(path) => {
                    self.durable.push(path);
                    self.bytes -= next.bytes.len() as u64;
                    self.queue.pop_front();
                    written += 1;
                }
                Err(e) => {
                    let name = next.name.clone();
                    self.failed(out, &name, &e);
                    return;
                }
            }
        }
        self.recovered(out, written);
    }

    /// At exit: one last attempt; what still waits is lost. Returns the error that kept it.
    pub fn finish(&mut self, out: &mut OutDir) -> Option<String> {
        self.retry(out);
        let why = self.failing.clone();
        while let Some(u) = self.queue.pop_front() {
            self.lose(u.events, u.carried);
        }
        self.bytes = 0;
        why
    }
}
