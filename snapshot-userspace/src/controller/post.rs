//! `--post` windows seen from userspace: when one ends, and closing one no event closes.

use snapshot_common::{NOTICE_FLIP, Notice};

use super::{Controller, Written};
use crate::{session::Post, sys, units};

impl Controller {
    /// End (boot-time ns) of an open `--post DURATION` window.
    #[must_use]
    pub const fn window_until(&self) -> Option<u64> {
        self.window_until
    }

    /// Closes an open `--post` window from userspace: its deadline passed with no event to
    /// close it, or recording ends (`early`). It is the same flip the kernel's last ticket
    /// would do, under the same rule (taking the tickets that are left). A window cut short
    /// says in its snapshot how much of it was recorded.
    pub fn close_window(&mut self, early: bool) -> Vec<Written> {
        let words = self.session.buffers().control();
        let Some((frozen, left)) = words.take_window() else {
            // No window, or a writer took the last ticket and its notice is on the way.
            return Vec::new();
        };
        let mut n = match self.session.pending_notice() {
            Ok(n) => n,
            Err(e) => {
                log::error!("cannot read the trigger of the open --post window: {e:#}");
                Notice::default()
            }
        };
        let words = self.session.buffers().control();
        n.kind = NOTICE_FLIP;
        n.half = frozen as u32;
        n.seq = words.flip(frozen);
        n.missed = words.missed();
        words.window_closed();
        if early && let Some((fired, _)) = self.window_fired.as_mut() {
            let recorded = match self.session.rules().post {
                Post::Events(n) => Some(format!("{} of {n} events", n.saturating_sub(left))),
                Post::Nanos(ns) => {
                    let elapsed = sys::boot_ns().saturating_sub(fired.ts_ns);
                    (elapsed < ns).then(|| {
                        format!(
                            "{} of {}",
                            units::format_elapsed(elapsed),
                            units::format_duration(ns)
                        )
                    })
                }
                Post::None => None,
            };
            if let Some(recorded) = recorded {
                fired.post = Some(format!("{recorded} (recording stopped first)"));
            }
        }
        self.on_notice(&n)
    }
}
