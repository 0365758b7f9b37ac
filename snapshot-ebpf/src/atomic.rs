//! The two atomics the recorder needs, as BPF supports them without `-C target-cpu=v3`
//! (see FACTS: xchg works on every CPU version; fetch-add only when its result is unused).

use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xchg};

/// Atomically stores `val` at `dst` and returns the previous value (a full barrier).
///
/// # Safety
/// `dst` must be valid for reads and writes and 8-byte aligned (a map value field).
#[inline(always)]
pub unsafe fn xchg(dst: *mut u64, val: u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(dst, val) }
}

/// Atomically adds `val` to `*dst`; the result is not used (BPF `lock add`).
///
/// # Safety
/// As for [`xchg`].
#[inline(always)]
pub unsafe fn add(dst: *mut u64, val: u64) {
    // SAFETY: guaranteed by the caller.
    let _ = unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(dst, val) };
}
