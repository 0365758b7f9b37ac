//! Counters for the live status line, read from the shared memory without draining.

use super::Controller;

/// State of the spare half, as the status line shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spare {
    /// Armed: the next trigger takes a snapshot.
    Armed,
    /// Not armed yet: a trigger now is missed (or stops, with `--on-no-spare stop`).
    NotArmed,
    /// Taken by a trigger whose `--post` window is still open: its snapshot comes when the
    /// window closes.
    Window,
    /// Recording stopped for good.
    Stopped,
}

impl std::fmt::Display for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Armed => "armed",
            Self::NotArmed => "not armed",
            Self::Window => "taken (--post window open)",
            Self::Stopped => "stopped",
        })
    }
}

/// Counters read live from the shared memory (no drain), all since the recording started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    /// Events written into either half (the sum of the per-CPU heads).
    pub events: u64,
    /// Snapshot files written.
    pub snapshots: u64,
    /// Events lost to wrap-around (in written snapshots, and already certain in the halves).
    pub overwritten: u64,
    /// Events not written because the CPU's writer was busy.
    pub dropped: u64,
    /// Triggers that found no armed spare.
    pub missed_triggers: u64,
    /// The spare half.
    pub spare: Spare,
}

impl Controller {
    /// Counters for the status line, read from the shared memory without draining: events
    /// written, snapshots, overwritten (in snapshots, plus what the halves already lost to
    /// wrap-around), dropped, missed triggers, and the spare's state.
    #[must_use]
    pub fn live(&self) -> Live {
        let b = self.session.buffers();
        let words = b.control();
        let cap = u64::from(b.capacity());
        let pending_overwritten: u64 = (0..2)
            .flat_map(|half| b.heads(half).into_iter().zip(&self.bases[half]))
            .map(|(head, base)| head.saturating_sub(*base).saturating_sub(cap))
            .sum();
        let spare = if self.stopped || words.stopped() {
            Spare::Stopped
        } else if words.armed() {
            Spare::Armed
        } else if words.window_open() {
            Spare::Window
        } else {
            Spare::NotArmed
        };
        Live {
            events: b.written(),
            snapshots: self.totals.snapshots,
            overwritten: self.totals.overwritten + pending_overwritten,
            dropped: b.dropped(),
            missed_triggers: words.missed(),
            spare,
        }
    }
}
