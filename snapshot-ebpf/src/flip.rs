//! The flip: freeze the live half as a snapshot and continue in the armed spare.
//!
//! One winner: a trigger flips only after taking the armed spare ([`atomic::take_spare`]: an
//! atomic exchange of `Control::armed` 1 → 0, or on kernels without one, popping the one token
//! of `ARM_TOKEN`). Two CPUs firing at once both try; exactly one gets it and flips, the other
//! counts a missed trigger. Only the winner writes `active` and `flips`, so they need no
//! further atomics; `active` is published with a full barrier ([`atomic::publish`]), so a
//! writer that takes its CPU's `busy` after the flip reads the new half (see `record.rs`).
//!
//! No armed spare: `Skip` counts the trigger in `Control::missed` (reported with the next
//! snapshot). `Stop` reproduces ftrace's behaviour without a spare buffer: one trigger (the one
//! that takes `stopping`) writes a marker record into the live half, stops recording and tells
//! userspace, which exports the live half as the final, "permanent" snapshot.
//!
//! One decider: a flip and a stop are never interleaved. The winner of `armed` also takes
//! `Control::stopping` (exchange 0 → 1) before it flips or opens a window, and releases it
//! (exchange 1 → 0) only after its notice is sent; if a stop holds it, the winner gives the
//! spare back and counts a missed trigger. A trigger without a spare stops only if it takes `stopping` and
//! then finds no window open; if a flip holds `stopping`, it is only a missed trigger. So a
//! stop decided while a flip is in flight (its winner taking stacks) can no longer freeze the
//! half being flipped, and the stop's notice always follows the flip's.
//!
//! `--post`: the winner does not flip at once. It keeps its notice in `PENDING`, names the
//! half to freeze and the window (N tickets or a deadline) and opens it (`pending`); the
//! events after it still go into that half until the window closes, and the writer that takes
//! the last ticket (`record.rs`) calls [`close_post`], which flips exactly as above. Triggers
//! while a window is open belong to that snapshot: they are neither flips nor missed.
//!
//! Stacks: the winner takes the kernel and user stacks into `STACKS` (a few µs, once per
//! snapshot), and the user stack once more as build id + file offset per frame into
//! `USTACKS_BUILD_ID` (for a process gone before userspace reads its memory map), and sends
//! the three ids with the notice; on a kernel without `bpf_get_stackid` for the program's type
//! (or without build-id stack maps, for the third), the ids say "no stack".
//!
//! Diagnostics: these rare branches (a trigger won, a trigger missed, the stop policy engaged,
//! a `--post` window closed) write a debug record (`diag.rs`, aya-log) before their notice,
//! so userspace, which reads the log before it handles a notice, prints them in order. The
//! trigger that stops the recording logs the stop, not a miss. The per-event path never logs.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_smp_processor_id},
    programs::tracing::StackIdContext,
};
use core::ptr::{read_volatile as rd, write_volatile as wr};
use snapshot_common::{
    COMM_LEN, Control, EVENT_MARKER, MARKER_PROBE, NOTICE_FLIP, NOTICE_POST, NOTICE_STOPPED,
    NoSparePolicy, Notice, kfeature,
};

use crate::{
    atomic, diag,
    maps::{CONTROL, NOTIFY, PENDING, STACKS, USTACKS_BUILD_ID, has, limits, policy, post},
    record::{self, Payload, Role},
};

/// `BPF_F_USER_STACK`: walk the user stack instead of the kernel's.
const USER_STACK: u64 = 1 << 8;
/// `BPF_F_REUSE_STACKID`: a new stack replaces an old one in its bucket.
const REUSE_STACKID: u64 = 1 << 10;
/// The stack id of a notice on a kernel without `bpf_get_stackid` (`-EOPNOTSUPP`).
const NO_STACK_IDS: i64 = -95;

/// The id of the current stack (`flags`: kernel or user) in `STACKS`, or a negative errno.
#[inline(always)]
fn stack_id<C: StackIdContext>(ctx: &C, flags: u64) -> i64 {
    if !has(kfeature::STACK_IDS) {
        return NO_STACK_IDS;
    }
    ctx.get_stackid(&STACKS, flags).unwrap_or_else(i64::from)
}

/// The id of the current user stack in `USTACKS_BUILD_ID` (build id + file offset per
/// frame), or a negative errno (`NO_STACK_IDS` on a kernel without build-id stack maps).
#[inline(always)]
fn build_id_stack_id<C: StackIdContext>(ctx: &C) -> i64 {
    if !has(kfeature::STACK_IDS) || !has(kfeature::STACK_BUILD_ID) {
        return NO_STACK_IDS;
    }
    ctx.get_stackid(&USTACKS_BUILD_ID, REUSE_STACKID | USER_STACK)
        .unwrap_or_else(i64::from)
}

/// The trigger context: who fired, what value, and where (stacks).
#[inline(always)]
fn notice<C: StackIdContext>(
    ctx: &C,
    kind: u32,
    half: u64,
    probe_id: u32,
    value: u64,
    pid_tgid: u64,
    ts: u64,
) -> Notice {
    Notice {
        kind,
        half: half as u32,
        seq: 0,
        ts_ns: ts,
        pid_tgid,
        value,
        missed: 0,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
        // SAFETY: helper without preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() },
        probe_id,
        kstack: stack_id(ctx, REUSE_STACKID) as i32,
        ustack: stack_id(ctx, REUSE_STACKID | USER_STACK) as i32,
        ustack_build_id: build_id_stack_id(ctx) as i32,
        pad: 0,
        sequence: 0,
    }
}

/// Who flips: the trigger that won `armed`, or the writer that closed its `--post` window.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flipper {
    Winner,
    PostClosed,
}

/// Freezes half `frozen`: numbers the snapshot, makes the other half live and tells userspace.
///
/// # Safety
/// `control` is the CONTROL value and the caller is the one flipper of this arming.
#[inline(always)]
unsafe fn flip(control: *mut Control, frozen: u64, n: &mut Notice, by: Flipper) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let seq = (*control).flips + 1;
        (*control).flips = seq;
        n.kind = NOTICE_FLIP;
        n.half = frozen as u32;
        n.seq = seq;
        n.missed = rd(&raw const (*control).missed);
        atomic::publish(&raw mut (*control).active, frozen ^ 1);
    }
    if by == Flipper::Winner {
        diag::won(n);
    } else {
        diag::post_closed(n);
    }
    let _ = NOTIFY.output(n, 0);
}

/// Closes the open `--post` window: called by the writer that took its last ticket.
#[inline(always)]
pub fn close_post(control: *mut Control) {
    let Some(pending) = PENDING.get_ptr(0) else {
        return;
    };
    // SAFETY: `control` is the CONTROL value; the last ticket makes this writer the one
    // flipper; `pending` was written before the window opened.
    unsafe {
        let mut n = rd(pending);
        let frozen = rd(&raw const (*control).post_half) & 1;
        flip(control, frozen, &mut n, Flipper::PostClosed);
        atomic::publish(&raw mut (*control).pending, 0);
    }
}

/// A trigger fired on the event of `probe_id` recorded at `now` whose tested field was
/// `value`; `sequence`: the sequence that completed and when its A held, as
/// `snapshot_common::sequence::fired` packs them (0: none).
#[inline(always)]
pub fn fire<C: StackIdContext>(
    ctx: &C,
    probe_id: u32,
    value: u64,
    pid_tgid: u64,
    now: u64,
    sequence: u64,
) {
    let Some(control) = CONTROL.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `control` is the CONTROL map value; every field is an aligned u64.
    unsafe {
        if rd(&raw const (*control).pending) != 0 {
            return;
        }
        // `--count` and `--holdoff`: a trigger past the limit or inside the hold-off does not
        // take a snapshot and is not a missed one either.
        let (count, holdoff) = limits();
        if count != 0 && rd(&raw const (*control).fired) >= count {
            return;
        }
        let last = rd(&raw const (*control).last_fire_ns);
        if holdoff != 0 && last != 0 && now.saturating_sub(last) < holdoff {
            return;
        }
        if atomic::take_spare(control) {
            // Checked again as the one winner: another trigger may have flipped (and userspace
            // re-armed) between the checks above and the exchange. Then the spare goes back.
            let last = rd(&raw const (*control).last_fire_ns);
            if (count != 0 && rd(&raw const (*control).fired) >= count)
                || (holdoff != 0 && last != 0 && now.saturating_sub(last) < holdoff)
            {
                atomic::return_spare(control);
                return;
            }
            if !atomic::take_stopping(control) {
                // A stop is being decided: this trigger takes no snapshot. The spare goes
                // back (the one deciding may find a window open and not stop after all).
                atomic::return_spare(control);
                atomic::add(&raw mut (*control).missed, 1);
                diag::missed(control, probe_id, value, pid_tgid);
                return;
            }
            (*control).fired += 1;
            wr(&raw mut (*control).last_fire_ns, now);
            let live = rd(&raw const (*control).active) & 1;
            let mut n = notice(ctx, NOTICE_POST, live, probe_id, value, pid_tgid, now);
            n.sequence = sequence;
            let (post_events, post_ns) = post();
            let window = if post_events == 0 && post_ns == 0 {
                None
            } else {
                PENDING.get_ptr_mut(0)
            };
            let Some(pending) = window else {
                flip(control, live, &mut n, Flipper::Winner);
                atomic::release_stopping(control);
                return;
            };
            wr(pending, n);
            wr(&raw mut (*control).post_half, live);
            wr(
                &raw mut (*control).post_until,
                if post_ns == 0 { 0 } else { now + post_ns },
            );
            wr(
                &raw mut (*control).post_left,
                if post_ns == 0 { post_events } else { 1 },
            );
            // Publishes the window (a full barrier after the stores above).
            atomic::publish(&raw mut (*control).pending, 1);
            diag::won_post(&n);
            let _ = NOTIFY.output(&n, 0);
            atomic::release_stopping(control);
            return;
        }
        if policy() == NoSparePolicy::Stop as u32 && atomic::take_stopping(control) {
            if rd(&raw const (*control).pending) != 0 {
                // A `--post` window opened since the check above: the trigger belongs to it.
                atomic::release_stopping(control);
                return;
            }
            atomic::add(&raw mut (*control).missed, 1);
            let marker = Payload {
                args: [value, 0, 0, 0, 0, 0],
                ret: 0,
                ip: 0,
                flags: EVENT_MARKER,
                role: Role::Plain,
            };
            record::write(MARKER_PROBE, &marker, pid_tgid, now, None);
            atomic::publish(&raw mut (*control).stopped, 1);
            let live = rd(&raw const (*control).active) & 1;
            let mut n = notice(ctx, NOTICE_STOPPED, live, probe_id, value, pid_tgid, now);
            n.sequence = sequence;
            n.missed = rd(&raw const (*control).missed);
            diag::stopped(&n);
            let _ = NOTIFY.output(&n, 0);
            return;
        }
        atomic::add(&raw mut (*control).missed, 1);
        // Last, with nothing left to do: no value has to outlive the call.
        diag::missed(control, probe_id, value, pid_tgid);
    }
}
