//! The [`Control`] words, seen from userspace: the one place that names them (indices come
//! from `offset_of!` on the shared type, checked at compile time) and the one place that
//! writes userspace's side of the flip protocol.
//!
//! The protocol, both sides (the eBPF half is `snapshot-ebpf/src/flip.rs` and `record.rs`):
//!
//! * **Arm** (userspace): once the spare half is drained, its heads are taken as its base and
//!   `armed` is set to 1: the spare is "allocated" (ftrace's `tracing_snapshot_alloc()`).
//! * **Flip** (one winner): a trigger, or a manual request, exchanges `armed` with 0; only the
//!   one that reads 1 flips. It counts the flip in `flips` and publishes the new live half with
//!   an exchange on `active` (a full barrier), so a writer that takes its CPU's `busy` after it
//!   writes into the new half.
//! * **One decider** (`stopping`): the winner of `armed` also takes `stopping` (exchange
//!   0 → 1) before it flips (or opens a `--post` window) and releases it once its notice is
//!   sent; it gives up, counting a missed trigger, if a stop holds it. So a flip and a stop are
//!   never interleaved: a stop decided while a flip is in flight would freeze the half being
//!   flipped.
//! * **Missed**: a trigger that reads 0 adds 1 to `missed`. Under `--on-no-spare stop`, the one
//!   that exchanges `stopping` 0 → 1 (and then finds no `--post` window open) stops recording
//!   (`stopped` = 1), keeps `stopping`, and the live half becomes the final snapshot; one that
//!   finds `stopping` taken (a flip in flight, or the stop) does nothing more.
//! * **`--post` window** (kernel): the winner keeps its notice in `PENDING`, stores the half to
//!   freeze in `post_half` and the tickets in `post_left`, then sets `pending`. Each event
//!   takes a ticket (atomic fetch-add of -1); the writer that takes the last one flips.
//!   **Close** (userspace): a window no event closes is closed by exchanging `post_left` with
//!   0: if tickets were left, userspace took the last one and flips; otherwise a writer did
//!   and its notice is on the way.
//! * **Stop** (userspace, at exit): `stopped` = 1; each writer checks it under its CPU's `busy`,
//!   so once the writers are waited for, nothing writes any more.
//!
//! Every word has one writer at a time or is changed only with atomic operations; userspace
//! uses sequentially consistent atomics on the mapping.
//!
//! **Kernels without BPF atomics** (before 5.12, see `snapshot-ebpf/src/atomic.rs`): the
//! `armed` and `stopping` exchanges become tokens in queue maps of one entry ([`Tokens`]),
//! and the `--post` tickets a queue of N tickets. Arming pushes the token (after refilling the
//! tickets); taking the spare or the stop pops a token, which exactly one taker gets; closing a
//! window pops the tickets left, and whoever pops ticket 1 flips. The other words are as above.

use std::{
    os::fd::{AsFd as _, OwnedFd},
    sync::atomic::{AtomicU64, Ordering::SeqCst},
};

use anyhow::Context as _;
use aya::{Ebpf, maps::Map};
use snapshot_common::{Control, names};

use super::mmap::Mmap;
use crate::sys::bpf;

/// Word indices of the [`Control`] fields userspace uses: byte offsets from `offset_of!`,
/// each checked to be a whole, 8-byte aligned `u64` word.
pub mod index {
    use core::mem::offset_of;

    use snapshot_common::Control;

    macro_rules! words {
        ($($(#[$doc:meta])* $name:ident = $field:ident;)*) => {
            $(
                $(#[$doc])*
                pub const $name: usize = offset_of!(Control, $field) / 8;
                const _: () = assert!(offset_of!(Control, $field) % 8 == 0);
                const _: fn(&Control) -> u64 = |c| c.$field;
            )*
        };
    }

    words! {
        /// [`Control::active`]
        ACTIVE = active;
        /// [`Control::armed`]
        ARMED = armed;
        /// [`Control::stopped`]
        STOPPED = stopped;
        /// [`Control::stopping`]
        STOPPING = stopping;
        /// [`Control::flips`]
        FLIPS = flips;
        /// [`Control::missed`]
        MISSED = missed;
        /// [`Control::pending`]
        PENDING = pending;
        /// [`Control::post_left`]
        POST_LEFT = post_left;
        /// [`Control::post_half`]
        POST_HALF = post_half;
    }
}

const _: () = assert!(size_of::<Control>().is_multiple_of(8));

/// The queue maps that replace the exchanges on kernels without BPF atomics.
pub struct Tokens {
    arm: OwnedFd,
    stop: OwnedFd,
    tickets: OwnedFd,
    /// Tickets of one `--post` window (0: no window).
    per_window: u64,
}

fn queue_fd(ebpf: &Ebpf, name: &str) -> anyhow::Result<OwnedFd> {
    match ebpf.map(name) {
        Some(Map::Queue(data)) => data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .with_context(|| format!("cannot duplicate the descriptor of map {name}")),
        _ => anyhow::bail!(
            "queue map {name} missing from the eBPF object: rebuild with `cargo xtask build`"
        ),
    }
}

impl Tokens {
    /// The token queues of a loaded object, with the stop token in place; `per_window` tickets
    /// are refilled at each arming.
    pub fn new(ebpf: &Ebpf, per_window: u64) -> anyhow::Result<Self> {
        let tokens = Self {
            arm: queue_fd(ebpf, names::ARM_TOKEN)?,
            stop: queue_fd(ebpf, names::STOP_TOKEN)?,
            tickets: queue_fd(ebpf, names::POST_TICKETS)?,
            per_window,
        };
        bpf::queue_push(tokens.stop.as_fd(), 1).context("cannot place the stop token")?;
        Ok(tokens)
    }

    fn pop(fd: &OwnedFd, what: &str) -> Option<u64> {
        bpf::queue_pop(fd.as_fd()).unwrap_or_else(|e| {
            log::error!("cannot take the {what} from its queue map: {e}");
            None
        })
    }
}

/// The mapped [`Control`] value, with userspace's side of the protocol.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    map: &'a Mmap,
    tokens: Option<&'a Tokens>,
}

impl<'a> Words<'a> {
    /// The protocol over a read-write mapping of the `CONTROL` map, and the token queues on a
    /// kernel without BPF atomics.
    #[must_use]
    pub const fn new(map: &'a Mmap, tokens: Option<&'a Tokens>) -> Self {
        Self { map, tokens }
    }

    fn word(self, index: usize) -> &'a AtomicU64 {
        self.map.word(index)
    }

    /// The half probes write into.
    #[must_use]
    pub fn active(&self) -> usize {
        (self.word(index::ACTIVE).load(SeqCst) & 1) as usize
    }

    /// True while the spare is armed (the next trigger takes a snapshot).
    #[must_use]
    pub fn armed(&self) -> bool {
        match self.tokens {
            Some(t) => bpf::queue_peek(t.arm.as_fd()).is_ok_and(|v| v.is_some()),
            None => self.word(index::ARMED).load(SeqCst) != 0,
        }
    }

    /// True once recording has stopped (at exit, or by the stop policy).
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.word(index::STOPPED).load(SeqCst) != 0
    }

    /// Triggers that found no armed spare so far.
    #[must_use]
    pub fn missed(&self) -> u64 {
        self.word(index::MISSED).load(SeqCst)
    }

    /// True while a `--post` window is open.
    #[must_use]
    pub fn window_open(&self) -> bool {
        self.word(index::PENDING).load(SeqCst) != 0
    }

    /// Arms the spare (its base must be recorded first).
    pub fn arm(&self) {
        let Some(t) = self.tokens else {
            self.word(index::ARMED).store(1, SeqCst);
            return;
        };
        // The last window's tickets are all gone (its closer took ticket 1, the last); no
        // writer takes one until the token below lets a trigger open the next window.
        while Tokens::pop(&t.tickets, "--post ticket").is_some() {}
        for ticket in (1..=t.per_window).rev() {
            if let Err(e) = bpf::queue_push(t.tickets.as_fd(), ticket) {
                log::error!("cannot refill the --post tickets: {e}");
            }
        }
        if let Err(e) = bpf::queue_push(t.arm.as_fd(), 1) {
            log::error!("cannot arm the spare (push its token): {e}");
        }
    }

    /// Takes the armed spare; true for the one winner.
    #[must_use]
    pub fn take_spare(&self) -> bool {
        match self.tokens {
            Some(t) => Tokens::pop(&t.arm, "spare's token").is_some(),
            None => self.word(index::ARMED).swap(0, SeqCst) == 1,
        }
    }

    /// Flips: `frozen` stops being live, the other half becomes live. Only the winner of
    /// [`Self::take_spare`] (or of a window's last ticket) calls it. Returns the flip's
    /// sequence number.
    #[must_use]
    pub fn flip(&self, frozen: usize) -> u64 {
        let seq = self.word(index::FLIPS).fetch_add(1, SeqCst) + 1;
        self.word(index::ACTIVE)
            .swap((frozen as u64 & 1) ^ 1, SeqCst);
        seq
    }

    /// Counts a trigger that found no armed spare.
    pub fn count_missed(&self) {
        self.word(index::MISSED).fetch_add(1, SeqCst);
    }

    /// Takes the decision word: true for the one that may flip or stop now (see the module
    /// documentation); a flip releases it with [`Self::release_stopping`], a stop keeps it.
    #[must_use]
    pub fn take_stopping(&self) -> bool {
        match self.tokens {
            Some(t) => Tokens::pop(&t.stop, "stop token").is_some(),
            None => self.word(index::STOPPING).swap(1, SeqCst) == 0,
        }
    }

    /// Releases the decision word after a flip (its notice, or its snapshot, is out).
    pub fn release_stopping(&self) {
        match self.tokens {
            Some(t) => {
                if let Err(e) = bpf::queue_push(t.stop.as_fd(), 1) {
                    log::error!("cannot give the stop token back: {e}");
                }
            }
            None => {
                self.word(index::STOPPING).swap(0, SeqCst);
            }
        }
    }

    /// Stops recording: no writer writes once it sees this (under its CPU's `busy`).
    pub fn stop(&self) {
        self.word(index::STOPPED).store(1, SeqCst);
    }

    /// Closes an open `--post` window from userspace by taking the tickets left. Returns the
    /// half to freeze and the tickets that were left when userspace took the last one (and so
    /// must flip and then call [`Self::window_closed`]); `None` when no window is open or a
    /// writer took the last ticket (its notice is on the way).
    #[must_use]
    pub fn take_window(&self) -> Option<(usize, u64)> {
        if !self.window_open() {
            return None;
        }
        let left = if let Some(t) = self.tokens {
            // Ticket 1 is the last in the queue: whoever pops it flips.
            let (mut taken, mut last) = (0, false);
            while let Some(ticket) = Tokens::pop(&t.tickets, "--post ticket") {
                taken += 1;
                last |= ticket == 1;
            }
            if !last {
                return None;
            }
            taken
        } else {
            let left = self.word(index::POST_LEFT).swap(0, SeqCst) as i64;
            u64::try_from(left).ok().filter(|&l| l >= 1)?
        };
        Some((
            (self.word(index::POST_HALF).load(SeqCst) & 1) as usize,
            left,
        ))
    }

    /// Marks the window closed after userspace's flip.
    pub fn window_closed(&self) {
        self.word(index::PENDING).store(0, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::index;

    #[test]
    fn indices_follow_the_shared_layout() {
        // The order of the fields in snapshot-common; a field added in the middle would move
        // the later ones, and these follow.
        assert_eq!(
            [index::ACTIVE, index::ARMED, index::STOPPED, index::STOPPING],
            [0, 1, 2, 3]
        );
        const { assert!(index::PENDING > index::MISSED && index::POST_HALF > index::POST_LEFT) };
    }
}
