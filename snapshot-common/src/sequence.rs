//! Sequence triggers, `A then B within T`: the per-thread state both sides agree on.
//!
//! A sequence compiles to two instructions around its conditions (see [`super::op`]): the code
//! of B, then `op::SEQ_MATCH` (pop B; push whether this thread's last A is at most T old, and
//! forget that A), then the code of A, then `op::SEQ_ARM` (pop A; when it holds, remember now
//! as this thread's last A). B is checked before A is recorded, so one event is never both
//! the A and the B of the same match. The state lives in the `SEQ_STATE` LRU hash map: key
//! [`seq_key`] (thread, sequence), value the boot-time ns of the thread's last A.

/// Most sequences in one trigger program (one per `--trigger`).
pub const MAX_SEQS: usize = 4;

/// Longest window accepted: one hour. A longer one would outlive the per-thread state it
/// reads (the LRU map forgets threads long idle) and is not what a sequence is for.
pub const SEQ_WINDOW_MAX_NS: u64 = 3_600 * 1_000_000_000;

/// Threads whose last A is remembered at once (per sequence, shared); past it the least
/// recently used entry is forgotten.
pub const SEQ_THREADS: u32 = 16_384;

/// The `SEQ_STATE` key of thread `tid` in sequence `seq` (0-based).
#[must_use]
#[inline(always)]
pub const fn seq_key(tid: u32, seq: u8) -> u64 {
    ((seq as u64) << 32) | tid as u64
}

const _: () = assert!(MAX_SEQS <= u8::MAX as usize && MAX_SEQS.is_power_of_two());
const _: () = assert!(seq_key(7, 3) == (3 << 32) | 7);
