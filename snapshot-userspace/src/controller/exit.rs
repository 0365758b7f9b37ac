//! Ending a recording: stopping the writers, the last snapshots, files still to write.

use std::time::Duration;

use super::{Controller, Totals, Written};
use crate::snapshot::SnapshotKind;

/// How the files of a recording ended up.
#[derive(Debug, Default)]
pub struct Unwritten {
    /// Snapshots lost over the whole recording (dropped past `--max-pending`, or still
    /// refused at exit).
    pub lost: u64,
    /// Why the last write failed, when one did.
    pub why: Option<String>,
    /// Files that reached the disk while finishing (for `--on-snapshot`).
    pub durable: Vec<std::path::PathBuf>,
}

impl Controller {
    /// Stops the writers: once this returns, no probe writes a record or sends a notice any
    /// more (each checks `stopped` under its CPU's `busy`). Notices already sent are still in
    /// the ring, for the caller to handle before [`Self::finish`].
    pub fn stop_writers(&self) {
        let b = self.session.buffers();
        b.control().stop();
        if !b.wait_writers(Duration::from_secs(1)) {
            log::warn!("a writer stayed busy for 1 s at exit");
        }
    }

    /// Stops recording; with `dump`, writes the live half as a final snapshot (unless
    /// `--max-snapshots` were taken), otherwise counts its events as discarded. Then writes
    /// what waits for the disk (what it still refuses is lost) and detaches everything.
    #[must_use]
    pub fn finish(mut self, dump: bool) -> (Totals, Vec<Written>, Unwritten) {
        self.session.buffers().control().stop();
        // A window still open: its trigger's snapshot, with the events recorded after it.
        let mut written = self.close_window(true);
        let b = self.session.buffers();
        let live = b.control().active();
        if !self.stopped {
            if dump && !self.at_limit() {
                written.extend(self.snapshot_half(live, SnapshotKind::Exit, None, None, None));
            } else {
                self.discard_half(live);
            }
        }
        let b = self.session.buffers();
        for cpu in 0..b.ncpu() {
            let now = b.state(cpu).dropped;
            self.totals.dropped += now - self.dropped_seen[cpu as usize];
            self.dropped_seen[cpu as usize] = now;
        }
        let missed = b.control().missed();
        self.totals.missed_triggers += missed - self.missed_seen;
        self.missed_seen = missed;
        let why = self.pending.finish(&mut self.out);
        self.count_deleted();
        let lost = self.pending.total_lost();
        let durable = self.pending.take_durable();
        self.totals.lost_snapshots = lost.snapshots;
        self.totals.lost_events = lost.events;
        let totals = self.totals;
        self.out.remove_markers();
        self.session.close();
        (
            totals,
            written,
            Unwritten {
                lost: lost.snapshots,
                why,
                durable,
            },
        )
    }
}
