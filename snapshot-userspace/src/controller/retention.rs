//! Retention: `--keep N` and `--max-disk SIZE` over the snapshot files of one output
//! directory (those of earlier recordings into it included), oldest first.
//!
//! * **What is ours**: only regular files named `snapshot-NNNN-KIND.snap` of this user with one
//!   link; each is opened without following a link and checked again before it is removed. A
//!   snapshot being written is a temporary file, never one of them; the file just written is
//!   never deleted to make room for itself.
//! * **When**: `--max-disk` makes room before each write (so the directory stays under it
//!   even for a moment) and both limits hold after each write. When the disk refuses a write
//!   (full, or over quota) and a limit is set, the oldest snapshots are deleted one by one
//!   and the write tried again, so the newest are the ones kept; a write retried from memory
//!   (see [`super::pending`]) goes through the same steps.
//! * **Accounting**: each deletion is logged, counted in the totals, and named in the JSON
//!   line of the next snapshot.

use std::path::PathBuf;

use crate::{
    snapshot::dir::{OutDir, SnapshotFile},
    units,
};

/// Snapshots deleted by retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Files.
    pub snapshots: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Why a file is deleted, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Keep(u64),
    MaxDisk(u64),
    DiskFull,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keep(n) => write!(f, "--keep {n}"),
            Self::MaxDisk(m) => write!(f, "--max-disk {}", units::format_bytes(*m)),
            Self::DiskFull => f.write_str("the disk refused a snapshot: oldest deleted first"),
        }
    }
}

/// The files to delete (indices into `files`, oldest first) so that `files` plus `incoming`
/// bytes not yet written hold at most `keep` files and `max_disk` bytes; `protect` is never
/// chosen.
#[must_use]
pub fn plan(
    files: &[SnapshotFile],
    keep: Option<u64>,
    max_disk: Option<u64>,
    incoming: u64,
    protect: Option<&str>,
) -> Vec<(usize, bool)> {
    let mut count = files.len() as u64;
    let mut bytes = files.iter().map(|f| f.bytes).sum::<u64>() + incoming;
    let mut chosen = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let over_keep = keep.is_some_and(|k| count > k);
        let over_disk = max_disk.is_some_and(|m| bytes > m);
        if !over_keep && !over_disk {
            break;
        }
        if protect == Some(f.name.as_str()) {
            continue;
        }
        chosen.push((i, over_keep));
        count -= 1;
        bytes -= f.bytes;
    }
    chosen
}

/// The retention of one recording.
#[derive(Debug, Default)]
pub struct Retention {
    keep: Option<u64>,
    max_disk: Option<u64>,
    /// Paths deleted since the last [`Self::take_deleted`].
    deleted: Vec<PathBuf>,
    total: Deleted,
    /// A listing or deletion error was logged (once per episode).
    failing: bool,
}

impl Retention {
    /// Keeps at most `keep` files and `max_disk` bytes (either may be unset).
    #[must_use]
    pub const fn new(keep: Option<u64>, max_disk: Option<u64>) -> Self {
        Self {
            keep,
            max_disk,
            deleted: Vec::new(),
            total: Deleted {
                snapshots: 0,
                bytes: 0,
            },
            failing: false,
        }
    }

    /// True when a limit is set.
    #[must_use]
    pub const fn enabled(&self) -> bool {
        self.keep.is_some() || self.max_disk.is_some()
    }

    /// Deletions over the whole recording.
    #[must_use]
    pub const fn total(&self) -> Deleted {
        self.total
    }

    /// Paths deleted since the last call.
    pub fn take_deleted(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.deleted)
    }

    fn list(&mut self, out: &OutDir) -> Option<Vec<SnapshotFile>> {
        match out.snapshots() {
            Ok(files) => Some(files),
            Err(e) => {
                if !self.failing {
                    log::error!(
                        "cannot list the snapshots of {} to apply --keep/--max-disk: {e}",
                        out.path().display()
                    );
                    self.failing = true;
                }
                None
            }
        }
    }

    fn delete(&mut self, out: &OutDir, file: &SnapshotFile, why: Why) -> bool {
        let path = out.path().join(&file.name);
        match out.remove_snapshot(&file.name) {
            Ok(()) => {
                log::info!("deleted {} ({} bytes): {why}", path.display(), file.bytes);
                self.failing = false;
                self.total.snapshots += 1;
                self.total.bytes += file.bytes;
                self.deleted.push(path);
                true
            }
            Err(e) => {
                log::warn!("cannot delete {} ({why}): {e}", path.display());
                false
            }
        }
    }

    fn apply(&mut self, out: &OutDir, incoming: u64, protect: Option<&str>) {
        if !self.enabled() {
            return;
        }
        let Some(files) = self.list(out) else { return };
        for (i, for_keep) in plan(&files, self.keep, self.max_disk, incoming, protect) {
            let why = match (for_keep, self.keep, self.max_disk) {
                (_, _, Some(m)) if !for_keep => Why::MaxDisk(m),
                (_, Some(k), _) => Why::Keep(k),
                (_, None, Some(m)) => Why::MaxDisk(m),
                (_, None, None) => return,
            };
            self.delete(out, &files[i], why);
        }
    }

    /// Before writing `incoming` bytes: deletes the oldest snapshots until they fit under
    /// `--max-disk` (`--keep` is applied once the file is written).
    pub fn make_room(&mut self, out: &OutDir, incoming: u64) {
        if self.max_disk.is_some() {
            let keep = self.keep.take();
            self.apply(out, incoming, None);
            self.keep = keep;
        }
    }

    /// After `written` was written: both limits, never deleting `written`.
    pub fn after_write(&mut self, out: &OutDir, written: &str) {
        self.apply(out, 0, Some(written));
    }

    /// The disk refused a write: deletes the oldest snapshot when a limit is set. False when
    /// there is none to delete (or no limit), and the write waits in memory.
    pub fn free_one(&mut self, out: &OutDir) -> bool {
        if !self.enabled() {
            return false;
        }
        let Some(files) = self.list(out) else {
            return false;
        };
        files.iter().any(|f| self.delete(out, f, Why::DiskFull))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<SnapshotFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| SnapshotFile {
                seq: i as u64 + 1,
                name: crate::controller::file_name(
                    i as u64 + 1,
                    crate::snapshot::SnapshotKind::Condition,
                ),
                bytes,
            })
            .collect()
    }

    fn chosen(p: &[(usize, bool)]) -> Vec<usize> {
        p.iter().map(|&(i, _)| i).collect()
    }

    #[test]
    fn keep_deletes_the_oldest_past_n() {
        let f = files(&[10, 10, 10, 10, 10]);
        assert_eq!(chosen(&plan(&f, Some(3), None, 0, None)), [0, 1]);
        assert_eq!(
            chosen(&plan(&f, Some(5), None, 0, None)),
            Vec::<usize>::new()
        );
        assert_eq!(chosen(&plan(&f, Some(1), None, 0, None)), [0, 1, 2, 3]);
        assert!(plan(&f, None, None, 0, None).is_empty());
    }

    #[test]
    fn max_disk_counts_the_file_to_come() {
        let f = files(&[100, 200, 300]);
        // 600 present + 150 coming under 700: the oldest (100) goes.
        assert_eq!(chosen(&plan(&f, None, Some(700), 150, None)), [0]);
        assert_eq!(
            chosen(&plan(&f, None, Some(600), 0, None)),
            Vec::<usize>::new()
        );
        assert_eq!(chosen(&plan(&f, None, Some(599), 0, None)), [0]);
        assert_eq!(chosen(&plan(&f, None, Some(300), 0, None)), [0, 1]);
    }

    #[test]
    fn the_file_just_written_is_never_chosen() {
        let f = files(&[100, 100, 1000]);
        let newest = f[2].name.clone();
        // The newest alone is over the limit: everything else goes, never it.
        assert_eq!(chosen(&plan(&f, None, Some(500), 0, Some(&newest))), [0, 1]);
        let oldest = f[0].name.clone();
        assert_eq!(chosen(&plan(&f, Some(1), None, 0, Some(&oldest))), [1, 2]);
    }

    #[test]
    fn both_limits_and_the_reason() {
        let f = files(&[10, 10, 10, 500]);
        // --keep 3 removes one (for keep); --max-disk 505 then removes two more (for disk).
        assert_eq!(
            plan(&f, Some(3), Some(505), 0, None),
            [(0, true), (1, false), (2, false)]
        );
    }
}
