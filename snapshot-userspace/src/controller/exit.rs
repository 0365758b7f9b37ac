//! Ending a recording: stopping the writers, the last snapshots, files still to write.

use std::time::Duration;

use super::{Controller, Totals, Written};
use crate::snapshot::{self, SnapshotKind};

impl Controller {
    /// Writes pending snapshot files; on failure they stay pending (retried at the next
    /// snapshot and at exit), so nothing captured is lost to a transient error.
    pub fn flush(&mut self) {
        let mut still = Vec::new();
        for (name, bytes) in self.pending.drain(..) {
            if let Err(e) = snapshot::write_atomic(&self.out, &name, &bytes) {
                log::error!(
                    "cannot write {}: {e}; keeping it in memory and retrying",
                    self.out.join(&name).display()
                );
                still.push((name, bytes));
            }
        }
        self.pending = still;
    }

    /// Snapshots not yet on disk.
    #[must_use]
    pub fn unwritten(&self) -> usize {
        self.pending.len()
    }

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

    /// Stops recording; with `dump`, writes the live half as a final snapshot, otherwise
    /// counts its events as discarded. Then detaches everything.
    #[must_use]
    pub fn finish(mut self, dump: bool) -> (Totals, Vec<Written>, usize) {
        self.session.buffers().control().stop();
        // A window still open: its trigger's snapshot, with the events recorded after it.
        let mut written = self.close_window(true);
        let b = self.session.buffers();
        let live = b.control().active();
        if dump && !self.stopped {
            written.push(self.snapshot_half(live, SnapshotKind::Exit, None, None, None));
        } else if !self.stopped {
            if !b.wait_writers(Duration::from_secs(1)) {
                log::warn!("a writer stayed busy for 1 s at exit");
            }
            let cpus = b.drain_into(
                live,
                &self.bases[live],
                &mut self.scratch,
                &mut self.strings.data,
            );
            self.totals.discarded_at_exit += self.scratch.len() as u64;
            self.totals.overwritten += cpus.iter().map(|a| a.overwritten).sum::<u64>();
            for cpu in 0..b.ncpu() {
                let now = b.state(cpu).dropped;
                self.totals.dropped += now - self.dropped_seen[cpu as usize];
            }
            self.totals.missed_triggers += b.control().missed() - self.missed_seen;
        }
        self.flush();
        let unwritten = self.unwritten();
        let totals = self.totals;
        self.session.close();
        (totals, written, unwritten)
    }
}
