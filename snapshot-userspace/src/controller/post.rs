//! `--post` windows seen from userspace: when one ends, and closing one no event closes.

use std::sync::atomic::Ordering::SeqCst;

use snapshot_common::{NOTICE_FLIP, Notice};

use super::{Controller, Written};
use crate::buffer::control;

impl Controller {
    /// End (boot-time ns) of an open `--post DURATION` window.
    #[must_use]
    pub const fn window_until(&self) -> Option<u64> {
        self.window_until
    }

    /// Closes an open `--post` window from userspace (its deadline passed with no event to
    /// close it, or recording ends): the same flip the kernel's last ticket would do, under
    /// the same rule (taking the tickets that are left).
    pub fn close_window(&mut self) -> Vec<Written> {
        let b = self.rec.buffers();
        if b.control(control::PENDING).load(SeqCst) == 0
            || (b.control(control::POST_LEFT).swap(0, SeqCst) as i64) < 1
        {
            // No window, or a writer took the last ticket and its notice is on the way.
            return Vec::new();
        }
        let mut n = match self.rec.pending_notice() {
            Ok(n) => n,
            Err(e) => {
                log::error!("cannot read the trigger of the open --post window: {e:#}");
                Notice::default()
            }
        };
        let b = self.rec.buffers();
        let frozen = b.control(control::POST_HALF).load(SeqCst) & 1;
        n.kind = NOTICE_FLIP;
        n.half = frozen as u32;
        n.seq = b.control(control::FLIPS).fetch_add(1, SeqCst) + 1;
        n.missed = b.control(control::MISSED).load(SeqCst);
        b.control(control::ACTIVE).swap(frozen ^ 1, SeqCst);
        b.control(control::PENDING).store(0, SeqCst);
        self.on_notice(&n)
    }
}
