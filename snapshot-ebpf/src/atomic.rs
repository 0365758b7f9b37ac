//! The atomic steps of the recorder's protocols, on every kernel it supports.
//!
//! Kernels from 5.12 have BPF atomic exchange and fetch-and-add ([`kfeature::ATOMICS`]), and
//! each step below is one such instruction. Older kernels (Debian 11's 5.10) have only the
//! atomic add without a result (`XADD`), and refuse a program holding any other atomic
//! instruction, even one the verifier would never reach: "BPF_STX uses reserved fields" comes
//! from a pass over every instruction before the walk (checked on 5.10: an exchange behind a
//! branch on a known constant is refused, a call to an unknown helper there is accepted). So
//! each step is a branch on the frozen `kfeature::ATOMICS` bit, and on such a kernel userspace
//! rewrites the atomic instructions into calls to an unknown helper (`POISON_HELPER`) before
//! loading (`snapshot-userspace/src/session/poison.rs`), as libbpf poisons what a kernel
//! lacks: the verifier prunes those branches, and were one reachable it would refuse the
//! program ("invalid func"), never run it wrong. Where atomics exist, the object loads
//! unchanged and the verifier removes the other branch, so the common path costs what it did.
//!
//! Without exchange, each step is rebuilt from what 5.10 offers:
//!
//! * **One writer per CPU** ([`take_busy`]): a counting lock on `CpuState::busy`. A writer adds 1
//!   (`XADD`), then reads the word: it owns the CPU's ring if it reads 1, else it takes its 1
//!   back and drops its event. While an owner is between its add and its release, the word
//!   holds its 1, so any other writer reads at least 2: never two owners (two writers may both
//!   read 2 and both drop, which is counted, never wrong). A plain flag (test, then set) would
//!   be enough only if writers on one CPU nested strictly last-in first-out, each running to
//!   completion inside the one it interrupted, which holds only where no program can be
//!   preempted by another task. On 5.10 that is so for every program type the recorder uses:
//!   kprobes and perf tracepoints run with preemption disabled, uprobes' `trace_call_bpf` too,
//!   raw tracepoints at the tracepoint site, and fentry/fexit under `migrate_disable()`, which
//!   on 5.10's non-RT kernels is `preempt_disable()`. It stops holding from 5.11, where
//!   `migrate_disable()` leaves the task preemptible (fentry/fexit trampolines; uprobes from
//!   6.1, run under `migrate_disable()` for sleepable programs), and on any PREEMPT_RT kernel,
//!   5.10-rt included: a program preempted between its test and its set lets another task's
//!   program on that CPU take the flag too, and both write one slot. So the lock does not rely
//!   on the program type or kernel config: it is correct in every case, and costs what the
//!   exchange does (two locked instructions per event).
//! * **One winner per arming** ([`take_spare`]) and **one stopper** ([`take_stopping`]): a token
//!   in a queue map of one entry (`ARM_TOKEN`, `STOP_TOKEN`). Popping runs under the map's
//!   spinlock, so exactly one trigger gets the token; userspace arms by pushing it, and the
//!   winner that must give the spare back pushes it again.
//! * **`--post` tickets** ([`take_ticket`]): userspace fills `POST_TICKETS` with N, N-1, …, 1 when
//!   it arms; each event of the window pops one (FIFO: the one that pops 1 is the Nth and
//!   closes the window; an empty queue is "no ticket left"), as `fetch_add(-1)` hands them out.
//! * **Publication** ([`publish`]): a store, then an `XADD` of 0 to the same word: a locked
//!   instruction on x86-64 (the architecture the project builds for), so a full barrier, as the
//!   exchange is.
//!
//! Counters (`dropped`, `missed`, `comm_epoch`) use [`add`], the one atomic all kernels have.

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd, atomic_xchg},
    ptr::{read_volatile as rd, write_volatile as wr},
};
use snapshot_common::{Control, kfeature};

use crate::maps::{ARM_TOKEN, POST_TICKETS, STOP_TOKEN, has};

/// Atomically stores `val` at `dst` and returns the previous value (a full barrier).
/// Only where [`kfeature::ATOMICS`] is set.
///
/// # Safety
/// `dst` must be valid for reads and writes and 8-byte aligned (a map value field).
#[inline(always)]
unsafe fn xchg(dst: *mut u64, val: u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(dst, val) }
}

/// Atomically adds `val` to `*dst`; the result is not used (BPF `lock add`, every kernel).
///
/// # Safety
/// `dst` must be valid for reads and writes and 8-byte aligned (a map value field).
#[inline(always)]
pub unsafe fn add(dst: *mut u64, val: u64) {
    // SAFETY: guaranteed by the caller.
    let _ = unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(dst, val) };
}

/// Atomically adds `val` to `*dst` and returns the previous value (a full barrier). LLVM
/// refuses a fetch-add whose result is used ("Invalid usage of the XADD return value") below
/// CPU v3, so it is written in BPF assembly. Only where [`kfeature::ATOMICS`] is set.
///
/// # Safety
/// As for [`xchg`].
#[inline(always)]
unsafe fn fetch_add(dst: *mut u64, val: u64) -> u64 {
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

/// A full barrier without atomic exchange: `XADD` of 0 to `dst`, in assembly because LLVM
/// turns an idempotent atomic add into an atomic `or`, which kernels without BPF atomics lack.
///
/// # Safety
/// As for [`add`].
#[inline(always)]
unsafe fn add_zero(dst: *mut u64) {
    // SAFETY: guaranteed by the caller; the instruction adds 0 to `*dst`, atomically.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {v}",
            p = in(reg) dst,
            v = in(reg) 0u64,
            options(nostack),
        );
    }
}

/// True when the kernel has BPF atomic exchange and fetch-and-add (a load-time constant).
#[inline(always)]
fn atomics() -> bool {
    has(kfeature::ATOMICS)
}

/// Stores `val` at `dst` so that every store before it is visible to other CPUs first, and
/// this one before anything after it (a full barrier).
///
/// # Safety
/// As for [`add`]; the caller is the word's one writer at this time.
#[inline(always)]
pub unsafe fn publish(dst: *mut u64, val: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if atomics() {
            xchg(dst, val);
        } else {
            wr(dst, val);
            add_zero(dst);
        }
    }
}

/// Takes this CPU's writer word; true when this writer owns the CPU's ring (it must then
/// [`release_busy`]), false when another writer on this CPU does (nothing to undo).
///
/// # Safety
/// `busy` is this CPU's `CpuState::busy`.
#[inline(always)]
pub unsafe fn take_busy(busy: *mut u64) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if atomics() {
            return xchg(busy, 1) == 0;
        }
        add(busy, 1);
        if rd(busy) == 1 {
            return true;
        }
        add(busy, u64::MAX);
        false
    }
}

/// Releases the writer word taken by [`take_busy`]; a full barrier, which publishes the
/// record.
///
/// # Safety
/// As for [`take_busy`], by its owner.
#[inline(always)]
pub unsafe fn release_busy(busy: *mut u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        if atomics() {
            xchg(busy, 0);
        } else {
            add(busy, u64::MAX);
        }
    }
}

/// Takes the armed spare: true for the one trigger of this arming that gets it.
///
/// # Safety
/// `control` is the CONTROL value.
#[inline(always)]
pub unsafe fn take_spare(control: *mut Control) -> bool {
    if atomics() {
        // SAFETY: guaranteed by the caller.
        return unsafe { xchg(&raw mut (*control).armed, 0) } == 1;
    }
    matches!(ARM_TOKEN.pop(), Ok(Some(_)))
}

/// Gives the spare taken by [`take_spare`] back (armed again).
///
/// # Safety
/// As for [`take_spare`], by the trigger that took it.
#[inline(always)]
pub unsafe fn return_spare(control: *mut Control) {
    if atomics() {
        // SAFETY: guaranteed by the caller.
        unsafe { xchg(&raw mut (*control).armed, 1) };
    } else {
        // The queue has room: this trigger holds its only token.
        let _ = ARM_TOKEN.push(&1, 0);
    }
}

/// Takes the stop policy: true for the one trigger that applies it.
///
/// # Safety
/// As for [`take_spare`].
#[inline(always)]
pub unsafe fn take_stopping(control: *mut Control) -> bool {
    if atomics() {
        // SAFETY: guaranteed by the caller.
        return unsafe { xchg(&raw mut (*control).stopping, 1) } == 0;
    }
    matches!(STOP_TOKEN.pop(), Ok(Some(_)))
}

/// Releases the stop word taken by [`take_stopping`] (a flip that held it while it decided,
/// or a trigger that found a `--post` window open and does not stop after all).
///
/// # Safety
/// As for [`take_spare`], by the trigger that took it.
#[inline(always)]
pub unsafe fn release_stopping(control: *mut Control) {
    if atomics() {
        // SAFETY: guaranteed by the caller; the exchange orders the stores before it.
        unsafe { xchg(&raw mut (*control).stopping, 0) };
    } else {
        // The queue has room: this trigger holds its only token. The push runs under the
        // map's spinlock, which orders the stores before it.
        let _ = STOP_TOKEN.push(&1, 0);
    }
}

/// Takes a ticket of the open `--post` window: N..=1 while tickets are left (1 is the last),
/// 0 or less once they are gone.
///
/// # Safety
/// As for [`take_spare`], while the window is open.
#[inline(always)]
pub unsafe fn take_ticket(control: *mut Control) -> i64 {
    if atomics() {
        // SAFETY: guaranteed by the caller.
        return unsafe { fetch_add(&raw mut (*control).post_left, u64::MAX) } as i64;
    }
    match POST_TICKETS.pop() {
        Ok(Some(ticket)) => ticket as i64,
        _ => 0,
    }
}
