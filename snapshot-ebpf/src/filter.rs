//! Which tasks are recorded: applied in the kernel before any record is written.

use snapshot_common::FilterMode;

use aya_ebpf::helpers::bpf_get_current_comm;

use crate::maps::{TARGETS, filter_mode, self_tgid, target_comm, target_tgid};

/// True when events of the task `pid_tgid` should be recorded.
#[inline(always)]
pub fn wanted(pid_tgid: u64) -> bool {
    let tgid = (pid_tgid >> 32) as u32;
    // The mode is a load-time constant: the verifier prunes the branches not taken.
    let mode = filter_mode();
    if mode == FilterMode::One as u32 {
        return tgid == target_tgid();
    }
    if mode == FilterMode::Tid as u32 {
        return pid_tgid as u32 == target_tgid();
    }
    if mode == FilterMode::Comm as u32 {
        return tgid != self_tgid() && bpf_get_current_comm().is_ok_and(|c| c == target_comm());
    }
    if tgid == self_tgid() {
        return false;
    }
    if mode == FilterMode::All as u32 {
        return true;
    }
    // SAFETY: the value is a plain u8 and is only tested for presence.
    unsafe { TARGETS.get(&tgid).is_some() }
}
