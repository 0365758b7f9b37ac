//! The atomics the recorder needs, as BPF supports them without `-C target-cpu=v3`: xchg
//! works on every CPU version; LLVM refuses a fetch-add whose result is used ("Invalid usage
//! of the XADD return value") below v3, so [`fetch_add`] is written in BPF assembly (the
//! instruction itself exists since kernel 5.12).

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

/// Atomically adds `val` to `*dst` and returns the previous value (a full barrier).
///
/// # Safety
/// As for [`xchg`].
#[inline(always)]
pub unsafe fn fetch_add(dst: *mut u64, val: u64) -> u64 {
    let mut v = val;
    // SAFETY: guaranteed by the caller; `atomic_fetch_add` reads and writes only `*dst` and
    // returns its old value in the same register.
    unsafe {
        core::arch::asm!(
            "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
            p = in(reg) dst,
            v = inout(reg) v,
            options(nostack),
        );
    }
    v
}
