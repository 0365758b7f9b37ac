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
#[inline]
pub const fn seq_key(tid: u32, seq: u8) -> u64 {
    ((seq as u64) << 32) | tid as u64
}

/// Bits of [`fired`] that hold A's time; the bits above hold the sequence's number.
const TIME_BITS: u32 = 61;

/// The `Notice::sequence` word of sequence `number` (1-based; 0: none) whose A held at boot
/// time `start_ns` (below 2^61 ns: 73 years of uptime).
#[must_use]
#[inline]
pub const fn fired(number: u32, start_ns: u64) -> u64 {
    ((number as u64) << TIME_BITS) | (start_ns & ((1 << TIME_BITS) - 1))
}

/// (number, A's time) of a `Notice::sequence` word; number 0: not a sequence.
#[must_use]
pub const fn fired_parts(word: u64) -> (u32, u64) {
    ((word >> TIME_BITS) as u32, word & ((1 << TIME_BITS) - 1))
}

const _: () = assert!(MAX_SEQS < 1 << (64 - TIME_BITS));
const _: () = assert!(fired_parts(fired(MAX_SEQS as u32, 123)).0 == MAX_SEQS as u32);
const _: () = assert!(fired_parts(fired(1, 123)).1 == 123 && fired_parts(0).0 == 0);
const _: () = assert!(MAX_SEQS <= u8::MAX as usize && MAX_SEQS.is_power_of_two());
const _: () = assert!(seq_key(7, 3) == (3 << 32) | 7);
