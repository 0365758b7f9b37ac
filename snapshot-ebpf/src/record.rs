//! Writing one fixed-size record into the live half of the flight recorder.
//!
//! Layout: `EVENTS[(half * ncpu + cpu) * capacity + head % capacity]` (`CpuState::slot` keeps
//! `head % capacity` so the hot path does not divide); each CPU owns its own
//! region of each half, so writers on different CPUs never share a slot.
//!
//! Exclusion on one CPU: a probe takes `CpuState::busy` ([`atomic::take_busy`]: an atomic
//! exchange, or a counting lock on kernels without one) before it reads the active half and
//! the head, and releases it ([`atomic::release_busy`], a full barrier) after the record and
//! the head are written. Reading the active half only after taking `busy` is what makes a
//! drain safe: a writer that read the old half holds `busy` (userspace waits for it), and one
//! that takes `busy` after the flip reads the new half. A second probe on the same CPU while the first is writing (a kprobe inside a
//! tracepoint program, an NMI, or a preempted uprobe program) finds `busy == 1`, writes nothing
//! and is counted in `CpuState::dropped`: it can neither tear nor duplicate a record.
//!
//! Command names: a per-CPU cache keyed by `pid_tgid` saves the `bpf_get_current_comm` call
//! (helper calls dominate the cost here); `comm.rs` bumps `Control::comm_epoch` on every exec
//! and rename, which invalidates all caches.
//!
//! `--post`: while a window is open (`Control::pending`), the half comes from the window's
//! ticket instead (see [`Control::post_left`](snapshot_common::Control)); the writer that
//! takes the last ticket closes the window with the flip once its record is published.
//!
//! Strings (`capture.rs`): a probe that captures strings writes them into the payload slot of
//! the same index, still under `busy` and before the commit word, so they are published with
//! the record (and the event flag `EVENT_HAS_STRINGS` says they are there).
//!
//! Publication: `seq` (position + 1) is written after every other field and before the head
//! moves; the release exchange on `busy` is a full barrier. A reader that waited for `busy == 0`
//! (or for `generation` to move) after the half stopped being live sees complete records, and
//! the `seq` check catches any slot that was not (counted as torn; the design keeps it at 0).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
        generated::bpf_get_current_comm,
    },
    programs::tracing::StackIdContext,
};
use core::ptr::{read_volatile as rd, write_volatile as wr};
use snapshot_common::{
    COMM_LEN, Control, CpuState, EVENT_HAS_DURATION, EVENT_HAS_STRINGS, MAX_ARGS,
};

use crate::{
    atomic, capture, filter, flip,
    maps::{CONTROL, CPU_STATE, EVENTS, capacity, ncpu},
    pairs, trigger,
};

/// Where an event stands in an entry/return pair (see `pairs.rs`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not part of a pair (tracepoints).
    Plain,
    /// A function entry.
    Entry,
    /// A function return.
    Return,
}

/// What a probe observed, before the common fields are added.
pub struct Payload {
    /// Arguments or tracepoint fields.
    pub args: [u64; MAX_ARGS],
    /// Return value, when `flags` has `EVENT_HAS_RET`.
    pub ret: u64,
    /// Address of the probed function, or 0.
    pub ip: u64,
    /// `EVENT_*` flags.
    pub flags: u32,
    /// Entry, return or neither.
    pub role: Role,
}

/// The current task's command name from this CPU's cache, refreshed through the helper when
/// another task ran last or a command name may have changed since (`comm_epoch`).
///
/// # Safety
/// `state` is this CPU's `CpuState` and the caller holds its `busy` flag.
///
/// Returned as two words: the copy into the record is then two 8-byte stores (a `[u8; 16]`
/// copy compiles to a byte-by-byte `memmove` subprogram on BPF, a call and 16 iterations per
/// event).
#[inline(always)]
unsafe fn cached_comm(state: *mut CpuState, pid_tgid: u64, epoch: u64) -> [u64; 2] {
    const _: () = assert!(COMM_LEN == 16 && core::mem::offset_of!(CpuState, comm) % 8 == 0);
    // SAFETY: guaranteed by the caller; `comm` is 16 bytes at an 8-byte aligned offset of a map
    // value (asserted above), so it reads as two aligned u64.
    unsafe {
        let comm = (&raw mut (*state).comm).cast::<u8>();
        if (*state).comm_key != pid_tgid || (*state).comm_epoch != epoch {
            // The helper zero-fills the buffer when it fails: no branch on its result.
            let _ = bpf_get_current_comm(comm.cast(), COMM_LEN as u32);
            (*state).comm_key = pid_tgid;
            (*state).comm_epoch = epoch;
        }
        let words = comm.cast::<u64>();
        [rd(words), rd(words.add(1))]
    }
}

/// Records one event for `probe_id` if the current task is a target and recording is on,
/// then checks the trigger condition on it (`ctx` gives the stacks if it fires).
#[inline(always)]
pub fn record<C: StackIdContext>(ctx: &C, probe_id: u32, payload: &Payload) {
    record_from(ctx, probe_id, payload, 0);
}

/// As [`record`], for an event read from the tracepoint record at `base` (where its
/// `__data_loc` strings are).
#[inline(always)]
pub fn record_from<C: StackIdContext>(ctx: &C, probe_id: u32, payload: &Payload, base: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !filter::wanted_event(probe_id, base, pid_tgid) {
        return;
    }
    // SAFETY: helper without preconditions.
    let ts = unsafe { bpf_ktime_get_boot_ns() };
    let duration = pairs::track(probe_id, payload.role, pid_tgid, ts);
    if let Some(slot) = write_at(probe_id, payload, base, pid_tgid, ts, duration) {
        trigger::check(ctx, probe_id, payload, pid_tgid, ts, duration, slot);
    }
}

/// No event slot was written (the CPU's writer was busy): `write_at`'s slot.
pub const NO_SLOT: u64 = u64::MAX;

/// The half this record goes into, and whether it closes a `--post` window.
///
/// # Safety
/// `control` is the CONTROL value; the caller holds its CPU's `busy`.
#[inline(always)]
unsafe fn choose_half(control: *mut Control, ts: u64) -> (u64, bool) {
    // SAFETY: guaranteed by the caller; volatile because other CPUs and userspace change these.
    unsafe {
        if rd(&raw const (*control).pending) == 0 {
            return (rd(&raw const (*control).active) & 1, false);
        }
        let frozen = rd(&raw const (*control).post_half) & 1;
        let until = rd(&raw const (*control).post_until);
        if until != 0 && ts < until {
            // Inside a `--post DURATION` window: part of the snapshot.
            return (frozen, false);
        }
        let ticket = atomic::take_ticket(control);
        // `--post N`: tickets N..=1 are the N events after the trigger. Past a duration
        // window, or once the tickets are gone, the record belongs to the next half.
        let inside = until == 0 && ticket >= 1;
        (if inside { frozen } else { frozen ^ 1 }, ticket == 1)
    }
}

/// Writes the record into the live half. Returns whether the trigger is to be checked on it:
/// not when recording is stopped, nor when the record closed a `--post` window (it belongs to
/// the window, like every trigger inside it).
#[inline(always)]
pub fn write(
    probe_id: u32,
    payload: &Payload,
    pid_tgid: u64,
    ts: u64,
    duration: Option<u64>,
) -> bool {
    write_at(probe_id, payload, 0, pid_tgid, ts, duration).is_some()
}

/// As [`write`], with the tracepoint record `base` for `__data_loc` strings (or 0). Returns
/// `Some(slot)` when the trigger is to be checked, `slot` being the event's index in
/// `EVENTS` and `PAYLOADS` ([`NO_SLOT`] when nothing was written).
#[inline(always)]
pub fn write_at(
    probe_id: u32,
    payload: &Payload,
    base: u64,
    pid_tgid: u64,
    ts: u64,
    duration: Option<u64>,
) -> Option<u64> {
    let Some(control) = CONTROL.get_ptr_mut(0) else {
        return None;
    };
    // SAFETY: `control` points at the single CONTROL value, valid while the program runs;
    // volatile because userspace changes it concurrently.
    if unsafe { rd(&raw const (*control).stopped) } != 0 {
        return None;
    }
    // SAFETY: BPF helper without preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(state) = CPU_STATE.get_ptr_mut(cpu) else {
        return None;
    };
    // SAFETY: `state` is this CPU's CpuState map value; `busy` is 8-byte aligned.
    if !unsafe { atomic::take_busy(&raw mut (*state).busy) } {
        // SAFETY: as above.
        unsafe { atomic::add(&raw mut (*state).dropped, 1) };
        return Some(NO_SLOT);
    }
    // SAFETY: `control` as above. Recording may have stopped since the check above; checked
    // again under `busy`, so that once userspace has set `stopped` and waited for the writers,
    // nothing writes any more.
    if unsafe { rd(&raw const (*control).stopped) } != 0 {
        // SAFETY: as above; we own `busy`.
        unsafe { atomic::release_busy(&raw mut (*state).busy) };
        return None;
    }
    // SAFETY: `control` as above; we hold `busy` (the half is read after taking it).
    let (half, closes, comm_epoch) = unsafe {
        let (half, closes) = choose_half(control, ts);
        (half as usize, closes, rd(&raw const (*control).comm_epoch))
    };
    let cap = u64::from(capacity());
    // SAFETY: we hold `busy`, so no other writer on this CPU touches the head.
    let (head, pos) = unsafe { ((*state).head[half], (*state).slot[half]) };
    let mut written = NO_SLOT;
    if cap != 0 && pos < cap {
        let slot = (half as u64 * u64::from(ncpu()) + u64::from(cpu)) * cap + pos;
        if let Some(event) = EVENTS.get_ptr_mut(slot as u32) {
            // SAFETY: `event` is a valid map value; this CPU owns the slot while holding `busy`.
            // Every field is stored on its own (volatile): LLVM would otherwise merge the
            // zero fields into a call to a byte-by-byte `memset` subprogram, which costs more
            // than the rest of the record.
            unsafe {
                wr(&raw mut (*event).ts_ns, ts);
                wr(&raw mut (*event).pid_tgid, pid_tgid);
                for (i, arg) in payload.args.iter().enumerate() {
                    wr(&raw mut (*event).args[i], *arg);
                }
                wr(&raw mut (*event).ret, payload.ret);
                wr(&raw mut (*event).ip, payload.ip);
                wr(&raw mut (*event).duration_ns, duration.unwrap_or(0));
                let comm = cached_comm(state, pid_tgid, comm_epoch);
                let dst = (&raw mut (*event).comm).cast::<u64>();
                wr(dst, comm[0]);
                wr(dst.add(1), comm[1]);
                wr(&raw mut (*event).cpu, cpu);
                wr(&raw mut (*event).probe_id, probe_id);
                let mut flags = if duration.is_some() {
                    payload.flags | EVENT_HAS_DURATION
                } else {
                    payload.flags
                };
                // A load-time constant per program: probes without strings keep none of this.
                if capture::wanted(probe_id)
                    && let Some(strings) = capture::PAYLOADS.get_ptr_mut(slot as u32)
                {
                    wr(&raw mut (*strings).seq, head + 1);
                    wr(&raw mut (*strings).cpu, cpu);
                    capture::capture(probe_id, payload, base, strings);
                    flags |= EVENT_HAS_STRINGS;
                }
                wr(&raw mut (*event).flags, flags);
                wr(&raw mut (*event).pad, 0);
                core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::Release);
                wr(&raw mut (*event).seq, head + 1);
                (*state).head[half] = head + 1;
                // `slot` tracks `head % capacity` without a division on the hot path.
                (*state).slot[half] = if pos + 1 >= cap { 0 } else { pos + 1 };
            }
            written = slot;
        }
    }
    if closes {
        // Still under `busy`: a userspace stop that waited for the writers has the notice.
        flip::close_post(control);
    }
    // SAFETY: as above.
    unsafe {
        (*state).generation += 1;
        // The release is a full barrier: it publishes every store above.
        atomic::release_busy(&raw mut (*state).busy);
    }
    (!closes).then_some(written)
}
