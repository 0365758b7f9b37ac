//! Which tasks are recorded: applied in the kernel before any record is written.

use snapshot_common::FilterMode;

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_probe_read_kernel};

use crate::maps::{TARGETS, filter_mode, self_tgid, subject_pid, target_comm, target_tgid};

/// As [`wanted`], for an event of probe `probe_id` read from the tracepoint record at `base`
/// (0: not a tracepoint). A probe with a subject pid field (`maps::subject_pid`: the victim of
/// `signal_generate` and `mark_victim`) is filtered by that task instead of the current one,
/// unless it is the current thread (a signal a target sends itself). The pid stands for its
/// process: a signal sent to a thread group is addressed to its leader, whose pid is the tgid.
#[inline(always)]
pub fn wanted_event(probe_id: u32, base: u64, pid_tgid: u64) -> bool {
    let at = subject_pid(probe_id);
    if base != 0 && at != 0 {
        let src = (base + u64::from(at - 1)) as *const u32;
        // SAFETY: the helper checks the source; a failed read gives 0 (no subject).
        let pid = unsafe { bpf_probe_read_kernel(src) }.unwrap_or(0);
        if pid != 0 && pid != pid_tgid as u32 {
            return wanted((u64::from(pid) << 32) | u64::from(pid));
        }
    }
    wanted(pid_tgid)
}

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
