//! Invalidation of the per-CPU command-name caches (see `record.rs`): attached to the
//! `sched_process_exec` and `task_rename` raw tracepoints, where a task's comm changes.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{atomic, maps::CONTROL};

/// Bumps `Control::comm_epoch`. Reads no argument, so it attaches to any raw tracepoint.
#[raw_tracepoint]
pub fn comm_changed(_ctx: RawTracePointContext) -> u32 {
    if let Some(control) = CONTROL.get_ptr_mut(0) {
        // SAFETY: the CONTROL map value; `comm_epoch` is an aligned u64.
        unsafe { atomic::add(&raw mut (*control).comm_epoch, 1) };
    }
    0
}
