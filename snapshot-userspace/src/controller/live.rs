//! Counters for the live status line, read from the shared memory without draining.

use std::sync::atomic::Ordering::SeqCst;

use super::Controller;
use crate::buffer::control;

impl Controller {
    /// Counters for the status line, read from the shared memory without draining: events
    /// written, snapshots, overwritten (in snapshots, plus what the halves already lost to
    /// wrap-around), dropped, missed triggers, and the spare's state.
    #[must_use]
    pub fn live(&self) -> crate::status::Live {
        use crate::status::Spare;
        let b = self.rec.buffers();
        let cap = u64::from(b.capacity());
        let pending_overwritten: u64 = (0..2)
            .flat_map(|half| b.heads(half).into_iter().zip(&self.bases[half]))
            .map(|(head, base)| head.saturating_sub(*base).saturating_sub(cap))
            .sum();
        let spare = if self.stopped || b.control(control::STOPPED).load(SeqCst) != 0 {
            Spare::Stopped
        } else if b.control(control::ARMED).load(SeqCst) != 0 {
            Spare::Armed
        } else if b.control(control::PENDING).load(SeqCst) != 0 {
            Spare::Window
        } else {
            Spare::NotArmed
        };
        crate::status::Live {
            events: b.written(),
            snapshots: self.totals.snapshots,
            overwritten: self.totals.overwritten + pending_overwritten,
            dropped: b.dropped(),
            missed_triggers: b.control(control::MISSED).load(SeqCst),
            spare,
        }
    }
}
