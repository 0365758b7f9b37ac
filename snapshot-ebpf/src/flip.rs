//! The flip: freeze the live half as a snapshot and continue in the armed spare.
//!
//! One winner: a trigger flips only after taking `Control::armed` with an atomic exchange
//! (1 → 0). Two CPUs firing at once both exchange; exactly one reads 1 and flips, the other
//! reads 0 and counts a missed trigger. Only the winner writes `active` and `flips`, so they
//! need no further atomics; `active` is published with an exchange (a full barrier), so a
//! writer that takes its CPU's `busy` after the flip reads the new half (see `record.rs`).
//!
//! No armed spare: `Skip` counts the trigger in `Control::missed` (reported with the next
//! snapshot). `Stop` reproduces ftrace's behaviour without a spare buffer: one trigger (the one
//! that takes `stopping`) writes a marker record into the live half, stops recording and tells
//! userspace, which exports the live half as the final, "permanent" snapshot.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns};
use snapshot_common::{
    COMM_LEN, EVENT_MARKER, MARKER_PROBE, NOTICE_FLIP, NOTICE_STOPPED, NoSparePolicy, Notice,
};

use crate::{
    atomic,
    maps::{CONTROL, NOTIFY, limits, policy},
    record::{self, Payload, Role},
};

fn notice(
    kind: u32,
    half: u32,
    seq: u64,
    probe_id: u32,
    value: u64,
    pid_tgid: u64,
    missed: u64,
) -> Notice {
    Notice {
        kind,
        half,
        seq,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid_tgid,
        value,
        missed,
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
        // SAFETY: helper without preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() },
        probe_id,
    }
}

/// A trigger fired on an event of `probe_id` whose tested field was `value`.
#[inline(always)]
pub fn fire(probe_id: u32, value: u64, pid_tgid: u64) {
    let Some(control) = CONTROL.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `control` is the CONTROL map value; every field is an aligned u64.
    unsafe {
        // `--count` and `--holdoff`: a trigger past the limit or inside the hold-off does not
        // take a snapshot and is not a missed one either.
        let (count, holdoff) = limits();
        if count != 0 && core::ptr::read_volatile(&raw const (*control).fired) >= count {
            return;
        }
        let now = bpf_ktime_get_boot_ns();
        let last = core::ptr::read_volatile(&raw const (*control).last_fire_ns);
        if holdoff != 0 && last != 0 && now.saturating_sub(last) < holdoff {
            return;
        }
        if atomic::xchg(&raw mut (*control).armed, 0) == 1 {
            (*control).fired += 1;
            core::ptr::write_volatile(&raw mut (*control).last_fire_ns, now);
            let old = core::ptr::read_volatile(&raw const (*control).active) & 1;
            let seq = (*control).flips + 1;
            (*control).flips = seq;
            let missed = core::ptr::read_volatile(&raw const (*control).missed);
            atomic::xchg(&raw mut (*control).active, old ^ 1);
            let n = notice(
                NOTICE_FLIP,
                old as u32,
                seq,
                probe_id,
                value,
                pid_tgid,
                missed,
            );
            let _ = NOTIFY.output(&n, 0);
            return;
        }
        atomic::add(&raw mut (*control).missed, 1);
        if policy() == NoSparePolicy::Stop as u32
            && atomic::xchg(&raw mut (*control).stopping, 1) == 0
        {
            let marker = Payload {
                args: [value, 0, 0, 0, 0, 0],
                ret: 0,
                ip: 0,
                flags: EVENT_MARKER,
                role: Role::Plain,
            };
            record::write(
                MARKER_PROBE,
                &marker,
                pid_tgid,
                bpf_ktime_get_boot_ns(),
                None,
            );
            atomic::xchg(&raw mut (*control).stopped, 1);
            let live = core::ptr::read_volatile(&raw const (*control).active) & 1;
            let missed = core::ptr::read_volatile(&raw const (*control).missed);
            let n = notice(
                NOTICE_STOPPED,
                live as u32,
                0,
                probe_id,
                value,
                pid_tgid,
                missed,
            );
            let _ = NOTIFY.output(&n, 0);
        }
    }
}
