//! Sequence triggers, `A then B within T`, in the kernel: per-thread memory of the last A.
//!
//! Protocol (the bytecode side is in `snapshot-common/src/sequence.rs`): a sequence is the
//! code of B, `op::SEQ_MATCH`, the code of A, `op::SEQ_ARM`. On each event, in that order:
//!
//! - B holds: look up (thread, sequence) in `SEQ_STATE`. An entry means this thread's last A
//!   was at `t_A`; the sequence fires when `now - t_A <= T`. Either way the entry is deleted:
//!   B consumes its A (one A pairs with at most one B; a late B clears the stale A).
//! - A holds: write `now` under (thread, sequence). A later A overwrites an earlier one: the
//!   window runs from the most recent A, the one nearest any B.
//!
//! B is checked before A is recorded, so an event that is both completes an earlier A and
//! then becomes the new A; it never pairs with itself.
//!
//! Cost: nothing on an event for which neither A nor B holds (their conditions are plain
//! bytecode; fields of another probe are invalid, so A and B are false on every other probe's
//! events). One helper call (update) when A holds, one or two (lookup, delete) when B holds.
//! No atomics: only the thread itself writes its entries (a nested program on the same CPU
//! can at worst overwrite one with a newer time), and `SEQ_STATE` is an LRU hash, so its size
//! is fixed: past `SEQ_THREADS` threads with a pending A, the least recently used is forgotten.

use snapshot_common::sequence::{MAX_SEQS, seq_key};

use crate::maps::SEQ_STATE;

/// The key of the current thread in sequence `seq`.
#[inline(always)]
fn key(seq: u8, pid_tgid: u64) -> u64 {
    seq_key(pid_tgid as u32, seq & (MAX_SEQS as u8 - 1))
}

/// A of sequence `seq` held on this thread at `now`.
#[inline(always)]
pub fn arm(seq: u8, pid_tgid: u64, now: u64) {
    // Fails only without memory for a new element; the sequence then misses this A.
    let _ = SEQ_STATE.insert(&key(seq, pid_tgid), &now, 0);
}

/// B of sequence `seq` held on this thread at `now`: the time of the A it completes within
/// `window` ns, if any. The thread's A is consumed either way.
#[inline(always)]
pub fn complete(seq: u8, pid_tgid: u64, now: u64, window: u64) -> Option<u64> {
    let key = key(seq, pid_tgid);
    // SAFETY: the value is a plain u64, copied at once; a concurrent delete of this entry can
    // only come from this thread (a nested program), which leaves the memory readable (RCU).
    let start = unsafe { SEQ_STATE.get(&key) }.copied()?;
    let _ = SEQ_STATE.remove(&key);
    (start <= now && now - start <= window).then_some(start)
}
