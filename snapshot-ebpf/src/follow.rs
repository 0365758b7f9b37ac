//! `--follow-forks`: the target set grows with the targets' children and shrinks as processes
//! exit, in the kernel, so no early event of a new child is missed.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::maps::TARGETS;

/// Offset of `child_pid` in the `sched:sched_process_fork` record (from its format, at load).
#[unsafe(no_mangle)]
static SNAPSHOT_FORK_CHILD_OFFSET: u32 = 0;

/// `sched:sched_process_fork`: a target's new process becomes a target. (A new thread of a
/// target is already one: the filter looks at the thread group.)
#[tracepoint]
pub fn follow_fork(ctx: TracePointContext) -> u32 {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is a plain u8, only tested for presence.
    if unsafe { TARGETS.get(&parent) }.is_none() {
        return 0;
    }
    // SAFETY: a plain u32 static patched at load.
    let offset =
        unsafe { core::ptr::read_volatile(&raw const SNAPSHOT_FORK_CHILD_OFFSET) } as usize;
    // SAFETY: read_at is a bpf_probe_read_kernel of the record.
    if let Ok(child) = unsafe { ctx.read_at::<i32>(offset) } {
        let _ = TARGETS.insert(&(child as u32), &1, 0);
    }
    0
}

/// `sched_process_exit` (raw): when a process's main thread exits, it leaves the target set.
#[raw_tracepoint]
pub fn follow_exit(_ctx: RawTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tgid == tid {
        let _ = TARGETS.remove(&tgid);
    }
    0
}
